# dd-lake-ingest against `zstd -3 -c`, the physical limit of compressing
# the same input on one core: dd-sim telemetry over 30 days, piped from a
# file. Prints throughput (MB/s of input) and its ratio (required >= 0.75),
# compressed size against zstd's (required within 10 %), the metadata's
# size, and peak RSS (required under 100 MiB, not growing with input).
#   BENCH_LAKE_EVENTS  events of the main input (default 1000000)
#   BENCH_LAKE_BIG     events of the RSS growth check (default: 4 x that;
#                      0 skips it)
#   BENCH_LAKE_SHUF5Y  events of the shuffled 5-year case (default 600000;
#                      0 skips it)
. "$(dirname "$0")/lib.sh"
n=${BENCH_LAKE_EVENTS:-1000000}
big=${BENCH_LAKE_BIG:-$((4 * n))}
# Events must lie in the past (the far future is rejected): the 30 days
# before the last month.
start=$(date -u -d '-32 days' +%Y-%m-%d)
gen() { dd-sim telemetry -n "$1" --days 30 --seed 1 --start "$start"; }
in="$BENCH_TMP/lake-$start-$n.ndjson"
[ -s "$in" ] || gen "$n" > "$in"
bytes=$(stat -c %s "$in")
mb=$(awk -v b="$bytes" 'BEGIN{print b/1e6}')
lake="$BENCH_TMP/lake"

# CPU seconds (user + sys) of one run, to show what the second core does.
cpu() { /usr/bin/time -f '%U %S' -o "$BENCH_TMP/lake.cpu" "$@" < "$in" > /dev/null;
	awk '{printf "%.2f", $1 + $2}' "$BENCH_TMP/lake.cpu"; }

BENCH_IN=$in BENCH_OUT="$BENCH_TMP/lake.zst" bench_measure zstd zstd -q -3 -c
BENCH_IN=$in BENCH_PREP='rm -rf "$lake"' bench_measure ingest \
	dd-lake-ingest -q -l "$lake" --level 3
zbytes=$(stat -c %s "$BENCH_TMP/lake.zst")
parts=$(find "$lake/events" -name 'part-*.ndjson.zst')
pbytes=$(echo "$parts" | xargs stat -c %s | awk '{s += $1} END {print s}')
mbytes=$(find "$lake/events" -name '_part-*.meta' -print0 | xargs -0 stat -c %s | awk '{s += $1} END {print s}')
# The answers must agree: every event in, nothing else.
stored=$(echo "$parts" | xargs zstdcat | wc -l)
[ "$stored" -eq "$n" ] || { echo "20-lake-ingest: $stored events in the lake, $n in the input" >&2; exit 1; }
zcpu=$(cpu zstd -q -3 -c)
rm -rf "$lake"
icpu=$(cpu dd-lake-ingest -q -l "$lake")

bench_header "dd-lake-ingest, $n dd-sim telemetry events over 30 days ($(printf %.0f "$mb") MB), $BENCH_REPS runs"
tput=$(ratio "$zstd_secs" "$ingest_secs")
bench_row "dd-lake-ingest MB/s (ratio >= 0.75)" "$(awk -v m="$mb" -v s="$ingest_secs" 'BEGIN{printf "%.0f", m/s}')" \
	"zstd -3 -c MB/s" "$(awk -v m="$mb" -v s="$zstd_secs" 'BEGIN{printf "%.0f", m/s}')" "$tput" "$ingest_rss"
bench_row "CPU seconds, one run" "$icpu" "zstd -3 -c" "$zcpu" "$(ratio "$icpu" "$zcpu")" "$zstd_rss"
bench_row "compressed bytes, parts (ratio <= 1.10)" "$pbytes" "zstd -3 bytes" "$zbytes" \
	"$(ratio "$pbytes" "$zbytes")" "$ingest_rss"
bench_row "metadata bytes per event" "$(awk -v m="$mbytes" -v n="$n" 'BEGIN{printf "%.2f", m/n}')" \
	"parts" "$(echo "$parts" | wc -l)" "-" "$ingest_rss"

# Memory does not grow with the input: 4x the events, and the same events
# shuffled across the 30 days (every partition open at once).
if [ "$big" -gt 0 ]; then
	bigin="$BENCH_TMP/lake-$start-$big.ndjson"
	[ -s "$bigin" ] || gen "$big" > "$bigin"
	rm -rf "$lake"
	BENCH_REPS=1 BENCH_IN=$bigin bench_measure ingestbig dd-lake-ingest -q -l "$lake"
	bench_row "peak RSS KiB, $big events (< 100 MiB)" "$ingestbig_rss" "$n events" "$ingest_rss" \
		"$(ratio "$ingestbig_rss" "$ingest_rss")" "$ingestbig_rss"
	rm -f "$bigin"
