#!/usr/bin/env bats
# The lake primitives of lib/lake.h that readers and dd-archive use:
# partition ranges, parts and their metadata, membership tests, the
# checked part reader, cleaning of stale files, compaction. Driven by
# dd-lakecheck (tests/lakecheck.c); parts are written by dd-lake-ingest.

load common
bats_require_minimum_version 1.5.0

setup() {
	cd "$BATS_TEST_TMPDIR"
	LAKE="$BATS_TEST_TMPDIR/lake"
	DS="$LAKE/events"
}

ev() {
	printf '{"specversion":"1.0","id":"%s","source":"/t","type":"%s","time":"%s","subject":"%s","data":{"n":%d}}\n' \
		"$1" "${3:-x.t}" "$2" "${4:-s-$1}" "${#1}"
}

# N events of one day with ids PREFIX-i and padding, so frames fill up.
day_events() {
	python3 - "$@" <<-'EOF'
	import sys, random
	n, day, prefix = int(sys.argv[1]), sys.argv[2], sys.argv[3]
	r = random.Random(n)
	for i in range(n):
	    pad = "".join(r.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(200))
	    print('{"specversion":"1.0","id":"%s-%d","source":"/t","type":"x.t%d","time":"%sT%02d:%02d:%02d.%03dZ","subject":"s-%d","data":{"pad":"%s"}}'
	          % (prefix, i, i % 3, day, i * 24 // n, i % 60, (i * 7) % 60, i % 1000, i // 20, pad))
	EOF
}

@test "partitions: date order, [since, until) by day, odd directories ignored" {
	for d in 2025-12-30 2025-12-31 2026-01-01 2026-01-02 2026-02-28; do
		ev "e$d" "${d}T12:00:00Z"
	done | dd-lake-ingest -q -l "$LAKE"
	mkdir -p "$DS/junk" "$DS/year=20x6" "$DS/year=2026/month=13/day=01" \
		"$DS/year=2026/month=02/day=30" "$DS/year=2026/month=01/day=1" \
		"$DS/year=2026/month=1/day=05"
	run dd-lakecheck partitions "$LAKE" events
	assert_success
	assert_output - <<-EOF
	2025-12-30 $DS/year=2025/month=12/day=30
	2025-12-31 $DS/year=2025/month=12/day=31
	2026-01-01 $DS/year=2026/month=01/day=01
	2026-01-02 $DS/year=2026/month=01/day=02
	2026-02-28 $DS/year=2026/month=02/day=28
	EOF
	run dd-lakecheck partitions "$LAKE" events 2025-12-31 2026-01-02
	assert_output "$(printf '2025-12-31 %s\n2026-01-01 %s' "$DS/year=2025/month=12/day=31" "$DS/year=2026/month=01/day=01")"
	# A bound inside a day keeps that day; until is exclusive.
	run dd-lakecheck partitions "$LAKE" events 2025-12-31T23:00:00Z 2026-01-01T00:00:00.001Z
	assert_output "$(printf '2025-12-31 %s\n2026-01-01 %s' "$DS/year=2025/month=12/day=31" "$DS/year=2026/month=01/day=01")"
	run dd-lakecheck partitions "$LAKE" events 2026-01-03 2026-02-28
	assert_output ""
	run dd-lakecheck partitions "$LAKE" missing-dataset
	assert_success
	assert_output ""
	run dd-lakecheck partitions "$LAKE" ../etc
	assert_failure 4
}

@test "parts: metadata used only when it describes the part beside it" {
	{ ev a 2026-11-02T01:00:00Z x.pos; ev b 2026-11-02T03:00:00Z x.pos
	  ev c 2026-11-02T02:00:00Z x.other; } | dd-lake-ingest -q -l "$LAKE"
	P="$DS/year=2026/month=11/day=02"
	run dd-lakecheck parts "$P"
	assert_output --regexp '^part-[0-9T.]+Z-[0-9a-f]{16}\.ndjson\.zst 1 3 2026-11-02T01:00:00\.000Z 2026-11-02T03:00:00\.000Z x\.other=1 x\.pos=2$'
	part=$(ls "$P"/part-*)
	meta="$P/_$(basename "$part" .ndjson.zst).meta"
	# A meta claiming another size (as if the part were replaced) is not used.
	cp "$meta" meta.orig
	sed -i '1s/"partBytes":[0-9]*/"partBytes":1/' "$meta"
	run dd-lakecheck parts "$P"
	assert_output --regexp ' 0$'
	run dd-lakecheck may "$part" id zzz
	assert_output maybe
	# Nor one whose checksum differs.
	cp meta.orig "$meta"
	sed -i '1s/"contentChecksum":"[0-9a-f]*"/"contentChecksum":"00000000"/' "$meta"
	run dd-lakecheck parts "$P"
	assert_output --regexp ' 0$'
	# Malformed metadata: the part is listed and scanned; verify names it.
	printf '{"format":"dd-lake-meta/1","part":' > "$meta"
	run dd-lakecheck parts "$P"
	assert_success
	assert_output --regexp ' 0$'
	run dd-lakecheck verify "$part"
	assert_failure 4
	assert_output --partial "$meta: malformed metadata"
	cp meta.orig "$meta"
	run dd-lakecheck verify "$part"
	assert_output 3
	# Without metadata the part is still read in full.
	rm "$meta"
	run dd-lakecheck parts "$P"
	assert_output --regexp ' 0$'
	run dd-lakecheck cat "$part"
	assert_success
	[ "${#lines[@]}" -eq 3 ]
	# Hidden and foreign files are not parts; other *.ndjson.zst are.
	touch "$P/.part-x.ndjson.zst.1-00000000.tmp" "$P/_part-y.meta" "$P/notes.txt"
	zstdcat "$part" | zstd -q > "$P/spark-00000.ndjson.zst"
	run dd-lakecheck parts "$P"
	[ "${#lines[@]}" -eq 2 ]
	assert_line --index 1 "spark-00000.ndjson.zst 0"
}

@test "may: every stored id and subject tests maybe; absent ones mostly no" {
	# From a file: a generator slower than the idle flush (a loaded
	# machine) would make two parts of the day.
	day_events 3000 2026-11-05 m > in.ndjson
	dd-lake-ingest -q -l "$LAKE" < in.ndjson
	part=$(ls "$DS"/year=2026/month=11/day=05/part-*)
	for i in 0 1 777 2999; do
		run dd-lakecheck may "$part" id "m-$i"
		assert_output maybe
		run dd-lakecheck may "$part" subject "s-$((i / 20))"
		assert_output maybe
	done
	no=0
	for i in $(seq 200); do
		[ "$(dd-lakecheck may "$part" id "absent-$i")" = no ] && no=$((no + 1))
	done
	[ "$no" -ge 190 ]
	# About 10 bits per id: the index is ~1.25 bytes per event.
	meta=$(ls "$DS"/year=2026/month=11/day=05/_part-*.meta)
	[ "$(head -1 "$meta" | jq '.ids.bytes')" -le 3800 ]
}

@test "reader: a corrupt or truncated part yields only whole verified frames, then an error naming it" {
	# 3 MB of lines: a part of several 1 MiB frames.
	day_events 12000 2026-11-06 c > in.ndjson
	dd-lake-ingest -q -l "$LAKE" < in.ndjson
	part=$(ls "$DS"/year=2026/month=11/day=06/part-*)
	[ "$(head -1 "$(dirname "$part")"/_part-*.meta | jq .frames)" -ge 3 ]
	run dd-lakecheck verify "$part"
	assert_output 12000
	cp "$part" good.zst
	size=$(stat -c %s "$part")
	# Flip one byte in the middle (inside a later frame).
	python3 -c "
import sys; p = sys.argv[1]; b = bytearray(open(p, 'rb').read())
b[len(b) // 2] ^= 0x55; open(p, 'wb').write(b)" "$part"
	run dd-lakecheck cat "$part"
	assert_failure 4
	assert_output --partial "$part: "
	run sh -c "dd-lakecheck cat '$part' 2>/dev/null"
	n=${#lines[@]}
	[ "$n" -ge 1 ] && [ "$n" -lt 12000 ]
	# What came out is exactly the first n lines: no garbage, no partial line.
	head -n "$n" in.ndjson | cmp - <(printf '%s\n' "${lines[@]}")
	run dd-lakecheck verify "$part"
	assert_failure 4
	# Truncated: the same, with the reason.
	head -c $((size - 100)) good.zst > "$part"
	run dd-lakecheck cat "$part"
	assert_failure 4
	assert_output --partial "truncated"
	run sh -c "dd-lakecheck cat '$part' 2>/dev/null | cmp - <(head -n \$(dd-lakecheck cat '$part' 2>/dev/null | wc -l) in.ndjson)"
	# Not zstd at all.
	echo "plain text" > "$part"
	run dd-lakecheck cat "$part"
	assert_failure 4
	assert_output --partial "$part"
	: > "$part"
	run dd-lakecheck cat "$part"
	assert_failure 4
}

@test "clean: stale temporaries of dead writers and orphan metadata go, nothing else" {
	ev a 2026-11-07T00:00:00Z | dd-lake-ingest -q -l "$LAKE"
	P="$DS/year=2026/month=11/day=07"
	host=$(python3 -c '
import socket
M = (1 << 64) - 1
def h64(b):
    h = 0xcbf29ce484222325; n = len(b); i = 0
    while i + 8 <= n:
        h = ((h ^ int.from_bytes(b[i:i+8], "little")) * 0x100000001b3) & M; h ^= h >> 29; i += 8
    while i < n:
        h = ((h ^ b[i]) * 0x100000001b3) & M; i += 1
    h ^= n; h ^= h >> 33; h = (h * 0xff51afd7ed558ccd) & M; h ^= h >> 33
    h = (h * 0xc4ceb9fe1a85ec53) & M; h ^= h >> 33
    return h
print("%08x" % (h64(socket.gethostname().encode()) & 0xffffffff))')
	sleep 30 & live=$!
	dead=$(sh -c 'echo $$')
	touch "$P/.part-DEAD.ndjson.zst.$dead-$host.tmp" "$P/._part-DEAD.meta.$dead-$host.tmp"
	touch "$P/.part-LIVE.ndjson.zst.$live-$host.tmp"
	touch "$P/.part-OTHER.ndjson.zst.$dead-0badf00d.tmp"
	touch -d '-2 days' "$P/.part-OLD.ndjson.zst.$live-0badf00d.tmp"
	touch -d '-2 hours' "$P/_part-ORPHAN.meta"
	touch "$P/_part-FRESH.meta"
	run dd-lakecheck clean "$P"
	kill $live
	assert_success
	assert_output 4
	run sh -c "ls -A '$P' | sed 's/part-[0-9T.]*Z-[0-9a-f~]*/part-N/' | sort"
	assert_output - <<-EOF
	.part-LIVE.ndjson.zst.$live-$host.tmp
	.part-OTHER.ndjson.zst.$dead-0badf00d.tmp
	_part-FRESH.meta
	_part-N.meta
	part-N.ndjson.zst
	EOF
}

@test "compact: one part per partition, each id once, old parts removed after" {
	day_events 400 2026-11-08 k > a.ndjson
	day_events 200 2026-11-08 j > b.ndjson
	dd-lake-ingest -q -l "$LAKE" < a.ndjson
	dd-lake-ingest -q -l "$LAKE" < a.ndjson
	dd-lake-ingest -q -l "$LAKE" --part-size 16K < b.ndjson
	ev other 2026-11-09T00:00:00Z | dd-lake-ingest -q -l "$LAKE"
	P="$DS/year=2026/month=11/day=08"
	before=$(ls "$P"/part-* | wc -l)
	[ "$before" -gt 3 ]
	run dd-lakecheck compact "$LAKE" events 2026-11-08
	assert_success
	assert_output "parts $before -> 1, events 1000 -> 600, duplicates 400, conflicts 0"
	[ "$(ls "$P"/part-* | wc -l)" -eq 1 ]
	[ "$(ls "$P"/_part-*.meta | wc -l)" -eq 1 ]
	[ -z "$(find "$LAKE" -name '.*' -type f)" ]
	run dd-lakecheck parts "$P"
	assert_output --regexp ' 1 600 '
	zstdcat "$P"/part-* | sort | cmp - <(sort -u a.ndjson b.ndjson)
	# Other partitions are untouched; a compacted partition stays as it is.
	[ "$(ls "$DS"/year=2026/month=11/day=09/part-* | wc -l)" -eq 1 ]
	name=$(ls "$P"/part-*)
	run dd-lakecheck compact "$LAKE" events 2026-11-08
	assert_output "parts 1 -> 1, events 600 -> 600, duplicates 0, conflicts 0"
	[ "$(ls "$P"/part-*)" = "$name" ]
}

@test "compact: a corrupt part stops it with nothing removed" {
	day_events 300 2026-11-10 q | dd-lake-ingest -q -l "$LAKE"
	day_events 300 2026-11-10 r | dd-lake-ingest -q -l "$LAKE"
	P="$DS/year=2026/month=11/day=10"
	victim=$(ls "$P"/part-* | tail -1)
	truncate -s -50 "$victim"
	ls -A "$P" > before
	run dd-lakecheck compact "$LAKE" events 2026-11-10
	assert_failure 4
	assert_output --partial "$victim"
	ls -A "$P" | cmp - before
}

@test "writer: the parts it reports visible are exactly those on disk" {
	day_events 50 2026-11-11 w > in.ndjson
	day_events 50 2026-11-12 v >> in.ndjson
	run dd-lakecheck write "$LAKE" events < in.ndjson
	assert_success
	[ "${#lines[@]}" -eq 2 ]
	diff <(printf '%s\n' "${lines[@]}" | sort) <(find "$DS" -name 'part-*' | sort)
}

# The writer's pipeline (lake-writer.c): the caller parses and fills
# frames, a thread compresses, another makes batches of parts durable.
# dd-lakecheck's own fsync can be held back or made to fail.
@test "writer: parts close while every fsync is held back; the commit waits for the disk" {
	for d in 01 02 03; do day_events 1000 2026-11-$d h$d; done > in.ndjson
	run --separate-stderr dd-lakecheck held "$LAKE" events 64K < in.ndjson
	assert_success
	# Without the pipeline the caller would sit in the first part's fsync.
	[ "${lines[0]}" = "added 3000, durable 0, fsync waiting" ] || fail "${lines[0]}"
	[ "${lines[1]}" = "committed after the fsyncs, durable 3000" ] || fail "${lines[1]}"
	# Many parts (64K each), all visible, whole, and nothing else.
	n=$(find "$DS" -name 'part-*' | wc -l)
	[ "$n" -gt 12 ]
	[ "${#lines[@]}" -eq $((n + 2)) ]
	[ -z "$(find "$LAKE" -name '.*')" ]
	zstd -qt $(find "$DS" -name 'part-*')
	cmp <(zstdcat $(find "$DS" -name 'part-*') | sort) <(sort in.ndjson)
}

@test "writer: an fsync failing in the background stops it; what it says is durable is what is visible, no temporaries" {
	for d in 01 02 03; do day_events 1000 2026-11-$d f$d; done > in.ndjson
	# K: the lake's own directory, a part's data, its metadata, a
	# directory, and calls deep into the run.
	for k in 2 3 4 5 6 9 14 30; do
		rm -rf "$LAKE"
		run --separate-stderr dd-lakecheck failsync "$LAKE" events 64K "$k" < in.ndjson
		assert_failure 4
		[[ "$stderr" == *": fsync: Input/output error"* ]] || fail "k=$k: $stderr"
		[ -z "$(find "$LAKE" -name '.*')" ] || fail "k=$k: temporaries left"
		visible=$(find "$DS" -name 'part-*' | sort)
		said=$(sed -n 's/^dd-lakecheck: durable //p' <<< "$stderr")
		if [ -n "$visible" ]; then
			zstd -qt $visible
			got=$(zstdcat $visible | wc -l)
			# Nothing visible that was not in the input, nothing twice.
			[ -z "$(zstdcat $visible | sort | comm -23 - <(sort in.ndjson))" ]
			[ "$(zstdcat $visible | sort -u | wc -l)" -eq "$got" ]
		else
			got=0
		fi
		[ "$said" = "$got" ] || fail "k=$k: said durable '$said', $got visible"
	done
}

@test "writer: frames compressed on several threads side by side keep each part's lines in order" {
	# Two days interleaved in runs, so both parts have frames in flight
	# at once, each part of several frames (1 MiB of input each).
	for r in 1 2 3 4; do
		day_events 3000 2026-11-20 "a$r"
		day_events 3000 2026-11-21 "b$r"
	done > in.ndjson
	for t in 0 1 2 4; do
		rm -rf "$LAKE"
		run dd-lakecheck write "$LAKE" events "$t" < in.ndjson
		assert_success
		for d in 20 21; do
			P="$DS/year=2026/month=11/day=$d"
			[ "$(ls "$P"/part-* | wc -l)" -eq 1 ]
			frames=$(head -1 "$P"/_part-*.meta | jq .frames)
			[ "$frames" -ge 3 ] || fail "threads $t: $frames frames"
			zstd -qt "$P"/part-*
			zstdcat "$P"/part-* | cmp - <(grep "\"time\":\"2026-11-$d" in.ndjson) ||
				fail "threads $t, day $d: not the input's order"
		done
	done
}
