#!/usr/bin/env bats
# dd-schedule: the business rules (issue 14) and the delivery ids no
# client can steer (issue 12): each case read through the public commands.

load common
load schedule

@test "delivery ids: 128 bits of SHA-256, one per (owner, request), whatever the client sends" {
	{
		req r-1
		req r-1 '.ownerId = "o-2"'
		req "o-2" '.ownerId = "r-1"'
	} > in.ndjson
	one_drone 3
	sched out.ndjson < in.ndjson
	assert_success
	run jq -r 'select(.type == "delivery.scheduled") | .data.deliveryId' out.ndjson
	[ "${#lines[@]}" -eq 3 ]
	for d in "${lines[@]}"; do
		[[ $d =~ ^d-[0-9a-f]{32}$ ]] || fail "not a 128-bit id: $d"
	done
	[ "$(printf '%s\n' "${lines[@]}" | sort -u | wc -l)" -eq 3 ]
}

@test "delivery ids: a crafted collision takes nothing from the genuine request, on first run and replay" {
	# DD_SCHEDULE_FAULT=did-bits:1 keeps one bit of the first candidate
	# id, so of these requests of two owners most collide, as a request id
	# crafted against the old 64-bit hash did; each must still get its own
	# delivery, the same again on replay, and operations by requestId and
	# ownerId must reach the right one.
	{
		for i in 1 2 3; do
			req "evil-$i" '.ownerId = "o-mallory"'
			req "r-$i" '.ownerId = "o-alice"'
		done
	} > in.ndjson
	one_drone 6
	export DD_SCHEDULE_FAULT=did-bits:1
	sched out.ndjson < in.ndjson
	assert_success
	refute_output --partial collision
	run jq -r 'select(.type == "delivery.scheduled") | .data.deliveryId' out.ndjson
	[ "${#lines[@]}" -eq 6 ]
	[ "$(printf '%s\n' "${lines[@]}" | sort -u | wc -l)" -eq 6 ]
	# At least two asked for the same first candidate (one bit: 2 values).
	[ "$(printf '%s\n' "${lines[@]}" | grep -c '^d-[08]0\{31\}$')" -ge 2 ]
	# Every request's delivery is its own.
	for i in 1 2 3; do
		run jq -r --arg r "r-$i" 'select(.type == "delivery.scheduled" and .data.requestId == $r)
			| [.data.ownerId, .data.package.packageId] | @tsv' out.ndjson
		assert_output "$(printf 'o-alice\tp-r-%s' "$i")"
	done
	# A replay says nothing; the store still has six items.
	sched again.ndjson < in.ndjson
	assert_success
	[ ! -s again.ndjson ]
	run dd-schedule stats
	assert_output --partial '"requests":6'
	# Alice's cancel by request id cancels Alice's delivery only.
	echo '{"op":"cancel","requestId":"r-2","ownerId":"o-alice"}' > op.ndjson
	sched cancel.ndjson < op.ndjson
	assert_success
	did=$(jq -r 'select(.type == "delivery.scheduled" and .data.requestId == "r-2") | .data.deliveryId' out.ndjson)
	run jq -r 'select(.type == "delivery.cancelled") | .subject' cancel.ndjson
	assert_output "$did"
	run dd-schedule list --state cancelled --format csv
	assert_line --partial "r-2"
	refute_line --partial "evil-"
}

# status DID STAGE TIME [DRONE]: one delivery.status event, as dd-track
# feeds it back.
status() {
	jq -cn --arg d "$1" --arg s "$2" --arg t "$3" --arg dr "${4:-D-1}" '{specversion: "1.0",
		id: ($d + "/" + $s), source: "/dd-track", type: "delivery.status", time: $t,
		subject: $d, data: {deliveryId: $d, stage: $s, droneId: $dr}}'
}

# A drone based 1.1 km south of req's pickup: it leaves 112 s before the
# pickup, so it may be flying while the package is not yet on board.
away_drone() {
	printf 'id,base.lat,base.lon,maxPayloadKg,maxSize,rangeKm,speedMps\n' > away.csv
	printf 'D-1,47.60,-122.33,5,medium,20,10\n' >> away.csv
	dd-schedule -q fleet import away.csv
}

