/*
 * Planning and pruning, cheapest first: the options are checked once
 * (dd_query_new); the lake and the dataset must exist (a typo is said, not
 * answered with nothing); partitions outside the time range are never
 * listed (dd_lake_partitions); parts whose metadata excludes the time, a
 * --type, every --id or every --subject are never opened (meta_excludes).
 * Inside a part, query-read.c drops lines before any JSON scan.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ddtime.h"
#include "exitcodes.h"
#include "jqf.h"
#include "query-int.h"

void
dd_query_defaults(struct dd_query_opts *o)
{
	memset(o, 0, sizeof *o);
	o->dataset = DD_LAKE_DATASET_DEFAULT;
	o->since_ms = DD_LAKE_MIN_MS;
	o->until_ms = DD_LAKE_MAX_MS;
	o->fmt = DD_FMT_NDJSON;
	o->dedupe = 1;
	o->jobs = 1;
	o->jq_fast = 1;
}

int
path_ok(const char *p)
{
	if (p[0] == '@')
		return bucket_kind(p) != 0;
	if (p[0] == '.')
		p++;
	if (*p == '\0')
		return 1;	/* "." : the result itself */
	/* No empty component: "a..b" and "a." name nothing. */
	for (const char *s = p; ; s++) {
		const char *dot = strchr(s, '.');
		if (dot == s || (dot == NULL && *s == '\0'))
			return 0;
		if (dot == NULL)
			return 1;
		s = dot;
	}
}

int
dd_query_tz(const char *zone)
{
	return tz_set(zone && *zone ? zone : NULL);
}

int
dd_query_time_arg(const char *s, int64_t now_ms, int64_t *ms)
{
	int y;
	unsigned m, d;
	char end;
	/* A date alone is the first instant of that day in the zone. */
	if (strlen(s) == 10 && s[4] == '-' && s[7] == '-' &&
	    sscanf(s, "%4d-%2u-%2u%c", &y, &m, &d, &end) == 3 &&
	    dd_time_arg(s, now_ms, ms) == 0) {
		*ms = tz_midnight(y, m, d);
		return 0;
	}
	return dd_time_arg(s, now_ms, ms);
}

/* "ITEM:NAME" -> ITEM (malloc'd) and NAME (or NULL); the name must not be
 * empty. A ':' inside parentheses belongs to the item. */
static int
cut_name(const char *s, char **item, char **name)
{
	const char *colon = strrchr(s, ':'), *close = strrchr(s, ')');
	if (colon && close && colon < close)
		colon = NULL;
	*name = NULL;
	if (colon && colon[1] == '\0') {
		dd_seterr("\"%s\": an empty column name", s);
		return -1;
	}
	*item = colon ? dd_strndup(s, (size_t)(colon - s)) : dd_strdup(s);
	if (colon)
		*name = dd_strdup(colon + 1);
	return 0;
}

/* The default name of a key: its last path component, a bucket's word. */
static char *
key_name(const char *p)
{
	if (p[0] == '@')
		return dd_strdup(p + 1);
	if (p[0] == '.')
		p++;
	if (*p == '\0')
		return dd_strdup("value");
	const char *dot = strrchr(p, '.');
	return dd_strdup(dot ? dot + 1 : p);
}

/* The keys, aggregates and sort of an aggregate query; -1 on a usage
 * error (dd_errmsg()). */
