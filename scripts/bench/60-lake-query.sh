# dd-lake-query against DuckDB, the engine an analyst would otherwise
# reach for, on the same lake in the same run: `dd-sim telemetry` stored
# by dd-lake-ingest, BENCH_LQ_PER_DAY events a day (default 66667: 2M over
# 30 days) for each of BENCH_LQ_DAYS (default "30 365"), plus a
# `deliveries` dataset of one delivery.summary per delivery (its durationS
# from the telemetry). DuckDB's figure is its in-process query time
# (read_ndjson with hive_partitioning, the columns it needs given; node's
# start not counted), dd-lake-query's the whole process; medians of
# BENCH_REPS. Every question is answered first by both and the answers
# compared (tests/same-rows), then timed; a different answer or a missed
# target fails the benchmark:
#   Q1-Q12, the analyst's questions, one command each     >= 2 x DuckDB
#   Q13 select(.data.location.lat > 47.7 and .data.speedMps < 5) (jq: null < 5)
#                                                         >= 1.5 x DuckDB
#   Q14 --count-by type over the lake, de-duplicating     >= 3 x DuckDB
#   -j 2 against -j 1 on a full-scan aggregate            >= 1.7 x
#   peak RSS of every dd-lake-query                       <= 64 MiB + groups
#
# Each lake is built once and kept in $BENCH_TMP/lq-lakes (the 365-day one
# takes minutes to make and some 900 MB); a rerun with the same
# parameters reuses it (BENCH_LQ_REBUILD=1 makes them anew, BENCH_LQ_KEEP=0
# removes them at the end; BENCH_LQ_BUILD_ONLY=1 builds them and stops, so
# the 365-day one can be made ahead, at low priority).
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
per_day=${BENCH_LQ_PER_DAY:-66667}
tmp="$BENCH_TMP/lq"
lakes="$BENCH_TMP/lq-lakes"
rm -rf "$tmp"
mkdir -p "$tmp" "$lakes"
trap 'rm -rf "$tmp"; [ "${BENCH_LQ_KEEP:-1}" = 1 ] || rm -rf "$lakes"' EXIT
fail() { echo "60-lake-query: $*" >&2; exit 1; }

# DuckDB in process: REPS runs of one statement, the rows of the first as
# JSON objects into OUT, the median seconds on stdout.
cat > "$tmp/duck.mjs" <<EOF
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
const require = createRequire('$root/.deps/package.json');
const { DuckDBInstance } = require('@duckdb/node-api');
const [reps, out, ...sql] = process.argv.slice(2);
const db = await DuckDBInstance.create(':memory:');
const con = await db.connect();
for (const s of sql.slice(0, -1)) await con.run(s);
const times = [];
for (let i = 0; i < Number(reps); i++) {
	const t0 = performance.now();
	const r = await con.runAndReadAll(sql[sql.length - 1]);
	times.push((performance.now() - t0) / 1000);
	if (i === 0)
		writeFileSync(out, r.getRowObjectsJson().map((o) => JSON.stringify(o) + '\n').join(''));
}
times.sort((a, b) => a - b);
console.log(times[Math.floor(times.length / 2)].toFixed(6));
EOF

# One delivery.summary per delivery, from its telemetry: dated by its end
# (delivered or failed), durationS from dispatch to that end; the members
# dd-lake-ingest checks (outcome, created, ended, events) as the view has them.
summaries() {
	python3 -c '
import json, sys
from datetime import datetime
start, end, drone, count = {}, {}, {}, {}
for l in sys.stdin:
    e = json.loads(l)
    s, t = e["subject"], e["type"]
    count[s] = count.get(s, 0) + 1
    if t == "drone.dispatched":
        start[s] = e["time"]; drone[s] = e["data"]["droneId"]
    elif t in ("drone.delivered", "drone.failed"):
        end[s] = (e["time"], "completed" if t == "drone.delivered" else "failed")
ms = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
for s, (t, outcome) in end.items():
    if s not in start:
        continue
    d = {"deliveryId": s, "droneId": drone[s], "outcome": outcome, "created": start[s],
         "dispatched": start[s], "ended": t, "events": count[s],
         "durationS": round(ms(t) - ms(start[s]), 3)}
    print(json.dumps({"specversion": "1.0", "id": s + ":summary", "source": "/bench",
        "type": "delivery.summary", "time": t, "subject": s, "data": d}, separators=(",", ":")))
'
}

status=0
check() {
	if awk -v r="$2" -v t="$3" 'BEGIN { exit !(r >= t) }'; then
		printf '  %s: %s x (target %s x) ok\n' "$1" "$2" "$3"
	else
		printf '  %s: %s x, below the target of %s x\n' "$1" "$2" "$3"
		status=1
	fi
}

