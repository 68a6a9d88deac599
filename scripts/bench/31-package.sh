#!/usr/bin/env bash
# dd-package: package.registered events read from a file into a fresh
# store with durable commits (WAL, synchronous FULL, a commit every 20000).
#  1. new packages: 1 million, one per request of `dd-sim requests`
#     (converted by a short Python script), as the scheduler registers them;
#  2. replacements in random order: 1 million registrations of 250,000
#     packages (each 4 times, newer each time, keys spread over the whole
#     table), a stress case for the B-tree and the WAL (BENCH_STRESS_REPS,
#     default 1 repetition).
# Anchor, in the same run and on the same input: the sqlite3 shell doing
# the same job by hand: .import the lines, then one INSERT ... SELECT with
# json_extract and the same newest-wins upsert, into the same table, in
# WAL mode with synchronous FULL (one transaction for everything, which
# favours it). The two stores must hold the same packages.
# Target (issue 5): >= 200,000 events/s.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

N=${BENCH_PACKAGE_N:-1000000}
P=$((N / 4))
new=$BENCH_TMP/package-new.ndjson
rnd=$BENCH_TMP/package-random.ndjson
db=$BENCH_TMP/package.db
adb=$BENCH_TMP/package-anchor.db
dd-sim requests -n "$N" --seed 5 | /usr/bin/python3 -c '
import json, sys
w = sys.stdout.write
for line in sys.stdin:
    r = json.loads(line)
    d = dict(r["package"], ownerId=r["ownerId"], deliveryId="d-" + r["requestId"])
    w(json.dumps({"specversion": "1.0", "id": "pkg-" + r["requestId"], "source": "/dd-schedule",
                  "type": "package.registered", "time": r["pickupTime"], "subject": d["packageId"],
                  "datacontenttype": "application/json", "data": d}, separators=(",", ":")) + "\n")
' > "$new"
awk -v n="$N" -v p="$P" 'BEGIN {
	sizes[0] = "small"; sizes[1] = "medium"; sizes[2] = "large"
	for (i = 0; i < n; i++) {
		k = (i * 7919) % p
		t = 1795672800 + i
		printf "{\"specversion\":\"1.0\",\"id\":\"e-%d\",\"source\":\"/dd-schedule\",\"type\":\"package.registered\",\"time\":\"%s\",\"subject\":\"p-%d\",\"datacontenttype\":\"application/json\",\"data\":{\"packageId\":\"p-%d\",\"ownerId\":\"o-%d\",\"deliveryId\":\"d-%d\",\"size\":\"%s\",\"weightKg\":%d.%d,\"tag\":\"t%d\"}}\n",
		    i, strftime("%Y-%m-%dT%H:%M:%S.000Z", t, 1), k, k, k % 1000, i, sizes[i % 3], i % 25 + 1, i % 10, i % 7
	}
}' > "$rnd"

cat > "$BENCH_TMP/pkg-anchor.sql" <<'EOF'
PRAGMA journal_mode=WAL;
PRAGMA synchronous=FULL;
CREATE TABLE package (id TEXT PRIMARY KEY, owner_id TEXT, delivery_id TEXT, size TEXT,
  weight_kg REAL, tag TEXT, registered INTEGER, doc TEXT, event_time INTEGER NOT NULL,
  event_id TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX package_owner ON package(owner_id, registered) WHERE doc IS NOT NULL;
CREATE TEMP TABLE raw (line TEXT);
.mode ascii
.separator "\037" "\n"
.import /dev/stdin raw
BEGIN;
INSERT INTO package SELECT json_extract(line, '$.data.packageId'),
  json_extract(line, '$.data.ownerId'), json_extract(line, '$.data.deliveryId'),
  json_extract(line, '$.data.size'), json_extract(line, '$.data.weightKg'),
  json_extract(line, '$.data.tag'), t, json_extract(line, '$.data'), t,
  json_extract(line, '$.id')
  FROM (SELECT line, CAST(round((julianday(json_extract(line, '$.time')) - 2440587.5)
    * 86400000) AS INTEGER) AS t FROM raw ORDER BY rowid) WHERE true
  ON CONFLICT (id) DO UPDATE SET owner_id = excluded.owner_id,
  delivery_id = excluded.delivery_id, size = excluded.size, weight_kg = excluded.weight_kg,
  tag = excluded.tag, registered = excluded.registered, doc = excluded.doc,
  event_time = excluded.event_time, event_id = excluded.event_id
  WHERE (excluded.event_time, excluded.event_id) > (package.event_time, package.event_id);
COMMIT;
EOF
q='select id, owner_id, delivery_id, size, weight_kg, tag, registered, doc from package order by id'

# run NAME INPUT PACKAGES: time dd-package and the anchor on INPUT, check
# that both stores hold the same PACKAGES packages.
run() {
	local name=$1 input=$2 packages=$3
	BENCH_IN=$input BENCH_PREP='rm -f "$db" "$db"-wal "$db"-shm' \
		bench_measure "pkg_${name}_dd" dd-package -q --db "$db"
	BENCH_IN=$input BENCH_PREP='rm -f "$adb" "$adb"-wal "$adb"-shm' \
		bench_measure "pkg_${name}_anchor" sqlite3 -bail -cmd ".read $BENCH_TMP/pkg-anchor.sql" "$adb" .quit
	[ "$(sqlite3 "$db" "$q" | md5sum)" = "$(sqlite3 "$adb" "$q" | md5sum)" ] ||
		{ echo "31-package: $name: the stores differ" >&2; exit 1; }
	[ "$(sqlite3 "$db" 'select count(*) from package')" -eq "$packages" ] ||
		{ echo "31-package: $name: not $packages packages" >&2; exit 1; }
}
run new "$new" "$N"
BENCH_REPS=${BENCH_STRESS_REPS:-1} run rnd "$rnd" "$P"

bench_header "dd-package: $N package.registered events, durable commits"
r=$(rate "$N" "$pkg_new_dd_secs")
a=$(rate "$N" "$pkg_new_anchor_secs")
bench_row "dd-package events/s, new packages" "$r" "sqlite3 .import+upsert" "$a" \
	"$(ratio "$r" "$a")" "$pkg_new_dd_rss"
r=$(rate "$N" "$pkg_rnd_dd_secs")
a=$(rate "$N" "$pkg_rnd_anchor_secs")
bench_row "dd-package events/s, random replacements" "$r" "sqlite3 .import+upsert" "$a" \
	"$(ratio "$r" "$a")" "$pkg_rnd_dd_rss"
rm -f "$new" "$rnd" "$db" "$db"-wal "$db"-shm "$adb" "$adb"-wal "$adb"-shm "$BENCH_TMP/pkg-anchor.sql"