@test "cancel with the package on board: refused visibly; the drone flies on, the package is kept" {
	away_drone
	req r-1 | dd-schedule -q > out1
	d1=$(jq -r 'select(.type == "delivery.scheduled") | .subject' out1)
	ret=$(jq -r 'select(.type == "delivery.scheduled") | .data.returnEta' out1)
	status "$d1" headed-to-pickup 2026-11-26T09:58:10Z > st.ndjson
	status "$d1" headed-to-dropoff 2026-11-26T10:01:00Z >> st.ndjson
	dd-schedule -q < st.ndjson
	echo '{"op":"cancel","requestId":"r-1","ownerId":"o-1"}' > op.ndjson
	sched out2 --rejects rej.ndjson < op.ndjson
	assert_failure 1
	assert_output --partial "stdin:1: cannot cancel delivery $d1: the package is picked-up"
	assert_output --partial "1 refused"
	validate_events out2
	run jq -r '[.type, .subject, .data.op, .data.reason] | @tsv' out2
	assert_output "$(printf 'delivery.refused\t%s\tcancel\tpicked-up' "$d1")"
	[ "$(jq -r .line rej.ndjson)" = 1 ]
	# No compensation: the delivery goes on, its package stays registered.
	run dd-schedule get "$d1"
	echo "$output" | jq -e '.state == "in-progress" and .stage == "headed-to-dropoff"'
	refute_output --partial package.removed
	refute_output --partial drone.released
	dd-package -q < out1
	run dd-package get p-r-1
	assert_success
	# A 2 kg request two minutes later waits for the drone to be home.
	req r-2 '.pickupTime = "2026-11-26T10:03:00Z" | .package.weightKg = 2' > r2.ndjson
	dd-schedule -q --now 2026-11-26T10:03:00Z < r2.ndjson > out3
	dep=$(jq -r 'select(.type == "delivery.scheduled") | .data.departureEta' out3)
	[ -n "$dep" ]
	[[ "$dep" > "$ret" ]] || fail "r-2 departs at $dep, before r-1's drone returns at $ret"
	# The delivery completes; a replayed cancel is refused again, silently.
	status "$d1" completed 2026-11-26T10:02:00Z | dd-schedule -q
	[ "$(dd-schedule get "$d1" | jq -r .state)" = completed ]
	sched out4 < op.ndjson
	assert_failure 1
	[ ! -s out4 ]
}

@test "a cancel the scheduler cannot decide is held until the delivery service's status decides it" {
	away_drone
	{ req r-1; req r-2 '.pickupTime = "2026-11-26T11:00:00Z"'; req r-3 '.pickupTime = "2026-11-26T12:00:00Z" | .deadline = "2026-11-26T13:00:00Z"'; } > in.ndjson
	dd-schedule -q --now 2026-11-26T09:00:00Z < in.ndjson > out1
	id() { jq -r --arg r "$1" 'select(.type == "delivery.scheduled" and .data.requestId == $r) | .subject' out1; }
	d1=$(id r-1) d2=$(id r-2) d3=$(id r-3)
	# Past r-1's planned pickup, nothing heard: held, nothing emitted.
	echo '{"op":"cancel","requestId":"r-1","ownerId":"o-1"}' > op1.ndjson
	sched out2 --now 2026-11-26T10:00:30Z < op1.ndjson
	assert_success
	assert_output --partial "1 held"
	[ ! -s out2 ]
	dd-schedule get "$d1" | jq -e '.state == "scheduled" and .cancelHeld == "client"'
	# The drone delivered: the held cancel is refused, the delivery completed.
	{ status "$d1" headed-to-pickup 2026-11-26T09:58:10Z; status "$d1" completed 2026-11-26T10:03:00Z; } > st1.ndjson
	sched out3 < st1.ndjson
	assert_success
	validate_events out3
	run jq -r '[.type, .subject, .data.reason] | @tsv' out3
	assert_output "$(printf 'delivery.refused\t%s\tdelivered' "$d1")"
	dd-schedule get "$d1" | jq -e '.state == "completed" and .cancelHeld == null'
	# r-2: held, then its drone failed: cancelled by the supervisor, no retry.
	echo '{"op":"cancel","requestId":"r-2","ownerId":"o-1","reason":"changed-mind"}' > op2.ndjson
	dd-schedule -q --now 2026-11-26T11:00:30Z < op2.ndjson
	{ status "$d2" headed-to-pickup 2026-11-26T10:58:10Z; status "$d2" failed 2026-11-26T11:01:00Z; } | dd-schedule -q
	sched out4 supervise --now 2026-11-26T11:30:00Z
	assert_success
	run jq -r 'select(.type == "delivery.cancelled") | [.subject, .data.reason] | @tsv' out4
	assert_output "$(printf '%s\tchanged-mind' "$d2")"
	# r-3: held, and no word from the delivery service long after the
	# pickup: the drone never left, so the supervisor applies the cancel.
	echo '{"op":"cancel","requestId":"r-3","ownerId":"o-1"}' > op3.ndjson
	dd-schedule -q --now 2026-11-26T12:00:30Z < op3.ndjson
	sched out5 supervise --now 2026-11-26T12:30:00Z
	assert_success
	run jq -r '.type' out5
	assert_output "$(printf 'drone.released\npackage.removed\ndelivery.cancelled')"
	[ "$(dd-schedule get "$d3" | jq -r .state)" = cancelled ]
	# Replays decide nothing anew.
	for f in op1 op2 op3; do
		sched again < $f.ndjson
		[ ! -s again ]
	done
}

