/*
 * Aggregation: --count, and --by KEY,... --agg FUNC,... (--count-by).
 * Each partition aggregates on its own into groups (a key, the JSON array
 * of its parts, and an accumulator per aggregate) and sends them as one
 * frame; the parent merges the frames in partition order, which makes
 * every function exact and the answer the same for any -j: counts and
 * sums add up, the values of a percentile are kept (and sorted once, at
 * the end), distinct values are a set, first and last keep their time.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ddtime.h"
#include "json.h"
#include "query-int.h"

/* ------------------------------------------------------ hashed sets */

void
sset_free(struct sset *s)
{
	free(s->v);
	dd_buf_free(&s->arena);
	memset(s, 0, sizeof *s);
}

struct sent *
sset_find(struct sset *s, const char *p, size_t len, uint64_t h, int *added)
{
	if ((s->n + 1) * 4 > s->cap * 3) {
		struct sset old = *s;
		s->cap = old.cap ? old.cap * 2 : 64;
		s->v = dd_calloc(s->cap, sizeof *s->v);
		for (size_t i = 0; i < old.cap; i++) {
			if (!old.v[i].used)
				continue;
			size_t j = (size_t)dd_slot(old.v[i].h) & (s->cap - 1);
			while (s->v[j].used)
				j = (j + 1) & (s->cap - 1);
			s->v[j] = old.v[i];
		}
		free(old.v);
	}
	size_t mask = s->cap - 1, i = (size_t)dd_slot(h) & mask;
	for (; s->v[i].used; i = (i + 1) & mask) {
		struct sent *e = &s->v[i];
		if (e->h == h && e->len == len && memcmp(s->arena.p + e->off, p, len) == 0) {
			*added = 0;
			return e;
		}
	}
	struct sent *e = &s->v[i];
	e->used = 1;
	e->h = h;
	e->off = s->arena.len;
	e->len = len;
	e->n = 0;
	dd_buf_add(&s->arena, p, len);
	s->n++;
	*added = 1;
	return e;
}

/* Each entry as a u32 length, its bytes and its u64 count (a frame). */
void
sset_encode(const struct sset *s, struct dd_buf *b)
{
	for (size_t i = 0; i < s->cap; i++) {
		const struct sent *k = &s->v[i];
		if (!k->used)
			continue;
		put32(b, (uint32_t)k->len);
		dd_buf_add(b, s->arena.p + k->off, k->len);
		put64(b, k->n);
	}
}

/* Add the entries of sset_encode's bytes to s. */
void
sset_merge(struct sset *s, const char *p, size_t n)
{
	const char *e = p + n;
	while (p < e) {
		uint32_t len = get32(p);
		const char *k = p + 4;
		uint64_t cnt = get64(k + len);
		int added;
		sset_find(s, k, len, dd_hash64(k, len), &added)->n += cnt;
		p = k + len + 8;
	}
}

/* ------------------------------------------------------- the specs */

static const struct {
	const char *name;
	enum afn fn;
	int path;		/* 1: takes a path, 2: count's optional one */
} fns[] = {
	{ "count", A_COUNT, 2 }, { "sum", A_SUM, 1 }, { "avg", A_AVG, 1 },
	{ "min", A_MIN, 1 }, { "max", A_MAX, 1 }, { "distinct", A_DISTINCT, 1 },
	{ "first", A_FIRST, 1 }, { "last", A_LAST, 1 },
};

/* "FUNC" or "FUNC(PATH)", NAME already cut off; its default name into
 * *name. 0, or -1 with dd_errmsg(). */
