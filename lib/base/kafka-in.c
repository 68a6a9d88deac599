/*
 * The Kafka input of the filter loop (kafka.h): one message a line, the
 * offsets of what was handed out kept per partition for the store's
 * commit, resumption from the store's offsets (never the broker's) at
 * start and at every assignment of a group.
 *
 * What the consumer delivers waits in a queue per partition, so the
 * messages can be handed out in one event-time order over all the
 * partitions read (o->ordered, the global clock): the head of each
 * partition is known before the earliest is chosen. Without it, the
 * partitions take turns in the order the messages came.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddtime.h"
#include "kafka.h"
#include "kafka-int.h"
#include "line.h"
#include "util.h"

/* A message waiting, with its event time (INT64_MIN when it has none: it
 * goes first, to be rejected). */
struct held {
	rd_kafka_message_t *m;
	int64_t t;
};

struct part {
	const char *topic;	/* the topic table's name */
	int32_t partition;
	int assigned;
	int at_eof;		/* the last word from the broker was its end */
	int64_t next;		/* offset after the last message handed out, -1 none */
	struct held *q;		/* a ring of the messages not handed out */
	size_t head, cnt, cap;
};

/* A topic read from, its partitions by number. */
struct topic {
	char *name;
	struct part **byp;
	int n;
};

struct dd_kin {
	struct kstate st;	/* first: the callbacks' opaque is both st and k */
	rd_kafka_t *rk;
	const struct dd_kafka_opts *o;
	struct dd_kin_hooks h;
	int group, closing;
	struct topic *tp;
	size_t ntp;
	struct part **parts;	/* every partition ever assigned, in that order */
	size_t nparts;
	size_t held;		/* bytes waiting in the queues */
	size_t turn;		/* without o->ordered: the partition whose turn it is */
	rd_kafka_message_t *cur;	/* the message handed out last */
	char *fail;		/* a failure inside the rebalance callback */
	struct dd_kpos *pos;	/* dd_kin_positions() */
	rd_kafka_topic_t **rkt;	/* static assignment: a handle for each topic */
	size_t nrkt;
};

static struct part *
find_part(struct dd_kin *k, const char *topic, int32_t p, int create)
{
	struct topic *t = NULL;
	for (size_t i = 0; i < k->ntp; i++)
		if (strcmp(k->tp[i].name, topic) == 0) {
			t = &k->tp[i];
			break;
		}
	if (p < 0 || p > 1000000)
		return NULL;
	if (t == NULL) {
		if (!create)
			return NULL;
		k->tp = dd_realloc(k->tp, (k->ntp + 1) * sizeof *k->tp);
		t = &k->tp[k->ntp++];
		memset(t, 0, sizeof *t);
		t->name = dd_strdup(topic);
	}
	if (p < t->n && t->byp[p])
		return t->byp[p];
	if (!create)
		return NULL;
	if (p >= t->n) {
		t->byp = dd_realloc(t->byp, (size_t)(p + 1) * sizeof *t->byp);
		memset(t->byp + t->n, 0, (size_t)(p + 1 - t->n) * sizeof *t->byp);
		t->n = p + 1;
	}
	struct part *pt = dd_calloc(1, sizeof *pt);
	pt->topic = t->name;
	pt->partition = p;
	pt->next = -1;
	t->byp[p] = pt;
	k->parts = dd_realloc(k->parts, (k->nparts + 1) * sizeof *k->parts);
	k->parts[k->nparts++] = pt;
	return pt;
}

/* Drop what waits in a partition's queue: it was never handed out, so
 * whoever reads the partition next reads it again. */
static void
part_clear(struct dd_kin *k, struct part *pt)
{
	for (size_t i = 0; i < pt->cnt; i++) {
		rd_kafka_message_t *m = pt->q[(pt->head + i) % pt->cap].m;
		k->held -= m->len;
		rd_kafka_message_destroy(m);
	}
	pt->head = pt->cnt = 0;
}

