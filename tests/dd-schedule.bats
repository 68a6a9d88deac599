#!/usr/bin/env bats
# dd-schedule: requests in, scheduler events out; work items, the
# supervisor's retries and compensations, idempotent replays, CSV input,
# and the store's questions. Sizes are small: a few hundred requests.

load common
load schedule

OVERLAP="$DD_ROOT/tests/dd-schedule-overlap.jq"

@test "--help shows the synopsis; bad options and operands exit 2" {
	run dd-schedule --help
	assert_success
	assert_output --partial "dd-schedule supervise [--db FILE] [-q] [--now TIME]"
	assert_output --partial "dd-schedule fleet import"
	run dd-schedule --version
	assert_success
	run dd-schedule --bogus
	assert_failure 2
	run dd-schedule list --csv
	assert_failure 2
	assert_output "dd-schedule: --csv is not an option of the command list"
	run dd-schedule get
	assert_failure 2
	run dd-schedule --now yesterday-ish
	assert_failure 2
	run dd-schedule list --state lost
	assert_failure 2
	run dd-schedule frobnicate
	assert_failure 2
}

@test "requests are registered and scheduled; every event validates against the schemas" {
	dd-sim requests -n 200 --seed 4 --cancel 0.05 > in.ndjson
	sched out.ndjson --fleet "$FLEET" < in.ndjson
	assert_success
	validate_events out.ndjson
	[ "$(of_type out.ndjson package.registered | wc -l)" -eq 200 ]
	# Every one given a drone but those a cancel reached in their window.
	[ "$(of_type out.ndjson delivery.scheduled | wc -l)" -eq "$(dd-schedule stats | jq .scheduled)" ]
	[ "$(dd-schedule stats | jq '.scheduled + .states.cancelled')" -ge 200 ]
	# Each scheduled delivery has its drone and ETAs within the request's terms.
	run jq -s -c '[.[] | select(.type == "delivery.scheduled") | .data
		| select(.droneId == null or .pickupEta < .pickupTime or .dropoffEta > .deadline
			or .departureEta > .pickupEta or .dropoffEta > .returnEta)]' out.ndjson
	assert_output '[]'
	# A package is registered before its delivery is scheduled.
	run jq -s -c '[to_entries[] | {i: .key, t: .value.type, d: (.value.data.deliveryId)}
		| select(.t == "package.registered" or .t == "delivery.scheduled")]
		| group_by(.d) | map(select(.[0].t != "package.registered")) | length' out.ndjson
	assert_output 0
	jq -r 'select(.type == "delivery.scheduled") | .id' out.ndjson | sort | uniq -d > dup
	[ ! -s dup ]
}

@test "every request ends scheduled or rejected; stats: requests = scheduled + rejected + waiting" {
	head -11 "$FLEET" > ten.csv
	dd-sim requests -n 300 --seed 3 --rate 600 > in.ndjson
	req bad-1 '.pickup.lat = 123' >> in.ndjson
	req bad-2 '.package.weightKg = 400' >> in.ndjson
	dd-schedule -q --fleet ten.csv < in.ndjson > out1.ndjson
	run dd-schedule stats
	assert_success
	echo "$output" | jq -e '.requests == 302 and .requests == .scheduled + .rejected + .waiting
		and .waiting > 0 and .rejected == 2'
	# Once every deadline has passed the supervisor settles the rest.
	dd-schedule -q supervise --now 2026-12-31T00:00:00Z > out2.ndjson
	run dd-schedule stats
	echo "$output" | jq -e '.requests == 302 and .waiting == 0 and .requests == .scheduled + .rejected'
	cat out1.ndjson out2.ndjson > all.ndjson
	validate_events all.ndjson
	# Exactly one of scheduled or rejected per request.
	jq -r '.requestId' in.ndjson | sort > want
	jq -r 'select(.type == "delivery.scheduled" or .type == "delivery.rejected")
		| .data.requestId' all.ndjson | sort > got
	diff want got
}

@test "no drone is ever assigned two overlapping deliveries (independent jq check)" {
	head -9 "$FLEET" > eight.csv
	dd-sim requests -n 300 --seed 9 --rate 400 --cancel 0.1 > in.ndjson
	# Reschedules of some of them, moving pickups later.
	jq -c 'select(.op == null) | select(.requestId | test("-(1|2)[0-9]$"))
		| {op: "reschedule", requestId, ownerId, reason: "later",
		   pickupTime: ((.pickupTime | sub("\\.[0-9]+Z$"; "Z") | fromdate) + 1800 | todate),
		   deadline: ((.deadline | sub("\\.[0-9]+Z$"; "Z") | fromdate) + 3600 | todate)}' \
		in.ndjson >> in.ndjson.ops
	cat in.ndjson in.ndjson.ops > all-in.ndjson
	sched out1.ndjson --fleet eight.csv < all-in.ndjson
	[ "$status" -le 1 ]
	[ "$(of_type out1.ndjson delivery.rescheduled | wc -l)" -gt 0 ]
	[ "$(of_type out1.ndjson drone.released | wc -l)" -gt 0 ]
	dd-schedule -q supervise --now 2026-11-26T09:00:00Z > out2.ndjson
	cat out1.ndjson out2.ndjson > all.ndjson
	validate_events all.ndjson
	run jq -s -c -f "$OVERLAP" all.ndjson
	assert_success
	assert_output '[]'
}

