#include <getopt.h>
#include <inttypes.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddtime.h"
#include "exitcodes.h"
#include "filter.h"
#include "out.h"
#include "package.h"
#include "util.h"

#define USAGE \
	"usage: dd-package [--db FILE] [--rejects FILE] [--strict] [--batch N]\n" \
	"                  [--flush-interval DUR] [--max-line BYTES] [-q] [--progress]\n" \
	"       dd-package get [--db FILE] ID\n" \
	"       dd-package list [--db FILE] [--owner ID] [--format FMT]\n" \
	"       dd-package summary [--db FILE] --owner ID [--month YYYY-MM] [--format FMT]\n" \
	"       dd-package import [--db FILE] --csv FILE [--now TIME] [--rejects FILE]\n" \
	"                         [--strict] [--batch N] [-q]\n" \
	"       dd-package stats [--db FILE]\n"

#define HELP \
	"\n" \
	"Filter (no subcommand): package.registered and package.removed events on\n" \
	"stdin create, replace and remove package documents in the store.\n" \
	"  --db FILE        the store (default $DD_HOME/package.db)\n" \
	"  --owner ID       the packages of one owner\n" \
	"  --month YYYY-MM  registered in that month (UTC)\n" \
	"  --format FMT     ndjson (default), csv, tsv or table\n" \
	"  --csv FILE       CSV with a header row: packageId, ownerId, size, weightKg,\n" \
	"                   and optionally deliveryId, tag\n" \
	"  --now TIME       the time imported documents are registered at (now)\n"

enum { OPT_DB = 0x2000, OPT_OWNER, OPT_MONTH, OPT_FORMAT, OPT_CSV, OPT_NOW };

/* Which options each command takes (bit per command). */
enum { C_FILTER = 1, C_GET = 2, C_LIST = 4, C_SUMMARY = 8, C_IMPORT = 16, C_STATS = 32 };

