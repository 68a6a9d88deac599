# Loaded by the dd-schedule*.bats files: requests, fleets and runs of the
# scheduler, small enough to read.

FLEET="$DD_ROOT/data/fleet.csv"

setup() {
	cd "$BATS_TEST_TMPDIR"
}

# req ID [JQ]: one request in SPEC's shape, edited by the jq expression.
req() {
	jq -cn --arg id "$1" '{requestId: $id, ownerId: "o-1",
		pickup: {lat: 47.61, lon: -122.33, alt: 0},
		dropoff: {lat: 47.62, lon: -122.33, alt: 0},
		pickupTime: "2026-11-26T10:00:00Z", deadline: "2026-11-26T12:00:00Z",
		expedited: false, confirmationRequired: "None",
		package: {packageId: ("p-" + $id), size: "small", weightKg: 2.5, tag: "books"}}
		| '"${2:-.}"
}

# A fleet of one drone based at the pickup of req's requests: 10 m/s, so
# a delivery there keeps it busy 10 min 44 s (approach 0, 112 s each way,
# a minute of handling at each end, 5 min turnaround).
one_drone() {
	printf 'id,base.lat,base.lon,maxPayloadKg,maxSize,rangeKm,speedMps\n' > one.csv
	for i in $(seq "${1:-1}"); do
		printf 'D-%d,47.61,-122.33,5,medium,20,10\n' "$i" >> one.csv
	done
	dd-schedule -q fleet import one.csv
}

# sched OUT ARGS...: run dd-schedule with its events in OUT and its
# messages in OUT.err (kept apart: a message may land inside a line of
# output when both go to one pipe); $status and $output (the messages).
sched() {
	local out=$1
	shift
	status=0
	dd-schedule "$@" > "$out" 2> "$out.err" || status=$?
	output=$(cat "$out.err")
}

# of_type FILE TYPE: the subjects of the events of a type, sorted.
of_type() {
	jq -r --arg t "$2" 'select(.type == $t) | .subject' "$1" | sort
}