int
agg_parse(const char *s, struct aspec *a, char **name)
{
	const char *open = strchr(s, '(');
	size_t fl = open ? (size_t)(open - s) : strlen(s);
	memset(a, 0, sizeof *a);
	int found = 0, takes = 0;
	for (size_t i = 0; i < sizeof fns / sizeof fns[0] && !found; i++)
		if (strlen(fns[i].name) == fl && strncmp(s, fns[i].name, fl) == 0) {
			a->fn = fns[i].fn;
			takes = fns[i].path;
			found = 1;
		}
	if (!found && fl >= 2 && fl <= 3 && s[0] == 'p' && s[1] >= '1' && s[1] <= '9' &&
	    (fl == 2 || (s[2] >= '0' && s[2] <= '9'))) {
		a->fn = A_PCT;
		a->pct = fl == 2 ? s[1] - '0' : (s[1] - '0') * 10 + (s[2] - '0');
		takes = 1;
		found = 1;
	}
	if (!found) {
		dd_seterr("--agg: unknown function \"%.*s\" (count, sum, avg, min, max, distinct, "
		    "p1..p99, first, last)", (int)fl, s);
		return -1;
	}
	if (!open) {
		if (takes == 1) {
			dd_seterr("--agg: %s needs a path: %s(PATH)", s, s);
			return -1;
		}
		*name = dd_strdup(s);
		return 0;
	}
	size_t n = strlen(open + 1);
	if (n == 0 || open[n] != ')') {
		dd_seterr("--agg: \"%s\": a path in parentheses, FUNC(PATH)", s);
		return -1;
	}
	char *path = dd_strndup(open + 1, n - 1);
	const char *p = path[0] == '.' ? path + 1 : path;
	if (!path_ok(path) || *p == '\0' || p[0] == '@') {
		dd_seterr("--agg: bad path \"%s\" in %s (a dotted path such as data.battery)",
		    path, s);
		free(path);
		return -1;
	}
	if (a->fn == A_COUNT)
		a->fn = A_COUNTV;
	a->path = dd_strdup(p);
	free(path);
	const char *last = strrchr(a->path, '.');
	struct dd_buf b = { 0 };
	dd_buf_printf(&b, "%.*s_%s", (int)fl, s, last ? last + 1 : a->path);
	*name = b.p;
	return 0;
}

/* ------------------------------------------------------ accumulators */

void
groups_free(struct groups *g)
{
	for (size_t i = 0; i < g->n * (size_t)g->naggs; i++) {
		dd_buf_free(&g->acc[i].v);
		if (g->acc[i].set) {
			sset_free(g->acc[i].set);
			free(g->acc[i].set);
		}
	}
	free(g->acc);
	sset_free(&g->idx);
	int naggs = g->naggs;
	memset(g, 0, sizeof *g);
	g->naggs = naggs;
}

/* The accumulators of the group of key k, a new group when missing. */
static struct acc *
group(struct groups *g, const char *k, size_t n)
{
	int added;
	struct sent *s = sset_find(&g->idx, k, n, dd_hash64(k, n), &added);
	if (added) {
		if (g->n == g->cap) {
			g->cap = g->cap ? g->cap * 2 : 64;
			g->acc = dd_realloc(g->acc, g->cap * (size_t)g->naggs * sizeof *g->acc);
		}
		s->n = g->n++;
		struct acc *a = &g->acc[s->n * (size_t)g->naggs];
		memset(a, 0, (size_t)g->naggs * sizeof *a);
		for (int i = 0; i < g->naggs; i++) {
			a[i].mn = INFINITY;
			a[i].mx = -INFINITY;
		}
	}
	return &g->acc[s->n * (size_t)g->naggs];
}

/* Neumaier's compensated sum: the error of each addition is kept in c, so
 * the total does not depend on the order (or -j) beyond the last bit. */
static void
sum_add(struct acc *a, double x)
{
	double t = a->s + x;
	if (fabs(a->s) >= fabs(x))
		a->c += (a->s - t) + x;
	else
		a->c += (x - t) + a->s;
	a->s = t;
}

/* A value as canonical JSON: strings re-encoded (one string written with
 * or without escapes is one value), numbers by their double. */
static void
canon(const struct dd_jval *v, struct dd_buf *b, struct dd_buf *tmp)
{
	double d;
	if (v->type == DD_JSTR && !v->esc) {
		/* Valid JSON without an escape: no byte to escape either. */
		dd_buf_addc(b, '"');
		dd_buf_add(b, v->p, v->n);
		dd_buf_addc(b, '"');
	} else if (v->type == DD_JSTR) {
		dd_buf_reset(tmp);
		dd_jstr_decode(v, tmp);
		dd_buf_json_str(b, tmp->p ? tmp->p : "", tmp->len);
	} else if (v->type == DD_JNONE) {
		dd_buf_adds(b, "null");
	} else if (v->type == DD_JNUM && dd_jnum_double(v, &d) == 0 && isfinite(d)) {
		num_text(d, b);
	} else {
		dd_buf_add(b, v->p, v->n);
	}
}

