#!/usr/bin/env bats
# One record of each delivery (issue 15): a late end still ends its
# delivery in every service; events of equal times are put in one order
# by track and history alike; events about archived deliveries go to the
# lake; the deliveries view; dataschema versions.

load common
bats_require_minimum_version 1.5.0

setup() {
	cd "$BATS_TEST_TMPDIR"
}

# ev ID TYPE TIME SUBJECT DATA [SOURCE]: one event.
ev() {
	printf '{"specversion":"1.0","id":"%s","source":"%s","type":"%s","time":"%s","subject":"%s","data":%s}\n' \
		"$1" "${6:-/dd-schedule}" "$2" "$3" "$4" "$5"
}

# tel ID TYPE DELIVERY TIME [DRONE]: telemetry.
tel() {
	local extra=""
	case $2 in
	drone.position) extra=",\"speedMps\":10,\"battery\":0.8" ;;
	drone.failed) extra=",\"reason\":\"battery\"" ;;
	esac
	ev "$1" "$2" "$4" "$3" "{\"droneId\":\"${5:-D-1}\",\"location\":{\"lat\":47.61,\"lon\":-122.33,\"alt\":100}$extra}" "/drones/${5:-D-1}"
}

# A fleet of one drone at the pickup of req's requests.
one_drone() {
	printf 'id,base.lat,base.lon,maxPayloadKg,maxSize,rangeKm,speedMps\n' > one.csv
	printf 'D-1,47.61,-122.33,5,medium,20,10\n' >> one.csv
	dd-schedule -q fleet import one.csv
}

# req ID: one request.
req() {
	jq -cn --arg id "$1" '{requestId: $id, ownerId: "o-1",
		pickup: {lat: 47.61, lon: -122.33, alt: 0},
		dropoff: {lat: 47.62, lon: -122.33, alt: 0},
		pickupTime: "2026-11-26T10:00:00Z", deadline: "2026-11-26T12:00:00Z",
		expedited: false, confirmationRequired: "None",
		package: {packageId: ("p-" + $id), size: "small", weightKg: 2.5, tag: "books"}}'
}

# ---- 1. a late end ----

@test "a late delivered ends its delivery in track, history and the scheduler; late telemetry is dropped and counted" {
	one_drone
	req r-1 | dd-schedule -q > sched.ndjson
	did=$(jq -r 'select(.type == "delivery.scheduled") | .subject' sched.ndjson)
	# The day's flight up to the pickup, then the next day's traffic
	# (another drone), then the end of the first flight, a day late.
	{
		cat sched.ndjson
		tel t1 drone.dispatched "$did" 2026-11-26T10:00:00Z
		tel t2 drone.picked-up "$did" 2026-11-26T10:02:00Z
		tel t3 drone.position "$did" 2026-11-26T10:03:00Z
		tel n1 drone.dispatched d-other 2026-11-27T09:00:00Z D-9
		tel t4 drone.position "$did" 2026-11-26T10:04:00Z
		tel t5 drone.delivered "$did" 2026-11-26T10:05:00Z
		tel t6 drone.returned "$did" 2026-11-26T10:08:00Z
	} > day.ndjson
	run --separate-stderr dd-track < day.ndjson
	assert_success
	echo "$output" > tracked.ndjson
	# The late position and return are dropped, the late end applied.
	[[ "$stderr" == *"late 2 (dropped), late ends 1 (applied)"* ]] || fail "$stderr"
	run jq -r --arg d "$did" 'select(.type == "delivery.status" and .subject == $d) | .data.stage' tracked.ndjson
	assert_output "$(printf 'created\nheaded-to-pickup\nheaded-to-dropoff\ncompleted')"
	# Ended long before the stream's clock: over for dd-track (removed at
	# once, --retain after its end), completed for everyone else.
	run dd-track get "$did"
	assert_failure 1
	dd-history -q < tracked.ndjson
	run dd-history list --format tsv
	assert_output --partial "$did	r-1	o-1	completed"
	jq -c 'select(.type == "delivery.status")' tracked.ndjson | dd-schedule -q > /dev/null
	dd-schedule get r-1 | jq -e '.state == "completed"'
	# The same late end again changes nothing anywhere.
	run --separate-stderr dd-track --only-status < <(tel t5 drone.delivered "$did" 2026-11-26T10:05:00Z)
	assert_success
	assert_output ""
}