@test "the overlap check itself finds an overlap" {
	jq -cn '{type: "delivery.scheduled", data: {deliveryId: "d-1", droneId: "D-1",
		pickupTime: "2026-11-26T10:00:00.000Z", deadline: "2026-11-26T12:00:00.000Z",
		departureEta: "2026-11-26T10:00:00.000Z", pickupEta: "2026-11-26T10:05:00.000Z",
		dropoffEta: "2026-11-26T10:20:00.000Z", returnEta: "2026-11-26T10:30:00.000Z"}}' > e
	jq -c '.data.deliveryId = "d-2" | .data.departureEta = "2026-11-26T10:29:00.000Z"
		| .data.pickupEta = "2026-11-26T10:35:00.000Z"
		| .data.dropoffEta = "2026-11-26T10:50:00.000Z"
		| .data.returnEta = "2026-11-26T11:00:00.000Z"' e >> e
	run jq -s -c -f "$OVERLAP" e
	assert_output '[{"drone":"D-1","delivery":"d-2","overlaps":"d-1"}]'
	# Released first, no overlap.
	{ head -1 e; echo '{"type":"drone.released","data":{"deliveryId":"d-1","droneId":"D-1"}}'; tail -1 e; } > f
	run jq -s -c -f "$OVERLAP" f
	assert_output '[]'
}

@test "replay: the same input again emits nothing; a fresh store gives the same ids" {
	dd-sim requests -n 150 --seed 6 --cancel 0.1 > in.ndjson
	dd-schedule -q --fleet "$FLEET" < in.ndjson > out1.ndjson
	[ -s out1.ndjson ]
	run dd-schedule < in.ndjson
	assert_success
	assert_output --partial "requests 0 new, 150 replayed"
	assert_output --partial "operations 0 applied"
	refute_output --partial '"specversion"'
	# A partial run, then the whole input: the second run says only what
	# the first did not, and under new ids. (The end of an input closes
	# the scheduling window; without one the two runs are one.)
	DD_HOME="$BATS_TEST_TMPDIR/h0" dd-schedule -q --window 0 --fleet "$FLEET" < in.ndjson > out0.ndjson
	export DD_HOME="$BATS_TEST_TMPDIR/h2"
	head -70 in.ndjson | dd-schedule -q --window 0 --fleet "$FLEET" > part1.ndjson
	dd-schedule -q --window 0 < in.ndjson > part2.ndjson
	jq -r .id part1.ndjson | sort > ids1
	jq -r .id part2.ndjson | sort > ids2
	[ -z "$(comm -12 ids1 ids2)" ]
	cat part1.ndjson part2.ndjson | cmp - out0.ndjson
	# And a fresh store with the same input says exactly the same.
	export DD_HOME="$BATS_TEST_TMPDIR/h3"
	dd-schedule -q --fleet "$FLEET" < in.ndjson | cmp - out1.ndjson
}

@test "replay: operations and statuses read before their request are decided the same way again" {
	one_drone
	did=$(req r-1 | dd-schedule -q --db probe.db | jq -r 'select(.type | startswith("delivery.")) | .subject')
	{
		echo '{"op":"cancel","requestId":"r-1","ownerId":"o-1"}'
		echo '{"op":"reschedule","requestId":"r-1","ownerId":"o-1","pickupTime":"2026-11-26T10:01:00Z"}'
		jq -cn --arg d "$did" '{specversion: "1.0", id: "s-1", source: "/dd-track",
			type: "delivery.status", time: "2026-11-26T10:30:00Z", subject: $d,
			data: {deliveryId: $d, stage: "completed", droneId: "D-1"}}'
		req r-1
	} > in.ndjson
	sched out1 < in.ndjson
	assert_failure 1
	assert_output --partial "stdin:1: no such delivery"
	assert_output --partial "stdin:2: no such delivery"
	[ "$(of_type out1 delivery.scheduled | wc -l)" -eq 1 ]
	sched out2 < in.ndjson
	assert_failure 1
	assert_output --partial "stdin:1: no such delivery"
	assert_output --partial "ignored 1"
	[ ! -s out2 ]
	[ "$(dd-schedule get r-1 | jq -r .state)" = scheduled ]
}

