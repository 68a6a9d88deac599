#!/usr/bin/env bats
# Kafka in and out of the filters, against librdkafka's mock cluster on
# loopback (tests/kafka-mock.c, built as dd-kafka-mock), with Debian's
# kcat as the outside producer and consumer. Events are keyed by subject,
# as SPEC asks, so a partition holds whole deliveries and every consumer
# sees each delivery's events in order.

load common

setup() {
	command -v kcat > /dev/null || skip "kcat is not installed"
	T=$BATS_TEST_TMPDIR
	start_mock tel:4 status:2 out:3 one:1 requests:1 sched:1 fly:1 day:2
	dd-sim telemetry -n 3000 --seed 5 --days 2 > "$T/tel.ndjson"
	dd-track -q --retain 1000d --db "$T/direct.db" < "$T/tel.ndjson" > "$T/direct.out"
}

teardown() {
	if [ -n "${BG:-}" ]; then kill -KILL $BG 2> /dev/null || true; wait $BG 2> /dev/null || true; fi
	if [ -n "${MOCK:-}" ]; then kill "$MOCK" 2> /dev/null || true; wait "$MOCK" 2> /dev/null || true; fi
}

# start_mock TOPIC:PARTITIONS...: the cluster, its address in $K.
start_mock() {
	dd-kafka-mock -c "$T/ctl" -t 300 "$@" > "$T/addr" 2> "$T/mock.log" 3>&- &
	MOCK=$!
	local i
	for ((i = 0; i < 100; i++)); do
		[ -s "$T/addr" ] && break
		sleep 0.05
	done
	K=$(cat "$T/addr")
	[ -n "$K" ] || fail "the mock cluster did not start: $(cat "$T/mock.log")"
}

# mock CMD: "down 1" or "up 1", done when the helper removed the file.
mock() {
	echo "$1" > "$T/ctl"
	local i
	for ((i = 0; i < 100; i++)); do
		[ -e "$T/ctl" ] || return 0
		sleep 0.05
	done
	fail "the mock cluster did not take: $1"
}

# produce TOPIC < NDJSON: each line a message keyed by its subject.
produce() {
	sed -E 's/^.*"subject":"([^"]*)".*$/\1\t&/' | timeout 30 kcat -P -b "$K" -t "$1" -K $'\t'
}

# consume TOPIC: every message of the topic, one a line.
consume() {
	timeout 30 kcat -C -b "$K" -t "$1" -e -q -f '%s\n'
}

ids() { jq -r .id | sort; }

@test "dd-track --kafka: the store equals the direct pipe's, the offsets are in it, a rerun reads nothing" {
	produce tel < "$T/tel.ndjson"
	run dd-track --retain 1000d --db "$T/k.db" --kafka "$K" --topic tel --kafka-eof
	assert_success
	refute_sanitizer
	assert_line --partial "read 3000, accepted 3000"
	diff <(dd-track list --db "$T/direct.db") <(dd-track list --db "$T/k.db")
	diff <(dd-track stats --db "$T/direct.db") <(dd-track stats --db "$T/k.db")
	# The events written are the direct run's (per delivery in order;
	# deliveries interleave differently across partitions).
	diff <(ids < "$T/direct.out") <(grep '^{' <<< "$output" | ids)
	# The offsets sum to the events read, partition by partition.
	[ "$(sqlite3 "$T/k.db" "SELECT sum(next) FROM kafka_offsets WHERE topic = 'tel'")" -eq 3000 ]
	[ "$(sqlite3 "$T/k.db" "SELECT count(*) FROM kafka_offsets WHERE topic = 'tel'")" -eq 4 ]
	# Resumed from the store, not from the start.
	run dd-track --retain 1000d --db "$T/k.db" --kafka "$K" --topic tel --kafka-eof
	assert_success
	assert_output --partial "read 0, accepted 0"
	# A store of some partitions only reads those.
	run dd-track -q --retain 1000d --db "$T/p.db" --kafka "$K" --topic tel --partitions 1,3 --kafka-eof
	assert_success
	[ "$(sqlite3 "$T/p.db" "SELECT group_concat(part) FROM kafka_offsets")" = "1,3" ]
}

