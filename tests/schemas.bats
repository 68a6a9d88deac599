#!/usr/bin/env bats
# data/schemas/: the schemas themselves are valid draft 2020-12, cover every
# event type of SPEC.md, accept known-good samples and reject known-bad
# ones for the right reason (checked with tests/validate-events, Debian's
# python3-jsonschema).

load common

setup() {
	cd "$BATS_TEST_TMPDIR"
}

# The envelope of a sample event of TYPE with DATA (a JSON object text).
ev() {
	local src=/dd-schedule
	case $1 in drone.released) ;; drone.*) src=/drones/D-0042 ;; esac
	printf '{"specversion":"1.0","id":"e-%s","source":"%s","type":"%s","time":"2026-11-26T03:41:13.123Z","subject":"d-1","datacontenttype":"application/json","data":%s}\n' \
	    "$RANDOM" "$src" "$1" "$2"
}

LOC='{"lat":47.61,"lon":-122.33,"alt":0}'
PKG='{"packageId":"p-1","size":"small","weightKg":2.5,"tag":"books"}'
SCHED='{"deliveryId":"d-1","requestId":"r-1","ownerId":"o-17","pickup":'$LOC',"dropoff":{"lat":47.66,"lon":-122.30,"alt":0},"pickupTime":"2026-11-26T10:00:00Z","deadline":"2026-11-26T12:00:00Z","expedited":false,"confirmationRequired":"None","package":'$PKG',"droneId":"D-0042","pickupEta":"2026-11-26T10:00:00Z","dropoffEta":"2026-11-26T10:25:00Z"}'
REQ='{"requestId":"r-1","ownerId":"o-17","pickup":{"lat":47.61,"lon":-122.33,"alt":0},"dropoff":{"lat":47.66,"lon":-122.30,"alt":0},"pickupTime":"2026-11-26T10:00:00Z","deadline":"2026-11-26T12:00:00Z","expedited":false,"confirmationRequired":"None","package":{"packageId":"p-1","size":"small","weightKg":2.5,"tag":"books"}}'

