#!/usr/bin/env bats
# dd-lake-ingest: the lake's layout and names, byte-exact storage by UTC
# date, metadata, bad input, idle flush, signals, crashes, a full disk,
# and DuckDB reading the result.

load common

setup() {
	cd "$BATS_TEST_TMPDIR"
	LAKE="$BATS_TEST_TMPDIR/lake"
	DS="$LAKE/events"
}

teardown() {
	# The disk-full case mounts a tmpfs; never leave it behind.
	if [ -n "${FULL:-}" ] && mountpoint -q "$FULL"; then
		umount "$FULL"
	fi
	[ -z "${BG:-}" ] || kill $BG 2>/dev/null || true
}

# gen N DAYS [START] [PREFIX] [STEP]: N telemetry-shaped events spread over
# DAYS days from START (UTC), with ids PREFIX-i, subjects of 10 events
# each, types in turn, and fields in an order and spelling no
# re-serialisation would keep (so byte-exact storage is visible).
gen() {
	python3 - "$@" <<'EOF'
import sys, datetime
n = int(sys.argv[1]); days = float(sys.argv[2])
start = sys.argv[3] if len(sys.argv) > 3 else "2026-11-01T00:00:00Z"
prefix = sys.argv[4] if len(sys.argv) > 4 else "e"
t0 = datetime.datetime.fromisoformat(start.replace("Z", "+00:00"))
types = ["drone.dispatched", "drone.position", "drone.position", "drone.picked-up",
         "drone.position", "drone.delivered", "x.custom"]
out = sys.stdout
for i in range(n):
    t = t0 + datetime.timedelta(seconds=days * 86400 * i / n)
    ts = t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)
    ty = types[i % len(types)]
    data = '{"droneId":"D-%04d","location":{"lat":47.6%d,"lon":-122.3,"alt":1.0e+2},"speedMps":12.50,"battery":0.5}' % (i % 97, i % 10)
    out.write('{"specversion":"1.0","type":"%s","id":"%s-%d","source":"/drones/D-%04d",'
              '"time":"%s","subject":"del-%d","data":%s,"ext":"caf\u00e9 \\u00e9"}\n'
              % (ty, prefix, i, i % 97, ts, i // 10, data))
EOF
}

# One event with the given id and time (any RFC 3339 offset).
ev() {
	printf '{"specversion":"1.0","id":"%s","source":"/t","type":"x.test","time":"%s","data":{}}\n' "$1" "$2"
}

parts() { find "$DS" -name 'part-*.ndjson.zst' | sort; }
hidden() { find "$LAKE" -type f -name '.*'; }
# Every id stored in the lake, sorted.
lake_ids() { parts | xargs -r zstdcat | jq -r .id | sort; }

# Check the Bloom filters of every part's metadata with an independent
# reading of the format in lake.h: every stored id and subject must test
# "maybe"; ids that are not there mostly "no". Prints the false positive
# rate of 2000 absent ids.
check_blooms() {
	python3 - "$DS" <<'EOF'
import glob, json, os, subprocess, sys
M = (1 << 64) - 1
def h64(b):
    h = 0xcbf29ce484222325; n = len(b); i = 0
    while i + 8 <= n:
        h = ((h ^ int.from_bytes(b[i:i+8], "little")) * 0x100000001b3) & M; h ^= h >> 29; i += 8
    while i < n:
        h = ((h ^ b[i]) * 0x100000001b3) & M; i += 1
    h ^= n; h ^= h >> 33; h = (h * 0xff51afd7ed558ccd) & M; h ^= h >> 33
    h = (h * 0xc4ceb9fe1a85ec53) & M; h ^= h >> 33
    return h
def test(bits, m, k, key):
    h = h64(key.encode()); a = h & 0xffffffff; b = h >> 32
    return all(bits[((a + i * b) % m) >> 3] >> (((a + i * b) % m) & 7) & 1 for i in range(k))
fp = tested = 0
for part in glob.glob(sys.argv[1] + "/*/*/*/part-*.ndjson.zst"):
    d, base = os.path.split(part)
    raw = open(os.path.join(d, "_" + base[:-len(".ndjson.zst")] + ".meta"), "rb").read()
    nl = raw.index(b"\n"); meta = json.loads(raw[:nl]); binp = raw[nl + 1:]
    assert meta["part"] == base and meta["partBytes"] == os.path.getsize(part), base
    assert meta["contentChecksum"] == open(part, "rb").read()[-4:].hex(), base
    lines = subprocess.run(["zstdcat", part], capture_output=True, check=True).stdout.splitlines()
    evs = [json.loads(l) for l in lines]
    assert meta["events"] == len(evs), (base, meta["events"], len(evs))
    assert meta["rawBytes"] == sum(len(l) + 1 for l in lines)
    types = {}
    for e in evs:
        types[e["type"]] = types.get(e["type"], 0) + 1
    assert meta["types"] == types, (meta["types"], types)
    assert meta["minTimeMs"] <= meta["maxTimeMs"]
    blooms = {}
    for key in ("ids", "subjects"):
        f = meta[key]; o = f["offset"]
        blooms[key] = (binp[o:o + f["bytes"]], f["bits"], f["hashes"])
    for e in evs:
        assert test(*blooms["ids"], e["id"]), ("id missing from Bloom", e["id"])
        if "subject" in e:
            assert test(*blooms["subjects"], e["subject"]), ("subject", e["subject"])
    for i in range(2000):
        tested += 1
        fp += test(*blooms["ids"], "absent-%d" % i)
print("%.4f" % (fp / tested))
EOF
}

@test "usage: --help, bad options and arguments exit 2" {
	run dd-lake-ingest --help
	assert_success
	assert_output --partial "usage: dd-lake-ingest [-l LAKE]"
	run dd-lake-ingest --bogus
	assert_failure 2
	run dd-lake-ingest --dataset ../escape < /dev/null
	assert_failure 2
	assert_output --partial "--dataset"
	run dd-lake-ingest --dataset .hidden < /dev/null
	assert_failure 2
	run dd-lake-ingest --dataset 'a/b' < /dev/null
	assert_failure 2
	run dd-lake-ingest --level 0 < /dev/null
	assert_failure 2
	run dd-lake-ingest --part-size 12Q < /dev/null
	assert_failure 2
	# An operand is a FILE: one that does not exist is an I/O failure.
	run dd-lake-ingest extra-operand < /dev/null
	assert_failure 4
	assert_output --partial "extra-operand: No such file or directory"
	[ ! -e "$LAKE" ]
}

@test "--help on a full stdout exits 4" {
	run sh -c 'dd-lake-ingest --help > /dev/full'
	assert_failure 4
}

@test "layout: year=/month=/day= by UTC date, part and meta names, no temporaries" {
	gen 300 3 > in.ndjson
	run dd-lake-ingest -l "$LAKE" < in.ndjson
	assert_success
	assert_output --partial "stored 300, duplicates 0, late 0, parts 3, partitions 3"
	run sh -c "find '$DS' -mindepth 1 -type d | sort"
	assert_output - <<-EOF
	$DS/year=2026
	$DS/year=2026/month=11
	$DS/year=2026/month=11/day=01
	$DS/year=2026/month=11/day=02
	$DS/year=2026/month=11/day=03
	EOF
	for p in $(parts); do
		[[ $(basename "$p") =~ ^part-[0-9]{8}T[0-9]{6}\.[0-9]{9}Z-[0-9a-f]{16}\.ndjson\.zst$ ]]
		m="$(dirname "$p")/_$(basename "$p" .ndjson.zst).meta"
		[ -f "$m" ]
		zstd -qt "$p"
		# Every event in a partition has that partition's UTC date.
		d=$(echo "$p" | sed -E 's|.*/year=([0-9]+)/month=([0-9]+)/day=([0-9]+)/.*|\1-\2-\3|')
		run sh -c "zstdcat '$p' | jq -r '.time[0:10]' | sort -u"
		assert_output "$d"
	done
	[ -z "$(hidden)" ]
	run check_blooms
	assert_success
}

@test "default lake is \$DD_HOME/lake; --dataset picks the directory" {
	gen 5 1 > in.ndjson
	run dd-lake-ingest < in.ndjson
	assert_success
	[ -n "$(find "$DD_HOME/lake/events/year=2026/month=11/day=01" -name 'part-*.ndjson.zst')" ]
	run dd-lake-ingest -l "$LAKE" --dataset telemetry-v2 < in.ndjson
	assert_success
	[ -d "$LAKE/telemetry-v2/year=2026/month=11/day=01" ]
}

@test "round trip: zstdcat of all parts equals the input, byte for byte" {
	gen 2000 4 > in.ndjson
	# Small parts: many per partition, all of them must decode.
	run dd-lake-ingest -l "$LAKE" --part-size 16K < in.ndjson
	assert_success
	[ "$(parts | wc -l)" -gt 8 ]
	zstd -qt $(parts)
	parts | xargs zstdcat | sort > out.sorted
	sort in.ndjson > in.sorted
	cmp in.sorted out.sorted
	# Within a part, lines keep their input order.
	p=$(parts | head -1)
	zstdcat "$p" > one
	grep -Fxf one in.ndjson | cmp - one
}

@test "offsets: the partition is the UTC date" {
	{
		ev a "2026-11-26T23:30:00-02:00"	# 2026-11-27 01:30 UTC
		ev b "2026-11-27T01:00:00+05:00"	# 2026-11-26 20:00 UTC
		ev c "2025-12-31T23:59:59.999999Z"
		ev d "2026-01-01T00:00:00+00:00"
		ev e "2026-02-28T22:00:00-03:00"	# 2026-03-01 01:00 UTC
		ev f "1969-12-31T23:59:59.999Z"
		ev g "0000-01-01T00:30:00+01:00"	# -0001-12-31: no partition
	} > in.ndjson
	run dd-lake-ingest -l "$LAKE" < in.ndjson
	assert_failure 1
	assert_output --partial "stdin:7: "
	where() { zstdcat "$DS"/year=$1/month=$2/day=$3/part-*.ndjson.zst | jq -r .id | sort | tr -d '\n'; }
	[ "$(where 2026 11 27)" = a ]
	[ "$(where 2026 11 26)" = b ]
	[ "$(where 2025 12 31)" = c ]
	[ "$(where 2026 01 01)" = d ]
	[ "$(where 2026 03 01)" = e ]
	[ "$(where 1969 12 31)" = f ]
	# The line is stored as written, offset and all.
	zstdcat "$DS"/year=2026/month=11/day=27/part-*.ndjson.zst | grep -q '"2026-11-26T23:30:00-02:00"'
}

@test "late events are stored in their day and counted; far-future ones rejected" {
	now=$(date -u +%s)
	soon=$(date -u -d "@$((now + 6 * 3600))" +%Y-%m-%dT%H:%M:%SZ)
	far=$(date -u -d "@$((now + 2 * 86400))" +%Y-%m-%dT%H:%M:%SZ)
	{
		ev new1 2026-11-10T10:00:00Z
		ev old1 2026-11-08T10:00:00Z
		ev new2 2026-11-10T11:00:00Z
		ev old2 2026-11-09T23:59:59Z
		ev soon "$soon"
		ev far "$far"
		ev old3 2026-11-01T00:00:00Z
	} > in.ndjson
	run dd-lake-ingest -l "$LAKE" --rejects rej.ndjson < in.ndjson
	assert_failure 1
	assert_output --partial "stdin:6: \"time\" is more than a day in the future"
	assert_output --partial "stored 6, duplicates 0, late 3,"
	run lake_ids
	assert_output "$(printf '%s\n' new1 new2 old1 old2 old3 soon | sort)"
	[ -n "$(ls "$DS"/year=2026/month=11/day=08/part-*)" ]
	run jq -r '[.line, .error] | @tsv' rej.ndjson
	assert_output "$(printf '6\t"time" is more than a day in the future')"
}

@test "bad lines: rejected with stderr and --rejects, never stored; exit 1" {
	python3 - > in.ndjson <<-'EOF'
	import sys
	ok = '{"specversion":"1.0","id":"%s","source":"/t","type":"x.t","time":"2026-11-02T00:00:00Z","data":{}}'
	w = sys.stdout.buffer.write
	w((ok % "good-1" + "\n").encode())
	w(b"this is not json\n")
	w(b'{"specversion":"1.0","id":"bad-utf8-\xff\xfe","source":"/t","type":"x.t","time":"2026-11-02T00:00:00Z","data":{}}\n')
	w(b'["an","array"]\n')
	w(b'{"specversion":"1.0","id":"no-time","source":"/t","type":"x.t","data":{}}\n')
	w(b'{"specversion":"1.0","id":"bad-time","source":"/t","type":"x.t","time":"2026-13-45T00:00:00Z","data":{}}\n')
	w(b'{"specversion":"1.0","id":"bad-data","source":"/t","type":"drone.position","time":"2026-11-02T00:00:00Z","data":{"droneId":"D-1"}}\n')
	w(b'{"specversion":"1.0","id":"huge","source":"/t","type":"x.t","time":"2026-11-02T00:00:00Z","data":{"pad":"' + b"x" * (2 << 20) + b'"}}\n')
	w(b'{"specversion":"1.0","id":"trunc","source":"/t","type":"x.t","time":"2026-11-02T00:00:00Z","data":{\n')
	w((ok % "good-2" + "\n").encode())
	EOF
	run dd-lake-ingest -l "$LAKE" --rejects rej.ndjson < in.ndjson
	assert_failure 1
	refute_sanitizer
	for n in 2 3 4 5 6 7 8 9; do
		assert_output --partial "dd-lake-ingest: stdin:$n: "
	done
	assert_output --partial "stdin:8: line longer than"
	assert_output --partial "stored 2,"
	run lake_ids
	assert_output "$(printf 'good-1\ngood-2')"
	run jq -r .line rej.ndjson
	assert_output "$(seq 2 9)"
	# The invalid UTF-8 line keeps its exact bytes in rawBase64.
	jq -r 'select(.line == 3) | .rawBase64' rej.ndjson | base64 -d | cmp - <(sed -n 3p in.ndjson | tr -d '\n')
	# The 2 MiB line keeps its first 4 KiB.
	[ "$(jq -r 'select(.line == 8) | .raw | length' rej.ndjson)" -le 4096 ]
	[ -z "$(hidden)" ]
}

@test "a 2 MiB event is stored whole when --max-line allows it" {
	python3 -c 'print("{\"specversion\":\"1.0\",\"id\":\"big\",\"source\":\"/t\",\"type\":\"x.t\",\"time\":\"2026-11-02T00:00:00Z\",\"data\":{\"pad\":\"" + "y" * (2 << 20) + "\"}}")' > in.ndjson
	gen 10 1 >> in.ndjson
	run dd-lake-ingest -l "$LAKE" --max-line 4M < in.ndjson
	assert_success
	parts | xargs zstdcat | sort | cmp - <(sort in.ndjson)
}

@test "--strict stops at the first bad line with exit 3, what came before is stored" {
	{ ev a 2026-11-02T00:00:00Z; ev b 2026-11-03T00:00:00Z; echo '{nope'; ev c 2026-11-02T00:00:00Z; } > in.ndjson
	run dd-lake-ingest -l "$LAKE" --strict < in.ndjson
	assert_failure 3
	assert_output --partial "stdin:3:"
	run lake_ids
	assert_output "$(printf 'a\nb')"
	[ -z "$(hidden)" ]
}

@test "every kind of bad line dd-sim requests --bad makes is rejected, nothing stored" {
	dd-sim requests -n 300 --bad 0.3 --seed 3 > req.ndjson
	n=$(wc -l < req.ndjson)
	# Requests are not events: every line is rejected, the bad ones too,
	# each with its line number, and the run finishes.
	run dd-lake-ingest -l "$LAKE" --rejects rej.ndjson < req.ndjson
	assert_failure 1
	refute_sanitizer
	[ "$(wc -l < rej.ndjson)" -eq "$n" ]
	[ -z "$(parts)" ]
}

@test "every kind of bad line dd-sim telemetry --bad makes: exactly those rejected, the rest stored" {
	dd-sim telemetry -n 400 --bad 0.2 --seed 5 --days 2 --start 2026-10-01 \
		--bad-manifest manifest.ndjson > in.ndjson
	# Every kind the simulator knows shows up at least once.
	[ "$(jq -r .kind manifest.ndjson | sort -u | wc -l)" -ge 15 ]
	run dd-lake-ingest -l "$LAKE" --rejects rej.ndjson < in.ndjson
	assert_failure 1
	refute_sanitizer
	assert_output --partial "stored 400,"
	diff <(jq .line rej.ndjson) <(jq .line manifest.ndjson)
	# What was stored is exactly the good lines, byte for byte.
	jq -r .line manifest.ndjson | awk 'NR == FNR { bad[$1] = 1; next } !(FNR in bad)' - in.ndjson | sort > good
	parts | xargs zstdcat | sort | cmp - good
}

@test "duplicates within a part are dropped and counted; a rerun adds new parts" {
	gen 50 1 > in.ndjson
	cat in.ndjson in.ndjson > twice.ndjson
	run dd-lake-ingest -l "$LAKE" < twice.ndjson
	assert_success
	assert_output --partial "stored 50, duplicates 50,"
	# Same id, another time: still the same event, once per partition
	# (SPEC), the first kept.
	run dd-lake-ingest -l "$LAKE" < <(ev same 2026-11-02T00:00:00Z; ev same 2026-11-02T00:00:01Z)
	assert_output --partial "stored 1, duplicates 1,"
	[ "$(lake_ids | grep -c '^same$')" -eq 1 ]
	run dd-lake-ingest -l "$LAKE" < in.ndjson
	assert_success
	[ "$(lake_ids | uniq | wc -l)" -eq 51 ]
}

@test "more days than open parts: the others wait for the commit, one part a day, nothing lost" {
	# 80 days interleaved, one event per day in turn: at most 64 parts are
	# open, so the events of the other days are spilled and written as
	# one part per day at the commit (not a part every few events).
	for r in 1 2 3; do
		for d in $(seq 0 79); do
			ev "r$r-d$d" "$(date -u -d "2026-01-01 + $d days" +%Y-%m-%d)T0$r:00:00Z"
		done
	done > in.ndjson
	run dd-lake-ingest -l "$LAKE" < in.ndjson
	assert_success
	assert_output --partial "stored 240, duplicates 0, late 158,"
	assert_output --partial "partitions 80,"
	[ "$(parts | wc -l)" -eq 80 ]
	run lake_ids
	assert_output "$(jq -r .id in.ndjson | sort)"
}

@test "idle flush: parts become visible while the writer still runs" {
	mkfifo pipe
	gen 40 2 > in.ndjson
	dd-lake-ingest -l "$LAKE" --flush-interval 200ms < pipe 2> err &
	BG=$!
	exec 7> pipe
	head -20 in.ndjson >&7
	for i in $(seq 50); do [ -n "$(parts)" ] && break; sleep 0.1; done
	[ -n "$(parts)" ]
	kill -0 $BG	# still running
	[ "$(lake_ids | wc -l)" -eq 20 ]
	tail -n +21 in.ndjson >&7
	exec 7>&-
	wait $BG
	BG=
	run lake_ids
	assert_output "$(jq -r .id in.ndjson | sort)"
}

@test "SIGTERM and SIGINT: open parts are made visible, exit 143 and 130" {
	for sig in TERM INT; do
		rm -rf "$LAKE" pipe
		mkfifo pipe
		dd-lake-ingest -l "$LAKE" --flush-interval 1h < pipe 2> err &
		BG=$!
		exec 7> pipe
		gen 30 3 > in.ndjson
		cat in.ndjson >&7
		# Signal only once it has read everything (however loaded the machine).
		size=$(stat -c %s in.ndjson)
		for i in $(seq 100); do
			[ "$(awk '/^rchar/ {print $2}' /proc/$BG/io)" -ge "$size" ] && break
			sleep 0.1
		done
		sleep 0.2
		[ -z "$(parts)" ]
		kill -$sig $BG
		rc=0
		wait $BG || rc=$?
		BG=
		exec 7>&-
		[ "$rc" -eq $([ $sig = TERM ] && echo 143 || echo 130) ]
		[ "$(lake_ids | wc -l)" -eq 30 ]
		[ -z "$(hidden)" ]
	done
}

@test "kill -9 mid-ingest: no visible partial part; a rerun cleans up and finds every id" {
	gen 20000 3 > in.ndjson
	head -12000 in.ndjson > first.ndjson
	mkfifo pipe
	dd-lake-ingest -l "$LAKE" --part-size 64K --flush-interval 1h < pipe 2> err &
	BG=$!
	exec 7> pipe
	cat first.ndjson >&7
	# Wait until the first half is in: visible parts, and open ones hidden.
	for i in $(seq 300); do
		[ "$(lake_ids | wc -l)" -ge 11000 ] && [ -n "$(hidden)" ] && break
		sleep 0.1
	done
	kill -9 $BG
	wait $BG || true
	BG=
	exec 7>&-
	# Only hidden temporaries are partial; every visible part is whole
	# and its metadata describes it.
	[ -n "$(hidden)" ]
	zstd -qt $(parts)
	run check_blooms
	assert_success
	# The same input again: stale temporaries go, every id is findable.
	run dd-lake-ingest -l "$LAKE" --part-size 64K < in.ndjson
	assert_success
	[ -z "$(hidden)" ]
	zstd -qt $(parts)
	diff <(lake_ids | uniq) <(jq -r .id in.ndjson | sort)
}

@test "disk full: exit 4, no visible partial part, no temporaries, earlier parts intact" {
	FULL="$BATS_TEST_TMPDIR/full"
	mkdir -p "$FULL"
	mount -t tmpfs -o size=1m tmpfs "$FULL" 2>/dev/null || skip "cannot mount a tmpfs (not root)"
	# Incompressible payloads, so 1 MiB fills up quickly.
	python3 - > in.ndjson <<-'EOF'
	import os, base64
	for i in range(3000):
	    pad = base64.b64encode(os.urandom(600)).decode()
	    print('{"specversion":"1.0","id":"f-%d","source":"/t","type":"x.t","time":"2026-11-0%dT00:00:00Z","data":{"pad":"%s"}}' % (i, 1 + i % 3, pad))
	EOF
	run dd-lake-ingest -l "$FULL/lake" --part-size 64K < in.ndjson
	assert_failure 4
	assert_output --partial "No space left on device"
	said=$output
	[ -z "$(find "$FULL" -type f -name '.*')" ]
	DS="$FULL/lake/events"
	n=$(parts | wc -l)
	[ "$n" -gt 0 ]
	zstd -qt $(parts)
	run check_blooms
	assert_success
	# Nothing visible holds an event that was not in the input.
	lake_ids | uniq | comm -23 - <(jq -r .id in.ndjson | sort) | wc -l | grep -qx 0
	# The summary claims only what is durable: the events of visible parts.
	[[ "$said" == *"stored $(zstdcat $(parts) | wc -l),"* ]] || fail "$said"
}

@test "DuckDB reads the lake as it is: counts per day and type, sample ids" {
	gen 3000 5 2026-10-28T12:00:00Z > in.ndjson
	run dd-lake-ingest -l "$LAKE" --part-size 64K < in.ndjson
	assert_success
	zstd -qt $(parts)
	sample=$(jq -r .id in.ndjson | awk 'NR % 397 == 1')
	run node "$DD_ROOT/tests/duckdb-read.mjs" "$LAKE" events $sample no-such-id
	assert_success
	echo "$output" > duck.json
	[ "$(jq .total duck.json)" -eq 3000 ]
	diff <(jq -S .perDay duck.json) \
		<(jq -s 'group_by(.time[0:10]) | map({(.[0].time[0:10]): length}) | add' in.ndjson | jq -S .)
	diff <(jq -S .perType duck.json) \
		<(jq -s 'group_by(.type) | map({(.[0].type): length}) | add' in.ndjson | jq -S .)
	diff <(jq -r '.found[]' duck.json) <(echo "$sample" | sort)
}