# killed PROGRAM ARGS...: run the consumer 22 times, each killed by
# SIGKILL at a random moment, then once to the end (--kafka-eof).
killed() {
	local i
	for ((i = 0; i < 22; i++)); do
		"$@" --batch 97 --kafka-eof > /dev/null 2>> "$T/kill.log" &
		BG=$!
		sleep "0.$((RANDOM % 25 + 2))"
		kill -KILL "$BG" 2> /dev/null || true
		wait "$BG" 2> /dev/null || true
		BG=
	done
	run "$@" --kafka-eof
	assert_success
	refute_sanitizer
}

@test "kafka: dd-track killed by SIGKILL 22 times while consuming ends as the direct pipe" {
	produce tel < "$T/tel.ndjson"
	killed dd-track -q --retain 1000d --db "$T/k.db" --kafka "$K" --topic tel
	diff <(dd-track list --db "$T/direct.db") <(dd-track list --db "$T/k.db")
	diff <(dd-track stats --db "$T/direct.db") <(dd-track stats --db "$T/k.db")
	[ "$(sqlite3 "$T/k.db" "SELECT sum(next) FROM kafka_offsets")" -eq 3000 ]
}

dump_history() {
	dd-history --db "$1" list
	dd-history --db "$1" stats
	sqlite3 "$1" "SELECT d.id, e.time_ms, e.eid, e.line FROM events e JOIN deliveries d USING (dkey) ORDER BY 1, 2, 3"
}

@test "kafka: dd-history killed by SIGKILL 22 times while consuming ends as the direct pipe" {
	dd-history -q --db "$T/direct-h.db" < "$T/direct.out"
	produce status < "$T/direct.out"
	killed dd-history -q --db "$T/k.db" --kafka "$K" --topic status
	diff <(dump_history "$T/direct-h.db") <(dump_history "$T/k.db")
	[ "$(sqlite3 "$T/k.db" "SELECT sum(next) FROM kafka_offsets")" -eq "$(wc -l < "$T/direct.out")" ]
}

@test "kafka: a bad message is bad input: its rejects record names topic, partition and offset" {
	{ echo 'not json'; head -5 "$T/tel.ndjson"; } | timeout 30 kcat -P -b "$K" -t one
	run dd-track --db "$T/k.db" --kafka "$K" --topic one --kafka-eof --rejects "$T/rj"
	[ "$status" -eq 1 ]
	assert_line --partial "kafka:one/0:0: invalid JSON"
	assert_line --partial "read 6, accepted 5, ignored 0, rejected 1"
	run jq -c '[.source, .topic, .partition, .offset, .raw]' "$T/rj"
	assert_output '["kafka","one",0,0,"not json"]'
	# The bad message is passed, as a bad line is: the next run reads nothing.
	run dd-track --db "$T/k.db" --kafka "$K" --topic one --kafka-eof --strict
	assert_success
	assert_output --partial "read 0"
}

@test "kafka: an unknown topic or no broker at start is one line and exit 4; bad usage exits 2" {
	run dd-track --db "$T/k.db" --kafka "$K" --topic nosuch --kafka-eof
	[ "$status" -eq 4 ]
	assert_output "dd-track: kafka: $K: no topic \"nosuch\""
	run dd-track --db "$T/k.db" --kafka "$K" --topic tel --partitions 7 --kafka-eof
	[ "$status" -eq 4 ]
	assert_output --partial "has no partition 7 (it has 4)"
	# A port nobody listens on: exit 4 once --kafka-timeout is over.
	local start=$SECONDS
	run dd-track --db "$T/k.db" --kafka 127.0.0.1:9 --topic tel --kafka-timeout 1s
	[ "$status" -eq 4 ]
	[ "${#lines[@]}" -eq 1 ]
	assert_output --partial "dd-track: kafka: 127.0.0.1:9: no broker answered within 1000 ms"
	[ $((SECONDS - start)) -le 5 ]
	local bad
	for bad in "--topic tel" "--kafka $K" "--kafka $K --topic tel --partitions 1 --group g" \
	    "--kafka $K --topic tel $T/tel.ndjson" "--kafka-out out" "--partitions x" \
	    "--partitions 1,1" "--kafka $K --topic tel --kafka-timeout 0s" "--kafka-out-brokers $K"; do
		run dd-track --db "$T/k.db" $bad
		[ "$status" -eq 2 ] || fail "$bad: exit $status: $output"
	done
	[ ! -e "$T/k.db-wal" ] || true
}

