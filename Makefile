# The dd toolkit. `make` builds, `make check` installs what is missing,
# builds and runs the whole test suite, `make demo` runs the demo pipeline,
# `make bench` the benchmarks. BUILD=DIR builds out of tree (several builds
# can coexist); SANITIZE=1 builds and tests with ASan and UBSan.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=

ifeq ($(FUZZ),1)
# The library as libFuzzer targets link it (make fuzz sets this).
BUILD ?= build-fuzz
CC = clang
SANFLAGS = -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else ifeq ($(SANITIZE),1)
BUILD ?= build-san
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else
BUILD ?= build
SANFLAGS =
endif

CC ?= cc
CFLAGS ?= -O2 -g
DD_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wno-unused-parameter \
	-Wno-missing-field-initializers $(LIBDIRS:%=-I%) $(SANFLAGS)
# No -lrdkafka: lib/base/rdkafka-load.c loads librdkafka when a run first
# calls it (--kafka, --kafka-out), so that the others do not pay for
# mapping and relocating it and its libraries at every start.
LDLIBS = -lsqlite3 -ljq -lzstd -lcsv -lcrypto -lm -lpthread -ldl

# lib/ in layers: base (foundation), lake (files and queries), svc (the
# services' stores), sim (the workload); each folder is on the include path.
LIBDIRS = lib/base lib/lake lib/svc lib/sim
HDR = $(wildcard $(LIBDIRS:%=%/*.h))
LIBSRC = $(wildcard $(LIBDIRS:%=%/*.c))
LIBOBJ = $(LIBSRC:lib/%.c=$(BUILD)/lib/%.o)
LIB = $(BUILD)/libdd.a
BINSRC = $(wildcard bin/*.c)
BIN = $(BINSRC:bin/%.c=$(BUILD)/bin/%)
MAN1 = $(wildcard man/*.1)
MAN7 = $(wildcard man/*.7)

# Tests find the binaries of this build tree, never those on $PATH.
TESTENV = DD_BIN=$(abspath $(BUILD)/bin) DD_ROOT=$(CURDIR) DD_SANITIZE=$(SANITIZE) \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=99

.PHONY: all deps check test lint demo bench fuzz install uninstall clean

all: $(BIN)

$(BUILD)/lib/%.o: lib/%.c $(HDR)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DD_CFLAGS) -c -o $@ $<

$(LIB): $(LIBOBJ)
	rm -f $@
	ar rcs $@ $(LIBOBJ)

$(BUILD)/bin/%: bin/%.c $(LIB) $(HDR)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DD_CFLAGS) -o $@ $< $(LIB) $(LDFLAGS) $(LDLIBS)

# Test drivers of the library (tests/*.c), built beside the programs.
TESTSRC = $(wildcard tests/*.c)
TESTBIN = $(TESTSRC:tests/%.c=$(BUILD)/bin/dd-%)

$(BUILD)/bin/dd-%: tests/%.c $(LIB) $(HDR)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DD_CFLAGS) -o $@ $< $(LIB) $(LDFLAGS) $(LDLIBS)

# The mock cluster is librdkafka's own (rdkafka_mock.h): linked with it.
$(BUILD)/bin/dd-kafka-mock: LDLIBS += -lrdkafka

# Fuzz targets (tests/fuzz/fuzz-NAME.c): `make fuzz` runs each under
# libFuzzer for FUZZ_SECONDS; the suite replays the seed corpus and every
# crash kept in tests/fuzz/crashes/ through the plain build (replay.c).
FUZZSRC = $(wildcard tests/fuzz/fuzz-*.c)
FUZZNAMES = $(FUZZSRC:tests/fuzz/fuzz-%.c=%)
REPLAYBIN = $(FUZZNAMES:%=$(BUILD)/fuzz/replay-%)
FUZZ_SECONDS ?= 60

$(BUILD)/fuzz/replay-%: tests/fuzz/fuzz-%.c tests/fuzz/replay.c $(LIB) $(HDR)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DD_CFLAGS) -o $@ $< tests/fuzz/replay.c $(LIB) $(LDFLAGS) $(LDLIBS)

$(BUILD)/fuzz/fuzz-%: tests/fuzz/fuzz-%.c $(LIB) $(HDR)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DD_CFLAGS) -fsanitize=fuzzer -o $@ $< $(LIB) $(LDFLAGS) $(LDLIBS)

fuzz: deps
	$(MAKE) FUZZ=1 $(FUZZNAMES:%=build-fuzz/fuzz/fuzz-%)
	@for t in $(FUZZNAMES); do \
		mkdir -p build-fuzz/corpus-$$t tests/fuzz/corpus/$$t tests/fuzz/crashes/$$t; \
		echo "fuzz: $$t for $(FUZZ_SECONDS)s"; \
		build-fuzz/fuzz/fuzz-$$t -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
			-artifact_prefix=tests/fuzz/crashes/$$t/ -print_final_stats=1 \
			build-fuzz/corpus-$$t tests/fuzz/corpus/$$t > build-fuzz/$$t.log 2>&1; \
		rc=$$?; grep -E 'stat::(number_of_executed_units|new_units_added)' build-fuzz/$$t.log; \
		if [ $$rc -ne 0 ]; then tail -n 30 build-fuzz/$$t.log; \
			echo "fuzz: $$t found a crash, kept in tests/fuzz/crashes/$$t/"; exit 1; fi; \
	done

deps:
	@scripts/install-deps

check: deps
	$(MAKE) all
	$(MAKE) test

# The suite alone, on what is built; TESTS="tests/a.bats tests/b.bats" runs
# only those files.
TESTS ?= tests
test: lint $(TESTBIN) $(REPLAYBIN)
	$(TESTENV) scripts/run-tests $(TESTS)

lint:
	mandoc -Tlint -W warning $(MAN1) $(MAN7)
	scripts/check-usage $(BUILD)/bin

demo: deps
	$(MAKE) all
	DD_BIN=$(abspath $(BUILD)/bin) DD_HOME=$(abspath $(BUILD))/demo scripts/demo

bench: deps
	$(MAKE) all $(TESTBIN)
	DD_BIN=$(abspath $(BUILD)/bin) scripts/bench/run

# Beside the programs and pages, what an operator runs them with: the
# archive job's systemd units and cron file, @BINDIR@ in them replaced by
# the installed bindir, and the schemas and the sample fleet. The cron
# folder is the system's (/etc/cron.d) whatever the PREFIX.
SYSTEMDDIR ?= $(PREFIX)/lib/systemd/system
CRONDIR ?= /etc/cron.d
DATADIR ?= $(PREFIX)/share/dd
UNITS = $(wildcard scripts/*.service scripts/*.timer)
SCHEMAS = $(wildcard data/schemas/*.json)
SUBST = sed -e 's|@BINDIR@|$(BINDIR)|g'

install: all
	mkdir -p $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7 \
		$(DESTDIR)$(SYSTEMDDIR) $(DESTDIR)$(CRONDIR) $(DESTDIR)$(DATADIR)/schemas
	cp -f $(BIN) $(DESTDIR)$(BINDIR)/
	cp -f $(MAN1) $(DESTDIR)$(MANDIR)/man1/
	cp -f $(MAN7) $(DESTDIR)$(MANDIR)/man7/
	for u in $(UNITS); do \
		$(SUBST) $$u > $(DESTDIR)$(SYSTEMDDIR)/$${u##*/} && \
		chmod 644 $(DESTDIR)$(SYSTEMDDIR)/$${u##*/} || exit 1; \
	done
	$(SUBST) scripts/dd-archive.cron > $(DESTDIR)$(CRONDIR)/dd-archive
	chmod 644 $(DESTDIR)$(CRONDIR)/dd-archive
	cp -f $(SCHEMAS) $(DESTDIR)$(DATADIR)/schemas/
	cp -f data/fleet.csv $(DESTDIR)$(DATADIR)/

uninstall:
	for b in $(notdir $(BIN)); do rm -f $(DESTDIR)$(BINDIR)/$$b; done
	for m in $(notdir $(MAN1)); do rm -f $(DESTDIR)$(MANDIR)/man1/$$m; done
	for m in $(notdir $(MAN7)); do rm -f $(DESTDIR)$(MANDIR)/man7/$$m; done
	for u in $(notdir $(UNITS)); do rm -f $(DESTDIR)$(SYSTEMDDIR)/$$u; done
	rm -f $(DESTDIR)$(CRONDIR)/dd-archive
	for s in $(notdir $(SCHEMAS)); do rm -f $(DESTDIR)$(DATADIR)/schemas/$$s; done
	rm -f $(DESTDIR)$(DATADIR)/fleet.csv
	rmdir $(DESTDIR)$(DATADIR)/schemas $(DESTDIR)$(DATADIR) 2> /dev/null || true

clean:
	rm -rf build build-san build-fuzz
