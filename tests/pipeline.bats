#!/usr/bin/env bats
# The whole system, wired as scripts/pipeline wires it (the demo's
# wiring), checked by scripts/reconcile: after a clean run, after runs
# where every stage is killed with SIGKILL and replayed from the start of
# its input, and with duplicated and reordered telemetry. A fleet of 8
# drones for 200 requests, so that items wait, get drones late, are
# rejected at their deadline and compensated, as well as flown.

load common

# The run every test compares with, made once: streamed, no faults.
setup_file() {
	export FLEET=$BATS_FILE_TMPDIR/fleet.csv
	head -n 9 "$DD_ROOT/data/fleet.csv" > "$FLEET"
	local home=$BATS_FILE_TMPDIR/clean
	DD_HOME=$home pipeline day
	cp -a "$home" "$BATS_FILE_TMPDIR/clean.day"
	DD_HOME=$home pipeline feedback supervise feedback
	cp -a "$home" "$BATS_FILE_TMPDIR/clean.run"
	snapshot "$home" "$BATS_FILE_TMPDIR/snap.run"
	DD_HOME=$home pipeline archive
	snapshot "$home" "$BATS_FILE_TMPDIR/snap.archived"
}

pipeline() {
	"$DD_ROOT/scripts/pipeline" -n 200 --seed 7 --fleet "$FLEET" "$@"
}

snapshot() {
	"$DD_ROOT/tests/pipeline/snapshot" "$@"
}

# reconcile HOME [ARGS]: the check, with the run's requests and rejects.
reconcile() {
	local home=$1; shift
	run "$DD_ROOT/scripts/reconcile" --home "$home" --requests "$home/work/requests.ndjson" \
		--rejects "$home/work/rejects.ndjson" "$@"
}

# same A B [DIFF-OPTION...]: two snapshots are equal (the first
# differences shown if not).
same() {
	run bash -c 'diff -r "$@" | head -n 40; exit "${PIPESTATUS[0]}"' _ "$@"
	assert_success
}

# The outcome counts reconcile printed.
counts() {
	sed -n 's/^ok   requests: \([0-9]*\) = \([0-9]*\) scheduled + \([0-9]*\) rejected + \([0-9]*\) waiting$/\1 \2 \3 \4/p' <<< "$output"
}

@test "clean run: reconcile holds after the day, after feedback and supervision, after archiving" {
	reconcile "$BATS_FILE_TMPDIR/clean.day"
	assert_success
	refute_output --partial FAIL
	assert_line --regexp '^ok   outcomes: each of 200 work items'
	# The day leaves items waiting for a drone.
	read -r req sch rej wait <<< "$(counts)"
	[ "$req" -eq 200 ] && [ "$sch" -gt 0 ] && [ "$wait" -gt 0 ]

	reconcile "$BATS_FILE_TMPDIR/clean.run"
	assert_success
	refute_output --partial FAIL
	# Supervision rejected those whose deadline passed, and compensated.
	read -r req sch rej wait <<< "$(counts)"
	[ "$req" -eq 200 ] && [ "$rej" -gt 50 ] && [ "$wait" -eq 0 ]
	assert_line --regexp '^ok   packages: [1-9][0-9]+ packages of rejected or cancelled deliveries removed'
	assert_line --regexp '^ok   history: [1-9][0-9]+ ended deliveries held by both'

	# A month later everything ended is in the lake only, once.
	reconcile "$BATS_FILE_TMPDIR/clean" --compacted
	assert_success
	refute_output --partial FAIL
	assert_line --regexp '^ok   tracked: .* 0 ended in dd-history, [1-9][0-9]* ended in the lake$'
	assert_line --regexp '^ok   lake ids: [0-9]+ events, no id stored twice after compaction$'
	assert_line --regexp '^ok   lake counts: [1-9][0-9]* days: the counts the metadata gives equal'
}

