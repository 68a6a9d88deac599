#!/usr/bin/env bats
# The command line every program shares (lib/base/cli.c), table-driven over
# all eight: options before or after the command, --help against the man
# pages, one-line usage errors, | head, Ctrl-C on a pipeline, FILE
# operands, and what is missing being said.
load common
bats_require_minimum_version 1.5.0

PROGS="dd-schedule dd-package dd-track dd-history dd-lake-ingest dd-lake-query dd-archive dd-sim"
FLEET="$DD_ROOT/data/fleet.csv"

setup() {
	cd "$BATS_TEST_TMPDIR"
}

# A small day through every store, so each has something to answer.
day() {
	dd-sim requests -n 40 --seed 5 --start 2026-11-20T08:00:00Z > req.ndjson
	dd-schedule -q --fleet "$FLEET" req.ndjson > sched.ndjson
	dd-package -q sched.ndjson
	dd-sim fly -q --seed 5 sched.ndjson | dd-track -q > track.ndjson
	dd-history -q track.ndjson
	dd-lake-ingest -q track.ndjson
}

@test "every program: --help lists each option with a description, -V the version, and check-usage passes" {
	for p in $PROGS; do
		run "$p" --help
		assert_success
		assert_line --index 0 --regexp "^usage: $p( |$)"
		assert_line --partial "$p -h | -V"
		assert_line --regexp '^  -h, --help +print this help and exit$'
		run "$p" -V
		assert_success
		assert_output --regexp "^$p [0-9]+\.[0-9]+"
	done
	# check-usage also fails on an option without a description.
	run "$DD_ROOT/scripts/check-usage" "$DD_BIN"
	assert_success
	assert_output ""
	mkdir -p fake
	cp "$DD_BIN"/dd-* fake/
	printf '#!/bin/sh\nexec %s "$@" | sed "s/^\\(  --cache SIZE\\) .*/\\1/"\n' "$DD_BIN/dd-track" > fake/dd-track
	chmod +x fake/dd-track
	run "$DD_ROOT/scripts/check-usage" fake
	assert_failure
	assert_output --partial "dd-track: an option without a description"
}

@test "store and lake options go before or after the command alike" {
	day
	for p in dd-schedule dd-package dd-track dd-history; do
		db="$DD_HOME/${p#dd-}.db"
		before=$("$p" --db "$db" -q stats)
		after=$("$p" stats --db "$db" -q)
		[ -n "$before" ]
		assert_equal "$before" "$after"
		a=$("$p" -q --db "$db" list --format csv)
		b=$("$p" list --format csv --db "$db" -q)
		assert_equal "$a" "$b"
	done
	a=$(dd-lake-query -l "$DD_HOME/lake" --dataset events --count)
	b=$(dd-lake-query --count --dataset events -l "$DD_HOME/lake")
	assert_equal "$a" "$b"
	[ "$a" -gt 0 ]
	run dd-schedule fleet list --db "$DD_HOME/schedule.db" --format csv
	assert_success
	b=$(dd-schedule --db "$DD_HOME/schedule.db" fleet list --format csv)
	assert_equal "$output" "$b"
}

