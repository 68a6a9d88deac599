# dd-lake-ingest against zstd on the same input, piped from a file:
# dd-sim telemetry over 30 days. `zstd -3 -c` is the anchor (compressing
# the same bytes on one core); `zstd -T2 -3 -c` shows what both cores can
# do. For each size, prints throughput (MB/s of input; ratio to zstd -3
# required >= 1.0), median wall and CPU seconds (user + sys) of the three,
# compressed size against zstd -3's (required <= 1.03), the metadata's
# size, and peak RSS (required <= 100 MiB at every size). Then the same
# events shuffled across the 30 days (every partition open at once).
#   BENCH_LAKE_EVENTS  the sizes, events (default "1000000 16000000")
# Last, events shuffled over 5 years (issue 12), far more days than open
# parts: against the same events in time order, required <= 30 s, <= 2
# parts per day touched, <= 128 MiB RSS, output <= 1.1 x the sorted run's.
#   BENCH_LAKE_SHUF5Y  its events (default 600000; 0 skips it)
. "$(dirname "$0")/lib.sh"
sizes=${BENCH_LAKE_EVENTS:-1000000 16000000}
# Events must lie in the past (the far future is rejected): the 30 days
# before the last month.
start=$(date -u -d '-32 days' +%Y-%m-%d)
gen() { dd-sim telemetry -n "$1" --days 30 --seed 1 --start "$start"; }
lake="$BENCH_TMP/lake"
short=""

# timed NAME CMD...: $BENCH_REPS runs of CMD < $in > ${out:-/dev/null},
# the lake removed before each; sets NAME_wall and NAME_cpu (medians,
# seconds) and NAME_rss (the largest peak, KiB).
timed() {
	local name=$1 i; shift
	: > "$BENCH_TMP/$name.runs"
	for i in $(seq "$BENCH_REPS"); do
		rm -rf "$lake"
		/usr/bin/time -f '%e %U %S %M' -o "$BENCH_TMP/$name.t" \
			"$@" < "$in" > "${out:-/dev/null}"
		cat "$BENCH_TMP/$name.t" >> "$BENCH_TMP/$name.runs"
	done
	eval "${name}_wall=$(awk '{print $1}' "$BENCH_TMP/$name.runs" | median)"
	eval "${name}_cpu=$(awk '{print $2 + $3}' "$BENCH_TMP/$name.runs" | median)"
	eval "${name}_rss=$(awk '$4 > m {m = $4} END {print m}' "$BENCH_TMP/$name.runs")"
}

mbs() { awk -v m="$mb" -v s="$1" 'BEGIN{printf "%.0f", m/s}'; }

# want LABEL RATIO OP LIMIT: note a target missed.
want() {
	if ! awk -v r="$2" -v l="$4" -v op="$3" 'BEGIN{exit !(op == ">=" ? r >= l : r <= l)}'; then
		short="$short
20-lake-ingest: $1: $2, target $3 $4"
	fi
}

