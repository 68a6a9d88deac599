#!/usr/bin/env bats
# make demo, the README's first command, keeps working: the whole day runs,
# every analyst question gets an answer, and the services agree.

load common

@test "scripts/demo runs the day end to end; reconcile finds no disagreement" {
	run "$DD_ROOT/scripts/demo"
	refute_sanitizer
	assert_success
	refute_output --partial FAIL
	assert_line --regexp '^ok   requests: 600 = '
	assert_line --regexp '^ok   lake ids: [0-9]+ events, no id stored twice after compaction$'
	# the chart, the table of reasons, one delivery's history
	assert_output --partial '██'
	assert_line --regexp '^drone.failed +[a-z-]+ +[0-9]+$'
	assert_line --regexp '^[0-9T:.-]+Z +delivery.scheduled '
	# the on-time rate per day, from the deliveries view
	assert_line --regexp '^2026-11-2[01]  [0-9.]+% of [1-9][0-9]* completed$'
	assert_line --regexp '^ok   view: [1-9][0-9]* summaries in the deliveries view'
}
