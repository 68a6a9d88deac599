# The envelope scanner (lib/json.c, lib/event.c) against libjq's parser,
# the anchor it replaces on the hot path: both read the same telemetry and
# must agree on the number of events. Figures in MB/s of input.
. "$(dirname "$0")/lib.sh"
n=${BENCH_SCAN_EVENTS:-1000000}
in="$BENCH_TMP/scan-telemetry.ndjson"
[ -s "$in" ] || dd-sim telemetry -n "$n" --seed 1 > "$in"
mb=$(awk -v b="$(stat -c %s "$in")" 'BEGIN{print b/1e6}')

BENCH_IN=$in bench_measure scan dd-libcheck count
BENCH_IN=$in bench_measure jqparse jq -c 'select(.specversion)|.id'
ours=$(dd-libcheck count < "$in")
theirs=$(jq -c 'select(.specversion)|.id' "$in" | wc -l)
[ "$ours" = "$theirs 0" ] || { echo "05-scanner: counts differ: $ours vs $theirs" >&2; exit 1; }

bench_header "envelope scanner, $n telemetry events ($(printf %.0f "$mb") MB)"
bench_row "dd scanner MB/s" "$(awk -v m="$mb" -v s="$scan_secs" 'BEGIN{printf "%.0f", m/s}')" \
	"jq parse MB/s" "$(awk -v m="$mb" -v s="$jqparse_secs" 'BEGIN{printf "%.0f", m/s}')" \
	"$(ratio "$jqparse_secs" "$scan_secs")" "$scan_rss"
