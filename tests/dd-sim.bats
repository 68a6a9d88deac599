#!/usr/bin/env bats
# dd-sim: determinism, schema validity of every line, time order, the
# pass-through of fly, flights cut short and flown again, malformed lines.

load common

setup() {
	cd "$BATS_TEST_TMPDIR"
}

py() { /usr/bin/python3 -c "$@"; }

# A stand-in scheduler until dd-schedule exists: each request becomes a
# delivery.scheduled 30 minutes before its pickup, with one of 7 drones.
schedule() {
	jq -c '
	(.pickupTime | sub("\\.[0-9]+Z$"; "Z") | fromdate) as $p
	| {specversion: "1.0", id: ("s-" + .requestId), source: "/dd-schedule",
	   type: "delivery.scheduled", time: (($p - 1800) | todate),
	   subject: ("d-" + .requestId), datacontenttype: "application/json",
	   data: {deliveryId: ("d-" + .requestId), requestId, ownerId, pickup, dropoff,
	          pickupTime, deadline, expedited, confirmationRequired, package,
	          droneId: ("D-" + ((.requestId | split("-") | .[2] | tonumber) % 7 | tostring)),
	          pickupEta: .pickupTime, dropoffEta: (($p + 1500) | todate)}}'
}

# Fail unless the events of FILE are in non-decreasing time order.
time_ordered() {
	py '
import sys, datetime
prev = None
for n, line in enumerate(open(sys.argv[1], "rb"), 1):
    import json
    t = datetime.datetime.fromisoformat(json.loads(line)["time"].replace("Z", "+00:00"))
    if prev and t < prev:
        sys.exit("line %d goes back in time" % n)
    prev = t
' "$1"
}

# ---- usage ----

@test "usage: --help and -V exit 0, the usage names every command" {
	run dd-sim --help
	assert_success
	assert_line --partial "dd-sim requests -n N"
	assert_line --partial "dd-sim fly"
	assert_line --partial "dd-sim telemetry -n N"
	run dd-sim fly --help
	assert_success
	run dd-sim -V
	assert_success
	assert_output --regexp '^dd-sim [0-9]+\.[0-9]+'
}

@test "usage errors exit 2 and write nothing on stdout" {
	while IFS='|' read -r args; do
		run bash -c "dd-sim $args 2>/dev/null"
		refute_sanitizer
		[ "$status" -eq 2 ] || fail "dd-sim $args: exit $status, not 2"
		[ -z "$output" ] || fail "dd-sim $args wrote: $output"
		run bash -c "dd-sim $args 2>&1 >/dev/null"
		assert_output --partial "dd-sim: "
	done <<-'EOF'

	frobnicate
	requests
	requests -n
	requests -n x
	requests -n -3
	requests -n 5 extra
	requests -n 5 --bad 0.9
	requests -n 5 --bad -0.1
	requests -n 5 --bad-manifest m.ndjson
	requests -n 5 --area 47,-122
	requests -n 5 --area 95,0,10
	requests -n 5 --area 47,-122,0
	requests -n 5 --rate 0
	requests -n 5 --start yesterday
	requests -n 5 --seed -1
	requests -n 5 --days 3
	requests -n 5 --dup 0.1
	requests -n 5 --nope
	telemetry
	telemetry -n 5 --rate 3
	telemetry -n 5 --deliveries 0
	telemetry -n 5 --days 0
	telemetry -n 5 --fail 2
	fly -n 5
	fly --position-every 0
	fly --dup 1.5
	fly --reorder x
	fly --max-line 1
	fly --cancel 0.1
	EOF
}

# ---- requests ----

@test "requests: N lines, every one a valid request" {
	run dd-sim requests -n 300 --seed 3
	assert_success
	[ "${#lines[@]}" -eq 300 ]
	dd-sim requests -n 300 --seed 3 > r.ndjson
	run validate_events --requests r.ndjson
	assert_success
}

