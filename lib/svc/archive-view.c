/*
 * dd-archive --rebuild-view: the deliveries view of a range of days made
 * again from the delivery.* events already in the lake (for deliveries
 * archived before the view existed, or after a fix of the view). Through
 * the public query, writer and maintenance calls of lib/lake only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive.h"
#include "ddtime.h"
#include "event.h"
#include "exitcodes.h"
#include "filter.h"
#include "lake.h"
#include "order.h"
#include "query.h"
#include "stage.h"
#include "util.h"
#include "view.h"

#define DAY_MS 86400000LL

static const char *const delivery_types[] = { "delivery.scheduled", "delivery.rescheduled",
	"delivery.cancelled", "delivery.rejected", "delivery.status" };
#define NTYPES (int)(sizeof delivery_types / sizeof delivery_types[0])

/* The query's answer, NDJSON, in a temporary file read back from the start. */
static FILE *
query(const struct dd_archive_opts *o, int64_t since, int64_t until,
    const char *const *subjects, int nsubjects)
{
	struct dd_query_opts qo;
	dd_query_defaults(&qo);
	qo.lake = o->lake;
	qo.dataset = o->dataset;
	qo.since_ms = since;
	qo.until_ms = until;
	qo.types = delivery_types;
	qo.ntypes = NTYPES;
	qo.subjects = subjects;
	qo.nsubjects = nsubjects;
	qo.quiet = 1;
	FILE *f = tmpfile();
	if (f == NULL) {
		dd_seterr("a temporary file: %s", strerror(errno));
		return NULL;
	}
	struct dd_query *q = dd_query_new(&qo);
	int rc = q ? dd_query_run(q, f) : DD_EXIT_IO;
	dd_query_free(q);
	if (rc != 0 || fflush(f) != 0 || fseek(f, 0, SEEK_SET) != 0) {
		if (rc == 0)
			dd_seterr("a temporary file: %s", strerror(errno));
		else if (rc == DD_EXIT_REJECTED)
			dd_seterr("%s/%s: damaged parts or unreadable events; the view is not"
			    " rebuilt from part of them", o->lake, o->dataset);
		fclose(f);
		return NULL;
	}
	return f;
}

/* The key dd-history files an event under: data.deliveryId, or for a
 * rejection without one data.requestId. Decoded into b; NULL if none. */
static const char *
key_of(const struct dd_env *e, struct dd_buf *b, size_t *n)
{
	struct dd_jval v;
	dd_buf_reset(b);
	if ((dd_json_get(&e->data, "deliveryId", 10, &v) && v.type == DD_JSTR && v.n) ||
	    (dd_env_type_is(e, "delivery.rejected") &&
	    dd_json_get(&e->data, "requestId", 9, &v) && v.type == DD_JSTR && v.n)) {
		dd_jstr_decode(&v, b);
		*n = b->len;
		return b->p;
	}
	return NULL;
}

/* Does the event end its delivery? */
static int
ends(const struct dd_env *e)
{
	if (dd_env_type_is(e, "delivery.cancelled") || dd_env_type_is(e, "delivery.rejected"))
		return 1;
	struct dd_jval v;
	if (!dd_env_type_is(e, "delivery.status") || !dd_json_get(&e->data, "stage", 5, &v) ||
	    v.type != DD_JSTR || v.esc)
		return 0;
	return dd_stage_final(dd_stage_lookup(v.p, v.n, DD_STAGE_SPEC));
}

/* A set of keys: sorted, unique, NUL-terminated strings. */
struct keys {
	char **k;
	size_t n, cap;
};

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
keys_add(struct keys *ks, const char *k, size_t n)
{
	if (ks->n == ks->cap) {
		ks->cap = ks->cap ? ks->cap * 2 : 256;
		ks->k = dd_realloc(ks->k, ks->cap * sizeof *ks->k);
	}
	ks->k[ks->n++] = dd_strndup(k, n);
}

static void
keys_unique(struct keys *ks)
{
	if (ks->n == 0)
		return;
	qsort(ks->k, ks->n, sizeof *ks->k, cmp_str);
	size_t j = 1;
	for (size_t i = 1; i < ks->n; i++) {
		if (strcmp(ks->k[i], ks->k[j - 1]) == 0)
			free(ks->k[i]);
		else
			ks->k[j++] = ks->k[i];
	}
	ks->n = j;
}