for days in ${BENCH_LQ_DAYS:-30 365}; do
	n=$((per_day * days))
	lake="$lakes/lake-$days-$per_day"
	if [ "${BENCH_LQ_REBUILD:-0}" = 1 ] || [ ! -e "$lake/.complete" ]; then
		rm -rf "$lake"
		# One pass of the telemetry: into the lake, and into the
		# summaries of the deliveries dataset beside it.
		rm -f "$tmp/tel.fifo"
		mkfifo "$tmp/tel.fifo"
		summaries < "$tmp/tel.fifo" > "$tmp/summaries.ndjson" &
		spid=$!
		dd-sim telemetry -n "$n" --days "$days" --seed 7 --start 2025-01-01 --fail 0.1 |
			tee "$tmp/tel.fifo" | dd-lake-ingest -q -l "$lake"
		wait "$spid"
		dd-lake-ingest -q -l "$lake" --dataset deliveries < "$tmp/summaries.ndjson"
		rm -f "$tmp/summaries.ndjson"
		touch "$lake/.complete"
	fi
	[ "${BENCH_LQ_BUILD_ONLY:-0}" = 1 ] && continue
	ev="read_ndjson('$lake/events/*/*/*/part-*.ndjson.zst', hive_partitioning=true, columns="
	d_day="{type: 'VARCHAR', time: 'TIMESTAMPTZ'}"
	d_drone="{type: 'VARCHAR', data: 'STRUCT(droneId VARCHAR)'}"
	d_bat="{type: 'VARCHAR', time: 'TIMESTAMPTZ', data: 'STRUCT(droneId VARCHAR, battery DOUBLE)'}"
	d_pos="{type: 'VARCHAR', data: 'STRUCT(droneId VARCHAR, speedMps DOUBLE, location STRUCT(lat DOUBLE))'}"
	dl="read_ndjson('$lake/deliveries/*/*/*/part-*.ndjson.zst', hive_partitioning=true, columns={data: 'STRUCT(durationS DOUBLE)'})"
	la="America/Los_Angeles"
	mid=$(date -u -d "2025-01-01 + $((days / 2)) days" +%F)
	next=$(date -u -d "$mid + 1 day" +%F)
	lat='select(.data.location.lat > 47.7 and .data.speedMps < 5)'
	# name | dd-lake-query arguments | DuckDB statement ("|" separated, one a line)
	cat > "$tmp/questions" <<EOF