@test "requests: ids, times and spread are as documented" {
	dd-sim requests -n 2000 --seed 4 > r.ndjson
	run jq -r 'select(.requestId != "r-4-\(input_line_number)")' r.ndjson
	assert_output ""
	run jq -r 'select(.package.packageId != "p-4-\(input_line_number)")' r.ndjson
	assert_output ""
	# Pickups in time order, on whole minutes, from the default start.
	run jq -r .pickupTime r.ndjson
	[ "${lines[0]}" = "2026-11-26T06:00:00.000Z" ]
	jq -r .pickupTime r.ndjson | sort -c
	run grep -vc ':00.000Z"' <(jq .pickupTime r.ndjson)
	assert_output 0
	# Deadlines 1-6 h after the pickup; some expedited; weights by size.
	py '
import json, sys, datetime, collections
p = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
rs = [json.loads(l) for l in open("r.ndjson")]
for r in rs:
    h = (p(r["deadline"]) - p(r["pickupTime"])).total_seconds() / 3600
    assert 1 <= h <= 6, r
    w, s = r["package"]["weightKg"], r["package"]["size"]
    assert {"small": (0.1, 2.5), "medium": (2, 8), "large": (6, 20)}[s][0] <= w <= \
        {"small": (0.1, 2.5), "medium": (2, 8), "large": (6, 20)}[s][1], r
exp = sum(r["expedited"] for r in rs) / len(rs)
assert 0.05 < exp < 0.15, exp
sizes = collections.Counter(r["package"]["size"] for r in rs)
assert sizes["small"] > sizes["medium"] > sizes["large"] > 0, sizes
owners = collections.Counter(r["ownerId"] for r in rs)
top = owners.most_common(1)[0][1]
assert top > 10 * len(rs) / 500 and len(owners) > 100, (top, len(owners))
'
}

@test "requests: --area and --start and --rate are obeyed" {
	dd-sim requests -n 500 --seed 2 --area 36.78,-119.42,5 --start 2027-01-01 --rate 60 > r.ndjson
	run jq -r .pickupTime r.ndjson
	[ "${lines[0]}" = "2027-01-01T00:00:00.000Z" ]
	py '
import json, math
for l in open("r.ndjson"):
    r = json.loads(l)
    for k in ("pickup", "dropoff"):
        dy = (r[k]["lat"] - 36.78) * 111.2
        dx = (r[k]["lon"] + 119.42) * 111.2 * math.cos(math.radians(36.78))
        assert math.hypot(dx, dy) <= 5.05, r
'
	# 500 requests at 60 an hour take about 8 hours.
	run jq -r .pickupTime <(tail -1 r.ndjson)
	assert_output --regexp '^2027-01-01T0[6-9]:|^2027-01-01T1[0-1]:'
}

@test "requests: same seed, same bytes; another seed differs; request n does not depend on N" {
	dd-sim requests -n 200 --seed 11 > a
	dd-sim requests -n 200 --seed 11 > b
	dd-sim requests -n 200 --seed 12 > c
	dd-sim requests -n 50 --seed 11 > d
	cmp a b
	! cmp -s a c
	cmp d <(head -50 a)
}

@test "requests: --cancel adds valid cancel operations of earlier requests" {
	dd-sim requests -n 400 --seed 5 --cancel 0.1 > r.ndjson
	run validate_events --requests r.ndjson
	assert_success
	[ "$(jq -c 'select(.op == null)' r.ndjson | wc -l)" -eq 400 ]
	n=$(jq -c 'select(.op == "cancel")' r.ndjson | wc -l)
	[ "$n" -gt 15 ] && [ "$n" -lt 70 ]
	# Each names a request (with its owner) that came before it.
	py '
import json
seen = {}
for l in open("r.ndjson"):
    r = json.loads(l)
    if r.get("op") == "cancel":
        assert seen.get(r["requestId"]) == r["ownerId"], r
    else:
        seen[r["requestId"]] = r["ownerId"]
'
	# Without --cancel, the same requests.
	cmp <(jq -c 'select(.op == null)' r.ndjson) <(dd-sim requests -n 400 --seed 5 | jq -c .)
}

