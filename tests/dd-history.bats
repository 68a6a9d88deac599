#!/usr/bin/env bats
# dd-history: ingest (summaries, verbatim events, idempotence, order
# independence, rejected requests), get/list/stats, bad input, exit codes,
# signals, the flush interval and the kill -9 replay.

load common
load deliveries
bats_require_minimum_version 1.5.0

setup() {
	cd "$BATS_TEST_TMPDIR"
}

teardown() {
	[ -z "${BG:-}" ] || kill $BG 2>/dev/null || true
	[ -z "${MNT:-}" ] || umount "$MNT" 2>/dev/null || true
}

# ev ID TYPE TIME DELIVERY DATA: one event.
ev() {
	printf '{"specversion":"1.0","id":"%s","source":"/test","type":"%s","time":"%s","subject":"%s","data":%s}\n' \
		"$1" "$2" "$3" "$4" "$5"
}
st() { ev "$1" delivery.status "$2" "$3" "{\"deliveryId\":\"$3\",\"stage\":\"$4\",\"droneId\":${5:-null}}"; }

# Everything a reader can see of the store, for comparisons: the
# summaries, the counts, and (with the sqlite3 shell, cheaper than a get
# per delivery) every stored event line under its delivery.
dump() {
	local db=${2:-$DD_HOME/history.db}
	dd-history --db "$db" list
	dd-history --db "$db" stats
	sqlite3 "$db" "SELECT d.id, e.time_ms, e.eid, e.line FROM events e JOIN deliveries d USING (dkey) ORDER BY 1, 2, 3"
}

@test "--help prints the usage, -V the version; bad usage exits 2" {
	run dd-history --help
	assert_success
	assert_line --index 0 --partial "usage: dd-history [--db FILE]"
	assert_output --partial "get [--db FILE] [-q] ID"
	run dd-history -V
	assert_success
	assert_output --regexp '^dd-history [0-9]'
	for args in "--bogus" "frob" "get" "list extra" "stats x" \
		"list --stage flying" "list --since yesterday" "list --format chart" \
		"--owner o-1" "get x --batch 3" "--batch 0" "--flush-interval 0s"; do
		run -2 dd-history $args </dev/null
		assert_equal "${#lines[@]}" 1
		assert_output --partial "dd-history: "
	done
}

@test "get: the summary and every event verbatim, in event-time order" {
	gen_deliveries 20 > in.ndjson
	run dd-history < in.ndjson
	assert_success
	assert_output --partial "read 78, accepted 78, ignored 0, rejected 0"
	run dd-history get d-0000003
	assert_success
	[ "$(echo "$output" | jq -c '[.deliveryId, .requestId, .ownerId, .stage, .droneId, .created, .ended, .eventCount]')" = \
		'["d-0000003","r-d0000003","o-3","completed","D-0003","2026-11-02T00:03:00.000Z","2026-11-02T00:33:00.000Z",4]' ]
	# The events are the input lines, byte for byte, in time order.
	echo "$output" | jq -c '.events[]' > /dev/null
	grep -F '"subject":"d-0000003"' in.ndjson > want
	echo "$output" | sed 's/^.*"events":\[//; s/\],"eventCount".*$//; s/},{"specversion"/}\n{"specversion"/g' > got
	cmp want got
	run dd-history get d-0000007
	assert_success
	[ "$(echo "$output" | jq -r '[.stage, .eventCount] | @tsv')" = "cancelled	2" ]
	run dd-history get d-0000013
	[ "$(echo "$output" | jq -r .stage)" = failed ]
}

@test "get of an unknown delivery exits 1; a missing store exits 4" {
	gen_deliveries 3 | dd-history -q
	run -1 dd-history get nope
	assert_output "dd-history: nope: no such delivery"
	run -4 dd-history --db "$BATS_TEST_TMPDIR/none.db" get d-0000001
	assert_output --partial "no such store"
}

@test "a rejected request without a delivery id is kept under its request id" {
	gen_deliveries 100 | dd-history -q
	run dd-history get r-d0000100
	assert_success
	[ "$(echo "$output" | jq -r '[.deliveryId, .requestId, .ownerId, .stage, .eventCount, .events[0].type] | @tsv')" = \
		"r-d0000100	r-d0000100	o-15	rejected	1	delivery.rejected" ]
	# With a delivery id, the rejection joins that delivery.
	ev rj delivery.rejected 2026-11-02T00:00:30Z d-0000001 '{"requestId":"r-d0000001","deliveryId":"d-0000001","reason":"deadline"}' | dd-history -q
	run dd-history get d-0000001
	[ "$(echo "$output" | jq -r '[.stage, .eventCount] | @tsv')" = "rejected	5" ]
}

@test "idempotent: feeding the same events again changes nothing" {
	gen_deliveries 60 > in.ndjson
	dd-history -q < in.ndjson
	dump > once
	dd-history list | jq -r .deliveryId | while read -r id; do dd-history get "$id"; done >> once
	run dd-history < in.ndjson
	assert_success
	assert_output --partial "stored 0 events (234 duplicates), 0 new deliveries"
	dump > twice
	dd-history list | jq -r .deliveryId | while read -r id; do dd-history get "$id"; done >> twice
	cmp once twice
}

