/*
 * dd-schedule: the Scheduler of the drone-delivery design. As a filter it
 * reads delivery requests (and delivery.status feedback), records each as
 * a durable work item, registers its package, assigns a drone and emits
 * the events of each step; `supervise` (cron) retries or compensates what
 * is stuck; get, list, stats and fleet answer from its store.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ddtime.h"
#include "exitcodes.h"
#include "filter.h"
#include "out.h"
#include "schedule.h"
#include "util.h"

enum { K_DB = 1, K_FLEET, K_CSV, K_NOW, K_LEAD, K_TIMEOUT, K_STATE, K_FORMAT, K_INSPECTION,
	K_MAX_ATTEMPTS, K_OWNER, K_MONTH, K_WINDOW };

static const struct dd_opt store_opts[] = {
	{ "db", 0, "FILE", "the store (default $DD_HOME/schedule.db)", K_DB, 0 },
	DD_OPT_QUIET_ENTRY,
	DD_OPT_END,
};
static const struct dd_opt filter_opts[] = {
	{ "fleet", 0, "FILE", "import this fleet CSV first", K_FLEET, 0 },
	{ "csv", 0, NULL, "requests are CSV with dotted headers (pickup.lat); one FILE at most",
		K_CSV, 0 },
	{ "now", 0, "TIME", "fix the clock (default: the input's own times; supervise: now)",
		K_NOW, 0 },
	{ "lead", 0, "DUR", "a request arrives this long before its pickup (default 1h)",
		K_LEAD, 0 },
	{ "inspection", 0, "DUR", "a failed drone is out of service this long after it returned "
		"(default 1h)", K_INSPECTION, 0 },
	{ "window", 0, "DUR", "requests this close in request time compete: expedited first, then "
		"by deadline (default 5m; 0: first come, first served)", K_WINDOW, 0 },
	DD_FILTER_OPTIONS("5000"),
	DD_OPT_END,
};
static const struct dd_opt supervise_opts[] = {
	{ "now", 0, "TIME", "fix the clock (default: the input's own times; supervise: now)",
		K_NOW, 0 },
	{ "timeout", 0, "DUR", "supervise: no progress this long after the pickup ETA "
		"(default 15m)", K_TIMEOUT, 0 },
	{ "max-attempts", 0, "N", "supervise: deliveries (flights) a request may have before it is "
		"compensated (default 3)", K_MAX_ATTEMPTS, 0 },
	DD_OPT_END,
};
static const struct dd_opt now_opts[] = {
	{ "now", 0, "TIME", "fix the clock (default: the input's own times; supervise: now)",
		K_NOW, 0 },
	DD_OPT_END,
};
static const struct dd_opt list_opts[] = {
	{ "state", 0, "STATE", "list: only work items in this state", K_STATE, 0 },
	{ "format", 0, "FMT", "ndjson (default), csv, tsv or table", K_FORMAT, 0 },
	DD_OPT_END,
};
static const struct dd_opt format_opts[] = {
	{ "format", 0, "FMT", "ndjson (default), csv, tsv or table", K_FORMAT, 0 },
	DD_OPT_END,
};
static const struct dd_opt util_opts[] = {
	{ "owner", 0, "OWNER", "utilization: only this owner", K_OWNER, 0 },
	{ "month", 0, "YYYY-MM", "utilization: only this month (UTC, of departure)", K_MONTH, 0 },
	{ "format", 0, "FMT", "ndjson (default), csv, tsv or table", K_FORMAT, 0 },
	DD_OPT_END,
};
static const struct dd_opt import_opts[] = {
	{ "rejects", 0, "FILE", "append a record of each rejected line to FILE",
		DD_OPT_REJECTS, 0 },
	DD_OPT_END,
};

static const char *const states[] = { "waiting", "scheduled", "in-progress", "completed",
	"cancelled", "rejected", "failed" };

struct ctx {
	struct dd_sched_opts so;
	struct dd_filter_opts fo;
	char *db;
	const char *fleet, *state, *owner, *month;
	int csv;
	enum dd_fmt fmt;
};

static int
set(void *vc, int key, const char *arg, const char *arg2)
{
	struct ctx *c = vc;
	int64_t ms;
	switch (key) {
	case K_DB:
		free(c->db);
		c->db = dd_strdup(arg);
		return 0;
	case K_FLEET:
		c->fleet = arg;
		return 0;
	case K_CSV:
		c->csv = 1;
		return 0;
	case K_NOW:
		c->so.has_now = 1;
		return dd_time_arg(arg, dd_now_ms(), &c->so.now);
	case K_LEAD:
	case K_TIMEOUT:
	case K_INSPECTION:
	case K_WINDOW:
		if (strcmp(arg, "0") == 0)
			ms = 0;	/* no unit needed for none */
		else if (dd_duration_parse(arg, &ms))
			return -1;
		if (ms < 0) {
			dd_seterr("must not be negative");
			return -1;
		}
		*(key == K_LEAD ? &c->so.lead_ms : key == K_TIMEOUT ? &c->so.timeout_ms
		    : key == K_WINDOW ? &c->so.window_ms : &c->so.inspection_ms) = ms;
		return 0;
	case K_MAX_ATTEMPTS: {
		uint64_t n;
		if (dd_parse_u64(arg, 1, 1000, &n))
			return -1;
		c->so.max_attempts = (int)n;
		return 0;
	}
	case K_OWNER:
		c->owner = arg;
		return 0;
	case K_MONTH: {
		int y, m;
		char end;
		if (strlen(arg) != 7 || sscanf(arg, "%4d-%2d%c", &y, &m, &end) != 2 || m < 1 ||
		    m > 12 || arg[4] != '-') {
			dd_seterr("not a month (YYYY-MM)");
			return -1;
		}
		c->month = arg;
		return 0;
	}
	case K_STATE:
		if (!dd_sched_state_valid(arg))
			return dd_cli_bad_choice(arg, "a state", states,
			    (int)(sizeof states / sizeof states[0]));
		c->state = arg;
		return 0;
	case K_FORMAT:
		return dd_fmt_parse(arg, 1u << DD_FMT_NDJSON | 1u << DD_FMT_CSV |
		    1u << DD_FMT_TSV | 1u << DD_FMT_TABLE, &c->fmt);
	}
	return dd_filter_setopt(&c->fo, key, arg) == 0 ? 0 : -1;
}