@test "requests --bad: exactly the manifest's lines are invalid requests, every kind appears" {
	dd-sim requests -n 300 --seed 6 --bad 0.2 --bad-manifest m.ndjson > r.ndjson
	nbad=$(wc -l < m.ndjson)
	[ "$nbad" -gt 40 ]
	[ "$(wc -l < r.ndjson)" -eq $((300 + nbad)) ]
	run validate_events --requests r.ndjson
	assert_failure 1
	validate_events --requests --all r.ndjson 2> errs || true
	py '
import json, re
man = {}
for l in open("m.ndjson"):
    m = json.loads(l)
    man[m["line"]] = m
errs = {}
for l in open("errs"):
    m = re.match(r"r\.ndjson:(\d+): (.*)", l)
    if m:
        errs[int(m.group(1))] = m.group(2)
assert set(errs) == set(man), sorted(set(errs) ^ set(man))
want = {"json": "not JSON", "not-object": "not a JSON object", "empty": "empty line",
    "utf8": "invalid UTF-8", "too-long": "line too long", "depth": "nested too deeply",
    "schema": "request: "}
for n, m in man.items():
    assert want[m["expect"]] in errs[n], (m, errs[n])
kinds = {m["kind"] for m in man.values()}
assert kinds == {"broken-json", "truncated-json", "not-object", "trailing-garbage", "nul-byte",
    "control-character", "bad-escape", "deep-nesting", "empty-line", "invalid-utf8",
    "huge-line", "nan", "wrong-type", "missing-field", "bad-time", "bad-enum",
    "out-of-range", "bad-op"}, kinds
'
	# The huge line is over 1 MiB; the good lines are those of a run without --bad.
	huge=$(jq -r 'select(.kind == "huge-line") | .line' m.ndjson | head -1)
	[ "$(sed -n "${huge}p" r.ndjson | wc -c)" -gt 1048576 ]
	cmp <(jq -r .line m.ndjson | awk '{print $1 "d"}' | sed -f - r.ndjson) \
	    <(dd-sim requests -n 300 --seed 6)
}

@test "requests --bad: same seed, same bytes and manifest" {
	dd-sim requests -n 100 --seed 8 --bad 0.3 --bad-manifest m1 > a
	dd-sim requests -n 100 --seed 8 --bad 0.3 --bad-manifest m2 > b
	cmp a b
	cmp m1 m2
}

# ---- telemetry ----

@test "telemetry: exactly N valid events in time order, about 300 bytes each" {
	for n in 0 1 3 4 7 10 999 5000; do
		dd-sim telemetry -n $n --seed 2 > t.ndjson
		[ "$(wc -l < t.ndjson)" -eq $n ] || fail "-n $n gave $(wc -l < t.ndjson) lines"
	done
	run validate_events t.ndjson
	assert_success
	time_ordered t.ndjson
	avg=$(( $(wc -c < t.ndjson) / 5000 ))
	[ "$avg" -gt 250 ] && [ "$avg" -lt 350 ]
	# Producers write UTC with milliseconds.
	run grep -vc '"time":"20[0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9][0-9][0-9]Z"' t.ndjson
	assert_output 0
}

@test "telemetry: every flight is plausible: dispatched, positions, picked-up, delivered or failed, returned" {
	dd-sim telemetry -n 3000 --seed 4 --deliveries 200 --days 2 --fail 0.2 > t.ndjson
	py '
import json, collections
fl = collections.defaultdict(list)
for l in open("t.ndjson"):
    e = json.loads(l)
    d = e["data"]
    assert e["source"] == "/drones/" + d["droneId"], e
    assert e["id"].startswith(e["subject"] + ":t:"), e
    fl[e["subject"]].append(e)
assert len(fl) == 200, len(fl)
failed = 0
for s, evs in fl.items():
    ts = [e["type"] for e in evs]
    assert ts[0] == "drone.dispatched" and ts[-1] == "drone.returned", ts
    core = [t for t in ts if t != "drone.position"]
    assert core in (["drone.dispatched", "drone.picked-up", "drone.delivered", "drone.returned"],
                    ["drone.dispatched", "drone.picked-up", "drone.failed", "drone.returned"]), core
    failed += "drone.failed" in core
    assert len({e["data"]["droneId"] for e in evs}) == 1
    bat = [e["data"]["battery"] for e in evs if "battery" in e["data"]]
    assert bat == sorted(bat, reverse=True) and bat[0] == 1.0, bat
    assert [int(e["id"].rsplit(":", 1)[1]) for e in evs] == list(range(len(evs)))
assert 15 < failed < 70, failed
'
	# Dispatches spread over the 2 days, which by default end before
	# requests start, so a lake takes them all.
	run jq -r 'select(.type == "drone.dispatched") | .time[0:10]' t.ndjson
	assert_line "2026-10-27"
	assert_line "2026-10-28"
	refute_line "2026-10-29"
}

@test "telemetry: same seed, same bytes; another seed differs" {
	dd-sim telemetry -n 3000 --seed 21 > a
	dd-sim telemetry -n 3000 --seed 21 > b
	dd-sim telemetry -n 3000 --seed 22 > c
	cmp a b
	! cmp -s a c
}

