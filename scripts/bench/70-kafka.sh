#!/usr/bin/env bash
# Kafka in and out (issue 17), against librdkafka's mock cluster on
# loopback (dd-kafka-mock, built with the tests): dd-track with durable
# commits over N dd-sim telemetry events,
#   consuming them from a 4-partition topic (--kafka --topic --kafka-eof)
#     against the same program reading the same events from a file;
#   producing its output to a topic (--kafka-out, acks=all, idempotent)
#     against the same program writing its output to a file.
# Targets: both >= 0.8. The mock keeps about 5 MB a partition (older
# messages are dropped), so the input is spread over 16 partitions and the
# script checks that none was cut.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

N=${BENCH_KAFKA_N:-200000}
K=${BENCH_KAFKA_DELIVERIES:-20000}
P=16
in=$BENCH_TMP/kafka-telemetry.ndjson
db=$BENCH_TMP/kafka-track.db
out=$BENCH_TMP/kafka-track.out
dd-sim telemetry -n "$N" --deliveries "$K" --seed 1 > "$in"

dd-kafka-mock -t 3600 tel:$P out:$P > "$BENCH_TMP/kafka.addr" 2> "$BENCH_TMP/kafka-mock.log" &
mockpid=$!
trap 'kill $mockpid 2>/dev/null; wait $mockpid 2>/dev/null' EXIT
for i in $(seq 100); do [ -s "$BENCH_TMP/kafka.addr" ] && break; sleep 0.05; done
B=$(cat "$BENCH_TMP/kafka.addr")
[ -n "$B" ] || { echo "70-kafka: the mock cluster did not start" >&2; exit 1; }
# Keyed by subject, written as a busy producer writes: in batches of
# thousands (kcat reading a file; the consumer's rate depends on it, since
# the mock broker answers a fetch with one batch a partition, where a real
# broker fills max.partition.fetch.bytes).
perl -ne 'print /"subject":"([^"]*)"/ ? "$1\t$_" : "\t$_"' "$in" > "$in.keyed"
kcat -P -b "$B" -t tel -K $'\t' -X linger.ms=100 -X batch.num.messages=10000 < "$in.keyed"
rm -f "$in.keyed"
# offsets TOPIC WHICH: the sum over the partitions of the first (-2) or
# next (-1) offsets.
offsets() {
	local q=() p
	for ((p = 0; p < P; p++)); do q+=(-t "$1:$p:$2"); done
	kcat -Q -b "$B" "${q[@]}" 2> /dev/null | awk '{s += $NF} END {print s + 0}'
}
[ "$(offsets tel -2)" -eq 0 ] && [ "$(offsets tel -1)" -eq "$N" ] ||
	{ echo "70-kafka: the mock cluster does not hold all $N events" >&2; exit 1; }

prep='rm -f "$db" "$db"-wal "$db"-shm "$db".lock'
BENCH_IN=$in BENCH_PREP=$prep bench_measure kf_file dd-track -q --db "$db"
BENCH_PREP=$prep bench_measure kf_in dd-track -q --db "$db" --kafka "$B" --topic tel --kafka-eof
# The answer is checked, not just timed: the topic still starts at 0 (the
# mock dropped nothing) and the store's offsets reach its end.
got=$(sqlite3 "$db" "SELECT sum(next) FROM kafka_offsets")
[ "$got" -eq "$N" ] && [ "$(offsets tel -2)" -eq 0 ] ||
	{ echo "70-kafka: the store's offsets say $got events, not $N" >&2; exit 1; }

BENCH_IN=$in BENCH_OUT=$out BENCH_PREP=$prep bench_measure kf_fout dd-track -q --db "$db"
lines=$(wc -l < "$out")
BENCH_IN=$in BENCH_PREP=$prep bench_measure kf_out dd-track -q --db "$db" --kafka-out out \
	--kafka-out-brokers "$B"
# Each run produced the whole output once more.
sent=$(offsets out -1)
[ "${sent:-0}" -ge $((lines * BENCH_REPS)) ] ||
	{ echo "70-kafka: the topic holds ${sent:-0} events, not $((lines * BENCH_REPS))" >&2; exit 1; }

file_rate=$(rate "$N" "$kf_file_secs")
in_rate=$(rate "$N" "$kf_in_secs")
fout_rate=$(rate "$N" "$kf_fout_secs")
out_rate=$(rate "$N" "$kf_out_secs")
bench_header "dd-track and Kafka: $N telemetry events, mock cluster on loopback"
bench_row "--kafka --topic ($P partitions) events/s" "$in_rate" "from a file events/s" \
	"$file_rate" "$(ratio "$in_rate" "$file_rate")" "$kf_in_rss"
bench_row "--kafka-out (acks=all) events/s" "$out_rate" "to a file events/s" \
	"$fout_rate" "$(ratio "$out_rate" "$fout_rate")" "$kf_out_rss"
rm -f "$in" "$out" "$db" "$db"-wal "$db"-shm "$db".lock