@test "a cancel before the pickup applies at once, but a drone that has left stays booked until it is home" {
	away_drone
	req r-1 | dd-schedule -q --now 2026-11-26T09:00:00Z > out1
	ret=$(jq -r 'select(.type == "delivery.scheduled") | .data.returnEta' out1)
	# 09:59: the drone left at 09:58:08; the package is not on board yet.
	echo '{"op":"cancel","requestId":"r-1","ownerId":"o-1"}' | dd-schedule -q --now 2026-11-26T09:59:00Z > out2
	run jq -r .type out2
	assert_output "$(printf 'drone.released\npackage.removed\ndelivery.cancelled')"
	req r-2 '.pickupTime = "2026-11-26T10:00:00Z"' | dd-schedule -q --now 2026-11-26T09:59:10Z > out3
	dep=$(jq -r 'select(.type == "delivery.scheduled") | .data.departureEta' out3)
	[[ "$dep" > "$ret" ]] || fail "r-2 departs at $dep, before the drone is home at $ret"
	# Before the drone leaves, a cancel frees it at once.
	req r-3 '.pickupTime = "2026-11-26T12:00:00Z" | .deadline = "2026-11-26T13:00:00Z"' | dd-schedule -q --now 2026-11-26T10:30:00Z > out4
	echo '{"op":"cancel","requestId":"r-3","ownerId":"o-1"}' | dd-schedule -q --now 2026-11-26T10:31:00Z > /dev/null
	req r-4 '.pickupTime = "2026-11-26T12:00:00Z" | .deadline = "2026-11-26T13:00:00Z"' | dd-schedule -q --now 2026-11-26T10:32:00Z > out5
	[ "$(jq -r 'select(.type == "delivery.scheduled") | .data.pickupEta' out5)" = 2026-11-26T12:00:00.000Z ]
}