@test "every schema is a valid draft 2020-12 schema with its own \$id" {
	run validate_events --check-schemas
	assert_success
	for f in "$DD_ROOT"/data/schemas/*.json; do
		name=$(basename "$f" .json)
		run jq -r '."$schema" + " " + ."$id"' "$f"
		assert_output "https://json-schema.org/draft/2020-12/schema urn:dd:schema:$name:1"
	done
}

@test "a broken schema is caught by --check-schemas" {
	cp -r "$DD_ROOT/data/schemas" s
	jq '.properties.data.required = "droneId"' s/drone.position.json > x && mv x s/drone.position.json
	run validate_events --schemas s --check-schemas
	assert_failure 1
	assert_output --partial "drone.position.json"
}

@test "there is a schema for the envelope, the request and every event type of SPEC.md" {
	for t in envelope request delivery.scheduled delivery.rescheduled delivery.cancelled \
	    delivery.rejected delivery.status package.registered package.removed drone.released \
	    drone.dispatched drone.position drone.picked-up drone.delivered drone.failed \
	    drone.returned delivery.refused; do
		[ -f "$DD_ROOT/data/schemas/$t.json" ] || fail "no schema for $t"
	done
}

@test "known-good events validate" {
	{
		ev delivery.scheduled "$SCHED"
		ev delivery.rescheduled '{"deliveryId":"d-1","reason":"weather","droneId":"D-7","pickupEta":"2026-11-26T11:00:00+01:00"}'
		ev delivery.rescheduled '{"deliveryId":"d-1","reason":"address","dropoff":{"lat":47.7,"lon":-122.3}}'
		ev delivery.cancelled '{"deliveryId":"d-1","reason":"customer-request"}'
		ev delivery.rejected '{"requestId":"r-1","reason":"no-drone"}'
		ev delivery.rejected '{"requestId":"r-1","reason":"deadline","deliveryId":"d-1"}'
		ev delivery.status '{"deliveryId":"d-1","stage":"created","previousStage":null,"droneId":"D-1","location":null,"pickupEta":"2026-11-26T10:00:00Z","dropoffEta":null}'
		ev delivery.status '{"deliveryId":"d-1","stage":"headed-to-dropoff","previousStage":"headed-to-pickup","droneId":"D-1","location":'$LOC',"pickupEta":"2026-11-26T10:00:00Z","dropoffEta":"2026-11-26T10:20:00Z"}'
		ev package.registered '{"packageId":"p-1","ownerId":"o-17","deliveryId":"d-1","size":"large","weightKg":14,"tag":"tools"}'
		ev package.removed '{"packageId":"p-1","reason":"compensation"}'
		ev drone.released '{"droneId":"D-1","deliveryId":"d-1","reason":"compensation"}'
		ev drone.dispatched '{"droneId":"D-0042","location":'$LOC',"battery":1}'
		ev drone.dispatched '{"droneId":"D-0042"}'
		ev drone.position '{"droneId":"D-0042","location":{"lat":-33.9,"lon":151.2,"alt":120.5},"speedMps":14.2,"battery":0.73}'
		ev drone.picked-up '{"droneId":"D-0042","location":'$LOC'}'
		ev drone.delivered '{"droneId":"D-0042","confirmation":"FingerPrint"}'
		ev drone.failed '{"droneId":"D-0042","reason":"motor-fault"}'
		ev drone.returned '{"droneId":"D-0042","battery":0.2}'
		# Extension attributes and traceparent pass; any RFC 3339 offset and fraction.
		echo '{"specversion":"1.0","id":"x","source":"/drones/D-1","type":"drone.returned","time":"2026-11-26T03:41:13.123456789-08:00","subject":"d-1","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","partitionkey":"d-1","data":{"droneId":"D-1"}}'
		echo '{"specversion":"1.0","id":"x","source":"/drones/D-1","type":"drone.returned","time":"2026-11-26t03:41:13z","subject":"d-1","data":{"droneId":"D-1"}}'
	} > good.ndjson
	run validate_events good.ndjson
	assert_success
	# Another's type passes with --allow-unknown only.
	echo '{"specversion":"1.0","id":"x","source":"/shop","type":"com.example.order","time":"2026-11-26T03:41:13Z","data":{}}' > other.ndjson
	run validate_events other.ndjson
	assert_failure 1
	assert_output --partial 'unknown type "com.example.order"'
	run validate_events --allow-unknown other.ndjson
	assert_success
}

# rejected_each [VALIDATE-OPTION...] < WANT|LINE...: each LINE is invalid,
# its message holding WANT. One validate-events run checks them all (a
# line's verdict depends on that line alone), then each line's message
# (FILE:N: ...) is looked up by its number.
rejected_each() {
	local want=() want1 line i msg
	while IFS='|' read -r want1 line; do
		want+=("$want1")
		printf '%s\n' "$line"
	done > each.ndjson
	run validate_events --all "$@" each.ndjson
	[ "$status" -eq 1 ] || fail "validate-events exited $status: $output"
	for i in "${!want[@]}"; do
		msg=$(grep -F "each.ndjson:$((i + 1)): " <<< "$output") ||
			fail "accepted: $(sed -n "$((i + 1))p" each.ndjson)"
		[[ "$msg" == *"${want[$i]}"* ]] ||
			fail "for $(sed -n "$((i + 1))p" each.ndjson): wanted '${want[$i]}', got: $msg"
	done
}

@test "known-bad events are rejected for the right reason" {
	rejected_each <<-EOF
	'specversion' is a required property|{"id":"x","source":"/s","type":"drone.returned","time":"2026-11-26T03:41:13Z","subject":"d","data":{"droneId":"D"}}
	'1.0' was expected|{"specversion":"0.3","id":"x","source":"/s","type":"t.x","time":"2026-11-26T03:41:13Z","data":{}}
	id: 12 is not of type 'string'|{"specversion":"1.0","id":12,"source":"/s","type":"t.x","time":"2026-11-26T03:41:13Z","data":{}}
	id: '' is too short|{"specversion":"1.0","id":"","source":"/s","type":"t.x","time":"2026-11-26T03:41:13Z","data":{}}
	is too long|{"specversion":"1.0","id":"$(printf 'i%.0s' {1..129})","source":"/s","type":"t.x","time":"2026-11-26T03:41:13Z","data":{}}
	longer than 128 bytes|{"specversion":"1.0","id":"$(printf 'é%.0s' {1..65})","source":"/s","type":"t.x","time":"2026-11-26T03:41:13Z","data":{}}
	time: '2026-13-45T99:00:00Z'|{"specversion":"1.0","id":"x","source":"/s","type":"t.x","time":"2026-13-45T99:00:00Z","data":{}}
	is not a 'date-time'|{"specversion":"1.0","id":"x","source":"/s","type":"t.x","time":"2026-02-30T10:00:00Z","data":{}}
	time: 'yesterday'|{"specversion":"1.0","id":"x","source":"/s","type":"t.x","time":"yesterday","data":{}}
	time: '2026-11-26T03:41:13'|{"specversion":"1.0","id":"x","source":"/s","type":"t.x","time":"2026-11-26T03:41:13","data":{}}
	data: [] is not of type 'object'|{"specversion":"1.0","id":"x","source":"/s","type":"t.x","time":"2026-11-26T03:41:13Z","data":[]}
	'data' is a required property|{"specversion":"1.0","id":"x","source":"/s","type":"t.x","time":"2026-11-26T03:41:13Z"}
	'subject' is a required property|{"specversion":"1.0","id":"x","source":"/drones/D","type":"drone.returned","time":"2026-11-26T03:41:13Z","data":{"droneId":"D"}}
	source: '/dd-track' does not match|{"specversion":"1.0","id":"x","source":"/dd-track","type":"drone.returned","time":"2026-11-26T03:41:13Z","subject":"d","data":{"droneId":"D"}}
	is not a 'uri-reference'|{"specversion":"1.0","id":"x","source":"/a b","type":"t.x","time":"2026-11-26T03:41:13Z","data":{}}
	is not a 'uri-reference'|{"specversion":"1.0","id":"x","source":"/drones/D%2","type":"t.x","time":"2026-11-26T03:41:13Z","data":{}}
	is not a 'uri-reference'|{"specversion":"1.0","id":"x","source":"/drones/é","type":"t.x","time":"2026-11-26T03:41:13Z","data":{}}
	'droneId' is a required property|{"specversion":"1.0","id":"x","source":"/drones/D","type":"drone.returned","time":"2026-11-26T03:41:13Z","subject":"d","data":{}}
	battery: 1.5 is greater than the maximum|{"specversion":"1.0","id":"x","source":"/drones/D","type":"drone.position","time":"2026-11-26T03:41:13Z","subject":"d","data":{"droneId":"D","location":{"lat":1,"lon":2},"speedMps":3,"battery":1.5}}
	lat: 91 is greater than the maximum|{"specversion":"1.0","id":"x","source":"/drones/D","type":"drone.position","time":"2026-11-26T03:41:13Z","subject":"d","data":{"droneId":"D","location":{"lat":91,"lon":2},"speedMps":3,"battery":0.5}}
	lat: '47.6' is not of type 'number'|{"specversion":"1.0","id":"x","source":"/drones/D","type":"drone.position","time":"2026-11-26T03:41:13Z","subject":"d","data":{"droneId":"D","location":{"lat":"47.6","lon":2},"speedMps":3,"battery":0.5}}
	'confirmation' is a required property|{"specversion":"1.0","id":"x","source":"/drones/D","type":"drone.delivered","time":"2026-11-26T03:41:13Z","subject":"d","data":{"droneId":"D"}}
	'Retina' is not one of|{"specversion":"1.0","id":"x","source":"/drones/D","type":"drone.delivered","time":"2026-11-26T03:41:13Z","subject":"d","data":{"droneId":"D","confirmation":"Retina"}}
	'droneId' is a required property|{"specversion":"1.0","id":"x","source":"/dd-schedule","type":"delivery.scheduled","time":"2026-11-26T03:41:13Z","subject":"d-1","data":$(echo "$SCHED" | jq -c 'del(.droneId)')}
	'gigantic' is not one of|{"specversion":"1.0","id":"x","source":"/dd-schedule","type":"delivery.scheduled","time":"2026-11-26T03:41:13Z","subject":"d-1","data":$(echo "$SCHED" | jq -c '.package.size = "gigantic"')}
	weightKg: 0 is less than or equal to the minimum|{"specversion":"1.0","id":"x","source":"/dd-schedule","type":"package.registered","time":"2026-11-26T03:41:13Z","subject":"p-1","data":{"packageId":"p-1","ownerId":"o","deliveryId":"d","size":"small","weightKg":0}}
	'flying' is not one of|{"specversion":"1.0","id":"x","source":"/dd-track","type":"delivery.status","time":"2026-11-26T03:41:13Z","subject":"d-1","data":{"deliveryId":"d-1","stage":"flying"}}
	'reason' is a required property|{"specversion":"1.0","id":"x","source":"/dd-schedule","type":"delivery.cancelled","time":"2026-11-26T03:41:13Z","subject":"d-1","data":{"deliveryId":"d-1"}}
	'reason' is a required property|{"specversion":"1.0","id":"x","source":"/dd-schedule","type":"delivery.rescheduled","time":"2026-11-26T03:41:13Z","subject":"d-1","data":{"deliveryId":"d-1","droneId":"D-2"}}
	duplicate key "id"|{"specversion":"1.0","id":"x","id":"y","source":"/s","type":"t.x","time":"2026-11-26T03:41:13Z","data":{}}
	NaN is not JSON|{"specversion":"1.0","id":"x","source":"/s","type":"t.x","time":"2026-11-26T03:41:13Z","data":{"v":NaN}}
	not a JSON object|[{"specversion":"1.0"}]
	not JSON|{"specversion":"1.0",
	EOF
	# Bytes and sizes.
	printf '{"specversion":"1.0","id":"\xff","source":"/s","type":"t.x","time":"2026-11-26T03:41:13Z","data":{}}\n' > bad.ndjson
	printf '\n' >> bad.ndjson
	{ printf '{"specversion":"1.0","id":"x","source":"/s","type":"t.x","time":"2026-11-26T03:41:13Z","data":{"pad":"'; head -c 1100000 /dev/zero | tr '\0' x; printf '"}}\n'; } >> bad.ndjson
	run validate_events --allow-unknown bad.ndjson
	assert_failure 1
	assert_line "bad.ndjson:1: invalid UTF-8 at byte 28"
	assert_line "bad.ndjson:2: empty line"
	assert_line --partial "bad.ndjson:3: line too long"
	run validate_events --allow-unknown --max-line 2M bad.ndjson
	assert_failure 2
	run validate_events --allow-unknown --max-line 2000000 <(sed -n 3p bad.ndjson)
	assert_success
}

@test "known-good requests validate: plain, ops by delivery or by request, the reference's shape" {
	{
		echo "$REQ"
		echo "$REQ" | jq -c 'del(.expedited, .confirmationRequired, .package.tag)'
		echo "$REQ" | jq -c '.pickupTime = "2026-11-26T10:00:00.5+05:30"'
		echo '{"op":"cancel","deliveryId":"d-1"}'
		echo '{"op":"cancel","requestId":"r-1","ownerId":"o-17","reason":"customer-request"}'
		echo '{"op":"reschedule","deliveryId":"d-1","pickupTime":"2026-11-26T11:00:00Z","reason":"late"}'
		echo '{"op":"reschedule","requestId":"r-1","ownerId":"o-17","dropoff":{"lat":47.7,"lon":-122.3,"alt":0}}'
		echo '{"deliveryId":"0d3e5a1b","ownerId":"o-1","pickupLocation":"0,36.778261,-119.41793200000001","dropOffLocation":"0,36.7,-119.4","pickupTime":"2026-11-26T10:00:00Z","deadline":"LinqPad","expedited":true,"confirmationRequired":"FingerPrint","packageInfo":{"packageId":"p","size":"Small","weight":"14","tag":"t"}}'
	} > good.ndjson
	run validate_events --requests good.ndjson
	assert_success
}

@test "known-bad requests are rejected for the right reason" {
	while IFS='|' read -r want jqexpr; do
		echo "$want|$(echo "$REQ" | jq -c "$jqexpr")"
	done <<-'EOF' | rejected_each --requests
	'requestId' is a required property|del(.requestId)
	'pickup' is a required property|del(.pickup)
	'package' is a required property|del(.package)
	pickup/lat: '47.61' is not of type 'number'|.pickup.lat = "47.61"
	dropoff/lon: -200 is less than the minimum|.dropoff.lon = -200
	package/weightKg: '14' is not of type 'number'|.package.weightKg = "14"
	package/weightKg: -1 is less than or equal to the minimum|.package.weightKg = -1
	package/size: 'Huge' is not one of|.package.size = "Huge"
	confirmationRequired: 'Retina' is not one of|.confirmationRequired = "Retina"
	pickupTime: '2026-13-45T99:00:00Z'|.pickupTime = "2026-13-45T99:00:00Z"
	deadline: 'yesterday'|.deadline = "yesterday"
	expedited: 'yes' is not of type 'boolean'|.expedited = "yes"
	requestId: 17 is not of type 'string'|.requestId = 17
	op: 'delete' is not one of|{op: "delete", deliveryId: "d-1"}
	is not valid under any of the given schemas|{op: "cancel", reason: "x"}
	is not valid under any of the given schemas|{op: "reschedule", requestId: "r-1"}
	pickupTime: 'soon' is not a 'date-time'|{op: "reschedule", deliveryId: "d-1", pickupTime: "soon"}
	'dropOffLocation' is a required property|del(.package) | .pickupLocation = "0,1,2"
	pickupLocation: 'my pickup' does not match|{ownerId: "o", pickupLocation: "my pickup", dropOffLocation: "0,1,2", pickupTime: "2026-11-26T10:00:00Z", deadline: "x", packageInfo: {packageId: "p", size: "Small"}}
	EOF
}

@test "validate-events: usage, files and messages" {
	echo '{}' > a.ndjson
	run validate_events --nope
	assert_failure 2
	run validate_events missing.ndjson
	assert_failure 2
	assert_output --partial "missing.ndjson"
	run validate_events --max-line
	assert_failure 2
	run validate_events a.ndjson
	assert_failure 1
	assert_line --partial "a.ndjson:1: envelope: "
	# Many bad lines: the first 50 are shown, then a count, unless --all.
	for i in $(seq 60); do echo '[]'; done > many.ndjson
	run validate_events many.ndjson
	assert_failure 1
	[ "$(grep -c '^many.ndjson:' <<< "$output")" -eq 50 ]
	assert_line "validate-events: 60 of 60 lines invalid"
	run validate_events --all many.ndjson
	[ "$(grep -c '^many.ndjson:' <<< "$output")" -eq 60 ]
	# CRLF line ends are tolerated; stdin is "stdin".
	printf '%s\r\n' "$(ev drone.returned '{"droneId":"D"}')" > crlf.ndjson
	run validate_events crlf.ndjson
	assert_success
	run validate_events < a.ndjson
	assert_line --partial "stdin:1:"
}