/* The event time of a message, for the order only: the top-level "time"
 * read by a light walk (kafka.c), no validation (the filter loop
 * validates every line it is handed); INT64_MIN when there is none to be
 * read. A full scan (dd_env_scan) here was half the JSON work of a run. */
static int64_t
event_time(const char *p, size_t n)
{
	const char *v;
	size_t vn;
	int64_t ms;
	if (dd_kjson_top_str(p, n, "time", &v, &vn) == 1 && dd_time_parse(v, vn, &ms) == 0)
		return ms;
	return INT64_MIN;
}

static void
part_push(struct dd_kin *k, struct part *pt, rd_kafka_message_t *m)
{
	if (pt->cnt == pt->cap) {
		size_t ncap = pt->cap ? pt->cap * 2 : 64;
		struct held *nq = dd_calloc(ncap, sizeof *nq);
		for (size_t i = 0; i < pt->cnt; i++)
			nq[i] = pt->q[(pt->head + i) % pt->cap];
		free(pt->q);
		pt->q = nq;
		pt->cap = ncap;
		pt->head = 0;
	}
	int64_t t = INT64_MIN;
	if (k->o->ordered && m->payload)
		t = event_time(m->payload, m->len);
	pt->q[(pt->head + pt->cnt) % pt->cap] = (struct held){ m, t };
	pt->cnt++;
	k->held += m->len;
}

static rd_kafka_message_t *
part_pop(struct dd_kin *k, struct part *pt)
{
	rd_kafka_message_t *m = pt->q[pt->head].m;
	pt->head = (pt->head + 1) % pt->cap;
	pt->cnt--;
	k->held -= m->len;
	return m;
}

/* The partitions of a list, each at the offset the store says. */
static int
seek_from_store(struct dd_kin *k, rd_kafka_topic_partition_list_t *l)
{
	for (int i = 0; i < l->cnt; i++) {
		int64_t at = k->h.resume(k->h.ctx, l->elems[i].topic, l->elems[i].partition);
		if (at == -2)
			return -1;
		/* -3: a program without a store goes on where its group
		 * committed (the beginning when it never did). */
		l->elems[i].offset = at >= 0 ? at : at == -3 ? RD_KAFKA_OFFSET_STORED :
		    RD_KAFKA_OFFSET_BEGINNING;
	}
	return 0;
}

static void
set_assigned(struct dd_kin *k, const rd_kafka_topic_partition_list_t *l, int on)
{
	for (int i = 0; i < l->cnt; i++) {
		struct part *pt = find_part(k, l->elems[i].topic, l->elems[i].partition, on);
		if (pt == NULL)
			continue;
		part_clear(k, pt);
		pt->assigned = on;
		pt->at_eof = 0;
		pt->next = -1;
	}
}

/* A group gives or takes partitions (called from the consumer's poll).
 * Before partitions go, what was read from them is made durable; new
 * ones start where the store says. */
static void
on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
    rd_kafka_topic_partition_list_t *l, void *opaque)
{
	struct dd_kin *k = opaque;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		if (!k->closing && seek_from_store(k, l) && k->fail == NULL)
			k->fail = dd_strdup(dd_errmsg());
		set_assigned(k, l, 1);
		rd_kafka_assign(rk, l);
	} else {
		if (k->cur) {
			rd_kafka_message_destroy(k->cur);
			k->cur = NULL;
		}
		if (!k->closing && k->h.revoke(k->h.ctx) && k->fail == NULL)
			k->fail = dd_strdup(dd_errmsg());
		set_assigned(k, l, 0);
		rd_kafka_assign(rk, NULL);
	}
}

