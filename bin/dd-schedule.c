/*
 * dd-schedule: the Scheduler of the drone-delivery design. As a filter it
 * reads delivery requests (and delivery.status feedback), records each as
 * a durable work item, registers its package, assigns a drone and emits
 * the events of each step; `supervise` (cron) retries or compensates what
 * is stuck; get, list, stats and fleet answer from its store.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <locale.h>

#include "ddtime.h"
#include "exitcodes.h"
#include "filter.h"
#include "out.h"
#include "schedule.h"
#include "util.h"

#define USAGE \
"usage: dd-schedule [--db FILE] [--fleet FILE] [--csv] [--now TIME] [--lead DURATION]\n" \
"                   [--rejects FILE] [--strict] [--batch N] [--flush-interval DURATION]\n" \
"                   [--max-line SIZE] [-q] [--progress]\n" \
"       dd-schedule supervise [--db FILE] [--now TIME] [--timeout DURATION] [-q]\n" \
"       dd-schedule get [--db FILE] ID\n" \
"       dd-schedule list [--db FILE] [--state STATE] [--format FORMAT]\n" \
"       dd-schedule stats [--db FILE]\n" \
"       dd-schedule fleet import [--db FILE] [--rejects FILE] [-q] FILE\n" \
"       dd-schedule fleet list [--db FILE] [--format FORMAT]\n" \
"       dd-schedule -h | -V\n"

#define HELP \
"\n" \
"Reads delivery requests (NDJSON, or CSV with --csv) and delivery.status\n" \
"events on stdin; writes package.registered, delivery.scheduled and the\n" \
"other scheduler events on stdout. See dd-schedule(1).\n" \
"\n" \
"  --db FILE            the store (default $DD_HOME/schedule.db)\n" \
"  --fleet FILE         import this fleet CSV first\n" \
"  --csv                requests are CSV with dotted headers (pickup.lat)\n" \
"  --now TIME           fix the clock (default: the input's own times)\n" \
"  --lead DURATION      a request arrives this long before its pickup (1h)\n" \
"  --timeout DURATION   supervise: no progress this long after the pickup ETA (15m)\n" \
"  --state STATE        list: waiting, scheduled, in-progress, completed,\n" \
"                       cancelled, rejected or failed\n" \
"  --format FORMAT      ndjson (default), csv, tsv or table\n"

enum {
	OPT_DB = 0x2000, OPT_FLEET, OPT_CSV, OPT_NOW, OPT_LEAD, OPT_TIMEOUT, OPT_STATE,
	OPT_FORMAT,
};

/* Which options each command takes, as bits of these. */
enum {
	F_DB = 1 << 0, F_FLEET = 1 << 1, F_CSV = 1 << 2, F_NOW = 1 << 3, F_LEAD = 1 << 4,
	F_TIMEOUT = 1 << 5, F_STATE = 1 << 6, F_FORMAT = 1 << 7, F_FILTER = 1 << 8,
	F_REJECTS = 1 << 9, F_QUIET = 1 << 10,
};

static void
usage(int code)
{
	fputs(USAGE, code ? stderr : stdout);
	if (code == 0)
		fputs(HELP, stdout);
	exit(code);
}

