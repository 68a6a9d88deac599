#!/usr/bin/env bats
# One small day of the pipeline with every program under valgrind: no
# memory error, no definite leak (--error-exitcode=98), in the filters,
# their threads, and the queries. ASan builds skip it (the two do not mix).

load common

setup() {
	[ "${DD_SANITIZE:-}" != 1 ] || skip "valgrind and ASan do not mix (DD_SANITIZE=1)"
	command -v valgrind > /dev/null || skip "no valgrind"
	cd "$BATS_TEST_TMPDIR"
}

# Every report goes to its own file (vg-PID.log); -q leaves them empty
# unless something is wrong.
vg() {
	valgrind -q --error-exitcode=98 --leak-check=full --errors-for-leak-kinds=definite \
	    --log-file="$BATS_TEST_TMPDIR/vg-%p.log" "$@"
}

# The reports, if any, and the commands that made them.
reports() {
	local f
	for f in vg-*.log; do
		[ -s "$f" ] && { echo "== $f"; cat "$f"; }
	done
	return 0
}

@test "valgrind: requests | schedule | fly | track | lake-ingest, then history, package, queries and the archive: no errors, no leaks" {
	vg dd-sim requests -n 40 --seed 5 --start 2026-11-01T06:00:00Z --cancel 0.1 |
		vg dd-schedule -q --fleet "$DD_ROOT/data/fleet.csv" |
		vg dd-sim fly -q --seed 5 --fail 0.1 |
		vg dd-track -q --position-every 2m |
		tee all |
		vg dd-lake-ingest -q
	rc=("${PIPESTATUS[@]}")
	[ "${rc[*]}" = "0 0 0 0 0 0" ] || fail "exit codes ${rc[*]}: $(reports)"
	[ "$(dd-lake-query --count)" -gt 1000 ]
	# The consumers of the same stream, fed back statuses and a cron pass.
	# Each store is its own file, so they run side by side (valgrind is
	# slow; this test is most of the suite's time otherwise).
	vg dd-history -q < all & p1=$!
	vg dd-package -q < all & p2=$!
	{ grep '"type":"delivery.status"' all | vg dd-schedule -q > /dev/null &&
		vg dd-schedule supervise -q --now 2026-11-02 > /dev/null; } & p3=$!
	# Bad input on the reject path too, in a store of its own.
	dd-sim telemetry -n 300 --seed 3 --bad 0.3 > bad
	{ rc=0; vg dd-track -q --db bad.db --rejects rj < bad > /dev/null 2>&1 || rc=$?; echo $rc > bad.rc; } & p4=$!
	for p in $p1 $p2 $p3; do
		wait $p || fail "a consumer exited $?: $(reports)"
	done
	# Queries, the jq engine, and the archive with compaction and checks.
	# The queries only read: all at once.
	id=$(dd-history list | head -1 | jq -r .deliveryId)
	local cmds=("dd-track list" "dd-track stats" "dd-history get $id" "dd-history stats"
	    "dd-package list --format table" "dd-schedule list --format csv" "dd-schedule get $id"
	    "dd-lake-query --count-by @day,type --format table"
	    "dd-lake-query -e select(.data.battery<0.5) --fields id,data.battery --format csv"
	    "dd-lake-query --subject $id" "dd-lake-query --partitions")
	local pids=() i
	for i in "${!cmds[@]}"; do
		vg ${cmds[$i]} > /dev/null & pids[$i]=$!
	done
	for i in "${!cmds[@]}"; do
		wait "${pids[$i]}" || fail "${cmds[$i]}: exit $?: $(reports)"
	done
	vg dd-archive -q --now 2026-12-15 --compact --verify > summary
	[ "$(jq .deliveriesArchived summary)" -gt 0 ]
	wait $p4
	[ "$(cat bad.rc)" -eq 1 ] || fail "dd-track on bad input: exit $(cat bad.rc): $(reports)"
	[ -z "$(reports)" ] || fail "$(reports)"
}
