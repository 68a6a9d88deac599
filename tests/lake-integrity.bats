#!/usr/bin/env bats
# The lake stays true (issue 12): identity by full ids, not hashes;
# strings with lone surrogate escapes refused; odd files in a partition
# skipped; compaction exclusive by the lake's own lock, once per
# partition, in time order; part names in write order.

load common
bats_require_minimum_version 1.5.0

setup() {
	cd "$BATS_TEST_TMPDIR"
	LAKE="$BATS_TEST_TMPDIR/lake"
	DS="$LAKE/events"
	D1="$DS/year=2026/month=11/day=26"
}

ev() {	# ev ID TIME [TYPE] [SUBJECT] [N]
	printf '{"specversion":"1.0","id":"%s","source":"/t","type":"%s","time":"%s","subject":"%s","data":{"n":%d}}\n' \
		"$1" "${3:-x.t}" "$2" "${4:-s-1}" "${5:-0}"
}

@test "surrogates: a lone surrogate escape is refused by every consumer, its reason said" {
	{
		ev 'a\ud800' 2026-11-26T01:00:00Z
		ev 'a\udbff' 2026-11-26T01:00:01Z
		ev 'a\ufffd' 2026-11-26T01:00:02Z
		ev 'a\udc00x' 2026-11-26T01:00:03Z
		ev 'a\ud83d\ude00' 2026-11-26T01:00:04Z
	} > in.ndjson
	run dd-lake-ingest -q -l "$LAKE" in.ndjson
	assert_failure 1
	assert_line --partial 'in.ndjson:1: invalid JSON at byte 29: unpaired surrogate in \u escape'
	assert_line --partial 'in.ndjson:2: '
	assert_line --partial 'in.ndjson:4: '
	refute_line --partial 'in.ndjson:3'
	refute_line --partial 'in.ndjson:5'
	# What is stored reads back with jq and dd-lake-query -e alike.
	run bash -c "zstdcat '$D1'/part-*.ndjson.zst | jq -r .id"
	assert_success
	assert_output "$(printf 'a\xef\xbf\xbd\na\xf0\x9f\x98\x80')"
	run dd-lake-query -l "$LAKE" -e .id
	assert_success
	assert_output "$(printf '"a\xef\xbf\xbd"\n"a\xf0\x9f\x98\x80"')"
	# The services' consumers refuse the same lines.
	for prog in dd-track dd-history dd-package; do
		run "$prog" --db "$BATS_TEST_TMPDIR/$prog.db" -q in.ndjson
		assert_failure 1
		assert_line --partial 'in.ndjson:1: invalid JSON at byte 29: unpaired surrogate'
	done
}

