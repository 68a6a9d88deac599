/*
 * Aggregation: --count and --count-by. Each partition counts on its own
 * (results, or the types and buckets of part metadata when that is exact)
 * and sends its counts as one frame; the parent adds them up, and sorts
 * the keys in jq's order of values for the output.
 */
#include <inttypes.h>
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
		s->cap = old.cap ? old.cap * 2 : 1024;
		s->v = dd_calloc(s->cap, sizeof *s->v);
		for (size_t i = 0; i < old.cap; i++) {
			if (!old.v[i].used)
				continue;
			size_t j = (size_t)old.v[i].h & (s->cap - 1);
			while (s->v[j].used)
				j = (j + 1) & (s->cap - 1);
			s->v[j] = old.v[i];
		}
		free(old.v);
	}
	size_t mask = s->cap - 1, i = (size_t)h & mask;
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

int
is_bucket(const char *k)
{
	return strcmp(k, "@hour") == 0 || strcmp(k, "@day") == 0 || strcmp(k, "@month") == 0;
}

/* The bucket of the event time: @hour 2026-11-26T03:00:00Z, @day 2026-11-26,
 * @month 2026-11. */
void
time_bucket(const char *k, int64_t ms, struct dd_buf *b)
{
	char t[DD_TIMEBUF];
	dd_time_format(ms, t);
	if (strcmp(k, "@hour") == 0)
		dd_buf_printf(b, "%.13s:00:00Z", t);
	else if (strcmp(k, "@day") == 0)
		dd_buf_printf(b, "%.10s", t);
	else
		dd_buf_printf(b, "%.7s", t);
}

/* A count-by key part, as canonical JSON (strings re-encoded, so the same
 * string written with or without escapes is one key). */
static void
key_json(const struct dd_jval *v, struct dd_buf *b, struct dd_buf *tmp)
{
	if (v->type == DD_JSTR) {
		dd_buf_reset(tmp);
		dd_jstr_decode(v, tmp);
		dd_buf_json_str(b, tmp->p ? tmp->p : "", tmp->len);
	} else if (v->type == DD_JNONE) {
		dd_buf_adds(b, "null");
	} else {
		dd_buf_add(b, v->p, v->n);
	}
}

/* Count a result under its key: the JSON array of its --count-by parts. */
void
count_key(struct eng *e, const struct dd_jval *res, int same)
{
	struct dd_query *q = e->q;
	struct dd_jval v;
	dd_buf_reset(&e->key);
	dd_buf_addc(&e->key, '[');
	for (int i = 0; i < q->npaths; i++) {
		if (i)
			dd_buf_addc(&e->key, ',');
		if (q->paths[i][0] == '@') {
			dd_buf_reset(&e->cells);
			time_bucket(q->paths[i], e->time_ms, &e->cells);
			dd_buf_json_str(&e->key, e->cells.p, e->cells.len);
		} else {
			if (!event_field(e, res, same, q->paths[i], &v))
				v.type = DD_JNONE;
			key_json(&v, &e->key, &e->tmp);
		}
	}
	dd_buf_addc(&e->key, ']');
	int added;
	sset_find(&e->keys, e->key.p, e->key.len, dd_hash64(e->key.p, e->key.len),
	    &added)->n++;
}

/* Answer a count from the part's metadata (no de-duplication asked, the
 * part wholly inside the range). 1 when done, 0 when it must be read. */