@test "reconcile: a part falsely marked unique (it holds copies) fails the lake counts" {
	local home=$BATS_TEST_TMPDIR/forged
	cp -a "$BATS_FILE_TMPDIR/clean.run" "$home"
	part=$(find "$home/lake/events" -name 'part-*.ndjson.zst' | sort | head -1)
	dir=$(dirname "$part")
	zstdcat "$part" | head -5 | DD_HOME=$home dd-lake-ingest -q
	reconcile "$home"
	assert_success
	# Every part of that day now claims to have checked all the others.
	names=$(cd "$dir" && ls part-*.ndjson.zst | jq -R . | jq -s -c .)
	for m in "$dir"/_part-*.meta; do
		{ head -1 "$m" | jq -c --argjson n "$names" '.unique = true | .checked = ($n - [.part])'
		  tail -n +2 "$m"; } > "$m.new"
		mv "$m.new" "$m"
	done
	reconcile "$home"
	assert_failure
	assert_line --regexp '^FAIL lake counts: days whose de-duplicated count differs from their distinct ids \(2\)'
}

@test "archive before feedback and supervision: reconcile holds at every point, one record per delivery" {
	local home=$BATS_TEST_TMPDIR/early
	# (the day is the clean run's, made once in setup_file)
	cp -a "$BATS_FILE_TMPDIR/clean.day" "$home"
	DD_HOME=$home pipeline archive
	reconcile "$home"
	assert_success
	refute_output --partial FAIL
	assert_line --regexp '^ok   view: [1-9][0-9]* summaries in the deliveries view'
	for step in feedback supervise feedback; do
		DD_HOME=$home pipeline "$step"
		reconcile "$home"
		assert_success
		refute_output --partial FAIL
		# No partial record: every delivery dd-history holds has a
		# beginning (it was scheduled or rejected there).
		run bash -c 'DD_HOME=$1 dd-history list | jq -r "select(.requestId == null) | .deliveryId"' _ "$home"
		assert_output ""
	done
	# And a second archive puts the rest in the lake, the view with it.
	DD_HOME=$home pipeline archive
	reconcile "$home" --compacted
	assert_success
	refute_output --partial FAIL
}

@test "clean run: streamed and staged through files, the stores end the same" {
	DD_HOME=$BATS_TEST_TMPDIR/staged pipeline --staged day feedback supervise feedback
	snapshot "$BATS_TEST_TMPDIR/staged" "$BATS_TEST_TMPDIR/snap"
	same "$BATS_FILE_TMPDIR/snap.run" "$BATS_TEST_TMPDIR/snap"
}

# kill_round SEED: every stage killed at random and replayed; the final
# state is the clean run's, before and after the archive (also killed;
# the snapshot counts the copies in the lake, so a duplicate left after
# compaction shows).
kill_round() {
	local home=$BATS_TEST_TMPDIR/killed
	DD_HOME=$home pipeline --kill "$1" day feedback supervise feedback
	# Every stage that had input was killed at least once: the scheduler
	# and the five after it for the day and for the supervisor's stream,
	# the scheduler for each feedback that had statuses to feed, and the
	# five after it when it had something to say (a freed drone took a
	# waiting item, a held cancel was refused).
	local f n want="day.fly day.history day.lake day.package day.schedule day.track"
	for f in "$home"/work/feedback*.in; do
		n=$(basename "$f" .in)
		[ ! -s "$f" ] || want="$want $n.schedule"
		[ ! -s "$home/work/$n.sched" ] || want="$want $n.fly $n.history $n.lake $n.package $n.track"
	done
	want="$want supervise1.fly supervise1.history supervise1.lake supervise1.package supervise1.schedule supervise1.track"
	want=$(tr ' ' '\n' <<< "$want" | sort -u | paste -sd ' ')
	run bash -c 'cut -d: -f1 "$1" | sort -u | paste -sd " "' _ "$home/work/kills.log"
	assert_output "$want"
	snapshot "$home" "$BATS_TEST_TMPDIR/snap.run"
	# (Until compaction the lake holds the replays' copies.)
	same "$BATS_FILE_TMPDIR/snap.run" "$BATS_TEST_TMPDIR/snap.run" -x lake.copies
	reconcile "$home"
	assert_success
	refute_output --partial FAIL

	DD_HOME=$home pipeline --kill "$1" archive
	snapshot "$home" "$BATS_TEST_TMPDIR/snap.archived"
	same "$BATS_FILE_TMPDIR/snap.archived" "$BATS_TEST_TMPDIR/snap.archived"
}

