/*
 * The Kafka input of the filter loop (kafka.h): one message a line, the
 * offsets of what was handed out kept per partition for the store's
 * commit, resumption from the store's offsets (never the broker's) at
 * start and at every assignment of a group.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddtime.h"
#include "kafka.h"
#include "kafka-int.h"
#include "line.h"
#include "util.h"

struct part {
	int assigned;
	int at_eof;		/* reached the end, nothing handed out since */
	int64_t next;		/* offset after the last message handed out, -1 none */
};

struct dd_kin {
	struct kstate st;	/* first: the callbacks' opaque is both st and k */
	rd_kafka_t *rk;
	const struct dd_kafka_opts *o;
	struct dd_kin_hooks h;
	int group, closing;
	struct part *parts;	/* by partition number */
	int nparts;
	rd_kafka_message_t *cur;	/* the message handed out last */
	char *fail;		/* a failure inside the rebalance callback */
	struct dd_kpos *pos;	/* dd_kin_positions() */
};

/* The partitions of a list, each at the offset the store says. */
static int
seek_from_store(struct dd_kin *k, rd_kafka_topic_partition_list_t *l)
{
	for (int i = 0; i < l->cnt; i++) {
		int32_t p = l->elems[i].partition;
		int64_t at = k->h.resume(k->h.ctx, p);
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
		int32_t p = l->elems[i].partition;
		if (p < 0 || p >= k->nparts)
			continue;
		k->parts[p].assigned = on;
		k->parts[p].at_eof = 0;
		if (!on)
			k->parts[p].next = -1;
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
	k->nparts = dd_kafka_topic_check(k->rk, o->brokers, o->topic, o->timeout_ms);
	if (k->nparts < 0)
		goto fail;
	k->parts = dd_calloc((size_t)k->nparts, sizeof *k->parts);
	for (int i = 0; i < k->nparts; i++)
		k->parts[i].next = -1;
	rd_kafka_topic_partition_list_t *l;
	if (k->group) {
		l = rd_kafka_topic_partition_list_new(1);
		rd_kafka_topic_partition_list_add(l, o->topic, RD_KAFKA_PARTITION_UA);
		rd_kafka_resp_err_t e = rd_kafka_subscribe(k->rk, l);
		rd_kafka_topic_partition_list_destroy(l);
		if (e) {
			dd_seterr("kafka: %s: subscribe: %s", o->topic, rd_kafka_err2str(e));
			goto fail;
		}
		return k;
	}
	int32_t *ps = NULL;
	size_t np = 0;
	if (o->partitions) {
		if (dd_kafka_parse_partitions(o->partitions, &ps, &np))
			goto fail;
	} else {
		np = (size_t)k->nparts;
		ps = dd_calloc(np, sizeof *ps);
		for (size_t i = 0; i < np; i++)
			ps[i] = (int32_t)i;
	}
	l = rd_kafka_topic_partition_list_new((int)np);
	for (size_t i = 0; i < np; i++) {
		if (ps[i] >= k->nparts) {
			dd_seterr("kafka: %s: topic \"%s\" has no partition %d (it has %d)",
			    o->brokers, o->topic, (int)ps[i], k->nparts);
			free(ps);
			rd_kafka_topic_partition_list_destroy(l);
			goto fail;
		}
		rd_kafka_topic_partition_list_add(l, o->topic, ps[i]);
	}
	free(ps);
	if (seek_from_store(k, l)) {
		rd_kafka_topic_partition_list_destroy(l);
		goto fail;
	}
	set_assigned(k, l, 1);
	rd_kafka_resp_err_t e = rd_kafka_assign(k->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		dd_seterr("kafka: %s: assign: %s", o->topic, rd_kafka_err2str(e));
		goto fail;
	}
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
	for (int i = 0; i < k->nparts; i++) {
		if (!k->parts[i].assigned)
			continue;
		if (!k->parts[i].at_eof)
			return 0;
		any = 1;
	}
	return any;
}

int
dd_kin_next(struct dd_kin *k, const char **p, size_t *n, int32_t *partition,
    int64_t *offset, int64_t deadline_ms)
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
		if (k->o->eof && all_at_eof(k))
			return 0;
		int64_t now = dd_now_ms(), wait = 200;
		if (deadline_ms != INT64_MAX && deadline_ms - now < wait)
			wait = deadline_ms - now;
		if (wait < 0)
			wait = 0;
		rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, (int)wait);
		if (m == NULL) {
			if (wait == 0 || deadline_ms == INT64_MAX || dd_now_ms() >= deadline_ms)
				return DD_LINES_TIMEOUT;
			return DD_LINES_TIMEOUT;
		}
		int32_t pn = m->partition;
		struct part *pt = pn >= 0 && pn < k->nparts ? &k->parts[pn] : NULL;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			dd_kstate_up(&k->st);
			if (pt && pt->assigned)
				pt->at_eof = 1;
			rd_kafka_message_destroy(m);
			continue;
		}
		if (m->err) {
			/* Errors the client recovers from by itself (a leader
			 * moved, a broker restarted) are waited out; those it
			 * cannot are the end. */
			rd_kafka_resp_err_t e = m->err;
			char why[512];
			snprintf(why, sizeof why, "%s", rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
			if (e == RD_KAFKA_RESP_ERR__TRANSPORT || e == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
			    e == RD_KAFKA_RESP_ERR__TIMED_OUT || e == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
			    e == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
			    e == RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT)
				continue;
			dd_seterr("kafka: %s/%d: %s", k->o->topic, (int)pn, why);
			return -1;
		}
		if (pt == NULL || !pt->assigned) {
			rd_kafka_message_destroy(m);
			continue;
		}
		dd_kstate_up(&k->st);
		pt->at_eof = 0;
		pt->next = m->offset + 1;
		k->cur = m;
		*p = m->payload ? m->payload : "";
		*n = m->payload ? m->len : 0;
		*partition = pn;
		*offset = m->offset;
		return 1;
	}
}

struct dd_koffsets
dd_kin_positions(struct dd_kin *k)
{
	size_t n = 0;
	free(k->pos);
	k->pos = dd_calloc((size_t)k->nparts + 1, sizeof *k->pos);
	for (int i = 0; i < k->nparts; i++)
		if (k->parts[i].assigned && k->parts[i].next >= 0)
			k->pos[n++] = (struct dd_kpos){ i, k->parts[i].next };
	return (struct dd_koffsets){ k->o->topic, k->pos, n };
}

void
dd_kin_committed(struct dd_kin *k)
{
	struct dd_koffsets ko = dd_kin_positions(k);
	if (ko.n == 0)
		return;
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)ko.n);
	for (size_t i = 0; i < ko.n; i++)
		rd_kafka_topic_partition_list_add(l, ko.topic, ko.pos[i].partition)->offset =
		    ko.pos[i].next;
	/* Asynchronous and unchecked: nothing depends on it. */
	rd_kafka_commit(k->rk, l, 1);
	rd_kafka_topic_partition_list_destroy(l);
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
	if (k->rk) {
		rd_kafka_consumer_close(k->rk);
		rd_kafka_destroy(k->rk);
	}
	free(k->parts);
	free(k->pos);
	free(k->fail);
	free(k);
}
