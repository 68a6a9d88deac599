/*
 * Kafka offsets in the lake's parts (lake.h, "Kafka offsets in the
 * parts"): what the writer records at part close, and where a restarted
 * or newly assigned ingest resumes, found from the parts alone.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "lake.h"
#include "lake-int.h"
#include "util.h"

/* One partition's offsets: a position, or a part's range. */
struct kv {
	int32_t p;
	int64_t a, b;
};

struct kvs {
	struct kv *v;
	size_t n, cap;
};

static struct kv *
kv_at(struct kvs *s, int32_t p)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].p == p)
			return &s->v[i];
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 8;
		s->v = dd_realloc(s->v, s->cap * sizeof *s->v);
	}
	s->v[s->n] = (struct kv){ p, -1, -1 };
	return &s->v[s->n++];
}

struct lake_kw {
	char *topic;
	char epoch[LAKE_NAME_MAX];
	struct kvs from, through;	/* next offsets: durable, and as of the coming commit */
	uint64_t closed;		/* parts of this epoch closed before its commit */
};

struct lake_kranges {
	struct kvs r;
};

struct lake_kw *
lake_kafka_new(const char *topic)
{
	struct lake_kw *kw = dd_calloc(1, sizeof *kw);
	kw->topic = dd_strdup(topic);
	lake_new_name(kw->epoch);
	return kw;
}

void
lake_kafka_free(struct lake_kw *kw)
{
	if (kw == NULL)
		return;
	free(kw->topic);
	free(kw->from.v);
	free(kw->through.v);
	free(kw);
}

void
lake_kafka_range(struct lake_kranges **kr, int32_t p, int64_t off)
{
	if (*kr == NULL)
		*kr = dd_calloc(1, sizeof **kr);
	struct kv *v = kv_at(&(*kr)->r, p);
	if (v->a < 0 || off < v->a)
		v->a = off;
	if (off > v->b)
		v->b = off;
}

void
lake_kranges_free(struct lake_kranges *kr)
{
	if (kr) {
		free(kr->r.v);
		free(kr);
	}
}

static int
cmp_kv(const void *a, const void *b)
{
	const struct kv *x = a, *y = b;
	return (x->p > y->p) - (x->p < y->p);
}

/* {"P":N,...} of the positions in s (a), in partition order. */
static void
positions(struct dd_buf *b, struct kvs *s, int ranges)
{
	if (s->n)
		qsort(s->v, s->n, sizeof *s->v, cmp_kv);
	dd_buf_addc(b, '{');
	int first = 1;
	for (size_t i = 0; i < s->n; i++) {
		if (s->v[i].a < 0)
			continue;
		dd_buf_printf(b, "%s\"%" PRId32 "\":", first ? "" : ",", s->v[i].p);
		if (ranges)
			dd_buf_printf(b, "[%" PRId64 ",%" PRId64 "]", s->v[i].a, s->v[i].b);
		else
			dd_buf_printf(b, "%" PRId64, s->v[i].a);
		first = 0;
	}
	dd_buf_addc(b, '}');
}

void
lake_kafka_meta(struct lake_kw *kw, struct lake_kranges *kr, uint64_t epoch_parts,
    struct dd_buf *b)
{
	dd_buf_adds(b, ",\"kafka\":{\"topic\":");
	dd_buf_json_str(b, kw->topic, strlen(kw->topic));
	dd_buf_printf(b, ",\"epoch\":\"%s\",\"from\":", kw->epoch);
	positions(b, &kw->from, 0);
	dd_buf_adds(b, ",\"ranges\":");
	struct kvs none = { 0 };
	positions(b, kr ? &kr->r : &none, 1);
	if (epoch_parts) {
		dd_buf_adds(b, ",\"through\":");
		positions(b, &kw->through, 0);
		dd_buf_printf(b, ",\"parts\":%" PRIu64, epoch_parts);
	} else {
		kw->closed++;
	}
	dd_buf_addc(b, '}');
}

uint64_t
lake_kafka_closed(const struct lake_kw *kw)
{
	return kw->closed;
}

void
lake_kafka_committed(struct lake_kw *kw)
{
	for (size_t i = 0; i < kw->through.n; i++)
		kv_at(&kw->from, kw->through.v[i].p)->a = kw->through.v[i].a;
	kw->closed = 0;
	lake_new_name(kw->epoch);
}

void
dd_lake_kafka_through(struct dd_lake_writer *w, const struct dd_koffsets *ko)
{
	struct lake_kw *kw = lake_writer_kw(w);
	if (kw == NULL)
		return;
	for (size_t i = 0; i < ko->n; i++)
		kv_at(&kw->through, ko->pos[i].partition)->a = ko->pos[i].next;
}

/* ------------------------------------------------------------- resume */

struct epoch {
	char id[LAKE_NAME_MAX];
	uint64_t seen, parts;	/* visible parts; parts of the epoch (0: unknown) */
	struct kvs through;	/* as its commit's parts say */
};

/* Each member "P":N of obj into s, keeping the larger. */
static void
take_max(struct kvs *s, const struct dd_jval *obj)
{
	size_t pos = 0;
	struct dd_jval k, v;
	while (obj->type == DD_JOBJ && dd_json_next(obj, &pos, &k, &v)) {
		int64_t p, n;
		char buf[16];
		if (k.n == 0 || k.n >= sizeof buf || k.esc || dd_jnum_int64(&v, &n) || n < 0)
			continue;
		memcpy(buf, k.p, k.n);
		buf[k.n] = '\0';
		char *end;
		p = strtoll(buf, &end, 10);
		if (*end || p < 0 || p > INT32_MAX)
			continue;
		struct kv *x = kv_at(s, (int32_t)p);
		if (n > x->a)
			x->a = n;
	}
}

