/*
 * dd-history: the Delivery History lookup store. As a filter it reads
 * delivery.* events and keeps, per delivery, its summary and every event
 * as the original line; get, list and stats answer from history.db.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ddtime.h"
#include "exitcodes.h"
#include "filter.h"
#include "history.h"
#include "lake.h"
#include "stage.h"
#include "out.h"
#include "util.h"

static enum dd_verdict
on_event(void *ctx, const struct dd_line *l, const struct dd_env *e)
{
	return dd_history_ingest_event(ctx, e, l->p, l->n);
}

static int
on_commit(void *ctx)
{
	return dd_history_ingest_commit(ctx);
}

static void
on_summary(void *ctx, struct dd_buf *b)
{
	struct dd_history_istats st;
	dd_history_ingest_stats(ctx, &st);
	dd_buf_printf(b, "; stored %" PRIu64 " events (%" PRIu64 " duplicates), %" PRIu64
	    " new deliveries", st.events, st.duplicates, st.deliveries);
	if (st.archived)
		dd_buf_printf(b, "; %" PRIu64 " events of archived deliveries appended to the lake",
		    st.archived);
}

static int
run_filter(const char *db, const char *lake, const char *dataset,
    const struct dd_filter_opts *fo)
{
	struct dd_store s;
	int rc = dd_history_open(&s, db);
	if (rc)
		return rc;
	struct dd_history_ingest *h = dd_history_ingest_new(&s);
	if (h == NULL) {
		dd_store_close(&s);
		return DD_EXIT_IO;
	}
	dd_history_ingest_lake(h, lake, dataset);
	static const char *const families[] = { "delivery.", NULL };
	struct dd_filter_ops ops = { .event = on_event, .commit = on_commit, .families = families,
		.summary = on_summary, .store = &s };
	rc = dd_filter_run(fo, &ops, h, NULL);
	dd_history_ingest_free(h);
	dd_store_close(&s);
	return rc;
}

enum { K_DB = 1, K_OWNER, K_STAGE, K_SINCE, K_UNTIL, K_FORMAT, K_LAKE, K_DATASET };

static const struct dd_opt store_opts[] = {
	{ "db", 0, "FILE", "the store (default $DD_HOME/history.db)", K_DB, 0 },
	DD_OPT_QUIET_ENTRY,
	DD_OPT_END,
};
static const struct dd_opt filter_opts[] = {
	{ "lake", 'l', "LAKE", "where events of archived deliveries go (default $DD_HOME/lake)",
		K_LAKE, 0 },
	{ "dataset", 0, "NAME", "their dataset there (default events)", K_DATASET, 0 },
	DD_FILTER_OPTIONS("50000"),
	DD_OPT_END,
};
static const struct dd_opt list_opts[] = {
	{ "owner", 0, "O", "only deliveries of this owner", K_OWNER, 0 },
	{ "stage", 0, "S", "only deliveries at this stage", K_STAGE, 0 },
	{ "since", 0, "T", "only deliveries created at or after T", K_SINCE, 0 },
	{ "until", 0, "T", "only deliveries created before T", K_UNTIL, 0 },
	{ "format", 0, "FMT", "ndjson (default), csv, tsv or table", K_FORMAT, 0 },
	DD_OPT_END,
};

struct ctx {
	char *db, *lake;
	const char *dataset;
	struct dd_filter_opts fo;
	struct dd_history_query q;
	enum dd_fmt fmt;
	int64_t now;
};

static int
set(void *vc, int key, const char *arg, const char *arg2)
{
	struct ctx *c = vc;
	switch (key) {
	case K_DB:
		free(c->db);
		c->db = dd_strdup(arg);
		return 0;
	case K_LAKE:
		free(c->lake);
		c->lake = dd_strdup(arg);
		return 0;
	case K_DATASET:
		if (!dd_lake_dataset_ok(arg))
			return -1;
		c->dataset = arg;
		return 0;
	case K_OWNER:
		c->q.owner = arg;
		return 0;
	case K_STAGE:
		if (!dd_history_stage_ok(arg)) {
			const char *names[DD_NSTAGES];
			int n = 0;
			for (int i = 0; i < DD_NSTAGES; i++)
				if (dd_stage_known(i, DD_STAGE_HISTORY))
					names[n++] = dd_stage_name((enum dd_stage)i);
			return dd_cli_bad_choice(arg, "a stage", names, n);
		}
		c->q.stage = arg;
		return 0;
	case K_SINCE:
		return dd_time_arg(arg, c->now, &c->q.since_ms);
	case K_UNTIL:
		return dd_time_arg(arg, c->now, &c->q.until_ms);
	case K_FORMAT:
		return dd_fmt_parse(arg, 1u << DD_FMT_NDJSON | 1u << DD_FMT_CSV |
		    1u << DD_FMT_TSV | 1u << DD_FMT_TABLE, &c->fmt);
	}
	return dd_filter_setopt(&c->fo, key, arg) == 0 ? 0 : -1;
}

static const char *
db(struct ctx *c)
{
	if (c->db == NULL)
		c->db = dd_default_path("history.db");	/* kept for the run */
	return c->db;
}

