/*
 * libFuzzer target: the event handling of dd-track (dd_track_event, its
 * stage engine, duplicate memory and status events) and of dd-history
 * (dd_history_ingest_event), over the same lines as the filter loop gives
 * them, on fresh stores; then a commit, and a second pass of the same
 * lines (a replay) on the stores as committed. Events are untrusted
 * input: a line may be rejected, never crash, never be a store failure.
 *
 * Input: NDJSON lines (the first byte, when it is not '{', is dropped:
 * room for libFuzzer to mutate). Short inputs with a few lines are the
 * point: the corpus holds a delivery's whole life and its variants.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event.h"
#include "filter.h"
#include "history.h"
#include "line.h"
#include "store.h"
#include "track.h"
#include "util.h"

static char dir[64], tdb[96], hdb[96];
static FILE *devnull;

static void
rm_db(const char *p)
{
	static const char *const sfx[] = { "", "-wal", "-shm", "-journal", ".lock" };
	char b[128];
	for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
		snprintf(b, sizeof b, "%s%s", p, sfx[i]);
		unlink(b);
	}
}

static void
cleanup(void)
{
	rm_db(tdb);
	rm_db(hdb);
	rmdir(dir);
}

static void __attribute__((noreturn))
fail(const char *what)
{
	fprintf(stderr, "fuzz-events: %s: %s\n", what, dd_errmsg());
	abort();
}

static void
setup(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof dir, "%s/dd-fuzz-events.XXXXXX", base);
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(tdb, sizeof tdb, "%s/track.db", dir);
	snprintf(hdb, sizeof hdb, "%s/history.db", dir);
	atexit(cleanup);
	devnull = fopen("/dev/null", "w");
	if (devnull == NULL)
		abort();
}

/* Every line through both consumers, then a commit of each. */
static void
pass(const char *p, size_t n)
{
	struct dd_track_opts to;
	dd_track_defaults(&to);
	to.out = devnull;
	struct dd_track *t;
	if (dd_track_open(&t, tdb, &to))
		fail("track store");
	struct dd_store s;
	if (dd_history_open(&s, hdb))
		fail("history store");
	struct dd_history_ingest *h = dd_history_ingest_new(&s);
	if (h == NULL)
		fail("history statements");
	struct dd_line l = { 0 };
	const char *e = p + n;
	for (const char *q = p; q < e; ) {
		const char *nl = memchr(q, '\n', (size_t)(e - q));
		size_t len = nl ? (size_t)(nl - q) : (size_t)(e - q);
		l.p = (char *)q;
		l.n = len;
		l.fulllen = len;
		l.lineno++;
		l.off = (uint64_t)(q - p);
		struct dd_env env;
		if (dd_env_scan(q, len, &env) == 0) {
			if (dd_track_event(t, &l, &env) == DD_FAIL)
				fail("dd_track_event");
			if (dd_history_ingest_event(h, &env, q, len) == DD_FAIL)
				fail("dd_history_ingest_event");
		}
		q += len + 1;
	}
	if (dd_track_commit(t))
		fail("track commit");
	if (dd_history_ingest_commit(h))
		fail("history commit");
	dd_history_ingest_free(h);
	dd_store_close(&s);
	dd_track_close(t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (dir[0] == '\0')
		setup();
	if (size > 0 && data[0] != '{') {
		data++;
		size--;
	}
	rm_db(tdb);
	rm_db(hdb);
	/* A copy: the consumers may keep pointers into the line no longer
	 * than the call, and the input must not be written. */
	char *p = dd_malloc(size + 1);
	memcpy(p, data, size);
	p[size] = '\0';
	pass(p, size);
	pass(p, size);	/* a replay onto the committed stores */
	free(p);
	return 0;
}