@test "ExternalDelivery requests: string locations, Small, weight as a string" {
	dd-schedule -q fleet import "$FLEET"
	cat > in.ndjson <<'EOF'
{"deliveryId":"ext-1","ownerId":"o-3","pickupLocation":"0,47.62,-122.35","dropOffLocation":"12,47.60,-122.31","pickupTime":"2026-11-26T10:30:00Z","deadline":"2026-11-26T13:00:00Z","expedited":true,"confirmationRequired":"Picture","packageInfo":{"packageId":"p-9","size":"Small","weight":"14","tag":"tools"}}
{"ownerId":"o-3","pickupLocation":"0,36.778261,-119.41793200000001","dropOffLocation":"0,36.78,-119.42","pickupTime":"2026-11-26T10:30:00Z","deadline":"2026-11-26T13:00:00Z","packageInfo":{"packageId":"p-10","size":"Medium","weight":3}}
EOF
	sched out.ndjson < in.ndjson
	assert_success
	validate_events out.ndjson
	run jq -c 'select(.type == "delivery.scheduled") | .data
		| [.requestId, .pickup, .dropoff.alt, .package.size, .package.weightKg, .expedited]' out.ndjson
	assert_output '["ext-1",{"lat":47.62,"lon":-122.35,"alt":0},12,"small",14,true]'
	# The one without a deliveryId far from the fleet: no drone has the range;
	# it has a request id derived from its content, the same on a replay.
	run jq -r 'select(.type == "delivery.rejected") | .data | [.reason, (.requestId | test("^x-[0-9a-f]{16}$"))] | @tsv' out.ndjson
	assert_output "$(printf 'no-drone\ttrue')"
	run dd-schedule < in.ndjson
	assert_output --partial "0 new, 2 replayed"
}

@test "free-text locations are rejected with a clear reason" {
	dd-schedule -q fleet import "$FLEET"
	echo '{"deliveryId":"ext-2","ownerId":"o-3","pickupLocation":"my pickup","dropOffLocation":"my dropoff","pickupTime":"2026-11-26T10:30:00Z","deadline":"2026-11-26T13:00:00Z","packageInfo":{"packageId":"p-11","size":"Small","weight":1}}' > in.ndjson
	run dd-schedule -q < in.ndjson
	assert_success
	echo "$output" | validate_events
	run jq -r '[.type, .data.requestId, .data.reason, .data.field, .data.message] | @tsv' <<<"$output"
	assert_output "$(printf 'delivery.rejected\text-2\tinvalid\tpickupLocation\tpickupLocation: free text has no coordinates: expected "altitude,latitude,longitude"')"
}

@test "invalid requests: delivery.rejected with reason invalid and the field at fault" {
	dd-schedule -q fleet import "$FLEET"
	n=0
	while IFS='|' read -r edit field; do
		n=$((n + 1))
		req "r-$n" "$edit"
	done > in.ndjson <<'CASES'
.pickup.lat = 123.4|pickup.lat
.dropoff.lon = -200|dropoff.lon
.dropoff = "0,47.6,-122.3"|dropoff
.pickupTime = "2026-13-45T99:00:00Z"|pickupTime
.deadline = "2026-11-26T09:00:00Z"|deadline
.package.size = "gigantic"|package.size
.package.weightKg = 0|package.weightKg
.package.weightKg = 400|package.weightKg
.package.weightKg = "14"|package.weightKg
.confirmationRequired = "Retina"|confirmationRequired
.expedited = "yes"|expedited
del(.ownerId)|ownerId
del(.package)|package
CASES
	sched out.ndjson -q < in.ndjson
	assert_success
	validate_events out.ndjson
	run jq -r 'select(.data.reason != "invalid" or .type != "delivery.rejected") | .type' out.ndjson
	assert_output ''
	run jq -r '.data.field' out.ndjson
	assert_output "$(cut -d'|' -f2 <<'EOF'
.|pickup.lat
.|dropoff.lon
.|dropoff
.|pickupTime
.|deadline
.|package.size
.|package.weightKg
.|package.weightKg
.|package.weightKg
.|confirmationRequired
.|expedited
.|ownerId
.|package
EOF
)"
	run dd-schedule stats
	echo "$output" | jq -e '.rejected == 13 and .reasons.invalid == 13'
}

@test "bad input is rejected with stdin:LINE and a --rejects record; --strict stops with 3" {
	dd-schedule -q fleet import "$FLEET"
	{
		req r-1
		echo 'not json'
		echo '[1,2]'
		req r-2 'del(.requestId)'
		echo '{"op":"frobnicate","deliveryId":"d-1"}'
		echo '{"op":"cancel","deliveryId":"d-0000000000000000"}'
		echo '{"op":"cancel"}'
		req r-3
	} > in.ndjson
	run dd-schedule --rejects rej.ndjson < in.ndjson
	assert_failure 1
	assert_output --partial "dd-schedule: stdin:2: invalid JSON"
	assert_output --partial "dd-schedule: stdin:3: not a JSON object"
	assert_output --partial 'dd-schedule: stdin:4: missing "requestId"'
	assert_output --partial 'dd-schedule: stdin:5: unknown "op"'
	assert_output --partial "dd-schedule: stdin:6: no such delivery: d-0000000000000000"
	assert_output --partial "dd-schedule: stdin:7: an operation names its delivery"
	run jq -r '.line' rej.ndjson
	assert_output "$(printf '2\n3\n4\n5\n6\n7')"
	run jq -r 'select(.line == 2) | .raw' rej.ndjson
	assert_output 'not json'
	# Both good requests went through.
	[ "$(dd-schedule stats | jq .scheduled)" -eq 2 ]
	export DD_HOME="$BATS_TEST_TMPDIR/h2"
	dd-schedule -q fleet import "$FLEET"
	run dd-schedule --strict < in.ndjson
	assert_failure 3
	[ "$(dd-schedule stats | jq .requests)" -eq 1 ]
}

