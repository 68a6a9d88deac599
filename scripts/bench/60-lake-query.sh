# dd-lake-query against what an analyst would otherwise run, on the same
# lake in the same run: 2 million `dd-sim telemetry` events over 30 days,
# stored by dd-lake-ingest. The anchors are DuckDB (@duckdb/node-api,
# read_ndjson with hive_partitioning; given the columns it needs, its
# fastest way to read NDJSON) and `zstdcat | jq -c`. Four questions:
#   1. the count of one type over the whole lake      (>= 1.5 x DuckDB)
#   2. every event of one delivery (--subject)        (>= 10 x DuckDB)
#   3. one week, count by type                        (>= 2 x DuckDB)
#   4. select(.data.battery < 0.05) over the lake     (>= 2 x zstdcat | jq)
# The answers must agree (else the benchmark fails), then the ratios and
# dd-lake-query's peak RSS (< 200 MiB) are printed; a missed target fails.
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
n=${BENCH_LQ_EVENTS:-2000000}
lake="$BENCH_TMP/lq-lake"
tmp="$BENCH_TMP/lq"
rm -rf "$lake" "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$lake" "$tmp"' EXIT

# A past start: dd-lake-ingest refuses events more than a day ahead.
dd-sim telemetry -n "$n" --days 30 --seed 7 --start 2025-01-01 | dd-lake-ingest -q -l "$lake"
parts=$(find "$lake/events" -name 'part-*.ndjson.zst' | sort)
[ -n "$parts" ] || { echo "60-lake-query: the lake is empty" >&2; exit 1; }

# DuckDB, run as an analyst runs it: one node process per question.
cat > "$tmp/duck.mjs" <<EOF
import { createRequire } from 'node:module';
const require = createRequire('$root/.deps/package.json');
const { DuckDBInstance } = require('@duckdb/node-api');
const db = await DuckDBInstance.create(':memory:');
const con = await db.connect();
const r = await con.runAndReadAll(process.argv[2]);
for (const row of r.getRowsJson()) console.log(row.join('\t'));
EOF
src() {
	printf "read_ndjson('%s/events/*/*/*/*.ndjson.zst', hive_partitioning=true, columns={%s})" \
		"$lake" "$1"
}
subject=$(dd-lake-query -l "$lake" --since 2025-01-16 --limit 1 | jq -r .subject)
week="--since 2025-01-08 --until 2025-01-15"
sql1="select count(*) from $(src "type: 'VARCHAR'") where type = 'drone.delivered'"
sql2="select id from $(src "id: 'VARCHAR', subject: 'VARCHAR'") where subject = '$subject'"
sql3="select type, count(*) from $(src "type: 'VARCHAR', time: 'TIMESTAMPTZ'") where time >= '2025-01-08T00:00:00Z' and time < '2025-01-15T00:00:00Z' group by type order by type"
filter='select(.data.battery < 0.05)'
jqcat() { zstdcat -- "$@" | jq -c "$filter"; }

# The answers first.
fail() { echo "60-lake-query: $*" >&2; exit 1; }
a1=$(dd-lake-query -l "$lake" --type drone.delivered --count)
b1=$(node "$tmp/duck.mjs" "$sql1")
[ "$a1" = "$b1" ] && [ "$a1" -gt 0 ] || fail "count of a type: dd-lake-query $a1, DuckDB $b1"
dd-lake-query -l "$lake" --subject "$subject" | jq -r .id | sort > "$tmp/a2"
node "$tmp/duck.mjs" "$sql2" | sort > "$tmp/b2"
[ -s "$tmp/a2" ] && cmp -s "$tmp/a2" "$tmp/b2" || fail "events of $subject differ from DuckDB's"
dd-lake-query -l "$lake" $week --count-by type --format tsv | tail -n +2 > "$tmp/a3"
node "$tmp/duck.mjs" "$sql3" > "$tmp/b3"
[ -s "$tmp/a3" ] && cmp -s "$tmp/a3" "$tmp/b3" || fail "week by type differs from DuckDB's"
dd-lake-query -l "$lake" -e "$filter" | jq -r .id | sort > "$tmp/a4"
jqcat $parts | jq -r .id | sort > "$tmp/b4"
[ -s "$tmp/a4" ] && cmp -s "$tmp/a4" "$tmp/b4" || fail "the jq filter's events differ from zstdcat | jq"

# Then the clocks.
bench_measure q1 dd-lake-query -l "$lake" --type drone.delivered --count
bench_measure d1 node "$tmp/duck.mjs" "$sql1"
bench_measure q2 dd-lake-query -l "$lake" --subject "$subject"
bench_precise q2p dd-lake-query -l "$lake" --subject "$subject"
bench_measure d2 node "$tmp/duck.mjs" "$sql2"
bench_measure q3 dd-lake-query -l "$lake" $week --count-by type
bench_measure d3 node "$tmp/duck.mjs" "$sql3"
bench_measure q4 dd-lake-query -l "$lake" -e "$filter"
bench_measure j4 sh -c 'zstdcat -- "$@" | jq -c "select(.data.battery < 0.05)"' sh $parts

r1=$(ratio "$d1_secs" "$q1_secs")
r2=$(ratio "$d2_secs" "$q2p_secs")
r3=$(ratio "$d3_secs" "$q3_secs")
r4=$(ratio "$j4_secs" "$q4_secs")
bench_header "dd-lake-query, $n events over 30 days ($(du -sh "$lake" | cut -f1) lake)"
bench_row "1 count of a type, s" "$q1_secs" "DuckDB, s" "$d1_secs" "$r1" "$q1_rss"
bench_row "2 events of one delivery, s" "$q2p_secs" "DuckDB, s" "$d2_secs" "$r2" "$q2_rss"
bench_row "3 one week, count by type, s" "$q3_secs" "DuckDB, s" "$d3_secs" "$r3" "$q3_rss"
bench_row "4 jq select over the lake, s" "$q4_secs" "zstdcat | jq -c, s" "$j4_secs" "$r4" "$q4_rss"

status=0
check() {
	if awk -v r="$2" -v t="$3" 'BEGIN { exit !(r >= t) }'; then
		printf '  %s: %s x (target %s x) ok\n' "$1" "$2" "$3"
	else
		printf '  %s: %s x, below the target of %s x\n' "$1" "$2" "$3"
		status=1
	fi
}
check "1 count of a type" "$r1" 1.5
check "2 events of one delivery" "$r2" 10
check "3 one week by type" "$r3" 2
check "4 jq select" "$r4" 2
max=0
for k in "$q1_rss" "$q2_rss" "$q3_rss" "$q4_rss"; do [ "$k" -gt "$max" ] && max=$k; done
if [ "$max" -lt $((200 * 1024)) ]; then
	printf '  peak RSS %s MiB (target < 200 MiB) ok\n' "$((max / 1024))"
else
	printf '  peak RSS %s MiB, over 200 MiB\n' "$((max / 1024))"
	status=1
fi
exit $status
