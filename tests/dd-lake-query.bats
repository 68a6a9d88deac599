#!/usr/bin/env bats
# dd-lake-query: every answer is checked against an independent reader of
# the same lake (zstdcat | jq over the part files), on lakes written by
# dd-lake-ingest and on parts made by hand with zstd (no metadata,
# duplicates across parts, several frames, damage).

load common
bats_require_minimum_version 1.5.0

# A lake of simulated telemetry shared by the read-only cases.
setup_file() {
	export SHARED="$BATS_FILE_TMPDIR/lake"
	dd-sim telemetry -n 6000 --days 3 --seed 11 --start 2025-06-01 --fail 0.1 \
		> "$BATS_FILE_TMPDIR/tel.ndjson"
	dd-lake-ingest -q -l "$SHARED" < "$BATS_FILE_TMPDIR/tel.ndjson"
}

setup() {
	cd "$BATS_TEST_TMPDIR"
	LAKE="$BATS_TEST_TMPDIR/lake"
	DS="$LAKE/events"
}

# The part files of a lake in date order, then creation order: the order
# dd-lake-query promises.
parts() { find "${1:-$SHARED}/events" -name 'part-*.ndjson.zst' | sort; }
# The independent reader: every stored line, in that order.
lake_cat() { parts "${1:-$SHARED}" | xargs -r zstdcat; }

# One event; extra JSON members of data as a third argument.
ev() {
	printf '{"specversion":"1.0","id":"%s","source":"/t","type":"%s","time":"%s","subject":"s-%s","data":{%s}}\n' \
		"$1" "${4:-x.test}" "$2" "$1" "${3:-}"
}

# A part made by hand (no metadata): each argument a file of lines,
# compressed as one zstd frame with a checksum, the frames concatenated.
handpart() {
	local dir=$1 name=$2
	shift 2
	mkdir -p "$dir"
	: > "$dir/part-$name.ndjson.zst"
	for f in "$@"; do
		zstd -q -3 --check -c "$f" >> "$dir/part-$name.ndjson.zst"
	done
}

@test "usage: --help carries the synopsis; bad options exit 2" {
	run dd-lake-query --help
	assert_success
	assert_output --partial "usage: dd-lake-query [-l LAKE]"
	assert_output --partial "--partitions"
	run dd-lake-query --bogus
	assert_equal "$status" 2
	run dd-lake-query --format xml
	assert_equal "$status" 2
	assert_output 'dd-lake-query: --format: "xml" is not a format (ndjson, csv, tsv, table, chart)'
	run dd-lake-query --since yesterday-ish
	assert_equal "$status" 2
	run dd-lake-query --count --count-by type
	assert_equal "$status" 2
	run dd-lake-query --format chart
	assert_equal "$status" 2
	run dd-lake-query --count-by 'data..x'
	assert_equal "$status" 2
	run dd-lake-query --limit 0
	assert_equal "$status" 2
	run dd-lake-query --arg onlyname
	assert_equal "$status" 2
	run dd-lake-query --since 2025-06-02 --until 2025-06-01
	assert_equal "$status" 2
}

@test "everything: the stored lines, byte for byte, in date order, for any -j" {
	lake_cat > want
	[ "$(wc -l < want)" -eq 6000 ]
	for j in 1 2 3; do
		run -0 sh -c "dd-lake-query -l '$SHARED' -j $j > got.$j"
		cmp want got.$j
	done
	run dd-lake-query -l "$SHARED" --count
	assert_success
	assert_output 6000
}

@test "--type, --subject, --id: OR within a flag, AND across, as jq selects" {
	s1=$(lake_cat | jq -r .subject | sed -n 100p)
	s2=$(lake_cat | jq -r .subject | sed -n 4000p)
	lake_cat | jq -r --arg a "$s1" --arg b "$s2" \
		'select((.subject == $a or .subject == $b) and (.type == "drone.position" or .type == "drone.delivered")) | .id' > want
	[ -s want ]
	dd-lake-query -l "$SHARED" --subject "$s1" --subject "$s2" \
		--type drone.position --type drone.delivered | jq -r .id > got
	diff want got
	# One id; an absent one; an id with an absent subject.
	id=$(sed -n 3p want)
	run dd-lake-query -l "$SHARED" --id "$id"
	assert_success
	assert_equal "$(echo "$output" | jq -r .id)" "$id"
	run dd-lake-query -l "$SHARED" --id no-such-id
	assert_success
	assert_output ""
	run dd-lake-query -l "$SHARED" --id "$id" --subject no-such-subject --count
	assert_output 0
	# Counts per type agree with jq's.
	for t in drone.position drone.failed drone.dispatched; do
		want=$(lake_cat | jq -c "select(.type == \"$t\")" | wc -l)
		run dd-lake-query -l "$SHARED" --type "$t" --count
		assert_output "$want"
	done
}