# N events of day DAY with ids PREFIX-i, times spread over the day.
many() {
	python3 - "$@" <<-'PY'
	import sys
	n, day, prefix = int(sys.argv[1]), sys.argv[2], sys.argv[3]
	for i in range(n):
	    s = i * 86400 // n
	    print('{"specversion":"1.0","id":"%s-%d","source":"/t","type":"x.t","time":"%sT%02d:%02d:%02d.%03dZ","subject":"s-%d","data":{"pad":"%s"}}'
	          % (prefix, i, day, s // 3600, s // 60 % 60, s % 60, i % 1000, i % 50, "p" * 100))
	PY
}

# The ids the lake holds, one a line, as stored (every part read).
lake_ids() { dd-lake-query -l "$LAKE" --no-dedupe -e .id | jq -r .; }

# KIND parts of N events each in one partition (separate ingest runs).
parts_of() {
	for k in $(seq "$1"); do
		many "$2" 2026-11-26 "p$k" | dd-lake-ingest -q -l "$LAKE"
	done
}

@test "compaction lock: in the lake, whatever --db; the second run exits 5 and changes nothing" {
	parts_of 3 200
	before=$(ls "$D1" | sort)
	# This shell holds the lake's lock, as a running compaction would.
	exec 7> "$DS/_compact.lock"
	flock 7
	run -5 dd-archive --db "$BATS_TEST_TMPDIR/other.db" -l "$LAKE" --compact
	assert_output --partial "_compact.lock: another compaction of this dataset holds the lock"
	[ "$(ls "$D1" | sort)" = "$before" ]
	run -5 dd-lakecheck compact "$LAKE" events 2026-11-26
	exec 7>&-
	run dd-archive --db "$BATS_TEST_TMPDIR/other.db" -l "$LAKE" --compact
	assert_success
	[ "$(ls "$D1" | grep -c '^part-')" -eq 1 ]
	# Readers never took the lock file for a partition or a part.
	run dd-lake-query -l "$LAKE" --count
	assert_output 600
}

@test "concurrency: two compactions at once with different stores keep every id once" {
	parts_of 5 3000
	many 3000 2026-11-26 p1 | dd-lake-ingest -q -l "$LAKE"	# duplicates of p1
	dd-archive -q --db a.db -l "$LAKE" --compact > a.json 2> a.err & A=$!
	dd-archive -q --db b.db -l "$LAKE" --compact > b.json 2> b.err & B=$!
	ra=0 rb=0
	wait $A || ra=$?
	wait $B || rb=$?
	# Each either compacted or found the other at it (exit 5).
	[[ $ra -eq 0 || $ra -eq 5 ]] || fail "first: $ra $(cat a.err)"
	[[ $rb -eq 0 || $rb -eq 5 ]] || fail "second: $rb $(cat b.err)"
	lake_ids | sort > ids
	[ -z "$(uniq -d ids)" ] || fail "ids stored twice: $(uniq -d ids | wc -l)"
	[ "$(wc -l < ids)" -eq 15000 ]
}

# Two ids with one dd_hash64, proved by the library's own hash.
collide() {
	read -r IDA IDB < <("$DD_ROOT/tests/hash-collide" "${1:-1}")
	[ "$IDA" != "$IDB" ]
	[ "$(printf '%s\n%s\n' "$IDA" "$IDB" | dd-libcheck hash | sort -u | wc -l)" -eq 1 ] ||
		fail "the ids $IDA $IDB do not collide"
}

@test "identity: ids with one hash are two events to the writer and to compaction" {
	collide 1
	{ ev "$IDA" 2026-11-26T01:00:00Z; ev "$IDB" 2026-11-26T01:00:00Z; ev "$IDA" 2026-11-26T01:00:00Z; } > in.ndjson
	run dd-lake-ingest -l "$LAKE" in.ndjson
	assert_success
	assert_output --partial "stored 2, duplicates 1"
	# A second part with the other order, then compaction: both kept, once.
	{ ev "$IDB" 2026-11-26T01:00:00Z; ev "$IDA" 2026-11-26T01:00:00Z; } | dd-lake-ingest -q -l "$LAKE"
	run dd-lakecheck compact "$LAKE" events 2026-11-26
	assert_output "parts 2 -> 1, events 4 -> 2, duplicates 2, conflicts 0"
	run bash -c "dd-lake-query -l '$LAKE' --no-dedupe -e .id | jq -r . | sort"
	assert_output "$(printf '%s\n%s\n' "$IDA" "$IDB" | sort)"
	# Readers de-duplicate by the whole id too.
	{ ev "$IDB" 2026-11-26T01:00:00Z; } | dd-lake-ingest -q -l "$LAKE"
	run dd-lake-query -l "$LAKE" --count
	assert_output 2
}

@test "crafted ids: ids aimed at one slot of the unkeyed hash spread over the table; slots are keyed per process" {
	# 2000 ids whose dd_hash64 agree in the low 12 bits: by that hash
	# alone every one would start its probe at one slot (a run of 2000).
	run -0 dd-lakecheck probes 2000 12
	read -r _ idl _ hsl <<<"$output"
	[ "$idl" -lt 64 ] && [ "$hsl" -lt 64 ] || fail "longest probe runs: $output"
	# The key is drawn per process: the same id goes elsewhere next time.
	[ "$(dd-lakecheck slot some-id)" != "$(dd-lakecheck slot some-id)" ]
}

@test "identity: dd-track keeps an event whose id has the hash of one it applied" {
	collide 2
	sch='{"deliveryId":"d-1","requestId":"r-1","ownerId":"o-1","pickup":{"lat":47.6,"lon":-122.33,"alt":0},"dropoff":{"lat":47.62,"lon":-122.33,"alt":0},"pickupTime":"2026-11-26T10:00:00Z","deadline":"2026-11-26T12:00:00Z","expedited":false,"confirmationRequired":"None","package":{"packageId":"p-1","size":"small","weightKg":1},"droneId":"D-1","pickupEta":"2026-11-26T10:00:00.000Z","dropoffEta":"2026-11-26T10:30:00.000Z"}'
	tel() { printf '{"specversion":"1.0","id":"%s","source":"/drones/D-1","type":"%s","time":"%s","subject":"d-1","data":{"droneId":"D-1","location":{"lat":47.6,"lon":-122.33,"alt":100}}}\n' "$@"; }
	printf '{"specversion":"1.0","id":"%s","source":"/dd-schedule","type":"delivery.scheduled","time":"2026-11-26T09:00:00Z","subject":"d-1","data":%s}\n' "$IDA" "$sch" > a.ndjson
	tel "x-1" drone.dispatched 2026-11-26T10:00:00Z >> a.ndjson
	tel "$IDB" drone.picked-up 2026-11-26T10:02:00Z > b.ndjson
	# The colliding id in the same run, and in a later run (the memory of
	# applied ids goes through the store).
	for split in one two; do
		rm -f "$BATS_TEST_TMPDIR/t.db"*
		if [ $split = one ]; then
			cat a.ndjson b.ndjson | dd-track -q --db t.db > /dev/null
		else
			dd-track -q --db t.db < a.ndjson > /dev/null
			dd-track -q --db t.db < b.ndjson > /dev/null
		fi
		run dd-track get --db t.db d-1
		assert_success
		[ "$(jq -r .stage <<<"$output")" = headed-to-dropoff ] || fail "$split run(s): $output"
		# A true duplicate is still dropped.
		run dd-track --db t.db b.ndjson
		assert_output --partial "duplicates 1"
	done
}

@test "once per partition: one id at two times is kept once, the first; other bytes are a conflict" {
	ev e-1 2026-11-26T05:00:00Z x.t s-1 1 | dd-lake-ingest -q -l "$LAKE"
	# The same id later that day with other bytes, then an exact copy of
	# the first, then another event.
	ev e-1 2026-11-26T07:00:00Z x.t s-1 2 | dd-lake-ingest -q -l "$LAKE"
	{ ev e-1 2026-11-26T05:00:00Z x.t s-1 1; ev e-2 2026-11-26T06:00:00Z; } | dd-lake-ingest -q -l "$LAKE"
	# Within one run too, the writer keeps an id once per part.
	run dd-lake-ingest -l "$LAKE" < <(ev e-3 2026-11-26T01:00:00Z; ev e-3 2026-11-26T02:00:00Z)
	assert_output --partial "stored 1, duplicates 1"
	run --separate-stderr dd-archive -q --db none.db -l "$LAKE" --verify
	assert_success
	[ "$(jq .conflictsFound <<<"$output")" -eq 1 ]
	[[ "$stderr" == *"conflict: $D1/part-"*':1: id "e-1" has an earlier copy with other bytes'* ]] ||
		fail "$stderr"
	run dd-lakecheck compact "$LAKE" events 2026-11-26
	assert_output "parts 4 -> 1, events 5 -> 3, duplicates 1, conflicts 1"
	run bash -c "dd-lake-query -l '$LAKE' --no-dedupe -e '[.id, .time, .data.n] | @tsv' | jq -r . | sort"
	assert_output "$(printf 'e-1\t2026-11-26T05:00:00Z\t1\ne-2\t2026-11-26T06:00:00Z\t0\ne-3\t2026-11-26T01:00:00Z\t0')"
	run dd-archive --db none.db -l "$LAKE" --verify -q
	refute_output --partial conflict:
	[ "$(jq .conflictsFound <<<"$output")" -eq 0 ]
}

@test "odd files: a FIFO, a directory or a socket named like a part is told by path and skipped" {
	ev e-1 2026-11-26T01:00:00Z | dd-lake-ingest -q -l "$LAKE"
	ev e-2 2026-11-26T02:00:00Z | dd-lake-ingest -q -l "$LAKE"
	mkfifo "$D1/part-fifo.ndjson.zst" "$D1/_part-fifo2.meta"
	mkdir "$D1/part-dir.ndjson.zst"
	python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$D1/part-sock.ndjson.zst"
	# A FIFO in place of one part's metadata: that part is scanned in full.
	meta=$(ls "$D1"/_part-*.meta | head -1)
	rm "$meta"
	mkfifo "$meta"
	# A file where a partition directory should be.
	mkdir -p "$DS/year=2026/month=11"
	echo junk > "$DS/year=2026/month=11/day=27"
	for q in "--count" "-e .id" "--partitions" "--id e-1" "--count --no-dedupe"; do
		run --separate-stderr timeout 20 dd-lake-query -l "$LAKE" $q
		[ "$status" -eq 0 ] || fail "$q: exit $status: $stderr"
		[[ "$stderr" == *"$D1/part-fifo.ndjson.zst: not a regular file (a FIFO), skipped"* ]] || fail "$q: $stderr"
		[[ "$stderr" == *"$D1/part-dir.ndjson.zst: not a regular file (a directory), skipped"* ]] || fail "$q: $stderr"
		[[ "$stderr" == *"$D1/part-sock.ndjson.zst: not a regular file (a socket), skipped"* ]] || fail "$q: $stderr"
		case $q in
		--count*) [ "$output" = 2 ] || fail "$q: $output" ;;
		-e*) [ "$(sort <<<"$output")" = "$(printf '"e-1"\n"e-2"')" ] || fail "$q: $output" ;;
		--id*) [ "$(jq -r .id <<<"$output")" = e-1 ] || fail "$q: $output" ;;
		--partitions) [[ "$output" == *2026-11-26* ]] || fail "$q: $output" ;;
		esac
	done
	run -0 timeout 20 dd-lake-query -q -l "$LAKE" --count
	assert_output 2
	run --separate-stderr timeout 20 dd-archive --db none.db -l "$LAKE" --compact --verify
	assert_success
	[[ "$stderr" == *"part-fifo.ndjson.zst: not a regular file (a FIFO), skipped"* ]] || fail "$stderr"
	[ "$(jq .partsAfterCompaction <<<"$output")" -eq 1 ]
	[ "$(jq .partsDamaged <<<"$output")" -eq 0 ]
	# The odd entries are left as they were; the events are all there.
	[ -p "$D1/part-fifo.ndjson.zst" ] && [ -d "$D1/part-dir.ndjson.zst" ] && [ -S "$D1/part-sock.ndjson.zst" ]
	run -0 timeout 20 dd-lake-query -q -l "$LAKE" -e .id
	[ "$(sort <<<"$output")" = "$(printf '"e-1"\n"e-2"')" ]
}