@test "kafka: a broker down for a few seconds mid-stream: said once, waited out, nothing lost, exit 0" {
	produce tel < "$T/tel.ndjson"
	# Small fetches and a commit every 5 events: still reading when the
	# broker goes down.
	DD_KAFKA_CONF="message.max.bytes=2048 fetch.max.bytes=2048 max.partition.fetch.bytes=2048 queued.max.messages.kbytes=8" \
		dd-track --retain 1000d --db "$T/k.db" --kafka "$K" --topic tel --kafka-eof --batch 5 \
		> /dev/null 2> "$T/err" &
	BG=$!
	local i
	for ((i = 0; i < 200; i++)); do
		[ "$(sqlite3 "$T/k.db" "SELECT count(*) FROM kafka_offsets" 2> /dev/null)" -gt 0 ] 2> /dev/null && break
		sleep 0.02
	done
	mock "down 1"
	sleep 3
	mock "up 1"
	local rc=0
	wait "$BG" || rc=$?
	BG=
	[ "$rc" -eq 0 ] || fail "exit $rc: $(cat "$T/err")"
	[ "$(grep -c 'all brokers down' "$T/err")" -eq 1 ] || fail "$(cat "$T/err")"
	grep -q 'brokers back' "$T/err"
	diff <(dd-track list --db "$T/direct.db") <(dd-track list --db "$T/k.db")
}

@test "dd-track --kafka-out: the events go to the topic, keyed by subject, instead of stdout" {
	run dd-track -q --retain 1000d --db "$T/k.db" --kafka-out out --kafka-out-brokers "$K" "$T/tel.ndjson"
	assert_success
	refute_sanitizer
	assert_output ""
	diff <(ids < "$T/direct.out") <(consume out | ids)
	# Keyed by subject: each delivery's events in one partition, in order.
	timeout 30 kcat -C -b "$K" -t out -e -q -f '%k %p\n' | sort -u > "$T/keys"
	[ "$(cut -d' ' -f1 "$T/keys" | uniq -d | wc -l)" -eq 0 ]
	[ "$(cut -d' ' -f2 "$T/keys" | sort -u | wc -l)" -eq 3 ]
	diff <(grep '"subject":"d-5-7"' "$T/direct.out") <(consume out | grep '"subject":"d-5-7"')
}

@test "kafka: topic to topic, dd-track killed by SIGKILL 22 times: every event it writes reaches the output topic" {
	produce tel < "$T/tel.ndjson"
	killed dd-track -q --retain 1000d --db "$T/k.db" --kafka "$K" --topic tel --kafka-out out
	diff <(dd-track list --db "$T/direct.db") <(dd-track list --db "$T/k.db")
	# Re-emitted rather than lost: every id once at least, none else.
	diff <(ids < "$T/direct.out" | uniq) <(consume out | ids | uniq)
}

# lake_ids LAKE: the id of every line of every part (duplicates kept).
lake_ids() {
	find "$1" -name 'part-*.ndjson.zst' -exec zstdcat {} + | jq -r .id | sort
}

@test "dd-lake-ingest --kafka: each part's metadata holds topic, partitions and offsets; a rerun resumes after the last part" {
	produce tel < "$T/tel.ndjson"
	run dd-lake-ingest -l "$T/lake" --kafka "$K" --topic tel --kafka-eof --batch 1000
	assert_success
	refute_sanitizer
	assert_output --partial "stored 3000"
	diff <(ids < "$T/tel.ndjson") <(lake_ids "$T/lake")
	# The ranges of the parts cover each partition's offsets.
	find "$T/lake" -name '_part-*.meta' -exec head -qn1 {} + |
		jq -s '[.[].kafka.ranges | to_entries[] | .value[1]] | max' > "$T/max"
	[ "$(cat "$T/max")" -ge 700 ]
	find "$T/lake" -name '_part-*.meta' -exec head -qn1 {} + |
		jq -e -s 'all(.[]; .kafka.topic == "tel" and (.kafka.epoch | length) > 0)'
	run dd-lake-ingest -l "$T/lake" --kafka "$K" --topic tel --kafka-eof
	assert_success
	assert_output --partial "read 0"
	# More messages later: only those are read.
	head -10 "$T/tel.ndjson" | sed 's/"id":"/"id":"again-/' | produce tel
	run dd-lake-ingest -l "$T/lake" --kafka "$K" --topic tel --kafka-eof
	assert_success
	assert_output --partial "read 10, accepted 10"
}

