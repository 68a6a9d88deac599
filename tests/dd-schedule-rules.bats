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