@test "telemetry --bad: the scanner rejects exactly the manifest's lines, each for the right reason" {
	dd-sim telemetry -n 2000 --seed 7 --bad 0.1 --bad-manifest m.ndjson > t.ndjson
	run validate_events t.ndjson
	assert_failure 1
	# fly reads every line with dd_env_scan (and the data checks of the
	# types it consumes), passes every line on, and reports the rejects.
	run bash -c 'dd-sim fly -q --rejects rj.ndjson < t.ndjson > out.ndjson'
	refute_sanitizer
	assert_failure 1
	cmp t.ndjson out.ndjson
	cmp <(jq .line m.ndjson) <(jq .line rj.ndjson)
	py '
import json
man = [json.loads(l) for l in open("m.ndjson")]
rej = [json.loads(l) for l in open("rj.ndjson")]
want = {"json": "invalid JSON", "not-object": "not a JSON object", "empty": "empty line",
    "utf8": "invalid UTF-8", "too-long": "longer than", "depth": "nested too deeply",
    "missing": "missing \"", "duplicate": "duplicate attribute", "time": "\"time\"",
    "specversion": "specversion", "id": "\"id\"", "data": "\"data"}
for m, r in zip(man, rej):
    assert want[m["expect"]] in r["error"], (m, r["error"])
kinds = {m["kind"] for m in man}
assert len(kinds) == 20, kinds
'
	# The good lines are those of a run without --bad.
	cmp <(jq -r .line m.ndjson | awk '{print $1 "d"}' | sed -f - t.ndjson) \
	    <(dd-sim telemetry -n 2000 --seed 7)
}

# ---- fly ----

@test "fly: every input line passes through unchanged and in order" {
	dd-sim requests -n 40 --seed 9 | schedule > s.ndjson
	dd-sim fly -q --seed 9 < s.ndjson > f.ndjson
	cmp s.ndjson <(grep -v '"source":"/drones/' f.ndjson)
	# Also lines it does not understand: not JSON, CRLF, other types, no final newline.
	{
		printf 'not json at all\n'
		head -2 s.ndjson
		printf '{"specversion":"1.0","id":"x1","source":"/x","type":"other.thing","time":"2026-11-26T05:40:00+01:00","data":{}}\r\n'
		printf '\n'
		sed -n 3p s.ndjson
		printf '[1,2,3]'
	} > in.ndjson
	run bash -c 'dd-sim fly -q < in.ndjson > out.ndjson'
	assert_failure 1
	cmp <(cat in.ndjson; echo) <(grep -v '"source":"/drones/' out.ndjson)
}

@test "fly: all output is valid, in time order, and each delivery gets one whole flight" {
	dd-sim requests -n 60 --seed 9 | schedule > s.ndjson
	run bash -c 'dd-sim fly --seed 9 < s.ndjson > f.ndjson'
	assert_success
	assert_output --partial "flights 60"
	run validate_events f.ndjson
	assert_success
	time_ordered f.ndjson
	py '
import json, collections, datetime
p = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
sched, fl = {}, collections.defaultdict(list)
for l in open("f.ndjson"):
    e = json.loads(l)
    if e["type"] == "delivery.scheduled":
        sched[e["data"]["deliveryId"]] = e
    else:
        fl[e["subject"]].append(e)
assert set(sched) == set(fl)
for d, evs in fl.items():
    s = sched[d]
    core = [e["type"] for e in evs if e["type"] != "drone.position"]
    assert core[0] == "drone.dispatched" and core[-1] == "drone.returned" and len(core) == 4, core
    assert all(e["source"] == "/drones/" + s["data"]["droneId"] for e in evs)
    assert all(e["data"]["droneId"] == s["data"]["droneId"] for e in evs)
    # Telemetry comes after the schedule; the pickup near its ETA.
    assert p(evs[0]["time"]) >= p(s["time"])
    pick = next(e for e in evs if e["type"] == "drone.picked-up")
    eta = p(s["data"]["pickupEta"])
    assert 0 <= (p(pick["time"]) - eta).total_seconds() <= 240, (pick["time"], eta)
    assert abs(pick["data"]["location"]["lat"] - s["data"]["pickup"]["lat"]) < 1e-5
    dl = next((e for e in evs if e["type"] == "drone.delivered"), None)
    if dl:
        assert abs(dl["data"]["location"]["lon"] - s["data"]["dropoff"]["lon"]) < 1e-5
        assert dl["data"]["confirmation"] == s["data"]["confirmationRequired"]
    assert [e["id"] for e in evs] == ["%s:t:%d" % (d, i) for i in range(len(evs))]
'
}