@test "a failed drone stays grounded until it has returned and --inspection has passed, or fleet return" {
	away_drone
	req r-1 | dd-schedule -q > out1
	d1=$(jq -r 'select(.type == "delivery.scheduled") | .subject' out1)
	returned() {
		jq -cn --arg d "$1" --arg t "$2" '{specversion: "1.0", id: ($d + "/returned"),
			source: "/drones/D-1", type: "drone.returned", time: $t, subject: $d,
			data: {droneId: "D-1"}}'
	}
	status "$d1" failed 2026-11-26T10:01:00Z | dd-schedule -q
	# Failed, not back: a request for later today waits for a drone.
	req r-2 '.pickupTime = "2026-11-26T10:30:00Z" | .deadline = "2026-11-26T16:00:00Z"' | dd-schedule -q > out2
	[ "$(jq -r .type out2)" = package.registered ]
	[ "$(dd-schedule stats | jq .waiting)" -eq 1 ]
	# Importing the fleet again keeps the failure.
	dd-schedule -q fleet import away.csv
	# Home at 10:10: the waiting request gets it after the inspection.
	returned "$d1" 2026-11-26T10:10:00Z | dd-schedule -q > out3
	run jq -r 'select(.type == "delivery.scheduled") | .data.departureEta' out3
	assert_output 2026-11-26T11:10:00.000Z
	# Another failure, an operator's return: bookable at once.
	d2=$(jq -r 'select(.type == "delivery.scheduled") | .subject' out3)
	status "$d2" failed 2026-11-26T11:12:00Z | dd-schedule -q
	req r-3 '.pickupTime = "2026-11-26T12:00:00Z" | .deadline = "2026-11-26T16:00:00Z"' | dd-schedule -q > out4
	[ "$(dd-schedule stats | jq .waiting)" -eq 1 ]
	sched out5 fleet return D-1 --now 2026-11-26T11:20:00Z
	assert_success
	run jq -r 'select(.type == "delivery.scheduled") | [.data.requestId, .data.pickupEta] | @tsv' out5
	assert_output "$(printf 'r-3\t2026-11-26T12:00:00.000Z')"
	validate_events out3 out5
	run dd-schedule fleet return D-9
	assert_failure 1
	assert_output --partial "D-9: no such drone in the fleet"
	# --inspection sets the time out after the return, for the runs that
	# book (the policy of each run, applied to the stored return time).
	rm -f "$DD_HOME/schedule.db"*
	away_drone
	req r-1 | dd-schedule -q > out1
	d1=$(jq -r 'select(.type == "delivery.scheduled") | .subject' out1)
	{ status "$d1" failed 2026-11-26T10:01:00Z; returned "$d1" 2026-11-26T10:10:00Z; } | dd-schedule -q --inspection 10m
	req r-2 '.pickupTime = "2026-11-26T10:20:00Z" | .deadline = "2026-11-26T16:00:00Z"' | dd-schedule -q --inspection 10m --now 2026-11-26T10:11:00Z > out6
	run jq -r 'select(.type == "delivery.scheduled") | .data.departureEta' out6
	assert_output 2026-11-26T10:20:00.000Z
}

@test "an impossible deadline is rejected at once, reason deadline, with no package registered" {
	away_drone
	# D-1 flies 10 m/s from 1.1 km away: no dropoff before 10:01:52 for
	# a 10:00 pickup, so a 10:01 deadline cannot be met by any drone.
	{
		req r-1 '.deadline = "2026-11-26T10:01:00Z"'
		req r-2
		# Busy, not impossible: D-1 is booked past its deadline, but an
		# idle D-1 could make it: it waits (first come, first served).
		req r-3 '.deadline = "2026-11-26T10:06:00Z"'
	} > in.ndjson
	sched out.ndjson --window 0 --rejects rej.ndjson < in.ndjson
	assert_success
	assert_output --partial "deadline 1"
	validate_events out.ndjson
	run jq -r 'select(.data.requestId == "r-1") | [.type, .data.reason] | @tsv' out.ndjson
	assert_output "$(printf 'delivery.rejected\tdeadline')"
	run jq -r 'select(.data.packageId == "p-r-1") | .type' out.ndjson
	assert_output ""
	[ ! -s rej.ndjson ]
	# Read back: rejected in the store, no package in dd-package; r-3 waits.
	run dd-schedule list --state rejected --format csv
	assert_line --partial "r-1,o-1,rejected,deadline"
	[ "$(dd-schedule stats | jq -c '[.rejected, .waiting]')" = "[1,1]" ]
	dd-package -q < out.ndjson
	run dd-package get p-r-1
	assert_failure 1
	dd-package get p-r-3 > /dev/null
}