static int
plan_agg(struct dd_query *q, const struct dd_query_opts *o)
{
	const char *const *by = o->ncount_by ? o->count_by : o->by;
	int nby = o->ncount_by ? o->ncount_by : o->nby;
	q->npaths = nby;
	q->naggs = o->naggs ? o->naggs : 1;
	int nc = q->npaths + q->naggs;
	q->paths = dd_calloc((size_t)nby + 1, sizeof *q->paths);
	q->kkind = dd_calloc((size_t)nby + 1, sizeof *q->kkind);
	q->colnames = dd_calloc((size_t)nc + 1, sizeof *q->colnames);
	q->aggs = dd_calloc((size_t)q->naggs, sizeof *q->aggs);
	for (int i = 0; i < nby; i++) {
		char *item, *name;
		if (cut_name(by[i], &item, &name))
			return -1;
		if (!path_ok(item)) {
			dd_seterr("bad key \"%s\" (a dotted path such as data.droneId, or @hour, "
			    "@day, @week, @month, @hourofday, @weekday)", item);
			free(item);
			free(name);
			return -1;
		}
		q->paths[i] = dd_strdup(item[0] == '.' ? item + 1 : item);
		q->kkind[i] = bucket_kind(item);
		q->colnames[i] = name ? name : key_name(item);
		free(item);
	}
	for (int i = 0; i < q->naggs; i++) {
		char *item, *name, *defname = NULL;
		if (cut_name(o->naggs ? o->aggs[i] : "count", &item, &name))
			return -1;
		int bad = agg_parse(item, &q->aggs[i], &defname);
		free(item);
		if (bad) {
			free(name);
			return -1;
		}
		if (name) {
			free(defname);
			defname = name;
		}
		q->colnames[q->npaths + i] = defname;
	}
	for (int i = 0; i < nc; i++)
		for (int j = 0; j < i; j++)
			if (strcmp(q->colnames[i], q->colnames[j]) == 0) {
				dd_seterr("two columns named \"%s\": name one, as KEY:NAME or "
				    "FUNC:NAME", q->colnames[i]);
				return -1;
			}
	q->sortcol = dd_calloc((size_t)o->nsort + 1, sizeof *q->sortcol);
	q->sortdesc = dd_calloc((size_t)o->nsort + 1, sizeof *q->sortdesc);
	q->nsort = o->nsort;
	for (int i = 0; i < o->nsort; i++) {
		const char *c = o->sort[i];
		q->sortdesc[i] = c[0] == '-';
		c += c[0] == '-' || c[0] == '+';
		q->sortcol[i] = -1;
		for (int j = 0; j < nc && q->sortcol[i] < 0; j++)
			if (strcmp(q->colnames[j], c) == 0)
				q->sortcol[i] = j;
		if (q->sortcol[i] < 0) {
			struct dd_buf cols = { 0 };
			for (int j = 0; j < nc; j++)
				dd_buf_printf(&cols, "%s%s", j ? ", " : "", q->colnames[j]);
			dd_seterr("--sort: no column \"%s\" in the result (columns: %s)", c, cols.p);
			dd_buf_free(&cols);
			return -1;
		}
	}
	q->groups.naggs = q->naggs;
	return 0;
}

