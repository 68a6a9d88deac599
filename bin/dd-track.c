/*
 * dd-track: the Delivery service. A filter that keeps the latest status
 * of each live delivery in track.db and adds a delivery.status event to
 * the stream after each stage change; get, list and stats answer from
 * the store.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "ddtime.h"
#include "exitcodes.h"
#include "filter.h"
#include "out.h"
#include "track.h"
#include "util.h"

/* Keep an ended delivery at most this long: beyond it, time arithmetic
 * on epoch milliseconds could overflow. */
#define RETAIN_MAX (100LL * 366 * 86400 * 1000)

enum { K_DB = 1, K_RETAIN, K_POSEVERY, K_ONLY, K_CACHE, K_STAGE, K_DRONE, K_FORMAT };

static const struct dd_opt store_opts[] = {
	{ "db", 0, "FILE", "the store (default $DD_HOME/track.db)", K_DB, 0 },
	DD_OPT_QUIET_ENTRY,
	DD_OPT_END,
};
static const struct dd_opt filter_opts[] = {
	{ "retain", 0, "DUR", "keep ended deliveries this long, in event time (default 1h)",
		K_RETAIN, 0 },
	{ "position-every", 0, "DUR", "also a status with the position, at most every DUR",
		K_POSEVERY, 0 },
	{ "only-status", 0, NULL, "write only the status events", K_ONLY, 0 },
	{ "cache", 0, "SIZE", "memory for live deliveries, e.g. 512M (default 512M)", K_CACHE, 0 },
	DD_FILTER_OPTIONS("1000000"),
	DD_OPT_END,
};
static const struct dd_opt list_opts[] = {
	{ "stage", 0, "STAGE", "only deliveries at this stage", K_STAGE, 0 },
	{ "drone", 0, "ID", "only deliveries of this drone", K_DRONE, 0 },
	{ "format", 0, "FMT", "ndjson (default), csv, tsv or table", K_FORMAT, 0 },
	DD_OPT_END,
};

struct ctx {
	const char *db;
	char *defdb;		/* the default path, when --db is not given */
	struct dd_track_opts o;
	struct dd_filter_opts fo;
	int stage;
	const char *drone;
	enum dd_fmt fmt;
};

static int
duration(const char *arg, int64_t min, int64_t *ms)
{
	if (dd_duration_parse(arg, ms))
		return -1;
	if (*ms < min || *ms > RETAIN_MAX) {
		dd_seterr("\"%s\" is out of range", arg);
		return -1;
	}
	return 0;
}

static int
set(void *vc, int key, const char *arg, const char *arg2)
{
	struct ctx *c = vc;
	uint64_t v;
	switch (key) {
	case K_DB:
		c->db = arg;
		return 0;
	case K_RETAIN:
		return duration(arg, 0, &c->o.retain_ms);
	case K_POSEVERY:
		return duration(arg, 1, &c->o.position_every_ms);
	case K_ONLY:
		c->o.only_status = 1;
		return 0;
	case K_CACHE:
		if (dd_parse_size(arg, 1, SIZE_MAX / 2, &v))
			return -1;
		c->o.cache_bytes = (size_t)v;
		return 0;
	case K_STAGE:
		if ((c->stage = dd_stage_parse(arg, DD_STAGE_TRACK)) < 0) {
			/* The stages it knows, unknown last. */
			const char *names[DD_NSTAGES];
			int n = 0;
			for (int i = 1; i <= DD_NSTAGES; i++)
				if (dd_stage_known(i % DD_NSTAGES, DD_STAGE_TRACK))
					names[n++] = dd_stage_name((enum dd_stage)(i % DD_NSTAGES));
			return dd_cli_bad_choice(arg, "a stage", names, n);
		}
		return 0;
	case K_DRONE:
		c->drone = arg;
		return 0;
	case K_FORMAT:
		return dd_fmt_parse(arg, 1u << DD_FMT_NDJSON | 1u << DD_FMT_CSV |
		    1u << DD_FMT_TSV | 1u << DD_FMT_TABLE, &c->fmt);
	}
	return dd_filter_setopt(&c->fo, key, arg) == 0 ? 0 : -1;
}

/* The store: --db, else the default under $DD_HOME. */
static const char *
db(struct ctx *c)
{
	if (c->db == NULL)
		c->db = c->defdb = dd_default_path("track.db");
	return c->db;
}

static int
run_filter(void *vc, int argc, char **argv)
{
	struct ctx *c = vc;
	/* Big writes: the output is as large as the input. */
	static char obuf[1 << 16];
	setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
	c->fo.files = argv;
	c->fo.nfiles = argc;
	struct dd_track *t;
	int code = dd_track_open(&t, db(c), &c->o);
	if (code == 0) {
		code = dd_track_filter(t, &c->fo);
		dd_track_close(t);
	}
	return code;
}

static int
get(void *c, struct dd_store *s, char **argv)
{
	/* Lookups come fast: big writes. */
	static char obuf[1 << 16];
	setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
	return dd_track_get(s, argv, stdout);
}

static int
list(void *vc, struct dd_store *s, char **argv)
{
	struct ctx *c = vc;
	return dd_track_list(s, c->stage, c->drone, c->fmt, stdout);
}

static int
stats(void *c, struct dd_store *s, char **argv)
{
	return dd_track_stats(s, stdout);
}

/* The questions: one read-only look at the store each. */
static int run_get(void *c, int n, char **v) { return dd_store_read(db(c), get, c, v); }
static int run_list(void *c, int n, char **v) { return dd_store_read(db(c), list, c, v); }
static int run_stats(void *c, int n, char **v) { return dd_store_read(db(c), stats, c, v); }

static const struct dd_opt *const filter_tables[] = { store_opts, filter_opts, NULL };
static const struct dd_opt *const list_tables[] = { store_opts, list_opts, NULL };
static const struct dd_opt *const store_tables[] = { store_opts, NULL };

static const struct dd_cmd cmds[] = {
	{ NULL, "[FILE...]", 0, -1, filter_tables, run_filter, 1 },
	{ "get", "ID...", 1, -1, store_tables, run_get },
	{ "list", NULL, 0, 0, list_tables, run_list },
	{ "stats", NULL, 0, 0, store_tables, run_stats },
	{ NULL, NULL, 0, 0, NULL, NULL },
};

int
main(int argc, char *argv[])
{
	struct ctx c = { .stage = -1, .fmt = DD_FMT_NDJSON };
	dd_filter_defaults(&c.fo);
	/* Telemetry comes fast, and the deliveries in memory coalesce it: a
	 * commit writes each changed delivery once, however many events it
	 * had. So commits go by time, --flush-interval after the first
	 * uncommitted event, even while events keep coming; --batch only
	 * bounds what a commit holds. */
	c.fo.batch = 1000000;
	c.fo.flush_busy = 1;
	/* Retention, lateness and removal go by stream time: what several
	 * Kafka partitions hold is applied in one event-time order, as one
	 * stream would have brought it. */
	c.fo.kafka.ordered = 1;
	dd_track_defaults(&c.o);
	static const struct dd_prog prog = {
		.name = "dd-track",
		.about = "With no command, a filter: delivery.* and drone.* events from the FILEs\n"
		    "(or stdin) update the latest status of each delivery in the store; every\n"
		    "valid line is written to stdout, each followed by a delivery.status event\n"
		    "when it changed the delivery's stage. See dd-track(1).\n",
		.cmds = cmds,
		.set = set,
		.commits = 1,
	};
	struct dd_prog p = prog;
	p.ctx = &c;
	int rc = dd_cli_main(&p, argc, argv);
	free(c.defdb);
	return rc;
}