@test "best fit: the smallest drone that can make the deadline takes the package, ties by the earliest pickup" {
	printf 'id,base.lat,base.lon,maxPayloadKg,maxSize,rangeKm,speedMps\n' > mixed.csv
	# D-1, large, at the pickup; D-2 and D-3, small, 1.1 km away (D-3 is
	# slower, so it picks up later when it has to hurry).
	printf 'D-1,47.61,-122.33,25,large,60,10\n' >> mixed.csv
	printf 'D-2,47.60,-122.33,3,small,20,10\n' >> mixed.csv
	printf 'D-3,47.60,-122.33,3,small,20,10\n' >> mixed.csv
	dd-schedule -q fleet import mixed.csv
	{
		req r-1
		req r-2 '.package.size = "large" | .package.weightKg = 20'
		req r-3
		# A small one that only the large drone can still deliver in time.
		req r-4 '.deadline = "2026-11-26T10:06:00Z"'
	} > in.ndjson
	# First come, first served: each takes the best fit free.
	sched out.ndjson --window 0 < in.ndjson
	assert_success
	validate_events out.ndjson
	run jq -r 'select(.type == "delivery.scheduled") | [.data.requestId, .data.droneId, .data.pickupEta] | @tsv' out.ndjson
	assert_line "$(printf 'r-1\tD-2\t2026-11-26T10:00:00.000Z')"
	assert_line "$(printf 'r-2\tD-1\t2026-11-26T10:00:00.000Z')"
	assert_line "$(printf 'r-3\tD-3\t2026-11-26T10:00:00.000Z')"
	# r-4: every drone is out past its 10:06 deadline (the large one
	# until 10:10:44), but an idle one could make it: it waits, not
	# rejected.
	run jq -r 'select(.data.requestId == "r-4" or .data.packageId == "p-r-4") | .type' out.ndjson
	assert_output package.registered
	[ "$(dd-schedule get r-4 | jq -r .state)" = waiting ]
	# In one window (the default) the earliest deadline goes first: r-4
	# gets a small drone in time, and r-3, which has till noon, waits
	# for a small one rather than take the large drone r-2 needs.
	export DD_HOME=$BATS_TEST_TMPDIR/w
	mkdir -p "$DD_HOME"
	dd-schedule -q fleet import mixed.csv
	sched out2.ndjson < in.ndjson
	assert_success
	run jq -r 'select(.type == "delivery.scheduled") | [.data.requestId, .data.droneId, .data.pickupEta] | @tsv' out2.ndjson
	assert_output "$(printf 'r-4\tD-2\t2026-11-26T10:00:00.000Z\nr-1\tD-3\t2026-11-26T10:00:00.000Z\nr-2\tD-1\t2026-11-26T10:00:00.000Z\nr-3\tD-2\t2026-11-26T10:14:27.000Z')"
}

@test "a failed delivery's request gets a new delivery (new id, attempt 2), up to --max-attempts, then compensation" {
	printf 'id,base.lat,base.lon,maxPayloadKg,maxSize,rangeKm,speedMps\n' > two.csv
	printf 'D-1,47.60,-122.33,5,medium,20,10\nD-2,47.60,-122.33,5,medium,20,10\nD-3,47.60,-122.33,5,medium,20,10\n' >> two.csv
	dd-schedule -q fleet import two.csv
	req r-1 | dd-schedule -q > out1
	d1=$(jq -r 'select(.type == "delivery.scheduled") | .subject' out1)
	[ "$(jq -r 'select(.type == "delivery.scheduled") | [.data.droneId, .data.attempt] | @tsv' out1)" = "$(printf 'D-1\t1')" ]
	{ status "$d1" headed-to-pickup 2026-11-26T09:58:10Z; status "$d1" failed 2026-11-26T09:59:00Z; } | dd-schedule -q
	sched out2 supervise --now 2026-11-26T10:05:00Z
	assert_success
	assert_output --partial "1 given another attempt"
	validate_events out2
	run jq -r '[.type, .subject] | @tsv' out2
	[ "${lines[0]}" = "$(printf 'drone.released\t%s' "$d1")" ]
	d2=$(jq -r 'select(.type == "delivery.scheduled") | .subject' out2)
	[ -n "$d2" ] && [ "$d2" != "$d1" ]
	# The same request and package, attempt 2, on another drone (D-1 is grounded).
	jq -s -e 'map(select(.type == "delivery.scheduled")) | length == 1 and (.[0].data
		| .requestId == "r-1" and .ownerId == "o-1" and .attempt == 2
		and .package.packageId == "p-r-1" and .droneId != "D-1")' out2
	jq -s -e --arg d "$d2" 'map(select(.type == "package.registered")) | length == 1
		and .[0].data.deliveryId == $d' out2
	# Each delivery's failure stays final; the package names its new delivery.
	dd-schedule get "$d1" | jq -e '.state == "failed" and .reason == "retried" and .attempt == 1'
	dd-schedule get "$d2" | jq -e '.state == "scheduled" and .attempt == 2'
	dd-package -q < out1
	dd-package -q < out2
	[ "$(dd-package get p-r-1 | jq -r .deliveryId)" = "$d2" ]
	# A replayed supervise changes nothing; the request by its ids is its latest delivery.
	sched again supervise --now 2026-11-26T10:06:00Z
	[ ! -s again ]
	# The second flight fails too: with --max-attempts 2 it is compensated.
	status "$d2" failed 2026-11-26T10:10:00Z "$(jq -r 'select(.type == "delivery.scheduled") | .data.droneId' out2)" | dd-schedule -q
	sched out3 supervise --max-attempts 2 --now 2026-11-26T10:15:00Z
	assert_success
	validate_events out3
	run jq -r '[.type, .subject] | @tsv' out3
	assert_output "$(printf 'drone.released\t%s\npackage.removed\tp-r-1\ndelivery.cancelled\t%s' "$d2" "$d2")"
	dd-package -q < out3
	run dd-package get p-r-1
	assert_failure 1
	[ "$(dd-schedule list --format csv | grep -c r-1)" -eq 2 ]
	# One request, two deliveries.
	dd-schedule stats | jq -e '.requests == 1 and .deliveries == 2 and .scheduled == 1'
	run dd-schedule supervise --max-attempts 0
	assert_failure 2
}

