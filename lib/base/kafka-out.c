/*
 * The Kafka output of the filter loop (kafka.h). stdout (fd 1) becomes a
 * memory file: the program writes its events as it always does; the
 * complete lines are produced, keyed by subject, as they pile up
 * (dd_kout_pump, so the broker acknowledges while the program works) and
 * at each commit the rest, and all are acknowledged by every in-sync
 * replica (acks=all, idempotent producer) before the store may commit. A
 * kill before that loses nothing: the store has not recorded the input,
 * so a restart reads it again and writes the same events (same ids)
 * again.
 *
 * The messages are the memory file's bytes in place, not copies: the
 * pages produced from stay mapped until every message is acknowledged
 * (dd_kout_flush), and only then is the file emptied. They go to the
 * client in batches (rd_kafka_produce_batch), and only failures come
 * back as delivery reports: one lock and no report a message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "event.h"
#include "filter.h"
#include "json.h"
#include "kafka.h"
#include "kafka-int.h"
#include "util.h"

/* Messages handed to the client at once. */
#define BATCH 1024

/* A mapping of the memory file that messages point into. */
struct map {
	char *p;
	size_t len;
};

struct dd_kout {
	struct kstate st;	/* first: the callbacks' opaque */
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	const char *topic;
	int fd;			/* the memory file behind fd 1 */
	off_t sent;		/* its bytes produced already (whole lines) */
	uint64_t failed;	/* messages the broker did not take */
	char why[256];
	struct dd_buf buf, key;
	struct map *maps;	/* kept until every message is acknowledged */
	size_t nmaps, capmaps;
	rd_kafka_message_t batch[BATCH];
	int nbatch;
	int outq;		/* messages not acknowledged, as last seen */
};

/* Called from rd_kafka_poll/flush for a message the broker did not take
 * (delivery.report.only.error; with message.timeout.ms 0, only what
 * retrying cannot fix). */
static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct dd_kout *k = opaque;
	if (m->err == 0)
		return;
	if (k->failed++ == 0)
		snprintf(k->why, sizeof k->why, "%s", rd_kafka_err2str(m->err));
}

/* Acknowledgements came since the last look: the brokers are up. */
static void
saw_acks(struct dd_kout *k)
{
	int n = rd_kafka_outq_len(k->rk);
	if (n < k->outq)
		dd_kstate_up(&k->st);
	k->outq = n;
}

struct dd_kout *
dd_kout_open(const char *brokers, const char *topic, int64_t timeout_ms)
{
	struct dd_kout *k = dd_calloc(1, sizeof *k);
	k->topic = topic;
	k->fd = -1;
	rd_kafka_conf_t *c = dd_kconf_new(brokers, &k->st);
	if (c == NULL || dd_kconf_set(c, "acks", "all") ||
	    dd_kconf_set(c, "enable.idempotence", "true") ||
	    /* Wait out a broker that is down, however long: the store waits
	     * with its commit, and a kill meanwhile re-emits. */
	    dd_kconf_set(c, "message.timeout.ms", "0") ||
	    dd_kconf_set(c, "linger.ms", "5") ||
	    dd_kconf_set(c, "delivery.report.only.error", "true") ||
	    dd_kconf_set(c, "queue.buffering.max.messages", "1000000")) {
		if (c)
			rd_kafka_conf_destroy(c);
		free(k);
		return NULL;
	}
	rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
	char err[512];
	k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
	if (k->rk == NULL) {
		dd_seterr("kafka: %s", err);
		rd_kafka_conf_destroy(c);
		free(k);
		return NULL;
	}
	if (dd_kafka_topic_check(k->rk, brokers, topic, timeout_ms) < 0)
		goto fail;
	k->rkt = rd_kafka_topic_new(k->rk, topic, NULL);
	if (k->rkt == NULL) {
		dd_seterr("kafka: %s: %s", topic, rd_kafka_err2str(rd_kafka_last_error()));
		goto fail;
	}
	k->fd = memfd_create("dd-kafka-out", MFD_CLOEXEC);
	if (k->fd < 0 || fflush(stdout) != 0 || dup2(k->fd, 1) < 0) {
		dd_seterr("kafka-out: stdout: %s", strerror(errno));
		goto fail;
	}
	return k;
fail:
	dd_kout_close(k);
	return NULL;
}

/* Hand the batch to the client, waiting for room in its queue for what
 * did not fit. */