@test "the metadata prunes: parts that cannot hold the subject are not read" {
	s=$(lake_cat | jq -r .subject | sed -n 10p)
	first=$(parts | head -1)
	mkdir -p lake2
	cp -r "$SHARED"/. lake2/
	# Damage every part but the first in its middle, keeping its size and
	# last bytes, so its metadata still describes it: a part the Bloom
	# filter or the time range rules out is never opened, so the damage
	# goes unseen.
	for p in $(parts lake2 | tail -n +2); do
		size=$(stat -c %s "$p")
		printf 'XXXXXXXX' | dd of="$p" bs=1 seek=$((size / 2)) conv=notrunc status=none
	done
	want=$(lake_cat | jq -c --arg s "$s" 'select(.subject == $s)' | wc -l)
	[ "$want" -gt 0 ]
	run dd-lake-query -l lake2 --subject "$s"
	assert_success
	[ "$(echo "$output" | wc -l)" -eq "$want" ]
	run dd-lake-query -l lake2 --subject "$s" --id "$(lake_cat | jq -r .id | head -1)" --count
	assert_success
	run dd-lake-query -l lake2 --until "$(lake_cat | jq -r .time | head -1)" --count
	assert_success
	assert_output 0
	# A query that must read them finds the damage (a count would not:
	# the parts' metadata vouch for it, see dd-lake-query-unique.bats).
	run dd-lake-query -l lake2 --by data.droneId
	assert_equal "$status" 1
	assert_output --partial "$(parts lake2 | tail -1)"
}

@test "time ranges: offsets, partition edges at 23:59:59.999 and 00:00:00.000" {
	{
		ev a 2025-03-01T23:59:59.999Z
		ev b 2025-03-02T00:00:00.000Z
		ev c 2025-03-01T23:30:00-02:00	# 2025-03-02T01:30Z
		ev d 2025-03-02T00:30:00+01:00	# 2025-03-01T23:30Z
		ev e 2025-03-02T12:00:00.5+00:00
		ev f 2025-03-03T00:00:00Z
	} > in
	dd-lake-ingest -q -l "$LAKE" < in
	# Dates are UTC: d is stored on the 1st, c on the 2nd.
	[ "$(zstdcat "$DS"/year=2025/month=03/day=01/part-*.zst | jq -r .id | sort | tr -d '\n')" = ad ]
	q() { dd-lake-query -l "$LAKE" "$@" | jq -r .id | tr -d '\n'; }
	[ "$(q --until 2025-03-02)" = ad ]
	[ "$(q --since 2025-03-02 --until 2025-03-03)" = bce ]
	[ "$(q --since 2025-03-01T23:59:59.999Z --until 2025-03-02T00:00:00.001Z)" = ab ]
	[ "$(q --since 2025-03-02T00:00:00.000Z --until 2025-03-02T01:30:00Z)" = b ]
	[ "$(q --since 2025-03-02T01:30:00Z --until 2025-03-02T01:30:00.001Z)" = c ]
	# An offset in the argument is the same instant.
	[ "$(q --since 2025-03-01T22:00:00-02:00 --until 2025-03-02T03:00:00+01:00)" = bc ]
	[ "$(q --since 2025-03-03)" = f ]
	# Relative to --now.
	[ "$(q --now 2025-03-03T06:00:00Z --since -6h)" = f ]
	[ "$(q --now 2025-03-03T06:00:00Z --since -30h --until -18h)" = bc ]
	[ "$(q --now 2025-03-03T06:00:00Z --since -18h --until -17h)" = e ]
	run dd-lake-query -l "$LAKE" --since 2025-03-02 --count-by @day
	assert_output - <<'EOF'
{"day":"2025-03-02","count":3}
{"day":"2025-03-03","count":1}
EOF
}

@test "duplicates: a replay is output once per partition, all with --no-dedupe" {
	mkdir -p "$LAKE"
	head -3000 "$BATS_FILE_TMPDIR/tel.ndjson" > in
	dd-lake-ingest -q -l "$LAKE" < in
	dd-lake-ingest -q -l "$LAKE" < in	# a replay: a second part per partition
	[ "$(parts "$LAKE" | wc -l)" -gt "$(find "$DS" -type d -name 'day=*' | wc -l)" ]
	lake_cat "$LAKE" | jq -r .id | sort -u > want
	[ "$(wc -l < want)" -eq 3000 ]
	dd-lake-query -l "$LAKE" | jq -r .id | sort > got
	diff want got
	run dd-lake-query -l "$LAKE" --count
	assert_output 3000
	run dd-lake-query -l "$LAKE" --no-dedupe --count
	assert_output 6000
	# Counts by type and day, from metadata with --no-dedupe, from the
	# events without: each agrees with jq.
	lake_cat "$LAKE" | jq -s -c 'group_by(.type)[] | {type: .[0].type, count: length}' > want
	dd-lake-query -l "$LAKE" --no-dedupe --count-by type > got
	diff want got
	lake_cat "$LAKE" | jq -s -c 'unique_by(.id) | group_by(.type)[] | {type: .[0].type, count: length}' > want
	dd-lake-query -l "$LAKE" --count-by type > got
	diff want got
	run dd-lake-query -l "$LAKE" --type drone.position --no-dedupe --count
	assert_output "$(lake_cat "$LAKE" | grep -c '"type":"drone.position"')"
}