# haversine LAT1 LON1 LAT2 LON2: km, independently of the C code.
haversine() {
	awk -v a="$1" -v b="$2" -v c="$3" -v d="$4" 'BEGIN { r = atan2(0, -1) / 180;
		x = sin((c - a) * r / 2) ^ 2 + cos(a * r) * cos(c * r) * sin((d - b) * r / 2) ^ 2;
		printf "%.6f", 2 * 6371.0088 * atan2(sqrt(x), sqrt(1 - x)) }'
}

@test "utilization: per owner and month of departure, dispatched flights, km of the planned routes, hours booked" {
	away_drone
	{
		req r-1
		req r-2 '.pickupTime = "2026-11-26T11:00:00Z" | .deadline = "2026-11-26T13:00:00Z"'
		# Never dispatched: no flight.
		req r-5 '.pickupTime = "2026-11-26T15:00:00Z" | .deadline = "2026-11-26T17:00:00Z"'
		req r-3 '.ownerId = "o-2" | .pickupTime = "2026-11-30T23:50:00Z" | .deadline = "2026-12-01T02:00:00Z"'
		req r-4 '.ownerId = "o-2" | .pickupTime = "2026-12-01T10:00:00Z" | .deadline = "2026-12-01T12:00:00Z"'
	} > in.ndjson
	dd-schedule -q < in.ndjson > out.ndjson
	jq -r 'select(.type == "delivery.scheduled" and .data.requestId != "r-5")
		| [.subject, .data.pickupTime] | @tsv' out.ndjson > flown
	while IFS=$'\t' read -r d t; do
		status "$d" headed-to-pickup "$t"
	done < flown | dd-schedule -q
	# Expected, from the events: a route of base -> pickup -> dropoff ->
	# base, and departure to return.
	leg=$(awk -v a="$(haversine 47.60 -122.33 47.61 -122.33)" -v b="$(haversine 47.61 -122.33 47.62 -122.33)" \
		-v c="$(haversine 47.62 -122.33 47.60 -122.33)" 'BEGIN { printf "%.6f", a + b + c }')
	hours() {
		jq -r --arg r "$1" 'select(.type == "delivery.scheduled" and (.data.requestId | IN($r | split(",")[])))
			| .data | ((.returnEta | sub("\\.000Z$"; "Z") | fromdate) - (.departureEta | sub("\\.000Z$"; "Z") | fromdate))' \
			out.ndjson | awk '{ s += $1 } END { printf "%.2f", s / 3600 }'
	}
	run dd-schedule utilization
	assert_success
	km2=$(awk -v l="$leg" 'BEGIN { printf "%.1f", 2 * l }')
	km1=$(awk -v l="$leg" 'BEGIN { printf "%.1f", l }')
	[ "${#lines[@]}" -eq 3 ]
	echo "${lines[0]}" | jq -e --argjson km "$km2" --argjson h "$(hours r-1,r-2)" \
		'. == {ownerId: "o-1", month: "2026-11", flights: 2, km: $km, hours: $h}'
	echo "${lines[1]}" | jq -e --argjson km "$km1" --argjson h "$(hours r-3)" \
		'. == {ownerId: "o-2", month: "2026-11", flights: 1, km: $km, hours: $h}'
	echo "${lines[2]}" | jq -e '.ownerId == "o-2" and .month == "2026-12" and .flights == 1'
	run dd-schedule utilization --owner o-2 --month 2026-12 --format tsv
	assert_success
	assert_output "$(printf 'ownerId\tmonth\tflights\tkm\thours\no-2\t2026-12\t1\t%s\t%s' "$km1" "$(hours r-4)")"
	run dd-schedule utilization --month 2026-13
	assert_failure 2
	run dd-schedule utilization --owner nobody
	assert_success
	assert_output ""
}