@test "dd-sim's malformed lines: each is a reject or a rejected request, none is lost" {
	dd-schedule -q fleet import "$FLEET"
	dd-sim requests -n 200 --seed 12 --bad 0.2 --bad-manifest man.ndjson > in.ndjson
	status=0
	dd-schedule -q --rejects rej.ndjson < in.ndjson > out.ndjson || status=$?
	[ "$status" -eq 1 ]
	validate_events out.ndjson
	# Lines that are not JSON objects are all rejects.
	jq -r 'select(.expect != "schema") | .line' man.ndjson | sort -n > not-json
	jq -r '.line' rej.ndjson | sort -n > rejected
	[ -z "$(comm -23 not-json rejected)" ]
	# Lines that are objects but bad requests: a reject, or delivery.rejected.
	n_schema=$(jq -s '[.[] | select(.expect == "schema")] | length' man.ndjson)
	n_rej_schema=$(comm -13 not-json rejected | wc -l)
	n_invalid=$(jq -s '[.[] | select(.type == "delivery.rejected" and .data.reason == "invalid")] | length' out.ndjson)
	[ "$n_schema" -gt 0 ]
	[ $((n_rej_schema + n_invalid)) -eq "$n_schema" ]
}

@test "CSV input is equivalent to the same NDJSON input" {
	dd-sim requests -n 120 --seed 8 > in.ndjson
	req r-x '.pickup.lat = 99' >> in.ndjson
	req r-y 'del(.package.tag) | .expedited = true' >> in.ndjson
	# The CSV, made by jq: dotted headers, one row per request.
	jq -rs '
		["requestId","ownerId","pickup.lat","pickup.lon","pickup.alt","dropoff.lat","dropoff.lon",
		 "dropoff.alt","pickupTime","deadline","expedited","confirmationRequired",
		 "package.packageId","package.size","package.weightKg","package.tag"] as $h
		| ($h | @csv), (.[] | [$h[] as $k | getpath($k | split(".")) | if . == null then "" else . end] | @csv)' \
		in.ndjson > in.csv
	# libcsv quoting: a field with a comma and a quote survives.
	printf '%s\n' '"r-q","o-1",47.61,-122.33,0,47.62,-122.33,0,"2026-11-26T10:00:00Z","2026-11-26T12:00:00Z",false,"None","p-q","small",1,"a ""quoted"", tag"' >> in.csv
	jq -c '.tag = "a \"quoted\", tag"' <<<'{}' > /dev/null
	req r-q '.package = {packageId: "p-q", size: "small", weightKg: 1, tag: "a \"quoted\", tag"}' >> in.ndjson
	export DD_HOME="$BATS_TEST_TMPDIR/json"
	dd-schedule -q --fleet "$FLEET" < in.ndjson > json.out
	export DD_HOME="$BATS_TEST_TMPDIR/csv"
	sched csv.out --csv --fleet "$FLEET" < in.csv
	assert_success
	[ "$(wc -l < json.out)" -gt 240 ]
	cmp json.out csv.out
}

@test "CSV: the reference's shape, and bad rows rejected with their CSV line" {
	dd-schedule -q fleet import "$FLEET"
	cat > in.csv <<'EOF'
deliveryId,ownerId,pickupLocation,dropOffLocation,pickupTime,deadline,packageInfo.packageId,packageInfo.size,packageInfo.weight
ext-1,o-3,"0,47.62,-122.35","0,47.60,-122.31",2026-11-26T10:30:00Z,2026-11-26T13:00:00Z,p-1,Small,14
ext-2,o-3,"0,47.62,
-122.35","0,47.60,-122.31",2026-11-26T10:30:00Z,2026-11-26T13:00:00Z,p-2,Small,14
ext-3,o-3,only,five,fields
ext-4,o-3,"bad"quote,"0,47.60,-122.31",2026-11-26T10:30:00Z,2026-11-26T13:00:00Z,p-4,Small,14
ext-5,o-3,"0,47.61,-122.33","0,47.60,-122.31",2026-11-26T10:30:00Z,2026-11-26T13:00:00Z,p-5,Large,"2.5"
EOF
	run dd-schedule --csv --rejects rej.ndjson < in.csv
	assert_failure 1
	assert_output --partial "dd-schedule: stdin:5: 5 fields, the header has 9"
	assert_output --partial "dd-schedule: stdin:6: bad CSV"
	run jq -r '[.line, .raw] | @tsv' rej.ndjson
	assert_line --index 0 "$(printf '5\text-3,o-3,only,five,fields')"
	printf '%s\n' "$output" > /dev/null
	[ "$(dd-schedule stats | jq .scheduled)" -eq 3 ]
	run dd-schedule get ext-1
	assert_success
	echo "$output" | jq -e '.package.weightKg == 14 and .package.size == "small"'
}