@test "duplicates: by id within one partition only, the first copy kept" {
	{
		ev same 2025-04-01T10:00:00Z '"v":1'
		ev other 2025-04-01T12:00:00Z
	} > day1
	# Same id, same day, another time, in a later part (within one part
	# the writer keeps an id once).
	ev same 2025-04-01T11:00:00Z '"v":2' > day1b
	ev same 2025-04-02T10:00:00Z '"v":3' > day2	# same id, another partition
	ev other 2025-04-01T12:00:00Z > again
	dd-lake-ingest -q -l "$LAKE" < day1
	dd-lake-ingest -q -l "$LAKE" < day1b
	dd-lake-ingest -q -l "$LAKE" < day2
	handpart "$DS/year=2025/month=04/day=01" 99999999T000000Z-ffffffffffffffff again
	run -0 sh -c "dd-lake-query -l '$LAKE' | jq -c '[.id, .data.v]'"
	assert_output - <<'EOF'
["same",1]
["other",null]
["same",3]
EOF
	run dd-lake-query -l "$LAKE" --no-dedupe --count
	assert_output 5
	run dd-lake-query -l "$LAKE" --count
	assert_output 3
}

@test "an empty dataset: no rows, a zero count, exit 0" {
	mkdir -p "$DS"
	run dd-lake-query -l "$LAKE"
	assert_success
	assert_output ""
	run dd-lake-query -l "$LAKE" --count
	assert_success
	assert_output 0
	run dd-lake-query -l "$LAKE" --format csv
	assert_success
	assert_output $'time,type,subject,id\r'
	run dd-lake-query -l "$LAKE" --count-by type --format table
	assert_success
	assert_output "type  count"
	mkdir -p "$DS/year=2025/month=01/day=01"
	run dd-lake-query -l "$LAKE" --partitions
	assert_success
	assert_output ""
}

@test "a missing lake is said, named, exit 4: records, counts and --partitions alike" {
	for args in "" "--count" "--count-by type" "--partitions" "--type x.test --count"; do
		run --separate-stderr dd-lake-query -l "$LAKE" $args
		assert_equal "$status" 4
		assert_equal "$output" ""
		assert_equal "$stderr" "dd-lake-query: $LAKE: no such lake"
	done
	# A file where the lake should be is no lake either.
	: > notalake
	run dd-lake-query -l notalake --count
	assert_equal "$status" 4
	assert_output "dd-lake-query: notalake: no such lake"
}

