#!/usr/bin/env bats
# dd-track: pass-through and status events, stage rules (order, duplicates,
# late events, reschedules, unknown deliveries), ETAs, --retain,
# --position-every, get/list/stats, bad input, locks, signals, and the
# kill -9 replay.

load common
bats_require_minimum_version 1.5.0

setup() {
	cd "$BATS_TEST_TMPDIR"
}

teardown() {
	[ -z "${BG:-}" ] || kill $BG 2>/dev/null || true
}

py() { /usr/bin/python3 -c "$@"; }

# ev ID TYPE TIME SUBJECT DATA [SOURCE]: one event.
ev() {
	printf '{"specversion":"1.0","id":"%s","source":"%s","type":"%s","time":"%s","subject":"%s","data":%s}\n' \
		"$1" "${6:-/dd-schedule}" "$2" "$3" "$4" "$5"
}

# sch ID DELIVERY TIME: a delivery.scheduled with pickup 47.60,-122.33 and
# dropoff 47.62,-122.33 (2224 m north of it).
sch() {
	ev "$1" delivery.scheduled "$3" "$2" "{\"deliveryId\":\"$2\",\"requestId\":\"r-$2\",\"ownerId\":\"o-1\",\"pickup\":{\"lat\":47.6,\"lon\":-122.33,\"alt\":0},\"dropoff\":{\"lat\":47.62,\"lon\":-122.33,\"alt\":0},\"pickupTime\":\"2026-11-26T10:00:00Z\",\"deadline\":\"2026-11-26T12:00:00Z\",\"expedited\":false,\"confirmationRequired\":\"None\",\"package\":{\"packageId\":\"p-$2\",\"size\":\"small\",\"weightKg\":1},\"droneId\":\"D-1\",\"pickupEta\":\"2026-11-26T10:00:00.000Z\",\"dropoffEta\":\"2026-11-26T10:30:00.000Z\"}"
}

# tel ID TYPE DELIVERY TIME [LAT [SPEED [DRONE]]]: telemetry at LAT,-122.33.
tel() {
	local lat=${5:-47.59} sp=${6:-10} drone=${7:-D-1} extra=""
	case $2 in
	drone.position) extra=",\"speedMps\":$sp,\"battery\":0.9" ;;
	drone.failed) extra=",\"reason\":\"battery\"" ;;
	esac
	ev "$1" "$2" "$4" "$3" "{\"droneId\":\"$drone\",\"location\":{\"lat\":$lat,\"lon\":-122.33,\"alt\":100}$extra}" "/drones/$drone"
}

# A normal flight of delivery $1 from minute $2 of 10:00 on.
flight() {
	local d=$1 m=$2
	sch "$d-s" "$d" "2026-11-26T09:$(printf %02d "$m"):00Z"
	tel "$d-1" drone.dispatched "$d" "2026-11-26T10:$(printf %02d "$m"):00Z" 47.58
	tel "$d-2" drone.position "$d" "2026-11-26T10:$(printf %02d $((m + 1))):00Z" 47.59
	tel "$d-3" drone.picked-up "$d" "2026-11-26T10:$(printf %02d $((m + 2))):00Z" 47.60
	tel "$d-4" drone.position "$d" "2026-11-26T10:$(printf %02d $((m + 3))):00Z" 47.61
	tel "$d-5" drone.delivered "$d" "2026-11-26T10:$(printf %02d $((m + 4))):00Z" 47.62
	tel "$d-6" drone.returned "$d" "2026-11-26T10:$(printf %02d $((m + 5))):00Z" 47.58
}

# until_true SECONDS CMD...: run CMD until it succeeds, for at most
# SECONDS of wall time (a wait that ends as soon as it can, however
# loaded the machine); fails when the time is up.
until_true() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.05
	done
}

# Only the status events of dd-track's output.
status() { jq -c 'select(.source == "/dd-track")' "$@"; }
# Delivery and stage of every delivery in the store, tab-separated.
stages() { dd-track list "$@" | jq -r '[.deliveryId, .stage] | @tsv'; }

# A stand-in scheduler until dd-schedule exists (as in dd-sim.bats).
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

# ---- usage ----

@test "usage: --help shows every command, -V the version" {
	run dd-track --help
	assert_success
	assert_line --partial "usage: dd-track [--db FILE]"
	assert_line --partial "dd-track get [--db FILE] [-q] ID"
	assert_line --partial "dd-track list"
	assert_line --partial "dd-track stats"
	run dd-track -V
	assert_success
	assert_output --regexp '^dd-track [0-9]+\.[0-9]+'
}

@test "usage errors exit 2 and read nothing" {
	while read -r args; do
		run bash -c "echo '{' | dd-track $args"
		refute_sanitizer
		[ "$status" -eq 2 ] || fail "dd-track $args: exit $status, not 2 ($output)"
		[ ! -e "$DD_HOME/track.db" ] || fail "dd-track $args created the store"
	done <<-'EOF'
	--bogus
	--retain
	--retain 5x
	--position-every 0s
	--cache 0
	--cache 5x
	--batch 0
	extra-argument
	frobnicate
	get
	get --only-status d-1
	list --stage flying
	list --format xml
	list extra
	stats --retain 1h
	--stage created
	--format csv
	EOF
}