/* Open the store (read-only for the questions) and run fn on it. */
static int
with_store(struct ctx *c, int readonly, int (*fn)(struct ctx *, struct dd_sched *, char **),
    char **argv)
{
	if (c->db == NULL)
		c->db = dd_default_path("schedule.db");
	c->so.db = c->db;
	c->so.readonly = readonly;
	struct dd_sched *s;
	int code = dd_sched_open(&s, &c->so);
	if (code)
		return code;
	code = fn(c, s, argv);
	dd_sched_close(s);
	return code;
}

static int
import(struct ctx *c, struct dd_sched *s, const char *path)
{
	uint64_t ok, bad;
	int code = dd_sched_fleet_import(s, path, c->fo.rejects, &ok, &bad);
	if (code != DD_EXIT_IO && !c->fo.quiet)
		dd_warn("%s: %llu drones imported, %llu rows rejected",
		    strcmp(path, "-") ? path : "stdin", (unsigned long long)ok,
		    (unsigned long long)bad);
	return code;
}

static int
filter(struct ctx *c, struct dd_sched *s, char **argv)
{
	int code = c->fleet ? import(c, s, c->fleet) : DD_EXIT_OK;
	if (code == DD_EXIT_IO)
		return code;
	int fc = dd_sched_filter(s, &c->fo, c->csv);
	return fc != DD_EXIT_OK || code == DD_EXIT_OK ? fc : code;
}

static int
run_filter(void *vc, int argc, char **argv)
{
	struct ctx *c = vc;
	int fd = -1;
	if (c->csv && argc > 1)
		return dd_cli_usage_error("--csv reads one FILE at most");
	if (c->csv && argc == 1 && strcmp(argv[0], "-") != 0) {
		/* The CSV reader takes one stream: hand it the file's. */
		if ((fd = open(argv[0], O_RDONLY | O_CLOEXEC)) < 0) {
			dd_seterr("%s: %s", argv[0], strerror(errno));
			return DD_EXIT_IO;
		}
		c->fo.fd = fd;
		c->fo.input = argv[0];
	} else if (!c->csv) {
		c->fo.files = argv;
		c->fo.nfiles = argc;
	}
	int code = with_store(c, 0, filter, argv);
	if (fd >= 0)
		close(fd);
	return code;
}

