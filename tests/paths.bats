#!/usr/bin/env bats
# Path safety: no input value (dataset names, ids, subjects, types,
# owners, drone ids, times) can make a program write outside its store or
# its lake. Every program runs in a sandbox, and `find` shows what each
# one created: only the store files under DD_HOME, and partitions named
# LAKE/DATASET/year=YYYY/month=MM/day=DD.

load common
bats_require_minimum_version 1.5.0

setup() {
	# The sandbox: a work directory three levels down, so "../x" and
	# "../../x" from the lake or the work directory land in it.
	S=$BATS_TEST_TMPDIR/sandbox
	mkdir -p "$S/a/b/work"
	cd "$S/a/b/work"
	export DD_HOME=$S/a/b/work/home
	TOKEN=ddpwn-$$-$RANDOM
	touch "$BATS_TEST_TMPDIR/marker"
	sleep 0.01
}

# Nothing new outside DD_HOME (and the files the test names), nothing
# with the token anywhere a traversal could reach, and in the lake only
# partitions and parts.
confined() {
	local extra
	extra=$(find "$S" -newer "$BATS_TEST_TMPDIR/marker" ! -path "$DD_HOME" \
		! -path "$DD_HOME/*" ! -path "$S/a/b/work" "$@" -print)
	[ -z "$extra" ] || { echo "created outside DD_HOME: $extra"; return 1; }
	extra=$( (find / /tmp /root /var/tmp -maxdepth 4 -xdev -name "*$TOKEN*";
		find "$S" -name "*$TOKEN*") 2>/dev/null)
	[ -z "$extra" ] || { echo "created by a traversal: $extra"; return 1; }
	if [ -d "$DD_HOME/lake" ]; then
		extra=$(cd "$DD_HOME/lake" && find . -mindepth 1 | grep -Ev \
		    '^\./[A-Za-z0-9][A-Za-z0-9._-]*(/year=[0-9]{4}(/month=(0[1-9]|1[0-2])(/day=(0[1-9]|[12][0-9]|3[01])(/_?part-[0-9]{8}T[0-9]{6}\.[0-9]{9}Z-[0-9a-f]{16}(~[0-9]{6})?\.(ndjson\.zst|meta))?)?)?)?$' || true)
		[ -z "$extra" ] || { echo "in the lake, not a partition or part: $extra"; return 1; }
	fi
}

# One event line: ev ID SUBJECT TYPE TIME [DATA]; the strings are JSON
# string contents (escapes allowed).
ev() {
	printf '{"specversion":"1.0","id":"%s","source":"/x","type":"%s","time":"%s","subject":"%s","data":%s}\n' \
	    "$1" "$3" "$4" "$2" "${5:-{\}}"
}

@test "--dataset: names that could leave the lake are usage errors (exit 2), and nothing is created" {
	local names=("../$TOKEN" "../../$TOKEN" "/tmp/$TOKEN" "/$TOKEN" ".." "." "" "a/b"
	    "events/../../$TOKEN" ".$TOKEN" "_$TOKEN" "-$TOKEN" $'a\nb' $'\x01x' $'\x7f'
	    "é" "a b" "*" "x\\y" "%2e%2e" "\\u0000" "$(printf 'x%.0s' {1..65})")
	for d in "${names[@]}"; do
		for cmd in "dd-lake-ingest -q" "dd-lake-query" "dd-lake-query --partitions" \
		    "dd-archive --now 2027-01-15"; do
			run $cmd --dataset "$d" < /dev/null
			refute_sanitizer
			[ "$status" -eq 2 ] || fail "$cmd --dataset '$d': exit $status: $output"
			assert_output --partial -- "--dataset: "
		done
	done
	[ ! -e "$DD_HOME/lake" ]
	[ ! -e "$DD_HOME/history.db" ]
	confined
	# The longest and the oddest names allowed stay inside the lake.
	for d in "$(printf 'x%.0s' {1..64})" "a..b" "A-1.2_z"; do
		ev "id-$d" s t 2026-11-01T00:00:00Z | dd-lake-ingest -q --dataset "$d"
		[ -d "$DD_HOME/lake/$d/year=2026/month=11/day=01" ]
		run dd-lake-query --dataset "$d" --count
		assert_output 1
	done
}