# ---- the filter ----

@test "every valid line passes unchanged, with a status event right after each stage change" {
	{
		flight d-1 0
		ev x-1 something.else 2026-11-26T10:30:00Z s '{"a":1}'
		printf '{"specversion":"1.0","id":"crlf","source":"/t","type":"other","time":"2026-11-26T10:31:00Z","data":{}}\r\n'
	} > in
	run dd-track -q < in
	assert_success
	# The input, in order, byte for byte (a CR kept), once the status
	# events are taken out.
	grep -v '"source":"/dd-track"' <<< "$output" > passed || true
	cmp passed in
	# Each status event follows the event that caused it.
	py '
import json, sys
lines = sys.stdin.read().splitlines()
want = {"d-1-s": "created", "d-1-1": "headed-to-pickup", "d-1-3": "headed-to-dropoff",
        "d-1-5": "completed"}
seen = []
for i, l in enumerate(lines):
    e = json.loads(l)
    if e["source"] != "/dd-track":
        continue
    cause = json.loads(lines[i - 1])
    assert cause["id"] in want, cause["id"]
    assert e["data"]["stage"] == want[cause["id"]], (e, cause)
    assert e["time"] == cause["time"].replace(":00Z", ":00.000Z"), e["time"]
    seen.append(e["data"]["stage"])
assert seen == ["created", "headed-to-pickup", "headed-to-dropoff", "completed"], seen
' <<< "$output"
	status <<< "$output" > st
	validate_events st
	run jq -r '[.id, .data.previousStage // "-"] | @tsv' st
	assert_output "$(printf 'd-1:created\t-\nd-1:headed-to-pickup\tcreated\nd-1:headed-to-dropoff\theaded-to-pickup\nd-1:completed:1795687440000\theaded-to-dropoff')"
	run dd-track get d-1
	assert_success
	assert_output --partial '"stage":"completed"'
	assert_output --partial '"ended":"2026-11-26T10:04:00.000Z"'
}

@test "--only-status writes just the status events; the summary counts" {
	{ flight d-1 0; flight d-2 10; ev x-1 other 2026-11-26T10:30:00Z s '{}'; } > in
	run --separate-stderr dd-track --only-status < in
	assert_success
	[ "$(wc -l <<< "$output")" -eq 8 ]
	[ "$(jq -r .type <<< "$output" | sort -u)" = delivery.status ]
	[[ "$stderr" == *"read 15, accepted 14, ignored 1, rejected 0, emitted 8"* ]] || fail "$stderr"
	run --separate-stderr dd-track -q < in
	assert_success
	[ -z "$stderr" ]
}

@test "the status events carry drone, location and ETAs, and validate" {
	{
		sch s d-1 2026-11-26T09:00:00Z
		tel t1 drone.dispatched d-1 2026-11-26T09:50:00Z 47.58
		# 0.01 degrees of latitude south of the pickup, at 10 m/s.
		tel t2 drone.position d-1 2026-11-26T09:51:00Z 47.59 10
		tel t3 drone.picked-up d-1 2026-11-26T09:55:00Z 47.60
		tel t4 drone.position d-1 2026-11-26T09:56:00Z 47.61 20
	} > in
	dd-track < in > out
	status out > st
	validate_events st
	run jq -c '.data | [.stage, .droneId, .location.lat, .pickupEta, .dropoffEta]' st
	assert_line --index 0 '["created","D-1",null,"2026-11-26T10:00:00.000Z","2026-11-26T10:30:00.000Z"]'
	assert_line --index 1 '["headed-to-pickup","D-1",47.58,"2026-11-26T10:00:00.000Z","2026-11-26T10:30:00.000Z"]'
	# ETAs from great-circle distance and speed, computed here on their own.
	run py '
import math, datetime
R = 6371008.8
def dist(a, b):
    p1, p2 = math.radians(a), math.radians(b)
    h = math.sin((p2 - p1) / 2) ** 2
    return 2 * R * math.asin(math.sqrt(h))
def at(base, secs):
    t = datetime.datetime(2026, 11, 26, 9, base, tzinfo=datetime.timezone.utc)
    t += datetime.timedelta(milliseconds=round(secs * 1000))
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)
pick = dist(47.59, 47.60) / 10
print(at(51, pick), at(51, pick + dist(47.60, 47.62) / 10))
print(at(56, dist(47.61, 47.62) / 20))
'
	read -r pe de drop <<< "$(tr '\n' ' ' <<< "$output")"
	run dd-track get d-1
	assert_output --partial "\"pickupEta\":\"$pe\""
	assert_output --partial "\"dropoffEta\":\"$drop\""
	assert_output --partial '"speedMps":20,"battery":0.9'
	# The picked-up status came after the first position: its ETAs.
	run jq -r 'select(.data.stage == "headed-to-dropoff") | .data.pickupEta + " " + .data.dropoffEta' st
	assert_output "$pe $de"
}

