# dd-sim must never be what a benchmark measures. Figures in events/s:
# `dd-sim telemetry` to /dev/null, against `cat` of the same bytes from a
# file (the cheapest way to produce them); `dd-sim fly` passing the same
# telemetry through (each line scanned as an event), against `cat` again.
# The answers must agree: a second run gives the file's bytes exactly, and
# fly passes every line through unchanged.
. "$(dirname "$0")/lib.sh"
n=${BENCH_SIM_EVENTS:-2000000}
file="$BENCH_TMP/sim-telemetry.ndjson"
dd-sim telemetry -n "$n" --seed 1 > "$file"
[ "$(wc -l < "$file")" -eq "$n" ] || { echo "10-dd-sim: not $n lines" >&2; exit 1; }
dd-sim telemetry -n "$n" --seed 1 | cmp -s - "$file" ||
	{ echo "10-dd-sim: two runs differ" >&2; exit 1; }
dd-sim fly -q < "$file" | cmp -s - "$file" ||
	{ echo "10-dd-sim: fly changed its input" >&2; exit 1; }
mb=$(awk -v b="$(stat -c %s "$file")" 'BEGIN{printf "%.0f", b/1e6}')

bench_measure gen dd-sim telemetry -n "$n" --seed 1
BENCH_IN=$file bench_measure cat cat
BENCH_IN=$file bench_measure fly dd-sim fly -q

bench_header "dd-sim, $n telemetry events ($mb MB)"
bench_row "telemetry events/s" "$(rate "$n" "$gen_secs")" \
	"cat of the file, ev/s" "$(rate "$n" "$cat_secs")" "$(ratio "$cat_secs" "$gen_secs")" "$gen_rss"
bench_row "fly pass-through events/s" "$(rate "$n" "$fly_secs")" \
	"cat of the file, ev/s" "$(rate "$n" "$cat_secs")" "$(ratio "$cat_secs" "$fly_secs")" "$fly_rss"
rm -f "$file"
