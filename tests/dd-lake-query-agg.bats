#!/usr/bin/env bats
# dd-lake-query's aggregates (--by, --agg), time zones (--tz), --sort and
# --limit of rows: every answer is compared with DuckDB's over the same
# part files (tests/duck-query.mjs), or with python3's zoneinfo where
# DuckDB has no like (hours with their offset).

load common
bats_require_minimum_version 1.5.0

setup_file() {
	[ -d "$DD_ROOT/.deps/node_modules/@duckdb/node-api" ] ||
		skip "no @duckdb/node-api in .deps: run scripts/install-deps"
	export SHARED="$BATS_FILE_TMPDIR/lake"
	# Four days around the end of US daylight saving time (2025-11-02).
	dd-sim telemetry -n 5000 --days 4 --seed 23 --start 2025-10-31 --fail 0.1 \
		> "$BATS_FILE_TMPDIR/tel.ndjson"
	dd-lake-ingest -q -l "$SHARED" < "$BATS_FILE_TMPDIR/tel.ndjson"
}

setup() {
	cd "$BATS_TEST_TMPDIR"
	[ -d "$DD_ROOT/.deps/node_modules/@duckdb/node-api" ] ||
		fail "no @duckdb/node-api in .deps: run scripts/install-deps"
}

duck() { node "$DD_ROOT/tests/duck-query.mjs" "$@"; }
same() { "$DD_ROOT/tests/same-rows" "$@"; }
SRC="read_ndjson('\$LAKE/events/*/*/*/part-*.ndjson.zst', hive_partitioning=true, columns={id: 'VARCHAR', type: 'VARCHAR', subject: 'VARCHAR', time: 'TIMESTAMPTZ', data: 'STRUCT(droneId VARCHAR, battery DOUBLE, speedMps DOUBLE, reason VARCHAR, location STRUCT(lat DOUBLE, lon DOUBLE))'})"
src() { LAKE=${1:-$SHARED}; eval "echo \"$SRC\""; }

@test "every function, by drone, equals DuckDB's" {
	dd-lake-query -l "$SHARED" --by data.droneId --agg 'count,count(data.speedMps),sum(data.battery),avg(data.battery),min(data.battery),max(data.battery),distinct(subject),p1(data.battery),p50(data.battery),p90(data.battery),p99(data.battery),first(data.battery),last(data.battery),sum(data.speedMps)' > got
	duck "select data.droneId as droneId, count(*) as count, count(data.speedMps) as count_speedMps,
		sum(data.battery) as sum_battery, avg(data.battery) as avg_battery,
		min(data.battery) as min_battery, max(data.battery) as max_battery,
		count(distinct subject) as distinct_subject,
		quantile_cont(data.battery, 0.01) as p1_battery, quantile_cont(data.battery, 0.5) as p50_battery,
		quantile_cont(data.battery, 0.9) as p90_battery, quantile_cont(data.battery, 0.99) as p99_battery,
		arg_min(data.battery, time) filter (where data.battery is not null) as first_battery,
		arg_max(data.battery, time) filter (where data.battery is not null) as last_battery,
		sum(data.speedMps) as sum_speedMps
		from $(src) group by 1 order by 1" > want
	[ "$(wc -l < want)" -gt 10 ]
	same got want
	# Names given, a key at any depth, a group with no value (nulls).
	dd-lake-query -l "$SHARED" --by type:t,data.reason --agg 'avg(data.speedMps):v,count:n' > got
	duck "select type as t, data.reason as reason, avg(data.speedMps) as v, count(*) as n
		from $(src) group by 1, 2 order by 1, 2 nulls first" > want
	same got want
	grep -q '"t":"drone.failed","reason":"[a-z-]*","v":null' got
}

@test "no --by: one row, even when nothing matched; -j changes nothing" {
	dd-lake-query -l "$SHARED" --agg 'count,p50(data.battery),distinct(data.droneId)' > got
	duck "select count(*) as count, quantile_cont(data.battery, 0.5) as p50_battery,
		count(distinct data.droneId) as distinct_droneId from $(src)" > want
	same got want
	run -0 dd-lake-query -l "$SHARED" --since 2030-01-01 --agg 'count,avg(data.battery),count(id)'
	assert_output '{"count":0,"avg_battery":null,"count_id":0}'
	args=(--by data.droneId,@hour --agg 'count,sum(data.battery),p90(data.speedMps),distinct(subject),first(time),last(data.location.lat)' --format csv)
	dd-lake-query -l "$SHARED" -j 1 "${args[@]}" > one
	[ "$(wc -l < one)" -gt 100 ]
	for j in 2 3; do
		dd-lake-query -l "$SHARED" -j $j "${args[@]}" > many
		cmp one many
	done
}