@test "kafka: dd-lake-ingest killed by SIGKILL 22 times while consuming: the lake holds every event, once after compaction" {
	produce tel < "$T/tel.ndjson"
	killed dd-lake-ingest -q -l "$T/lake" --kafka "$K" --topic tel
	diff <(ids < "$T/tel.ndjson") <(lake_ids "$T/lake" | uniq)
	# Readers see each event once already; compaction makes it so on disk.
	run dd-lake-query -l "$T/lake" --count
	assert_success
	assert_output 3000
	dd-archive -q -l "$T/lake" --db "$T/none.db" --compact > /dev/null
	diff <(ids < "$T/tel.ndjson") <(lake_ids "$T/lake")
	# The merged parts carry the positions: nothing is read again.
	run dd-lake-ingest -l "$T/lake" --kafka "$K" --topic tel --kafka-eof
	assert_success
	assert_output --partial "read 0,"
}

@test "kafka: two dd-lake-ingest in one group on a 4-partition topic, one killed mid-way: every event, once after compaction" {
	produce tel < "$T/tel.ndjson"
	# Slow enough to be killed mid-way; a member gone is noticed in 3 s.
	export DD_KAFKA_CONF="message.max.bytes=2048 fetch.max.bytes=2048 max.partition.fetch.bytes=2048 queued.max.messages.kbytes=8 session.timeout.ms=3000 heartbeat.interval.ms=300"
	dd-lake-ingest -q -l "$T/lake" --kafka "$K" --topic tel --group g --kafka-eof --batch 10 \
		2> "$T/b.err" &
	local b=$!
	BG="$b"
	sleep 0.5
	dd-lake-ingest -q -l "$T/lake" --kafka "$K" --topic tel --group g --kafka-eof --batch 10 \
		2> "$T/a.err" &
	local a=$!
	BG="$b $a"
	sleep 1.5
	kill -KILL "$a" 2> /dev/null || true
	wait "$a" 2> /dev/null || true
	local rc=0
	wait "$b" || rc=$?
	BG=
	[ "$rc" -eq 0 ] || fail "exit $rc: $(cat "$T/b.err")"
	# Whatever the survivor did not take over, a restart of the member
	# killed finishes, resuming from the parts.
	run dd-lake-ingest -q -l "$T/lake" --kafka "$K" --topic tel --group g --kafka-eof
	assert_success
	diff <(ids < "$T/tel.ndjson") <(lake_ids "$T/lake" | uniq)
	dd-archive -q -l "$T/lake" --db "$T/none.db" --compact > /dev/null
	diff <(ids < "$T/tel.ndjson") <(lake_ids "$T/lake")
	# The merged parts carry the positions: nothing is read again.
	run dd-lake-ingest -l "$T/lake" --kafka "$K" --topic tel --kafka-eof
	assert_success
	assert_output --partial "read 0,"
}

@test "dd-lake-ingest --kafka: an epoch cut short (one of its parts never made visible) is read again, not skipped" {
	produce tel < "$T/tel.ndjson"
	run dd-lake-ingest -q -l "$T/lake" --kafka "$K" --topic tel --kafka-eof --batch 1000
	assert_success
	# The last epoch's parts, newest commit first; drop one of them, as a
	# crash between its renames would have.
	local last meta
	last=$(find "$T/lake" -name '_part-*.meta' -exec head -qn1 {} + |
		jq -rs 'map(select(.kafka.parts > 1)) | max_by(.kafka.through | add) | .kafka.epoch')
	[ -n "$last" ] && [ "$last" != null ]
	meta=$(grep -l "\"epoch\":\"$last\"" $(find "$T/lake" -name '_part-*.meta') | head -1)
	local part=${meta%/*}/${meta##*/_}
	part=${part%.meta}.ndjson.zst
	[ -f "$part" ]
	local lost
	lost=$(zstdcat "$part" | wc -l)
	rm "$meta" "$part"
	[ "$(lake_ids "$T/lake" | wc -l)" -eq $((3000 - lost)) ]
	run dd-lake-ingest -l "$T/lake" --kafka "$K" --topic tel --kafka-eof
	assert_success
	diff <(ids < "$T/tel.ndjson") <(lake_ids "$T/lake" | uniq)
}

