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
	start_mock tel:4 status:2 out:3 one:1 requests:1 sched:1 fly:3 day:2 ta:2 tb:3 fsched:2 ffly:3
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
	# Up to 30 s: on a loaded machine a cluster of 12 topics takes seconds.
	local i
	for ((i = 0; i < 600; i++)); do
		[ -s "$T/addr" ] && break
		kill -0 "$MOCK" 2> /dev/null || break
		sleep 0.05
	done
	K=$(cat "$T/addr")
	[ -n "$K" ] || fail "the mock cluster did not start: $(cat "$T/mock.log")"
}

# mock CMD: "down 1", "up 1" or "rtt 1 MS", done when the helper removed
# the file.
mock() {
	echo "$1" > "$T/ctl"
	local i
	for ((i = 0; i < 600; i++)); do
		[ -e "$T/ctl" ] || return 0
		sleep 0.05
	done
	fail "the mock cluster did not take: $1"
}

# produce TOPIC [KCAT-OPTION...] < NDJSON: each line a message keyed by
# its subject.
produce() {
	local t=$1
	shift
	perl -ne 'print /"subject":"([^"]*)"/ ? "$1\t$_" : "\t$_"' |
		timeout 30 kcat -P -b "$K" -t "$t" -K $'\t' "$@"
}

# consume TOPIC: every message of the topic, one a line.
consume() {
	timeout 30 kcat -C -b "$K" -t "$1" -e -q -f '%s\n'
}

ids() { jq -r .id | sort; }

# ends TOPIC: the sum of its partitions' end offsets.
ends() {
	timeout 30 kcat -C -b "$K" -t "$1" -e -q -f '%p %o\n' |
		awk '{ if ($2 + 1 > m[$1]) m[$1] = $2 + 1 } END { for (p in m) s += m[p]; print s + 0 }'
}

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

@test "kafka: dd-track applies what several partitions hold in one event-time order, as the direct pipe does" {
	# The default retention (1h of stream time) over two days: a stream
	# time that ran ahead on one partition would make the others late.
	dd-track --db "$T/d1h.db" < "$T/tel.ndjson" > "$T/d1h.out" 2> "$T/d1h.err"
	grep -q 'removed [1-9]' "$T/d1h.err"
	produce tel < "$T/tel.ndjson"
	# Fetches of one partition at a time, in small pieces: the messages
	# come partition after partition, far from event-time order.
	DD_KAFKA_CONF="message.max.bytes=4096 fetch.max.bytes=4096 max.partition.fetch.bytes=4096" \
		run dd-track --db "$T/k.db" --kafka "$K" --topic tel --kafka-eof
	assert_success
	refute_sanitizer
	# The same summary (late, removed, live...), store and output.
	assert_line "$(cat "$T/d1h.err")"
	diff <(dd-track list --db "$T/d1h.db") <(dd-track list --db "$T/k.db")
	diff <(dd-track stats --db "$T/d1h.db") <(dd-track stats --db "$T/k.db")
	diff <(ids < "$T/d1h.out") <(grep '^{' <<< "$output" | ids)
	# The events read come out in event-time order.
	grep '^{' <<< "$output" | jq -r 'select(.type != "delivery.status") | .time' | sort -c
}