@test "out-of-order arrival gives the same store as ordered arrival" {
	gen_deliveries 300 7 > in.ndjson
	dd-history -q --db ordered.db < in.ndjson
	shuf --random-source=<(yes 1) in.ndjson | dd-history -q --db shuffled.db --batch 37
	tac in.ndjson | dd-history -q --db reversed.db --batch 1
	dump --db ordered.db > a
	dump --db shuffled.db > b
	dump --db reversed.db > c
	cmp a b
	cmp a c
}

@test "stages: latest event decides, the first final stage stays, late events change nothing" {
	{
		st e1 2026-11-02T10:00:00Z d-1 created '"D-1"'
		st e3 2026-11-02T10:20:00Z d-1 headed-to-dropoff '"D-2"'
		st e4 2026-11-02T10:30:00Z d-1 completed
		st e2 2026-11-02T10:10:00Z d-1 headed-to-pickup '"D-9"'
		st e5 2026-11-02T11:00:00Z d-1 headed-to-pickup '"D-3"'
		st e6 2026-11-02T12:00:00Z d-1 failed
	} | dd-history -q
	run dd-history get d-1
	# Stage from the first final event; ended at its time; the drone of
	# the latest event naming one; created the earliest time.
	[ "$(echo "$output" | jq -r '[.stage, .ended, .droneId, .created, .updated, .eventCount] | @tsv')" = \
		"completed	2026-11-02T10:30:00.000Z	D-3	2026-11-02T10:00:00.000Z	2026-11-02T12:00:00.000Z	6" ]
	[ "$(echo "$output" | jq -r '[.events[].id] | join(" ")')" = "e1 e2 e3 e4 e5 e6" ]
	# An earlier final event takes over, whenever it arrives.
	ev e0 delivery.cancelled 2026-11-02T10:25:00Z d-1 '{"deliveryId":"d-1","reason":"owner"}' | dd-history -q
	run dd-history get d-1
	[ "$(echo "$output" | jq -r '[.stage, .ended] | @tsv')" = "cancelled	2026-11-02T10:25:00.000Z" ]
	# Before any final stage the latest event decides, rescheduled included.
	{
		st f1 2026-11-02T10:00:00Z d-2 headed-to-pickup
		ev f2 delivery.rescheduled 2026-11-02T10:05:00Z d-2 '{"deliveryId":"d-2","reason":"weather","droneId":"D-7"}'
	} | dd-history -q
	run dd-history get d-2
	[ "$(echo "$output" | jq -r '[.stage, .droneId, .ended] | @tsv')" = "rescheduled	D-7	" ]
}

@test "list: filters by owner, stage and created time; csv, tsv and table" {
	gen_deliveries 100 > in.ndjson
	dd-history -q < in.ndjson
	run dd-history list
	assert_success
	[ "${#lines[@]}" -eq 100 ]
	[ "$(dd-history list --owner o-3 | jq -r .deliveryId | tr '\n' ' ')" = "d-0000003 d-0000020 d-0000037 d-0000054 d-0000071 d-0000088 " ]
	[ "$(dd-history list --stage cancelled | jq -r .deliveryId | tr '\n' ' ')" = "d-0000007 d-0000027 d-0000047 d-0000067 d-0000087 " ]
	[ "$(dd-history list --stage rejected --owner o-15 | jq -r .deliveryId)" = "r-d0000100" ]
	# [since, until) on the created time.
	[ "$(dd-history list --since 2026-11-02T00:05:00Z --until 2026-11-02T00:08:00Z | jq -r .deliveryId | tr '\n' ' ')" = "d-0000005 d-0000006 d-0000007 " ]
	run bash -c 'dd-history list --format csv --owner o-3 | tr -d "\r"'
	assert_line --index 0 "deliveryId,requestId,ownerId,stage,droneId,created,ended,updated,eventCount"
	assert_line --index 1 "d-0000003,r-d0000003,o-3,completed,D-0003,2026-11-02T00:03:00.000Z,2026-11-02T00:33:00.000Z,2026-11-02T00:33:00.000Z,4"
	run dd-history list --format tsv --stage failed
	assert_line --index 1 --partial "d-0000013	r-d0000013	o-13	failed"
	run dd-history list --format table --stage failed
	assert_line --index 0 --regexp '^deliveryId +requestId +ownerId +stage'
	run dd-history list --owner nobody
	assert_success
	assert_output ""
}

@test "stats counts deliveries, events and stages" {
	gen_deliveries 100 | dd-history -q
	run dd-history stats
	assert_success
	[ "$(echo "$output" | jq -c '[.deliveries, .events, .ended, .stages]')" = \
		'[100,387,100,{"cancelled":5,"completed":92,"failed":2,"rejected":1}]' ]
}