@test "a late failed or cancelled ends a live delivery too; a late end of a delivery already ended changes nothing" {
	{
		ev s1 delivery.scheduled 2026-11-26T09:00:00Z d-1 "$(jq -cn '{deliveryId:"d-1",requestId:"r-1",ownerId:"o-1",pickup:{lat:47.6,lon:-122.33},dropoff:{lat:47.62,lon:-122.33},pickupTime:"2026-11-26T10:00:00Z",deadline:"2026-11-26T12:00:00Z",expedited:false,confirmationRequired:"None",package:{packageId:"p-1",size:"small",weightKg:1},droneId:"D-1",pickupEta:"2026-11-26T10:00:00Z",dropoffEta:"2026-11-26T10:30:00Z"}')"
		ev s2 delivery.scheduled 2026-11-26T09:00:00Z d-2 "$(jq -cn '{deliveryId:"d-2",requestId:"r-2",ownerId:"o-1",pickup:{lat:47.6,lon:-122.33},dropoff:{lat:47.62,lon:-122.33},pickupTime:"2026-11-26T10:00:00Z",deadline:"2026-11-26T12:00:00Z",expedited:false,confirmationRequired:"None",package:{packageId:"p-2",size:"small",weightKg:1},droneId:"D-2",pickupEta:"2026-11-26T10:00:00Z",dropoffEta:"2026-11-26T10:30:00Z"}')"
		tel n1 drone.dispatched d-9 2026-11-27T09:00:00Z D-9
		tel f1 drone.failed d-1 2026-11-26T10:10:00Z
		ev c2 delivery.cancelled 2026-11-26T09:30:00Z d-2 '{"deliveryId":"d-2","reason":"client"}'
		ev c1 delivery.cancelled 2026-11-26T10:20:00Z d-1 '{"deliveryId":"d-1","reason":"client"}'
	} > in
	run --separate-stderr dd-track --only-status < in
	assert_success
	run jq -r 'select(.data.stage | IN("failed", "cancelled")) | [.subject, .data.stage] | @tsv' <<< "$output"
	assert_output "$(printf 'd-1\tfailed\nd-2\tcancelled')"
	[[ "$stderr" == *"late ends 2 (applied)"* ]] || fail "$stderr"
}

# ---- 2. equal times ----

@test "equal times: a reschedule at the millisecond of its schedule is rescheduled in track and history, whatever the order" {
	sch='{"deliveryId":"d-1","requestId":"r-1","ownerId":"o-1","pickup":{"lat":47.6,"lon":-122.33},"dropoff":{"lat":47.62,"lon":-122.33},"pickupTime":"2026-11-26T10:00:00Z","deadline":"2026-11-26T12:00:00Z","expedited":false,"confirmationRequired":"None","package":{"packageId":"p-1","size":"small","weightKg":1},"droneId":"D-1","pickupEta":"2026-11-26T10:00:00Z","dropoffEta":"2026-11-26T10:30:00Z"}'
	# Ids chosen so that the id order is the wrong one (z > a).
	ev z-sched delivery.scheduled 2026-11-26T09:00:00.000Z d-1 "$sch" > a
	ev a-resched delivery.rescheduled 2026-11-26T09:00:00.000Z d-1 '{"deliveryId":"d-1","droneId":"D-2","reason":"drone-fault"}' >> a
	tac a > b
	# dispatched at the same millisecond as a reschedule: after it.
	{ cat a; tel a-disp drone.dispatched d-1 2026-11-26T09:30:00Z D-2
	  ev a-r2 delivery.rescheduled 2026-11-26T09:30:00.000Z d-1 '{"deliveryId":"d-1","droneId":"D-2","reason":"x"}'; } > c
	for f in a b c; do
		want=rescheduled
		[ "$f" != c ] || want=headed-to-pickup
		mkdir -p "$f.home"
		DD_HOME=$PWD/$f.home dd-track -q < $f > $f.out
		DD_HOME=$PWD/$f.home dd-history -q < $f.out
		DD_HOME=$PWD/$f.home dd-history -q < $f.out
		export DD_HOME=$PWD/$f.home
		run dd-track get d-1
		echo "$output" | jq -e --arg w "$want" '.stage == $w' || fail "$f: track: $output"
		run dd-history get d-1
		echo "$output" | jq -e --arg w "$want" '.stage == $w' || fail "$f: history: $output"
		# get lists equal times in the one order: the schedule first.
		echo "$output" | jq -e '[.events[] | .type] | index("delivery.scheduled") < index("delivery.rescheduled")' || fail "$f: $output"
		# and the drone is the reschedule's in both
		dd-track get d-1 | jq -e '.droneId == "D-2"' || fail "$f: track's drone"
		echo "$output" | jq -e '.droneId == "D-2"' || fail "$f: history's drone: $output"
	done
}

