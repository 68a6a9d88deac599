/*
 * libFuzzer target: the request parser of dd-schedule, through its public
 * entry point (dd_sched_filter) on a fresh store with a small fleet, so
 * NDJSON requests, the reference's ExternalDelivery shape, operations,
 * fed-back delivery.status events and CSV rows (--csv) all go through the
 * code a user's input does.
 *
 * Input: the first byte chooses the mode (bit 0: CSV, bit 1: a fixed
 * --now), the rest is stdin. Nothing may crash; the filter must end with
 * 0 or 1 (bad input is data, never a store failure); every line it
 * writes must be a valid event of its type; and the same input replayed
 * onto the same store must emit nothing (SPEC: replaying requests
 * schedules nothing twice).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "event.h"
#include "schedule.h"
#include "util.h"

static char dir[64];
static char tmpl[96], db[96];

/* Four drones near Seattle, one of each size and a weak one. */
static const char fleet_csv[] =
    "id,base.lat,base.lon,maxPayloadKg,maxSize,rangeKm,speedMps\n"
    "D-1,47.63,-122.45,10,medium,48,19.6\n"
    "D-2,47.63,-122.37,3,small,47,23.4\n"
    "D-3,47.60,-122.19,25,large,90,14.5\n"
    "D-4,47.70,-122.30,25,large,90,13.9\n";

static void __attribute__((noreturn))
die(const char *what)
{
	fprintf(stderr, "fuzz-request: %s: %s\n", what, dd_errmsg());
	abort();
}

static void
rm_store(const char *path)
{
	static const char *const sfx[] = { "", "-wal", "-shm", "-journal", ".lock",
		".supervise.lock" };
	char p[128];
	for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
		snprintf(p, sizeof p, "%s%s", path, sfx[i]);
		unlink(p);
	}
}

static void
cleanup(void)
{
	char p[128];
	rm_store(tmpl);
	rm_store(db);
	snprintf(p, sizeof p, "%s/fleet.csv", dir);
	unlink(p);
	rmdir(dir);
}

static void
copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	char buf[65536];
	ssize_t n;
	if (in < 0 || out < 0)
		abort();
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, (size_t)n) != n)
			abort();
	close(in);
	close(out);
}

/* A store with the fleet imported, copied for every input. */
static void
setup(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof dir, "%s/dd-fuzz-request.XXXXXX", base);
	if (mkdtemp(dir) == NULL)
		abort();
	atexit(cleanup);
	signal(SIGPIPE, SIG_IGN);
	snprintf(tmpl, sizeof tmpl, "%s/template.db", dir);
	snprintf(db, sizeof db, "%s/schedule.db", dir);
	char fleet[96];
	snprintf(fleet, sizeof fleet, "%s/fleet.csv", dir);
	FILE *f = fopen(fleet, "w");
	if (f == NULL || fputs(fleet_csv, f) < 0 || fclose(f))
		abort();
	struct dd_sched_opts o;
	dd_sched_defaults(&o);
	o.db = tmpl;
	struct dd_sched *s;
	uint64_t imported, rejected;
	if (dd_sched_open(&s, &o) ||
	    dd_sched_fleet_import(s, fleet, NULL, &imported, &rejected) || imported != 4)
		die("template store");
	dd_sched_close(s);
	unlink(fleet);
}

/* The filter over the input in fd, from its start. */
static int
run(struct dd_sched *s, int fd, int csv)
{
	struct dd_filter_opts fo;
	dd_filter_defaults(&fo);
	fo.input = "fuzz";
	fo.fd = fd;
	fo.quiet = 1;
	fo.progress = 0;
	lseek(fd, 0, SEEK_SET);
	return dd_sched_filter(s, &fo, csv);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (dir[0] == '\0')
		setup();
	if (size < 1)
		return 0;
	int csv = data[0] & 1, fixed = data[0] & 2;
	int fd = memfd_create("fuzz-request", 0);
	if (fd < 0 || (size > 1 && write(fd, data + 1, size - 1) != (ssize_t)(size - 1)))
		abort();
	rm_store(db);
	copy_file(tmpl, db);

	for (int pass = 0; pass < 2; pass++) {
		char *out = NULL;
		size_t outlen = 0;
		struct dd_sched_opts o;
		dd_sched_defaults(&o);
		o.db = db;
		if (fixed) {
			o.has_now = 1;
			o.now = 1795651200000;	/* 2026-11-26T00:00:00Z */
		}
		o.out = open_memstream(&out, &outlen);
		struct dd_sched *s;
		if (o.out == NULL || dd_sched_open(&s, &o))
			die("open");
		int code = run(s, fd, csv);
		dd_sched_close(s);
		fclose(o.out);
		if (code != 0 && code != 1) {
			fprintf(stderr, "fuzz-request: pass %d: exit %d: %s\n", pass + 1, code,
			    dd_errmsg());
			abort();
		}
		/* Every line written is an event the schemas accept. */
		for (char *p = out, *end = out + outlen; p < end;) {
			char *nl = memchr(p, '\n', (size_t)(end - p));
			if (nl == NULL)
				abort();	/* an unterminated line */
			struct dd_env e;
			if (dd_env_scan(p, (size_t)(nl - p), &e) || dd_event_check_data(&e)) {
				fprintf(stderr, "fuzz-request: bad output: %s: %.*s\n", dd_errmsg(),
				    (int)(nl - p), p);
				abort();
			}
			p = nl + 1;
		}
		if (getenv("FUZZ_DEBUG"))
			fprintf(stderr, "pass %d: exit %d, %zu bytes out\n", pass + 1, code, outlen);
		/* The replay emits nothing new. */
		if (pass == 1 && outlen) {
			fprintf(stderr, "fuzz-request: the replay emitted:\n%.*s", (int)outlen, out);
			abort();
		}
		free(out);
	}
	close(fd);
	return 0;
}