/* Static assignment: the partitions asked for (or all) of every topic. */
static int
assign_static(struct dd_kin *k, const struct dd_ktopic *t, size_t nt)
{
	const struct dd_kafka_opts *o = k->o;
	int32_t *ps = NULL;
	size_t np = 0;
	if (o->partitions && dd_kafka_parse_partitions(o->partitions, &ps, &np))
		return -1;
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
	for (size_t j = 0; j < nt; j++) {
		if (ps == NULL) {
			for (int i = 0; i < t[j].nparts; i++)
				rd_kafka_topic_partition_list_add(l, t[j].name, i);
			continue;
		}
		for (size_t i = 0; i < np; i++) {
			if (ps[i] >= t[j].nparts) {
				dd_seterr("kafka: %s: topic \"%s\" has no partition %d (it has %d)",
				    o->brokers, t[j].name, (int)ps[i], t[j].nparts);
				free(ps);
				rd_kafka_topic_partition_list_destroy(l);
				return -1;
			}
			rd_kafka_topic_partition_list_add(l, t[j].name, ps[i]);
		}
	}
	free(ps);
	/* The client applies the leaders of a metadata answer only to the
	 * topics it has a handle for; a partition assigned before its leader
	 * is known waits for the client's fixed 500 ms retry of the offset
	 * query. So: the handles, the metadata again, then the assignment. */
	k->rkt = dd_calloc(nt, sizeof *k->rkt);
	for (size_t j = 0; j < nt; j++)
		if ((k->rkt[k->nrkt] = rd_kafka_topic_new(k->rk, t[j].name, NULL)) != NULL)
			k->nrkt++;
	const struct rd_kafka_metadata *md = NULL;
	if (rd_kafka_metadata(k->rk, 1, NULL, &md, (int)(o->timeout_ms > 0x7fffffff ?
	    0x7fffffff : o->timeout_ms)) == RD_KAFKA_RESP_ERR_NO_ERROR)
		rd_kafka_metadata_destroy(md);	/* else the client finds the leaders later */
	if (seek_from_store(k, l)) {
		rd_kafka_topic_partition_list_destroy(l);
		return -1;
	}
	set_assigned(k, l, 1);
	rd_kafka_resp_err_t e = rd_kafka_assign(k->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		dd_seterr("kafka: %s: assign: %s", o->topic, rd_kafka_err2str(e));
		return -1;
	}
	return 0;
}

/* A group: subscribe to the list as given (a pattern also takes the
 * topics made later). */
static int
subscribe(struct dd_kin *k)
{
	const char *list = k->o->topic;
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
	char *copy = dd_strdup(list), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
		rd_kafka_topic_partition_list_add(l, t, RD_KAFKA_PARTITION_UA);
	free(copy);
	rd_kafka_resp_err_t e = rd_kafka_subscribe(k->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		dd_seterr("kafka: %s: subscribe: %s", list, rd_kafka_err2str(e));
		return -1;
	}
	return 0;
}

struct dd_kin *
dd_kin_open(const struct dd_kafka_opts *o, const struct dd_kin_hooks *h)
{
	struct dd_kin *k = dd_calloc(1, sizeof *k);
	char gid[128];
	k->o = o;
	k->h = *h;
	k->group = o->group != NULL;
	/* Without --group, a group id all the same: the broker keeps the
	 * committed offsets under it, for monitoring (lag). */
	snprintf(gid, sizeof gid, "%s", o->group ? o->group : dd_prog);
	rd_kafka_conf_t *c = dd_kconf_new(o->brokers, &k->st);
	if (c == NULL || dd_kconf_set(c, "group.id", gid) ||
	    /* The offsets that count are the store's. */
	    dd_kconf_set(c, "enable.auto.commit", "false") ||
	    dd_kconf_set(c, "enable.auto.offset.store", "false") ||
	    dd_kconf_set(c, "enable.partition.eof", "true") ||
	    dd_kconf_set(c, "auto.offset.reset", "earliest") ||
	    dd_kconf_set(c, "allow.auto.create.topics", "false") ||
	    /* An idle partition answers within 100 ms: the end of input
	     * (--kafka-eof) and a slow stream are seen soon. */
	    dd_kconf_set(c, "fetch.wait.max.ms", "100")) {
		if (c)
			rd_kafka_conf_destroy(c);
		free(k);
		return NULL;
	}
	if (k->group)
		rd_kafka_conf_set_rebalance_cb(c, on_rebalance);
	char err[512];
	k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
	if (k->rk == NULL) {
		dd_seterr("kafka: %s", err);
		rd_kafka_conf_destroy(c);
		free(k);
		return NULL;
	}
	rd_kafka_poll_set_consumer(k->rk);
	struct dd_ktopic *t;
	size_t nt;
	if (dd_kafka_topics_resolve(k->rk, o->brokers, o->topic, o->timeout_ms, &t, &nt))
		goto fail;
	int rc = k->group ? subscribe(k) : assign_static(k, t, nt);
	dd_ktopics_free(t, nt);
	if (rc)
		goto fail;
	return k;
fail:
	k->closing = 1;
	dd_kin_close(k);
	return NULL;
}

