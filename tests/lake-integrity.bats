#!/usr/bin/env bats
# The lake stays true (issue 12): identity by full ids, not hashes;
# strings with lone surrogate escapes refused; odd files in a partition
# skipped; compaction exclusive by the lake's own lock, once per
# partition, in time order; part names in write order.

load common

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
