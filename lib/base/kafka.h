/*
 * Kafka between machines (SPEC.md "Scaling past one machine"), through
 * librdkafka: an input source and an output sink for the filter loop
 * (filter.c). The input hands out one message at a time as a line and
 * keeps, per partition, the offset after the last message handed out;
 * the loop writes those offsets in the store's own commit (store.h,
 * dd_store_koff) or, for the lake, in the parts' metadata, and on start
 * (and on every group assignment) asks where to resume. The broker's
 * committed offsets are only for monitoring. The output catches what the
 * program writes on stdout and, at each commit, produces it (keyed by
 * subject, acks=all, idempotent) and waits until the broker acknowledged
 * every message, before the store commits.
 */
#ifndef DD_KAFKA_H
#define DD_KAFKA_H

#include <stddef.h>
#include <stdint.h>

struct dd_kafka_opts {
	const char *brokers;	/* --kafka BROKERS */
	const char *topic;	/* --topic TOPIC */
	const char *partitions;	/* --partitions LIST (static assignment) */
	const char *group;	/* --group G (group-managed) */
	int eof;		/* --kafka-eof: stop at the end of every partition */
	int64_t timeout_ms;	/* --kafka-timeout: the brokers must answer within it at start */
	const char *out_topic;	/* --kafka-out TOPIC */
	const char *out_brokers;	/* --kafka-out-brokers (default: --kafka) */
};

/* The next offset to consume of one partition. */
struct dd_kpos {
	int32_t partition;
	int64_t next;
};

/* A set of positions of one topic. */
struct dd_koffsets {
	const char *topic;
	const struct dd_kpos *pos;
	size_t n;
};

/* ------------------------------------------------------------------ input */

struct dd_kin_hooks {
	/* Where to resume partition p: the next offset to read, -1 for the
	 * beginning, -3 for the group's committed offset, -2 on error
	 * (dd_errmsg()). */
	int64_t (*resume)(void *ctx, int32_t partition);
	/* The group takes partitions away: make everything read so far
	 * durable first. 0 or -1 (dd_errmsg()). */
	int (*revoke)(void *ctx);
	void *ctx;
};

struct dd_kin;

/* Connect, check the topic (and the partitions asked for) within
 * o->timeout_ms, and assign or subscribe. NULL with dd_errmsg(). */
struct dd_kin *dd_kin_open(const struct dd_kafka_opts *o, const struct dd_kin_hooks *h);

/* The next message, valid until the next call: 1, 0 at the end of every
 * assigned partition (--kafka-eof only), DD_LINES_TIMEOUT (-2) when none
 * came by deadline_ms (epoch ms, or in a slice of at most 200 ms, so the
 * caller can look at signals), -1 on failure (dd_errmsg()). */
int dd_kin_next(struct dd_kin *k, const char **p, size_t *n, int32_t *partition,
    int64_t *offset, int64_t deadline_ms);

/* The positions of the assigned partitions read from (valid until the
 * next call of any dd_kin function). */
struct dd_koffsets dd_kin_positions(struct dd_kin *k);

/* Tell the broker (for monitoring: lag) that the positions are durable. */
void dd_kin_committed(struct dd_kin *k);

/* A line for stderr when the brokers went away or came back (each said
 * once), else NULL. */
const char *dd_kin_notice(struct dd_kin *k);

void dd_kin_close(struct dd_kin *k);

/* ----------------------------------------------------------------- output */

struct dd_kout;

/* Connect and check the topic within timeout_ms, then take over stdout
 * (fd 1): what is written there is held until dd_kout_flush(). NULL with
 * dd_errmsg(). */
struct dd_kout *dd_kout_open(const char *brokers, const char *topic, int64_t timeout_ms);

/* Produce every complete line written to stdout since the last call (the
 * caller flushed stdout), and wait until the broker acknowledged them all.
 * 0, or -1 (dd_errmsg()): then nothing may be committed. */
int dd_kout_flush(struct dd_kout *k);

/* A line for stderr about the brokers (as dd_kin_notice), else NULL. */
const char *dd_kout_notice(struct dd_kout *k);

void dd_kout_close(struct dd_kout *k);

/* Parse a partition list "0,2,5-7" into a malloc'd array; 0 or -1. */
int dd_kafka_parse_partitions(const char *s, int32_t **out, size_t *n);

#endif