fi
shuf --random-source=<(yes) "$in" > "$BENCH_TMP/lake-shuffled.ndjson"
rm -rf "$lake"
BENCH_REPS=1 BENCH_IN="$BENCH_TMP/lake-shuffled.ndjson" bench_measure ingestshuf dd-lake-ingest -q -l "$lake"
bench_row "peak RSS KiB, shuffled days ($(find "$lake/events" -name 'part-*' | wc -l) parts)" \
	"$ingestshuf_rss" "$n events" "$ingest_rss" "$(ratio "$ingestshuf_rss" "$ingest_rss")" "$ingestshuf_rss"
rm -rf "$lake" "$BENCH_TMP/lake-shuffled.ndjson" "$BENCH_TMP/lake.zst"
awk -v r="$tput" 'BEGIN{ if (r + 0 < 0.75) printf "20-lake-ingest: throughput ratio %s is short of the 0.75 target\n", r }' >&2

# Shuffled over 5 years (issue 12): far more days than open parts, so the
# writer spills the other days' events and writes them at the commit.
# Anchor: the same events in time order. Targets: <= 30 s, <= 2 parts per
# day touched, <= 128 MiB RSS, output <= 1.1 x the sorted run's.
n5=${BENCH_LAKE_SHUF5Y:-600000}
if [ "$n5" -gt 0 ]; then
	sorted5="$BENCH_TMP/lake-5y-$n5.ndjson"
	start5=$(date -u -d '-1830 days' +%Y-%m-%d)
	[ -s "$sorted5" ] || dd-sim telemetry -n "$n5" --days 1825 --seed 5 --start "$start5" > "$sorted5"
	shuf --random-source=<(yes) "$sorted5" > "$BENCH_TMP/lake-5y-shuf.ndjson"
	BENCH_REPS=1 BENCH_IN=$sorted5 BENCH_PREP='rm -rf "$lake"' bench_measure sorted5 \
		dd-lake-ingest -q -l "$lake"
	s5bytes=$(find "$lake/events" -name 'part-*.ndjson.zst' -print0 | xargs -0 stat -c %s | awk '{s += $1} END {print s}')
	BENCH_IN="$BENCH_TMP/lake-5y-shuf.ndjson" BENCH_PREP='rm -rf "$lake"' bench_measure shuf5 \
		dd-lake-ingest -q -l "$lake"
	p5=$(find "$lake/events" -name 'part-*.ndjson.zst' | wc -l)
	d5=$(find "$lake/events" -name 'day=*' | wc -l)
	b5=$(find "$lake/events" -name 'part-*.ndjson.zst' -print0 | xargs -0 stat -c %s | awk '{s += $1} END {print s}')
	stored5=$(find "$lake/events" -name 'part-*.ndjson.zst' -print0 | xargs -0 zstdcat | wc -l)
	[ "$stored5" -eq "$n5" ] || { echo "20-lake-ingest: $stored5 events in the shuffled lake, $n5 in the input" >&2; exit 1; }
	bench_header "dd-lake-ingest, $n5 events shuffled over 5 years ($d5 days), $BENCH_REPS runs"
	bench_row "shuffled seconds (<= 30)" "$shuf5_secs" "time-ordered seconds" "$sorted5_secs" \
		"$(ratio "$shuf5_secs" "$sorted5_secs")" "$shuf5_rss"
	bench_row "parts per day touched (<= 2)" "$(awk -v p="$p5" -v d="$d5" 'BEGIN{printf "%.2f", p/d}')" \
		"parts, days" "$p5 $d5" "-" "$shuf5_rss"
	bench_row "compressed bytes (ratio <= 1.10)" "$b5" "time-ordered bytes" "$s5bytes" \
		"$(ratio "$b5" "$s5bytes")" "$shuf5_rss"
	bench_row "peak RSS KiB (<= 128 MiB)" "$shuf5_rss" "time-ordered" "$sorted5_rss" \
		"$(ratio "$shuf5_rss" "$sorted5_rss")" "$shuf5_rss"
	rm -rf "$lake" "$BENCH_TMP/lake-5y-shuf.ndjson"
fi
