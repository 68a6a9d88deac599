#include <getopt.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddtime.h"
#include "exitcodes.h"
#include "filter.h"
#include "out.h"
#include "track.h"
#include "util.h"

#define USAGE \
	"usage: dd-track [--db FILE] [--retain DUR] [--position-every DUR] [--only-status]\n" \
	"                [--cache N] [--rejects FILE] [--strict] [--batch N]\n" \
	"                [--flush-interval DUR] [--max-line BYTES] [-q] [--progress]\n" \
	"       dd-track get [--db FILE] ID\n" \
	"       dd-track list [--db FILE] [--stage STAGE] [--drone ID] [--format FMT]\n" \
	"       dd-track stats [--db FILE]\n"

#define HELP \
	"\n" \
	"Filter (no subcommand): delivery.* and drone.* events on stdin update the\n" \
	"latest status of each delivery in the store; every valid line is written\n" \
	"to stdout, each followed by a delivery.status event when it changed the\n" \
	"delivery's stage.\n" \
	"  --db FILE             the store (default $DD_HOME/track.db)\n" \
	"  --retain DUR          keep ended deliveries this long, event time (1h)\n" \
	"  --position-every DUR  also a status with the position, at most every DUR\n" \
	"  --only-status         write only the status events\n" \
	"  --cache N             live deliveries held in memory (100000)\n" \
	"  --stage STAGE         created, rescheduled, headed-to-pickup,\n" \
	"                        headed-to-dropoff, completed, cancelled, failed, unknown\n" \
	"  --format FMT          ndjson (default), csv, tsv or table\n"

/* Keep an ended delivery at most this long: beyond it, time arithmetic
 * on epoch milliseconds could overflow. */
#define RETAIN_MAX (100LL * 366 * 86400 * 1000)

enum { OPT_DB = 0x2000, OPT_RETAIN, OPT_POSEVERY, OPT_ONLY, OPT_STAGE, OPT_DRONE,
	OPT_FORMAT, OPT_CACHE };

static void __attribute__((noreturn))
usage(void)
{
	fputs(USAGE, stderr);
	exit(DD_EXIT_USAGE);
}

static int
duration(const char *opt, const char *arg, int64_t min, int64_t *ms)
{
	if (dd_duration_parse(arg, ms)) {
		dd_warn("%s: %s", opt, dd_errmsg());
		return -1;
	}
	if (*ms < min || *ms > RETAIN_MAX) {
		dd_warn("%s: out of range", opt);
		return -1;
	}
	return 0;
}

static int
finish(int code)
{
	if (dd_close_stdout()) {
		if (code != DD_EXIT_IO)	/* else already said */
			dd_warn("%s", dd_errmsg());
		return DD_EXIT_IO;
	}
	return code;
}

/*
 * dd-track: the Delivery service. A filter that keeps the latest status
 * of each live delivery in track.db and adds a delivery.status event to
 * the stream after each stage change; get, list and stats answer from
 * the store.
 */