@test "SIGKILL at every stage, replay from the start (seed 11): the clean run's state" {
	kill_round 11
}

@test "SIGKILL at every stage, replay from the start (seed 23): the clean run's state" {
	kill_round 23
}

@test "SIGKILL at every stage, replay from the start (seed 37): the clean run's state" {
	kill_round 37
}

@test "duplicated and reordered telemetry (dd-sim fly --dup 0.05 --reorder 0.05): reconcile holds, same final stages" {
	local home=$BATS_TEST_TMPDIR/dup
	DD_HOME=$home pipeline --dup 0.05 --reorder 0.05 day feedback supervise feedback
	# The flights did carry duplicates.
	[ "$(jq -r .id "$home/work/day.stream" | sort | uniq -d | wc -l)" -gt 100 ]
	reconcile "$home"
	assert_success
	refute_output --partial FAIL
	snapshot "$home" "$BATS_TEST_TMPDIR/snap"
	for store in track history; do
		run diff <(jq -c '[.deliveryId, .stage]' "$BATS_FILE_TMPDIR/snap.run/$store.list") \
			<(jq -c '[.deliveryId, .stage]' "$BATS_TEST_TMPDIR/snap/$store.list")
		assert_success
	done
	same "$BATS_FILE_TMPDIR/snap.run/schedule.stats" "$BATS_TEST_TMPDIR/snap/schedule.stats"
}

# --- reconcile can fail: each check against a run broken on purpose ----

# A copy of the clean run to break.
broken() {
	cp -a "$BATS_FILE_TMPDIR/clean.run" "$BATS_TEST_TMPDIR/b"
	export DD_HOME=$BATS_TEST_TMPDIR/b
}

# A delivery.status event like dd-track's, for delivery $1, stage $2.
status_event() {
	printf '{"specversion":"1.0","id":"%s:%s:x","source":"/dd-track","type":"delivery.status","time":"2026-11-20T23:00:00.000Z","subject":"%s","data":{"deliveryId":"%s","stage":"%s","previousStage":null,"droneId":null,"location":null,"pickupEta":null,"dropoffEta":null}}\n' \
		"$1" "$2" "$1" "$1" "$2"
}

@test "reconcile fails: a scheduled delivery that never reached the delivery service" {
	export DD_HOME=$BATS_TEST_TMPDIR/only-scheduler
	mkdir -p "$DD_HOME"
	dd-sim requests -n 20 --seed 7 --start 2026-11-20T06:00:00Z \
		| dd-schedule -q --fleet "$FLEET" > /dev/null
	# The other services ran, on nothing.
	dd-track -q < /dev/null
	dd-history -q < /dev/null
	dd-package -q < /dev/null
	dd-lake-ingest -q < /dev/null
	run "$DD_ROOT/scripts/reconcile"
	assert_failure 1
	assert_line --regexp "^FAIL tracked: scheduled deliveries lost \($(dd-schedule stats | jq .scheduled)\), e\.g\. d-[0-9a-f]+: scheduled, but neither"
	assert_line --regexp '^ok   outcomes:'
}

