#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ddtime.h"
#include "exitcodes.h"
#include "lake.h"
#include "out.h"
#include "query.h"
#include "util.h"

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
static int
split(struct list *l, const char *s)
{
	for (;;) {
		const char *comma = strchr(s, ',');
		size_t n = comma ? (size_t)(comma - s) : strlen(s);
		if (n == 0) {
			dd_seterr("empty item in \"%s\"", s);
			return -1;
		}
		char *item = dd_strndup(s, n);
		l->owned = dd_realloc(l->owned, (size_t)(l->nowned + 1) * sizeof *l->owned);
		l->owned[l->nowned++] = item;
		push(l, item);
		if (!comma)
			return 0;
		s = comma + 1;
	}
}

/* --agg: split at the commas outside parentheses ("p50(a),p90(a)"). */
static int
split_aggs(struct list *l, const char *s)
{
	int depth = 0;
	const char *start = s;
	for (const char *p = s; ; p++) {
		if (*p == '(')
			depth++;
		else if (*p == ')')
			depth--;
		if (*p == '\0' || (*p == ',' && depth == 0)) {
			if (p == start) {
				dd_seterr("empty item in \"%s\"", s);
				return -1;
			}
			char *item = dd_strndup(start, (size_t)(p - start));
			l->owned = dd_realloc(l->owned, (size_t)(l->nowned + 1) * sizeof *l->owned);
			l->owned[l->nowned++] = item;
			push(l, item);
			if (*p == '\0')
				return 0;
			start = p + 1;
		}
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

/* A FIFO, a directory... named like a part: skipped, told. */
static void
on_odd(const char *msg)
{
	dd_warn("%s", msg);
}

enum {
	K_LAKE = 1, K_DATASET, K_SINCE, K_UNTIL, K_NOW, K_TYPE, K_SUBJECT, K_ID, K_FILTER,
	K_ARG, K_FIELDS, K_FORMAT, K_COUNT, K_COUNTBY, K_LIMIT, K_NODEDUPE, K_JOBS,
	K_PARTITIONS, K_QUIET, K_BY, K_AGG, K_SORT, K_TZ,
};

static const struct dd_opt lake_opts[] = {
	{ "lake", 'l', "LAKE", "the lake (default $DD_HOME/lake)", K_LAKE, 0 },
	{ "dataset", 0, "NAME", "the dataset (default events)", K_DATASET, 0 },
	{ "since", 0, "TIME", "events at or after TIME", K_SINCE, 0 },
	{ "until", 0, "TIME", "events before TIME", K_UNTIL, 0 },
	{ "quiet", 'q', NULL, "no warnings: errors only", K_QUIET, 0 },
	DD_OPT_END,
};
static const struct dd_opt query_opts[] = {
	{ "now", 0, "TIME", "the time relative times count from (default now)", K_NOW, 0 },
	{ "type", 0, "T", "events of this type (repeatable)", K_TYPE, 0 },
	{ "subject", 0, "ID", "events with this subject (repeatable)", K_SUBJECT, 0 },
	{ "id", 0, "ID", "the event with this id (repeatable)", K_ID, 0 },
	{ "filter", 'e', "JQ", "keep events for which this jq program is true, output its result",
		K_FILTER, 0 },
	{ "arg", 0, "NAME", "$NAME is VALUE in the jq program", K_ARG, DD_CLI_TWO },
	{ "fields", 0, "PATH,...", "these fields as columns (csv, tsv, table)", K_FIELDS, 0 },
	{ "format", 0, "FMT", "ndjson (default), csv, tsv, table or chart", K_FORMAT, 0 },
	{ "count", 0, NULL, "print the number of matching events", K_COUNT, 0 },
	{ "by", 0, "KEY,...", "group by these keys (paths, @day, @hour, @hourofday, ...)", K_BY, 0 },
	{ "agg", 0, "FUNC,...", "aggregates per group: count, sum(P), avg(P), p90(P), ... "
		"(default count)", K_AGG, 0 },
	{ "count-by", 0, "KEY,...", "--by these keys with --agg count", K_COUNTBY, 0 },
	{ "sort", 0, "[-]COL,...", "order an aggregate's rows by these columns (-COL: descending)",
		K_SORT, 0 },
	{ "tz", 0, "ZONE", "the zone of buckets and of dates alone (default $DD_TZ, else UTC)",
		K_TZ, 0 },
	{ "limit", 0, "N", "at most N events or rows", K_LIMIT, 0 },
	{ "no-dedupe", 0, NULL, "keep copies of an event id (default: each id once)", K_NODEDUPE, 0 },
	{ "jobs", 'j', "JOBS", "read parts on this many threads (default: the cores)", K_JOBS, 0 },
	DD_OPT_END,
};
static const struct dd_opt part_opts[] = {
	{ "partitions", 0, NULL, "list the partitions and their parts instead", K_PARTITIONS, 0 },
	DD_OPT_END,
};

struct ctx {
	struct dd_query_opts o;
	struct list types, subjects, ids, names, values, fields, countby, by, aggs, sort;
	const char *since, *until, *now, *lake, *tz;
};

static int
set(void *vc, int key, const char *arg, const char *arg2)
{
	struct ctx *c = vc;
	uint64_t v;
	switch (key) {
	case K_LAKE:
		c->lake = arg;
		return 0;
	case K_DATASET:
		if (!dd_lake_dataset_ok(arg))
			return -1;
		c->o.dataset = arg;
		return 0;
	case K_SINCE:
		c->since = arg;
		return 0;
	case K_UNTIL:
		c->until = arg;
		return 0;
	case K_NOW:
		c->now = arg;
		return 0;
	case K_TYPE:
		push(&c->types, arg);
		return 0;
	case K_SUBJECT:
		push(&c->subjects, arg);
		return 0;
	case K_ID:
		push(&c->ids, arg);
		return 0;
	case K_FILTER:
		if (c->o.filter) {
			dd_seterr("given twice");
			return -1;
		}
		c->o.filter = arg;
		return 0;
	case K_ARG:
		push(&c->names, arg);
		push(&c->values, arg2);
		return 0;
	case K_FIELDS:
		return split(&c->fields, arg);
	case K_FORMAT:
		return dd_fmt_parse(arg, 0x1f, &c->o.fmt);
	case K_COUNT:
		c->o.count = 1;
		return 0;
	case K_COUNTBY:
		return split(&c->countby, arg);
	case K_BY:
		return split(&c->by, arg);
	case K_AGG:
		return split_aggs(&c->aggs, arg);
	case K_SORT:
		return split(&c->sort, arg);
	case K_TZ:
		c->tz = arg;
		return 0;
	case K_LIMIT:
		if (dd_parse_u64(arg, 1, UINT64_MAX, &v))
			return -1;
		c->o.limit = v;
		return 0;
	case K_NODEDUPE:
		c->o.dedupe = 0;
		return 0;
	case K_JOBS:
		if (dd_parse_u64(arg, 1, 256, &v))
			return -1;
		c->o.jobs = (int)v;
		return 0;
	case K_PARTITIONS:
		c->o.partitions = 1;
		return 0;
	case K_QUIET:
		c->o.quiet = 1;
		return 0;
	}
	return -1;
}

/* The times, once all options are in (--now may come after --since). */
static int
check(void *vc, const struct dd_cmd *cmd)
{
	struct ctx *c = vc;
	int64_t now_ms = dd_now_ms();
	/* The zone first: a date alone is its midnight. */
	if (dd_query_tz(c->tz ? c->tz : getenv("DD_TZ")))
		return -1;
	if (c->now && dd_time_arg(c->now, now_ms, &now_ms)) {
		dd_seterr("--now: %s", dd_errmsg());
		return -1;
	}
	if (c->since && dd_query_time_arg(c->since, now_ms, &c->o.since_ms)) {
		dd_seterr("--since: %s", dd_errmsg());
		return -1;
	}
	if (c->until && dd_query_time_arg(c->until, now_ms, &c->o.until_ms)) {
		dd_seterr("--until: %s", dd_errmsg());
		return -1;
	}
	return 0;
}

/*
 * dd-lake-query: answer an analyst's question from the event lake
 * (events by time, type, subject or id, through a jq program, as NDJSON,
 * CSV, TSV, a table, a count or counts by key), or list its partitions.
 */
static int
run(void *vc, int argc, char **argv)
{
	struct ctx *c = vc;
	struct dd_query_opts *o = &c->o;
	o->types = c->types.v;
	o->ntypes = c->types.n;
	o->subjects = c->subjects.v;
	o->nsubjects = c->subjects.n;
	o->ids = c->ids.v;
	o->nids = c->ids.n;
	o->argnames = c->names.v;
	o->argvalues = c->values.v;
	o->nargs = c->names.n;
	o->fields = c->fields.v;
	o->nfields = c->fields.n;
	o->count_by = c->countby.v;
	o->ncount_by = c->countby.n;
	o->by = c->by.v;
	o->nby = c->by.n;
	o->aggs = c->aggs.v;
	o->naggs = c->aggs.n;
	o->sort = c->sort.v;
	o->nsort = c->sort.n;
	char *deflake = NULL;
	o->lake = c->lake ? c->lake : (deflake = dd_default_path("lake"));
	int code;
	if (!o->quiet)
		dd_lake_set_odd_hook(on_odd);
	struct dd_query *q = dd_query_new(o);
	if (q == NULL) {
		code = dd_cli_usage_error("%s", dd_errmsg());
	} else {
		code = dd_query_run(q, stdout);
		dd_query_free(q);
	}
	free(deflake);
	return code;
}

static const struct dd_opt *const query_tables[] = { lake_opts, query_opts, part_opts, NULL };
static const struct dd_cmd cmds[] = {
	{ NULL, NULL, 0, 0, query_tables, run },
	{ NULL, NULL, 0, 0, NULL, NULL },
};

int
main(int argc, char *argv[])
{
	struct ctx c = { 0 };
	dd_query_defaults(&c.o);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	c.o.jobs = ncpu > 0 ? (int)ncpu : 1;
	const char *fast = getenv("DD_JQ_FAST");
	c.o.jq_fast = !(fast && strcmp(fast, "0") == 0);
	c.o.diag = diag;
	struct dd_prog p = {
		.name = "dd-lake-query",
		.about = "Answer a question from the lake: the events selected by time, type,\n"
		    "subject, id and a jq program, as NDJSON, CSV, TSV or a table, a count, or\n"
		    "aggregates by key, sorted and cut; or, with --partitions, the partitions.\n"
		    "See dd-lake-query(1).\n",
		.cmds = cmds,
		.set = set,
		.check = check,
		.ctx = &c,
	};
	int code = dd_cli_main(&p, argc, argv);
	list_free(&c.types);
	list_free(&c.subjects);
	list_free(&c.ids);
	list_free(&c.names);
	list_free(&c.values);
	list_free(&c.fields);
	list_free(&c.countby);
	list_free(&c.by);
	list_free(&c.aggs);
	list_free(&c.sort);
	return code;
}
