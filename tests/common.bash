# Loaded by every .bats file: the binaries of the build tree first on
# PATH, a private DD_HOME per test, bats-assert and bats-support.
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

: "${DD_ROOT:=$(cd "$BATS_TEST_DIRNAME/.." && pwd)}"
: "${DD_BIN:=$DD_ROOT/build/bin}"
export DD_ROOT DD_BIN
export PATH="$DD_BIN:$PATH"
export DD_HOME="$BATS_TEST_TMPDIR/home"
export TZ=UTC LC_ALL=C.UTF-8
mkdir -p "$DD_HOME"

# Independent validator of emitted events: Debian's python3-jsonschema
# against data/schemas/ (see tests/validate-events).
validate_events() {
	/usr/bin/python3 "$DD_ROOT/tests/validate-events" "$@"
}

# Fail the test if a sanitizer reported anything (exit code 99 is what
# the Makefile's ASAN/UBSAN options make a report exit with).
refute_sanitizer() {
	[ "$status" -ne 99 ] || fail "sanitizer report (exit 99): $output"
}
