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