static int
all_at_eof(const struct dd_kin *k)
{
	int any = 0;
	for (size_t i = 0; i < k->nparts; i++) {
		const struct part *pt = k->parts[i];
		if (!pt->assigned)
			continue;
		if (!pt->at_eof || pt->cnt)
			return 0;
		any = 1;
	}
	return any;
}

/* The partition whose head goes out next, or NULL to wait for more. */
static struct part *
pick(struct dd_kin *k)
{
	if (!k->o->ordered) {
		for (size_t i = 0; i < k->nparts; i++) {
			struct part *pt = k->parts[(k->turn + i) % k->nparts];
			if (pt->assigned && pt->cnt) {
				/* A turn lasts while the partition has messages:
				 * they came together. */
				k->turn = (k->turn + i) % k->nparts;
				return pt;
			}
		}
		return NULL;
	}
	struct part *best = NULL;
	int full = k->held >= DD_KIN_HOLD_MAX;
	for (size_t i = 0; i < k->nparts; i++) {
		struct part *pt = k->parts[i];
		if (!pt->assigned)
			continue;
		if (pt->cnt == 0) {
			/* Its next message may be the earliest: wait for it,
			 * unless the partition is at its end. */
			if (!pt->at_eof && !full)
				return NULL;
			continue;
		}
		if (best == NULL || pt->q[pt->head].t < best->q[best->head].t)
			best = pt;
	}
	return best;
}

/* What the consumer delivered: a message into its partition's queue, the
 * end of a partition noted, an error kept; 0 or -1 (dd_errmsg()). */
static int
take(struct dd_kin *k, rd_kafka_message_t *m)
{
	const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
	struct part *pt = m->rkt ? find_part(k, topic, m->partition, 0) : NULL;
	if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
		dd_kstate_up(&k->st);
		if (pt && pt->assigned)
			pt->at_eof = 1;
		rd_kafka_message_destroy(m);
		return 0;
	}
	if (m->err) {
		/* Errors the client recovers from by itself (a leader
		 * moved, a broker restarted) are waited out; those it
		 * cannot are the end. */
		rd_kafka_resp_err_t e = m->err;
		char why[512];
		snprintf(why, sizeof why, "%s", rd_kafka_message_errstr(m));
		int32_t pn = m->partition;
		rd_kafka_message_destroy(m);
		if (e == RD_KAFKA_RESP_ERR__TRANSPORT || e == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
		    e == RD_KAFKA_RESP_ERR__TIMED_OUT || e == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
		    e == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
		    e == RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT)
			return 0;
		if (pt)
			dd_seterr("kafka: %s/%d: %s", topic, (int)pn, why);
		else
			dd_seterr("kafka: %s", why);
		return -1;
	}
	if (pt == NULL || !pt->assigned) {
		rd_kafka_message_destroy(m);
		return 0;
	}
	dd_kstate_up(&k->st);
	pt->at_eof = 0;
	part_push(k, pt, m);
	return 0;
}