/* One value of an event into an accumulator. */
static void
acc_add(struct eng *e, const struct aspec *sp, struct acc *a, const struct dd_jval *v, int have)
{
	double d;
	if (sp->fn == A_COUNT) {
		a->n++;
		return;
	}
	if (!have || v->type == DD_JNULL || v->type == DD_JNONE)
		return;		/* SQL: a null is no value */
	switch (sp->fn) {
	case A_COUNTV:
		a->n++;
		return;
	case A_DISTINCT: {
		if (a->set == NULL)
			a->set = dd_calloc(1, sizeof *a->set);
		dd_buf_reset(&e->cells);
		canon(v, &e->cells, &e->tmp);
		int added;
		sset_find(a->set, e->cells.p, e->cells.len,
		    dd_hash64(e->cells.p, e->cells.len), &added);
		a->n += (uint64_t)added;
		return;
	}
	case A_FIRST:
	case A_LAST:
		/* Ties: the first read is first, the last read is last. */
		if (a->n && (sp->fn == A_FIRST ? e->time_ms >= a->t : e->time_ms < a->t))
			return;
		a->n = 1;
		a->t = e->time_ms;
		/* Its text as found (made canonical once, in acc_value): most
		 * events replace the last value. */
		dd_buf_reset(&a->v);
		if (v->type == DD_JSTR)
			dd_buf_addc(&a->v, '"');
		dd_buf_add(&a->v, v->p, v->n);
		if (v->type == DD_JSTR)
			dd_buf_addc(&a->v, '"');
		return;
	default:
		break;
	}
	/* The numeric functions: anything but a number is skipped, counted. */
	if (v->type != DD_JNUM || dd_jnum_double(v, &d) || !isfinite(d)) {
		e->skipped++;
		return;
	}
	a->n++;
	switch (sp->fn) {
	case A_SUM:
	case A_AVG:
		sum_add(a, d);
		break;
	case A_MIN:
		if (d < a->mn)
			a->mn = d;
		break;
	case A_MAX:
		if (d > a->mx)
			a->mx = d;
		break;
	case A_PCT:
		dd_buf_add(&a->v, &d, sizeof d);
		break;
	default:
		break;
	}
}

/* Aggregate one result under its key: the JSON array of its --by parts. */
void
agg_result(struct eng *e, const struct dd_jval *res, int same)
{
	struct dd_query *q = e->q;
	struct dd_jval v;
	dd_buf_reset(&e->key);
	dd_buf_addc(&e->key, '[');
	for (int i = 0; i < q->npaths; i++) {
		if (i)
			dd_buf_addc(&e->key, ',');
		if (q->kkind[i]) {
			dd_buf_reset(&e->cells);
			time_bucket(q->kkind[i], e->time_ms, &e->cells);
			if (bucket_is_number(q->kkind[i]))
				dd_buf_add(&e->key, e->cells.p, e->cells.len);
			else
				dd_buf_json_str(&e->key, e->cells.p, e->cells.len);
		} else {
			if (!event_field(e, res, same, q->paths[i], &v))
				v.type = DD_JNONE;
			canon(&v, &e->key, &e->tmp);
		}
	}
	dd_buf_addc(&e->key, ']');
	/* The key is copied into the set: e->cells may be reused below. */
	struct acc *a = group(&e->groups, e->key.p, e->key.len);
	for (int i = 0; i < q->naggs; i++) {
		const struct aspec *sp = &q->aggs[i];
		int have = sp->path && event_field(e, res, same, sp->path, &v);
		acc_add(e, sp, &a[i], &v, have);
	}
}

/* Answer from the part's metadata: 1 when done, 0 when it must be read.
 * Only counts (every aggregate a count) of the part wholly in the range,
 * by type and buckets that are one value for the whole part. */