@test "kafka: --topic takes a list of topics or a pattern; the store keeps each topic's offsets" {
	local even='"subject":"d-[0-9]*-[0-9]*[02468]"'
	grep "$even" "$T/tel.ndjson" | produce ta
	grep -v "$even" "$T/tel.ndjson" | produce tb
	run dd-track -q --retain 1000d --db "$T/k.db" --kafka "$K" --topic ta,tb --kafka-eof
	assert_success
	refute_sanitizer
	diff <(dd-track list --db "$T/direct.db") <(dd-track list --db "$T/k.db")
	diff <(dd-track stats --db "$T/direct.db") <(dd-track stats --db "$T/k.db")
	run sqlite3 "$T/k.db" "SELECT topic, count(*), sum(next) FROM kafka_offsets GROUP BY 1 ORDER BY 1"
	assert_output "ta|2|$(grep -c "$even" "$T/tel.ndjson")
tb|3|$(grep -vc "$even" "$T/tel.ndjson")"
	# A pattern: the topics it matches, here the same two.
	run dd-track -q --retain 1000d --db "$T/p.db" --kafka "$K" --topic '^t[ab]$' --kafka-eof
	assert_success
	diff <(dd-track list --db "$T/direct.db") <(dd-track list --db "$T/p.db")
	# Resumed per topic: nothing is read again.
	run dd-track --retain 1000d --db "$T/p.db" --kafka "$K" --topic ta,tb --kafka-eof
	assert_success
	assert_output --partial "read 0,"
	# A pattern that matches nothing is an unknown topic: exit 4.
	run dd-track --db "$T/x.db" --kafka "$K" --topic '^nosuch' --kafka-eof
	[ "$status" -eq 4 ]
	assert_output "dd-track: kafka: $K: no topic matches \"^nosuch\""
	run dd-track --db "$T/x.db" --kafka "$K" --topic ta,nosuch --kafka-eof
	[ "$status" -eq 4 ]
	assert_output "dd-track: kafka: $K: no topic \"nosuch\""
	# Not a list, not a pattern: usage.
	local bad
	for bad in "ta,,tb" "ta," "t a" "^(" ""; do
		run dd-track --db "$T/x.db" --kafka "$K" --topic "$bad" --kafka-eof
		[ "$status" -eq 2 ] || fail "--topic '$bad': exit $status: $output"
	done
	# The lake's parts record one topic's offsets: one ingest a topic.
	run dd-lake-ingest -l "$T/lake" --kafka "$K" --topic ta,tb --kafka-eof
	[ "$status" -eq 2 ]
	assert_output --partial "one dd-lake-ingest a topic"
}

# progress: how far the consumer under test got: the sum of the store's
# offsets (KDB), or the parts in the lake (KLAKE).
progress() {
	if [ -n "${KDB:-}" ]; then
		sqlite3 "$KDB" "SELECT coalesce(sum(next), 0) FROM kafka_offsets" 2> /dev/null || echo 0
	elif [ -n "${KLAKE:-}" ]; then
		find "$KLAKE" -name 'part-*.ndjson.zst' 2> /dev/null | wc -l
	else
		echo 0
	fi
}

# killed PROGRAM ARGS...: run the consumer 22 times, each killed by
# SIGKILL, then once to the end (--kafka-eof). Every other kill comes at a
# random moment (20 to 260 ms: starting, connecting, reading), the others
# 0 to 50 ms after the run made something durable (progress), so they
# come while consuming; the killed runs fetch in small pieces, so that a
# run is still reading then, however fast or loaded the machine. With KDB
# and KN (the events of the topic), some kill must have left the store
# part of the way.
killed() {
	local i j got before mid=0
	local slow="message.max.bytes=2048 fetch.max.bytes=2048 max.partition.fetch.bytes=2048 queued.max.messages.kbytes=8"
	for ((i = 0; i < 22; i++)); do
		before=$(progress)
		DD_KAFKA_CONF="$slow" "$@" --batch 97 --kafka-eof > /dev/null 2>> "$T/kill.log" &
		BG=$!
		if ((i % 2)); then
			for ((j = 0; j < 300; j++)); do
				[ "$(progress)" != "$before" ] && break
				kill -0 "$BG" 2> /dev/null || break
				sleep 0.01
			done
			sleep "$(printf '0.%03d' $((RANDOM % 50)))"
		else
			# printf: "0.$((2))" would be 0.2 s, not 0.02.
			sleep "$(printf '0.%02d' $((RANDOM % 25 + 2)))"
		fi
		kill -KILL "$BG" 2> /dev/null || true
		wait "$BG" 2> /dev/null || true
		BG=
		if [ -n "${KN:-}" ]; then
			got=$(progress)
			[ "$got" -gt 0 ] && [ "$got" -lt "$KN" ] && mid=$((mid + 1))
		fi
	done
	[ -z "${KN:-}" ] || [ "$mid" -gt 0 ] || fail "no kill came while consuming"
	run "$@" --kafka-eof
	assert_success
	refute_sanitizer
}