@test "a duplicate id changes nothing; a stage never moves backwards; an older position never wins" {
	{
		sch s d-1 2026-11-26T09:30:00Z
		tel t1 drone.dispatched d-1 2026-11-26T10:00:00Z 47.58
		tel t3 drone.picked-up d-1 2026-11-26T10:05:00Z 47.60
		tel t4 drone.position d-1 2026-11-26T10:06:00Z 47.61
		# late and repeated
		tel t1 drone.dispatched d-1 2026-11-26T10:00:00Z 47.58
		tel t2 drone.position d-1 2026-11-26T10:01:00Z 47.59
		tel t2b drone.dispatched d-1 2026-11-26T10:01:30Z 47.59
		sch s d-1 2026-11-26T09:30:00Z
		sch s2 d-1 2026-11-26T09:31:00Z
		# the same id with other content is still a duplicate
		tel t4 drone.position d-1 2026-11-26T10:09:00Z 47.70
	} > in
	run --separate-stderr dd-track --only-status < in
	assert_success
	run jq -r .data.stage <<< "$output"
	assert_output "$(printf 'created\nheaded-to-pickup\nheaded-to-dropoff')"
	[[ "$stderr" == *"duplicates 3"* ]] || fail "$stderr"
	run dd-track get d-1
	assert_output --partial '"stage":"headed-to-dropoff"'
	assert_output --partial '"location":{"lat":47.61,'
	assert_output --partial '"locationTime":"2026-11-26T10:06:00.000Z"'
}

@test "telemetry before the schedule is kept and resolved when it comes" {
	tel t1 drone.position d-1 2026-11-26T09:58:00Z 47.55 > in
	run dd-track -q --only-status < in
	assert_success
	assert_output ""
	run stages
	assert_output "$(printf 'd-1\tunknown')"
	run dd-track list --stage unknown --format csv
	assert_line --index 1 --partial "d-1,unknown,D-1,47.55,-122.33,2026-11-26T09:58:00.000Z"
	# The schedule: created, with the position already known.
	sch s d-1 2026-11-26T09:00:00Z > in2
	run dd-track -q --only-status < in2
	run jq -c '.data | [.stage, .previousStage, .location.lat]' <<< "$output"
	assert_output '["created",null,47.55]'
	# Dispatched before its schedule: the schedule fills in, stage stays.
	{ tel u1 drone.dispatched d-2 2026-11-26T10:00:00Z 47.58; sch s2 d-2 2026-11-26T09:00:00Z; } > in3
	run dd-track -q --only-status < in3
	run jq -r '.data.stage' <<< "$output"
	assert_output headed-to-pickup
	run dd-track get d-2
	assert_output --partial '"pickup":{"lat":47.6,'
}

@test "a reschedule starts a new flight; the old flight's late events change nothing" {
	{
		sch s d-1 2026-11-26T09:00:00Z
		tel t1 drone.dispatched d-1 2026-11-26T10:00:00Z 47.58
		ev r1 delivery.rescheduled 2026-11-26T10:02:00Z d-1 '{"deliveryId":"d-1","droneId":"D-2","reason":"drone-fault"}'
		tel t2 drone.picked-up d-1 2026-11-26T10:01:00Z 47.60
		tel u1 drone.dispatched d-1 2026-11-26T10:05:00Z 47.58 10 D-2
		tel u2 drone.picked-up d-1 2026-11-26T10:08:00Z 47.60 10 D-2
		tel u3 drone.delivered d-1 2026-11-26T10:12:00Z 47.62 10 D-2
	} > in
	run dd-track -q --only-status < in
	assert_success
	run jq -r '[.id, .data.stage, .data.droneId] | @tsv' <<< "$output"
	assert_output "$(printf '%s\n' "d-1:created	created	D-1" \
		"d-1:headed-to-pickup	headed-to-pickup	D-1" \
		"d-1:rescheduled:1795687320000	rescheduled	D-2" \
		"d-1:headed-to-pickup:1795687320000	headed-to-pickup	D-2" \
		"d-1:headed-to-dropoff:1795687320000	headed-to-dropoff	D-2" \
		"d-1:completed:1795687920000	completed	D-2")"
}

