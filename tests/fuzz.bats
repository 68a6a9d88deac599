#!/usr/bin/env bats
# Every fuzz target replays its seed corpus and every crash ever found
# (tests/fuzz/crashes/NAME/): a crash fixed once stays fixed.

load common

replay() {
	local t=$1 bin="$DD_BIN/../fuzz/replay-$1" files=()
	[ -x "$bin" ] || fail "no replay binary for $t (make test builds it)"
	for f in "$DD_ROOT/tests/fuzz/corpus/$t"/* "$DD_ROOT/tests/fuzz/crashes/$t"/*; do
		[ -f "$f" ] && files+=("$f")
	done
	[ ${#files[@]} -gt 0 ] || fail "empty corpus for $t"
	run "$bin" "${files[@]}"
	refute_sanitizer
	assert_success
}

@test "fuzz replay: envelope scanner" { replay scanner; }
@test "fuzz replay: times and durations" { replay time; }
@test "fuzz replay: CSV reader" { replay csv; }
@test "fuzz replay: dd-schedule requests (NDJSON, ExternalDelivery, CSV)" { replay request; }
@test "fuzz replay: lake part reader and metadata on damaged files" { replay lakepart; }
@test "fuzz replay: lake part metadata loader on its own" { replay lakemeta; }
@test "fuzz replay: dd-lake-query jq filter path" { replay lakejq; }
@test "fuzz replay: dd-track and dd-history event handling, then a replay" { replay events; }

# The request target keeps one scheduler and puts its store back to the
# template before each input (fuzz-request.c): an input must give the
# same output whatever ran before it, and the replay pass must read the
# input again (it once read the store's file, whose fd took the number of
# the input the loop had closed).
@test "fuzz request: each input runs on the template store, and its replay reads it again" {
	local bin="$DD_BIN/../fuzz/replay-request" seeds=("$DD_ROOT"/tests/fuzz/corpus/request/*)
	[ ${#seeds[@]} -ge 4 ] || fail "too few seeds"
	cd "$BATS_TEST_TMPDIR"
	for f in "${seeds[@]}"; do
		FUZZ_DEBUG=1 "$bin" "$f" 2>&1 | grep '^pass' >> alone
	done
	# Every seed is valid input: both passes end 0, the second emits nothing.
	[ "$(grep -c '^pass 1: exit 0, [1-9][0-9]* bytes out' alone)" -eq ${#seeds[@]} ] ||
		fail "a seed did not emit cleanly: $(cat alone)"
	[ "$(grep -c '^pass 2: exit 0, 0 bytes out' alone)" -eq ${#seeds[@]} ] ||
		fail "a replay pass rejected or emitted: $(cat alone)"
	# In order and in reverse, one process: the same figures as alone.
	FUZZ_DEBUG=1 "$bin" "${seeds[@]}" 2>&1 | grep '^pass' > together
	run diff alone together
	assert_success
	local rev=() i
	for ((i = ${#seeds[@]} - 1; i >= 0; i--)); do rev+=("${seeds[i]}"); done
	for ((i = ${#seeds[@]} - 1; i >= 0; i--)); do
		sed -n "$((2 * i + 1)),$((2 * i + 2))p" alone
	done > alone.rev
	FUZZ_DEBUG=1 "$bin" "${rev[@]}" 2>&1 | grep '^pass' > together.rev
	run diff alone.rev together.rev
	assert_success
}
