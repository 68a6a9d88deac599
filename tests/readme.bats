#!/usr/bin/env bats
# README.md: its first two commands are make demo and make check, and its
# day of the whole system runs as written and feeds the statuses back, so
# the scheduler ends with completed deliveries, not all scheduled.

load common

@test "README shows make demo and make check first" {
	run grep -m 2 -E '^    [a-z]' "$DD_ROOT/README.md"
	assert_line --index 0 --regexp '^    make demo( |$)'
	assert_line --index 1 --regexp '^    make check( |$)'
}

@test "the README's day runs as written and the scheduler learns what completed" {
	# The code block after "A day of the whole system", run from a folder
	# like the source tree's (data/ in it).
	cd "$BATS_TEST_TMPDIR"
	awk '/^A day of the whole system/ { f = 1; next }
		f && /^    / { print substr($0, 5); g = 1; next }
		g && /^$/ { exit }' "$DD_ROOT/README.md" > day.sh
	mkdir run
	ln -s "$DD_ROOT/data" run/data
	cd run
	run bash -euo pipefail ../day.sh
	refute_sanitizer
	assert_success
	assert_output --partial '██'
	stats=$(dd-schedule stats)
	[ "$(jq '.states.completed // 0' <<< "$stats")" -gt 900 ] || fail "not completed: $stats"
	[ "$(jq '.states.scheduled // 0' <<< "$stats")" -eq 0 ] || fail "still scheduled: $stats"
	# what the README says the stats show
	grep -qF "$(jq -c .states <<< "$stats")" ../day.sh || fail "README's comment differs from $stats"
	# dd-package and dd-history ran beside the pipeline; they end with it
	for i in $(seq 50); do
		[ "$(dd-history stats | jq .deliveries)" = 1000 ] && break
		sleep 0.1
	done
	run dd-history stats
	assert_output --partial '"deliveries":1000'
}
