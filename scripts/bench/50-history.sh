#!/usr/bin/env bash
# dd-history and dd-archive (issue 6). Three figures:
#  - ingest: 200,000 deliveries (about 774,000 delivery.* events, ~370 MB)
#    read from a file into a fresh history.db (WAL, synchronous FULL).
#    Anchor: the sqlite3 shell importing the same lines, one row each,
#    into a one-column table of a database with the same settings: the
#    bare cost of storing these bytes in SQLite, no parsing, no index.
#  - get: with 5,000,000 deliveries stored (a scheduled and a final event
#    each, streamed from the generator straight into dd-history), the
#    whole-process latency of `dd-history get ID` (hyperfine, 3 runs each
#    of $BENCH_GETS random ids, the median of all). Anchor: the sqlite3
#    shell (a process too) printing the same delivery's event lines.
#  - batch get: `dd-history get -` for $BENCH_BATCH_GETS random ids of
#    that store, one process. Anchor: the sqlite3 shell running the same
#    lookups (the delivery and its event lines) from one script.
#  - archive: that 5M-delivery store (10M events) moved into the lake in
#    one dd-archive run (one run: it empties the store), peak RSS.
#    Anchor: the sqlite3 shell dumping the same lines into zstd -3.
# Answers are checked: event counts in the store, get against sqlite3,
# every event in the lake and none left in history.db afterwards.
# Targets (issue 16): ingest >= 1.2x sqlite3 .import; get <= 2 ms; batch
# get >= 100,000 lookups/s; archive >= 250,000 events/s with memory
# bounded whatever the backlog.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

N=${BENCH_HISTORY_N:-200000}
M=${BENCH_HISTORY_GET_N:-5000000}
GETS=${BENCH_GETS:-35}
BATCH=${BENCH_BATCH_GETS:-200000}
in=$BENCH_TMP/history-events.ndjson
db=$BENCH_TMP/history.db
big=$BENCH_TMP/history-big.db
lake=$BENCH_TMP/history-lake
anchor=$BENCH_TMP/history-anchor.db
cleanup() { rm -rf "$in" "$db"* "$big"* "$anchor"* "$lake"; }
trap cleanup EXIT
cleanup

# gen N LIGHT: delivery events of N deliveries in time order, as in
# tests/dd-history.bats; LIGHT=1 gives only the scheduled and final events.
gen() {
	awk -v n="$1" -v light="$2" -v t0=1793577600 -v step=1 '
	function ts(t) { return strftime("%Y-%m-%dT%H:%M:%S", t, 1) ".000Z" }
	function head(id, src, type, t, subj) {
		return "{\"specversion\":\"1.0\",\"id\":\"" id "\",\"source\":\"" src \
		    "\",\"type\":\"" type "\",\"time\":\"" ts(t) "\",\"subject\":\"" subj \
		    "\",\"datacontenttype\":\"application/json\",\"data\":{"
	}
	function status(j, t, stage, prev) {
		d = sprintf("d-%07d", j)
		print head("st-" d "-" stage, "/dd-track", "delivery.status", t, d) \
		    "\"deliveryId\":\"" d "\",\"stage\":\"" stage "\",\"previousStage\":\"" prev \
		    "\",\"droneId\":\"D-" sprintf("%04d", j % 500) "\",\"location\":{\"lat\":47.61,\"lon\":-122.33,\"alt\":0}," \
		    "\"pickupEta\":\"" ts(t0 + j * step + 300) "\",\"dropoffEta\":\"" ts(t0 + j * step + 1800) "\"}}"
	}
	BEGIN {
		for (s = 1; s <= n + 1800; s++) {
			t = t0 + s * step
			j = s
			if (j <= n) {
				d = sprintf("d-%07d", j); r = sprintf("r-%07d", j)
				print head("sch-" d, "/dd-schedule", "delivery.scheduled", t, d) \
				    "\"deliveryId\":\"" d "\",\"requestId\":\"" r "\",\"ownerId\":\"o-" j % 17 \
				    "\",\"pickup\":{\"lat\":47.61,\"lon\":-122.33,\"alt\":0},\"dropoff\":{\"lat\":47.66,\"lon\":-122.3,\"alt\":0}," \
				    "\"pickupTime\":\"" ts(t + 300) "\",\"deadline\":\"" ts(t + 7200) "\",\"expedited\":false," \
				    "\"confirmationRequired\":\"None\",\"package\":{\"packageId\":\"p-" j "\",\"size\":\"small\",\"weightKg\":2.5,\"tag\":\"books\"}," \
				    "\"droneId\":\"D-" sprintf("%04d", j % 500) "\",\"pickupEta\":\"" ts(t + 300) "\",\"dropoffEta\":\"" ts(t + 1800) "\"}}"
			}
			j = s - 300
			if (!light && j >= 1 && j <= n)
				status(j, t, "headed-to-pickup", "created")
			j = s - 900
			if (!light && j >= 1 && j <= n)
				status(j, t, "headed-to-dropoff", "headed-to-pickup")
			j = s - 1800
			if (j >= 1 && j <= n)
				status(j, t, j % 50 == 13 ? "failed" : "completed", "headed-to-dropoff")
		}
	}'
}