@test "time zones: every bucket on a DST change day equals DuckDB's timezone(ZONE, time)" {
	for zone in UTC America/Los_Angeles Asia/Kathmandu Australia/Lord_Howe; do
		dd-lake-query -l "$SHARED" --tz "$zone" --by @day,@week,@month,@hourofday,@weekday > got
		duck "select strftime(timezone('$zone', time), '%Y-%m-%d') as day,
			strftime(timezone('$zone', time), '%G-W%V') as week,
			strftime(timezone('$zone', time), '%Y-%m') as month,
			hour(timezone('$zone', time)) as hourofday, isodow(timezone('$zone', time)) as weekday,
			count(*) as count from $(src) group by all order by all" > want
		same got want || { echo "zone $zone"; false; }
	done
	# $DD_TZ is the default zone; --tz wins over it.
	DD_TZ=America/Los_Angeles dd-lake-query -l "$SHARED" --by @hourofday > env
	dd-lake-query -l "$SHARED" --tz America/Los_Angeles --by @hourofday > opt
	cmp env opt
	DD_TZ=Asia/Kathmandu dd-lake-query -l "$SHARED" --tz America/Los_Angeles --by @hourofday > opt2
	cmp env opt2
	! cmp -s env <(dd-lake-query -l "$SHARED" --by @hourofday)
}

@test "time zones: hours carry their offset, the repeated hour is two buckets (python zoneinfo)" {
	dd-lake-query -l "$SHARED" --tz America/Los_Angeles --by @hour --format csv | tail -n +2 | tr -d '\r' > got
	grep -q '^2025-11-02T01:00:00-07:00,' got
	grep -q '^2025-11-02T01:00:00-08:00,' got
	zstdcat $(find "$SHARED" -name 'part-*.ndjson.zst') | python3 -c '
import collections, json, sys
from datetime import datetime
from zoneinfo import ZoneInfo
z = ZoneInfo("America/Los_Angeles")
c = collections.Counter()
for l in sys.stdin:
    t = datetime.fromisoformat(json.loads(l)["time"].replace("Z", "+00:00")).astimezone(z)
    h = t.replace(minute=0, second=0, microsecond=0)
    c[h.isoformat()] += 1
for k in sorted(c, key=lambda k: datetime.fromisoformat(k)):
    print("%s,%d" % (k, c[k]))
' > want
	diff want got
	# UTC hours keep their Z.
	dd-lake-query -l "$SHARED" --by @hour --limit 1 | grep -q '{"hour":"2025-10-31T[0-9][0-9]:00:00Z","count":'
}