int
dd_kin_next(struct dd_kin *k, struct dd_kmsg *out, int64_t deadline_ms)
{
	if (k->cur) {
		rd_kafka_message_destroy(k->cur);
		k->cur = NULL;
	}
	for (;;) {
		if (k->fail) {
			dd_seterr("%s", k->fail);
			return -1;
		}
		struct part *pt = pick(k);
		if (pt) {
			rd_kafka_message_t *m = part_pop(k, pt);
			pt->next = m->offset + 1;
			k->cur = m;
			out->p = m->payload ? m->payload : "";
			out->n = m->payload ? m->len : 0;
			out->topic = pt->topic;
			out->partition = pt->partition;
			out->offset = m->offset;
			return 1;
		}
		if (k->o->eof && all_at_eof(k))
			return 0;
		/* What the client has ready, without waiting; then wait. */
		rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, 0);
		if (m == NULL) {
			int64_t now = dd_now_ms(), wait = 200;
			if (deadline_ms != INT64_MAX && deadline_ms - now < wait)
				wait = deadline_ms - now;
			if (wait < 0)
				wait = 0;
			if (wait == 0 || (m = rd_kafka_consumer_poll(k->rk, (int)wait)) == NULL)
				return DD_LINES_TIMEOUT;
		}
		if (take(k, m))
			return -1;
	}
}

struct dd_koffsets
dd_kin_positions(struct dd_kin *k)
{
	size_t n = 0;
	free(k->pos);
	k->pos = dd_calloc(k->nparts + 1, sizeof *k->pos);
	for (size_t i = 0; i < k->nparts; i++) {
		const struct part *pt = k->parts[i];
		if (pt->assigned && pt->next >= 0)
			k->pos[n++] = (struct dd_kpos){ pt->topic, pt->partition, pt->next };
	}
	return (struct dd_koffsets){ k->pos, n };
}

int
dd_kin_committed(struct dd_kin *k, const struct dd_koffsets *ko, int sync)
{
	if (ko->n == 0)
		return 0;
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)ko->n);
	for (size_t i = 0; i < ko->n; i++)
		rd_kafka_topic_partition_list_add(l, ko->pos[i].topic, ko->pos[i].partition)->offset =
		    ko->pos[i].next;
	/* For monitoring: asynchronous and unchecked, nothing depends on it. */
	rd_kafka_resp_err_t e = rd_kafka_commit(k->rk, l, !sync);
	rd_kafka_topic_partition_list_destroy(l);
	if (sync && e) {
		dd_seterr("kafka: committing the group's offsets: %s", rd_kafka_err2str(e));
		return -1;
	}
	return 0;
}

const char *
dd_kin_notice(struct dd_kin *k)
{
	return dd_kstate_notice(&k->st);
}

void
dd_kin_close(struct dd_kin *k)
{
	if (k == NULL)
		return;
	k->closing = 1;
	if (k->cur)
		rd_kafka_message_destroy(k->cur);
	k->cur = NULL;
	for (size_t i = 0; i < k->nparts; i++)
		part_clear(k, k->parts[i]);
	if (k->rk) {
		rd_kafka_consumer_close(k->rk);
		for (size_t i = 0; i < k->nrkt; i++)
			rd_kafka_topic_destroy(k->rkt[i]);
		rd_kafka_destroy(k->rk);
	}
	free(k->rkt);
	for (size_t i = 0; i < k->nparts; i++) {
		free(k->parts[i]->q);
		free(k->parts[i]);
	}
	free(k->parts);
	for (size_t i = 0; i < k->ntp; i++) {
		free(k->tp[i].name);
		free(k->tp[i].byp);
	}
	free(k->tp);
	free(k->pos);
	free(k->fail);
	free(k);
}