@test "ids, subjects, types and owners with '/', '..', NUL and odd bytes stay data: every filter keeps to its store" {
	local bad=("../../$TOKEN" "/tmp/$TOKEN" ".." "." "a/../../$TOKEN" "\\u0000$TOKEN"
	    "$TOKEN\\u0000/../x" "..\\\\..\\\\$TOKEN" "%2e%2e%2f$TOKEN" "\\n$TOKEN" "é/$TOKEN")
	local i=0
	for s in "${bad[@]}"; do
		i=$((i + 1))
		ev "$s" "$s" "$s" 2026-11-01T00:00:0$((i % 10))Z
		ev "id$i-$s" "$s" drone.position 2026-11-01T00:01:00Z \
		    "{\"droneId\":\"$s\",\"location\":{\"lat\":1,\"lon\":2,\"alt\":0},\"speedMps\":1,\"battery\":0.5}"
		ev "p$i-$s" "$s" package.registered 2026-11-01T00:02:00Z \
		    "{\"packageId\":\"$s\",\"ownerId\":\"$s\",\"deliveryId\":\"$s\",\"size\":\"small\",\"weightKg\":1,\"tag\":\"$s\"}"
		ev "c$i-$s" "$s" delivery.cancelled 2026-11-01T00:03:00Z \
		    "{\"deliveryId\":\"$s\",\"reason\":\"$s\"}"
	done > in
	# Valid JSON, every line (the filters judge the rest).
	jq -e . in > /dev/null
	run dd-track < in > /dev/null
	refute_sanitizer
	run dd-package < in
	refute_sanitizer
	[ "$(dd-package list | wc -l)" -gt 0 ]
	run dd-history < in
	refute_sanitizer
	run dd-lake-ingest < in
	refute_sanitizer
	assert_success
	[ "$(dd-lake-query --count)" -eq "$(wc -l < in)" ]
	run dd-archive --now 2027-01-15
	refute_sanitizer
	# Requests whose ids and owners are paths.
	for s in "${bad[@]}"; do
		printf '{"requestId":"%s","ownerId":"%s","pickup":{"lat":47.61,"lon":-122.33},"dropoff":{"lat":47.62,"lon":-122.32},"pickupTime":"2026-11-01T10:00:00Z","deadline":"2026-11-01T12:00:00Z","package":{"packageId":"%s","size":"small","weightKg":1,"tag":"%s"}}\n' \
		    "$s" "$s" "$s" "$s"
	done > req
	jq -e . req > /dev/null
	run dd-schedule --fleet "$DD_ROOT/data/fleet.csv" < req
	refute_sanitizer
	[ "$status" -le 1 ]
	[ "$(dd-schedule list | jq -s 'map(select(.state == "scheduled")) | length')" -ge 8 ]
	# Drones with such ids fly (their id goes into source, encoded).
	printf 'id,base.lat,base.lon,maxPayloadKg,maxSize,rangeKm,speedMps\n"../../%s",47.61,-122.33,10,large,90,15\n' \
	    "$TOKEN" > fleet.csv
	rc=0
	dd-schedule -q --db other.db --fleet fleet.csv < req > sched 2> /dev/null || rc=$?
	[ "$rc" -le 1 ]
	grep -q "\"droneId\":\"../../$TOKEN\"" sched
	dd-sim fly -q < sched > flown
	run validate_events flown
	assert_success
	run dd-track -q --db other-track.db < flown > /dev/null
	refute_sanitizer
	confined ! -path "$S/a/b/work/other*" ! -path "$S/a/b/work/fleet.csv" \
	    ! -path "$S/a/b/work/in" ! -path "$S/a/b/work/req" ! -path "$S/a/b/work/sched" \
	    ! -path "$S/a/b/work/flown"
}

@test "times far in the past and future land in a partition of the lake, or are refused" {
	for t in 0000-01-01T00:00:00Z 0001-01-01T00:00:00Z 1969-12-31T23:59:59.999Z \
	    1970-01-01T00:00:00Z 2026-11-01T23:59:59.999-23:59 2026-11-01T00:00:00+23:59 \
	    9999-12-31T23:59:59.999Z 9999-12-31T23:59:60Z 2026-02-29T00:00:00Z \
	    +2026-11-01T00:00:00Z -0001-01-01T00:00:00Z 10000-01-01T00:00:00Z \
	    "2026-11-01T00:00:00Z/../../$TOKEN" "../../$TOKEN"; do
		ev "t-$t" s x.far "$t"
	done > in
	run --separate-stderr dd-lake-ingest --rejects rj < in
	refute_sanitizer
	assert_failure 1
	[ -f rj ]
	# What went in is what the lake gives back, in the partition of its
	# time in UTC.
	dd-lake-query --fields time,id --format tsv | tail -n +2 | sort > got
	[ "$(wc -l < got)" -eq $(($(wc -l < in) - $(wc -l < rj))) ]
	[ -d "$DD_HOME/lake/events/year=0000/month=01/day=01" ]
	[ -d "$DD_HOME/lake/events/year=1969/month=12/day=31" ]
	[ -d "$DD_HOME/lake/events/year=2026/month=11/day=02" ]
	[ -d "$DD_HOME/lake/events/year=2026/month=10/day=31" ]
	# A delivery of year 1 and one of 1969 go through history, then the
	# archive, into their partitions.
	dd-sim requests -n 1 --seed 3 | dd-schedule -q --db s.db --fleet "$DD_ROOT/data/fleet.csv" |
		jq -c 'select(.type == "delivery.scheduled")' > one
	for y in 0001 1969; do
		jq -c --arg y $y '.id = "s-\($y)" | .time = "\($y)-01-01T00:00:00Z" |
		    .subject = "d-\($y)" | .data.deliveryId = "d-\($y)"' one
		jq -c --arg y $y '.id = "c-\($y)" | .time = "\($y)-01-01T01:00:00Z" |
		    .type = "delivery.cancelled" | .dataschema = "urn:dd:schema:delivery.cancelled:1" | .subject = "d-\($y)" |
		    .data = {deliveryId: "d-\($y)", reason: "test"}' one
	done > far
	dd-history -q < far
	[ "$(dd-history list | wc -l)" -eq 2 ]
	run dd-archive --now 2027-01-15
	refute_sanitizer
	assert_success
	[ "$(jq .deliveriesArchived <<< "$output")" -eq 2 ]
	[ "$(dd-lake-query --since 0001-01-01 --until 0001-01-02 --type delivery.cancelled --count)" -eq 1 ]
	[ "$(dd-lake-query --since 1969-01-01 --until 1969-01-02 --count)" -eq 2 ]
	run dd-track < far
	refute_sanitizer
	assert_success
	confined ! -path "$S/a/b/work/in" ! -path "$S/a/b/work/rj" ! -path "$S/a/b/work/got" \
	    ! -path "$S/a/b/work/s.db*" ! -path "$S/a/b/work/one" ! -path "$S/a/b/work/far"
}