static int
run(void *vc, int argc, char **argv)
{
	struct ctx *c = vc;
	c->fo.files = argv;
	c->fo.nfiles = argc;
	if (c->lake == NULL)
		c->lake = dd_default_path("lake");
	return run_filter(db(c), c->lake, c->dataset, &c->fo);
}

static int
get(void *c, struct dd_store *s, char **argv)
{
	/* Lookups come fast: big writes. */
	static char obuf[1 << 16];
	setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
	return dd_history_get(s, argv, stdout);
}

static int
list(void *vc, struct dd_store *s, char **argv)
{
	struct ctx *c = vc;
	return dd_history_list(s, &c->q, c->fmt, stdout) ? DD_EXIT_IO : DD_EXIT_OK;
}

static int
stats(void *c, struct dd_store *s, char **argv)
{
	return dd_history_stats(s, stdout) ? DD_EXIT_IO : DD_EXIT_OK;
}

/* The questions: one read-only look at the store each. */
static int run_get(void *c, int n, char **v) { return dd_store_read(db(c), get, c, v); }
static int run_list(void *c, int n, char **v) { return dd_store_read(db(c), list, c, v); }
static int run_stats(void *c, int n, char **v) { return dd_store_read(db(c), stats, c, v); }

static const struct dd_opt *const filter_tables[] = { store_opts, filter_opts, NULL };
static const struct dd_opt *const list_tables[] = { store_opts, list_opts, NULL };
static const struct dd_opt *const store_tables[] = { store_opts, NULL };

static const struct dd_cmd cmds[] = {
	{ NULL, "[FILE...]", 0, -1, filter_tables, run, 1 },
	{ "get", "ID...", 1, -1, store_tables, run_get },
	{ "list", NULL, 0, 0, list_tables, run_list },
	{ "stats", NULL, 0, 0, store_tables, run_stats },
	{ NULL, NULL, 0, 0, NULL, NULL },
};

int
main(int argc, char *argv[])
{
	struct ctx c = { .q = { NULL, NULL, INT64_MIN, INT64_MAX }, .fmt = DD_FMT_NDJSON,
		.dataset = DD_LAKE_DATASET_DEFAULT,
		.now = dd_now_ms() };
	dd_filter_defaults(&c.fo);
	/* Commits cost an fsync each; a writer thread commits smaller
	 * batches in the background anyway (see lib/svc/history-ingest.c). */
	c.fo.batch = 50000;
	struct dd_prog p = {
		.name = "dd-history",
		.about = "With no command, read delivery.* events from the FILEs (or stdin) into\n"
		    "history.db. get prints one delivery with its events, list the deliveries\n"
		    "matching every filter given (created time in [--since, --until)), stats\n"
		    "the counts. See dd-history(1).\n",
		.cmds = cmds,
		.set = set,
		.commits = 1,
		.ctx = &c,
	};
	int rc = dd_cli_main(&p, argc, argv);
	free(c.db);
	free(c.lake);
	return rc;
}