struct dd_query *
dd_query_new(const struct dd_query_opts *o)
{
	if (!dd_lake_dataset_ok(o->dataset))
		return NULL;
	if (o->since_ms >= o->until_ms) {
		dd_seterr("--since must be before --until");
		return NULL;
	}
	int agg = o->ncount_by || o->nby || o->naggs;
	enum mode mode = o->partitions ? M_PARTITIONS : o->count ? M_COUNT :
	    agg ? M_AGG : M_RECORDS;
	if (o->count && agg) {
		dd_seterr("--count excludes --count-by, --by and --agg");
		return NULL;
	}
	if (o->ncount_by && (o->nby || o->naggs)) {
		dd_seterr("--count-by is --by with --agg count: give one or the other");
		return NULL;
	}
	if (o->partitions && (o->count || agg || o->filter || o->nfields || o->nsort ||
	    o->ntypes || o->nsubjects || o->nids || o->limit)) {
		dd_seterr("--partitions takes only --since, --until, --dataset and --format");
		return NULL;
	}
	if (o->fmt == DD_FMT_CHART && mode != M_AGG) {
		dd_seterr("--format chart needs --by or --count-by");
		return NULL;
	}
	if (mode == M_COUNT && o->fmt != DD_FMT_NDJSON) {
		dd_seterr("--count writes one number: --format does not apply");
		return NULL;
	}
	if (mode == M_COUNT && (o->nfields || o->limit)) {
		dd_seterr("--fields and --limit do not apply to --count");
		return NULL;
	}
	if (mode == M_AGG && o->nfields) {
		dd_seterr("--fields does not apply to aggregates: their columns are the keys "
		    "and the aggregates");
		return NULL;
	}
	if (o->nsort && mode != M_AGG) {
		dd_seterr("--sort orders the rows of an aggregate (--by, --agg, --count-by)");
		return NULL;
	}
	for (int i = 0; i < o->nfields; i++)
		if (!path_ok(o->fields[i])) {
			dd_seterr("bad field \"%s\" (a dotted path such as data.battery, or "
			    "@hour, @day, @week, @month, @hourofday, @weekday)", o->fields[i]);
			return NULL;
		}

	struct dd_query *q = dd_calloc(1, sizeof *q);
	q->o = *o;
	q->mode = mode;
	if (o->filter) {
		q->jq = dd_jqf_new(o->filter, o->argnames, o->argvalues, o->nargs);
		if (q->jq == NULL) {
			free(q);
			return NULL;
		}
		dd_jqf_set_fast(q->jq, o->jq_fast);
	}
	if (mode == M_AGG) {
		if (plan_agg(q, o)) {
			dd_query_free(q);
			return NULL;
		}
	} else {
		static const char *const defcols[] = { "time", "type", "subject", "id" };
		const char *const *paths = o->fields;
		int npaths = o->nfields;
		if (mode == M_RECORDS && o->fmt != DD_FMT_NDJSON && npaths == 0) {
			paths = defcols;
			npaths = 4;
		}
		q->npaths = npaths;
		q->paths = dd_calloc((size_t)npaths + 1, sizeof *q->paths);
		q->kkind = dd_calloc((size_t)npaths + 1, sizeof *q->kkind);
		q->colnames = dd_calloc((size_t)npaths + 9, sizeof *q->colnames);
		for (int i = 0; i < npaths; i++) {
			const char *p = paths[i];
			q->paths[i] = dd_strdup(p[0] == '.' ? p + 1 : p);
			q->kkind[i] = bucket_kind(p);
			q->colnames[i] = dd_strdup(p);
		}
	}
	if (mode == M_PARTITIONS) {
		static const char *const pcols[] = { "dataset", "date", "parts", "events",
		    "bytes", "minTime", "maxTime", "damaged" };
		for (int i = 0; i < 8; i++)
			q->colnames[i] = dd_strdup(pcols[i]);
		q->ncells = o->fmt == DD_FMT_NDJSON ? 1 : 8;
	} else {
		q->ncells = o->fmt == DD_FMT_NDJSON ? 1 : q->npaths;
	}
	/* The event's time is needed by buckets and by first and last. */
	int timed = 0;
	for (int i = 0; i < q->npaths; i++)
		timed |= q->kkind[i] != 0;
	for (int i = 0; i < q->naggs; i++)
		timed |= q->aggs[i].fn == A_FIRST || q->aggs[i].fn == A_LAST;
	/* Lines go unscanned only when nothing is looked up in them: a jq
	 * program or a path found from the scan costs less than walks over
	 * the line would (the scan hands over the envelope and data's
	 * members at once). */
	int reads = q->jq != NULL && !dd_jqf_identity(q->jq);
	for (int i = 0; i < q->npaths; i++)
		reads |= q->kkind[i] == 0;
	for (int i = 0; i < q->naggs; i++)
		reads |= q->aggs[i].path != NULL;
	q->raw_ok = !o->ntypes && !o->nsubjects && !o->nids && !timed && !reads;
	/* Metadata counts are exact only where no id can be twice: without
	 * de-duplication, or in a partition whose parts' metadata vouch for
	 * it (do_partition); elsewhere every event is read. */
	q->meta_counts = (mode == M_COUNT || mode == M_AGG) &&
	    !o->nsubjects && !o->nids && (q->jq == NULL || dd_jqf_identity(q->jq));
	for (int i = 0; i < q->naggs && q->meta_counts; i++)
		q->meta_counts = q->aggs[i].fn == A_COUNT;
	for (int i = 0; i < q->npaths && q->meta_counts; i++)
		q->meta_counts = strcmp(q->paths[i], "type") == 0 || q->kkind[i];
	return q;
}