@test "final stages: the earliest end wins, in any order" {
	cancel='{"deliveryId":"d-1","reason":"owner"}'
	# delivered at 10:10, cancelled at 10:20: completed, whichever comes first
	{ sch s d-1 2026-11-26T09:00:00Z; tel t1 drone.delivered d-1 2026-11-26T10:10:00Z
	  ev c1 delivery.cancelled 2026-11-26T10:20:00Z d-1 "$cancel"; } > a
	{ sch s d-1 2026-11-26T09:00:00Z; ev c1 delivery.cancelled 2026-11-26T10:20:00Z d-1 "$cancel"
	  tel t1 drone.delivered d-1 2026-11-26T10:10:00Z; } > b
	dd-track --db a.db --only-status < a > sa
	dd-track --db b.db --only-status < b > sb
	[ "$(dd-track list --db a.db | jq -r .stage)" = completed ]
	[ "$(dd-track list --db b.db | jq -r .stage)" = completed ]
	run jq -r '[.data.previousStage, .data.stage] | @tsv' sb
	assert_line --index 2 "$(printf 'cancelled\tcompleted')"
	validate_events sa sb
	# A final stage is final: nothing later moves it.
	{ tel t2 drone.dispatched d-1 2026-11-26T10:30:00Z; tel t3 drone.failed d-1 2026-11-26T10:40:00Z; } > c
	run dd-track -q --db a.db --only-status < c
	assert_output ""
	[ "$(dd-track list --db a.db | jq -r .stage)" = completed ]
}

@test "out-of-order and duplicated telemetry of dd-sim fly ends in the stages of the clean stream" {
	dd-sim requests -n 150 --seed 11 | schedule > sched
	dd-sim fly --seed 5 --fail 0.2 < sched > clean
	dd-sim fly --seed 5 --fail 0.2 --dup 0.05 --reorder 0.05 < sched > messy
	! cmp -s clean messy
	dd-track --db clean.db --retain 365d < clean > out-clean
	dd-track --db messy.db --retain 365d < messy > out-messy 2> err
	! grep -q "duplicates 0" err || fail "no duplicates in the messy stream: $(cat err)"
	stages --db clean.db > s-clean
	stages --db messy.db > s-messy
	diff s-clean s-messy
	[ "$(wc -l < s-clean)" -eq 150 ]
	grep -q failed s-clean
	grep -q completed s-clean
	status out-clean > st-clean
	status out-messy > st-messy
	validate_events st-clean st-messy
	# Deterministic ids: no id twice, and the two streams' final statuses agree.
	[ -z "$(jq -r .id st-messy | sort | uniq -d)" ]
	diff <(jq -r 'select(.data.stage == "completed" or .data.stage == "failed") | .id' st-clean | sort) \
		<(jq -r 'select(.data.stage == "completed" or .data.stage == "failed") | .id' st-messy | sort)
}

@test "replaying the same input emits nothing and changes nothing" {
	{ flight d-1 0; flight d-2 10; tel z1 drone.position d-3 2026-11-26T10:20:00Z; } > in
	dd-track --retain 365d < in > first
	dd-track list > list1
	run --separate-stderr dd-track --retain 365d --only-status < in
	assert_success
	assert_output ""
	[[ "$stderr" == *"duplicates 15"* ]] || fail "$stderr"
	dd-track list > list2
	cmp list1 list2
}

@test "--retain: ended deliveries leave the store once event time moves past; late events change nothing" {
	{ flight d-1 0; flight d-2 30; } > in
	dd-track --retain 40m < in > /dev/null
	# d-1's last event is at 10:05, the stream at 10:35: both kept
	run stages
	assert_output "$(printf 'd-1\tcompleted\nd-2\tcompleted')"
	tel t1 drone.position d-9 2026-11-26T10:50:00Z > in2
	run --separate-stderr dd-track --retain 40m < in2
	[[ "$stderr" == *"removed 1, after removal 0, live 2"* ]] || fail "$stderr"
	run dd-track get d-1
	assert_failure 1
	assert_output --partial "d-1: no such delivery"
	run stages
	assert_output "$(printf 'd-2\tcompleted\nd-9\tunknown')"
	# An event older than the horizon (10:10) is late: passed on, nothing else.
	tel t2 drone.dispatched d-1 2026-11-26T10:00:30Z > in3
	run --separate-stderr dd-track --retain 40m < in3
	assert_success
	assert_output "$(cat in3)"
	[[ "$stderr" == *"late 1"* ]] || fail "$stderr"
	run dd-track get d-1
	assert_failure 1
	run dd-track stats
	assert_output --partial '"deliveries":2'
	assert_output --partial '"removed":1'
	assert_output --partial '"streamTime":"2026-11-26T10:50:00.000Z"'
}

@test "--retain: removed within one run (a commit every 2 lines), a later event about it is after removal, in that run and the next" {
	# Lines 15-16 are one batch: d-2 changed by its late schedule, then
	# expired by the stream's clock, so the commit writes its tombstone
	# itself; d-1, unchanged, goes by the table's DELETE. Events about
	# both come later in the same run (the set in memory) and in the
	# next (the set loaded from the table).
	{ flight d-1 0; flight d-2 1; sch d-2-x d-2 2026-11-26T09:59:00Z
	  tel t1 drone.position d-9 2026-11-26T10:50:00Z
	  ev c1 delivery.cancelled 2026-11-26T10:51:00Z d-1 '{"deliveryId":"d-1","reason":"x"}'
	  ev c2 delivery.cancelled 2026-11-26T10:52:00Z d-2 '{"deliveryId":"d-2","reason":"x"}'
	  tel t3 drone.position d-3 2026-11-26T10:53:00Z; } > in
	run --separate-stderr dd-track --batch 2 --retain 40m --only-status < in
	assert_success
	[[ "$stderr" == *"removed 2, after removal 2, live 2"* ]] || fail "$stderr"
	run stages
	assert_output "$(printf 'd-3\tunknown\nd-9\tunknown')"
	sqlite3 "$DD_HOME/track.db" "SELECT id FROM ended ORDER BY id" > ended
	assert_equal "$(cat ended)" "$(printf 'd-1\nd-2')"
	{ ev c3 delivery.cancelled 2026-11-26T10:54:00Z d-2 '{"deliveryId":"d-2","reason":"y"}'
	  ev c4 delivery.cancelled 2026-11-26T10:54:00Z d-4 '{"deliveryId":"d-4","reason":"y"}'; } > in2
	run --separate-stderr dd-track --retain 40m --only-status < in2
	assert_success
	[[ "$stderr" == *"emitted 1"*"after removal 1"* ]] || fail "$stderr"
}