for n in $sizes; do
	in="$BENCH_TMP/lake-$start-$n.ndjson"
	[ -s "$in" ] || gen "$n" > "$in"
	bytes=$(stat -c %s "$in")
	mb=$(awk -v b="$bytes" 'BEGIN{print b/1e6}')
	out="$BENCH_TMP/lake.zst" timed zstd zstd -q -3 -c
	zbytes=$(stat -c %s "$BENCH_TMP/lake.zst")
	rm -f "$BENCH_TMP/lake.zst"
	timed zstdt2 zstd -q -T2 -3 -c
	timed ingest dd-lake-ingest -q -l "$lake" --level 3
	parts=$(find "$lake/events" -name 'part-*.ndjson.zst')
	pbytes=$(echo "$parts" | xargs stat -c %s | awk '{s += $1} END {print s}')
	mbytes=$(find "$lake/events" -name '_part-*.meta' -print0 | xargs -0 stat -c %s | awk '{s += $1} END {print s}')
	# The answers must agree: every event in, nothing else.
	stored=$(echo "$parts" | xargs zstdcat | wc -l)
	[ "$stored" -eq "$n" ] || { echo "20-lake-ingest: $stored events in the lake, $n in the input" >&2; exit 1; }
	rm -rf "$lake"

	bench_header "dd-lake-ingest, $n dd-sim telemetry events over 30 days ($(printf %.0f "$mb") MB), $BENCH_REPS runs, load $(cut -d' ' -f1-3 /proc/loadavg)"
	tput=$(ratio "$zstd_wall" "$ingest_wall")
	bench_row "dd-lake-ingest MB/s (ratio >= 1.0)" "$(mbs "$ingest_wall")" \
		"zstd -3 -c MB/s" "$(mbs "$zstd_wall")" "$tput" "$ingest_rss"
	bench_row "dd-lake-ingest MB/s" "$(mbs "$ingest_wall")" \
		"zstd -T2 -3 -c MB/s" "$(mbs "$zstdt2_wall")" "$(ratio "$zstdt2_wall" "$ingest_wall")" "$zstdt2_rss"
	bench_row "wall seconds, median" "$ingest_wall" "zstd -3 -c" "$zstd_wall" \
		"$(ratio "$ingest_wall" "$zstd_wall")" "$zstd_rss"
	bench_row "CPU seconds (user + sys), median" "$ingest_cpu" "zstd -3 -c" "$zstd_cpu" \
		"$(ratio "$ingest_cpu" "$zstd_cpu")" "$zstd_rss"
	bench_row "wall seconds, median" "$ingest_wall" "zstd -T2 -3 -c" "$zstdt2_wall" \
		"$(ratio "$ingest_wall" "$zstdt2_wall")" "$zstdt2_rss"
	bench_row "CPU seconds (user + sys), median" "$ingest_cpu" "zstd -T2 -3 -c" "$zstdt2_cpu" \
		"$(ratio "$ingest_cpu" "$zstdt2_cpu")" "$zstdt2_rss"
	bench_row "CPU / wall (cores kept busy)" "$(ratio "$ingest_cpu" "$ingest_wall")" \
		"zstd -3 -c" "$(ratio "$zstd_cpu" "$zstd_wall")" "-" "$ingest_rss"
	# Three decimals: 1.031 must not pass as 1.03.
	size=$(awk -v a="$pbytes" -v b="$zbytes" 'BEGIN{printf "%.3f", a/b}')
	bench_row "compressed bytes, parts (ratio <= 1.03)" "$pbytes" "zstd -3 bytes" "$zbytes" \
		"$size" "$ingest_rss"
	bench_row "metadata bytes per event" "$(awk -v m="$mbytes" -v n="$n" 'BEGIN{printf "%.2f", m/n}')" \
		"parts" "$(echo "$parts" | wc -l)" "-" "$ingest_rss"
	bench_row "peak RSS MiB (<= 100)" "$(awk -v k="$ingest_rss" 'BEGIN{printf "%.1f", k/1024}')" \
		"zstd -3 -c" "$(awk -v k="$zstd_rss" 'BEGIN{printf "%.1f", k/1024}')" \
		"$(ratio "$ingest_rss" "$zstd_rss")" "$ingest_rss"
	want "throughput ratio at $n events" "$tput" ">=" 1.0
	want "size ratio at $n events" "$size" "<=" 1.03
	want "peak RSS MiB at $n events" "$(awk -v k="$ingest_rss" 'BEGIN{printf "%.1f", k/1024}')" "<=" 100
	first=${first:-$in}
	[ "$in" = "$first" ] || rm -f "$in"
done

