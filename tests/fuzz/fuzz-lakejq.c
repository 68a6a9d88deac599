/*
 * libFuzzer target: the jq filter path of dd-lake-query (dd_query_new
 * compiling -e PROGRAM, dd_query_run applying it to every event of a small
 * fixed lake), with the options the first byte chooses. A program the
 * user types is untrusted input: it may fail to compile (a usage error)
 * or fail on events (reported, exit 1), never crash or fail the lake.
 *
 * Input: byte 0 chooses --no-dedupe (bit 0), CSV output of two fields
 * (bit 1), the jq-free fast path (bit 2), --count (bit 3), --id e3 (bit
 * 4), --limit 2 (bit 5); the rest, up to a NUL, is the program. Programs
 * that can run without end (recursion, repeat, while, until, range,
 * limit, input) are skipped: they would only be timeouts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ddtime.h"
#include "lake.h"
#include "query.h"
#include "util.h"

/*
 * libjq 1.6 (Debian's libjq1) leaks when a program has a syntax error
 * after a string literal (an unterminated "...): the 21-byte default
 * "text" format of the literal, as bison frees no mid-rule value on an
 * error. Fixed upstream by https://github.com/jqlang/jq/pull/2771 (jq
 * 1.7). Found here; the input is kept in tests/fuzz/crashes/lakejq/.
 * The suppression names jq_parse, so leaks of ours stay reported: it
 * needs whole stacks through libjq (built without frame pointers), hence
 * the slow unwinder, in this target only.
 */
const char *__asan_default_options(void);
const char *__lsan_default_suppressions(void);
const char *
__asan_default_options(void)
{
	return "fast_unwind_on_malloc=0";
}
const char *
__lsan_default_suppressions(void)
{
	return "leak:jq_parse\n";
}

static char root[64], lake[96];
static FILE *devnull;

static void
rmtree(void)
{
	char cmd[160];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	if (system(cmd) != 0)
		return;
}

static void
ev(struct dd_lake_writer *w, const char *id, const char *time, const char *data)
{
	char line[512];
	int n = snprintf(line, sizeof line, "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"/t\","
	    "\"type\":\"x.t\",\"time\":\"%s\",\"subject\":\"s-%s\",\"data\":%s}", id, time, id, data);
	int64_t ms;
	char sub[32];
	snprintf(sub, sizeof sub, "s-%s", id);
	if (dd_time_parse(time, strlen(time), &ms) ||
	    dd_lake_add(w, line, (size_t)n, &(struct dd_lake_ev){ .time_ms = ms, .id = id,
	    .idlen = strlen(id), .subject = sub, .sublen = strlen(sub), .type = "x.t",
	    .typelen = 3 }) < 0)
		abort();
}

static void
setup(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(root, sizeof root, "%s/dd-fuzz-lakejq.XXXXXX", base);
	if (mkdtemp(root) == NULL)
		abort();
	atexit(rmtree);
	snprintf(lake, sizeof lake, "%s/lake", root);
	struct dd_lake_writer *w = dd_lake_writer_open(lake, "events", NULL);
	if (w == NULL)
		abort();
	ev(w, "e1", "2026-11-26T01:00:00Z", "{\"n\":1,\"a\":[1,2,{\"b\":null}],\"s\":\"x\"}");
	ev(w, "e2", "2026-11-26T02:00:00Z", "{\"n\":1e400,\"big\":123456789012345678901234567890}");
	ev(w, "e3", "2026-11-27T03:00:00Z", "{\"s\":\"\\u00e9\\ud83d\\ude00\\n\",\"o\":{\"k\":{\"k\":[]}}}");
	ev(w, "e1", "2026-11-26T01:00:00Z", "{\"n\":1,\"a\":[1,2,{\"b\":null}],\"s\":\"x\"}");
	if (dd_lake_writer_close(w))
		abort();
	devnull = fopen("/dev/null", "w");
	if (devnull == NULL)
		abort();
}

static void
quiet(void *ctx, const char *msg)
{
	(void)ctx;
	(void)msg;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (lake[0] == '\0')
		setup();
	if (size < 1)
		return 0;
	char *prog = dd_strndup((const char *)data + 1, size - 1);
	static const char *const endless[] = { "def", "repeat", "while", "until", "range",
		"limit", "input", "recurse", "..", "env", "$__loc__", "getpath", "splits" };
	for (size_t i = 0; i < sizeof endless / sizeof endless[0]; i++)
		if (strstr(prog, endless[i])) {
			free(prog);
			return 0;
		}
	struct dd_query_opts o;
	dd_query_defaults(&o);
	o.lake = lake;
	o.dataset = "events";
	o.filter = prog[0] ? prog : NULL;
	o.jobs = 1;
	o.quiet = 1;
	o.diag = quiet;
	o.dedupe = !(data[0] & 1);
	static const char *const fields[] = { "id", "data.n" };
	if (data[0] & 2) {
		o.fields = fields;
		o.nfields = 2;
		o.fmt = DD_FMT_CSV;
	}
	o.jq_fast = !!(data[0] & 4);
	o.count = !!(data[0] & 8) && !(data[0] & 2);
	static const char *const ids[] = { "e3" };
	if (data[0] & 16) {
		o.ids = ids;
		o.nids = 1;
	}
	if (data[0] & 32)
		o.limit = 2;
	struct dd_query *q = dd_query_new(&o);
	if (q != NULL) {
		int rc = dd_query_run(q, devnull);
		dd_query_free(q);
		if (rc != 0 && rc != 1) {
			fprintf(stderr, "fuzz-lakejq: exit %d for %s (%s)\n", rc, prog, dd_errmsg());
			abort();
		}
	}
	free(prog);
	return 0;
}