@test "CSV: a row over --max-line is rejected with its line, and the rows after it still line up" {
	dd-schedule -q fleet import "$FLEET"
	long=$(head -c 3000 /dev/zero | tr '\0' x)
	{
		echo 'requestId,ownerId,pickup.lat,pickup.lon,dropoff.lat,dropoff.lon,pickupTime,deadline,package.packageId,package.size,package.weightKg,package.tag'
		echo 'r-1,o-1,47.61,-122.33,47.62,-122.33,2026-11-26T10:00:00Z,2026-11-26T12:00:00Z,p-1,small,1,'
		echo "r-2,o-1,47.61,-122.33,47.62,-122.33,2026-11-26T10:00:00Z,2026-11-26T12:00:00Z,p-2,small,1,$long"
		echo 'r-3,o-1,47.61,-122.33,47.62,-122.33,2026-11-26T10:00:00Z,2026-11-26T12:00:00Z,p-3,small,1,"two'
		echo 'lines"'
		echo 'r-4,o-1,47.61,-122.33,47.62,-122.33,2026-11-26T10:00:00Z,2026-11-26T12:00:00Z,p-4,small,1,'
	} > in.csv
	sched out --csv --max-line 1k --rejects rej.ndjson < in.csv
	assert_failure 1
	assert_output --partial "stdin:3: line longer than 1024 bytes"
	run jq -r '.data.requestId // empty' out
	assert_output "$(printf 'r-1\nr-3\nr-4')"
	run jq -r '[.line, (.raw | startswith("r-2,"))] | @tsv' rej.ndjson
	assert_output "$(printf '3\ttrue')"
	run dd-schedule get r-3
	echo "$output" | jq -e '.package.tag == "two\nlines"'
}

@test "cancel compensates in reverse order; again is a no-op; a finished delivery cannot be cancelled" {
	one_drone
	req r-1 > in.ndjson
	echo '{"op":"cancel","requestId":"r-1","ownerId":"o-1","reason":"changed-mind"}' >> in.ndjson
	echo '{"op":"cancel","requestId":"r-1","ownerId":"o-1"}' >> in.ndjson
	# (In a window the cancel would reach it before it had a drone.)
	run dd-schedule -q --window 0 < in.ndjson
	assert_success
	echo "$output" | validate_events
	run jq -r '[.type, .data.reason // "-"] | @tsv' <<<"$output"
	assert_output "$(printf 'package.registered\t-\ndelivery.scheduled\t-\ndrone.released\tchanged-mind\npackage.removed\tchanged-mind\ndelivery.cancelled\tchanged-mind')"
	run dd-schedule get r-1
	echo "$output" | jq -e '.state == "cancelled" and ([.log[].step] == ["registered","scheduled","released.1","removed","cancelled"])'
	# Its drone is free again: the same slot goes to the next request.
	req r-2 | dd-schedule -q > out2
	run jq -r .data.droneId out2
	assert_line D-1
	# A delivery that failed its validation is no delivery to cancel.
	req r-3 '.pickup.lat = 100' | dd-schedule -q > /dev/null
	run dd-schedule <<<'{"op":"cancel","requestId":"r-3","ownerId":"o-1"}'
	assert_failure 1
	assert_output --partial "cannot cancel delivery"
}

@test "reschedule changes the terms and may move the drone; a replayed reschedule changes nothing" {
	one_drone 2
	req r-1 > in.ndjson
	req r-2 '.pickupTime = "2026-11-26T10:30:00Z"' >> in.ndjson
	dd-schedule -q < in.ndjson > out1
	run jq -r 'select(.type == "delivery.scheduled") | .data.droneId' out1
	assert_output "$(printf 'D-1\nD-1')"
	# r-2 moves onto r-1's time: D-1 is busy then, so D-2 takes it.
	echo '{"op":"reschedule","requestId":"r-2","ownerId":"o-1","pickupTime":"2026-11-26T10:02:00Z","reason":"earlier"}' > op
	run dd-schedule -q < op
	assert_success
	echo "$output" | validate_events
	run jq -r '[.type, .data.droneId // "-", .data.pickupEta // "-", .data.reason] | @tsv' <<<"$output"
	assert_output "$(printf 'drone.released\tD-1\t-\trescheduled\ndelivery.rescheduled\tD-2\t2026-11-26T10:02:00.000Z\tearlier')"
	run dd-schedule -q < op
	assert_output ''
	run dd-schedule get r-2
	echo "$output" | jq -e '.state == "scheduled" and .droneId == "D-2" and .version == 2'
	# A reschedule with nothing to change is bad input.
	run dd-schedule <<<'{"op":"reschedule","requestId":"r-2","ownerId":"o-1"}'
	assert_failure 1
	assert_output --partial "nothing to change"
}