static void
keys_free(struct keys *ks)
{
	for (size_t i = 0; i < ks->n; i++)
		free(ks->k[i]);
	free(ks->k);
}

/* One event of pass 2: its line and key in the arena. */
struct rec {
	size_t key, keylen, line, len;
};
static __thread const char *rec_arena;

static int
cmp_rec(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;
	size_t n = x->keylen < y->keylen ? x->keylen : y->keylen;
	int c = memcmp(rec_arena + x->key, rec_arena + y->key, n);
	if (c == 0)
		c = (x->keylen > y->keylen) - (x->keylen < y->keylen);
	return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* Read an NDJSON answer line by line; fn gets each event. */
static int
each_line(FILE *f, int (*fn)(void *ctx, const char *l, size_t n, const struct dd_env *e),
    void *ctx)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;
	while (rc == 0 && (n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] == '\n')
			n--;
		struct dd_env e;
		if (dd_env_scan(line, (size_t)n, &e))
			continue;	/* the query wrote it: cannot happen */
		rc = fn(ctx, line, (size_t)n, &e);
	}
	if (rc == 0 && ferror(f)) {
		dd_seterr("a temporary file: %s", strerror(errno));
		rc = -1;
	}
	free(line);
	return rc;
}

struct pass {
	struct keys ended;
	struct dd_buf kb, arena;
	struct rec *r;
	size_t nr, capr;
};

static int
on_ended(void *ctx, const char *l, size_t n, const struct dd_env *e)
{
	struct pass *p = ctx;
	size_t kn;
	const char *k;
	if (ends(e) && (k = key_of(e, &p->kb, &kn)) != NULL)
		keys_add(&p->ended, k, kn);
	return 0;
}

static int
on_event(void *ctx, const char *l, size_t n, const struct dd_env *e)
{
	struct pass *p = ctx;
	size_t kn;
	const char *k = key_of(e, &p->kb, &kn);
	if (k == NULL)
		return 0;
	/* A subject is only a hint (a Bloom filter's maybe): the key decides. */
	char *probe = dd_strndup(k, kn);
	int want = bsearch(&probe, p->ended.k, p->ended.n, sizeof *p->ended.k, cmp_str) != NULL;
	free(probe);
	if (!want)
		return 0;
	if (p->nr == p->capr) {
		p->capr = p->capr ? p->capr * 2 : 1024;
		p->r = dd_realloc(p->r, p->capr * sizeof *p->r);
	}
	struct rec *r = &p->r[p->nr++];
	r->key = p->arena.len;
	r->keylen = kn;
	dd_buf_add(&p->arena, k, kn);
	r->line = p->arena.len;
	r->len = n;
	dd_buf_add(&p->arena, l, n);
	return 0;
}

/* The view's parts of the range as they were before the rebuild. */
struct old {
	struct dd_lake_partition *ps;
	size_t n;
	struct dd_lake_part **parts;
	size_t *np;
};

static void
old_free(struct old *o)
{
	for (size_t i = 0; i < o->n; i++)
		if (o->parts)
			dd_lake_parts_free(o->parts[i], o->np[i]);
	free(o->parts);
	free(o->np);
	dd_lake_partitions_free(o->ps, o->n);
}