@test "bad input is reported, skipped and recorded; other types are ignored" {
	{
		gen_deliveries 2
		echo 'not json'
		st x1 2026-11-02T10:00:00Z d-9 flying
		ev x2 delivery.cancelled 2026-11-02T10:00:00Z d-9 '{"reason":"owner"}'
		ev x3 delivery.status 2026-11-02T10:00:00Z d-9 '{"deliveryId":7,"stage":"created"}'
		ev x4 drone.position 2026-11-02T10:00:00Z d-9 '{"droneId":"D-1","location":{"lat":1,"lon":2},"speedMps":1,"battery":1}'
		ev x5 delivery.sorted 2026-11-02T10:00:00Z d-9 '{}'
		st x6 2026-11-02T10:00:00Z d-9 created
	} > in.ndjson
	run -1 dd-history --rejects rej.ndjson < in.ndjson
	assert_line "dd-history: stdin:9: invalid JSON at byte 1: unexpected character"
	assert_line 'dd-history: stdin:10: "data.stage" is not a stage: "flying"'
	assert_line 'dd-history: stdin:11: missing "data.deliveryId"'
	assert_line 'dd-history: stdin:12: "data.deliveryId" is not a string'
	assert_output --partial "read 15, accepted 9, ignored 2, rejected 4"
	[ "$(jq -r .line rej.ndjson | tr '\n' ' ')" = "9 10 11 12 " ]
	[ "$(jq -r .raw rej.ndjson | head -1)" = "not json" ]
	dd-history get d-9 > /dev/null
	dd-history get d-0000002 > /dev/null
}

@test "--strict stops at the first bad line, with everything before it committed" {
	{ gen_deliveries 3; echo '{"oops"'; gen_deliveries 3 1793577600 60 e; } > in.ndjson
	run -3 dd-history --strict < in.ndjson
	assert_output --partial "stopped at the first bad line"
	[ "$(dd-history list | wc -l)" -eq 3 ]
	run -1 dd-history get e-0000001
}

@test "store failures exit 4" {
	echo "not a database, just text, long enough to be read as a header......" > bad.db
	run -4 dd-history --db bad.db < /dev/null
	run -4 dd-history --db bad.db list
	mkdir ro && chmod 500 ro
	if [ "$(id -u)" -ne 0 ]; then
		run -4 dd-history --db ro/h.db < /dev/null
	fi
	gen_deliveries 3 | dd-history -q
	run -4 bash -c 'dd-history list --format csv > /dev/full'
	assert_output "dd-history: stdout: No space left on device"
	run -4 bash -c 'dd-history get d-0000001 > /dev/full'
	assert_output "dd-history: stdout: No space left on device"
}

@test "disk full: exit 4, and what was committed stays readable" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to mount a tmpfs"
	mkdir small
	mount -t tmpfs -o size=1m tmpfs small 2>/dev/null || skip "cannot mount a tmpfs here"
	MNT=$BATS_TEST_TMPDIR/small
	gen_deliveries 3000 7 > in.ndjson
	run -4 dd-history --db small/h.db --batch 1000 < in.ndjson
	assert_output --partial "full"
	# The store is consistent: it opens, and answers.
	n=$(dd-history --db small/h.db stats | jq .deliveries)
	[ "$n" -lt 3000 ]
	umount "$MNT"
	MNT=
}

@test "a slow stream is durable within the flush interval; SIGTERM commits and exits 143" {
	mkfifo fifo
	dd-history --flush-interval 200ms < fifo 2> err &
	BG=$!
	# (fd 3 belongs to bats)
	exec 5> fifo
	gen_deliveries 2 >&5
	sleep 1.5
	run dd-history get d-0000001
	assert_success
	gen_deliveries 2 1793577600 60 e >&5
	sleep 0.3
	kill -TERM $BG
	code=0
	wait $BG || code=$?
	[ "$code" -eq 143 ]
	exec 5>&-
	BG=
	dd-history get e-0000002 > /dev/null
	grep -q "read 16, accepted 16" err
}

@test "kill -9 mid-ingest, then replaying the input restores the store exactly" {
	gen_deliveries 3000 7 > in.ndjson
	dd-history -q --db clean.db < in.ndjson
	dump --db clean.db > want
	for delay in 0.05 0.2; do
		rm -f h.db*
		(exec dd-history -q --db h.db --batch 500 < in.ndjson) &
		BG=$!
		sleep $delay
		kill -9 $BG 2>/dev/null || true
		wait $BG || true
		BG=
		# Whatever was committed is consistent; replay from the start.
		dd-history -q --db h.db < in.ndjson
		dump --db h.db > got
		cmp want got
	done
}

@test "no sanitizer report on a mixed stream" {
	{ gen_deliveries 50; echo '{"specversion":"1.0"}'; gen_deliveries 50 | tac; } > in.ndjson
	run -1 dd-history --batch 7 < in.ndjson
	refute_sanitizer
	run dd-history list --format table
	refute_sanitizer
	assert_success
}