@test "write order: parts of writers started in the same second sort as written; compaction keeps the first" {
	for k in 1 2 3 4 5 6; do
		ev "e-$k" 2026-11-26T01:00:00Z x.t s-1 "$k" | dd-lake-ingest -q -l "$LAKE"
		ev same 2026-11-26T02:00:00Z x.t s-1 "$k" | dd-lake-ingest -q -l "$LAKE"
	done
	run bash -c "ls '$D1' | grep '^part-' | sort | while read -r p; do zstdcat '$D1'/\$p; done | jq -r '[.id, .data.n] | @tsv' | paste -sd ' '"
	assert_output "$(for k in 1 2 3 4 5 6; do printf 'e-%s\t%s same\t%s ' "$k" "$k" "$k"; done | sed 's/ $//')"
	# --limit takes the first written.
	run dd-lake-query -l "$LAKE" --no-dedupe --id same --limit 1 -e .data.n
	assert_output 1
	run dd-lakecheck compact "$LAKE" events 2026-11-26
	assert_output "parts 12 -> 1, events 12 -> 7, duplicates 0, conflicts 5"
	run dd-lake-query -l "$LAKE" --id same -e .data.n
	assert_output 1
	# A part written after a compaction sorts after the compacted one, so
	# the next compaction still keeps the first.
	ev same 2026-11-26T02:00:00Z x.t s-1 9 | dd-lake-ingest -q -l "$LAKE"
	first=$(ls "$D1" | grep '^part-' | sort | head -1)
	last=$(ls "$D1" | grep '^part-' | sort | tail -1)
	[[ $first == *'~000001.ndjson.zst' && $last != *'~'* ]] || fail "$(ls "$D1")"
	run dd-lakecheck compact "$LAKE" events 2026-11-26
	assert_output "parts 2 -> 1, events 8 -> 7, duplicates 0, conflicts 1"
	# Named after the last part it replaced, a generation past it.
	[ "$(ls "$D1" | grep '^part-')" = "${last%.ndjson.zst}~000001.ndjson.zst" ]
	run dd-lake-query -l "$LAKE" --id same -e .data.n
	assert_output 1
	run dd-archive -q --db none.db -l "$LAKE" --verify
	[ "$(jq .partsDamaged <<<"$output")" -eq 0 ]
}