# once NAME CMD...: a stage through topics, killed by SIGKILL once at a
# random moment, then run to the end of its input; exit 0 or 1 (bad
# input reported) is success.
once() {
	local name=$1; shift
	"$@" --batch 23 > /dev/null 2>> "$T/$name.log" &
	BG=$!
	sleep "0.$((RANDOM % 30 + 5))"
	kill -KILL "$BG" 2> /dev/null || true
	wait "$BG" 2> /dev/null || true
	BG=
	local rc=0
	"$@" --kafka-eof 2>> "$T/$name.log" || rc=$?
	[ "$rc" -le 1 ] || fail "$name exited $rc: $(tail -5 "$T/$name.log")"
}

@test "kafka: the day chained through topics, each stage killed once: every store equals the streamed run's, reconcile holds" {
	local S=$T/streamed H=$T/kafka F=$DD_ROOT/data/fleet.csv
	DD_HOME=$S "$DD_ROOT/scripts/pipeline" -n 150 --seed 7 --fleet "$F" day
	mkdir -p "$H/work"
	cp "$S/work/requests.ndjson" "$H/work/"
	: > "$H/work/rejects.ndjson"
	timeout 30 kcat -P -b "$K" -t requests < "$H/work/requests.ndjson"
	export DD_HOME=$H
	# The scheduler, dd-sim fly and dd-track keep a clock (dd-track's
	# retention is in stream time), so what they read comes in one
	# partition, in the streamed run's order; the statuses, keyed by
	# delivery, in two.
	once schedule dd-schedule -q --fleet "$F" --rejects "$H/work/rejects.ndjson" \
		--kafka "$K" --topic requests --kafka-out sched
	once package dd-package -q --kafka "$K" --topic sched
	# dd-sim fly has no store: killed once, what it wrote is sent, and
	# its rerun (the same output: same seed, same input) sends the rest.
	consume sched > "$T/sched"
	local fly=(dd-sim fly -q --seed 7 --fail 0.04 --dup 0 --reorder 0)
	"${fly[@]}" < "$T/sched" > "$T/fly.part" &
	BG=$!
	sleep "0.0$((RANDOM % 9 + 1))"
	kill -KILL "$BG" 2> /dev/null || true
	wait "$BG" 2> /dev/null || true
	BG=
	sed -i '$ { /}$/!d }' "$T/fly.part"
	produce fly < "$T/fly.part"
	"${fly[@]}" < "$T/sched" | tail -n +$(($(wc -l < "$T/fly.part") + 1)) | produce fly
	once track dd-track -q --kafka "$K" --topic fly --kafka-out day
	once history dd-history -q --kafka "$K" --topic day
	once lake dd-lake-ingest -q --kafka "$K" --topic day
	# Each store holds the offsets of everything it read.
	local db topic
	for db in schedule:requests package:sched track:fly history:day; do
		topic=${db#*:}
		[ "$(sqlite3 "$H/${db%%:*}.db" "SELECT sum(next) FROM kafka_offsets WHERE topic = '$topic'")" \
			-eq "$(consume "$topic" | wc -l)" ] || fail "${db%%:*}.db: offsets of $topic"
	done
	"$DD_ROOT/tests/pipeline/snapshot" "$S" "$T/snap.s"
	"$DD_ROOT/tests/pipeline/snapshot" "$H" "$T/snap.k"
	rm -f "$T"/snap.*/lake.copies
	run diff -r "$T/snap.s" "$T/snap.k"
	assert_success
	run "$DD_ROOT/scripts/reconcile" --home "$H" --requests "$H/work/requests.ndjson" \
		--rejects "$H/work/rejects.ndjson"
	assert_success
	refute_output --partial FAIL
}