@test "kafka: dd-track killed by SIGKILL 22 times while consuming ends as the direct pipe" {
	produce tel < "$T/tel.ndjson"
	KDB=$T/k.db KN=3000 killed dd-track -q --retain 1000d --db "$T/k.db" --kafka "$K" --topic tel
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
	KDB=$T/k.db KN=$(wc -l < "$T/direct.out") killed dd-history -q --db "$T/k.db" --kafka "$K" --topic status
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
	# A third of the events: reading them throttled takes a few seconds.
	head -1000 "$T/tel.ndjson" > "$T/tel1k"
	rm -f "$T"/direct.db*
	dd-track -q --retain 1000d --db "$T/direct.db" < "$T/tel1k" > /dev/null
	# Batches of 2 messages (the mock answers a fetch with one batch a
	# partition) and every answer 25 ms late: reading takes 3 s at least,
	# however fast the run, so it is still reading when the broker goes
	# down, even if the mock is slow to take the command on a loaded
	# machine (it once read everything first, and never saw the broker
	# down). A commit every 5 events shows progress.
	# Reconnecting backs off 200 ms at most (10 s by default), so the end
	# comes soon after the broker is back.
	produce tel -X batch.num.messages=2 < "$T/tel1k"
	mock "rtt 1 25"
	DD_KAFKA_CONF="message.max.bytes=2048 fetch.max.bytes=2048 max.partition.fetch.bytes=2048 queued.max.messages.kbytes=8 reconnect.backoff.max.ms=200" \
		dd-track --retain 1000d --db "$T/k.db" --kafka "$K" --topic tel --kafka-eof --batch 5 \
		> /dev/null 2> "$T/err" &
	BG=$!
	local i read=0
	for ((i = 0; i < 400; i++)); do
		read=$(sqlite3 "$T/k.db" "SELECT sum(next) FROM kafka_offsets" 2> /dev/null) || read=0
		[ "${read:-0}" -gt 0 ] && break
		sleep 0.01
	done
	mock "down 1"
	# Down mid-stream: not everything was read yet.
	[ "${read:-0}" -gt 0 ] && [ "$read" -lt 1000 ] || fail "read $read of 1000 before the broker went down"
	sleep 2
	# The client notices the broker gone by its own timing (once, on a
	# quiet machine, not within those 2 s): up again only once the run
	# has said so, 8 s more at most; the check below still wants it said.
	for ((i = 0; i < 800; i++)); do
		grep -q 'all brokers down' "$T/err" && break
		sleep 0.01
	done
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
	KDB=$T/k.db KN=3000 killed dd-track -q --retain 1000d --db "$T/k.db" --kafka "$K" --topic tel --kafka-out out
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
	KLAKE=$T/lake killed dd-lake-ingest -q -l "$T/lake" --kafka "$K" --topic tel
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
	# A member gone is noticed in 3 s, and a rebalance waits for no
	# member longer than 6 s (the default is 5 minutes).
	local group="session.timeout.ms=3000 heartbeat.interval.ms=300 max.poll.interval.ms=6000"
	# The two members slow enough to be killed mid-way.
	local slow="message.max.bytes=2048 fetch.max.bytes=2048 max.partition.fetch.bytes=2048 queued.max.messages.kbytes=8"
	DD_KAFKA_CONF="$slow $group" \
		dd-lake-ingest -q -l "$T/lake" --kafka "$K" --topic tel --group g --kafka-eof --batch 10 \
		2> "$T/b.err" &
	local b=$!
	BG="$b"
	sleep 0.5
	DD_KAFKA_CONF="$slow $group" \
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
	DD_KAFKA_CONF="$group" \
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

@test "kafka: dd-sim fly --kafka killed by SIGKILL 12 times: every event of a direct run reaches the output topic, none else" {
	# The day's schedule, keyed by delivery, over two partitions.
	dd-sim requests -n 120 --seed 7 --start 2026-11-20T08:00:00Z |
		dd-schedule -q --fleet "$DD_ROOT/data/fleet.csv" --db "$T/s.db" > "$T/sched.ndjson"
	local fly=(dd-sim fly -q --seed 7 --fail 0.04)
	"${fly[@]}" < "$T/sched.ndjson" > "$T/fly.direct"
	produce fsched < "$T/sched.ndjson"
	# Small fetches, a send every 5 lines: killed while flying. Its place
	# is the group's offsets, kept at the start of the earliest flight
	# still in the air, so a restart flies that again (same ids).
	local i
	for ((i = 0; i < 12; i++)); do
		DD_KAFKA_CONF="message.max.bytes=2048 fetch.max.bytes=2048 max.partition.fetch.bytes=2048 queued.max.messages.kbytes=8" \
			"${fly[@]}" --kafka "$K" --topic fsched --kafka-out ffly --kafka-eof --batch 5 \
			2>> "$T/fly.log" &
		BG=$!
		sleep "$(printf '0.%02d' $((RANDOM % 30 + 10)))"
		kill -KILL "$BG" 2> /dev/null || true
		wait "$BG" 2> /dev/null || true
		BG=
	done
	local part
	part=$(consume ffly | wc -l)
	[ "$part" -lt "$(wc -l < "$T/fly.direct")" ] || fail "the kills came after the end ($part lines)"
	run "${fly[@]}" --kafka "$K" --topic fsched --kafka-out ffly --kafka-eof
	assert_success
	refute_sanitizer
	# Re-emitted rather than lost: every id at least once, none else,
	# each the same bytes as the direct run's.
	diff <(ids < "$T/fly.direct" | uniq) <(consume ffly | ids | uniq)
	diff <(sort -u "$T/fly.direct") <(consume ffly | sort -u)
	# Without --kafka-out the output is stdout, as from a file; the place
	# is kept all the same: nothing is read again.
	run dd-sim fly --seed 7 --kafka "$K" --topic fsched --kafka-eof
	assert_success
	assert_output --partial "read 0,"
}

# once NAME CMD...: a stage through topics, killed by SIGKILL once at a
# random moment, then run to the end of its input; exit 0 or 1 (bad
# input reported) is success.
once() {
	local name=$1; shift
	"$@" --batch 23 > /dev/null 2>> "$T/$name.log" &
	BG=$!
	sleep "$(printf '0.%02d' $((RANDOM % 30 + 5)))"
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
	# The scheduler keeps a clock, so the requests come in one partition,
	# in the streamed run's order; dd-sim fly and dd-track keep one too,
	# over all their partitions (the global clock): the telemetry, keyed
	# by delivery, comes in three, the statuses in two.
	once schedule dd-schedule -q --fleet "$F" --rejects "$H/work/rejects.ndjson" \
		--kafka "$K" --topic requests --kafka-out sched
	once package dd-package -q --kafka "$K" --topic sched
	# dd-sim fly has no store: its place is its group's offsets, held at
	# the earliest flight still in the air, so its restart flies again
	# what a kill cut short.
	once fly dd-sim fly -q --seed 7 --fail 0.04 --dup 0 --reorder 0 \
		--kafka "$K" --topic sched --kafka-out fly
	once track dd-track -q --kafka "$K" --topic fly --kafka-out day
	once history dd-history -q --kafka "$K" --topic day
	once lake dd-lake-ingest -q --kafka "$K" --topic day
	# Each store holds the offsets of everything it read.
	local db topic got
	for db in schedule:requests package:sched track:fly history:day; do
		topic=${db#*:}
		got=$(sqlite3 "$H/${db%%:*}.db" "SELECT sum(next) FROM kafka_offsets WHERE topic = '$topic'")
		[ "$got" -eq "$(ends "$topic")" ] ||
			fail "${db%%:*}.db: offsets of $topic: $got, not $(ends "$topic")"
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
