/*
 * dd-archive: the Delivery History batch job (cron). Moves deliveries
 * that ended more than --older-than ago from history.db into the lake,
 * then optionally compacts and verifies the lake; prints one JSON summary.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "cli.h"
#include "ddtime.h"
#include "exitcodes.h"
#include "filter.h"
#include "lake.h"
#include "store.h"
#include "util.h"

struct ui {
	int progress;	/* show progress on stderr */
	int shown;
	int64_t start;
};

static void
on_progress(void *ctx, const struct dd_archive_stats *st)
{
	struct ui *u = ctx;
	if (!u->progress)
		return;
	double secs = (double)(dd_now_ms() - u->start) / 1000.0;
	fprintf(stderr, "\r%s: %" PRIu64 " deliveries, %" PRIu64 " events archived, %.0f"
	    " events/s\033[K", dd_prog, st->deliveries, st->events,
	    secs > 0 ? (double)st->events / secs : 0.0);
	u->shown = 1;
}

static void
on_damage(void *ctx, const char *msg)
{
	struct ui *u = ctx;
	if (u->shown) {
		fputc('\n', stderr);
		u->shown = 0;
	}
	dd_warn("damaged: %s", msg);
}

/* A FIFO, a directory... named like a part: skipped, told. */
static void
on_odd(const char *msg)
{
	dd_warn("%s", msg);
}

static void
on_conflict(void *ctx, const char *msg)
{
	struct ui *u = ctx;
	if (u->shown) {
		fputc('\n', stderr);
		u->shown = 0;
	}
	dd_warn("conflict: %s", msg);
}

enum { K_DB = 1, K_LAKE, K_DATASET, K_OLDER, K_NOW, K_CHUNK, K_DRY, K_COMPACT, K_VERIFY,
	K_PROGRESS, K_QUIET, K_REBUILD, K_SINCE, K_UNTIL };

static const struct dd_opt opts[] = {
	{ "db", 0, "HISTORY_DB", "the history store (default $DD_HOME/history.db)", K_DB, 0 },
	{ "lake", 'l', "LAKE", "the lake (default $DD_HOME/lake)", K_LAKE, 0 },
	{ "dataset", 0, "NAME", "the dataset (default events)", K_DATASET, 0 },
	{ "older-than", 0, "DUR", "archive deliveries that ended this long before --now "
		"(default 30d)", K_OLDER, 0 },
	{ "now", 0, "TIME", "the clock (default now)", K_NOW, 0 },
	{ "chunk", 0, "N", "deliveries per lake commit and history transaction (default 10000)",
		K_CHUNK, 0 },
	{ "dry-run", 0, NULL, "count what would be archived; write nothing", K_DRY, 0 },
	{ "compact", 0, NULL, "then merge each partition's parts", K_COMPACT, 0 },
	{ "verify", 0, NULL, "then check every part against its metadata", K_VERIFY, 0 },
	{ "rebuild-view", 0, NULL, "instead of archiving, rebuild the deliveries view of the "
		"days of [--since, --until) from the lake's events", K_REBUILD, 0 },
	{ "since", 0, "T", "with --rebuild-view: the first day", K_SINCE, 0 },
	{ "until", 0, "T", "with --rebuild-view: the end of the range", K_UNTIL, 0 },
	{ "progress", 0, NULL, "progress on stderr even when it is no terminal", K_PROGRESS, 0 },
	{ "quiet", 'q', NULL, "no progress: errors only", K_QUIET, 0 },
	DD_OPT_END,
};

struct ctx {
	struct dd_archive_opts o;
	char *db, *lake;
	const char *now, *since, *until;
	int64_t older;
	int compact, verify, quiet, progress, rebuild;
};

static int
set(void *vc, int key, const char *arg, const char *arg2)
{
	struct ctx *c = vc;
	uint64_t v;
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
		c->o.dataset = arg;
		return 0;
	case K_OLDER:
		if (dd_duration_parse(arg, &c->older))
			return -1;
		if (c->older < 0) {
			dd_seterr("must not be negative");
			return -1;
		}
		return 0;
	case K_NOW:
		c->now = arg;
		return 0;
	case K_CHUNK:
		if (dd_parse_u64(arg, 1, 1000000, &v))
			return -1;
		c->o.chunk = (size_t)v;
		return 0;
	case K_DRY:
		c->o.dry_run = 1;
		return 0;
	case K_COMPACT:
		c->compact = 1;
		return 0;
	case K_VERIFY:
		c->verify = 1;
		return 0;
	case K_PROGRESS:
		c->progress = 2;
		return 0;
	case K_QUIET:
		c->quiet = 1;
		return 0;
	case K_REBUILD:
		c->rebuild = 1;
		return 0;
	case K_SINCE:
		c->since = arg;
		return 0;
	case K_UNTIL:
		c->until = arg;
		return 0;
	}
	return -1;
}

static void
summary(const struct dd_archive_stats *st, int dry, double secs)
{
	printf("{\"deliveriesArchived\":%" PRIu64 ",\"eventsArchived\":%" PRIu64
	    ",\"summariesWritten\":%" PRIu64
	    ",\"deliveriesKept\":%" PRIu64 ",\"partsWritten\":%" PRIu64 ",\"eventBytes\":%" PRIu64
	    ",\"bytesWritten\":%" PRIu64 ",\"partitionsCompacted\":%" PRIu64
	    ",\"partsCompacted\":%" PRIu64 ",\"partsAfterCompaction\":%" PRIu64
	    ",\"duplicatesDropped\":%" PRIu64 ",\"conflictsDropped\":%" PRIu64
	    ",\"partsVerified\":%" PRIu64
	    ",\"eventsVerified\":%" PRIu64 ",\"partsDamaged\":%" PRIu64
	    ",\"conflictsFound\":%" PRIu64
	    ",\"dryRun\":%s,\"seconds\":%.3f}\n",
	    st->deliveries, st->events, st->summaries, st->kept, st->parts, st->raw_bytes, st->bytes,
	    st->partitions_compacted, st->parts_compacted, st->parts_after, st->duplicates,
	    st->conflicts_dropped, st->parts_verified, st->events_verified, st->parts_damaged,
	    st->conflicts_found,
	    dry ? "true" : "false", secs);
}