int
dd_archive_rebuild_view(const struct dd_archive_opts *o, int64_t since_ms, int64_t until_ms,
    struct dd_archive_stats *st)
{
	/* Whole days: a partition of the view is rebuilt whole or not at all. */
	int64_t since = dd_ms_to_days(since_ms) * DAY_MS;
	int64_t until = dd_ms_to_days(until_ms) * DAY_MS;
	if (until < until_ms)
		until += DAY_MS;
	struct pass p = { 0 };
	struct old old = { 0 };
	struct dd_view *v = dd_view_new();
	struct dd_lake_writer *w = NULL;
	struct dd_buf line = { 0 };
	int rc = DD_EXIT_IO, lockfd = -1;
	/* Pass 1: the deliveries that ended in the range. */
	FILE *f = query(o, since, until, NULL, 0);
	if (f == NULL || each_line(f, on_ended, &p))
		goto out;
	fclose(f);
	f = NULL;
	keys_unique(&p.ended);
	/* Pass 2: all their events, whenever they happened. */
	if (p.ended.n) {
		f = query(o, DD_LAKE_MIN_MS, DD_LAKE_MAX_MS, (const char *const *)p.ended.k,
		    (int)p.ended.n);
		if (f == NULL || each_line(f, on_event, &p))
			goto out;
		fclose(f);
		f = NULL;
	}
	if (dd_signalled) {
		rc = 128 + dd_signalled;
		goto out;
	}
	/* The writer creates the view's dataset; its compaction lock keeps a
	 * compaction from merging the parts this run removes. */
	if (!o->dry_run) {
		if ((w = dd_lake_writer_open(o->lake, DD_VIEW_DATASET, NULL)) == NULL)
			goto out;
		if ((lockfd = dd_lake_compact_lock(o->lake, DD_VIEW_DATASET)) < 0) {
			rc = -lockfd;
			goto out;
		}
	}
	/* What the view held for the range, removed once the new is durable. */
	if (dd_lake_partitions(o->lake, DD_VIEW_DATASET, since, until, &old.ps, &old.n))
		goto out;
	old.parts = dd_calloc(old.n ? old.n : 1, sizeof *old.parts);
	old.np = dd_calloc(old.n ? old.n : 1, sizeof *old.np);
	for (size_t i = 0; i < old.n; i++)
		if (dd_lake_parts(old.ps[i].path, &old.parts[i], &old.np[i]))
			goto out;
	if (o->dry_run) {
		st->summaries = p.ended.n;
		rc = 0;
		goto out;
	}
	/* Each delivery's events together, then in the one order. */
	rec_arena = p.arena.p;
	qsort(p.r, p.nr, sizeof *p.r, cmp_rec);
	struct dd_olist ol = { 0 };
	for (size_t i = 0; i < p.nr; ) {
		size_t j = i;
		dd_olist_reset(&ol);
		while (j < p.nr && p.r[j].keylen == p.r[i].keylen &&
		    memcmp(p.arena.p + p.r[j].key, p.arena.p + p.r[i].key, p.r[i].keylen) == 0) {
			dd_olist_add(&ol, p.arena.p + p.r[j].line, p.r[j].len);
			j++;
		}
		dd_olist_sort(&ol);
		dd_view_begin(v, p.arena.p + p.r[i].key, p.r[i].keylen);
		for (size_t k = 0; k < ol.n; k++) {
			size_t len;
			const char *l = dd_olist_line(&ol, k, &len);
			struct dd_env e;
			if (dd_env_scan(l, len, &e) == 0)
				dd_view_add(v, &e);
		}
		i = j;
		int64_t t;
		const char *id, *sub;
		size_t idn, subn;
		/* An end before the range (a late event in it) is not this
		 * range's to rebuild. */
		if (!dd_view_summary(v, &line, &t, &id, &idn, &sub, &subn) || t < since || t >= until)
			continue;
		struct dd_lake_ev ev = { .time_ms = t, .id = id, .idlen = idn, .subject = sub,
		    .sublen = subn, .type = "delivery.summary", .typelen = 16 };
		if (dd_lake_add(w, line.p, line.len, &ev) < 0) {
			dd_olist_free(&ol);
			goto out;
		}
	}
	dd_olist_free(&ol);
	if (dd_lake_commit(w))
		goto out;
	struct dd_lake_wstats ws;
	dd_lake_wstats(w, &ws);
	st->summaries = ws.events;
	st->parts = ws.parts;
	st->bytes = ws.out_bytes;
	/* The new parts are visible and durable: the old ones can go. */
	for (size_t i = 0; i < old.n; i++)
		if (dd_lake_remove_parts(old.ps[i].path, old.parts[i], old.np[i]))
			goto out;
	rc = 0;
out:
	if (f)
		fclose(f);
	if (w) {
		if (rc)
			dd_lake_writer_abort(w);
		else
			dd_lake_writer_close(w);
	}
	if (lockfd >= 0)
		close(lockfd);
	old_free(&old);
	keys_free(&p.ended);
	dd_buf_free(&p.kb);
	dd_buf_free(&p.arena);
	free(p.r);
	dd_buf_free(&line);
	dd_view_free(v);
	return rc;
}