@test "--retain: a removed delivery stays over: a later event about it (a compensation) brings nothing back" {
	{ flight d-1 0; flight d-2 30; tel t1 drone.position d-9 2026-11-26T10:50:00Z; } > in
	dd-track --retain 40m < in > /dev/null
	run dd-track get d-1
	assert_failure 1
	# The scheduler's supervisor cancels d-1 the next morning, newer than
	# anything: passed on, no status, no record.
	ev c1 delivery.cancelled 2026-11-27T06:00:00Z d-1 '{"deliveryId":"d-1","reason":"drone-failed"}' > in2
	run --separate-stderr dd-track --retain 40m < in2
	assert_success
	assert_output "$(cat in2)"
	[[ "$stderr" == *"emitted 0"*"after removal 1"* ]] || fail "$stderr"
	run dd-track get d-1
	assert_failure 1
	# The same while the delivery is still held but already past --retain
	# (not yet removed by a commit): the same answer.
	{ flight d-5 0; tel t5 drone.position d-8 2026-11-26T10:50:00Z;
	  ev c5 delivery.cancelled 2026-11-26T10:51:00Z d-5 '{"deliveryId":"d-5","reason":"x"}'; } > in3
	run --separate-stderr dd-track --db other.db --retain 40m --only-status < in3
	assert_success
	refute_output --partial '"stage":"cancelled"'
	[[ "$stderr" == *"after removal 1"* ]] || fail "$stderr"
}

@test "--position-every: at most one position status per delivery and interval" {
	{
		sch s d-1 2026-11-26T09:00:00Z
		tel t0 drone.dispatched d-1 2026-11-26T10:00:00Z 47.58
		for m in 0 1 2; do
			for s in 10 20 30 40 50; do tel "p$m$s" drone.position d-1 "2026-11-26T10:0$m:${s}Z" "47.5$m$((s / 10))"; done
		done
	} > in
	run dd-track -q --only-status --position-every 1m < in
	assert_success
	run jq -r 'select(.id | test(":position:")) | [.id, .data.location.lat, .data.stage, .data.previousStage] | @tsv' <<< "$output"
	# 10:00 is taken by the dispatch's own status; then one per minute,
	# with the first position of that minute.
	assert_output "$(printf 'd-1:position:1795687260000\t47.511\theaded-to-pickup\theaded-to-pickup\nd-1:position:1795687320000\t47.521\theaded-to-pickup\theaded-to-pickup')"
	run dd-track -q --only-status --position-every 1m < in
	assert_output ""
}

@test "bad lines are rejected with stdin:LINE, not passed on; --rejects records them" {
	{
		sch s d-1 2026-11-26T09:00:00Z
		echo 'not json'
		echo '{"specversion":"1.0","id":"x","source":"/t","type":"drone.position","data":{}}'
		ev b1 drone.position 2026-11-26T10:00:00Z d-1 '{"droneId":"D-1","location":{"lat":47.6},"speedMps":1,"battery":0.5}'
		ev b2 drone.position 2026-11-26T10:00:00Z d-1 '{"droneId":"D-1","location":{"lat":95,"lon":1},"speedMps":1,"battery":0.5}'
		ev b3 drone.position 2026-11-26T10:00:00Z d-1 '{"droneId":"D-1","location":{"lat":47,"lon":1},"speedMps":-1,"battery":0.5}'
		printf '{"specversion":"1.0","id":"b4","source":"/t","type":"drone.dispatched","time":"2026-11-26T10:00:00Z","data":{"droneId":"D-1"}}\n'
		ev b5 delivery.cancelled 2026-11-26T10:00:00Z d-1 '{"reason":"x"}'
		ev b6 drone.position 2026-11-26T10:00:00Z d-1 '{"droneId":"D-1","location":{"lat":47,"lon":1},"speedMps":1}'
		tel ok drone.dispatched d-1 2026-11-26T10:00:00Z
	} > in
	run --separate-stderr dd-track --rejects rej.ndjson < in
	assert_failure 1
	refute_sanitizer
	[ "$(grep -c '"source":"/dd-track"' <<< "$output")" -eq 2 ]
	[ "$(grep -vc '"source":"/dd-track"' <<< "$output")" -eq 2 ]
	for n in 2 3 4 5 6 7 8 9; do
		[[ "$stderr" == *"dd-track: stdin:$n: "* ]] || fail "no message for line $n: $stderr"
	done
	[[ "$stderr" == *'stdin:3: missing "time"'* ]] || fail "$stderr"
	[[ "$stderr" == *'stdin:7: missing "subject"'* ]] || fail "$stderr"
	[[ "$stderr" == *'stdin:9: missing "data.battery"'* ]] || fail "$stderr"
	run jq -r .line rej.ndjson
	assert_output "$(seq 2 9)"
	# --strict: stops at the first, after committing what came before.
	rm -f "$DD_HOME/track.db"*
	run dd-track --strict --only-status < in
	assert_failure 3
	run stages
	assert_output "$(printf 'd-1\tcreated')"
}

