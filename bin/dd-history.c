/*
 * dd-history: the Delivery History lookup store. As a filter it reads
 * delivery.* events and keeps, per delivery, its summary and every event
 * as the original line; get, list and stats answer from history.db.
 */
#include <getopt.h>
#include <inttypes.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddtime.h"
#include "exitcodes.h"
#include "filter.h"
#include "history.h"
#include "out.h"
#include "util.h"

#define USAGE \
	"usage: dd-history [--db FILE] [--rejects FILE] [--strict] [--batch N]\n" \
	"                  [--flush-interval DUR] [--max-line SIZE] [--progress] [-q]\n" \
	"       dd-history [--db FILE] get ID\n" \
	"       dd-history [--db FILE] list [--owner O] [--stage S] [--since T]\n" \
	"                  [--until T] [--format ndjson|csv|tsv|table]\n" \
	"       dd-history [--db FILE] stats\n"

static void
usage(FILE *f, int code)
{
	fputs(USAGE, f);
	if (f == stdout)
		fputs("\n"
		    "With no command, read delivery.* events on stdin into history.db\n"
		    "(default $DD_HOME/history.db). get prints one delivery with its\n"
		    "events, list the deliveries matching every filter given (created\n"
		    "time in [--since, --until)), stats the counts. See dd-history(1).\n", f);
	exit(code);
}

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
}

static int
run_filter(const char *db, const struct dd_filter_opts *fo)
{
	struct dd_store s;
	int rc = dd_history_open(&s, db);
	if (rc) {
		dd_warn("%s", dd_errmsg());
		return rc;
	}
	struct dd_history_ingest *h = dd_history_ingest_new(&s);
	if (h == NULL) {
		dd_warn("%s", dd_errmsg());
		dd_store_close(&s);
		return DD_EXIT_IO;
	}
	struct dd_filter_ops ops = { .event = on_event, .commit = on_commit,
		.summary = on_summary };
	rc = dd_filter_run(fo, &ops, h, NULL);
	dd_history_ingest_free(h);
	dd_store_close(&s);
	return rc;
}

int
main(int argc, char *argv[])
{
	enum { OPT_DB = 0x2000, OPT_OWNER, OPT_STAGE, OPT_SINCE, OPT_UNTIL, OPT_FORMAT };
	static const struct option longopts[] = {
		{ "db", required_argument, NULL, OPT_DB },
		{ "owner", required_argument, NULL, OPT_OWNER },
		{ "stage", required_argument, NULL, OPT_STAGE },
		{ "since", required_argument, NULL, OPT_SINCE },
		{ "until", required_argument, NULL, OPT_UNTIL },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		DD_FILTER_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct dd_filter_opts fo;
	struct dd_history_query q = { NULL, NULL, INT64_MIN, INT64_MAX };
	enum dd_fmt fmt = DD_FMT_NDJSON;
	char *db = NULL;
	int c, filter_opts = 0, list_opts = 0;
	int64_t now = dd_now_ms();

	setlocale(LC_ALL, "");
	dd_prog = "dd-history";
	dd_signals_init();
	dd_filter_defaults(&fo);
	/* Commits cost an fsync each; a writer thread commits smaller
	 * batches in the background anyway (see lib/history.c). */
	fo.batch = 50000;
	while ((c = getopt_long(argc, argv, "hqV", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_DB:
			free(db);
			db = dd_strdup(optarg);
			break;
		case OPT_OWNER:
			q.owner = optarg;
			list_opts = 1;
			break;
		case OPT_STAGE:
			if (!dd_history_stage_ok(optarg)) {
				dd_warn("--stage: unknown stage \"%s\"", optarg);
				usage(stderr, DD_EXIT_USAGE);
			}
			q.stage = optarg;
			list_opts = 1;
			break;
		case OPT_SINCE:
		case OPT_UNTIL:
			if (dd_time_arg(optarg, now, c == OPT_SINCE ? &q.since_ms : &q.until_ms)) {
				dd_warn("--%s: %s", c == OPT_SINCE ? "since" : "until", dd_errmsg());
				usage(stderr, DD_EXIT_USAGE);
			}
			list_opts = 1;
			break;
		case OPT_FORMAT:
			if (dd_fmt_parse(optarg, 1u << DD_FMT_NDJSON | 1u << DD_FMT_CSV |
			    1u << DD_FMT_TSV | 1u << DD_FMT_TABLE, &fmt)) {
				dd_warn("--format: %s", dd_errmsg());
				usage(stderr, DD_EXIT_USAGE);
			}
			list_opts = 1;
			break;
		case 'h':
			usage(stdout, DD_EXIT_OK);
			break;
		case 'V':
			printf("dd-history %s\n", DD_VERSION);
			return dd_close_stdout() ? DD_EXIT_IO : DD_EXIT_OK;
		default: {
			int r = dd_filter_setopt(&fo, c, optarg);
			if (r != 0)
				usage(stderr, DD_EXIT_USAGE);
			if (c != 'q' && c != DD_OPT_PROGRESS)
				filter_opts = 1;
		}
		}
	}
	argc -= optind;
	argv += optind;
	if (db == NULL)
		db = dd_default_path("history.db");

	int rc;
	const char *cmd = argc > 0 ? argv[0] : NULL;
	if (cmd == NULL) {
		if (list_opts) {
			dd_warn("--owner, --stage, --since, --until and --format go with list");
			usage(stderr, DD_EXIT_USAGE);
		}
		rc = run_filter(db, &fo);
		free(db);
		if (dd_close_stdout()) {
			if (rc != DD_EXIT_IO)	/* else already said */
				dd_warn("%s", dd_errmsg());
			rc = DD_EXIT_IO;
		}
		return rc;
	}
	int nargs = strcmp(cmd, "get") == 0 ? 1 : 0;
	if (strcmp(cmd, "get") && strcmp(cmd, "list") && strcmp(cmd, "stats")) {
		dd_warn("unknown command \"%s\"", cmd);
		usage(stderr, DD_EXIT_USAGE);
	}
	if (argc - 1 != nargs) {
		dd_warn("%s: %s", cmd, nargs ? "one delivery id expected" : "no operand expected");
		usage(stderr, DD_EXIT_USAGE);
	}
	if (filter_opts || (list_opts && strcmp(cmd, "list"))) {
		dd_warn("%s: option not valid here", cmd);
		usage(stderr, DD_EXIT_USAGE);
	}

	struct dd_store s;
	if ((rc = dd_store_open_ro(&s, db))) {
		dd_warn("%s", dd_errmsg());
		free(db);
		return rc;
	}
	if (strcmp(cmd, "get") == 0) {
		int r = dd_history_get(&s, argv[1], stdout);
		if (r < 0)
			dd_warn("%s", dd_errmsg());
		else if (r == 0)
			dd_warn("%s: no such delivery", argv[1]);
		rc = r < 0 ? DD_EXIT_IO : r == 0 ? DD_EXIT_REJECTED : DD_EXIT_OK;
	} else if (strcmp(cmd, "list") == 0) {
		if (dd_history_list(&s, &q, fmt, stdout)) {
			dd_warn("%s", dd_errmsg());
			rc = DD_EXIT_IO;
		}
	} else if (dd_history_stats(&s, stdout)) {
		dd_warn("%s", dd_errmsg());
		rc = DD_EXIT_IO;
	}
	dd_store_close(&s);
	free(db);
	/* A write error already reported is not reported twice. */
	if (dd_close_stdout() && rc != DD_EXIT_IO) {
		dd_warn("%s", dd_errmsg());
		rc = DD_EXIT_IO;
	}
	return rc;
}
