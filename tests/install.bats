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