static int
send_batch(struct dd_kout *k)
{
	rd_kafka_message_t *b = k->batch;
	int n = k->nbatch;
	while (n > 0) {
		/* Each message to the partition of its key; no flag: the
		 * payloads are used in place. */
		int took = rd_kafka_produce_batch(k->rkt, RD_KAFKA_PARTITION_UA, 0, b, n);
		if (took == n)
			break;
		/* Those not taken keep their order: move them to the front. */
		int left = 0;
		for (int i = 0; i < n; i++) {
			if (b[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
				continue;
			if (b[i].err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
				dd_seterr("kafka-out: %s: %s", k->topic, rd_kafka_err2str(b[i].err));
				k->nbatch = 0;
				return -1;
			}
			b[left++] = b[i];
		}
		n = left;
		rd_kafka_poll(k->rk, 50);
	}
	k->nbatch = 0;
	return 0;
}

/* Add one line (in the mapped memory file) to the batch. */
static int
produce(struct dd_kout *k, char *p, size_t n)
{
	struct dd_env e;
	const char *key = NULL;
	size_t keylen = 0;
	/* Keyed by subject (the delivery): a partition holds whole
	 * deliveries; a line without one goes unkeyed. The subject is
	 * found by a light walk; one with escapes is decoded by the full
	 * scan into k->key, which the next line reuses: that line goes out
	 * at once (the client copies keys). */
	int decoded = 0;
	if (dd_kjson_top_str(p, n, "subject", &key, &keylen) == 1) {
		if (memchr(key, '\\', keylen)) {
			key = NULL;
			keylen = 0;
			decoded = 1;
			if (dd_env_scan(p, n, &e) == 0 && e.subject.type == DD_JSTR)
				key = dd_jstr_text(&e.subject, &k->key, &keylen);
		}
	} else {
		key = NULL;
		keylen = 0;
	}
	k->batch[k->nbatch++] = (rd_kafka_message_t){ .partition = RD_KAFKA_PARTITION_UA,
		.payload = p, .len = n, .key = (void *)key, .key_len = keylen };
	if (decoded || k->nbatch == BATCH)
		return send_batch(k);
	return 0;
}

/* Produce the whole lines of the memory file from k->sent to its end;
 * with tail, what is left of a line not yet ended goes to k->buf. */
static int
produce_lines(struct dd_kout *k, off_t end, int tail)
{
	if (end <= k->sent) {
		if (tail)
			dd_buf_reset(&k->buf);
		return 0;
	}
	/* The memory file's pages, in place, from the page of k->sent; the
	 * messages point into them until acknowledged. */
	off_t base = k->sent & ~(off_t)(sysconf(_SC_PAGESIZE) - 1);
	size_t len = (size_t)(end - base);
	char *m = mmap(NULL, len, PROT_READ, MAP_SHARED, k->fd, base);
	if (m == MAP_FAILED) {
		dd_seterr("kafka-out: stdout: %s", strerror(errno));
		return -1;
	}
	if (k->nmaps == k->capmaps) {
		k->capmaps = k->capmaps ? 2 * k->capmaps : 16;
		k->maps = dd_realloc(k->maps, k->capmaps * sizeof *k->maps);
	}
	k->maps[k->nmaps++] = (struct map){ m, len };
	size_t at = (size_t)(k->sent - base);
	while (at < len) {
		char *nl = memchr(m + at, '\n', len - at);
		if (nl == NULL)
			break;
		if (produce(k, m + at, (size_t)(nl - (m + at))))
			return -1;
		at = (size_t)(nl - m) + 1;
	}
	if (send_batch(k))
		return -1;
	k->sent = base + (off_t)at;
	if (tail) {
		dd_buf_reset(&k->buf);
		dd_buf_add(&k->buf, m + at, len - at);
	}
	/* Failures reported, and room in the client's queue. */
	rd_kafka_poll(k->rk, 0);
	saw_acks(k);
	return 0;
}

/* Every message acknowledged: the mappings may go. */
static void
unmap_all(struct dd_kout *k)
{
	for (size_t i = 0; i < k->nmaps; i++)
		munmap(k->maps[i].p, k->maps[i].len);
	k->nmaps = 0;
}

int
dd_kout_pump(struct dd_kout *k)
{
	off_t end = lseek(k->fd, 0, SEEK_CUR);
	/* Worth a mapping: 256 KiB or more not sent yet. */
	if (end < 0 || end - k->sent < (off_t)256 * 1024)
		return 0;
	return produce_lines(k, end, 0);
}

int
dd_kout_flush(struct dd_kout *k)
{
	off_t end = lseek(k->fd, 0, SEEK_CUR);
	if (end < 0) {
		dd_seterr("kafka-out: stdout: %s", strerror(errno));
		return -1;
	}
	if (end > 0 && produce_lines(k, end, 1))
		return -1;
	/* Every message acknowledged before the store commits. */
	while (rd_kafka_outq_len(k->rk) > 0) {
		if (dd_signalled) {
			dd_seterr("kafka-out: %s: stopped before the broker acknowledged "
			    "every event (they are sent again on the next run)", k->topic);
			return -1;
		}
		rd_kafka_flush(k->rk, 100);
		saw_acks(k);
	}
	saw_acks(k);
	if (k->failed) {
		dd_seterr("kafka-out: %s: %" PRIu64 " events not delivered: %s", k->topic,
		    k->failed, k->why);
		return -1;
	}
	/* Nothing points into the memory file any more: it starts again,
	 * with the line not yet ended, kept for the next flush. */
	unmap_all(k);
	if (end > 0) {
		k->sent = 0;
		if (ftruncate(k->fd, 0) < 0 || lseek(k->fd, 0, SEEK_SET) < 0 ||
		    (k->buf.len && write(k->fd, k->buf.p, k->buf.len) != (ssize_t)k->buf.len)) {
			dd_seterr("kafka-out: stdout: %s", strerror(errno));
			return -1;
		}
	}
	return 0;
}

const char *
dd_kout_notice(struct dd_kout *k)
{
	return dd_kstate_notice(&k->st);
}

void
dd_kout_close(struct dd_kout *k)
{
	if (k == NULL)
		return;
	if (k->rkt)
		rd_kafka_topic_destroy(k->rkt);
	/* Messages still queued point into the mappings: the client goes
	 * first. */
	if (k->rk)
		rd_kafka_destroy(k->rk);
	unmap_all(k);
	free(k->maps);
	if (k->fd >= 0)
		close(k->fd);
	dd_buf_free(&k->buf);
	dd_buf_free(&k->key);
	free(k);
}