@test "snapshot: a reader stalled after its listing sees the partition as it was, whole, when a compaction ends meanwhile" {
	parts_of 5 1500
	for dd in "--no-dedupe" ""; do
		mkfifo out
		dd-lake-query -l "$LAKE" $dd -e .id > out 2> err &
		Q=$!
		exec 8< out
		# One byte read: the query has listed the partition and is now
		# blocked on the full pipe, inside its first part.
		IFS= read -r -n 1 -u 8 c
		run dd-archive -q --db none.db -l "$LAKE" --compact
		assert_success
		[ "$(jq .partsCompacted <<<"$output")" -ge 2 ]
		{ printf '%s' "$c"; cat <&8; } > ids
		exec 8<&-
		rc=0
		wait $Q || rc=$?
		[ $rc -eq 0 ] || fail "exit $rc: $(cat err)"
		[ ! -s err ] || fail "$(cat err)"
		jq -r . ids | sort > got
		[ "$(wc -l < got)" -eq 7500 ] || fail "$(wc -l < got) events"
		[ -z "$(uniq -d got)" ]
		rm out
		# A new part for the next round's compaction.
		many 1500 2026-11-26 p1 | dd-lake-ingest -q -l "$LAKE"
	done
}

@test "concurrency: readers loop while compactions and ingests loop; every answer is whole, by ids" {
	parts_of 4 500
	lake_ids | sort > want
	end=$((SECONDS + 4))
	(
		while [ $SECONDS -lt $end ]; do
			# Copies of ids already stored (same bytes): only duplicates.
			many 500 2026-11-26 p2 | dd-lake-ingest -q -l "$LAKE"
			rc=0
			dd-archive -q --db none.db -l "$LAKE" --compact > /dev/null 2>&1 || rc=$?
			[ $rc -eq 0 ] || [ $rc -eq 5 ] || exit 1
		done
	) & W=$!
	(
		while [ $SECONDS -lt $end ]; do
			rc=0
			dd-archive -q --db other.db -l "$LAKE" --compact > /dev/null 2>&1 || rc=$?
			[ $rc -eq 0 ] || [ $rc -eq 5 ] || exit 1
		done
	) & W2=$!
	n=0
	while [ $SECONDS -lt $end ]; do
		dd-lake-query -l "$LAKE" -e .id > got.json 2> err || fail "reader: $(cat err)"
		jq -r . got.json | sort > got
		cmp -s got want || fail "reader $n: $(diff got want | head -5)"
		c=$(dd-lake-query -l "$LAKE" --count 2> err) || fail "count: $(cat err)"
		[ "$c" -eq 2000 ] || fail "count $c"
		n=$((n + 1))
	done
	wait $W || fail "compactions and ingests failed"
	wait $W2 || fail "compactions failed"
	[ $n -ge 2 ]
	dd-archive -q --db none.db -l "$LAKE" --compact > /dev/null
	lake_ids | sort > final
	cmp -s final want
}

