/*
 * libFuzzer target: the request parser of dd-schedule, through its public
 * entry point (dd_sched_filter) on a store with a small fleet, so NDJSON
 * requests, the reference's ExternalDelivery shape, operations, fed-back
 * delivery.status events and CSV rows (--csv) all go through the code a
 * user's input does.
 *
 * Input: the first byte chooses the mode (bit 0: CSV, bit 1: a fixed
 * --now), the rest is stdin. Nothing may crash; the filter must end with
 * 0 or 1 (bad input is data, never a store failure); every line it
 * writes must be a valid event of its type; and the same input replayed
 * onto the same store must emit nothing (SPEC: replaying requests
 * schedules nothing twice).
 *
 * Speed: opening a store parses its schema and prepares the scheduler's
 * statements, which cost most of a run. So each mode's scheduler is
 * opened once, on its own store file, and kept. Before every input a
 * second connection puts the store back to the template (the store as
 * it is after the fleet import) in one transaction, row by row, so the
 * schema and the prepared statements stay valid. After every run
 * dd_sched_forget() makes the scheduler drop what it holds in memory, so
 * the next run (the replay, or the next input) loads it all from the
 * store as a fresh open would, and libFuzzer's leak check finds the heap
 * as it was. FUZZ_DEBUG=1 prints a hash of each pass's output, so a test
 * can check that an input gives the same output alone and after others
 * (nothing leaks from one input to the next).
 */
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
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

/* Four drones near Seattle, one of each size and a weak one. */
static const char fleet_csv[] =
    "id,base.lat,base.lon,maxPayloadKg,maxSize,rangeKm,speedMps\n"
    "D-1,47.63,-122.45,10,medium,48,19.6\n"
    "D-2,47.63,-122.37,3,small,47,23.4\n"
    "D-3,47.60,-122.19,25,large,90,14.5\n"
    "D-4,47.70,-122.30,25,large,90,13.9\n";

/* One mode's scheduler, its store, the connection that restores the
 * store, and where the events go. */
struct mode {
	char db[96];
	struct dd_sched *s;
	sqlite3 *restorer;
	sqlite3_stmt *restore[64];	/* BEGIN, each table emptied and filled again, COMMIT */
	int nrestore;
	FILE *out;
	int outfd;
};

static char dir[64], tmpl[96];
static struct mode modes[2];	/* [0]: the clock follows the input; [1]: --now fixed */
static int infd = -1;
static struct dd_buf outbuf;

static void __attribute__((noreturn))
die(const char *what, const char *why)
{
	fprintf(stderr, "fuzz-request: %s: %s\n", what, why);
	abort();
}

static void
rm_store(const char *path)
{
	static const char *const sfx[] = { "", "-wal", "-shm", "-journal", ".lock",
		".supervise.lock" };
	for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
		char *p = sqlite3_mprintf("%s%s", path, sfx[i]);
		unlink(p);
		sqlite3_free(p);
	}
}

static void
cleanup(void)
{
	for (int m = 0; m < 2; m++) {
		dd_sched_close(modes[m].s);
		for (int i = 0; i < modes[m].nrestore; i++)
			sqlite3_finalize(modes[m].restore[i]);
		sqlite3_close(modes[m].restorer);
		if (modes[m].out)
			fclose(modes[m].out);
		rm_store(modes[m].db);
	}
	dd_buf_free(&outbuf);
	if (infd >= 0)
		close(infd);
	rm_store(tmpl);
	rmdir(dir);
}

static void
sql_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		die("restore", msg ? msg : sqlite3_errmsg(db));
}

/* The store with the fleet imported, as every input finds it. */
static void
make_template(void)
{
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
		die("template store", dd_errmsg());
	dd_sched_close(s);
	unlink(fleet);
}

static void
restore_add(struct mode *md, const char *sql)
{
	if (md->nrestore == (int)(sizeof md->restore / sizeof md->restore[0]))
		die("restore", "too many tables");
	if (sqlite3_prepare_v3(md->restorer, sql, -1, SQLITE_PREPARE_PERSISTENT,
	    &md->restore[md->nrestore], NULL) != SQLITE_OK)
		die("restore", sqlite3_errmsg(md->restorer));
	md->nrestore++;
}

/* Every table of the template, emptied and filled again from it, in one
 * transaction: the rows change, the schema (and so every statement the
 * scheduler has prepared) does not. */