int
meta_count(struct eng *e, const struct dd_lake_meta *m)
{
	struct dd_query *q = e->q;
	if (m->min_ms < q->o.since_ms || m->max_ms >= q->o.until_ms)
		return 0;
	for (int i = 0; i < q->npaths; i++) {
		/* A bucket must be one value for the whole part. */
		struct dd_buf a = { 0 }, b = { 0 };
		if (q->paths[i][0] != '@')
			continue;
		time_bucket(q->paths[i], m->min_ms, &a);
		time_bucket(q->paths[i], m->max_ms, &b);
		int one = strcmp(a.p, b.p) == 0;
		dd_buf_free(&a);
		dd_buf_free(&b);
		if (!one)
			return 0;
	}
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
		bytype |= q->paths[i][0] != '@';
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
			if (q->paths[i][0] == '@')
				time_bucket(q->paths[i], m->min_ms, &e->tmp);
			else
				dd_buf_adds(&e->tmp, m->types[r].type);
			dd_buf_json_str(&e->key, e->tmp.p, e->tmp.len);
		}
		dd_buf_addc(&e->key, ']');
		int added;
		sset_find(&e->keys, e->key.p, e->key.len, dd_hash64(e->key.p, e->key.len),
		    &added)->n += n;
	}
	return 1;
}

void
send_counts(struct eng *e)
{
	struct dd_query *q = e->q;
	eng_flush_rec(e);
	if (q->mode == M_COUNT) {
		eng_frame(e, F_COUNT, &e->count, 8);
		e->count = 0;
	} else if (q->mode == M_COUNTBY && e->keys.n) {
		struct dd_buf b = { 0 };
		sset_encode(&e->keys, &b);
		eng_frame(e, F_KEYS, b.p, b.len);
		dd_buf_free(&b);
	}
	sset_free(&e->keys);
}

/* jq's order of values (null < false < true < numbers < strings <
 * arrays < objects), for the rows of --count-by. */
static int
rank(const struct dd_jval *v)
{
	switch (v->type) {
	case DD_JNULL: case DD_JNONE: return 1;
	case DD_JFALSE: return 2;
	case DD_JTRUE: return 3;
	case DD_JNUM: return 4;
	case DD_JSTR: return 5;
	case DD_JARR: return 6;
	default: return 7;
	}
}

static int
cmp_val(const struct dd_jval *a, const struct dd_jval *b)
{
	int ra = rank(a), rb = rank(b);
	if (ra != rb)
		return ra - rb;
	if (ra == 4) {
		double x = 0, y = 0;
		dd_jnum_double(a, &x);
		dd_jnum_double(b, &y);
		return (x > y) - (x < y);
	}
	if (ra == 5) {
		struct dd_buf x = { 0 }, y = { 0 };
		dd_jstr_decode(a, &x);
		dd_jstr_decode(b, &y);
		size_t m = x.len < y.len ? x.len : y.len;
		int c = m ? memcmp(x.p, y.p, m) : 0;
		if (c == 0)
			c = (x.len > y.len) - (x.len < y.len);
		dd_buf_free(&x);
		dd_buf_free(&y);
		return c;
	}
	if (ra == 6) {
		size_t pa = 0, pb = 0;
		struct dd_jval ea, eb;
		for (;;) {
			int ha = dd_json_next(a, &pa, NULL, &ea), hb = dd_json_next(b, &pb, NULL, &eb);
			if (!ha || !hb)
				return ha - hb;
			int c = cmp_val(&ea, &eb);
			if (c)
				return c;
		}
	}
	if (ra == 7) {
		size_t m = a->n < b->n ? a->n : b->n;
		int c = memcmp(a->p, b->p, m);
		return c ? c : (a->n > b->n) - (a->n < b->n);
	}
	return 0;
}

static int
cmp_row(const void *x, const void *y)
{
	return cmp_val(&((const struct row *)x)->key, &((const struct row *)y)->key);
}

/* The rows of --count-by in the order of their keys; malloc'd. */
struct row *
sorted_counts(const struct dd_query *q, size_t *n)
{
	struct row *rows = dd_calloc(q->keys.n ? q->keys.n : 1, sizeof *rows);
	*n = 0;
	for (size_t i = 0; i < q->keys.cap; i++) {
		const struct sent *k = &q->keys.v[i];
		if (!k->used)
			continue;
		rows[*n].key = dd_json_value(q->keys.arena.p + k->off, k->len);
		rows[(*n)++].n = k->n;
	}
	qsort(rows, *n, sizeof *rows, cmp_row);
	return rows;
}