@test "fly: same seed and input, same bytes; another seed differs" {
	dd-sim requests -n 30 --seed 9 | schedule > s.ndjson
	dd-sim fly -q --seed 4 < s.ndjson > a
	dd-sim fly -q --seed 4 < s.ndjson > b
	dd-sim fly -q --seed 5 < s.ndjson > c
	cmp a b
	! cmp -s a c
	# Feeding the input in small pieces changes nothing.
	( while IFS= read -r l; do printf '%s\n' "$l"; sleep 0.01; done < s.ndjson ) |
	    dd-sim fly -q --seed 4 > d
	cmp a d
}

@test "fly: --fail 1 fails every delivery, --fail 0 none" {
	dd-sim requests -n 20 --seed 9 | schedule > s.ndjson
	dd-sim fly -q --fail 1 < s.ndjson > f1
	dd-sim fly -q --fail 0 < s.ndjson > f0
	[ "$(grep -c '"type":"drone.failed"' f1)" -eq 20 ]
	[ "$(grep -c '"type":"drone.delivered"' f1)" -eq 0 ]
	[ "$(grep -c '"type":"drone.delivered"' f0)" -eq 20 ]
	[ "$(grep -c '"type":"drone.returned"' f1)" -eq 20 ]
	run validate_events f1
	assert_success
}

@test "fly: --position-every sets the interval of positions" {
	dd-sim requests -n 5 --seed 9 | schedule > s.ndjson
	dd-sim fly -q --position-every 10 < s.ndjson > f10
	dd-sim fly -q --position-every 60 < s.ndjson > f60
	n10=$(grep -c drone.position f10)
	n60=$(grep -c drone.position f60)
	[ "$n10" -gt $((5 * n60)) ] && [ "$n10" -lt $((7 * n60)) ]
	py '
import json, collections, datetime
p = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
t = collections.defaultdict(list)
for l in open("f60"):
    e = json.loads(l)
    if e["type"] == "drone.position":
        t[e["subject"]].append(p(e["time"]))
for ts in t.values():
    assert all((b - a).total_seconds() == 60 for a, b in zip(ts, ts[1:]))
'
}

@test "fly: --dup repeats events byte for byte, --reorder makes some late; nothing else changes" {
	dd-sim requests -n 30 --seed 9 | schedule > s.ndjson
	dd-sim fly -q < s.ndjson > plain
	dd-sim fly -q --dup 0.1 < s.ndjson > dup
	dd-sim fly -q --reorder 0.1 < s.ndjson > late
	dups=$(jq -r .id dup | sort | uniq -d | wc -l)
	[ "$dups" -gt 50 ]
	cmp <(sort -u dup) <(sort -u plain)
	[ "$(wc -l < dup)" -eq $(( $(wc -l < plain) + dups )) ]
	cmp <(sort late) <(sort plain)
	run time_ordered late
	assert_failure
	run validate_events dup late
	assert_success
	# Deterministic too.
	cmp dup <(dd-sim fly -q --dup 0.1 < s.ndjson)
	cmp late <(dd-sim fly -q --reorder 0.1 < s.ndjson)
}