@test "get, list and stats: formats and filters" {
	{ flight d-1 0; flight d-2 10; sch s3 d-3 2026-11-26T09:30:00Z
	  tel t1 drone.dispatched d-3 2026-11-26T10:20:00Z 47.58 10 D-7; } > in
	dd-track --retain 365d < in > /dev/null
	run dd-track get d-3
	assert_success
	assert_output '{"deliveryId":"d-3","stage":"headed-to-pickup","droneId":"D-7","location":{"lat":47.58,"lon":-122.33,"alt":100},"locationTime":"2026-11-26T10:20:00.000Z","speedMps":null,"battery":null,"pickup":{"lat":47.6,"lon":-122.33,"alt":0},"dropoff":{"lat":47.62,"lon":-122.33,"alt":0},"pickupEta":"2026-11-26T10:00:00.000Z","dropoffEta":"2026-11-26T10:30:00.000Z","updated":"2026-11-26T10:20:00.000Z","ended":null}'
	run dd-track get nope
	assert_failure 1
	run dd-track list --drone D-7
	assert_output --partial '"deliveryId":"d-3"'
	[ "${#lines[@]}" -eq 1 ]
	run dd-track list --stage completed --format tsv
	assert_line --index 0 "$(printf 'deliveryId\tstage\tdroneId\tlat\tlon\tlocationTime\tpickupEta\tdropoffEta\tupdated\tended')"
	assert_line --index 1 --partial "$(printf 'd-1\tcompleted\tD-1\t47.62\t')"
	[ "${#lines[@]}" -eq 3 ]
	run dd-track list --format table
	assert_line --index 0 --regexp '^deliveryId +stage +droneId'
	run dd-track list --format csv
	[ "$(py 'import csv,sys; print(len(list(csv.reader(sys.stdin))))' <<< "$output")" -eq 4 ]
	run dd-track stats
	assert_success
	[ "$(jq -c .stages <<< "$output")" = '{"unknown":0,"created":0,"rescheduled":0,"headed-to-pickup":1,"headed-to-dropoff":0,"completed":2,"cancelled":0,"failed":0}' ]
	run dd-track list --db nowhere.db
	assert_failure 4
	assert_output --partial "no such store"
}

@test "one filter per store: a second one is busy (exit 5)" {
	mkfifo pipe
	dd-track < pipe > /dev/null & BG=$!
	exec 7> pipe
	flight d-1 0 >&7
	for i in $(seq 50); do [ -e "$DD_HOME/track.db.lock" ] && break; sleep 0.1; done
	sleep 0.3
	run dd-track < /dev/null
	assert_failure 5
	assert_output --partial "another run holds the lock"
	# Readers are not blocked.
	run dd-track list
	assert_success
	exec 7>&-
	wait $BG
	BG=
}

@test "SIGTERM commits what was read and exits 143" {
	mkfifo pipe
	dd-track --flush-interval 1h --batch 1000000 < pipe > out & BG=$!
	exec 7> pipe
	flight d-1 0 >&7
	# Nothing is committed (or flushed) before the signal.
	sleep 0.5
	kill -TERM $BG
	rc=0
	wait $BG || rc=$?
	BG=
	exec 7>&-
	[ "$rc" -eq 143 ]
	run stages
	assert_output "$(printf 'd-1\tcompleted')"
}

@test "a write error on stdout exits 4" {
	flight d-1 0 > in
	run sh -c 'dd-track < in > /dev/full'
	[ "$status" -eq 4 ]
	[[ "$output" == *"dd-track: stdout:"* ]] || fail "$output"
}