# ---------------------------------------------------------------- ingest
gen "$N" 0 > "$in"
lines=$(wc -l < "$in")
mb=$(awk -v b="$(stat -c %s "$in")" 'BEGIN{printf "%.0f", b/1e6}')
BENCH_IN=$in BENCH_PREP='rm -f "$db" "$db"-wal "$db"-shm' \
	bench_measure ingest dd-history -q --db "$db"
stats=$(dd-history --db "$db" stats)
[ "$(echo "$stats" | jq .events)" -eq "$lines" ] && [ "$(echo "$stats" | jq .deliveries)" -eq "$N" ] ||
	{ echo "50-history: store holds $stats, not $lines events of $N deliveries" >&2; exit 1; }
BENCH_PREP='rm -f "$anchor" "$anchor"-wal "$anchor"-shm' bench_measure import \
	sqlite3 "$anchor" "PRAGMA journal_mode=WAL" "PRAGMA synchronous=FULL" \
	"CREATE TABLE t (line TEXT)" ".mode ascii" ".separator \"\\037\" \"\\n\"" ".import $in t"
[ "$(sqlite3 "$anchor" "SELECT count(*) FROM t")" -eq "$lines" ] ||
	{ echo "50-history: the anchor imported a different number of lines" >&2; exit 1; }
rm -f "$in" "$db"* "$anchor"*

# ------------------------------------------------------------------- get
s=$(date +%s)
gen "$M" 1 | dd-history -q --db "$big"
build=$(( $(date +%s) - s ))
[ "$(dd-history --db "$big" stats | jq .deliveries)" -eq "$M" ] ||
	{ echo "50-history: the $M store is incomplete" >&2; exit 1; }
: > "$BENCH_TMP/get.ids"
for i in $(seq "$GETS"); do
	printf 'd-%07d\n' $(( (RANDOM * 32768 + RANDOM) % M + 1 )) >> "$BENCH_TMP/get.ids"
done
# The answers first: get's events are sqlite3's lines.
q() { echo "SELECT line FROM events WHERE dkey = (SELECT dkey FROM deliveries WHERE id = '$1') ORDER BY time_ms, eid"; }
for id in $(head -n 5 "$BENCH_TMP/get.ids"); do
	[ "$(dd-history --db "$big" get "$id" | jq -c '.events[]')" = \
		"$(sqlite3 -readonly "$big" "$(q "$id")" | jq -c .)" ] ||
		{ echo "50-history: get $id differs from sqlite3" >&2; exit 1; }
done
# hyperfine times each process exactly (no shell, no clock process).
ids=$(paste -s -d, "$BENCH_TMP/get.ids")
hyperfine -N --style none --warmup 3 --runs 3 -L id "$ids" --export-json "$BENCH_TMP/get.json" \
	"$DD_BIN/dd-history --db $big get {id}" > /dev/null 2>&1
hyperfine -N --style none --warmup 3 --runs 3 -L id "$ids" --export-json "$BENCH_TMP/sqlite-get.json" \
	"sqlite3 -readonly $big \"$(q '{id}')\"" > /dev/null 2>&1