# ---- 5. schemas that can evolve ----

SCHED='{"deliveryId":"d-1","requestId":"r-1","ownerId":"o-1","pickup":{"lat":47.6,"lon":-122.33},"dropoff":{"lat":47.62,"lon":-122.33},"pickupTime":"2026-11-26T10:00:00Z","deadline":"2026-11-26T12:00:00Z","expedited":false,"confirmationRequired":"None","package":{"packageId":"p-1","size":"small","weightKg":1},"droneId":"D-1","pickupEta":"2026-11-26T10:00:00Z","dropoffEta":"2026-11-26T10:30:00Z"}'

# versioned ID TYPE DATASCHEMA DATA: an event naming its schema.
versioned() {
	printf '{"specversion":"1.0","id":"%s","source":"/x","type":"%s","dataschema":"%s","time":"2026-11-26T09:00:00Z","subject":"d-1","data":%s}\n' "$@"
}

@test "every event the toolkit produces names its schema and major version, the \$id of the schema" {
	dd-sim requests -n 20 --seed 3 | dd-schedule -q --fleet "$DD_ROOT/data/fleet.csv" \
		| dd-sim fly -q --seed 3 | dd-track -q > out
	run jq -r 'select(.dataschema != "urn:dd:schema:" + .type + ":1") | .id' out
	assert_output ""
	[ "$(jq -r .source out | sort -u | grep -c '^/dd-schedule$\|^/dd-track$\|^/drones/')" -ge 3 ]
	for t in $(jq -r .type out | sort -u); do
		jq -e --arg t "$t" '."$id" == "urn:dd:schema:" + $t + ":1"' "$DD_ROOT/data/schemas/$t.json"
	done
	validate_events out
}

@test "an event of a consumed type whose dataschema names an unknown version is bad input, in every consumer" {
	{
		versioned a delivery.scheduled urn:dd:schema:delivery.scheduled:2 "$SCHED"
		versioned b delivery.scheduled urn:dd:schema:delivery.scheduled:1 "$SCHED"
		versioned c drone.position urn:dd:schema:drone.position:7 '{"droneId":"D-1","location":{"lat":47.6,"lon":-122.33},"speedMps":1,"battery":0.5}'
		versioned d delivery.status urn:dd:schema:delivery.status:2 '{"deliveryId":"d-1","stage":"created"}'
		versioned e package.registered urn:dd:schema:package.registered:3 '{"packageId":"p-1","ownerId":"o-1","deliveryId":"d-1","size":"small","weightKg":1}'
		versioned f delivery.cancelled urn:dd:schema:drone.position:1 '{"deliveryId":"d-1","reason":"x"}'
	} > in
	run --separate-stderr dd-track --only-status --rejects rj < in
	assert_failure 1
	[[ "$stderr" == *"stdin:1: unknown schema version: \"dataschema\" names delivery.scheduled version 2; this build reads version 1"* ]] || fail "$stderr"
	[[ "$stderr" == *"stdin:3: unknown schema version"* ]] || fail "$stderr"
	[[ "$stderr" == *"stdin:6: \"dataschema\" is not urn:dd:schema:delivery.cancelled:MAJOR"* ]] || fail "$stderr"
	[ "$(jq -r .line rj | paste -sd ' ')" = "1 3 6" ]
	run --separate-stderr dd-history < in
	assert_failure 1
	[[ "$stderr" == *"stdin:1: unknown schema version"* && "$stderr" == *"stdin:4: unknown schema version"* ]] || fail "$stderr"
	[[ "$stderr" == *"rejected 3"* ]] || fail "$stderr"
	run --separate-stderr dd-package < in
	assert_failure 1
	[[ "$stderr" == *"stdin:5: unknown schema version"* ]] || fail "$stderr"
	run --separate-stderr dd-schedule < <(sed -n 4p in)
	assert_failure 1
	[[ "$stderr" == *"unknown schema version"* ]] || fail "$stderr"
	# The lake is schema-on-read: it keeps every version as it came.
	run --separate-stderr dd-lake-ingest < <(sed -n 1,5p in)
	assert_success
	[ "$(dd-lake-query --since 2026-11-26 | wc -l)" -eq 5 ]
}