void
dd_query_free(struct dd_query *q)
{
	if (q == NULL)
		return;
	dd_jqf_free(q->jq);
	for (int i = 0; q->paths && q->paths[i]; i++)
		free(q->paths[i]);
	for (int i = 0; q->colnames && q->colnames[i]; i++)
		free(q->colnames[i]);
	free(q->paths);
	free(q->colnames);
	free(q->kkind);
	for (int i = 0; q->aggs && i < q->naggs; i++)
		free(q->aggs[i].path);
	free(q->aggs);
	free(q->sortcol);
	free(q->sortdesc);
	dd_lake_partitions_free(q->parts, q->nparts);
	groups_free(&q->groups);
	sset_free(&q->types);
	free(q);
}

/* Does the metadata rule the part out? */
int
meta_excludes(const struct dd_query *q, const struct dd_lake_meta *m)
{
	const struct dd_query_opts *o = &q->o;
	if (!dd_lake_may_have_time(m, o->since_ms, o->until_ms))
		return 1;
	if (o->ntypes) {
		int any = 0;
		for (size_t i = 0; i < m->ntypes && !any; i++)
			for (int j = 0; j < o->ntypes && !any; j++)
				any = m->types[i].n > 0 && strcmp(m->types[i].type, o->types[j]) == 0;
		if (!any)
			return 1;
	}
	if (o->nids) {
		int any = 0;
		for (int j = 0; j < o->nids && !any; j++)
			any = dd_lake_may_have_id(m, o->ids[j], strlen(o->ids[j]));
		if (!any)
			return 1;
	}
	if (o->nsubjects) {
		int any = 0;
		for (int j = 0; j < o->nsubjects && !any; j++)
			any = dd_lake_may_have_subject(m, o->subjects[j], strlen(o->subjects[j]));
		if (!any)
			return 1;
	}
	return 0;
}

int
wanted_type(const struct dd_query *q, const char *t)
{
	if (q->o.ntypes == 0)
		return 1;
	for (int j = 0; j < q->o.ntypes; j++)
		if (strcmp(t, q->o.types[j]) == 0)
			return 1;
	return 0;
}