int
meta_count(struct eng *e, const struct dd_lake_meta *m)
{
	struct dd_query *q = e->q;
	if (m->min_ms < q->o.since_ms || m->max_ms >= q->o.until_ms)
		return 0;
	for (int i = 0; i < q->npaths; i++)
		if (q->kkind[i] && m->events && bucket_spans(q->kkind[i], m->min_ms, m->max_ms))
			return 0;
	uint64_t sum = 0;
	if (q->o.ntypes == 0) {
		sum = m->events;
	} else {
		/* Each type once, even when asked twice. */
		for (size_t i = 0; i < m->ntypes; i++)
			if (wanted_type(q, m->types[i].type))
				sum += m->types[i].n;
	}
	if (q->mode == M_COUNT) {
		e->count += sum;
		return 1;
	}
	int bytype = 0;
	for (int i = 0; i < q->npaths; i++)
		bytype |= !q->kkind[i];
	if (bytype && m->ntypes == 0 && m->events > 0)
		return 0;	/* no per-type counts: read it */
	size_t rows = bytype ? m->ntypes : 1;
	for (size_t r = 0; r < rows; r++) {
		uint64_t n = sum;
		if (bytype) {
			if (!wanted_type(q, m->types[r].type))
				continue;
			n = m->types[r].n;
		}
		if (n == 0)
			continue;
		dd_buf_reset(&e->key);
		dd_buf_addc(&e->key, '[');
		for (int i = 0; i < q->npaths; i++) {
			if (i)
				dd_buf_addc(&e->key, ',');
			dd_buf_reset(&e->tmp);
			if (q->kkind[i])
				time_bucket(q->kkind[i], m->min_ms, &e->tmp);
			else
				dd_buf_adds(&e->tmp, m->types[r].type);
			if (q->kkind[i] && bucket_is_number(q->kkind[i]))
				dd_buf_add(&e->key, e->tmp.p, e->tmp.len);
			else
				dd_buf_json_str(&e->key, e->tmp.p, e->tmp.len);
		}
		dd_buf_addc(&e->key, ']');
		struct acc *a = group(&e->groups, e->key.p, e->key.len);
		for (int i = 0; i < q->naggs; i++)
			a[i].n += n;
	}
	return 1;
}

/* ------------------------------------------------- frames of groups */

static void
acc_encode(const struct acc *a, struct dd_buf *b)
{
	put64(b, a->n);
	dd_buf_add(b, &a->s, 8);
	dd_buf_add(b, &a->c, 8);
	dd_buf_add(b, &a->mn, 8);
	dd_buf_add(b, &a->mx, 8);
	put64(b, (uint64_t)a->t);
	put32(b, (uint32_t)a->v.len);
	dd_buf_add(b, a->v.p, a->v.len);
	put32(b, a->set ? (uint32_t)a->set->n : 0);
	for (size_t i = 0; a->set && i < a->set->cap; i++)
		if (a->set->v[i].used) {
			put32(b, (uint32_t)a->set->v[i].len);
			dd_buf_add(b, a->set->arena.p + a->set->v[i].off, a->set->v[i].len);
		}
}

/* Merge an encoded accumulator of a later partition into a; returns the
 * bytes read. */
static size_t
acc_merge(const struct aspec *sp, struct acc *a, const char *p)
{
	const char *s = p;
	uint64_t n = get64(s);
	double v[4];
	memcpy(v, s + 8, sizeof v);
	int64_t t = (int64_t)get64(s + 40);
	uint32_t vlen = get32(s + 48);
	const char *val = s + 52;
	s = val + vlen;
	uint32_t nset = get32(s);
	s += 4;
	switch (sp->fn) {
	case A_FIRST:
	case A_LAST:
		if (n && (a->n == 0 || (sp->fn == A_FIRST ? t < a->t : t >= a->t))) {
			a->n = n;
			a->t = t;
			dd_buf_reset(&a->v);
			dd_buf_add(&a->v, val, vlen);
		}
		break;
	case A_DISTINCT:
		if (nset && a->set == NULL)
			a->set = dd_calloc(1, sizeof *a->set);
		break;
	default:
		a->n += n;
		sum_add(a, v[0]);
		a->c += v[1];
		if (v[2] < a->mn)
			a->mn = v[2];
		if (v[3] > a->mx)
			a->mx = v[3];
		if (vlen)
			dd_buf_add(&a->v, val, vlen);
	}
	for (uint32_t i = 0; i < nset; i++) {
		uint32_t len = get32(s);
		int added;
		sset_find(a->set, s + 4, len, dd_hash64(s + 4, len), &added);
		s += 4 + len;
	}
	if (sp->fn == A_DISTINCT)
		a->n = a->set ? a->set->n : 0;
	return (size_t)(s - p);
}

