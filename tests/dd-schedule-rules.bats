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