med_ms() { jq '[.results[].times[]] | sort | .[length / 2 | floor] * 1000 * 100 | round / 100' "$1"; }
get_ms=$(med_ms "$BENCH_TMP/get.json")
sq_ms=$(med_ms "$BENCH_TMP/sqlite-get.json")

# ------------------------------------------------------------- batch get
awk -v n="$BATCH" -v m="$M" 'BEGIN { srand(7); for (i = 0; i < n; i++) printf "d-%07d\n", int(rand() * m) + 1 }' \
	> "$BENCH_TMP/batch.ids"
BENCH_IN=$BENCH_TMP/batch.ids BENCH_OUT=$BENCH_TMP/batch.out bench_measure batch \
	dd-history --db "$big" get -
cmp <(jq -r .deliveryId "$BENCH_TMP/batch.out") "$BENCH_TMP/batch.ids" ||
	{ echo "50-history: batch get answers differ from the ids asked" >&2; exit 1; }
awk '{ printf "SELECT id FROM deliveries WHERE id = \x27%s\x27; SELECT line FROM events WHERE dkey = (SELECT dkey FROM deliveries WHERE id = \x27%s\x27) ORDER BY time_ms, eid;\n", $1, $1 }' \
	"$BENCH_TMP/batch.ids" > "$BENCH_TMP/batch.sql"
BENCH_IN=$BENCH_TMP/batch.sql bench_measure batch_sql sqlite3 -readonly "$big"
rm -f "$BENCH_TMP/batch.out" "$BENCH_TMP/batch.sql"

# --------------------------------------------------------------- archive
events=$((2 * M))
bench_measure_once() {
	local name=$1; shift
	/usr/bin/time -f '%e %M' -o "$BENCH_TMP/$name.t" "$@" > "$BENCH_TMP/$name.out"
	read -r secs kib < "$BENCH_TMP/$name.t"
	eval "${name}_secs=$secs ${name}_rss=$kib"
}
BENCH_REPS=1 bench_measure dump sh -c "sqlite3 -readonly '$big' 'SELECT line FROM events' | zstd -3 -q -c"
bench_measure_once archive dd-archive -q --db "$big" -l "$lake" --now 2027-01-01
[ "$(jq .eventsArchived "$BENCH_TMP/archive.out")" -eq "$events" ] &&
	[ "$(dd-history --db "$big" stats | jq .deliveries)" -eq 0 ] ||
	{ echo "50-history: archive moved $(jq -c . "$BENCH_TMP/archive.out")" >&2; exit 1; }
inlake=$(find "$lake" -name 'part-*.ndjson.zst' -print0 | xargs -0 zstdcat | wc -l)
[ "$inlake" -eq "$events" ] || { echo "50-history: the lake holds $inlake events" >&2; exit 1; }

bench_header "dd-history: $lines events of $N deliveries ($mb MB); get and archive with $M deliveries"
bench_row "ingest events/s" "$(rate "$lines" "$ingest_secs")" "sqlite3 .import lines/s" \
	"$(rate "$lines" "$import_secs")" "$(ratio "$import_secs" "$ingest_secs")" "$ingest_rss"
bench_row "get ms (median, $M deliveries)" "$get_ms" "sqlite3 lookup ms" "$sq_ms" \
	"$(ratio "$get_ms" "$sq_ms")" 0
bench_row "get - lookups/s ($BATCH ids)" "$(rate "$BATCH" "$batch_secs")" \
	"sqlite3 lookups/s" "$(rate "$BATCH" "$batch_sql_secs")" \
	"$(ratio "$batch_sql_secs" "$batch_secs")" "$batch_rss"
bench_row "archive events/s ($events events, one run)" "$(rate "$events" "$archive_secs")" \
	"sqlite3 | zstd -3 ev/s" "$(rate "$events" "$dump_secs")" \
	"$(ratio "$dump_secs" "$archive_secs")" "$archive_rss"
echo "(building the $M-delivery store took ${build}s; $(uptime | sed 's/.*load average/load average/'))"