@test "time order: a compacted partition streams in event time, ties in write order; one ordered part is left alone" {
	{ ev a 2026-11-26T05:00:00Z; ev b 2026-11-26T01:00:00Z; ev c 2026-11-26T03:00:00Z x.t s-1 1; } | dd-lake-ingest -q -l "$LAKE"
	{ ev d 2026-11-26T03:00:00Z x.t s-1 2; ev e 2026-11-26T00:30:00Z; ev a 2026-11-26T05:00:00Z; } | dd-lake-ingest -q -l "$LAKE"
	[ "$(for m in "$D1"/_part-*.meta; do head -1 "$m" | jq .timeOrdered; done | sort -u)" = false ]
	run dd-lakecheck compact "$LAKE" events 2026-11-26
	assert_output "parts 2 -> 1, events 6 -> 5, duplicates 1, conflicts 0"
	run bash -c "zstdcat '$D1'/part-*.ndjson.zst | jq -r .id | paste -sd ' '"
	assert_output "e b c d a"
	[ "$(head -1 "$D1"/_part-*.meta | jq .timeOrdered)" = true ]
	# An unordered single part is rewritten in order, an ordered one not.
	ev z 2026-11-27T02:00:00Z | dd-lake-ingest -q -l "$LAKE"
	{ ev y 2026-11-28T02:00:00Z; ev x 2026-11-28T01:00:00Z; } | dd-lake-ingest -q -l "$LAKE"
	before=$(ls "$DS/year=2026/month=11/day=27")
	run dd-archive -q --db none.db -l "$LAKE" --compact --dry-run
	[ "$(jq .partitionsCompacted <<<"$output")" -eq 1 ]
	run dd-archive -q --db none.db -l "$LAKE" --compact
	[ "$(jq .partitionsCompacted <<<"$output")" -eq 1 ]
	[ "$(ls "$DS/year=2026/month=11/day=27")" = "$before" ]
	run bash -c "zstdcat '$DS'/year=2026/month=11/day=28/part-*.ndjson.zst | jq -r .id | paste -sd ' '"
	assert_output "x y"
}

