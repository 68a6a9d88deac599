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