static int
supervise(struct ctx *c, struct dd_sched *s, char **argv)
{
	struct dd_buf sum = { 0 };
	int code = dd_sched_supervise(s, &sum);
	if (code == DD_EXIT_BUSY)
		dd_seterr("%s: another supervisor is running", c->db);
	if (sum.len && !c->fo.quiet)
		dd_warn("%s", sum.p);
	dd_buf_free(&sum);
	return code;
}

static int
get(struct ctx *c, struct dd_sched *s, char **argv)
{
	return dd_sched_get_many(s, argv, stdout);
}

static int
list(struct ctx *c, struct dd_sched *s, char **argv)
{
	return dd_sched_list(s, c->state, c->fmt, stdout);
}

static int
stats(struct ctx *c, struct dd_sched *s, char **argv)
{
	return dd_sched_stats(s, stdout);
}

static int
utilization(struct ctx *c, struct dd_sched *s, char **argv)
{
	return dd_sched_utilization(s, c->owner, c->month, c->fmt, stdout);
}

static int
fleet_import(struct ctx *c, struct dd_sched *s, char **argv)
{
	return import(c, s, argv[0]);
}

static int
fleet_return(struct ctx *c, struct dd_sched *s, char **argv)
{
	int code = dd_sched_fleet_return(s, argv[0]);
	if (code == DD_EXIT_REJECTED)
		dd_warn("%s", dd_errmsg());
	return code;
}

static int
fleet_list(struct ctx *c, struct dd_sched *s, char **argv)
{
	return dd_sched_fleet_list(s, c->fmt, stdout);
}

static int run_supervise(void *c, int n, char **v) { return with_store(c, 0, supervise, v); }
static int run_get(void *c, int n, char **v) { return with_store(c, 1, get, v); }
static int run_list(void *c, int n, char **v) { return with_store(c, 1, list, v); }
static int run_stats(void *c, int n, char **v) { return with_store(c, 1, stats, v); }
static int run_util(void *c, int n, char **v) { return with_store(c, 1, utilization, v); }
static int run_import(void *c, int n, char **v) { return with_store(c, 0, fleet_import, v); }
static int run_fleet(void *c, int n, char **v) { return with_store(c, 1, fleet_list, v); }
static int run_return(void *c, int n, char **v) { return with_store(c, 0, fleet_return, v); }

static const struct dd_opt *const filter_tables[] = { store_opts, filter_opts, NULL };
static const struct dd_opt *const supervise_tables[] = { store_opts, supervise_opts, NULL };
static const struct dd_opt *const list_tables[] = { store_opts, list_opts, NULL };
static const struct dd_opt *const format_tables[] = { store_opts, format_opts, NULL };
static const struct dd_opt *const util_tables[] = { store_opts, util_opts, NULL };
static const struct dd_opt *const import_tables[] = { store_opts, import_opts, NULL };
static const struct dd_opt *const store_tables[] = { store_opts, NULL };
static const struct dd_opt *const return_tables[] = { store_opts, now_opts, NULL };

static const struct dd_cmd cmds[] = {
	{ NULL, "[FILE...]", 0, -1, filter_tables, run_filter, 1 },
	{ "supervise", NULL, 0, 0, supervise_tables, run_supervise },
	{ "get", "ID...", 1, -1, store_tables, run_get },
	{ "list", NULL, 0, 0, list_tables, run_list },
	{ "stats", NULL, 0, 0, store_tables, run_stats },
	{ "utilization", NULL, 0, 0, util_tables, run_util },
	{ "fleet import", "FILE", 1, 1, import_tables, run_import },
	{ "fleet list", NULL, 0, 0, format_tables, run_fleet },
	{ "fleet return", "DRONE", 1, 1, return_tables, run_return },
	{ NULL, NULL, 0, 0, NULL, NULL },
};

int
main(int argc, char *argv[])
{
	struct ctx c = { .fmt = DD_FMT_NDJSON };
	dd_filter_defaults(&c.fo);
	dd_sched_defaults(&c.so);
	struct dd_prog p = {
		.name = "dd-schedule",
		.about = "With no command, read delivery requests (NDJSON, or CSV with --csv) and\n"
		    "delivery.status events from the FILEs (or stdin); write package.registered,\n"
		    "delivery.scheduled and the other scheduler events on stdout. States of\n"
		    "work items: waiting, scheduled, in-progress, completed, cancelled,\n"
		    "rejected, failed. See dd-schedule(1).\n",
		.cmds = cmds,
		.set = set,
		.commits = 1,
		.ctx = &c,
	};
	int rc = dd_cli_main(&p, argc, argv);
	free(c.db);
	return rc;
}