@test "fly: delivery.cancelled cuts a flight short, before or during it" {
	dd-sim requests -n 3 --seed 9 | schedule > s.ndjson
	d1=$(jq -r 'select(.data.requestId == "r-9-1") | .data.deliveryId' s.ndjson)
	d2=$(jq -r 'select(.data.requestId == "r-9-2") | .data.deliveryId' s.ndjson)
	# d1 in the air at 06:05, d2 cancelled at 05:31, long before it leaves.
	{
		cat s.ndjson
		printf '{"specversion":"1.0","id":"c-2","source":"/dd-schedule","type":"delivery.cancelled","time":"2026-11-26T05:31:00Z","subject":"%s","data":{"deliveryId":"%s","reason":"customer-request"}}\n' "$d2" "$d2"
		printf '{"specversion":"1.0","id":"c-1","source":"/dd-schedule","type":"delivery.cancelled","time":"2026-11-26T06:05:00Z","subject":"%s","data":{"deliveryId":"%s","reason":"customer-request"}}\n' "$d1" "$d1"
	} > in.ndjson
	run bash -c 'dd-sim fly --seed 9 < in.ndjson > out.ndjson'
	assert_success
	assert_output --partial "cancelled 2"
	run validate_events out.ndjson
	assert_success
	time_ordered out.ndjson
	run jq -r --arg d "$d1" 'select(.subject == $d and .source != "/dd-schedule") | .type' out.ndjson
	assert_line drone.dispatched
	refute_line drone.delivered
	[ "${lines[-1]}" = drone.returned ]
	run jq -r --arg d "$d1" 'select(.subject == $d and .type == "drone.returned") | .time' out.ndjson
	[[ "$output" > "2026-11-26T06:05" ]]
	run jq -r --arg d "$d2" 'select(.subject == $d and .source != "/dd-schedule") | .type' out.ndjson
	assert_output ""
	# The third flies as before.
	d3=$(jq -r 'select(.data.requestId == "r-9-3") | .data.deliveryId' s.ndjson)
	cmp <(jq -c --arg d "$d3" 'select(.subject == $d)' out.ndjson) \
	    <(dd-sim fly -q --seed 9 < s.ndjson | jq -c --arg d "$d3" 'select(.subject == $d)')
}

@test "fly: delivery.rescheduled flies the delivery again, with the new drone and time" {
	dd-sim requests -n 2 --seed 9 | schedule > s.ndjson
	d1=$(jq -r 'select(.data.requestId == "r-9-1") | .data.deliveryId' s.ndjson)
	d2=$(jq -r 'select(.data.requestId == "r-9-2") | .data.deliveryId' s.ndjson)
	{
		cat s.ndjson
		# d2 before it leaves: a new drone, an hour later.
		printf '{"specversion":"1.0","id":"r-2","source":"/dd-schedule","type":"delivery.rescheduled","time":"2026-11-26T05:35:00Z","subject":"%s","data":{"deliveryId":"%s","reason":"no-drone","droneId":"D-99","pickupEta":"2026-11-26T07:00:00.000Z"}}\n' "$d2" "$d2"
		# d1 in the air: same drone, later.
		printf '{"specversion":"1.0","id":"r-1","source":"/dd-schedule","type":"delivery.rescheduled","time":"2026-11-26T06:03:00Z","subject":"%s","data":{"deliveryId":"%s","reason":"weather","pickupTime":"2026-11-26T09:00:00.000Z"}}\n' "$d1" "$d1"
	} > in.ndjson
	run bash -c 'dd-sim fly --seed 9 < in.ndjson > out.ndjson'
	assert_success
	assert_output --partial "rescheduled 2"
	run validate_events out.ndjson
	assert_success
	time_ordered out.ndjson
	# Ids stay unique across the old flight's return and the new flight.
	run bash -c "jq -r .id out.ndjson | sort | uniq -d"
	assert_output ""
	# d2: only the new drone flies, around the new time.
	run jq -r --arg d "$d2" 'select(.subject == $d and .source != "/dd-schedule") | .source' out.ndjson
	refute_output --partial "/drones/D-2"
	assert_line /drones/D-99
	run jq -r --arg d "$d2" 'select(.subject == $d and .type == "drone.picked-up") | .time' out.ndjson
	assert_output --regexp '^2026-11-26T07:0[0-4]:'
	# d1: dispatched, turned home (returned), then the whole flight again.
	run jq -r --arg d "$d1" 'select(.subject == $d and .source != "/dd-schedule" and .type != "drone.position") | .type' out.ndjson
	assert_equal "$(echo "$output" | tr '\n' ' ')" \
	    "drone.dispatched drone.picked-up drone.returned drone.dispatched drone.picked-up drone.delivered drone.returned "
	run jq -r --arg d "$d1" 'select(.subject == $d and .type == "drone.picked-up") | .time' out.ndjson
	assert_line --regexp '^2026-11-26T09:0[0-4]:'
}

@test "fly: a replayed delivery.scheduled of a flight under way changes nothing" {
	dd-sim requests -n 3 --seed 9 | schedule > s.ndjson
	dd-sim fly -q < s.ndjson > once
	cat s.ndjson s.ndjson | dd-sim fly -q > twice
	cmp <(grep '/drones/' once) <(grep '/drones/' twice)
}

