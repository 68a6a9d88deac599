#include <getopt.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ddtime.h"
#include "exitcodes.h"
#include "lake.h"
#include "out.h"
#include "query.h"
#include "util.h"

#define USAGE \
	"usage: dd-lake-query [-l LAKE] [--dataset NAME] [--since TIME] [--until TIME]\n" \
	"                     [--now TIME] [--type T]... [--subject ID]... [--id ID]...\n" \
	"                     [-e | --filter JQ] [--arg NAME VALUE] [--fields PATH,...]\n" \
	"                     [--format ndjson|csv|tsv|table|chart] [--count]\n" \
	"                     [--count-by KEY,...] [--limit N] [--no-dedupe] [-j JOBS]\n" \
	"       dd-lake-query --partitions [-l LAKE] [--dataset NAME] [--since TIME]\n" \
	"                     [--until TIME] [--format ndjson|csv|tsv|table]\n"

enum {
	OPT_DATASET = 0x2000, OPT_SINCE, OPT_UNTIL, OPT_NOW, OPT_TYPE, OPT_SUBJECT,
	OPT_ID, OPT_ARG, OPT_FIELDS, OPT_FORMAT, OPT_COUNT, OPT_COUNTBY, OPT_LIMIT,
	OPT_NODEDUPE, OPT_PARTITIONS,
};

static const struct option longopts[] = {
	{ "lake", required_argument, NULL, 'l' },
	{ "dataset", required_argument, NULL, OPT_DATASET },
	{ "since", required_argument, NULL, OPT_SINCE },
	{ "until", required_argument, NULL, OPT_UNTIL },
	{ "now", required_argument, NULL, OPT_NOW },
	{ "type", required_argument, NULL, OPT_TYPE },
	{ "subject", required_argument, NULL, OPT_SUBJECT },
	{ "id", required_argument, NULL, OPT_ID },
	{ "filter", required_argument, NULL, 'e' },
	{ "arg", required_argument, NULL, OPT_ARG },
	{ "fields", required_argument, NULL, OPT_FIELDS },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "count", no_argument, NULL, OPT_COUNT },
	{ "count-by", required_argument, NULL, OPT_COUNTBY },
	{ "limit", required_argument, NULL, OPT_LIMIT },
	{ "no-dedupe", no_argument, NULL, OPT_NODEDUPE },
	{ "jobs", required_argument, NULL, 'j' },
	{ "partitions", no_argument, NULL, OPT_PARTITIONS },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static void
usage(void)
{
	fputs(USAGE, stderr);
	exit(DD_EXIT_USAGE);
}

/* A growable list of argument strings (repeated options, split lists). */
struct list {
	const char **v;
	int n;
	char **owned;		/* copies made by split(), freed at exit */
	int nowned;
};

static void
push(struct list *l, const char *s)
{
	l->v = dd_realloc(l->v, (size_t)(l->n + 1) * sizeof *l->v);
	l->v[l->n++] = s;
}

/* "a,b,c" -> a b c; an empty item is a usage error. */
static void
split(struct list *l, const char *opt, const char *s)
{
	for (;;) {
		const char *comma = strchr(s, ',');
		size_t n = comma ? (size_t)(comma - s) : strlen(s);
		if (n == 0) {
			dd_warn("%s: empty item in \"%s\"", opt, s);
			usage();
		}
		char *item = dd_strndup(s, n);
		l->owned = dd_realloc(l->owned, (size_t)(l->nowned + 1) * sizeof *l->owned);
		l->owned[l->nowned++] = item;
		push(l, item);
		if (!comma)
			break;
		s = comma + 1;
	}
}

static void
list_free(struct list *l)
{
	for (int i = 0; i < l->nowned; i++)
		free(l->owned[i]);
	free(l->owned);
	free(l->v);
}

static void
diag(void *ctx, const char *msg)
{
	(void)ctx;
	dd_warn("%s", msg);
}

/*
 * dd-lake-query: answer an analyst's question from the event lake
 * (events by time, type, subject or id, through a jq program, as NDJSON,
 * CSV, TSV, a table, a count or counts by key), or list its partitions.
 */
