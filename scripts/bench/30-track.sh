#!/usr/bin/env bash
# dd-track at scale (issue 16): 2 million dd-sim telemetry events over one
# day, first with 200,000 deliveries, then with 1,000,000, nearly all of
# them live, read from a file into a fresh store with durable commits (WAL,
# synchronous FULL, the defaults: a commit every --flush-interval), output
# to /dev/null; peak RSS.
# Anchors, in the same run, on the same counts:
#  - redis-benchmark SET and HSET -P 64 -r K against a local redis-server
#    with persistence off (the store the article picked), on a loopback port;
#  - the sqlite3 shell upserting the same events, one row per delivery
#    (id, type, time), in one transaction with the same durability.
# Targets: >= 600,000 events/s with 200k live, >= 400,000 with 1M, peak RSS
# <= 512 MiB at 1M.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

N=${BENCH_TRACK_N:-2000000}
SIZES=${BENCH_TRACK_DELIVERIES:-"200000 1000000"}
in=$BENCH_TMP/track-telemetry.ndjson
db=$BENCH_TMP/track.db
rows=$BENCH_TMP/track-rows.tsv
up=$BENCH_TMP/track-upsert.db
cleanup() {
	[ -z "${redis:-}" ] || { kill "$redis" 2>/dev/null; wait "$redis" 2>/dev/null; }
	rm -f "$in" "$rows" "$db" "$db"-wal "$db"-shm "$db".lock "$up" "$up"-wal "$up"-shm
}
trap cleanup EXIT

# Redis on a free loopback port, no persistence.
port=$((20000 + $$ % 20000))
while redis-cli -p "$port" ping > /dev/null 2>&1; do port=$((port + 1)); done
redis-server --save '' --appendonly no --port "$port" --bind 127.0.0.1 --daemonize no \
	> "$BENCH_TMP/trk_redis.log" 2>&1 &
redis=$!
for i in $(seq 100); do redis-cli -p "$port" ping > /dev/null 2>&1 && break; sleep 0.05; done

# redis_rate TEST K: median requests/s of redis-benchmark -t TEST -P 64.
redis_rate() {
	: > "$BENCH_TMP/trk_redis.rates"
	for i in $(seq "$BENCH_REPS"); do
		redis-cli -p "$port" flushall > /dev/null
		redis-benchmark -h 127.0.0.1 -p "$port" -t "$1" -P 64 -r "$2" -n "$N" -q 2>/dev/null |
			tr '\r' '\n' | awk '/^[A-Z]+: [0-9.]+ requests per second/ {print $2}' |
			tail -n 1 >> "$BENCH_TMP/trk_redis.rates"
	done
	keys=$(redis-cli -p "$port" dbsize)
	[ "$keys" -gt 0 ] || { echo "30-track: redis holds no keys after $1" >&2; exit 1; }
	median < "$BENCH_TMP/trk_redis.rates"
}

report=""
for K in $SIZES; do
	dd-sim telemetry -n "$N" --deliveries "$K" --days 1 --seed 1 > "$in"
	BENCH_IN=$in BENCH_PREP='rm -f "$db" "$db"-wal "$db"-shm "$db".lock' \
		bench_measure trk_dd dd-track -q --db "$db"
	# The answer is checked, not just timed: the store's clock is the
	# last event's time, and every delivery seen is in the store (none
	# has ended an hour before the last event) or removed.
	last=$(tail -n 1 "$in" | jq -r .time)
	st=$(dd-track stats --db "$db")
	clock=$(echo "$st" | jq -r .streamTime)
	[ "$(jq -n --arg a "$last" --arg b "$clock" '($a | sub("\\.[0-9]+Z$"; "Z") | fromdate) == ($b | sub("\\.[0-9]+Z$"; "Z") | fromdate)')" = true ] ||
		{ echo "30-track: stream time $clock is not the last event's $last" >&2; exit 1; }
	seen=$(echo "$st" | jq '.deliveries + .removed')
	[ "$seen" -eq "$K" ] || { echo "30-track: $seen deliveries in the store, not $K" >&2; exit 1; }
	live=$(echo "$st" | jq '.deliveries - .stages.completed - .stages.failed - .stages.cancelled')

	# The sqlite3 anchor: the same events as rows to upsert.
	jq -r '[.subject, .type, .time] | @tsv' "$in" > "$rows"
	[ "$(wc -l < "$rows")" -eq "$N" ] || { echo "30-track: rows for the anchor" >&2; exit 1; }
	BENCH_PREP='rm -f "$up" "$up"-wal "$up"-shm' bench_measure trk_sql \
		sqlite3 "$up" "PRAGMA journal_mode=WAL" "PRAGMA synchronous=FULL" \
		"CREATE TABLE ev (id TEXT, type TEXT, time TEXT)" \
		"CREATE TABLE d (id TEXT PRIMARY KEY, type TEXT, time TEXT, n INTEGER) WITHOUT ROWID" \
		".mode tabs" ".import $rows ev" \
		"BEGIN" "INSERT INTO d SELECT id, type, time, 1 FROM ev WHERE true ON CONFLICT(id) DO UPDATE SET type = excluded.type, time = excluded.time, n = n + 1" "COMMIT"
	[ "$(sqlite3 "$up" "SELECT count(*) FROM d")" -eq "$K" ] ||
		{ echo "30-track: the sqlite3 anchor holds a different count" >&2; exit 1; }
	set_rate=$(redis_rate set "$K")
	hset_rate=$(redis_rate hset "$K")

	track_rate=$(rate "$N" "$trk_dd_secs")
	sql_rate=$(rate "$N" "$trk_sql_secs")
	report="$report$(
		bench_header "dd-track: $N telemetry events, $K deliveries ($live live at the end), durable commits"
		bench_row "dd-track events/s" "$track_rate" "redis SET -P 64 req/s" \
			"$(printf '%.0f' "$set_rate")" "$(ratio "$track_rate" "$set_rate")" "$trk_dd_rss"
		bench_row "" "" "redis HSET -P 64 req/s" \
			"$(printf '%.0f' "$hset_rate")" "$(ratio "$track_rate" "$hset_rate")" 0
		bench_row "" "" "sqlite3 upsert rows/s" \
			"$sql_rate" "$(ratio "$track_rate" "$sql_rate")" "$trk_sql_rss"
	)
"
done
printf '%s' "$report"
echo "(load: $(uptime | sed 's/.*load average/load average/'))"