int
dd_lake_kafka_resume(const char *lake, const char *dataset, const char *topic,
    struct dd_kpos **out, size_t *nout)
{
	struct dd_lake_partition *ps;
	size_t nps;
	struct kvs best = { 0 };
	struct epoch *ep = NULL;
	size_t nep = 0, cap = 0;
	int rc = 0;
	*out = NULL;
	*nout = 0;
	if (dd_lake_partitions(lake, dataset, DD_LAKE_MIN_MS, DD_LAKE_MAX_MS, &ps, &nps))
		return -1;
	for (size_t i = 0; rc == 0 && i < nps; i++) {
		struct dd_lake_part *parts;
		size_t np;
		if (dd_lake_parts(ps[i].path, &parts, &np)) {
			rc = -1;
			break;
		}
		for (size_t j = 0; j < np; j++) {
			if (!parts[j].has_meta)
				continue;
			const struct dd_lake_meta *m = &parts[j].meta;
			const char *nl = memchr(m->buf, '\n', m->buflen);
			struct dd_jval o = dd_json_value(m->buf, nl ? (size_t)(nl - m->buf) : m->buflen);
			struct dd_jval k, t, e, from, through;
			if (!dd_json_get(&o, "kafka", 5, &k) || k.type != DD_JOBJ ||
			    !dd_json_get(&k, "topic", 5, &t) || !dd_jstr_eq(&t, topic, strlen(topic)) ||
			    !dd_json_get(&k, "epoch", 5, &e) || e.type != DD_JSTR || e.n >= LAKE_NAME_MAX)
				continue;
			/* from: durable before the part's epoch began. */
			if (dd_json_get(&k, "from", 4, &from))
				take_max(&best, &from);
			size_t x;
			for (x = 0; x < nep; x++)
				if (strlen(ep[x].id) == e.n && memcmp(ep[x].id, e.p, e.n) == 0)
					break;
			if (x == nep) {
				if (nep == cap) {
					cap = cap ? cap * 2 : 16;
					ep = dd_realloc(ep, cap * sizeof *ep);
				}
				memset(&ep[nep], 0, sizeof ep[nep]);
				memcpy(ep[nep].id, e.p, e.n);
				nep++;
			}
			ep[x].seen++;
			struct dd_jval kp;
			int64_t n;
			if (dd_json_get(&k, "parts", 5, &kp) && dd_jnum_int64(&kp, &n) == 0 && n > 0 &&
			    dd_json_get(&k, "through", 7, &through)) {
				ep[x].parts = (uint64_t)n;
				take_max(&ep[x].through, &through);
			}
		}
		dd_lake_parts_free(parts, np);
	}
	dd_lake_partitions_free(ps, nps);
	/* An epoch counts whole only: every part of it visible. */
	for (size_t x = 0; x < nep; x++) {
		if (rc == 0 && ep[x].parts && ep[x].seen >= ep[x].parts)
			for (size_t i = 0; i < ep[x].through.n; i++) {
				struct kv *b = kv_at(&best, ep[x].through.v[i].p);
				if (ep[x].through.v[i].a > b->a)
					b->a = ep[x].through.v[i].a;
			}
		free(ep[x].through.v);
	}
	free(ep);
	if (rc == 0 && best.n) {
		*out = dd_calloc(best.n, sizeof **out);
		for (size_t i = 0; i < best.n; i++)
			(*out)[i] = (struct dd_kpos){ topic, best.v[i].p, best.v[i].a };
		*nout = best.n;
	}
	free(best.v);
	return rc;
}

/* The topic the kafka member of a part's metadata names, decoded into b;
 * NULL when it has none. */
static const char *
meta_topic(const struct dd_lake_part *p, struct dd_buf *b)
{
	if (!p->has_meta)
		return NULL;
	const struct dd_lake_meta *m = &p->meta;
	const char *nl = memchr(m->buf, '\n', m->buflen);
	struct dd_jval o = dd_json_value(m->buf, nl ? (size_t)(nl - m->buf) : m->buflen), k, t;
	if (!dd_json_get(&o, "kafka", 5, &k) || k.type != DD_JOBJ ||
	    !dd_json_get(&k, "topic", 5, &t) || t.type != DD_JSTR)
		return NULL;
	dd_buf_reset(b);
	dd_jstr_decode(&t, b);
	dd_buf_addc(b, '\0');
	return b->p;
}

int
lake_kafka_carry(struct dd_lake_writer *w, const char *lake, const char *dataset,
    const struct dd_lake_part *ps, size_t n)
{
	struct dd_buf b = { 0 };
	const char *topic = NULL;
	for (size_t i = 0; topic == NULL && i < n; i++)
		topic = meta_topic(&ps[i], &b);
	if (topic == NULL)
		return 0;
	struct dd_kpos *pos;
	size_t np;
	/* Asked while the parts to merge are still visible: what they made
	 * durable is durable in the merged parts too. */
	if (dd_lake_kafka_resume(lake, dataset, topic, &pos, &np)) {
		dd_buf_free(&b);
		return -1;
	}
	dd_lake_kafka_topic(w, topic);
	struct lake_kw *kw = lake_writer_kw(w);
	for (size_t i = 0; i < np; i++)
		kv_at(&kw->from, pos[i].partition)->a = pos[i].next;
	free(pos);
	dd_buf_free(&b);
	return 0;
}