@test "kill -9 in the middle, then the whole input again: the store of a clean run, only its status ids" {
	# (and --cache: a small one changes nothing but memory)
	dd-sim telemetry -n 100000 --deliveries 10000 --days 3 --seed 9 > in
	dd-track --db clean.db --position-every 2m < in > clean.out
	# The crashed runs hold few deliveries in memory (the store answers for
	# the others), the clean one all of them.
	dd-track --db crash.db --position-every 2m --batch 2000 --cache 20 < in > run1.out & BG=$!
	# Kill it once it has committed a good part, long before the end.
	for i in $(seq 200); do
		[ "$(stat -c %s run1.out 2>/dev/null || echo 0)" -gt 20000000 ] && break
		sleep 0.02
	done
	kill -9 $BG
	wait $BG || true
	BG=
	[ "$(wc -l < run1.out)" -lt "$(wc -l < in)" ] || skip "the run ended before the kill"
	dd-track --db crash.db --position-every 2m --cache 20K < in > run2.out
	cmp <(dd-track list --db clean.db) <(dd-track list --db crash.db)
	status clean.out | jq -r .id | sort -u > ids.clean
	# (run1.out may end in a line cut short by the kill)
	cat run1.out run2.out | sed -n 's|^{"specversion":"1.0","id":"\([^"]*\)","source":"/dd-track".*|\1|p' |
		sort -u > ids.crash
	[ -s ids.clean ]
	run comm -13 ids.clean ids.crash
	assert_output ""
	cmp <(dd-track stats --db clean.db) <(dd-track stats --db crash.db)
	# A clean run with the small cache writes what the big one writes.
	dd-track --db small.db --position-every 2m --cache 20K < in > small.out
	cmp clean.out small.out
}

@test "--cache is a memory budget: a small one holds less, answers alike" {
	# 40,000 deliveries, all live: a few hundred bytes each in memory.
	dd-sim telemetry -n 80000 --deliveries 40000 --days 1 --seed 3 > in
	# (The budget is kept at each commit: one every 4000 lines.)
	for c in 512M 256K; do
		/usr/bin/time -f %M -o "rss.$c" dd-track -q --db "$c.db" --cache "$c" \
			--batch 4000 < in > "$c.out"
	done
	cmp 512M.out 256K.out
	cmp <(dd-track list --db 512M.db) <(dd-track list --db 256K.db)
	# (ASan holds freed memory in quarantine: peak RSS says nothing there.)
	[ "${DD_SANITIZE:-}" != 1 ] || return 0
	big=$(cat rss.512M) small=$(cat rss.256K)
	# The deliveries take over 10 MiB when all are held; the small
	# budget holds a fraction of them.
	[ "$big" -gt $((small + 10240)) ] || fail "peak RSS $big KiB with 512M, $small KiB with 256K"
	# Sizes take the suffixes of --max-line.
	dd-track -q --db k.db --cache 1G < /dev/null
	dd-track -q --db k.db --cache 300KiB < /dev/null
}

@test "kill -9 between the coalesced writes and their commit: the commits before it are whole, replay restores the rest" {
	dd-sim telemetry -n 20000 --deliveries 3000 --days 1 --seed 4 > in
	dd-track -q --db clean.db < in > /dev/null
	# Commits every 4000 lines exactly (no idle time, no clock): the 3rd
	# is killed after writing its changed deliveries, before COMMIT.
	rc=0
	DD_TRACK_FAULT=commit-kill:3 dd-track -q --db crash.db --batch 4000 \
		--flush-interval 1h < in > /dev/null || rc=$?
	[ "$rc" -eq 137 ] || fail "exit $rc, not 137"
	# What was committed is the state after 8000 lines.
	head -n 8000 in | dd-track -q --db part.db > /dev/null
	cmp <(dd-track list --db part.db) <(dd-track list --db crash.db)
	cmp <(dd-track stats --db part.db) <(dd-track stats --db crash.db)
	# Replaying from an earlier point restores the rest, as one clean run.
	tail -n +5001 in | dd-track -q --db crash.db > /dev/null
	cmp <(dd-track list --db clean.db) <(dd-track list --db crash.db)
	cmp <(dd-track stats --db clean.db) <(dd-track stats --db crash.db)
}

@test "a stream that never pauses is committed within --flush-interval, not only at --batch" {
	# A file never makes the filter wait, so only the clock commits
	# before the end: the 2nd commit is killed, the 1st came by time.
	dd-sim telemetry -n 100000 --deliveries 10000 --days 1 --seed 5 > in
	rc=0
	DD_TRACK_FAULT=commit-kill:2 dd-track -q --db t.db --batch 10000000 \
		--flush-interval 10ms < in > /dev/null || rc=$?
	[ "$rc" -eq 137 ] || fail "exit $rc, not 137: no commit by time"
	n=$(dd-track stats --db t.db | jq .deliveries)
	[ "$n" -gt 0 ] && [ "$n" -lt 10000 ] || fail "$n deliveries committed"
}