@test "reconcile fails: a package removed behind the scheduler's back, one never removed" {
	broken
	local ended pkg
	ended=$(dd-schedule list --state completed | head -n 1 | jq -r .deliveryId)
	pkg=$(dd-schedule get "$ended" | jq -r .package.packageId)
	printf '{"specversion":"1.0","id":"rogue-1","source":"/x","type":"package.removed","time":"2026-11-22T00:00:00.000Z","subject":"%s","data":{"packageId":"%s","reason":"rogue"}}\n' \
		"$pkg" "$pkg" | dd-package -q
	run "$DD_ROOT/scripts/reconcile"
	assert_failure 1
	assert_line "FAIL packages: packages not compensated or lost (1), e.g. $ended: package $pkg missing from dd-package"
	# And the other way: a rejected delivery's package registered again.
	local rej
	rej=$(dd-schedule list --state rejected | jq -r 'select(.reason == "deadline") | .deliveryId' | head -n 1)
	dd-schedule get "$rej" | jq -c '{specversion: "1.0", id: "rogue-2", source: "/x",
		type: "package.registered", time: "2026-11-23T00:00:00.000Z", subject: .package.packageId,
		data: (.package + {ownerId, deliveryId})}' | dd-package -q
	run "$DD_ROOT/scripts/reconcile"
	assert_failure 1
	assert_output --regexp "FAIL packages: packages not compensated or lost \(2\), e\.g\. .*$rej: p-7-[0-9]+ still in dd-package"
}

@test "reconcile fails: dd-history and the lake disagree on an ended delivery" {
	broken
	local id
	id=$(dd-history list --stage completed | head -n 1 | jq -r .deliveryId)
	status_event "$id" completed | dd-history -q
	run "$DD_ROOT/scripts/reconcile"
	assert_failure 1
	assert_line "FAIL history: events that differ between dd-history and the lake (1), e.g. $id: $id:completed:x only in dd-history"
}

@test "reconcile fails: the deliveries view lacks an archived delivery, or says another outcome" {
	cp -a "$BATS_FILE_TMPDIR/clean" "$BATS_TEST_TMPDIR/b"
	export DD_HOME=$BATS_TEST_TMPDIR/b
	cd "$BATS_TEST_TMPDIR"
	run "$DD_ROOT/scripts/reconcile"
	assert_success
	dd-lake-query --dataset deliveries > view
	local id
	id=$(jq -r 'select(.data.outcome == "completed") | .subject' view | head -n 1)
	# The view written again, one of its deliveries given another outcome.
	find "$DD_HOME/lake/deliveries" -name '*part-*' -delete
	jq -c --arg id "$id" 'if .subject == $id then .data.outcome = "failed" else . end' view \
		| dd-lake-ingest -q --dataset deliveries
	run "$DD_ROOT/scripts/reconcile"
	assert_failure 1
	assert_line "FAIL view: deliveries view and events disagree (1), e.g. $id: outcome failed in the view, completed by the events"
	# And one left out.
	find "$DD_HOME/lake/deliveries" -name '*part-*' -delete
	grep -v -F "\"subject\":\"$id\"" view | dd-lake-ingest -q --dataset deliveries
	run "$DD_ROOT/scripts/reconcile"
	assert_failure 1
	assert_line "FAIL view: deliveries view and events disagree (1), e.g. $id: archived, but not in the deliveries view"
	# A rebuild from the lake's events mends it.
	dd-archive -q --rebuild-view --since 2026-11-01 --until 2026-12-31 > /dev/null
	run "$DD_ROOT/scripts/reconcile"
	assert_success
}

@test "reconcile fails: one id naming two events in the lake; duplicates after compaction" {
	broken
	dd-lake-query --type delivery.scheduled --limit 1 > "$BATS_TEST_TMPDIR/orig"
	local id
	id=$(jq -r .id "$BATS_TEST_TMPDIR/orig")
	# The same event again: a duplicate, allowed until compaction.
	dd-lake-ingest -q < "$BATS_TEST_TMPDIR/orig"
	run "$DD_ROOT/scripts/reconcile"
	assert_success
	assert_line --regexp '^ok   lake ids: .*\(1 ids stored more than once, allowed until dd-archive --compact\)$'
	run "$DD_ROOT/scripts/reconcile" --compacted
	assert_failure 1
	assert_line "FAIL lake ids: ids stored more than once in a compacted lake (1), e.g. $id: 2 copies"
	# Another event under the same id: never allowed.
	jq -c '.data.droneId = "D-9999"' "$BATS_TEST_TMPDIR/orig" | dd-lake-ingest -q
	run "$DD_ROOT/scripts/reconcile"
	assert_failure 1
	assert_line "FAIL lake ids: ids naming more than one event (1), e.g. $id: stored as different lines"
}

