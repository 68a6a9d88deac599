#!/usr/bin/env bats
# make install / uninstall honour DESTDIR and PREFIX: every program and
# every man page, and nothing left behind.

load common

@test "make install DESTDIR=… PREFIX=/usr installs binaries and man pages; uninstall removes them" {
	dest=$BATS_TEST_TMPDIR/stage
	build=$(dirname "$DD_BIN")
	run make -s -C "$DD_ROOT" install DESTDIR="$dest" PREFIX=/usr BUILD="$build" SANITIZE="${DD_SANITIZE:-}"
	assert_success
	for src in "$DD_ROOT"/bin/dd-*.c; do
		p=$(basename "$src" .c)
		[ -x "$dest/usr/bin/$p" ] || fail "$p not installed"
		[ -f "$dest/usr/share/man/man1/$p.1" ] || fail "$p.1 not installed"
	done
	[ -f "$dest/usr/share/man/man7/dd.7" ]
	# test drivers are not programs
	[ ! -e "$dest/usr/bin/dd-libcheck" ]
	run "$dest/usr/bin/dd-sim" --version
	assert_success
	run make -s -C "$DD_ROOT" uninstall DESTDIR="$dest" PREFIX=/usr BUILD="$build" SANITIZE="${DD_SANITIZE:-}"
	assert_success
	[ -z "$(find "$dest" -type f)" ] || fail "left behind: $(find "$dest" -type f)"
}

# make install with the options of this build tree; $dest is the stage.
install_to() {
	dest=$BATS_TEST_TMPDIR/stage
	build=$(dirname "$DD_BIN")
	run make -s -C "$DD_ROOT" "$@" BUILD="$build" SANITIZE="${DD_SANITIZE:-}"
	assert_success
}

# The one log path dd-archive(1) gives for the cron job.
man_log() {
	local logs
	logs=$(grep -o '/var/log/[^ ]*\.log' "$DD_ROOT/man/dd-archive.1" | sort -u)
	[ -n "$logs" ] || fail "dd-archive.1 names no log"
	[ "$(wc -l <<< "$logs")" -eq 1 ] || fail "dd-archive.1 names several logs: $logs"
	echo "$logs"
}

