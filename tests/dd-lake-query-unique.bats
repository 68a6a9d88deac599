#!/usr/bin/env bats
# Counts from metadata with de-duplication on: the writer marks a part
# "unique" when no id repeats in it nor in the parts it checked, the
# partition's parts visible when it closed; dd-lake-query then answers
# --count and --by type or buckets from the metadata of a partition whose
# every pair of parts is so covered, and reads everything elsewhere.
# Whether a part was read is told by damage that keeps its size and last
# bytes (so its metadata still describes it): read, it is an error.

load common
bats_require_minimum_version 1.5.0

setup() {
	cd "$BATS_TEST_TMPDIR"
	LAKE=$BATS_TEST_TMPDIR/lake
	dd-sim telemetry -n 4000 --days 2 --seed 4 --start 2025-03-01 > tel
}

day1() { echo "$LAKE/events/year=2025/month=03/day=01"; }
meta_of() { head -1 "$(dirname "$1")/_$(basename "$1" .ndjson.zst).meta"; }
# Overwrite 64 bytes in the middle of a part: same size, same last bytes.
damage() {
	local size
	size=$(stat -c %s "$1")
	printf '%064d' 0 | dd of="$1" bs=1 seek=$((size / 2)) conv=notrunc status=none
}
# The answers a full read gives (jq over zstdcat, each id once per day).
want_by_type() {
	find "$LAKE/events" -name 'part-*.ndjson.zst' | sort | xargs zstdcat |
		jq -s -c 'group_by(.time[0:10])| map(unique_by(.id)) | add | group_by(.type)[] | {type: .[0].type, count: length}'
}

@test "a lake written once: every part unique, counts from metadata alone, de-duplicating" {
	dd-lake-ingest -q -l "$LAKE" < tel
	for p in $(find "$LAKE" -name 'part-*.ndjson.zst'); do
		[ "$(meta_of "$p" | jq -c '[.unique, .checked]')" = '[true,[]]' ]
	done
	want_by_type > want
	dd-lake-query -l "$LAKE" --count-by type > got
	diff want got
	for p in $(find "$LAKE" -name 'part-*.ndjson.zst'); do damage "$p"; done
	run -0 dd-lake-query -l "$LAKE" --count-by type
	assert_output "$(cat want)"
	run -0 dd-lake-query -l "$LAKE" --count
	assert_output 4000
	run -0 dd-lake-query -l "$LAKE" --by @day --agg count
	# Anything else reads the parts, and finds the damage.
	run dd-lake-query -l "$LAKE" --by data.droneId
	assert_equal "$status" 1
	run dd-lake-query -l "$LAKE" --by type --agg 'count(data.battery)'
	assert_equal "$status" 1
}

@test "a second part of new events checks the first; a replayed one is not unique, and is read" {
	grep '"time":"2025-03-01' tel > d1
	n=$(wc -l < d1)
	head -$((n / 2)) d1 > a
	tail -n +$((n / 2 + 1)) d1 > b
	dd-lake-ingest -q -l "$LAKE" < a
	first=$(ls "$(day1)"/part-*.ndjson.zst)
	dd-lake-ingest -q -l "$LAKE" < b
	second=$(ls "$(day1)"/part-*.ndjson.zst | grep -v "$first")
	[ "$(meta_of "$second" | jq -c '[.unique, .checked]')" = "[true,[\"$(basename "$first")\"]]" ]
	want_by_type > want
	dd-lake-query -l "$LAKE" --count-by type > got
	diff want got
	# A replay of some of the day's events: that part holds copies.
	head -300 a | dd-lake-ingest -q -l "$LAKE"
	third=$(ls -t "$(day1)"/part-*.ndjson.zst | head -1)
	[ "$(meta_of "$third" | jq -c .unique)" = null ]
	want_by_type > want
	dd-lake-query -l "$LAKE" --count-by type > got
	diff want got
	[ "$(dd-lake-query -l "$LAKE" --count --no-dedupe)" -eq $(( $(dd-lake-query -l "$LAKE" --count) + 300 )) ]
	damage "$first"
	run dd-lake-query -l "$LAKE" --count
	assert_equal "$status" 1
	# Without the replayed part, the two checked ones answer from metadata.
	rm "$third" "$(dirname "$third")/_$(basename "$third" .ndjson.zst).meta"
	run -0 dd-lake-query -l "$LAKE" --count
	assert_output "$n"
}

@test "two parts that never checked each other (written apart, then joined) are read" {
	head -1000 tel | dd-lake-ingest -q -l "$LAKE"
	head -2000 tel | tail -1000 | dd-lake-ingest -q -l other
	for p in other/events/year=2025/month=03/day=01/*; do cp "$p" "$(day1)/"; done
	[ "$(ls "$(day1)"/part-*.ndjson.zst | wc -l)" -eq 2 ]
	for p in "$(day1)"/part-*.ndjson.zst; do [ "$(meta_of "$p" | jq -c .checked)" = '[]' ]; done
	want_by_type > want
	dd-lake-query -l "$LAKE" --count-by type > got
	diff want got
	damage "$(ls "$(day1)"/part-*.ndjson.zst | head -1)"
	run dd-lake-query -l "$LAKE" --count
	assert_equal "$status" 1
}

@test "after compaction the partition is unique again: counts from metadata" {
	dd-lake-ingest -q -l "$LAKE" < tel
	head -500 tel | dd-lake-ingest -q -l "$LAKE"
	[ "$(dd-lake-query -l "$LAKE" --count --no-dedupe)" -eq 4500 ]
	run -0 dd-archive -q -l "$LAKE" --compact
	for p in $(find "$LAKE" -name 'part-*.ndjson.zst'); do
		[ "$(meta_of "$p" | jq -c .unique)" = true ] || { meta_of "$p"; false; }
	done
	want_by_type > want
	for p in $(find "$LAKE" -name 'part-*.ndjson.zst'); do damage "$p"; done
	run -0 dd-lake-query -l "$LAKE" --count-by type
	assert_output "$(cat want)"
	run -0 dd-lake-query -l "$LAKE" --count
	assert_output 4000
}

@test "parts without the mark (other writers, older lakes) are read in full" {
	dd-lake-ingest -q -l "$LAKE" < tel
	for m in $(find "$LAKE" -name '_part-*.meta'); do
		{ head -1 "$m" | jq -c 'del(.unique, .checked)'; tail -n +2 "$m"; } > m.new
		mv m.new "$m"
	done
	want_by_type > want
	dd-lake-query -l "$LAKE" --count-by type > got
	diff want got
	damage "$(find "$LAKE" -name 'part-*.ndjson.zst' | head -1)"
	run dd-lake-query -l "$LAKE" --count
	assert_equal "$status" 1
	run -0 dd-lake-query -l "$LAKE" --count --no-dedupe
}
