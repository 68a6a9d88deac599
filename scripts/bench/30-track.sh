#!/usr/bin/env bash
# dd-track: 2 million dd-sim telemetry events over 200,000 deliveries, read
# from a file, into a fresh store with durable commits (WAL, synchronous
# FULL, a commit every 5000 events), output to /dev/null; peak RSS.
# Anchor, in the same run: redis-benchmark -t set -P 64 -r 200000 against a
# local redis-server with persistence off (the store a user would otherwise
# pick), started here on a loopback port and stopped at the end.
# Targets (issue 5): >= 300,000 events/s, < 200 MiB.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

N=${BENCH_TRACK_N:-2000000}
K=${BENCH_TRACK_DELIVERIES:-200000}
in=$BENCH_TMP/track-telemetry.ndjson
db=$BENCH_TMP/track.db
dd-sim telemetry -n "$N" --deliveries "$K" --seed 1 > "$in"

BENCH_IN=$in BENCH_PREP='rm -f "$db" "$db"-wal "$db"-shm "$db".lock' \
	bench_measure trk_dd dd-track -q --db "$db"

# The answer is checked, not just timed: the store's clock is the last
# event's time, and the status events are one per stage change of every
# flight (dispatched, picked up, ended: 3 per delivery).
last=$(tail -n 1 "$in" | jq -r .time)
clock=$(dd-track stats --db "$db" | jq -r .streamTime)
[ "$(jq -n --arg a "$last" --arg b "$clock" '($a | sub("\\.[0-9]+Z$"; "Z") | fromdate) == ($b | sub("\\.[0-9]+Z$"; "Z") | fromdate)')" = true ] ||
	{ echo "30-track: stream time $clock is not the last event's $last" >&2; exit 1; }
rm -f "$db" "$db"-wal "$db"-shm
emitted=$(dd-track -q --db "$db" --only-status < "$in" | wc -l)
[ "$emitted" -eq $((3 * K)) ] ||
	{ echo "30-track: $emitted status events, not $((3 * K))" >&2; exit 1; }

# Redis on a free loopback port, no persistence.
port=$((20000 + $$ % 20000))
while redis-cli -p "$port" ping > /dev/null 2>&1; do port=$((port + 1)); done
redis-server --save '' --appendonly no --port "$port" --bind 127.0.0.1 --daemonize no \
	> "$BENCH_TMP/trk_redis.log" 2>&1 &
redis=$!
trap 'kill $redis 2>/dev/null; wait $redis 2>/dev/null' EXIT
for i in $(seq 100); do redis-cli -p "$port" ping > /dev/null 2>&1 && break; sleep 0.05; done
: > "$BENCH_TMP/trk_redis.rates"
for i in $(seq "$BENCH_REPS"); do
	redis-cli -p "$port" flushall > /dev/null
	redis-benchmark -h 127.0.0.1 -p "$port" -t set -P 64 -r "$K" -n "$N" -q 2>/dev/null |
		tr '\r' '\n' | awk '/^SET: [0-9.]+ requests per second/ {print $2}' | tail -n 1 \
		>> "$BENCH_TMP/trk_redis.rates"
done
keys=$(redis-cli -p "$port" dbsize)
[ "$keys" -gt $((K * 9 / 10)) ] || { echo "30-track: redis holds $keys keys" >&2; exit 1; }
redis_rate=$(median < "$BENCH_TMP/trk_redis.rates")

track_rate=$(rate "$N" "$trk_dd_secs")
bench_header "dd-track: $N telemetry events, $K deliveries, durable commits"
bench_row "dd-track events/s" "$track_rate" "redis SET -P 64 req/s" \
	"$(printf '%.0f' "$redis_rate")" "$(ratio "$track_rate" "$redis_rate")" "$trk_dd_rss"
rm -f "$in" "$db" "$db"-wal "$db"-shm "$db".lock