@test "feedback: a completion frees the drone early and a waiting request gets it" {
	one_drone
	req r-1 > in.ndjson
	req r-2 '.pickupTime = "2026-11-26T10:05:00Z" | .deadline = "2026-11-26T10:12:00Z"' >> in.ndjson
	dd-schedule -q < in.ndjson > out1
	[ "$(of_type out1 delivery.scheduled | wc -l)" -eq 1 ]
	[ "$(dd-schedule stats | jq .waiting)" -eq 1 ]
	did=$(jq -r 'select(.type == "delivery.scheduled") | .subject' out1)
	status() {	# status STAGE TIME
		jq -cn --arg d "$did" --arg s "$1" --arg t "$2" '{specversion: "1.0",
			id: ($d + ":" + $s), source: "/dd-track", type: "delivery.status", time: $t,
			subject: $d, data: {deliveryId: $d, stage: $s, droneId: "D-1"}}'
	}
	{
		status headed-to-pickup 2026-11-26T10:00:00Z
		status headed-to-dropoff 2026-11-26T10:01:00Z
		status headed-to-pickup 2026-11-26T10:01:30Z
		status completed 2026-11-26T10:02:00Z
		echo '{"specversion":"1.0","id":"x","source":"/x","type":"drone.position","time":"2026-11-26T10:02:00Z","subject":"d","data":{}}'
	} > fb.ndjson
	sched out2 < fb.ndjson
	assert_success
	assert_output --partial "ignored 1"
	validate_events out2
	run jq -r '[.type, .data.requestId, .data.droneId, .data.dropoffEta] | @tsv' out2
	assert_output "$(printf 'delivery.scheduled\tr-2\tD-1\t2026-11-26T10:11:44.000Z')"
	run dd-schedule get r-1
	echo "$output" | jq -e '.state == "completed" and ([.log[] | select(.step == "status") | .detail] == ["headed-to-pickup","headed-to-dropoff","completed"])'
	cat out1 out2 | jq -s -e -f "$OVERLAP" > /dev/null
}

@test "feedback: a failed delivery is compensated by the supervisor at its last attempt, before pickup or after (failed is final)" {
	one_drone 2
	req r-1 > in.ndjson
	req r-2 '.pickupTime = "2026-11-26T10:30:00Z"' >> in.ndjson
	dd-schedule -q < in.ndjson > out1
	d1=$(jq -r 'select(.data.requestId == "r-1" and .type == "delivery.scheduled") | .subject' out1)
	d2=$(jq -r 'select(.data.requestId == "r-2" and .type == "delivery.scheduled") | .subject' out1)
	for x in "$d1 headed-to-pickup 2026-11-26T09:58:00Z" "$d1 failed 2026-11-26T09:59:00Z" \
		"$d2 headed-to-pickup 2026-11-26T10:29:00Z" "$d2 headed-to-dropoff 2026-11-26T10:30:00Z" \
		"$d2 failed 2026-11-26T10:31:00Z"; do
		set -- $x
		jq -cn --arg d "$1" --arg s "$2" --arg t "$3" '{specversion: "1.0", id: ($d + $s),
			source: "/dd-track", type: "delivery.status", time: $t, subject: $d,
			data: {deliveryId: $d, stage: $s, droneId: "D-1"}}'
	done | dd-schedule -q
	[ "$(dd-schedule list --state failed | wc -l)" -eq 2 ]
	# (Another attempt of each: dd-schedule-rules.bats.)
	sched out2 supervise --max-attempts 1 --now 2026-11-26T10:32:00Z
	assert_success
	validate_events out2
	run jq -r '[.subject == "'"$d1"'", .type, .data.reason, .data.droneId // "-"] | @tsv' out2
	# (package events have the package as their subject)
	assert_output "$(printf 'true\tdrone.released\tdrone-failed\tD-1
false\tpackage.removed\tdrone-failed\t-
true\tdelivery.cancelled\tdrone-failed\t-
false\tdrone.released\tdrone-failed\tD-1
false\tpackage.removed\tdrone-failed\t-
false\tdelivery.cancelled\tdrone-failed\t-')"
	run dd-schedule supervise --now 2026-11-26T10:32:00Z
	refute_output --partial '"specversion"'
}

@test "expedited requests go first when several wait for a drone" {
	one_drone
	# r-1 expedited too, so that neither can take its place.
	req r-1 '.expedited = true' > in.ndjson
	# Neither fits after r-1; once r-1 is gone, either would, but not both.
	req r-2 '.pickupTime = "2026-11-26T10:05:00Z" | .deadline = "2026-11-26T10:13:00Z"' >> in.ndjson
	req r-3 '.pickupTime = "2026-11-26T10:06:00Z" | .deadline = "2026-11-26T10:13:30Z" | .expedited = true' >> in.ndjson
	dd-schedule -q < in.ndjson > out1
	[ "$(dd-schedule stats | jq .waiting)" -eq 2 ]
	run dd-schedule -q <<<'{"op":"cancel","requestId":"r-1","ownerId":"o-1"}'
	run jq -r 'select(.type == "delivery.scheduled") | .data.requestId' <<<"$output"
	assert_output r-3
	[ "$(dd-schedule list --state waiting | jq -r .requestId)" = r-2 ]
}