@test "unknown types of a consumed family are named in the summary; other families are not" {
	{
		versioned a delivery.scheduled.v2 urn:dd:schema:delivery.scheduled.v2:1 "$SCHED"
		versioned b delivery.scheduled.v2 urn:dd:schema:delivery.scheduled.v2:1 "$SCHED"
		versioned c drone.teleported urn:dd:schema:drone.teleported:1 '{}'
		versioned d weather.report urn:dd:schema:weather.report:1 '{}'
		versioned e delivery.rejected urn:dd:schema:delivery.rejected:1 '{"requestId":"r-1","reason":"x"}'
	} > in
	run --separate-stderr dd-track --only-status < in
	assert_success
	[[ "$stderr" == *"ignored 5"*"; unknown types skipped: delivery.scheduled.v2 (2), drone.teleported (1)" ]] || fail "$stderr"
	run --separate-stderr dd-history < in
	assert_success
	[[ "$stderr" == *"; unknown types skipped: delivery.scheduled.v2 (2)" ]] || fail "$stderr"
}

@test "consumers accept exactly the published enums: a size, confirmation or stage outside them is rejected" {
	bad_size=$(jq -c '.package.size = "xlarge"' <<< "$SCHED")
	bad_conf=$(jq -c '.confirmationRequired = "Smell"' <<< "$SCHED")
	no_kg=$(jq -c '.package.weightKg = 0' <<< "$SCHED")
	{
		ev s1 delivery.scheduled 2026-11-26T09:00:00Z d-1 "$bad_size"
		ev s2 delivery.scheduled 2026-11-26T09:00:00Z d-1 "$bad_conf"
		ev s3 delivery.scheduled 2026-11-26T09:00:00Z d-1 "$no_kg"
		ev s4 delivery.rescheduled 2026-11-26T09:00:00Z d-1 '{"deliveryId":"d-1","reason":"x","package":{"packageId":"p","size":"huge","weightKg":1}}'
		ev s5 delivery.status 2026-11-26T09:00:00Z d-1 '{"deliveryId":"d-1","stage":"lost"}'
		ev s6 delivery.status 2026-11-26T09:00:00Z d-1 '{"deliveryId":"d-1","stage":"created","previousStage":"nowhere"}'
		ev s7 delivery.scheduled 2026-11-26T09:00:00Z d-1 "$SCHED"
	} > in
	# The independent validator agrees on every line.
	run validate_events in
	assert_failure 1
	[ "$(grep -c '^in:[1-6]:' <<< "$output")" -eq 6 ] || fail "$output"
	run --separate-stderr dd-history --rejects rj < in
	assert_failure 1
	[ "$(jq -r .line rj | paste -sd ' ')" = "1 2 3 4 5 6" ]
	[[ "$stderr" == *'stdin:1: "data.package" is not a package {packageId, size: small|medium|large, weightKg > 0}'* ]] || fail "$stderr"
	[[ "$stderr" == *'stdin:2: "data.confirmationRequired" is not one of None, FingerPrint, Picture, Voice'* ]] || fail "$stderr"
	rm rj
	run --separate-stderr dd-track --rejects rj < in
	assert_failure 1
	[ "$(jq -r .line rj | paste -sd ' ')" = "1 2 3 4" ]
}

# ---- 4. the deliveries view ----

load deliveries

# view: the deliveries view as sorted lines.
view() { dd-lake-query --dataset deliveries "$@" | sort; }