/* The groups of the current partition as a frame: the values skipped,
 * then each key with its accumulators. */
void
send_counts(struct eng *e)
{
	struct dd_query *q = e->q;
	eng_flush_rec(e);
	if (q->mode == M_COUNT) {
		eng_frame(e, F_COUNT, &e->count, 8);
		e->count = 0;
	} else if (q->mode == M_AGG && (e->groups.n || e->skipped)) {
		struct dd_buf b = { 0 };
		put64(&b, e->skipped);
		for (size_t i = 0; i < e->groups.idx.cap; i++) {
			const struct sent *k = &e->groups.idx.v[i];
			if (!k->used)
				continue;
			put32(&b, (uint32_t)k->len);
			dd_buf_add(&b, e->groups.idx.arena.p + k->off, k->len);
			for (int j = 0; j < q->naggs; j++)
				acc_encode(&e->groups.acc[k->n * (size_t)q->naggs + j], &b);
		}
		eng_frame(e, F_AGG, b.p, b.len);
		dd_buf_free(&b);
	}
	groups_free(&e->groups);
	e->skipped = 0;
}

void
merge_groups(struct dd_query *q, const char *p, size_t n)
{
	const char *e = p + n;
	q->skipped += get64(p);
	p += 8;
	while (p < e) {
		uint32_t len = get32(p);
		struct acc *a = group(&q->groups, p + 4, len);
		p += 4 + len;
		for (int j = 0; j < q->naggs; j++)
			p += acc_merge(&q->aggs[j], &a[j], p);
	}
}

/* --------------------------------------------------- final values */

/* The shortest text that reads back as the same double. */
void
num_text(double d, struct dd_buf *b)
{
	char t[40];
	if (d == 0)
		d = 0;	/* no "-0" */
	if (d == floor(d) && fabs(d) < 1e15) {
		snprintf(t, sizeof t, "%.0f", d);
	} else {
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(t, sizeof t, "%.*g", prec, d);
			if (strtod(t, NULL) == d)
				break;
		}
	}
	dd_buf_adds(b, t);
}

static int
cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return (a > b) - (a < b);
}

/* The result of an accumulator as JSON: null where SQL has NULL. */
void
acc_value(const struct aspec *sp, struct acc *a, struct dd_buf *b)
{
	if (sp->fn == A_COUNT || sp->fn == A_COUNTV || sp->fn == A_DISTINCT) {
		dd_buf_printf(b, "%" PRIu64, a->n);
		return;
	}
	if (a->n == 0) {
		dd_buf_adds(b, "null");
		return;
	}
	switch (sp->fn) {
	case A_SUM:
		num_text(a->s + a->c, b);
		break;
	case A_AVG:
		num_text((a->s + a->c) / (double)a->n, b);
		break;
	case A_MIN:
		num_text(a->mn, b);
		break;
	case A_MAX:
		num_text(a->mx, b);
		break;
	case A_PCT: {
		/* DuckDB's quantile_cont: between the closest ranks of
		 * (n - 1) * q, linearly. */
		double *v = (double *)(void *)a->v.p;
		size_t n = a->v.len / sizeof *v;
		qsort(v, n, sizeof *v, cmp_double);
		double pos = (double)(n - 1) * sp->pct / 100.0;
		size_t lo = (size_t)floor(pos), hi = (size_t)ceil(pos);
		double r = v[lo] + (pos - (double)lo) * (v[hi] - v[lo]);
		num_text(r, b);
		break;
	}
	default: {
		/* first, last: the JSON text kept, canonical now. */
		struct dd_jval x = dd_json_value(a->v.p, a->v.len);
		struct dd_buf tmp = { 0 };
		canon(&x, b, &tmp);
		dd_buf_free(&tmp);
	}
	}
}

/* The accumulators of the one group of a query without --by that read
 * nothing: SQL's one row (a count of 0, nulls). */
struct acc *
empty_group(struct dd_query *q)
{
	return group(&q->groups, "[]", 2);
}