@test "supervise: every compensation is emitted once across a kill -9 and a restart" {
	head -11 "$FLEET" > ten.csv
	dd-sim requests -n 200 --seed 5 --rate 500 > in.ndjson
	dd-schedule -q --fleet ten.csv < in.ndjson > /dev/null
	run dd-schedule stats
	echo "$output" | jq -e '.waiting > 20 and .states.scheduled > 20'
	# Killed after writing the 25th item's events, before committing them.
	DD_SCHEDULE_FAULT=supervise-kill:25 sched run1 -q supervise --now 2026-12-31T00:00:00Z
	[ "$status" -eq 137 ]
	[ "$(jq -r .data.deliveryId run1 | uniq | wc -l)" -eq 25 ]
	sched run2 -q supervise --now 2026-12-31T00:00:00Z
	assert_success
	run dd-schedule -q supervise --now 2026-12-31T00:00:00Z
	assert_output ''
	cat run1 run2 > all
	validate_events all
	# One id per compensating step of each item...
	run jq -s -c 'group_by([.data.deliveryId, .type]) | map(select((map(.id) | unique | length) != 1)) | length' all
	assert_output 0
	# ... and the only lines seen twice are the killed item's, identical.
	sort all | uniq -d > twice
	[ -s twice ]
	[ "$(jq -r .data.deliveryId twice | sort -u | wc -l)" -eq 1 ]
	[ "$(jq -r .id all | sort | uniq -d | wc -l)" -eq "$(wc -l < twice)" ]
	# Everything is settled, in reverse order for each item.
	run dd-schedule stats
	echo "$output" | jq -e '.waiting == 0 and .states.scheduled == null'
	run jq -s -c '[group_by(.data.deliveryId)[] | map(.type)
		| select(. != ["drone.released","package.removed","delivery.cancelled"]
			and . != ["package.removed","delivery.rejected"]
			and . != ["package.removed","delivery.cancelled"])] | length' run2
	assert_output 0
}

@test "supervise: a second supervisor exits 5 while the first holds the lock" {
	dd-schedule -q fleet import "$FLEET"
	exec 9> "$DD_HOME/schedule.db.supervise.lock"
	flock 9
	run dd-schedule supervise
	assert_failure 5
	assert_output --partial "another supervisor is running"
	exec 9>&-
	run dd-schedule -q supervise
	assert_success
}

@test "fleet import: bad rows rejected with file:line; fleet list round-trips" {
	cp "$FLEET" f.csv
	printf 'D-bad1,91,-122,5,small,40,20\nD-bad2,47.6,-122.3,5,huge,40,20\nD-bad3,47.6,-122.3,x,small,40,20\n' >> f.csv
	run dd-schedule fleet import --rejects rej.ndjson f.csv
	assert_failure 1
	assert_output --partial "f.csv:302: base.lat: 91 out of range"
	assert_output --partial "f.csv:303: maxSize"
	assert_output --partial "f.csv:304: maxPayloadKg: not a number"
	assert_output --partial "300 drones imported, 3 rows rejected"
	run jq -r .line rej.ndjson
	assert_output "$(printf '302\n303\n304')"
	dd-schedule fleet list --format csv > listed.csv
	dd-schedule fleet list > listed.ndjson
	[ "$(wc -l < listed.ndjson)" -eq 300 ]
	diff <(cut -d, -f1 "$FLEET" | head -301) <(cut -d, -f1 listed.csv | tr -d '\r')
	# The listing imports back as the same fleet.
	export DD_HOME="$BATS_TEST_TMPDIR/h2"
	dd-schedule -q fleet import listed.csv
	dd-schedule fleet list | cmp - listed.ndjson
	export DD_HOME="$BATS_TEST_TMPDIR/home"
	run dd-schedule fleet import /nonexistent.csv
	assert_failure 4
	printf 'id,base.lat\nD-1,47\n' > short.csv
	run dd-schedule fleet import short.csv
	assert_failure 1
	assert_output --partial 'short.csv:1: missing column "base.lon"'
}

@test "get shows the steps and the history; list filters by state in every format" {
	one_drone
	req r-1 > in.ndjson
	req r-2 '.pickupTime = "2026-11-26T10:05:00Z" | .deadline = "2026-11-26T10:12:00Z"' >> in.ndjson
	dd-schedule -q < in.ndjson > out
	run dd-schedule get r-1
	assert_success
	echo "$output" | jq -e '.state == "scheduled" and .droneId == "D-1" and (.log | length) == 2
		and .log[1].eventId == "'"$(jq -r 'select(.type == "delivery.scheduled") | .id' out)"'"'
	did=$(echo "$output" | jq -r .deliveryId)
	run dd-schedule get "$did"
	assert_success
	run dd-schedule get nothing-like-it
	assert_failure 1
	run dd-schedule list --state waiting
	assert_output --partial '"requestId":"r-2"'
	run sh -c "dd-schedule list --format csv | tr -d '\r'"
	assert_line --index 0 'deliveryId,requestId,ownerId,state,reason,droneId,pickupTime,deadline,pickupEta,dropoffEta'
	[ "${#lines[@]}" -eq 3 ]
	run dd-schedule list --format tsv --state scheduled
	[ "${#lines[@]}" -eq 2 ]
	run dd-schedule list --format table
	assert_success
	run dd-schedule --db nowhere/x.db stats
	assert_failure 4
}