@test "reconcile fails: a delivery unknown to the scheduler; an end only the scheduler saw" {
	broken
	printf '{"specversion":"1.0","id":"d-0:t:0","source":"/drones/D-0006","type":"drone.dispatched","time":"2026-11-21T05:56:38.520Z","subject":"d-0000000000000000","data":{"droneId":"D-0006","location":{"lat":47.5,"lon":-122.3,"alt":0},"battery":1}}\n' \
		| dd-track -q > /dev/null
	run "$DD_ROOT/scripts/reconcile"
	assert_failure 1
	assert_line "FAIL known: deliveries unknown to the scheduler (1), e.g. dd-track: d-0000000000000000"
	refute_line --partial "FAIL ends"
	# An empty lake and history: the scheduler's completions were never
	# seen by anyone else.
	rm -rf "$DD_HOME/lake" "$DD_HOME/history.db"*
	dd-history -q < /dev/null
	mkdir -p "$DD_HOME/lake/events"
	run "$DD_ROOT/scripts/reconcile"
	assert_failure 1
	assert_line --regexp '^FAIL ends: ends that only the scheduler saw \([1-9][0-9]*\), e\.g\. d-[0-9a-f]+: completed in dd-schedule, never in the delivery service'
}

@test "reconcile fails: a delivery completed in one store and cancelled in another" {
	broken
	local id
	id=$(dd-history list --stage completed | head -n 1 | jq -r .deliveryId)
	# The scheduler's own record, broken behind its back.
	sqlite3 "$DD_HOME/schedule.db" "UPDATE items SET state = 'cancelled' WHERE delivery_id = '$id'"
	run "$DD_ROOT/scripts/reconcile"
	assert_failure 1
	assert_line "FAIL cancels: deliveries both completed and cancelled (1), e.g. $id: completed in the delivery service, cancelled in dd-schedule"
}

@test "reconcile fails: a drone booked while it may be flying; an attempt not linked to its request" {
	broken
	run "$DD_ROOT/scripts/reconcile"
	assert_line --regexp '^ok   flights: [1-9][0-9]* flights flown, no drone booked while it may be flying$'
	assert_line "ok   attempts: 0 later attempts, each following a failed attempt of its request and package"
	# A second attempt whose first never failed.
	local c
	c=$(dd-schedule list --state completed | jq -r .deliveryId | tail -n 1)
	sqlite3 "$DD_HOME/schedule.db" "UPDATE items SET attempt = 2 WHERE delivery_id = '$c'"
	# Two completed flights of one drone, the second moved into the first.
	local drone a b
	drone=$(dd-schedule list --state completed | jq -r .droneId | sort | uniq -d | head -n 1)
	read -r a b < <(dd-schedule list --state completed | jq -r --arg d "$drone" 'select(.droneId == $d) | .deliveryId' | head -n 2 | paste -sd ' ')
	sqlite3 "$DD_HOME/schedule.db" "UPDATE items SET depart = (SELECT depart + 1000 FROM items WHERE delivery_id = '$a') WHERE delivery_id = '$b'"
	run "$DD_ROOT/scripts/reconcile"
	assert_failure 1
	assert_line --regexp "^FAIL flights: drones booked while flying \([0-9]+\), e\.g\. $drone: $b booked to leave at .*, while $a flies until "
	assert_line --regexp "^FAIL attempts: attempts not linked to their request \(1\), e\.g\. $c: attempt 2 of request [^ ]+ without attempt 1$"
}

@test "reconcile: usage" {
	run "$DD_ROOT/scripts/reconcile" --bogus
	assert_failure 2
	run "$DD_ROOT/scripts/reconcile" --home "$BATS_TEST_TMPDIR/nowhere"
	assert_failure 2
	run "$DD_ROOT/scripts/reconcile" --help
	assert_success
	assert_output --partial 'usage: reconcile'
}