@test "a missing dataset is said with the datasets there are, exit 4" {
	ev a 2025-05-01T01:00:00Z | dd-lake-ingest -q -l "$LAKE"
	ev b 2025-05-01T01:00:00Z | dd-lake-ingest -q -l "$LAKE" --dataset deliveries
	mkdir "$LAKE/.hidden" "$LAKE/_tmp"
	for args in "--count" "" "--partitions" "--count-by @day"; do
		run --separate-stderr dd-lake-query -l "$LAKE" --dataset event $args
		assert_equal "$status" 4
		assert_equal "$output" ""
		assert_equal "$stderr" "dd-lake-query: $LAKE: no dataset \"event\" (datasets: deliveries, events)"
	done
	rm -r "$LAKE"/*
	run dd-lake-query -l "$LAKE" --count
	assert_equal "$status" 4
	assert_output "dd-lake-query: $LAKE: no dataset \"events\" (the lake holds none)"
}

@test "a --type no metadata in the range holds is warned about, naming the types there; the answer stands" {
	run --separate-stderr dd-lake-query -l "$SHARED" --type drone.deliverd --count
	assert_success
	assert_output 0
	assert_equal "$stderr" "dd-lake-query: --type drone.deliverd: no such type in the range (types: drone.delivered, drone.dispatched, drone.failed, drone.picked-up, drone.position, drone.returned)"
	# Only the type missing is named; the other still answers, for any -j.
	want=$(lake_cat | jq -c 'select(.type == "drone.failed")' | jq -s 'unique_by(.id) | length')
	for j in 1 3; do
		run --separate-stderr dd-lake-query -l "$SHARED" -j $j --type drone.failed --type nope --count
		assert_success
		assert_output "$want"
		assert_equal "$stderr" "dd-lake-query: --type nope: no such type in the range (types: drone.delivered, drone.dispatched, drone.failed, drone.picked-up, drone.position, drone.returned)"
	done
	# A type that exists, but not in the range asked for.
	run --separate-stderr dd-lake-query -l "$SHARED" --since 2030-01-01 --type drone.failed
	assert_success
	assert_output ""
	assert_equal "$stderr" "dd-lake-query: --type drone.failed: no such type in the range (it holds none)"
	run --separate-stderr dd-lake-query -l "$SHARED" --type drone.failed --count
	assert_equal "$stderr" ""
}

@test "--type: a part without metadata could hold any type, so nothing is warned" {
	ev a 2025-05-01T01:00:00Z "" x.test > f1
	handpart "$DS/year=2025/month=05/day=01" 20250501T000000Z-0000000000000001 f1
	run --separate-stderr dd-lake-query -l "$LAKE" --type y.test --count
	assert_success
	assert_output 0
	assert_equal "$stderr" ""
}

@test "frames with their size (decoded in one call) and without it (streamed, as from a pipe), mixed in one part: every line, in order" {
	d="$DS/year=2025/month=05/day=02"
	for i in $(seq 1 300); do ev "a$i" 2025-05-02T01:00:00Z; done > f1
	for i in $(seq 1 300); do ev "b$i" 2025-05-02T02:00:00Z; done > f2
	for i in $(seq 1 300); do ev "c$i" 2025-05-02T03:00:00Z; done > f3
	mkdir -p "$d"
	p="$d/part-20250502T000000Z-0000000000000001.ndjson.zst"
	{ zstd -q --check -c f1; zstd -q --check -c < f2; zstd -q --check -c f3; zstd -q --check -c < f1; } > "$p"
	# The second and fourth frames say no size, so zstd cannot total the
	# part; a frame from a file does.
	! zstd -lv "$p" | grep -q 'Decompressed Size'
	zstd -q --check -c f1 > sized.zst
	zstd -lv sized.zst | grep -q 'Decompressed Size'
	cat f1 f2 f3 f1 > want
	for j in 1 2; do
		run -0 sh -c "dd-lake-query -l '$LAKE' -j $j --no-dedupe > got"
		cmp want got
	done
	run -0 dd-lake-query -l "$LAKE" --count
	assert_output 900
}

@test "a damaged part: named, its good frames only, the rest still read, exit 1" {
	d="$DS/year=2025/month=05/day=02"
	for i in $(seq 1 200); do ev "a$i" 2025-05-02T01:00:00Z; done > f1
	for i in $(seq 1 200); do ev "b$i" 2025-05-02T02:00:00Z; done > f2
	for i in $(seq 1 100); do ev "c$i" 2025-05-01T02:00:00Z; done > c
	for i in $(seq 1 100); do ev "e$i" 2025-05-03T02:00:00Z; done > e
	dd-lake-ingest -q -l "$LAKE" < c
	dd-lake-ingest -q -l "$LAKE" < e
	handpart "$d" 20250502T000000Z-0000000000000001 f1 f2
	p="$d/part-20250502T000000Z-0000000000000001.ndjson.zst"
	size=$(stat -c %s "$p")
	f1size=$(zstd -q -3 --check -c f1 | wc -c)
	# Flip a byte inside the second frame.
	off=$(( f1size + (size - f1size) / 2 ))
	printf '\xff' | dd of="$p" bs=1 seek="$off" conv=notrunc status=none
	run dd-lake-query -l "$LAKE" -j 2
	assert_equal "$status" 1
	refute_sanitizer
	echo "$output" | grep -q "dd-lake-query: $p: "
	# Stdout: every line intact, the first frame of the damaged part and
	# every other part, nothing of the damaged frame.
	dd-lake-query -l "$LAKE" 2>err | jq -r .id > got || true
	{ jq -r .id c; jq -r .id f1; jq -r .id e; } > want
	diff want got
	grep -q "$p" err
	run dd-lake-query -l "$LAKE" --partitions --format csv
	assert_equal "$status" 1
	echo "$output" | grep -q "^events,2025-05-02,1,200,$size,2025-05-02T01:00:00.000Z,2025-05-02T01:00:00.000Z,part-20250502T000000Z-0000000000000001.ndjson.zst"
	echo "$output" | grep -q '^events,2025-05-01,1,100,[0-9]*,2025-05-01T02:00:00.000Z,2025-05-01T02:00:00.000Z,\s*$'

	# Cut short in the middle of the second frame.
	handpart "$d" 20250502T000000Z-0000000000000001 f1 f2
	truncate -s $(( f1size + 20 )) "$p"
	dd-lake-query -l "$LAKE" --count-by @day 2>err > got && false
	grep -q "$p: .*truncated" err
	cat > want <<'EOF'
{"day":"2025-05-01","count":100}
{"day":"2025-05-02","count":200}
{"day":"2025-05-03","count":100}
EOF
	diff want got
	run dd-lake-query -l "$LAKE" --partitions
	assert_equal "$status" 1
	echo "$output" | grep '"date":"2025-05-02"' | grep -q '"damaged":\["part-20250502T000000Z-0000000000000001.ndjson.zst"\]'
}

@test "a line that is not an event is reported with its part and line" {
	d="$DS/year=2025/month=05/day=02"
	{ ev a 2025-05-02T01:00:00Z; echo '{"not":"an event"}'; echo 'nope'; ev b 2025-05-02T01:00:00Z; } > f
	handpart "$d" 20250502T000000Z-0000000000000002 f
	run dd-lake-query -l "$LAKE" --count
	assert_equal "$status" 1
	assert_line --index 0 --partial "part-20250502T000000Z-0000000000000002.ndjson.zst:2: bad event: missing \"specversion\""
	assert_line --index 1 --partial ".ndjson.zst:3: bad event:"
	assert_line --index 2 "2"
}

@test "CSV and TSV: commas, quotes and newlines in values survive" {
	{
		ev q1 2025-05-01T01:00:00Z '"note":"a,b","n":1.5'
		ev q2 2025-05-01T02:00:00Z '"note":"say \"hi\"","n":true'
		ev q3 2025-05-01T03:00:00Z '"note":"line1\nline2\ttab\\\\","n":null'
		ev q4 2025-05-01T04:00:00Z '"note":" padded ","n":{"k":[1,2]}'
		ev q5 2025-05-01T05:00:00Z '"note":"caf\u00e9 \u00e9"'
	} > in
	dd-lake-ingest -q -l "$LAKE" < in
	dd-lake-query -l "$LAKE" --format csv --fields id,data.note,data.n,.data.missing > out.csv
	python3 - <<'EOF'
import csv, json
rows = list(csv.reader(open("out.csv", newline="")))
assert rows[0] == ["id", "data.note", "data.n", ".data.missing"], rows[0]
want = []
for line in open("in"):
    e = json.loads(line)
    n = e["data"].get("n")
    ntext = "" if n is None else ("true" if n is True else json.dumps(n, separators=(",", ":")) if isinstance(n, dict) else str(n))
    want.append([e["id"], e["data"]["note"], ntext, ""])
assert rows[1:] == want, (rows[1:], want)
EOF
	dd-lake-query -l "$LAKE" --format tsv --fields id,data.note > out.tsv
	run sed -n 4p out.tsv
	assert_output 'q3	line1\nline2\ttab\\\\'
	[ "$(wc -l < out.tsv)" -eq 6 ]
	# NDJSON with --fields: an object of the fields, values as stored.
	run -0 sh -c "dd-lake-query -l '$LAKE' --fields id,data.n --id q4 --id q1"
	assert_output - <<'EOF'
{"id":"q1","data.n":1.5}
{"id":"q4","data.n":{"k":[1,2]}}
EOF
	# A table: aligned, one line per row.
	run dd-lake-query -l "$LAKE" --format table --fields id,data.note
	assert_line --index 0 "id  data.note"
	assert_line --index 3 "q3  line1 line2 tab\\\\"
}

@test "a bad jq program: exit 2 with jq's message, nothing read" {
	run dd-lake-query -l "$SHARED" -e '.a['
	assert_equal "$status" 2
	assert_output --partial "syntax error"
	assert_output --partial "compile error"
	run dd-lake-query -l "$SHARED" -e 'nosuchfn(1)'
	assert_equal "$status" 2
	assert_output --partial "nosuchfn/1 is not defined"
	run dd-lake-query -l "$SHARED" -e '$undefined'
	assert_equal "$status" 2
	assert_output --partial '$undefined is not defined'
}

@test "jq runtime errors: part file and line, the run goes on, exit 1" {
	{
		ev r1 2025-05-01T01:00:00Z '"x":1'
		ev r2 2025-05-01T02:00:00Z '"x":"str"'
		ev r3 2025-05-01T03:00:00Z '"x":2'
		ev r4 2025-05-01T04:00:00Z '"x":{"deep":1}'
	} > in
	dd-lake-ingest -q -l "$LAKE" < in
	p=$(parts "$LAKE")
	run -1 dd-lake-query -l "$LAKE" -e '.data.x + 1'
	refute_sanitizer
	assert_output - <<EOF
2
dd-lake-query: $p:2: jq: error: string ("str") and number (1) cannot be added
3
dd-lake-query: $p:4: jq: error: object ({"deep":1}) and number (1) cannot be added
EOF
	run -1 dd-lake-query -l "$LAKE" -e 'if .data.x == 2 then error("two") else .id end'
	assert_line "\"r1\""
	assert_line "dd-lake-query: $p:3: jq: error: two"
	assert_line "\"r4\""
	run -1 dd-lake-query -l "$LAKE" -e 'error({"code": 7})' --id r1
	assert_output "dd-lake-query: $p:1: jq: error (not a string): {\"code\":7}"
	run -1 dd-lake-query -l "$LAKE" -e 'if .id == "r3" then halt_error else .id end' --count
	assert_line "dd-lake-query: $p:3: jq: halt_error: $(sed -n 3p in)"
	assert_line 3
}

@test "jq: projections, --arg, select keeps the stored bytes" {
	s=$(lake_cat | jq -r .subject | sed -n 50p)
	lake_cat | jq -c --arg s "$s" 'select(.subject == $s) | {t: .type, b: .data.battery}' > want
	dd-lake-query -l "$SHARED" -e 'select(.subject == $s) | {t: .type, b: .data.battery}' --arg s "$s" > got
	diff want got
	# select() outputs the input itself: written as stored, not re-serialised.
	lake_cat | grep "\"subject\":\"$s\"" > want
	dd-lake-query -l "$SHARED" -e 'select(.subject == $s)' --arg s "$s" > got
	diff want got
	# Several outputs per event, and none.
	run dd-lake-query -l "$SHARED" --subject "$s" -e '.id, .type' --count
	assert_output $(( 2 * $(wc -l < want) ))
	run dd-lake-query -l "$SHARED" -e 'empty' --count
	assert_output 0
}

@test "select without libjq agrees with libjq and with jq, value kinds mixed" {
	i=0
	for v in '' '"x":null' '"x":true' '"x":false' '"x":0' '"x":0.05' '"x":0.049' '"x":-1e3' \
		'"x":1e308' '"x":12345678901234567890' '"x":"0.01"' '"x":"abc"' '"x":"\u0061bc"' \
		'"x":"ab"' '"x":"abcd"' '"x":[]' '"x":[1]' '"x":{}' '"x":{"y":0.01}' '"x":{"y":"z"}' \
		'"x":1,"x":0.01' '"y":{"x":1}'; do
		i=$((i + 1))
		ev "k$i" 2025-05-01T01:00:00Z "$v"
	done > in
	dd-lake-ingest -q -l "$LAKE" < in
	for prog in 'select(.data.x < 0.05)' 'select(.data.x <= 0.05)' 'select(.data.x > 0.05)' \
		'select(.data.x >= false)' 'select(.data.x == "abc")' 'select(.data.x != null)' \
		'select(.data.x == null)' 'select("abc" < .data.x)' 'select(.data.x < -5)' \
		'select(.data.x.y < 1)' 'select(.data.x == 12345678901234567890)' \
		'select(.data.x == $v)' 'select(.data.x > [0])' 'select(.data.x == true)' \
		'select(. != null)' 'select(.data == null)' '.'; do
		lake_cat "$LAKE" | jq -c --arg v abc "$prog" 2>/dev/null | jq -r .id > want || true
		dd-lake-query -l "$LAKE" --arg v abc -e "$prog" 2>err.fast | jq -r .id > fast || true
		DD_JQ_FAST=0 dd-lake-query -l "$LAKE" --arg v abc -e "$prog" 2>err.jq | jq -r .id > slow || true
		diff want fast || { echo "program: $prog"; false; }
		diff want slow || { echo "program: $prog"; false; }
		diff err.jq err.fast || { echo "program: $prog"; false; }
	done
}

@test "compound select without libjq agrees with libjq on fuzzed events and programs" {
	"$DD_ROOT/tests/jq-fast-fuzz" events 5 300 > in
	dd-lake-ingest -q -l "$LAKE" < in
	"$DD_ROOT/tests/jq-fast-fuzz" programs 9 150 > progs
	# Every program is one the fast path takes (else this proves nothing),
	# and a few it must leave to libjq.
	while read -r prog; do dd-libcheck jqfast "$prog"; done < progs | sort | uniq -c > kinds
	[ "$(cat kinds)" = "    150 fast" ] || { cat kinds; false; }
	run dd-libcheck jqfast 'select(.a | test("a.b"))' 'select(.a + 1 > 2)' 'select(.a | not and .b)' \
		'select(.a | test("x"; "i"))' 'select(1 < 2)' 'select(.a | startswith(.b))'
	assert_output "$(printf 'jq\njq\njq\njq\njq\njq')"
	kept=0
	while read -r prog; do
		dd-lake-query -l "$LAKE" -e "$prog" 2>err.fast | jq -r .id > fast || true
		DD_JQ_FAST=0 dd-lake-query -l "$LAKE" -e "$prog" 2>err.jq | jq -r .id > slow || true
		diff slow fast || { echo "program: $prog"; false; }
		diff err.jq err.fast || { echo "program: $prog"; false; }
		[ -s fast ] && kept=$((kept + 1))
	done < progs
	# The programs keep some events and drop others.
	[ "$kept" -gt 30 ] && [ "$kept" -lt 150 ]
}

@test "--count-by: paths and buckets agree with jq, sorted; chart bars" {
	lake_cat | jq -s -r 'group_by(.time[0:10])[] | "\(.[0].time[0:10]) \(length)"' > want
	dd-lake-query -l "$SHARED" --count-by @day --format tsv | tail -n +2 | tr '\t' ' ' > got
	diff want got
	lake_cat | jq -s -c 'map(select(.type == "drone.failed")) | group_by(.data.reason)[] | {"reason": .[0].data.reason, count: length}' > want
	[ -s want ]
	dd-lake-query -l "$SHARED" --type drone.failed --count-by data.reason > got
	diff want got
	lake_cat | jq -s -r 'group_by([.type, .time[0:13]])[] | "\(.[0].type),\(.[0].time[0:13]):00:00Z,\(length)"' > want
	dd-lake-query -l "$SHARED" --count-by type,@hour --format csv | tail -n +2 | tr -d '\r' > got
	diff want got
	# A missing key is null, sorted first.
	run dd-lake-query -l "$SHARED" --count-by data.speedMps --format csv
	assert_line --index 1 "$(printf ',%s\r' "$(lake_cat | jq -c 'select(.data.speedMps == null)' | wc -l)")"
	# The chart: a bar per key, the longest 60 columns when not a terminal.
	dd-lake-query -l "$SHARED" --count-by @month,type --format chart > chart
	[ "$(wc -l < chart)" -eq "$(dd-lake-query -l "$SHARED" --count-by @month,type | wc -l)" ]
	grep -q '^2025-06 drone.position  *[0-9]* █\{60\}$' chart
	# Every bar in proportion to its count (eighths of a column).
	python3 - <<'EOF'
rows = [l.rstrip("\n") for l in open("chart")]
parts = [r.rsplit(" ", 1) for r in rows]
counts = [int(p[0].split()[-1]) for p in parts]
eighths = {"\u2588": 8, "\u2589": 7, "\u258A": 6, "\u258B": 5, "\u258C": 4, "\u258D": 3, "\u258E": 2, "\u258F": 1}
units = [sum(eighths[c] for c in p[1]) for p in parts]
m = max(counts)
for c, u in zip(counts, units):
    assert abs(u - c * 480 / m) <= 1 or (u == 1 and c * 480 / m < 1), (c, u)
EOF
}

@test "--limit stops early: the first N results, later damage never read" {
	lake_cat | head -25 > want
	for j in 1 2; do
		dd-lake-query -l "$SHARED" --limit 25 -j $j > got
		diff want got
	done
	run dd-lake-query -l "$SHARED" --limit 3 --format csv --fields id
	assert_equal "$(echo "$output" | wc -l)" 4
	# With a damaged part in the last partition, a small limit never gets
	# there: no error, exit 0.
	mkdir -p lake2
	cp -r "$SHARED"/. lake2/
	last=$(parts lake2 | tail -1)
	printf 'garbage' > "$last"
	run dd-lake-query -l lake2 --limit 10 -j 2
	assert_success
	assert_equal "$(echo "$output" | wc -l)" 10
	run dd-lake-query -l lake2 -j 2 -e 'select(.type == "drone.failed")' --limit 2
	assert_success
	run dd-lake-query -l lake2 --count
	assert_equal "$status" 1
	assert_output --partial "$last"
}

@test "--partitions: one row per partition, counts and times from the parts" {
	run -0 dd-lake-query -l "$SHARED" --partitions
	[ "${#lines[@]}" -eq "$(find "$SHARED/events" -type d -name 'day=*' | wc -l)" ]
	for line in "${lines[@]}"; do
		date=$(echo "$line" | jq -r .date)
		y=${date%%-*}; m=${date#*-}; m=${m%-*}; d=${date##*-}
		files=$(find "$SHARED/events/year=$y/month=$m/day=$d" -name 'part-*.ndjson.zst' | sort)
		[ "$(echo "$line" | jq .events)" -eq "$(zstdcat $files | wc -l)" ]
		[ "$(echo "$line" | jq .bytes)" -eq "$(cat $files | wc -c)" ]
		[ "$(echo "$line" | jq -r .minTime)" = "$(zstdcat $files | jq -r .time | sort | head -1)" ]
		[ "$(echo "$line" | jq -r .maxTime)" = "$(zstdcat $files | jq -r .time | sort | tail -1)" ]
		[ "$(echo "$line" | jq -c .damaged)" = "[]" ]
	done
	run dd-lake-query -l "$SHARED" --partitions --since 2025-06-02 --until 2025-06-03 --format table
	assert_success
	assert_line --index 0 --regexp '^dataset +date +parts +events +bytes +minTime +maxTime +damaged$'
	assert_line --index 1 --regexp '^events +2025-06-02 +1 +[0-9]+ '
	[ "${#lines[@]}" -eq 2 ]
	run dd-lake-query -l "$SHARED" --partitions --type x
	assert_equal "$status" 2
}

@test "datasets are separate; a bad dataset name is a usage error" {
	ev a 2025-05-01T01:00:00Z > in
	dd-lake-ingest -q -l "$LAKE" --dataset other < in
	run dd-lake-query -l "$LAKE" --count
	assert_equal "$status" 4
	assert_output --partial '(datasets: other)'
	run dd-lake-query -l "$LAKE" --dataset other --count
	assert_output 1
	run dd-lake-query -l "$LAKE" --dataset ../x
	assert_equal "$status" 2
}

@test "the default lake is \$DD_HOME/lake" {
	ev a 2025-05-01T01:00:00Z | dd-lake-ingest -q
	run dd-lake-query --count
	assert_success
	assert_output 1
}

@test "a write error on stdout exits 4" {
	run sh -c "dd-lake-query -l '$SHARED' -j 2 > /dev/full"
	assert_equal "$status" 4
	assert_output --partial "stdout"
	run sh -c "dd-lake-query -l '$SHARED' -j 1 --format csv > /dev/full"
	assert_equal "$status" 4
	run sh -c "dd-lake-query -l '$SHARED' --count > /dev/full"
	assert_equal "$status" 4
	refute_sanitizer
}

@test "DuckDB reads the same answers from the same lake" {
	[ -d "$DD_ROOT/.deps/node_modules/@duckdb/node-api" ] || fail "no @duckdb/node-api in .deps: run scripts/install-deps"
	cat > duck.mjs <<EOF2
import { createRequire } from 'node:module';
const require = createRequire('$DD_ROOT/.deps/package.json');
const { DuckDBInstance } = require('@duckdb/node-api');
const db = await DuckDBInstance.create(':memory:');
const con = await db.connect();
const r = await con.runAndReadAll(process.argv[2]);
for (const row of r.getRowsJson()) console.log(row.join('\t'));
EOF2
	src="read_ndjson('$SHARED/events/*/*/*/*.ndjson.zst', hive_partitioning=true, columns={id: 'VARCHAR', type: 'VARCHAR', subject: 'VARCHAR', time: 'TIMESTAMPTZ'})"
	node duck.mjs "select printf('%04d-%02d-%02d', year::int, month::int, day::int) as d, type, count(*) from $src where time >= '2025-06-02T00:00:00Z' and time < '2025-06-03T12:00:00Z' group by d, type order by d, type" > want
	dd-lake-query -l "$SHARED" --since 2025-06-02 --until 2025-06-03T12:00:00Z --count-by @day,type --format tsv | tail -n +2 > got
	[ -s want ]
	diff want got
	s=$(lake_cat | jq -r .subject | sed -n 777p)
	node duck.mjs "select id from $src where subject = '$s' order by id" > want
	dd-lake-query -l "$SHARED" --subject "$s" --fields id --format tsv | tail -n +2 | sort > got
	diff want got
}

@test "-j does not change any answer" {
	for args in "-e .data.battery" "--count-by data.droneId,@hour --format csv" \
		"--type drone.position --fields time,subject,data.speedMps,@day --format tsv" \
		"--since 2025-06-02T13:00:00Z --limit 100 --fields id" "--partitions"; do
		dd-lake-query -l "$SHARED" -j 1 $args > one
		for j in 2 4; do
			dd-lake-query -l "$SHARED" -j $j $args > many
			cmp one many || { echo "differs with -j $j: $args"; false; }
		done
	done
}

@test "--subject and --id: a partition's events in time order, whatever the parts hold; ties as read" {
	# The later part holds the earlier events, and a tie with the first.
	ev a1 2025-05-01T10:00:00Z > p1
	ev a2 2025-05-01T12:00:00Z >> p1
	ev a3 2025-05-01T08:00:00Z > p2
	ev a4 2025-05-01T10:00:00Z >> p2
	ev a5 2025-05-02T01:00:00Z >> p2
	for f in p1 p2; do sed -i 's/"subject":"s-a[0-9]"/"subject":"s-a"/' $f; done
	handpart "$DS/year=2025/month=05/day=01" 20250501T000000Z-1 p1
	handpart "$DS/year=2025/month=05/day=01" 20250501T000001Z-2 <(head -2 p2)
	handpart "$DS/year=2025/month=05/day=02" 20250502T000000Z-1 <(tail -1 p2)
	for j in 1 2; do
		run -0 dd-lake-query -l "$LAKE" -j $j --subject s-a --fields id --format tsv
		assert_output "$(printf 'id\na3\na1\na4\na2\na5')"
		run -0 dd-lake-query -l "$LAKE" -j $j --id a2 --id a3 --id a5
		assert_equal "$(echo "$output" | jq -r .id | paste -sd ' ')" "a3 a2 a5"
		# --limit keeps the earliest.
		run -0 dd-lake-query -l "$LAKE" -j $j --subject s-a --limit 2 -e .id
		assert_output "$(printf '"a3"\n"a1"')"
	done
	# Without --subject or --id, the parts' order as stored.
	run -0 dd-lake-query -l "$LAKE" -e .id
	assert_output "$(printf '"a1"\n"a2"\n"a3"\n"a4"\n"a5"')"
}

@test "--subject and --id on a lake ingested shuffled, before compaction: event-time order, every event once" {
	# Three days of telemetry in random order, ingested in three runs (and
	# a replay of the first), so each day has several parts, none in time
	# order, and copies across parts.
	dd-sim telemetry -n 3000 --days 3 --seed 5 --start 2025-06-01 > tel
	shuf --random-source=<(yes) tel > shuf
	split -n l/3 shuf run.
	for f in run.aa run.ab run.ac run.aa; do dd-lake-ingest -q -l "$LAKE" < "$f"; done
	[ "$(find "$DS" -name 'part-*.ndjson.zst' | wc -l)" -ge 9 ]
	subjects=$(jq -r .subject tel | sort -u | head -40)
	for j in 1 2; do
		for s in $subjects; do
			run -0 dd-lake-query -l "$LAKE" -j $j --subject "$s" --fields time,id --format tsv
			# The events of the subject once each, in time order (the
			# independent answer: the input sorted by time, then id for
			# ties, which the simulation does not make within a delivery).
			want=$(jq -r --arg s "$s" 'select(.subject == $s) | [.time, .id] | @tsv' tel |
				sort -t "$(printf '\t')" -k1,1 -k2,2 | awk '!seen[$0]++')
			assert_equal "$(echo "$output" | tail -n +2)" "$want"
		done
		# --id over several days: in time order too.
		ids=$(jq -r .id tel | sort | head -25)
		args=()
		for i in $ids; do args+=(--id "$i"); done
		run -0 dd-lake-query -l "$LAKE" -j $j "${args[@]}" --fields time,id --format tsv
		want=$(jq -r --arg ids "$ids" '($ids | split("\n")) as $l | select(.id | IN($l[])) |
			[.time, .id] | @tsv' tel | sort -t "$(printf '\t')" -k1,1 -k2,2)
		assert_equal "$(echo "$output" | tail -n +2)" "$want"
	done
}