@test "make install DESTDIR=… PREFIX=/usr installs the systemd units with ExecStart in the installed bindir" {
	install_to install DESTDIR="$BATS_TEST_TMPDIR/stage" PREFIX=/usr
	units=$dest/usr/lib/systemd/system
	[ -f "$units/dd-archive.service" ] || fail "no $units/dd-archive.service"
	[ -f "$units/dd-archive.timer" ] || fail "no $units/dd-archive.timer"
	run grep '^ExecStart=' "$units/dd-archive.service"
	assert_output 'ExecStart=/usr/bin/dd-archive -q --compact'
	# what ExecStart names is what was installed
	[ -x "$dest/usr/bin/dd-archive" ]
	run grep -l '@BINDIR@\|/usr/local' "$units"/*
	assert_failure
	[ "$(stat -c %a "$units/dd-archive.service")" = 644 ]
	[ "$(stat -c %a "$units/dd-archive.timer")" = 644 ]
	# and the source keeps the placeholder, not a path
	run grep -c '^ExecStart=@BINDIR@/dd-archive ' "$DD_ROOT/scripts/dd-archive.service"
	assert_output 1
}

@test "SYSTEMDDIR and BINDIR move the units and their ExecStart" {
	install_to install DESTDIR="$BATS_TEST_TMPDIR/stage" PREFIX=/opt/dd \
		BINDIR=/opt/dd/sbin SYSTEMDDIR=/etc/systemd/system
	run grep '^ExecStart=' "$dest/etc/systemd/system/dd-archive.service"
	assert_output 'ExecStart=/opt/dd/sbin/dd-archive -q --compact'
	[ -x "$dest/opt/dd/sbin/dd-archive" ]
	[ ! -e "$dest/opt/dd/lib/systemd" ]
}

@test "make install puts the cron file in /etc/cron.d, with PATH and the log of dd-archive(1)" {
	log=$(man_log)
	install_to install DESTDIR="$BATS_TEST_TMPDIR/stage" PREFIX=/usr
	cron=$dest/etc/cron.d/dd-archive
	[ -f "$cron" ] || fail "no $cron"
	# cron ignores cron.d files that are writable by others
	[ "$(stat -c %a "$cron")" = 644 ]
	run grep '^PATH=' "$cron"
	assert_output 'PATH=/usr/bin:/usr/bin:/bin'
	run grep -c '^DD_HOME=/var/lib/dd$' "$cron"
	assert_output 1
	# one job: minute hour day month weekday USER command, logging to the
	# man page's log
	run grep -E '^[0-9*]' "$cron"
	assert_output "17 3 * * * dd dd-archive -q --compact >> $log 2>&1"
	run grep '@BINDIR@' "$cron"
	assert_failure
}

@test "with PREFIX=/usr/local the cron file is still under /etc and its PATH has /usr/local/bin" {
	install_to install DESTDIR="$BATS_TEST_TMPDIR/stage" PREFIX=/usr/local
	[ -f "$dest/etc/cron.d/dd-archive" ]
	[ ! -e "$dest/usr/local/etc" ]
	run grep '^PATH=' "$dest/etc/cron.d/dd-archive"
	assert_output 'PATH=/usr/local/bin:/usr/bin:/bin'
	[ -f "$dest/usr/local/lib/systemd/system/dd-archive.service" ]
}

@test "the installed cron job runs dd-archive with cron's bare environment" {
	install_to install PREFIX="$BATS_TEST_TMPDIR/prefix" CRONDIR="$BATS_TEST_TMPDIR/cron.d"
	cron=$BATS_TEST_TMPDIR/cron.d/dd-archive
	# As cron does: its own environment (no PATH of ours), then the
	# file's assignments, then the command by sh. DD_HOME and the log
	# are moved to places of the test.
	cronpath=$(sed -n 's/^PATH=//p' "$cron")
	shell=$(sed -n 's/^SHELL=//p' "$cron")
	cmd=$(grep -E '^[0-9*]' "$cron" | cut -d' ' -f7-)
	log=$(man_log)
	cmd=${cmd//$log/$BATS_TEST_TMPDIR/archive.log}
	home=$BATS_TEST_TMPDIR/var-lib-dd
	mkdir -p "$home"
	dd-history -q < /dev/null
	cp "$DD_HOME/history.db" "$home/"
	run env -i HOME=/ LOGNAME=dd PATH="$cronpath" DD_HOME="$home" "${shell:-/bin/sh}" -c "$cmd"
	assert_success
	run jq -c '{deliveriesArchived, dryRun}' "$BATS_TEST_TMPDIR/archive.log"
	assert_output '{"deliveriesArchived":0,"dryRun":false}'
}

@test "make install puts the schemas and the sample fleet under PREFIX/share/dd" {
	install_to install DESTDIR="$BATS_TEST_TMPDIR/stage" PREFIX=/usr
	diff -r "$DD_ROOT/data/schemas" "$dest/usr/share/dd/schemas"
	cmp "$DD_ROOT/data/fleet.csv" "$dest/usr/share/dd/fleet.csv"
	# the installed fleet is one dd-schedule schedules onto
	run bash -c "dd-sim requests -n 5 --seed 7 --start 2026-11-20T06:00:00Z \
		| dd-schedule -q --fleet '$dest/usr/share/dd/fleet.csv' | jq -r .type | sort -u"
	assert_success
	assert_line delivery.scheduled
}

@test "make uninstall removes the units, the cron file, the schemas and the fleet" {
	install_to install DESTDIR="$BATS_TEST_TMPDIR/stage" PREFIX=/usr
	for f in usr/lib/systemd/system/dd-archive.service usr/lib/systemd/system/dd-archive.timer \
		etc/cron.d/dd-archive usr/share/dd/fleet.csv usr/share/dd/schemas/envelope.json; do
		[ -f "$dest/$f" ] || fail "$f not installed"
	done
	install_to uninstall DESTDIR="$BATS_TEST_TMPDIR/stage" PREFIX=/usr
	[ -z "$(find "$dest" -type f)" ] || fail "left behind: $(find "$dest" -type f)"
	[ ! -e "$dest/usr/share/dd" ] || fail "left behind: $dest/usr/share/dd"
}