@test "a bad value of every enumerated option: one line naming the choices, exit 2" {
	day
	while IFS='|' read -r cmd want; do
		run -2 $cmd
		assert_equal "${#lines[@]}" 1
		assert_output --partial "$want"
	done <<-EOF
	dd-track list --stage complete|dd-track: --stage: "complete" is not a stage (created, rescheduled, headed-to-pickup, headed-to-dropoff, completed, cancelled, failed, unknown)
	dd-track list --format xml|dd-track: --format: "xml" is not a format (ndjson, csv, tsv, table)
	dd-history list --stage done|dd-history: --stage: "done" is not a stage (created,
	dd-history list --format chart|dd-history: --format: "chart" is not a format
	dd-schedule list --state gone|dd-schedule: --state: "gone" is not a state (waiting,
	dd-schedule list --format x|dd-schedule: --format: "x" is not a format
	dd-schedule fleet list --format x|dd-schedule: --format: "x" is not a format
	dd-package list --format x|dd-package: --format: "x" is not a format
	dd-lake-query --format x|dd-lake-query: --format: "x" is not a format (ndjson, csv, tsv, table, chart)
	dd-track stats --retain 1h|dd-track: --retain is not an option of the command stats
	dd-track list --bogus|dd-track: unknown option --bogus
	dd-sim flyy|dd-sim: unknown command "flyy" (commands: requests, fly, telemetry)
	dd-history gett x|dd-history: unknown command "gett"
	dd-track get|dd-track: get: missing ID
	dd-archive --older-than soon|dd-archive: --older-than:
	dd-lake-ingest --level 0|dd-lake-ingest: --level:
	EOF
}

@test "| head -1: exit 141, nothing on stderr, what was read is committed" {
	day
	# Enough output to fill the pipe after head has gone: each command
	# writes far more than a pipe holds.
	dd-sim requests -n 20000 --seed 9 --start 2026-11-21T08:00:00Z > big.ndjson
	dd-sim telemetry -n 200000 --seed 3 > tel.ndjson
	dd-schedule --db big.db -q fleet import "$FLEET"
	dd-schedule -q --db full.db --fleet "$FLEET" big.ndjson > sched-big.ndjson
	dd-history -q --db h.db sched-big.ndjson
	dd-package -q --db p.db sched-big.ndjson
	dd-track -q --db t.db sched-big.ndjson > /dev/null
	while IFS= read -r cmd; do
		run bash -c "set -o pipefail; $cmd 2> err | head -1 > /dev/null"
		[ "$status" -eq 141 ] || fail "$cmd: exit $status, $(cat err)"
		[ ! -s err ] || fail "$cmd: stderr: $(cat err)"
	done <<-EOF
	dd-sim telemetry -n 200000 --seed 3
	dd-sim requests -n 20000 --seed 9
	dd-sim fly sched-big.ndjson
	dd-track tel.ndjson
	dd-track --db head.db --batch 50 - < tel.ndjson
	dd-schedule --db big.db big.ndjson
	dd-lake-query -l $DD_HOME/lake
	dd-lake-query -l $DD_HOME/lake --format csv --fields id,type
	dd-history --db h.db list
	dd-track --db t.db list --format table
	dd-schedule --db full.db list
	dd-schedule --db full.db list --format csv
	dd-package --db p.db list
	EOF
	# The filter that lost its reader committed the batches it had written.
	run dd-track --db head.db stats
	assert_success
	assert_output --regexp '[1-9]'
}

@test "FILE operands are read in order; messages and rejects name file:line; - is stdin" {
	day
	head -c 0 /dev/null > empty.ndjson
	grep -m 20 'delivery\.' track.ndjson > a.ndjson
	printf '%s\n' '{"not":"an event"}' >> a.ndjson
	grep 'delivery\.' track.ndjson | sed -n '21,40p' > b.ndjson
	printf '%s\n' 'garbage' >> b.ndjson
	run dd-history --db fh.db --rejects rj.ndjson a.ndjson empty.ndjson - < b.ndjson
	assert_failure 1
	assert_line --partial "dd-history: a.ndjson:21:"
	assert_line --partial "dd-history: stdin:21:"
	run jq -r '"\(.source):\(.line)"' rj.ndjson
	assert_output $'a.ndjson:21\nstdin:21'
	# The same events as one stream make the same store.
	cat a.ndjson b.ndjson | dd-history -q --db one.db || true
	assert_equal "$(dd-history --db fh.db list --format csv)" "$(dd-history --db one.db list --format csv)"
	# A FILE that cannot be read: exit 4 naming it, and no store made.
	run dd-track --db none.db a.ndjson no-such.ndjson
	assert_failure 4
	assert_output "dd-track: no-such.ndjson: No such file or directory"
	[ ! -e none.db ]
	for p in dd-schedule dd-package dd-lake-ingest; do
		run "$p" no-such.ndjson
		assert_failure 4
		assert_output --partial "no-such.ndjson: No such file or directory"
	done
	run dd-sim fly no-such.ndjson
	assert_failure 4
}

@test "what is missing is said: a store, lake or dataset that does not exist exits 4 naming it" {
	day
	for p in dd-schedule dd-package dd-track dd-history; do
		run "$p" --db "$BATS_TEST_TMPDIR/no/such.db" stats
		assert_failure 4
		assert_output --partial "no/such.db"
		[ ! -e "$BATS_TEST_TMPDIR/no" ]
	done
	run dd-archive --db "$BATS_TEST_TMPDIR/no/history.db" -l "$DD_HOME/lake"
	assert_failure 4
	assert_output --partial "no/history.db: no such store"
	run dd-archive --dry-run --db "$BATS_TEST_TMPDIR/no/history.db"
	assert_failure 4
	[ ! -e "$BATS_TEST_TMPDIR/no" ]
	# --verify tends a lake alone, but not a lake that is not there either.
	run dd-archive --verify --db "$BATS_TEST_TMPDIR/no/history.db" -l "$BATS_TEST_TMPDIR/no/lake"
	assert_failure 4
	assert_output --partial "no/lake: no such lake"
	run --separate-stderr dd-archive --verify --db "$BATS_TEST_TMPDIR/no/history.db" -l "$DD_HOME/lake"
	assert_success
	assert_equal "$stderr" "dd-archive: $BATS_TEST_TMPDIR/no/history.db: no such store: nothing archived"
	[ "$(jq .partsVerified <<<"$output")" -gt 0 ]
	run dd-lake-query -l /no/such/lake --count
	assert_failure 4
	assert_output --partial "/no/such/lake"
	run dd-lake-query -l "$DD_HOME/lake" --dataset event --count
	assert_failure 4
	assert_output --partial 'no dataset "event" (datasets: events)'
	run dd-lake-query -l "$DD_HOME/lake" --type drone.deliverd --count
	assert_success
	assert_line "0"
	assert_output --regexp 'drone\.deliverd.*drone\.delivered'
	run --separate-stderr dd-lake-query -q -l "$DD_HOME/lake" --type drone.deliverd --count
	assert_success
	assert_output "0"
	assert_equal "$stderr" ""

}

@test "--dry-run writes nothing" {
	day
	# SQLite's own -wal and -shm files of a reader aside: no data, no lock.
	files() { find "$DD_HOME" -type f ! -name '*-wal' ! -name '*-shm' -printf '%p %s %T@\n' | sort; }
	before=$(files)
	run dd-archive --dry-run --now 2027-06-01 -l "$DD_HOME/lake"
	assert_success
	[ "$(jq .dryRun <<<"$output")" = true ]
	[ "$(jq .deliveriesArchived <<<"$output")" -gt 0 ]
	assert_equal "$(files)" "$before"
}

# The README's five stages in a session of their own; Ctrl-C is SIGINT to
# the whole process group, the shell included, as a terminal sends it.
@test "Ctrl-C on the five-stage pipeline: every stage commits and exits 130, no error line" {
	cat > p.sh <<-EOF
	dd-sim requests -n 3000000 --seed 7 --rate 200000 --start 2026-11-20T00:00:00Z 2> e1 \\
	  | dd-schedule --fleet $FLEET 2> e2 \\
	  | dd-sim fly --seed 7 2> e3 \\
	  | dd-track 2> e4 \\
	  | dd-history 2> e5
	echo "\${PIPESTATUS[*]}" > status
	EOF
	setsid bash p.sh &
	sid=$!
	sleep 4
	[ ! -e status ] || fail "the pipeline ended before the signal: $(cat status)"
	kill -INT -- "-$sid"
	for i in $(seq 150); do [ -s status ] && break; sleep 0.2; done
	run cat status
	# 141 only for a stage whose reader had already gone.
	[[ $output =~ ^(130|141)\ (130|141)\ (130|141)\ (130|141)\ 130$ ]] || fail "PIPESTATUS: $output"
	for e in e1 e2 e3 e4 e5; do
		run grep -iE 'error|broken pipe|interrupted|fail' "$e"
		assert_failure
	done
	# What the stores read is committed.
	run dd-history stats
	assert_success
	assert_output --regexp '[1-9]'
}

# The id of each line of a store's list: its first member.
ids_of() { "$@" | jq -r '[.[]][0]'; }

@test "get ID... and get - in every store: one line per id, in the order asked, unknown ids named, exit 1" {
	day
	for p in dd-schedule dd-package dd-track dd-history; do
		ids_of "$p" list > "$p.ids"
		[ "$(wc -l < "$p.ids")" -ge 3 ] || fail "$p: $(wc -l < "$p.ids") ids"
		# Three ids, last first: the answers follow the question.
		tac "$p.ids" | head -n 3 > ask
		: > one.out
		while read -r id; do "$p" get "$id" >> one.out; done < ask
		[ "$(wc -l < one.out)" -ge 3 ]
		run "$p" get $(cat ask)
		assert_success
		assert_output "$(cat one.out)"
		run "$p" get - < ask
		assert_success
		assert_output "$(cat one.out)"
		# Unknown ids, on the line or on stdin, are named and skipped.
		printf '%s\nno-such-1\n\n%s\n' "$(sed -n 1p ask)" "$(sed -n 3p ask)" > mixed
		run --separate-stderr "$p" get no-such-0 - "$(sed -n 2p ask)" < mixed
		[ "$status" -eq 1 ] || fail "$p: exit $status"
		assert_output "$(sed -n 1p one.out; sed -n 3p one.out; sed -n 2p one.out)"
		[ "$(grep -c 'no-such-[01]' <<< "$stderr")" -eq 2 ] || fail "$p: $stderr"
		[[ $stderr == *no-such-0*no-such-1* ]] || fail "$p: $stderr"
		# Every answer comes from the same read transaction as the others.
		# (Output far larger than a pipe holds, for | head below; kept in
		# a file: bats' run is slow on that much.)
		for i in $(seq 500); do cat "$p.ids"; done > many
		"$p" get - < many > many.out
		[ "$(wc -l < many.out)" -ge "$(wc -l < many)" ] || fail "$p: $(wc -l < many.out) lines"
		# A reader gone is 141 and silent, a closed stdout exit 4, said.
		run bash -c "set -o pipefail; $p get - < many 2> err | head -1 > /dev/null"
		[ "$status" -eq 141 ] || fail "$p | head: exit $status, $(cat err)"
		[ ! -s err ] || fail "$p | head: stderr: $(cat err)"
		run bash -c "$p get - < many >&-"
		[ "$status" -eq 4 ] || fail "$p >&-: exit $status"
		assert_output --partial "$p: stdout:"
	done
}

@test "librdkafka is loaded by a Kafka run only: the other runs start without mapping it" {
	local p
	for p in $PROGS; do
		LD_DEBUG=libs "$DD_BIN/$p" --help > /dev/null 2> ld.err || fail "$p --help"
		grep -q 'libc\.so' ld.err || fail "$p: LD_DEBUG said nothing: $(head -3 ld.err)"
		! grep -q librdkafka ld.err || fail "$p --help loaded librdkafka"
	done
	LD_DEBUG=libs dd-track get --db none.db d-1 > /dev/null 2> ld.err || true
	! grep -q librdkafka ld.err || fail "dd-track get loaded librdkafka"
	# A port nobody listens on: the library is loaded, and the run ends
	# as without the lazy loading (kafka.bats has the rest).
	run --separate-stderr env LD_DEBUG=libs dd-track --db k.db --kafka 127.0.0.1:9 \
		--topic tel --kafka-timeout 200ms
	[ "$status" -eq 4 ] || fail "exit $status"
	[[ $stderr == *librdkafka.so.1* ]] || fail "librdkafka not loaded"
	[[ $stderr == *"dd-track: kafka: 127.0.0.1:9: no broker answered within 200 ms"* ]] ||
		fail "$stderr"
}