@test "time zones: a date alone is local midnight, for --since and --until" {
	for zone in America/Los_Angeles Asia/Kathmandu; do
		got=$(dd-lake-query -l "$SHARED" --tz "$zone" --since 2025-11-02 --until 2025-11-03 --count)
		want=$(duck "select count(*) as n from $(src) where timezone('$zone', time) >= TIMESTAMP '2025-11-02'
			and timezone('$zone', time) < TIMESTAMP '2025-11-03'" | jq -r '.n')
		[ "$got" -gt 0 ]
		assert_equal "$got" "$want"
	done
	# The local day of the change has 25 hours.
	run -0 dd-lake-query -l "$SHARED" --tz America/Los_Angeles --since 2025-11-02 --until 2025-11-03 \
		--agg 'first(time),last(time)'
	[[ "$output" == '{"first_time":"2025-11-02T07:'*'"last_time":"2025-11-03T07:'* ]] || fail "$output"
	# A full time keeps its own offset whatever the zone.
	a=$(dd-lake-query -l "$SHARED" --tz Asia/Kathmandu --since 2025-11-02T00:00:00Z --count)
	b=$(dd-lake-query -l "$SHARED" --since 2025-11-02T00:00:00Z --count)
	assert_equal "$a" "$b"
}

@test "--sort and --limit: top N rows, descending and ascending, ties by the keys" {
	dd-lake-query -l "$SHARED" --type drone.dispatched --by data.droneId:drone --agg 'count:flights,max(data.battery)' \
		--sort -flights --limit 5 > got
	duck "select data.droneId as drone, count(*) as flights, max(data.battery) as max_battery from $(src)
		where type = 'drone.dispatched' group by 1 order by flights desc, drone limit 5" > want
	[ "$(wc -l < want)" -eq 5 ]
	same got want
	dd-lake-query -l "$SHARED" --by type --agg 'avg(data.battery)' --sort avg_battery,-type --format tsv |
		tail -n +2 | cut -f1 > got
	duck "select type from $(src) group by type order by avg(data.battery) nulls first, type desc" | jq -r .type > want
	diff want got
	# --limit alone keeps the first rows in key order.
	dd-lake-query -l "$SHARED" --by subject --limit 3 > got
	duck "select subject, count(*) as count from $(src) group by 1 order by 1 limit 3" > want
	same got want
	# The chart draws the first aggregate.
	dd-lake-query -l "$SHARED" --by type --agg 'avg(data.battery),count' --format chart > chart
	grep -q '^drone.dispatched  *1 █\{60\}$' chart
}

@test "aggregates over a jq projection: the failure rate per drone" {
	dd-lake-query -l "$SHARED" --type drone.dispatched --type drone.failed \
		-e '{drone: .data.droneId, failed: (if .type == "drone.failed" then 1 else 0 end)}' \
		--by drone --agg 'sum(failed):failures,avg(failed):rate' --sort -rate,drone > got
	duck "select data.droneId as drone, sum(case when type = 'drone.failed' then 1 else 0 end) as failures,
		avg(case when type = 'drone.failed' then 1 else 0 end) as rate from $(src)
		where type in ('drone.dispatched', 'drone.failed') group by 1 order by rate desc, drone" > want
	same got want
}

@test "bad aggregates, keys, zones and sorts: one line naming it, exit 2, nothing read" {
	while IFS='|' read -r args msg; do
		eval "set -- $args"
		run --separate-stderr dd-lake-query -l /no/such/lake "$@"
		assert_equal "$status" 2
		assert_equal "$output" ""
		[ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ] || fail "$args: $stderr"
		[[ "$stderr" == *"$msg"* ]] || fail "$args: $stderr"
	done <<'EOF2'
--agg 'median(data.x)'|unknown function "median"
--agg 'p0(data.x)'|unknown function "p0"
--agg 'p100(data.x)'|unknown function "p100"
--agg sum|sum needs a path
--agg 'sum(data..x)'|bad path "data..x"
--agg 'avg(@day)'|bad path "@day"
--agg 'sum(data.x'|FUNC(PATH)
--by 'data..x'|bad key "data..x"
--by @year|bad key "@year"
--by type --tz Mars/Olympus|unknown time zone "Mars/Olympus"
--count --tz ../../etc/passwd|unknown time zone
--by type --sort nope|no column "nope" in the result (columns: type, count)
--by type --agg count:type|two columns named "type"
--by data.x,x|two columns named "x"
--sort count|--sort orders the rows of an aggregate
--by type --fields id|--fields does not apply to aggregates
--count --by type|--count excludes
--count-by type --agg count|--count-by is --by with --agg count
--by 'type:'|an empty column name
EOF2
}

@test "a value that cannot be aggregated is skipped, as SQL would, and counted on stderr" {
	run --separate-stderr dd-lake-query -l "$SHARED" --agg 'sum(data.droneId),avg(type),count'
	assert_success
	n=$(dd-lake-query -l "$SHARED" --agg 'count(data.droneId),count(type)' | jq '.count_droneId + .count_type')
	assert_output '{"sum_droneId":null,"avg_type":null,"count":5000}'
	assert_equal "$stderr" "dd-lake-query: $n values were not a number, skipped by the numeric aggregates"
	run --separate-stderr dd-lake-query -q -l "$SHARED" --agg 'sum(data.droneId)'
	assert_equal "$stderr" ""
}

@test "aggregates count each id once, unless --no-dedupe" {
	LAKE=$BATS_TEST_TMPDIR/dup
	head -1000 "$BATS_FILE_TMPDIR/tel.ndjson" > a
	dd-lake-ingest -q -l "$LAKE" < a
	dd-lake-ingest -q -l "$LAKE" < a
	[ "$(dd-lake-query -l "$LAKE" --no-dedupe --count)" -eq 2000 ]
	dd-lake-query -l "$LAKE" --by type --agg 'count,sum(data.battery)' > got
	duck "select type, count(*) as count, sum(data.battery) as sum_battery from (select distinct on (id) *
		from $(src "$LAKE")) group by 1 order by 1" > want
	same got want
	dd-lake-query -l "$LAKE" --no-dedupe --by type > got
	duck "select type, count(*) as count from $(src "$LAKE") group by 1 order by 1" > want
	same got want
}

@test "the README's DuckDB recipes: all copies, and each id once per day as dd-lake-query counts" {
	LAKE=$BATS_TEST_TMPDIR/dup
	head -1500 "$BATS_FILE_TMPDIR/tel.ndjson" > a
	dd-lake-ingest -q -l "$LAKE" < a
	head -700 a | dd-lake-ingest -q -l "$LAKE"
	# The code block after "DuckDB (tested in", statements ending in ';'.
	awk '/^count unless told. DuckDB \(tested in/ { f = 1; next }
		f && /^    / { print substr($0, 5); g = 1; next }
		g && /^$/ { exit }' "$DD_ROOT/README.md" | sed "s|LAKE/|$LAKE/|g" |
		awk '/^--/ { next } { s = s $0 "\n" } /;$/ { n++; f = "stmt." n; printf "%s", s > f; close(f); s = "" }'
	[ -s stmt.1 ] && [ -s stmt.2 ] && [ ! -e stmt.3 ]
	grep -q "part-\*.ndjson.zst" stmt.1
	duck "$(cat stmt.1)" > all
	dd-lake-query -l "$LAKE" --no-dedupe --by type:type --agg count:n > want
	same all want
	duck "$(cat stmt.2)" > once
	dd-lake-query -l "$LAKE" --by type --agg count:n > want
	same once want
	! cmp -s all once
}
