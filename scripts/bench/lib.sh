# Shared by every benchmark in scripts/bench/: timing with repetitions,
# peak memory, and the one-row report. Source it; DD_BIN is the build tree.
#
#   bench_measure NAME CMD...   runs CMD $BENCH_REPS times (stdin from
#                               $BENCH_IN when set, stdout to /dev/null
#                               unless BENCH_OUT names a file), and sets
#                               NAME_secs (median wall seconds) and
#                               NAME_rss (max peak RSS in KiB).
#   bench_row LABEL FIG ANCHOR_LABEL ANCHOR_FIG RATIO RSS_KIB
#                               prints one aligned row.
set -eu
: "${DD_BIN:?DD_BIN must point at the bin/ of a build tree}"
: "${BENCH_REPS:=5}"
: "${BENCH_TMP:=${TMPDIR:-/tmp}/dd-bench}"
export PATH="$DD_BIN:$PATH"
mkdir -p "$BENCH_TMP"

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.6f\n", (a[NR/2]+a[NR/2+1])/2}'; }

bench_measure() {
	local name=$1; shift
	local times="$BENCH_TMP/$name.times" rss=0 i
	: > "$times"
	for i in $(seq "$BENCH_REPS"); do
		[ -z "${BENCH_PREP:-}" ] || eval "$BENCH_PREP"
		/usr/bin/time -f '%e %M' -o "$BENCH_TMP/$name.t" \
			sh -c '"$@" < "${BENCH_IN:-/dev/null}" > "${BENCH_OUT:-/dev/null}"' sh "$@"
		read -r secs kib < "$BENCH_TMP/$name.t"
		# %e has 10 ms resolution; use our own clock for short runs too.
		echo "$secs" >> "$times"
		[ "$kib" -gt "$rss" ] && rss=$kib
	done
	eval "${name}_secs=$(median < "$times")"
	eval "${name}_rss=$rss"
}

# Like bench_measure, but with a precise clock (for commands well under a
# second, such as a lookup): median of $BENCH_REPS runs, in seconds.
bench_precise() {
	local name=$1; shift
	local times="$BENCH_TMP/$name.times" i s e
	: > "$times"
	for i in $(seq "$BENCH_REPS"); do
		s=$(date +%s%N)
		"$@" < "${BENCH_IN:-/dev/null}" > "${BENCH_OUT:-/dev/null}"
		e=$(date +%s%N)
		echo "$(( (e - s) / 1000 ))" | awk '{printf "%.6f\n", $1/1e6}' >> "$times"
	done
	eval "${name}_secs=$(median < "$times")"
}

bench_row() {
	printf '%-44s %14s   %-22s %14s   %8s   %8s MiB\n' "$1" "$2" "$3" "$4" "$5" \
		"$(awk -v k="$6" 'BEGIN{printf "%.1f", k/1024}')"
}

bench_header() {
	printf '\n== %s ==\n' "$1"
	printf '%-44s %14s   %-22s %14s   %8s   %8s\n' "figure" "value" "anchor" "value" "ratio" "peak RSS"
}

# ratio A B: A/B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b == 0) print "inf"; else printf "%.2f\n", a/b }'; }
# rate N SECS: N/SECS rounded.
rate() { awk -v n="$1" -v s="$2" 'BEGIN{ if (s == 0) print "inf"; else printf "%.0f\n", n/s }'; }