static void
restore_prepare(struct mode *md)
{
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(md->restorer, "SELECT name FROM t.sqlite_schema"
	    " WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name", -1, &q,
	    NULL) != SQLITE_OK)
		die("restore", sqlite3_errmsg(md->restorer));
	restore_add(md, "BEGIN IMMEDIATE");
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(q, 0);
		char *del = sqlite3_mprintf("DELETE FROM main.\"%w\"", t);
		char *ins = sqlite3_mprintf("INSERT INTO main.\"%w\" SELECT * FROM t.\"%w\"", t, t);
		restore_add(md, del);
		restore_add(md, ins);
		sqlite3_free(del);
		sqlite3_free(ins);
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE || md->nrestore < 3)
		die("restore", "no tables in the template");
	restore_add(md, "COMMIT");
}

static void
restore(struct mode *md)
{
	for (int i = 0; i < md->nrestore; i++) {
		if (sqlite3_step(md->restore[i]) != SQLITE_DONE)
			die("restore", sqlite3_errmsg(md->restorer));
		sqlite3_reset(md->restore[i]);
	}
}

static void
open_mode(int m)
{
	struct mode *md = &modes[m];
	snprintf(md->db, sizeof md->db, "%s/schedule-%d.db", dir, m);
	md->outfd = memfd_create("fuzz-request-out", 0);
	if (md->outfd < 0 || (md->out = fdopen(md->outfd, "w+")) == NULL)
		abort();
	struct dd_sched_opts o;
	dd_sched_defaults(&o);
	o.db = md->db;
	if (m == 1) {
		o.has_now = 1;
		o.now = 1795651200000;	/* 2026-11-26T00:00:00Z */
	}
	o.out = md->out;
	if (dd_sched_open(&md->s, &o))
		die("open", dd_errmsg());
	/* The restorer writes nothing the test needs on disk: no syncs. */
	if (sqlite3_open_v2(md->db, &md->restorer, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		die("restorer", sqlite3_errmsg(md->restorer));
	sqlite3_busy_timeout(md->restorer, 10000);
	char *attach = sqlite3_mprintf("PRAGMA synchronous=OFF; ATTACH %Q AS t", tmpl);
	sql_exec(md->restorer, attach);
	sqlite3_free(attach);
	restore_prepare(md);
}

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
	make_template();
	for (int m = 0; m < 2; m++)
		open_mode(m);
	if ((infd = memfd_create("fuzz-request-in", 0)) < 0)
		abort();
}

/* The filter over the input, from its start; what it wrote in outbuf. */
static int
run(struct mode *md, int csv)
{
	struct dd_filter_opts fo;
	dd_filter_defaults(&fo);
	fo.input = "fuzz";
	fo.quiet = 1;
	fo.progress = 0;
	/* The filter closes the fd it reads (the CSV feed reads a copy of
	 * its own): each pass gets a copy, from the input's start. */
	lseek(infd, 0, SEEK_SET);
	if ((fo.fd = dup(infd)) < 0)
		abort();
	rewind(md->out);
	if (ftruncate(md->outfd, 0))
		abort();
	int code = dd_sched_filter(md->s, &fo, csv);
	/* Memory back to where it was: a leak check sees what a run kept. */
	dd_sched_forget(md->s);
	struct stat a, b;
	if (fstat(fo.fd, &a) == 0 && fstat(infd, &b) == 0 && a.st_ino == b.st_ino &&
	    a.st_dev == b.st_dev)
		close(fo.fd);	/* not closed by the loop (CSV, or it did not start) */
	if (fflush(md->out))
		abort();
	long n = ftell(md->out);
	dd_buf_reset(&outbuf);
	dd_buf_grow(&outbuf, (size_t)n + 1);
	if (n < 0 || pread(md->outfd, outbuf.p, (size_t)n, 0) != n)
		abort();
	outbuf.len = (size_t)n;
	return code;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (dir[0] == '\0')
		setup();
	if (size < 1)
		return 0;
	int csv = data[0] & 1;
	struct mode *md = &modes[(data[0] & 2) != 0];
	if (ftruncate(infd, 0) ||
	    (size > 1 && pwrite(infd, data + 1, size - 1, 0) != (ssize_t)(size - 1)))
		abort();
	restore(md);

	for (int pass = 0; pass < 2; pass++) {
		int code = run(md, csv);
		if (code != 0 && code != 1) {
			fprintf(stderr, "fuzz-request: pass %d: exit %d: %s\n", pass + 1, code,
			    dd_errmsg());
			abort();
		}
		/* Every line written is an event the schemas accept. */
		for (char *p = outbuf.p, *end = outbuf.p + outbuf.len; p < end;) {
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
			fprintf(stderr, "pass %d: exit %d, %zu bytes out, hash %016llx\n", pass + 1,
			    code, outbuf.len,
			    (unsigned long long)dd_hash64(outbuf.p, outbuf.len));
		/* The replay emits nothing new. */
		if (pass == 1 && outbuf.len) {
			fprintf(stderr, "fuzz-request: the replay emitted:\n%.*s", (int)outbuf.len,
			    outbuf.p);
			abort();
		}
	}
	return 0;
}
