/*
 * dd-archive: the Delivery History batch job (cron). Moves deliveries
 * that ended more than --older-than ago from history.db into the lake,
 * then optionally compacts and verifies the lake; prints one JSON summary.
 */
#include <getopt.h>
#include <inttypes.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive.h"
#include "ddtime.h"
#include "exitcodes.h"
#include "filter.h"
#include "lake.h"
#include "store.h"
#include "util.h"

#define USAGE \
	"usage: dd-archive [--db HISTORY_DB] [-l LAKE] [--dataset NAME] [--older-than DUR]\n" \
	"                  [--now TIME] [--chunk N] [--dry-run] [--compact] [--verify]\n" \
	"                  [--progress] [-q]\n"

static void
usage(FILE *f, int code)
{
	fputs(USAGE, f);
	if (f == stdout)
		fputs("\n"
		    "Move every delivery that ended (completed, cancelled, failed, rejected)\n"
		    "more than --older-than (30d) before --now from history.db into the\n"
		    "lake; with --compact merge each partition's parts, with --verify check\n"
		    "every part. One JSON summary line on stdout. See dd-archive(1).\n", f);
	exit(code);
}

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

int
main(int argc, char *argv[])
{
	enum { OPT_DB = 0x2000, OPT_DATASET, OPT_OLDER, OPT_NOW, OPT_CHUNK, OPT_DRY,
		OPT_COMPACT, OPT_VERIFY, OPT_PROGRESS };
	static const struct option longopts[] = {
		{ "db", required_argument, NULL, OPT_DB },
		{ "lake", required_argument, NULL, 'l' },
		{ "dataset", required_argument, NULL, OPT_DATASET },
		{ "older-than", required_argument, NULL, OPT_OLDER },
		{ "now", required_argument, NULL, OPT_NOW },
		{ "chunk", required_argument, NULL, OPT_CHUNK },
		{ "dry-run", no_argument, NULL, OPT_DRY },
		{ "compact", no_argument, NULL, OPT_COMPACT },
		{ "verify", no_argument, NULL, OPT_VERIFY },
		{ "progress", no_argument, NULL, OPT_PROGRESS },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct dd_archive_opts o = { .dataset = DD_LAKE_DATASET_DEFAULT,
		.chunk = DD_ARCHIVE_CHUNK };
	char *db = NULL, *lake = NULL;
	const char *now_arg = "now";
	int64_t older = 30LL * 86400000, now;
	int compact = 0, verify = 0, quiet = 0, progress = isatty(2), c;
	uint64_t v;

	setlocale(LC_ALL, "");
	dd_prog = "dd-archive";
	dd_signals_init();
	while ((c = getopt_long(argc, argv, "hl:qV", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_DB:
			free(db);
			db = dd_strdup(optarg);
			break;
		case 'l':
			free(lake);
			lake = dd_strdup(optarg);
			break;
		case OPT_DATASET:
			if (!dd_lake_dataset_ok(optarg)) {
				dd_warn("--dataset: %s", dd_errmsg());
				usage(stderr, DD_EXIT_USAGE);
			}
			o.dataset = optarg;
			break;
		case OPT_OLDER:
			if (dd_duration_parse(optarg, &older) || older < 0) {
				dd_warn("--older-than: %s", older < 0 ? "must not be negative" :
				    dd_errmsg());
				usage(stderr, DD_EXIT_USAGE);
			}
			break;
		case OPT_NOW:
			now_arg = optarg;
			break;
		case OPT_CHUNK:
			if (dd_parse_u64(optarg, 1, 1000000, &v)) {
				dd_warn("--chunk: %s", dd_errmsg());
				usage(stderr, DD_EXIT_USAGE);
			}
			o.chunk = (size_t)v;
			break;
		case OPT_DRY:
			o.dry_run = 1;
			break;
		case OPT_COMPACT:
			compact = 1;
			break;
		case OPT_VERIFY:
			verify = 1;
			break;
		case OPT_PROGRESS:
			progress = 2;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			usage(stdout, DD_EXIT_OK);
			break;
		case 'V':
			printf("dd-archive %s\n", DD_VERSION);
			return dd_close_stdout() ? DD_EXIT_IO : DD_EXIT_OK;
		default:
			usage(stderr, DD_EXIT_USAGE);
		}
	}
	if (optind != argc) {
		dd_warn("unexpected operand \"%s\"", argv[optind]);
		usage(stderr, DD_EXIT_USAGE);
	}
	if (dd_time_arg(now_arg, dd_now_ms(), &now)) {
		dd_warn("--now: %s", dd_errmsg());
		usage(stderr, DD_EXIT_USAGE);
	}
	if (db == NULL)
		db = dd_default_path("history.db");
	if (lake == NULL)
		lake = dd_default_path("lake");
	o.db = db;
	o.lake = lake;
	o.cutoff_ms = now - older;
	struct ui u = { .progress = progress == 2 || (progress && !quiet), .start = dd_now_ms() };
	o.progress = on_progress;
	o.damage = on_damage;
	o.ctx = &u;

	/* One run at a time: a cron job overlapping its predecessor leaves
	 * at once (exit 5) rather than archive the same deliveries twice. */
	struct dd_buf lockpath = { 0 };
	dd_buf_printf(&lockpath, "%s-archive.lock", db);
	char *dir = dd_strdup(db), *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (dd_mkdirs(dir))
			dd_die(DD_EXIT_IO, "%s", dd_errmsg());
	}
	free(dir);
	int lock = dd_lock(lockpath.p);
	if (lock < 0)
		dd_die(-lock, "%s", dd_errmsg());

	struct dd_archive_stats st = { 0 };
	int rc = dd_archive_run(&o, &st);
	if (rc == 0 && compact)
		rc = dd_archive_compact(&o, &st);
	if (rc == 0 && verify)
		rc = dd_archive_verify(&o, &st);
	if (u.shown)
		fputc('\n', stderr);
	if (rc > 0 && rc < 128)
		dd_warn("%s", dd_errmsg());
	double secs = (double)(dd_now_ms() - u.start) / 1000.0;
	printf("{\"deliveriesArchived\":%" PRIu64 ",\"eventsArchived\":%" PRIu64
	    ",\"deliveriesKept\":%" PRIu64 ",\"partsWritten\":%" PRIu64 ",\"eventBytes\":%" PRIu64
	    ",\"bytesWritten\":%" PRIu64 ",\"partitionsCompacted\":%" PRIu64
	    ",\"partsCompacted\":%" PRIu64 ",\"partsAfterCompaction\":%" PRIu64
	    ",\"duplicatesDropped\":%" PRIu64 ",\"partsVerified\":%" PRIu64
	    ",\"eventsVerified\":%" PRIu64 ",\"partsDamaged\":%" PRIu64
	    ",\"dryRun\":%s,\"seconds\":%.3f}\n",
	    st.deliveries, st.events, st.kept, st.parts, st.raw_bytes, st.bytes,
	    st.partitions_compacted, st.parts_compacted, st.parts_after, st.duplicates,
	    st.parts_verified, st.events_verified, st.parts_damaged,
	    o.dry_run ? "true" : "false", secs);
	if (rc == 0 && st.parts_damaged)
		rc = DD_EXIT_REJECTED;
	if (dd_close_stdout()) {
		dd_warn("%s", dd_errmsg());
		if (rc == 0 || rc == DD_EXIT_REJECTED)
			rc = DD_EXIT_IO;
	}
	close(lock);
	dd_buf_free(&lockpath);
	free(db);
	free(lake);
	return rc;
}