static const char *
flag_name(int bit)
{
	switch (bit) {
	case F_DB: return "--db";
	case F_FLEET: return "--fleet";
	case F_CSV: return "--csv";
	case F_NOW: return "--now";
	case F_LEAD: return "--lead";
	case F_TIMEOUT: return "--timeout";
	case F_STATE: return "--state";
	case F_FORMAT: return "--format";
	case F_REJECTS: return "--rejects";
	case F_QUIET: return "-q";
	default: return "--strict, --batch, --flush-interval, --max-line or --progress";
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "db", required_argument, NULL, OPT_DB },
		{ "fleet", required_argument, NULL, OPT_FLEET },
		{ "csv", no_argument, NULL, OPT_CSV },
		{ "now", required_argument, NULL, OPT_NOW },
		{ "lead", required_argument, NULL, OPT_LEAD },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "state", required_argument, NULL, OPT_STATE },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		DD_FILTER_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct dd_filter_opts fo;
	struct dd_sched_opts so;
	const char *db = NULL, *fleet = NULL, *state = NULL;
	enum dd_fmt fmt = DD_FMT_NDJSON;
	int csv = 0, given = 0, c;

	setlocale(LC_ALL, "");
	dd_prog = "dd-schedule";
	dd_signals_init();
	dd_filter_defaults(&fo);
	dd_sched_defaults(&so);
	while ((c = getopt_long(argc, argv, "hqV", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_DB:
			db = optarg;
			given |= F_DB;
			break;
		case OPT_FLEET:
			fleet = optarg;
			given |= F_FLEET;
			break;
		case OPT_CSV:
			csv = 1;
			given |= F_CSV;
			break;
		case OPT_NOW:
			if (dd_time_arg(optarg, dd_now_ms(), &so.now)) {
				dd_warn("--now: %s", dd_errmsg());
				return DD_EXIT_USAGE;
			}
			so.has_now = 1;
			given |= F_NOW;
			break;
		case OPT_LEAD:
		case OPT_TIMEOUT: {
			int64_t ms;
			if (dd_duration_parse(optarg, &ms) || ms < 0) {
				dd_warn("%s: %s", c == OPT_LEAD ? "--lead" : "--timeout",
				    ms < 0 ? "must not be negative" : dd_errmsg());
				return DD_EXIT_USAGE;
			}
			if (c == OPT_LEAD)
				so.lead_ms = ms;
			else
				so.timeout_ms = ms;
			given |= c == OPT_LEAD ? F_LEAD : F_TIMEOUT;
			break;
		}
		case OPT_STATE:
			if (!dd_sched_state_valid(optarg)) {
				dd_warn("--state: unknown state \"%s\"", optarg);
				return DD_EXIT_USAGE;
			}
			state = optarg;
			given |= F_STATE;
			break;
		case OPT_FORMAT:
			if (dd_fmt_parse(optarg, 1u << DD_FMT_NDJSON | 1u << DD_FMT_CSV |
			    1u << DD_FMT_TSV | 1u << DD_FMT_TABLE, &fmt)) {
				dd_warn("--format: %s", dd_errmsg());
				return DD_EXIT_USAGE;
			}
			given |= F_FORMAT;
			break;
		case 'h':
			usage(0);
			break;
		case 'V':
			printf("dd-schedule %s\n", DD_VERSION);
			return dd_close_stdout() ? DD_EXIT_IO : DD_EXIT_OK;
		default: {
			int r = dd_filter_setopt(&fo, c, optarg);
			if (r < 0)
				return DD_EXIT_USAGE;
			if (r > 0)
				usage(DD_EXIT_USAGE);
			given |= c == 'q' ? F_QUIET : c == DD_OPT_REJECTS ? F_REJECTS : F_FILTER;
		}
		}
	}
	argc -= optind;
	argv += optind;

	/* The command, and the options it takes. */
	enum { C_FILTER, C_SUPERVISE, C_GET, C_LIST, C_STATS, C_IMPORT, C_FLEETLIST } cmd;
	int allowed, want = 0;
	const char *name = argc ? argv[0] : "the filter";
	if (argc == 0) {
		cmd = C_FILTER;
		allowed = F_DB | F_FLEET | F_CSV | F_NOW | F_LEAD | F_FILTER | F_REJECTS | F_QUIET;
	} else if (strcmp(argv[0], "supervise") == 0) {
		cmd = C_SUPERVISE;
		allowed = F_DB | F_NOW | F_TIMEOUT | F_QUIET;
		want = 1;
	} else if (strcmp(argv[0], "get") == 0) {
		cmd = C_GET;
		allowed = F_DB;
		want = 2;
	} else if (strcmp(argv[0], "list") == 0) {
		cmd = C_LIST;
		allowed = F_DB | F_STATE | F_FORMAT;
		want = 1;
	} else if (strcmp(argv[0], "stats") == 0) {
		cmd = C_STATS;
		allowed = F_DB;
		want = 1;
	} else if (strcmp(argv[0], "fleet") == 0 && argc >= 2 && strcmp(argv[1], "import") == 0) {
		cmd = C_IMPORT;
		name = "fleet import";
		allowed = F_DB | F_REJECTS | F_QUIET;
		want = 3;
	} else if (strcmp(argv[0], "fleet") == 0 && argc >= 2 && strcmp(argv[1], "list") == 0) {
		cmd = C_FLEETLIST;
		name = "fleet list";
		allowed = F_DB | F_FORMAT;
		want = 2;
	} else {
		dd_warn("unknown command \"%s\"", argv[0]);
		usage(DD_EXIT_USAGE);
	}
	if (argc != want && cmd != C_FILTER) {
		dd_warn("%s: %s", name, argc < want ? "missing operand" : "too many operands");
		usage(DD_EXIT_USAGE);
	}
	for (int bit = 1; bit <= F_QUIET; bit <<= 1)
		if ((given & bit) && !(allowed & bit)) {
			dd_warn("%s: not an option of %s", flag_name(bit), name);
			usage(DD_EXIT_USAGE);
		}

	char *dbpath = db ? dd_strdup(db) : dd_default_path("schedule.db");
	struct dd_sched *s;
	so.db = dbpath;
	so.readonly = cmd == C_GET || cmd == C_LIST || cmd == C_STATS || cmd == C_FLEETLIST;
	int code = dd_sched_open(&s, &so);
	if (code) {
		dd_warn("%s", dd_errmsg());
		free(dbpath);
		return code;
	}
	uint64_t ok, bad;
	switch (cmd) {
	case C_FILTER:
		if (fleet) {
			code = dd_sched_fleet_import(s, fleet, fo.rejects, &ok, &bad);
			if (code == DD_EXIT_IO) {
				dd_warn("%s", dd_errmsg());
				break;
			}
			if (!fo.quiet)
				dd_warn("%s: %llu drones imported, %llu rows rejected", fleet,
				    (unsigned long long)ok, (unsigned long long)bad);
		}
		{
			int fc = dd_sched_filter(s, &fo, csv);
			if (fc != DD_EXIT_OK || code == DD_EXIT_OK)
				code = fc;
		}
		break;
	case C_SUPERVISE: {
		struct dd_buf sum = { 0 };
		code = dd_sched_supervise(s, &sum);
		if (code == DD_EXIT_BUSY)
			dd_warn("%s: another supervisor is running", dbpath);
		else if (code == DD_EXIT_IO)
			dd_warn("%s", dd_errmsg());
		if (sum.len && !fo.quiet)
			dd_warn("%s", sum.p);
		dd_buf_free(&sum);
		break;
	}
	case C_GET:
		code = dd_sched_get(s, argv[1], stdout);
		break;
	case C_LIST:
		code = dd_sched_list(s, state, fmt, stdout);
		break;
	case C_STATS:
		code = dd_sched_stats(s, stdout);
		break;
	case C_IMPORT:
		code = dd_sched_fleet_import(s, argv[2], fo.rejects, &ok, &bad);
		if (code == DD_EXIT_IO)
			break;
		if (!fo.quiet)
			dd_warn("%s: %llu drones imported, %llu rows rejected",
			    strcmp(argv[2], "-") ? argv[2] : "stdin", (unsigned long long)ok,
			    (unsigned long long)bad);
		break;
	case C_FLEETLIST:
		code = dd_sched_fleet_list(s, fmt, stdout);
		break;
	}
	if ((code == DD_EXIT_IO && cmd != C_FILTER && cmd != C_SUPERVISE) ||
	    (code == DD_EXIT_REJECTED && cmd == C_GET))
		dd_warn("%s", dd_errmsg());
	dd_sched_close(s);
	free(dbpath);
	if (dd_close_stdout() && code != DD_EXIT_IO) {
		dd_warn("%s", dd_errmsg());
		code = DD_EXIT_IO;
	}
	return code;
}