/* One run at a time: a cron job overlapping its predecessor leaves at once
 * (exit 5) rather than archive the same deliveries twice. Returns the
 * lock's fd, or -(exit code). */
static int
lock(const char *db)
{
	struct dd_buf path = { 0 };
	dd_buf_printf(&path, "%s-archive.lock", db);
	int fd = dd_lock(path.p);
	dd_buf_free(&path);
	return fd;
}

static int
run(void *vc, int argc, char **argv)
{
	struct ctx *c = vc;
	int64_t now;
	if (dd_time_arg(c->now, dd_now_ms(), &now))
		return dd_cli_usage_error("--now: %s", dd_errmsg());
	int64_t since = 0, until = 0;
	if (c->rebuild && (c->since == NULL || c->until == NULL))
		return dd_cli_usage_error("--rebuild-view needs --since and --until");
	if (!c->rebuild && (c->since || c->until))
		return dd_cli_usage_error("--since and --until go with --rebuild-view");
	if (c->rebuild && (dd_time_arg(c->since, now, &since) || dd_time_arg(c->until, now, &until)))
		return dd_cli_usage_error("--since/--until: %s", dd_errmsg());
	if (c->rebuild && since >= until)
		return dd_cli_usage_error("--since must be before --until");
	if (c->db == NULL)
		c->db = dd_default_path("history.db");
	if (c->lake == NULL)
		c->lake = dd_default_path("lake");
	/* A wrong --db or $DD_HOME must not pass, night after night, as a
	 * run with nothing to do. */
	struct stat sb;
	int have_db = stat(c->db, &sb) == 0;
	if (c->rebuild) {
		/* The lake alone: history.db plays no part. */
		if (stat(c->lake, &sb) != 0) {
			dd_seterr("%s: no such lake", c->lake);
			return DD_EXIT_IO;
		}
		have_db = 0;
	} else if (!have_db && !c->compact && !c->verify) {
		dd_seterr("%s: no such store (%s)", c->db, strerror(errno));
		return DD_EXIT_IO;
	}
	/* --compact and --verify also tend a lake alone (a lake that does
	 * not exist is still an error of theirs). */
	if (!have_db && stat(c->lake, &sb) != 0) {
		dd_seterr("%s: no such store, and %s: no such lake", c->db, c->lake);
		return DD_EXIT_IO;
	}
	if (!have_db && !c->quiet && !c->rebuild)
		dd_warn("%s: no such store: nothing archived", c->db);
	if (!c->quiet)
		dd_lake_set_odd_hook(on_odd);
	c->o.db = c->db;
	c->o.lake = c->lake;
	c->o.cutoff_ms = now - c->older;
	struct ui u = { .progress = c->progress == 2 || (c->progress && !c->quiet),
		.start = dd_now_ms() };
	c->o.progress = on_progress;
	c->o.damage = on_damage;
	c->o.conflict = on_conflict;
	c->o.ctx = &u;

	/* A dry run writes nothing, not even the lock file. */
	int fd = c->o.dry_run || !have_db ? -1 : lock(c->db);
	if (fd < -1 || (!c->o.dry_run && have_db && fd < 0))
		return -fd;
	struct dd_archive_stats st = { 0 };
	int rc = c->rebuild ? dd_archive_rebuild_view(&c->o, since, until, &st) :
	    have_db ? dd_archive_run(&c->o, &st) : 0;
	/* The deliveries view is tended with the dataset it is made from. */
	struct dd_archive_opts vo = c->o;
	vo.dataset = DD_VIEW_DATASET;
	int view_too = strcmp(c->o.dataset, DD_VIEW_DATASET) != 0;
	if (rc == 0 && c->compact)
		rc = dd_archive_compact(&c->o, &st);
	if (rc == 0 && c->compact && view_too)
		rc = dd_archive_compact(&vo, &st);
	if (rc == 0 && c->verify)
		rc = dd_archive_verify(&c->o, &st);
	if (rc == 0 && c->verify && view_too)
		rc = dd_archive_verify(&vo, &st);
	if (u.shown)
		fputc('\n', stderr);
	summary(&st, c->o.dry_run, (double)(dd_now_ms() - u.start) / 1000.0);
	if (rc == 0 && st.parts_damaged)
		rc = DD_EXIT_REJECTED;
	if (fd >= 0)
		close(fd);
	return rc;
}

static const struct dd_opt *const tables[] = { opts, NULL };
static const struct dd_cmd cmds[] = {
	{ NULL, NULL, 0, 0, tables, run },
	{ NULL, NULL, 0, 0, NULL, NULL },
};

int
main(int argc, char *argv[])
{
	struct ctx c = { .o = { .dataset = DD_LAKE_DATASET_DEFAULT, .chunk = DD_ARCHIVE_CHUNK },
		.now = "now", .older = 30LL * 86400000, .progress = isatty(2) };
	struct dd_prog p = {
		.name = "dd-archive",
		.about = "Move every delivery that ended (completed, cancelled, failed, rejected)\n"
		    "more than --older-than before --now from history.db into the lake; with\n"
		    "--compact merge each partition's parts, with --verify check every part.\n"
		    "One JSON summary line on stdout. See dd-archive(1).\n",
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