static void __attribute__((noreturn))
usage(void)
{
	fputs(USAGE, stderr);
	exit(DD_EXIT_USAGE);
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

static int
allowed(int cmd, int mask, const char *opt)
{
	if (cmd & mask)
		return 1;
	dd_warn("%s does not apply here", opt);
	usage();
}

/*
 * dd-package: the Package service. A filter that keeps package documents
 * by id in package.db from package.* events; get, list, summary, stats
 * answer from the store and import loads documents from CSV.
 */
int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "db", required_argument, NULL, OPT_DB },
		{ "owner", required_argument, NULL, OPT_OWNER },
		{ "month", required_argument, NULL, OPT_MONTH },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "csv", required_argument, NULL, OPT_CSV },
		{ "now", required_argument, NULL, OPT_NOW },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		DD_FILTER_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	static const struct { const char *name; int bit; } cmds[] = {
		{ "get", C_GET }, { "list", C_LIST }, { "summary", C_SUMMARY },
		{ "import", C_IMPORT }, { "stats", C_STATS },
	};
	struct dd_filter_opts fo;
	const char *db = NULL, *owner = NULL, *month = NULL, *csv = NULL;
	int cmd = C_FILTER, ch;
	int64_t now = dd_now_ms();
	enum dd_fmt fmt = DD_FMT_NDJSON;

	setlocale(LC_ALL, "");
	dd_prog = "dd-package";
	dd_signals_init();
	dd_filter_defaults(&fo);
	/* A commit (an fsync, and the pages the batch touched) every 20000
	 * events; a slow stream is still committed within --flush-interval. */
	fo.batch = 20000;
	if (argc > 1 && argv[1][0] != '-') {
		size_t i;
		for (i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
			if (strcmp(argv[1], cmds[i].name) == 0)
				break;
		if (i == sizeof cmds / sizeof cmds[0]) {
			dd_warn("unknown command \"%s\"", argv[1]);
			usage();
		}
		cmd = cmds[i].bit;
		argc--;
		argv++;
		argv[0] = (char *)"dd-package";	/* getopt's messages name the program */
	}
	while ((ch = getopt_long(argc, argv, "hqV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			fputs(USAGE HELP, stdout);
			return finish(DD_EXIT_OK);
		case 'V':
			printf("dd-package %s\n", DD_VERSION);
			return finish(DD_EXIT_OK);
		case OPT_DB:
			db = optarg;
			break;
		case OPT_OWNER:
			allowed(cmd, C_LIST | C_SUMMARY, "--owner");
			owner = optarg;
			break;
		case OPT_MONTH:
			allowed(cmd, C_SUMMARY, "--month");
			month = optarg;
			break;
		case OPT_FORMAT:
			allowed(cmd, C_LIST | C_SUMMARY, "--format");
			if (dd_fmt_parse(optarg, 1u << DD_FMT_NDJSON | 1u << DD_FMT_CSV |
			    1u << DD_FMT_TSV | 1u << DD_FMT_TABLE, &fmt)) {
				dd_warn("--format: %s", dd_errmsg());
				usage();
			}
			break;
		case OPT_CSV:
			allowed(cmd, C_IMPORT, "--csv");
			csv = optarg;
			break;
		case OPT_NOW:
			allowed(cmd, C_IMPORT, "--now");
			if (dd_time_arg(optarg, dd_now_ms(), &now)) {
				dd_warn("--now: %s", dd_errmsg());
				usage();
			}
			break;
		case '?':
			usage();
		default:
			/* import takes --rejects, --strict, --batch and -q. */
			allowed(cmd, ch == DD_OPT_REJECTS || ch == DD_OPT_STRICT ||
			    ch == DD_OPT_BATCH || ch == 'q' ? C_FILTER | C_IMPORT : C_FILTER,
			    "this option");
			/* 0: taken; -1: bad value (said); 1: not an option. */
			if (dd_filter_setopt(&fo, ch, optarg) != 0)
				usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (cmd == C_GET && argc != 1) {
		dd_warn(argc ? "unexpected argument \"%s\"" : "get: missing the package id",
		    argc ? argv[1] : "");
		usage();
	}
	if (cmd != C_GET && argc > 0) {
		dd_warn("unexpected argument \"%s\"", argv[0]);
		usage();
	}
	if (cmd == C_SUMMARY && owner == NULL) {
		dd_warn("summary: --owner is required");
		usage();
	}
	if (cmd == C_IMPORT && csv == NULL) {
		dd_warn("import: --csv is required");
		usage();
	}
	if (cmd == C_SUMMARY && month) {
		int y, m;
		char extra;
		if (strlen(month) != 7 || sscanf(month, "%4d-%2d%c", &y, &m, &extra) != 2 ||
		    m < 1 || m > 12) {
			dd_warn("--month: \"%s\" is not YYYY-MM", month);
			usage();
		}
	}

	char *defdb = NULL;
	if (db == NULL)
		db = defdb = dd_default_path("package.db");
	int code;
	switch (cmd) {
	case C_FILTER: {
		struct dd_package *p;
		if ((code = dd_package_open(&p, db)) != 0) {
			dd_warn("%s", dd_errmsg());
		} else {
			code = dd_package_filter(p, &fo);
			dd_package_close(p);
		}
		break;
	}
	case C_IMPORT: {
		struct dd_package_import_stats st;
		code = dd_package_import(db, csv, now, &fo, &st);
		if (code == DD_EXIT_USAGE || code == DD_EXIT_IO || code == DD_EXIT_BUSY)
			dd_warn("%s", dd_errmsg());
		if (code == DD_EXIT_STRICT)
			dd_warn("stopped at the first bad row (--strict)");
		if (st.read && !fo.quiet)
			dd_warn("import %s: rows %" PRIu64 ", stored %" PRIu64 ", unchanged %"
			    PRIu64 ", rejected %" PRIu64, csv, st.rows, st.stored, st.unchanged,
			    st.rejected);
		break;
	}
	default:
		if (cmd == C_GET)
			code = dd_package_get(db, argv[0], stdout);
		else if (cmd == C_LIST)
			code = dd_package_list(db, owner, fmt, stdout);
		else if (cmd == C_SUMMARY)
			code = dd_package_owner_summary(db, owner, month, fmt, stdout);
		else
			code = dd_package_stats(db, stdout);
		if (code)
			dd_warn("%s", dd_errmsg());
	}
	free(defdb);
	return finish(code);
}