int
main(int argc, char *argv[])
{
	struct dd_query_opts o;
	struct list types = { 0 }, subjects = { 0 }, ids = { 0 }, names = { 0 },
	    values = { 0 }, fields = { 0 }, countby = { 0 };
	const char *since = NULL, *until = NULL, *now = NULL, *lake = NULL;
	uint64_t v;
	int ch;

	setlocale(LC_ALL, "");
	dd_prog = "dd-lake-query";
	/* A closed stdout is a write error to report (exit 4), not a silent
	 * death by SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	dd_query_defaults(&o);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	o.jobs = ncpu > 0 ? (int)ncpu : 1;
	const char *fast = getenv("DD_JQ_FAST");
	o.jq_fast = !(fast && strcmp(fast, "0") == 0);
	o.diag = diag;
	while ((ch = getopt_long(argc, argv, "e:hj:l:V", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			fputs(USAGE, stdout);
			return dd_close_stdout() ? DD_EXIT_IO : DD_EXIT_OK;
		case 'V':
			printf("dd-lake-query %s\n", DD_VERSION);
			return dd_close_stdout() ? DD_EXIT_IO : DD_EXIT_OK;
		case 'l':
			lake = optarg;
			break;
		case OPT_DATASET:
			if (!dd_lake_dataset_ok(optarg)) {
				dd_warn("--dataset: %s", dd_errmsg());
				usage();
			}
			o.dataset = optarg;
			break;
		case OPT_SINCE:
			since = optarg;
			break;
		case OPT_UNTIL:
			until = optarg;
			break;
		case OPT_NOW:
			now = optarg;
			break;
		case OPT_TYPE:
			push(&types, optarg);
			break;
		case OPT_SUBJECT:
			push(&subjects, optarg);
			break;
		case OPT_ID:
			push(&ids, optarg);
			break;
		case 'e':
			if (o.filter) {
				dd_warn("--filter: given twice");
				usage();
			}
			o.filter = optarg;
			break;
		case OPT_ARG:
			/* --arg NAME VALUE: the value is the next word. */
			if (optind >= argc) {
				dd_warn("--arg takes two words: --arg NAME VALUE");
				usage();
			}
			push(&names, optarg);
			push(&values, argv[optind++]);
			break;
		case OPT_FIELDS:
			split(&fields, "--fields", optarg);
			break;
		case OPT_FORMAT:
			if (dd_fmt_parse(optarg, 0x1f, &o.fmt)) {
				dd_warn("--format: %s", dd_errmsg());
				usage();
			}
			break;
		case OPT_COUNT:
			o.count = 1;
			break;
		case OPT_COUNTBY:
			split(&countby, "--count-by", optarg);
			break;
		case OPT_LIMIT:
			if (dd_parse_u64(optarg, 1, UINT64_MAX, &v)) {
				dd_warn("--limit: %s", dd_errmsg());
				usage();
			}
			o.limit = v;
			break;
		case OPT_NODEDUPE:
			o.dedupe = 0;
			break;
		case 'j':
			if (dd_parse_u64(optarg, 1, 256, &v)) {
				dd_warn("-j: %s", dd_errmsg());
				usage();
			}
			o.jobs = (int)v;
			break;
		case OPT_PARTITIONS:
			o.partitions = 1;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc > 0) {
		dd_warn("unexpected argument \"%s\"", argv[0]);
		usage();
	}

	int64_t now_ms = dd_now_ms();
	if (now && dd_time_arg(now, now_ms, &now_ms)) {
		dd_warn("--now: %s", dd_errmsg());
		usage();
	}
	if (since && dd_time_arg(since, now_ms, &o.since_ms)) {
		dd_warn("--since: %s", dd_errmsg());
		usage();
	}
	if (until && dd_time_arg(until, now_ms, &o.until_ms)) {
		dd_warn("--until: %s", dd_errmsg());
		usage();
	}
	o.types = types.v;
	o.ntypes = types.n;
	o.subjects = subjects.v;
	o.nsubjects = subjects.n;
	o.ids = ids.v;
	o.nids = ids.n;
	o.argnames = names.v;
	o.argvalues = values.v;
	o.nargs = names.n;
	o.fields = fields.v;
	o.nfields = fields.n;
	o.count_by = countby.v;
	o.ncount_by = countby.n;

	char *deflake = NULL;
	o.lake = lake ? lake : (deflake = dd_default_path("lake"));
	int code;
	struct dd_query *q = dd_query_new(&o);
	if (q == NULL) {
		dd_warn("%s", dd_errmsg());
		code = DD_EXIT_USAGE;
	} else {
		code = dd_query_run(q, stdout);
		if (code == DD_EXIT_IO)
			dd_warn("%s", dd_errmsg());
		dd_query_free(q);
	}
	free(deflake);
	list_free(&types);
	list_free(&subjects);
	list_free(&ids);
	list_free(&names);
	list_free(&values);
	list_free(&fields);
	list_free(&countby);
	if (dd_close_stdout() && code != DD_EXIT_IO) {
		dd_warn("%s", dd_errmsg());
		code = DD_EXIT_IO;
	}
	return code;
}