@test "a --now clock is reproducible and a request in the past is taken from now" {
	one_drone
	req r-1 | dd-schedule -q --now 2026-11-26T10:30:00Z > out
	run jq -r 'select(.type == "delivery.scheduled") | [.time, .data.departureEta, .data.pickupEta] | @tsv' out
	assert_output "$(printf '2026-11-26T10:30:00.000Z\t2026-11-26T10:30:00.000Z\t2026-11-26T10:30:00.000Z')"
}

@test "a filter and a supervisor at once on one store never book a drone twice" {
	head -21 "$FLEET" > twenty.csv
	dd-schedule -q fleet import twenty.csv
	dd-sim requests -n 160 --seed 13 --rate 300 > in.ndjson
	mkfifo feed
	dd-schedule -q --flush-interval 50ms < feed > out1.ndjson 2> err1 &
	filter=$!
	exec 7> feed
	head -80 in.ndjson >&7
	# Once the first half is committed (its events are out: output is
	# flushed before each commit) ...
	for i in $(seq 100); do
		[ "$(dd-schedule stats 2>/dev/null | jq -r .requests)" = 80 ] && break
		sleep 0.1
	done
	n1=$(wc -l < out1.ndjson)
	# ... the supervisor moves stuck deliveries onto other drones ...
	dd-schedule -q supervise --now 2026-11-26T07:00:00Z > out2.ndjson
	[ "$(of_type out2.ndjson delivery.rescheduled | wc -l)" -gt 0 ]
	# ... and the filter, still running, books around them.
	tail -n +81 in.ndjson >&7
	exec 7>&-
	wait "$filter"
	[ "$(dd-schedule stats | jq .requests)" -eq 160 ]
	{ head -n "$n1" out1.ndjson; cat out2.ndjson; tail -n +"$((n1 + 1))" out1.ndjson; } > all.ndjson
	[ "$(wc -l < all.ndjson)" -gt "$((n1 + 80))" ]
	run jq -s -c -f "$OVERLAP" all.ndjson
	assert_output '[]'
}

@test "a filter killed between its output and its commit says the same again on replay" {
	head -21 "$FLEET" > twenty.csv
	dd-sim requests -n 200 --seed 14 --rate 400 --cancel 0.1 > in.ndjson
	export DD_HOME="$BATS_TEST_TMPDIR/clean"
	dd-schedule -q --fleet twenty.csv < in.ndjson > clean.ndjson
	export DD_HOME="$BATS_TEST_TMPDIR/home"
	dd-schedule -q fleet import twenty.csv
	# Killed at its third commit: two batches are stored, the third's
	# events are out but not stored.
	DD_SCHEDULE_FAULT=commit-kill:3 sched run1 -q --batch 40 < in.ndjson
	[ "$status" -eq 137 ]
	[ "$(dd-schedule stats | jq .requests)" -lt 100 ]
	sched run2 -q --batch 40 < in.ndjson
	assert_success
	# Together they are the clean run, the third batch's events twice,
	# byte for byte.
	sort -u run1 run2 | cmp - <(sort -u clean.ndjson)
	[ "$(sort run1 run2 | uniq -d | wc -l)" -gt 0 ]
	# No id comes with two different lines.
	[ "$(sort -u run1 run2 | jq -r .id | sort | uniq -d | wc -l)" -eq 0 ]
	cat run1 run2 | jq -s -e -f "$OVERLAP" | jq -e 'length == 0'
}

@test "an invalid request does not claim its id: the corrected one is scheduled, and replays stay replays" {
	one_drone
	{ req r-1 '.pickup.lat = 123'; req r-1; req r-1 '.pickup.lat = 123'; } > in.ndjson
	# (--now: the rejection of a request without a usable pickupTime is
	# dated by the clock, which is the wall clock on a fresh store)
	sched out1 --now 2026-11-26T09:00:00Z < in.ndjson
	assert_success
	run jq -r '.type' out1
	assert_output "$(printf 'delivery.rejected\npackage.registered\ndelivery.scheduled')"
	run jq -r 'select(.type == "delivery.rejected") | .data.field' out1
	assert_output 'pickup.lat'
	run dd-schedule stats
	[ "$(jq '[.requests, .scheduled, .rejected] == [1, 1, 0]' <<< "$output")" = true ]
	# The whole input again: nothing new.
	sched out2 --now 2026-11-26T09:00:00Z < in.ndjson
	assert_success
	[ ! -s out2 ]
	# A fresh store gives the same events, byte for byte.
	DD_HOME=$BATS_TEST_TMPDIR/fresh sched out3 --fleet one.csv --now 2026-11-26T09:00:00Z < in.ndjson
	cmp out1 out3
}

@test "a request id with a NUL character is bad input, said so" {
	run dd-schedule -q <<< '{"requestId":"a\u0000b","ownerId":"o-1"}'
	assert_failure 1
	assert_output 'dd-schedule: stdin:1: "requestId" is a string with a NUL character'
}