/* ------------------------------------------- what is missing is said */

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The datasets of the lake (directories with a dataset's name), sorted,
 * joined by ", " into b. */
static void
list_datasets(const char *lake, struct dd_buf *b)
{
	DIR *d = opendir(lake);
	char **v = NULL;
	size_t n = 0;
	struct dirent *de;
	while (d && (de = readdir(d)) != NULL) {
		struct stat st;
		struct dd_buf p = { 0 };
		dd_buf_printf(&p, "%s/%s", lake, de->d_name);
		if (dd_lake_dataset_ok(de->d_name) && stat(p.p, &st) == 0 && S_ISDIR(st.st_mode)) {
			v = dd_realloc(v, (n + 1) * sizeof *v);
			v[n++] = dd_strdup(de->d_name);
		}
		dd_buf_free(&p);
	}
	if (d)
		closedir(d);
	if (n)	/* qsort of NULL, even of 0 items, is undefined */
		qsort(v, n, sizeof *v, cmp_str);
	for (size_t i = 0; i < n; i++) {
		dd_buf_printf(b, "%s%s", i ? ", " : "", v[i]);
		free(v[i]);
	}
	free(v);
}

/* A lake or dataset that does not exist is an error naming it and what
 * there is, never an empty answer: a typo must not pass for "nothing".
 * An existing dataset without partitions is an empty answer. */
static int
check_dataset(const struct dd_query_opts *o)
{
	struct stat st;
	if (stat(o->lake, &st) != 0 && errno != ENOENT && errno != ENOTDIR) {
		dd_seterr("%s: %s", o->lake, strerror(errno));
		return -1;
	}
	if (stat(o->lake, &st) != 0 || !S_ISDIR(st.st_mode)) {
		dd_seterr("%s: no such lake", o->lake);
		return -1;
	}
	struct dd_buf p = { 0 };
	dd_buf_printf(&p, "%s/%s", o->lake, o->dataset);
	int there = stat(p.p, &st) == 0 && S_ISDIR(st.st_mode);
	dd_buf_free(&p);
	if (there)
		return 0;
	struct dd_buf names = { 0 };
	list_datasets(o->lake, &names);
	if (names.len)
		dd_seterr("%s: no dataset \"%s\" (datasets: %s)", o->lake, o->dataset, names.p);
	else
		dd_seterr("%s: no dataset \"%s\" (the lake holds none)", o->lake, o->dataset);
	dd_buf_free(&names);
	return -1;
}

/* --type: the types that part metadata in the range holds are gathered
 * as the parts are pruned (no second pass over the metadata), so that a
 * --type none of them holds, a typo most likely, is warned about. */
void
note_types(struct eng *e, const struct dd_lake_part *pt)
{
	const struct dd_query_opts *o = &e->q->o;
	if (!pt->has_meta) {
		e->untyped = 1;	/* it could hold anything */
		return;
	}
	if (!dd_lake_may_have_time(&pt->meta, o->since_ms, o->until_ms))
		return;
	for (size_t i = 0; i < pt->meta.ntypes; i++) {
		const char *t = pt->meta.types[i].type;
		size_t n = strlen(t);
		int added;
		if (pt->meta.types[i].n > 0)
			sset_find(&e->types, t, n, dd_hash64(t, n), &added)->n +=
			    pt->meta.types[i].n;
	}
}

/* The partition's types as a frame: a byte (1: a part had no metadata),
 * then the types with their counts (sset_encode). */
void
send_types(struct eng *e)
{
	struct dd_buf b = { 0 };
	dd_buf_addc(&b, (char)e->untyped);
	sset_encode(&e->types, &b);
	eng_frame(e, F_TYPES, b.p, b.len);
	dd_buf_free(&b);
	sset_free(&e->types);
	e->untyped = 0;
}

void
merge_types(struct dd_query *q, const char *p, size_t n)
{
	if (n == 0)
		return;
	q->untyped |= p[0];
	sset_merge(&q->types, p + 1, n - 1);
}

/* After a whole run: each --type that no metadata of the range holds. */
static void
warn_types(struct dd_query *q)
{
	enum { SHOWN = 8 };
	if (q->o.quiet)
		return;
	char **v = dd_calloc(q->types.n + 1, sizeof *v);
	size_t n = 0;
	for (size_t i = 0; i < q->types.cap; i++)
		if (q->types.v[i].used)
			v[n++] = dd_strndup(q->types.arena.p + q->types.v[i].off,
			    q->types.v[i].len);
	qsort(v, n, sizeof *v, cmp_str);
	struct dd_buf list = { 0 }, msg = { 0 };
	for (size_t i = 0; i < n && i < SHOWN; i++)
		dd_buf_printf(&list, "%s%s", i ? ", " : "", v[i]);
	if (n > SHOWN)
		dd_buf_adds(&list, ", \u2026");
	for (int j = 0; j < q->o.ntypes; j++) {
		const char *t = q->o.types[j];
		int added;
		if (q->types.n && sset_find(&q->types, t, strlen(t), dd_hash64(t, strlen(t)),
		    &added) && !added)
			continue;
		dd_buf_reset(&msg);
		if (n)
			dd_buf_printf(&msg, "--type %s: no such type in the range (types: %s)", t,
			    list.p);
		else
			dd_buf_printf(&msg, "--type %s: no such type in the range (it holds none)", t);
		fflush(q->out);
		out_diag(q, msg.p);
	}
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
	dd_buf_free(&list);
	dd_buf_free(&msg);
}

int
dd_query_run(struct dd_query *q, FILE *out)
{
	const struct dd_query_opts *o = &q->o;
	q->out = out;
	if (check_dataset(o) || dd_lake_partitions(o->lake, o->dataset, o->since_ms,
	    o->until_ms, &q->parts, &q->nparts))
		return DD_EXIT_IO;
	/* A worker per core, but not more than there are partitions. */
	int nw = o->jobs;
	if ((size_t)nw > q->nparts)
		nw = (int)q->nparts;
	int rc = DD_EXIT_OK;
	if (nw > 1) {
		rc = run_workers(q, nw);
	} else {
		struct eng e = { .q = q, .fd = -1, .groups.naggs = q->naggs };
		start_output(q);
		for (size_t i = 0; i < q->nparts && !e.stop; i++)
			do_partition(&e, i);
		eng_free(&e);
	}
	/* Only a whole run has seen every type of the range. */
	if (rc == DD_EXIT_OK && o->ntypes && !q->untyped && !q->stop)
		warn_types(q);
	return out_finish(q, rc);
}