@test "dd-archive writes one delivery.summary per archived delivery into deliveries; a rebuild writes the same" {
	gen_deliveries 120 > day.ndjson
	dd-history -q < day.ndjson
	dd-lake-ingest -q < day.ndjson
	run dd-archive --now 2027-06-01
	assert_success
	echo "$output" | jq -e '.deliveriesArchived == 120 and .summariesWritten == 120'
	view > v1
	[ "$(wc -l < v1)" -eq 120 ]
	validate_events v1
	# One of each outcome, field by field.
	run jq -c 'select(.subject == "d-0000001") | .data' v1
	assert_output '{"deliveryId":"d-0000001","requestId":"r-d0000001","ownerId":"o-1","droneId":"D-0001","attempt":1,"outcome":"completed","reason":null,"created":"2026-11-02T00:01:00.000Z","dispatched":"2026-11-02T00:06:00.000Z","pickedUp":"2026-11-02T00:16:00.000Z","ended":"2026-11-02T00:31:00.000Z","deadline":"2026-11-02T02:01:00.000Z","onTime":true,"durationS":1500,"events":4,"package":{"packageId":"p-1","size":"small","weightKg":2.5},"lastBattery":null,"lastLocation":{"lat":47.61,"lon":-122.33,"alt":0}}'
	run jq -r 'select(.subject == "d-0000007") | [.data.outcome, .data.reason, .data.durationS, .data.onTime, .time] | @tsv' v1
	assert_output "$(printf 'cancelled\towner\t\t\t2026-11-02T00:12:00.000Z')"
	run jq -r 'select(.subject == "d-0000013") | [.data.outcome, .data.durationS, .data.onTime] | @tsv' v1
	assert_output "$(printf 'failed\t1500\t')"
	run jq -r 'select(.subject == "r-d0000100") | [.data.outcome, .data.deliveryId, .data.requestId, .data.reason, .data.events] | @tsv' v1
	assert_output "$(printf 'rejected\t\tr-d0000100\tno-drone\t1')"
	# The counts agree with the events.
	[ "$(jq -r .data.outcome v1 | sort | uniq -c | awk '{print $2 "=" $1}' | paste -sd ' ')" = "cancelled=6 completed=110 failed=3 rejected=1" ]
	# A rebuild from the lake's events (the view lost, as for deliveries
	# archived before it existed) gives the very same lines.
	rm -rf "$DD_HOME/lake/deliveries"
	run dd-archive --rebuild-view --since 2026-11-02 --until 2026-11-03
	assert_success
	echo "$output" | jq -e '.summariesWritten == 120'
	view > v2
	cmp v1 v2
	# Again: the old parts go, the same lines stay, each once.
	dd-archive -q --rebuild-view --since 2026-11-02T05:00:00Z --until 2026-11-02T06:00:00Z > /dev/null
	view --no-dedupe > v3
	cmp v1 v3
}

@test "--rebuild-view: whole days only, deliveries that ended in them, from all their events; bad ranges are usage errors" {
	# 60 deliveries scheduled from 23:01 on the 2nd, a minute apart, each
	# ending 30 minutes later (a cancel after 5): 30 end on the 3rd.
	gen_deliveries 60 1793660400 60 > in
	dd-lake-ingest -q < in
	run dd-archive --rebuild-view --since 2026-11-03 --until 2026-11-04
	assert_success
	view > v
	[ "$(wc -l < v)" -eq 30 ]
	[ "$(jq -r '.time[0:10]' v | sort -u)" = "2026-11-03" ]
	# All but the last were scheduled on the 2nd: their events of that day
	# were read too.
	[ "$(jq -r 'select(.subject != "d-0000060") | [.data.created[0:10], .data.events] | @tsv' v | sort -u)" = "$(printf '2026-11-02\t4')" ]
	run dd-archive --rebuild-view --since 2026-11-01
	assert_failure 2
	run dd-archive --since 2026-11-01 --until 2026-11-02
	assert_failure 2
	run dd-archive --rebuild-view --since 2026-11-02 --until 2026-11-01
	assert_failure 2
	run dd-archive --rebuild-view --since 2026-11-01 --until 2026-11-02 --lake nowhere
	assert_failure 4
}