int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "db", required_argument, NULL, OPT_DB },
		{ "retain", required_argument, NULL, OPT_RETAIN },
		{ "position-every", required_argument, NULL, OPT_POSEVERY },
		{ "only-status", no_argument, NULL, OPT_ONLY },
		{ "cache", required_argument, NULL, OPT_CACHE },
		{ "stage", required_argument, NULL, OPT_STAGE },
		{ "drone", required_argument, NULL, OPT_DRONE },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		DD_FILTER_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct dd_filter_opts fo;
	struct dd_track_opts o;
	const char *db = NULL, *drone = NULL, *cmd = NULL;
	int stage = -1, ch, filter_only = 0, list_only = 0;
	enum dd_fmt fmt = DD_FMT_NDJSON;

	setlocale(LC_ALL, "");
	dd_prog = "dd-track";
	dd_signals_init();
	dd_filter_defaults(&fo);
	/* Telemetry comes fast: a commit (an fsync) every 20000 events keeps
	 * up with hundreds of thousands a second; a slow stream is still
	 * committed within --flush-interval. */
	fo.batch = 20000;
	dd_track_defaults(&o);
	if (argc > 1 && argv[1][0] != '-') {
		cmd = argv[1];
		if (strcmp(cmd, "get") && strcmp(cmd, "list") && strcmp(cmd, "stats")) {
			dd_warn("unknown command \"%s\"", cmd);
			usage();
		}
		argc--;
		argv++;
		argv[0] = (char *)"dd-track";	/* getopt's messages name the program */
	}
	while ((ch = getopt_long(argc, argv, "hqV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			fputs(USAGE HELP, stdout);
			return finish(DD_EXIT_OK);
		case 'V':
			printf("dd-track %s\n", DD_VERSION);
			return finish(DD_EXIT_OK);
		case OPT_DB:
			db = optarg;
			break;
		case OPT_RETAIN:
			if (duration("--retain", optarg, 0, &o.retain_ms))
				usage();
			filter_only = 1;
			break;
		case OPT_POSEVERY:
			if (duration("--position-every", optarg, 1, &o.position_every_ms))
				usage();
			filter_only = 1;
			break;
		case OPT_ONLY:
			o.only_status = 1;
			filter_only = 1;
			break;
		case OPT_CACHE: {
			uint64_t v;
			if (dd_parse_u64(optarg, 1, 100000000, &v)) {
				dd_warn("--cache: %s", dd_errmsg());
				usage();
			}
			o.cache_max = (size_t)v;
			filter_only = 1;
			break;
		}
		case OPT_STAGE:
			if ((stage = dd_stage_parse(optarg, DD_STAGE_TRACK)) < 0) {
				dd_warn("--stage: unknown stage \"%s\"", optarg);
				usage();
			}
			list_only = 1;
			break;
		case OPT_DRONE:
			drone = optarg;
			list_only = 1;
			break;
		case OPT_FORMAT:
			if (dd_fmt_parse(optarg, 1u << DD_FMT_NDJSON | 1u << DD_FMT_CSV |
			    1u << DD_FMT_TSV | 1u << DD_FMT_TABLE, &fmt)) {
				dd_warn("--format: %s", dd_errmsg());
				usage();
			}
			list_only = 1;
			break;
		default:
			/* 0: taken; -1: bad value (said); 1: not an option. */
			if (dd_filter_setopt(&fo, ch, optarg) != 0)
				usage();
			filter_only = 1;
		}
	}
	argc -= optind;
	argv += optind;
	if (cmd && filter_only) {
		dd_warn("%s: filter options do not apply", cmd);
		usage();
	}
	if (list_only && (cmd == NULL || strcmp(cmd, "list"))) {
		dd_warn("--stage, --drone and --format are options of list");
		usage();
	}
	int want = cmd && strcmp(cmd, "get") == 0 ? 1 : 0;
	if (argc != want) {
		if (argc > want)
			dd_warn("unexpected argument \"%s\"", argv[want]);
		else
			dd_warn("get: missing the delivery id");
		usage();
	}

	char *defdb = NULL;
	if (db == NULL)
		db = defdb = dd_default_path("track.db");
	int code;
	if (cmd == NULL) {
		/* Big writes: the output is as large as the input. */
		static char obuf[1 << 16];
		setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
		struct dd_track *t;
		if ((code = dd_track_open(&t, db, &o)) != 0) {
			dd_warn("%s", dd_errmsg());
		} else {
			code = dd_track_filter(t, &fo);
			dd_track_close(t);
		}
	} else {
		if (strcmp(cmd, "get") == 0)
			code = dd_track_get(db, argv[0], stdout);
		else if (strcmp(cmd, "list") == 0)
			code = dd_track_list(db, stage, drone, fmt, stdout);
		else
			code = dd_track_stats(db, stdout);
		if (code)
			dd_warn("%s", dd_errmsg());
	}
	free(defdb);
	return finish(code);
}