@test "get while the filter writes: the answers of the last commit, from one process" {
	mkfifo pipe
	dd-track --flush-interval 100ms < pipe > out & BG=$!
	exec 7> pipe
	for i in 1 2 3; do flight "d-$i" "$i" >&7; done
	# Committed within --flush-interval, the filter still running. A
	# flight is several writes to the pipe: on a loaded machine a commit
	# can come between two of them, so the wait is for the three flights
	# whole (all three completed), not for three rows; and it is bounded
	# by time, not by a count of tries that a slow machine uses up.
	until_true 60 sh -c '[ "$(dd-track stats 2>/dev/null | jq .stages.completed)" = 3 ]' ||
		fail "the three flights were not committed while the filter ran"
	run dd-track get d-3 d-1 d-2
	assert_success
	assert_equal "$(printf '%s\n' "${lines[@]}" | jq -r '[.deliveryId, .stage] | @tsv')" \
		"$(printf 'd-3\tcompleted\nd-1\tcompleted\nd-2\tcompleted')"
	# What the filter has not been given is not there yet.
	run --separate-stderr dd-track get d-1 d-4
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ $stderr == *"d-4: no such delivery"* ]] || fail "$stderr"
	flight d-4 4 >&7
	until_true 60 dd-track get d-4 > /dev/null 2>&1 ||
		fail "d-4 was not committed while the filter ran"
	printf 'd-4\nd-1\n' | dd-track get - | jq -r .deliveryId > got
	assert_equal "$(cat got)" "$(printf 'd-4\nd-1')"
	exec 7>&-
	wait $BG
	BG=
}

@test "a store of schema version 3 (rows keyed by id) is migrated on open: rows kept, new ones after them; a newer version is refused" {
	{ flight d-1 0; flight d-2 10; } > in1
	{ tel x1 drone.position d-3 2026-11-26T10:30:00Z; sch d-4-s d-4 2026-11-26T10:31:00Z
	  tel x2 drone.position d-2 2026-11-26T10:32:00Z 47.7; } > in2
	# The answer: both inputs into a fresh store.
	cat in1 in2 | dd-track --retain 365d --db ref.db > /dev/null
	# A store as version 3 made it: its table and rows (the columns have
	# not changed), meta and tombstones.
	dd-track --retain 365d --db new.db < in1 > /dev/null
	sqlite3 old.db > /dev/null <<-'SQL'
		CREATE TABLE delivery (id TEXT PRIMARY KEY, stage TEXT NOT NULL, drone_id TEXT,
		 location TEXT, location_time INTEGER, speed REAL, battery REAL, pickup TEXT,
		 dropoff TEXT, pickup_eta INTEGER, dropoff_eta INTEGER, updated INTEGER NOT NULL,
		 ended INTEGER, t_scheduled INTEGER, t_dispatched INTEGER, t_picked_up INTEGER,
		 t_rescheduled INTEGER, drone_time INTEGER, pickup_time INTEGER, dropoff_time INTEGER,
		 eta_time INTEGER, position_time INTEGER, seen BLOB) WITHOUT ROWID;
		CREATE INDEX delivery_ended ON delivery(updated) WHERE ended IS NOT NULL;
		CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER) WITHOUT ROWID;
		CREATE TABLE ended (id TEXT PRIMARY KEY, stage TEXT NOT NULL, ended INTEGER NOT NULL) WITHOUT ROWID;
		CREATE INDEX ended_time ON ended(ended);
		ATTACH 'new.db' AS n;
		INSERT INTO delivery SELECT * FROM n.delivery;
		INSERT INTO meta SELECT * FROM n.meta;
		PRAGMA journal_mode=WAL;
		PRAGMA user_version=3;
	SQL
	[ "$(sqlite3 old.db 'SELECT count(*) FROM delivery')" -eq 2 ]
	# Read as it is (the readers do not migrate), then migrated by the filter.
	run dd-track list --db old.db
	assert_success
	[ "${#lines[@]}" -eq 2 ]
	dd-track --retain 365d --db old.db < in2 > /dev/null
	[ "$(sqlite3 old.db 'PRAGMA user_version')" -eq 4 ]
	run sqlite3 old.db "SELECT sql FROM sqlite_master WHERE name = 'delivery'"
	refute_output --partial "WITHOUT ROWID"
	run sqlite3 old.db "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'delivery_id' AND sql LIKE 'CREATE UNIQUE INDEX%'"
	assert_output 1
	# The migrated rows first (by their last update), the new ones after.
	run sqlite3 old.db "SELECT id FROM delivery ORDER BY rowid"
	assert_output "$(printf 'd-1\nd-2\nd-3\nd-4')"
	# What a clean run over both inputs holds, to the byte.
	diff <(dd-track list --db ref.db) <(dd-track list --db old.db)
	diff <(sqlite3 ref.db "SELECT $(sqlite3 ref.db "SELECT group_concat(name) FROM pragma_table_info('delivery')") FROM delivery ORDER BY id") \
		<(sqlite3 old.db "SELECT $(sqlite3 old.db "SELECT group_concat(name) FROM pragma_table_info('delivery')") FROM delivery ORDER BY id")
	# A store newer than the program: refused, named, nothing changed.
	sqlite3 old.db "PRAGMA user_version=99"
	run --separate-stderr dd-track --db old.db < in2
	[ "$status" -eq 4 ] || fail "exit $status"
	[[ $stderr == *"old.db: schema version 99 is newer than this program's (4)"* ]] || fail "$stderr"
	[ "$(sqlite3 old.db 'SELECT count(*) FROM delivery')" -eq 4 ]
}