Q1 deliveries per day by outcome|--type drone.delivered --type drone.failed --by @day,type|select strftime(time, '%Y-%m-%d') as day, type, count(*) as count from $ev$d_day) where type in ('drone.delivered', 'drone.failed') group by all order by all
Q2 failure rate per drone|--type drone.dispatched --type drone.failed --by data.droneId --agg 'count:events,count(data.reason):failed' --sort droneId|select data.droneId as droneId, count(*) as events, count(*) filter (where type = 'drone.failed') as failed from $ev$d_drone) where type in ('drone.dispatched', 'drone.failed') group by 1 order by 1
Q3 delivery duration mean p50 p90 p99|--dataset deliveries --agg 'avg(data.durationS),p50(data.durationS),p90(data.durationS),p99(data.durationS)'|select avg(data.durationS) as avg_durationS, quantile_cont(data.durationS, 0.5) as p50_durationS, quantile_cont(data.durationS, 0.9) as p90_durationS, quantile_cont(data.durationS, 0.99) as p99_durationS from $dl
Q4 top 10 drones by flights|--type drone.dispatched --by data.droneId --agg count:flights --sort -flights --limit 10|select data.droneId as droneId, count(*) as flights from $ev$d_drone) where type = 'drone.dispatched' group by 1 order by flights desc, droneId limit 10
Q5 busiest hours, Seattle time|--tz $la --type drone.dispatched --by @hourofday --sort -count --limit 5|select hour(timezone('$la', time)) as hourofday, count(*) as count from $ev$d_day) where type = 'drone.dispatched' group by 1 order by count desc, hourofday limit 5
Q6 battery per drone: first, last, mean|--type drone.position --by data.droneId --agg 'first(data.battery),last(data.battery),avg(data.battery)'|select data.droneId as droneId, arg_min(data.battery, time) filter (where data.battery is not null) as first_battery, arg_max(data.battery, time) filter (where data.battery is not null) as last_battery, avg(data.battery) as avg_battery from $ev$d_bat) where type = 'drone.position' group by 1 order by 1
Q7 distinct deliveries per day|--by @day --agg 'distinct(subject):deliveries'|select strftime(time, '%Y-%m-%d') as day, count(distinct subject) as deliveries from $ev{subject: 'VARCHAR', time: 'TIMESTAMPTZ'}) group by 1 order by 1
Q8 speed sum and max per drone|--type drone.position --by data.droneId --agg 'sum(data.speedMps),max(data.speedMps)'|select data.droneId as droneId, sum(data.speedMps) as sum_speedMps, max(data.speedMps) as max_speedMps from $ev$d_pos) where type = 'drone.position' group by 1 order by 1
Q9 one local day in Seattle, by type|--tz $la --since $mid --until $next --by type|select type, count(*) as count from $ev$d_day) where timezone('$la', time) >= TIMESTAMP '$mid' and timezone('$la', time) < TIMESTAMP '$next' group by 1 order by 1
Q10 compound filter, count|-e '$lat' --agg count|select count(*) as count from $ev$d_pos) where data.location.lat > 47.7 and (data.speedMps < 5 or data.speedMps is null)
Q11 CSV of three fields|--type drone.failed --fields time,subject,data.droneId --format csv|select time, subject, data.droneId as droneId from $ev{type: 'VARCHAR', time: 'VARCHAR', subject: 'VARCHAR', data: 'STRUCT(droneId VARCHAR)'}) where type = 'drone.failed'
Q12 failures per week and reason|--type drone.failed --by @week,data.reason --sort week,-count|select strftime(time, '%G-W%V') as week, data.reason as reason, count(*) as count from $ev{type: 'VARCHAR', time: 'TIMESTAMPTZ', data: 'STRUCT(reason VARCHAR)'}) where type = 'drone.failed' group by 1, 2 order by week, count desc, reason
Q13 the compound select, events|-e '$lat'|select count(*) from $ev$d_pos) where data.location.lat > 47.7 and (data.speedMps < 5 or data.speedMps is null)
Q14 --count-by type, de-duplicating|--count-by type|select type, count(*) as count from $ev{type: 'VARCHAR'}) group by 1 order by 1
EOF
	bench_header "dd-lake-query, $n events over $days days ($(du -sh "$lake" | cut -f1) lake), $(uptime | sed 's/.*load/load/')"
	maxrss=0
	while IFS='|' read -r name args sql; do
		key=${name%% *}
		eval "set -- $args"
		# The answers first.
		dsecs=$(node "$tmp/duck.mjs" "$BENCH_REPS" "$tmp/$key.duck" "$sql")
		dd-lake-query -l "$lake" "$@" > "$tmp/$key.dd"
		case $key in
		Q11)	# CSV rows, in any order (DuckDB reads files in parallel).
			tail -n +2 "$tmp/$key.dd" | tr -d '\r' | sort > "$tmp/a"
			jq -r '[.time, .subject, .droneId] | @csv' "$tmp/$key.duck" | tr -d '"' | sort > "$tmp/b"
			[ -s "$tmp/a" ] && cmp -s "$tmp/a" "$tmp/b" || fail "$name: the rows differ from DuckDB's" ;;
		Q13)	[ "$(wc -l < "$tmp/$key.dd")" = "$(jq -r '.[]' "$tmp/$key.duck" | head -1)" ] ||
				fail "$name: $(wc -l < "$tmp/$key.dd") events, DuckDB $(cat "$tmp/$key.duck")" ;;
		*)	"$root/tests/same-rows" "$tmp/$key.dd" "$tmp/$key.duck" || fail "$name: differs from DuckDB" ;;
		esac
		bench_measure dd dd-lake-query -l "$lake" "$@"
		r=$(ratio "$dsecs" "$dd_secs")
		bench_row "$name, s" "$dd_secs" "DuckDB, s" "$dsecs" "$r" "$dd_rss"
		[ "$dd_rss" -gt "$maxrss" ] && maxrss=$dd_rss
		eval "r_$key=$r"
	done < "$tmp/questions"
	# Parallelism: the same full-scan aggregate on one core and on two.
	agg=(--by data.droneId --agg 'count,avg(data.battery),p90(data.speedMps)')
	bench_measure j1 dd-lake-query -l "$lake" -j 1 "${agg[@]}"
	bench_measure j2 dd-lake-query -l "$lake" -j 2 "${agg[@]}"
	rj=$(ratio "$j1_secs" "$j2_secs")
	bench_row "full-scan aggregate -j 2, s" "$j2_secs" "-j 1, s" "$j1_secs" "$rj" "$j2_rss"
	for k in 1 2 3 4 5 6 7 8 9 10 11 12; do
		eval "check \"Q$k at $days days\" \"\$r_Q$k\" 2"
	done
	check "Q13 compound select at $days days" "$r_Q13" 1.5
	check "Q14 count by type at $days days" "$r_Q14" 3
	check "-j 2 / -j 1 at $days days" "$rj" 1.7
	if [ "$maxrss" -le $((64 * 1024 + 16 * 1024)) ]; then
		printf '  peak RSS %s MiB (target 64 MiB + groups) ok\n' "$((maxrss / 1024))"
	else
		printf '  peak RSS %s MiB, over 64 MiB + groups\n' "$((maxrss / 1024))"
		status=1
	fi
done
exit $status
