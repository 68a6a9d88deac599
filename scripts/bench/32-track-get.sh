#!/usr/bin/env bash
# Batch lookups (issue 16): `dd-track get -` over a store of 1,000,000
# deliveries (built from 2M dd-sim telemetry events over one day), asked
# for every delivery once in a shuffled order, from one process; and a
# single `dd-track get ID` (hyperfine, the median of 10 ids).
# Anchors, in the same run: redis-benchmark GET over as many keys, with
# one client and no pipelining, and pipelined (-P 64), against a local
# redis-server with persistence off.
# Targets: >= 300,000 lookups/s; a single get <= 2 ms (the figure
# issue 16 sets for dd-history at 5M deliveries, in 50-history.sh).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

K=${BENCH_GET_DELIVERIES:-1000000}
in=$BENCH_TMP/get-telemetry.ndjson
db=$BENCH_TMP/get-track.db
ids=$BENCH_TMP/get.ids
cleanup() {
	[ -z "${redis:-}" ] || { kill "$redis" 2>/dev/null; wait "$redis" 2>/dev/null; }
	rm -f "$in" "$ids" "$db" "$db"-wal "$db"-shm "$db".lock "$BENCH_TMP/get.out"
}
trap cleanup EXIT

dd-sim telemetry -n $((2 * K)) --deliveries "$K" --days 1 --seed 2 > "$in"
dd-track -q --db "$db" < "$in" > /dev/null
rm -f "$in"
sqlite3 -readonly "$db" "SELECT id FROM delivery" | shuf --random-source=<(yes) > "$ids"
n=$(wc -l < "$ids")
[ "$n" -gt $((K * 9 / 10)) ] || { echo "32-track-get: $n deliveries stored" >&2; exit 1; }

BENCH_IN=$ids BENCH_OUT=$BENCH_TMP/get.out bench_measure get dd-track get --db "$db" -
# The answers are checked: one line per id, in the order asked.
cmp <(jq -r .deliveryId "$BENCH_TMP/get.out") "$ids" ||
	{ echo "32-track-get: the answers are not the ids asked, in order" >&2; exit 1; }
# A single get: the whole process, for 10 ids of the shuffled list, 10
# runs each (the median of all). Anchor: the sqlite3 shell, a process
# too, printing the same delivery's row.
: > "$BENCH_TMP/get1.cmds"
: > "$BENCH_TMP/get1sql.cmds"
for one in $(head -n 10 "$ids"); do
	echo "$DD_BIN/dd-track --db $db get $one" >> "$BENCH_TMP/get1.cmds"
	echo "sqlite3 -readonly $db \"SELECT * FROM delivery WHERE id = '$one'\"" >> "$BENCH_TMP/get1sql.cmds"
done
# median_ms FILE: hyperfine over each command of FILE, the median of all runs.
median_ms() {
	local cmds=()
	mapfile -t cmds < "$1"
	hyperfine -N --style none --warmup 3 --runs 10 --export-json "$BENCH_TMP/get1.json" \
		"${cmds[@]}" > /dev/null 2>&1
	jq '[.results[].times[]] | sort | .[length / 2 | floor] * 1000 * 100 | round / 100' \
		"$BENCH_TMP/get1.json"
}
one_ms=$(median_ms "$BENCH_TMP/get1.cmds")
sql_ms=$(median_ms "$BENCH_TMP/get1sql.cmds")

port=$((20000 + $$ % 20000))
while redis-cli -p "$port" ping > /dev/null 2>&1; do port=$((port + 1)); done
redis-server --save '' --appendonly no --port "$port" --bind 127.0.0.1 --daemonize no \
	> "$BENCH_TMP/get_redis.log" 2>&1 &
redis=$!
for i in $(seq 100); do redis-cli -p "$port" ping > /dev/null 2>&1 && break; sleep 0.05; done
redis-benchmark -h 127.0.0.1 -p "$port" -t set -P 64 -r "$K" -n $((2 * K)) -q > /dev/null 2>&1
# rget ARGS...: median GET requests/s.
rget() {
	: > "$BENCH_TMP/get_redis.rates"
	for i in $(seq "$BENCH_REPS"); do
		redis-benchmark -h 127.0.0.1 -p "$port" -t get -r "$K" "$@" -q 2>/dev/null |
			tr '\r' '\n' | awk '/^GET: [0-9.]+ requests per second/ {print $2}' |
			tail -n 1 >> "$BENCH_TMP/get_redis.rates"
	done
	median < "$BENCH_TMP/get_redis.rates"
}
one_client=$(rget -c 1 -n 100000)
piped=$(rget -P 64 -n "$K")

get_rate=$(rate "$n" "$get_secs")
bench_header "batch lookups: dd-track get - over $n deliveries"
bench_row "dd-track get - lookups/s" "$get_rate" "redis GET 1 client /s" \
	"$(printf '%.0f' "$one_client")" "$(ratio "$get_rate" "$one_client")" "$get_rss"
bench_row "" "" "redis GET -P 64 /s" \
	"$(printf '%.0f' "$piped")" "$(ratio "$get_rate" "$piped")" 0
bench_row "dd-track get ID ms (median, a process)" "$one_ms" "sqlite3 shell ms" \
	"$sql_ms" "$(ratio "$one_ms" "$sql_ms")" 0
echo "(load: $(uptime | sed 's/.*load average/load average/'))"