@test "fly: delivery events with unusable data are rejected and passed on" {
	dd-sim requests -n 2 --seed 9 | schedule > s.ndjson
	{
		cat s.ndjson
		head -1 s.ndjson | jq -c '.id = "bad1" | del(.data.droneId)'
		head -1 s.ndjson | jq -c '.id = "bad2" | .data.pickup.lat = 123'
		head -1 s.ndjson | jq -c '.id = "bad3" | .type = "delivery.cancelled" | .data = {reason: "x"}'
	} > in.ndjson
	run bash -c 'dd-sim fly -q --rejects rj.ndjson < in.ndjson > out.ndjson'
	assert_failure 1
	assert_line --partial 'stdin:3: missing "data.droneId"'
	assert_line --partial 'stdin:4: "data.pickup"'
	assert_line --partial 'stdin:5: missing "data.deliveryId"'
	[ "$(wc -l < rj.ndjson)" -eq 3 ]
	cmp in.ndjson <(grep -v '/drones/' out.ndjson)
}

@test "fly: a rejected line costs nothing else: the rest of the output is the clean stream's" {
	dd-sim requests -n 3 --seed 9 | schedule > s.ndjson
	# A bad delivery.scheduled dated a day later, right after the first line.
	bad=$(head -1 s.ndjson | jq -c '.id = "bad" | .time = "2026-11-27T12:00:00Z" | del(.data.droneId)')
	{ head -1 s.ndjson; echo "$bad"; tail -n +2 s.ndjson; } > in.ndjson
	dd-sim fly -q < s.ndjson > clean.ndjson
	run bash -c 'dd-sim fly -q < in.ndjson > out.ndjson'
	assert_failure 1
	cmp clean.ndjson <(grep -vF "$bad" out.ndjson)
}

@test "fly: odd ids (escapes, non-ASCII, near 128 bytes) still give valid, unique ids and sources" {
	dd-sim requests -n 3 --seed 9 | schedule > s.ndjson
	long=$(printf 'x%.0s' {1..120})
	{
		sed -n 1p s.ndjson | jq -c --arg l "$long" '.data.deliveryId = $l | .subject = $l'
		sed -n 2p s.ndjson | jq -c '.data.deliveryId = "d\"q\u00e9\u2603\n" | .data.droneId = "D/\"7\" é"'
		sed -n 3p s.ndjson
	} > in.ndjson
	run bash -c 'dd-sim fly -q < in.ndjson > out.ndjson'
	assert_success
	run validate_events out.ndjson
	assert_success
	run bash -c "jq -c .id out.ndjson | sort | uniq -d"
	assert_output ""
	[ "$(jq -c 'select(.subject | startswith("d\"q")) | .id' out.ndjson | head -1)" = '"d\"qé☃\n:t:0"' ]
	run jq -r 'select(.type == "drone.dispatched") | .source + " " + .data.droneId' out.ndjson
	assert_line '/drones/D%2F%227%22%20%C3%A9 D/"7" é'
	# The long delivery id is kept as subject; ids use a stable hash of it.
	run jq -r --arg l "$long" 'select(.subject == $l and .type == "drone.dispatched") | .id' out.ndjson
	assert_output --regexp '^h-[0-9a-f]{16}:t:0$'
}

@test "fly: a live stream is flushed within a second, and SIGTERM stops it with 143" {
	dd-sim requests -n 3 --seed 9 | schedule > s.ndjson
	mkfifo in
	( cat s.ndjson; sleep 4 ) > in 3>&- &
	dd-sim fly < in > out.ndjson 2> err 3>&- &
	pid=$!
	sleep 2
	[ "$(wc -l < out.ndjson)" -eq 3 ]
	kill -TERM "$pid"
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 143 ] || fail "exit $rc: $(cat err)"
	cmp s.ndjson out.ndjson
}

@test "write errors exit 4" {
	run bash -c 'dd-sim requests -n 10 > /dev/full'
	refute_sanitizer
	assert_failure 4
	run bash -c 'dd-sim telemetry -n 100000 > /dev/full'
	assert_failure 4
	dd-sim requests -n 5 | schedule > s.ndjson
	run bash -c 'dd-sim fly < s.ndjson > /dev/full'
	assert_failure 4
	run bash -c 'dd-sim requests -n 5 --bad 0.5 --bad-manifest /dev/full > /dev/null'
	assert_failure 4
	run bash -c 'dd-sim requests -n 5 --bad 0.5 --bad-manifest /nonexistent/m > /dev/null'
	assert_failure 4
}