# Memory does not grow when every partition is open at once: the
# smallest input shuffled across the 30 days.
in="$BENCH_TMP/lake-shuffled.ndjson"
shuf --random-source=<(yes) "$first" > "$in"
BENCH_REPS=1 timed ingestshuf dd-lake-ingest -q -l "$lake"
bench_row "peak RSS MiB, shuffled days ($(find "$lake/events" -name 'part-*' | wc -l) parts)" \
	"$(awk -v k="$ingestshuf_rss" 'BEGIN{printf "%.1f", k/1024}')" "in order" \
	"$(awk -v k="$ingest_rss" 'BEGIN{printf "%.1f", k/1024}')" "$(ratio "$ingestshuf_rss" "$ingest_rss")" "$ingestshuf_rss"
want "peak RSS MiB, shuffled" "$(awk -v k="$ingestshuf_rss" 'BEGIN{printf "%.1f", k/1024}')" "<=" 100
rm -rf "$lake" "$in"

# Shuffled over 5 years: the writer spills the events of the days it has
# no open part for, and writes them a part per day at the commit.
n5=${BENCH_LAKE_SHUF5Y:-600000}
if [ "$n5" -gt 0 ]; then
	sorted5="$BENCH_TMP/lake-5y-$n5.ndjson"
	start5=$(date -u -d '-1830 days' +%Y-%m-%d)
	[ -s "$sorted5" ] || dd-sim telemetry -n "$n5" --days 1825 --seed 5 --start "$start5" > "$sorted5"
	in=$sorted5
	BENCH_REPS=1 timed sorted5 dd-lake-ingest -q -l "$lake"
	s5bytes=$(find "$lake/events" -name 'part-*.ndjson.zst' -print0 | xargs -0 stat -c %s | awk '{s += $1} END {print s}')
	in="$BENCH_TMP/lake-5y-shuf.ndjson"
	shuf --random-source=<(yes) "$sorted5" > "$in"
	timed shuf5 dd-lake-ingest -q -l "$lake"
	p5=$(find "$lake/events" -name 'part-*.ndjson.zst' | wc -l)
	d5=$(find "$lake/events" -name 'day=*' | wc -l)
	b5=$(find "$lake/events" -name 'part-*.ndjson.zst' -print0 | xargs -0 stat -c %s | awk '{s += $1} END {print s}')
	stored5=$(find "$lake/events" -name 'part-*.ndjson.zst' -print0 | xargs -0 zstdcat | wc -l)
	[ "$stored5" -eq "$n5" ] || { echo "20-lake-ingest: $stored5 events in the shuffled lake, $n5 in the input" >&2; exit 1; }
	bench_header "dd-lake-ingest, $n5 events shuffled over 5 years ($d5 days), $BENCH_REPS runs"
	bench_row "shuffled wall seconds (<= 30)" "$shuf5_wall" "time-ordered (1 run)" "$sorted5_wall" \
		"$(ratio "$shuf5_wall" "$sorted5_wall")" "$shuf5_rss"
	ppd=$(awk -v p="$p5" -v d="$d5" 'BEGIN{printf "%.2f", p/d}')
	bench_row "parts per day touched (<= 2)" "$ppd" "parts" "$p5" "-" "$shuf5_rss"
	bratio=$(ratio "$b5" "$s5bytes")
	bench_row "compressed bytes (ratio <= 1.10)" "$b5" "time-ordered bytes" "$s5bytes" "$bratio" "$shuf5_rss"
	mib5=$(awk -v k="$shuf5_rss" 'BEGIN{printf "%.1f", k/1024}')
	bench_row "peak RSS MiB (<= 128)" "$mib5" "time-ordered" \
		"$(awk -v k="$sorted5_rss" 'BEGIN{printf "%.1f", k/1024}')" "$(ratio "$shuf5_rss" "$sorted5_rss")" "$shuf5_rss"
	want "shuffled 5 years, seconds" "$shuf5_wall" "<=" 30
	want "shuffled 5 years, parts per day" "$ppd" "<=" 2
	want "shuffled 5 years, size ratio" "$bratio" "<=" 1.10
	want "shuffled 5 years, peak RSS MiB" "$mib5" "<=" 128
	rm -rf "$lake" "$in"
fi
[ -z "$short" ] || echo "$short" | sed 1d >&2
