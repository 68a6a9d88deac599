/*
 * dd-package: the Package service. A filter that keeps package documents
 * by id in package.db from package.* events; get, list, summary, stats
 * answer from the store and import loads documents from CSV.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ddtime.h"
#include "exitcodes.h"
#include "filter.h"
#include "out.h"
#include "package.h"
#include "util.h"

enum { K_DB = 1, K_OWNER, K_MONTH, K_FORMAT, K_CSV, K_NOW };

static const struct dd_opt store_opts[] = {
	{ "db", 0, "FILE", "the store (default $DD_HOME/package.db)", K_DB, 0 },
	DD_OPT_QUIET_ENTRY,
	DD_OPT_END,
};
static const struct dd_opt filter_opts[] = {
	DD_FILTER_OPTIONS("20000"),
	DD_OPT_END,
};
static const struct dd_opt list_opts[] = {
	{ "owner", 0, "ID", "the packages of one owner (required by summary)", K_OWNER, 0 },
	{ "format", 0, "FMT", "ndjson (default), csv, tsv or table", K_FORMAT, 0 },
	DD_OPT_END,
};
static const struct dd_opt summary_opts[] = {
	{ "owner", 0, "ID", "the packages of one owner (required by summary)", K_OWNER,
		DD_CLI_REQUIRED },
	{ "format", 0, "FMT", "ndjson (default), csv, tsv or table", K_FORMAT, 0 },
	{ "month", 0, "YYYY-MM", "summary: registered in that month (UTC)", K_MONTH, 0 },
	DD_OPT_END,
};
static const struct dd_opt import_opts[] = {
	{ "csv", 0, "FILE", "import: CSV with a header row: packageId, ownerId, size, "
		"weightKg[, deliveryId, tag]", K_CSV, DD_CLI_REQUIRED },
	{ "now", 0, "TIME", "import: the time documents are registered at (default now)",
		K_NOW, 0 },
	{ "rejects", 0, "FILE", "append a record of each rejected line to FILE",
		DD_OPT_REJECTS, 0 },
	{ "strict", 0, NULL, "stop at the first bad line (exit 3)", DD_OPT_STRICT, 0 },
	{ "batch", 0, "N", "commit after N lines (default 20000)", DD_OPT_BATCH, 0 },
	DD_OPT_END,
};

struct ctx {
	const char *db, *owner, *month, *csv;
	char *defdb;		/* the default path, when --db is not given */
	int64_t now;
	enum dd_fmt fmt;
	struct dd_filter_opts fo;
};

static int
set(void *vc, int key, const char *arg, const char *arg2)
{
	struct ctx *c = vc;
	int y, m;
	char extra;
	switch (key) {
	case K_DB:
		c->db = arg;
		return 0;
	case K_OWNER:
		c->owner = arg;
		return 0;
	case K_MONTH:
		if (strlen(arg) != 7 || sscanf(arg, "%4d-%2d%c", &y, &m, &extra) != 2 ||
		    m < 1 || m > 12) {
			dd_seterr("\"%s\" is not YYYY-MM", arg);
			return -1;
		}
		c->month = arg;
		return 0;
	case K_FORMAT:
		return dd_fmt_parse(arg, 1u << DD_FMT_NDJSON | 1u << DD_FMT_CSV |
		    1u << DD_FMT_TSV | 1u << DD_FMT_TABLE, &c->fmt);
	case K_CSV:
		c->csv = arg;
		return 0;
	case K_NOW:
		return dd_time_arg(arg, dd_now_ms(), &c->now);
	}
	return dd_filter_setopt(&c->fo, key, arg) == 0 ? 0 : -1;
}

static const char *
db(struct ctx *c)
{
	if (c->db == NULL)
		c->db = c->defdb = dd_default_path("package.db");
	return c->db;
}

static int
run_filter(void *vc, int argc, char **argv)
{
	struct ctx *c = vc;
	c->fo.files = argv;
	c->fo.nfiles = argc;
	struct dd_package *p;
	int code = dd_package_open(&p, db(c));
	if (code == 0) {
		code = dd_package_filter(p, &c->fo);
		dd_package_close(p);
	}
	return code;
}

static int
run_import(void *vc, int argc, char **argv)
{
	struct ctx *c = vc;
	struct dd_package_import_stats st;
	int code = dd_package_import(db(c), c->csv, c->now, &c->fo, &st);
	if (code == DD_EXIT_USAGE)
		dd_warn("%s", dd_errmsg());
	if (code == DD_EXIT_STRICT)
		dd_warn("stopped at the first bad row (--strict)");
	if (st.read && !c->fo.quiet)
		dd_warn("import %s: rows %" PRIu64 ", stored %" PRIu64 ", unchanged %" PRIu64
		    ", rejected %" PRIu64, c->csv, st.rows, st.stored, st.unchanged, st.rejected);
	return code;
}

static int
get(void *c, struct dd_store *s, char **argv)
{
	return dd_package_get(s, argv, stdout);
}

static int
list(void *vc, struct dd_store *s, char **argv)
{
	struct ctx *c = vc;
	return dd_package_list(s, c->owner, c->fmt, stdout);
}

static int
summary(void *vc, struct dd_store *s, char **argv)
{
	struct ctx *c = vc;
	return dd_package_owner_summary(s, c->owner, c->month, c->fmt, stdout);
}

static int
stats(void *c, struct dd_store *s, char **argv)
{
	return dd_package_stats(s, stdout);
}

/* The questions: one read-only look at the store each. */
static int run_get(void *c, int n, char **v) { return dd_store_read(db(c), get, c, v); }
static int run_list(void *c, int n, char **v) { return dd_store_read(db(c), list, c, v); }
static int run_summary(void *c, int n, char **v) { return dd_store_read(db(c), summary, c, v); }
static int run_stats(void *c, int n, char **v) { return dd_store_read(db(c), stats, c, v); }

static const struct dd_opt *const filter_tables[] = { store_opts, filter_opts, NULL };
static const struct dd_opt *const list_tables[] = { store_opts, list_opts, NULL };
static const struct dd_opt *const summary_tables[] = { store_opts, summary_opts, NULL };
static const struct dd_opt *const import_tables[] = { store_opts, import_opts, NULL };
static const struct dd_opt *const store_tables[] = { store_opts, NULL };

static const struct dd_cmd cmds[] = {
	{ NULL, "[FILE...]", 0, -1, filter_tables, run_filter, 1 },
	{ "get", "ID...", 1, -1, store_tables, run_get },
	{ "list", NULL, 0, 0, list_tables, run_list },
	{ "summary", NULL, 0, 0, summary_tables, run_summary },
	{ "import", NULL, 0, 0, import_tables, run_import },
	{ "stats", NULL, 0, 0, store_tables, run_stats },
	{ NULL, NULL, 0, 0, NULL, NULL },
};

int
main(int argc, char *argv[])
{
	struct ctx c = { .fmt = DD_FMT_NDJSON, .now = dd_now_ms() };
	dd_filter_defaults(&c.fo);
	/* A commit (an fsync, and the pages the batch touched) every 20000
	 * events; a slow stream is still committed within --flush-interval. */
	c.fo.batch = 20000;
	struct dd_prog p = {
		.name = "dd-package",
		.about = "With no command, a filter: package.registered and package.removed events\n"
		    "from the FILEs (or stdin) create, replace and remove package documents\n"
		    "in the store. See dd-package(1).\n",
		.cmds = cmds,
		.set = set,
		.commits = 1,
		.ctx = &c,
	};
	int rc = dd_cli_main(&p, argc, argv);
	free(c.defdb);
	return rc;
}