@test "expedited first: in a window the expedited request takes the first slot; alone it moves a normal booking that has not left, never one on its way" {
	one_drone
	{ req r-1; req r-2 '.expedited = true'; } > in.ndjson
	# In one window (default 5m of request time) r-2 goes first...
	sched out1 < in.ndjson
	assert_success
	run jq -r 'select(.type == "delivery.scheduled") | [.data.requestId, .data.pickupEta] | @tsv' out1
	assert_output "$(printf 'r-2\t2026-11-26T10:00:00.000Z\nr-1\t2026-11-26T10:10:44.000Z')"
	# ... with --window 0, first come, first served (r-2 still makes it).
	export DD_HOME=$BATS_TEST_TMPDIR/w0
	mkdir -p "$DD_HOME"
	one_drone
	sched out2 --window 0 < in.ndjson
	run jq -r 'select(.type == "delivery.scheduled") | [.data.requestId, .data.pickupEta] | @tsv' out2
	assert_output "$(printf 'r-1\t2026-11-26T10:00:00.000Z\nr-2\t2026-11-26T10:10:44.000Z')"
	# An expedited request with no free drone in time takes r-1's place:
	# r-1, not yet left, is released first and moved to a later slot.
	d1=$(jq -r 'select(.type == "delivery.scheduled" and .data.requestId == "r-1") | .subject' out2)
	export DD_HOME=$BATS_TEST_TMPDIR/p
	mkdir -p "$DD_HOME"
	one_drone
	req r-1 | dd-schedule -q > /dev/null
	req r-3 '.expedited = true | .deadline = "2026-11-26T10:08:00Z"' > r3.ndjson
	sched out3 < r3.ndjson
	assert_success
	assert_output --partial "1 expedited took the place of 1 normal"
	validate_events out3
	run jq -r '[.type, (.data.requestId // .subject), .data.reason // "-", .data.pickupEta // "-"] | @tsv' out3
	assert_output "$(printf 'package.registered\tp-r-3\t-\t-
drone.released\t%s\texpedited\t-
delivery.scheduled\tr-3\t-\t2026-11-26T10:00:00.000Z
delivery.rescheduled\t%s\texpedited\t2026-11-26T10:10:44.000Z' "$d1" "$d1")"
	cat out3 | jq -s -e -f "$DD_ROOT/tests/dd-schedule-overlap.jq" | jq -e 'length == 0'
	dd-schedule get "$d1" | jq -e '.state == "scheduled" and .version == 2'
	# A normal delivery on its way (a status came back) is never moved:
	# the next expedited one waits.
	d3=$(jq -r 'select(.type == "delivery.scheduled") | .subject' out3)
	req r-4 '.pickupTime = "2026-11-26T10:20:00Z" | .deadline = "2026-11-26T12:00:00Z"' | dd-schedule -q > out4
	d4=$(jq -r 'select(.type == "delivery.scheduled") | .subject' out4)
	status "$d4" headed-to-pickup 2026-11-26T10:20:30Z | dd-schedule -q
	req r-5 '.expedited = true | .pickupTime = "2026-11-26T10:25:00Z" | .deadline = "2026-11-26T10:33:00Z"' > r5.ndjson
	sched out5 < r5.ndjson
	assert_success
	run jq -r .type out5
	assert_output package.registered
	[ "$(dd-schedule get "$d4" | jq -r .version)" = 1 ]
	[ "$(dd-schedule get r-5 | jq -r .state)" = waiting ]
}

@test "under scarcity the expedited share scheduled is at least the normal share" {
	head -4 "$FLEET" > three.csv
	dd-sim requests -n 120 --seed 3 --rate 600 > in.ndjson
	dd-schedule -q --fleet three.csv < in.ndjson > /dev/null
	# Shares by the store's states, the request's kind by the input.
	dd-schedule list | jq -s -c --slurpfile r in.ndjson '
		($r | map(select(.op == null) | {key: .requestId, value: .expedited}) | from_entries) as $e
		| group_by($e[.requestId]) | map({key: ($e[.[0].requestId] | tostring),
			value: ((map(select(.state == "scheduled")) | length) / length)}) | from_entries' > shares
	cat shares
	jq -e '.true > 0 and .false > 0 and .true >= .false' shares
}