@test "sort: lines by key, ties in the order added, through runs on disk that leave no file behind" {
	mkdir tmpd
	python3 -c "
import random
r = random.Random(5)
for i in range(5000): print(r.randint(-50, 50), 'v%d' % i)" > in
	for budget in 1000000000 100000 1000 1; do
		dd-lakecheck sort tmpd "$budget" < in > out
		sort -s -n -k1,1 in | cmp - out || fail "budget $budget"
	done
	[ -z "$(ls -A tmpd)" ]
	run dd-lakecheck sort "$BATS_TEST_TMPDIR/missing" 1 <<<"1 x"
	assert_failure 4
	assert_output --partial "missing: temporary file:"
}

@test "shuffled days: more partitions than open parts make one part per day, each event once" {
	python3 - > in.ndjson <<-'PY'
	import random, datetime
	r = random.Random(7)
	t0 = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
	for i in range(3000):
	    t = t0 + datetime.timedelta(days=r.randrange(300), seconds=r.randrange(86400))
	    print('{"specversion":"1.0","id":"e%d","source":"/t","type":"x.t","time":"%s","subject":"s-%d","data":{}}'
	          % (i, t.strftime('%Y-%m-%dT%H:%M:%SZ'), i % 9))
	PY
	# Copies of ten events, spilled like the rest: dropped at the commit.
	head -10 in.ndjson > copies
	cat copies >> in.ndjson
	run dd-lake-ingest -l "$LAKE" in.ndjson
	assert_success
	assert_output --partial "stored 3000, duplicates 10,"
	days=$(find "$DS" -name 'day=*' | wc -l)
	parts=$(find "$DS" -name 'part-*.ndjson.zst' | wc -l)
	[ "$days" -gt 250 ]
	[ "$parts" -eq "$days" ] || fail "$parts parts for $days days"
	# No temporary left behind; every event once, in its day.
	[ -z "$(find "$LAKE" -name '.*' -o -name '*.tmp')" ]
	lake_ids | sort > got
	jq -r .id in.ndjson | sort -u > want
	cmp got want
	run dd-archive -q --db none.db -l "$LAKE" --verify
	[ "$(jq .partsDamaged <<<"$output")" -eq 0 ]
	# A second run over the same days adds at most one more part a day.
	dd-lake-ingest -q -l "$LAKE" in.ndjson
	[ "$(find "$DS" -name 'part-*.ndjson.zst' | wc -l)" -le $((2 * days)) ]
}
