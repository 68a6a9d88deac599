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
	const char *topic;	/* --topic TOPIC[,TOPIC...]; one starting with ^ is a
				 * regular expression (POSIX extended) over the
				 * topics the brokers know */
	const char *partitions;	/* --partitions LIST (static assignment) */
	const char *group;	/* --group G (group-managed) */
	int eof;		/* --kafka-eof: stop at the end of every partition */
	int64_t timeout_ms;	/* --kafka-timeout: the brokers must answer within it at start */
	const char *out_topic;	/* --kafka-out TOPIC */
	const char *out_brokers;	/* --kafka-out-brokers (default: --kafka) */
	/* Set by the program, not the user: hand the messages of all the
	 * partitions read out in one event-time order (the global clock of
	 * a program whose state moves with stream time, dd-track). */
	int ordered;
};

/* The next offset to consume of one partition of a topic. */
struct dd_kpos {
	const char *topic;
	int32_t partition;
	int64_t next;
};

/* A set of positions. */
struct dd_koffsets {
	const struct dd_kpos *pos;
	size_t n;
};

/* A message handed out: valid until the next dd_kin call. */
struct dd_kmsg {
	const char *p;
	size_t n;
	const char *topic;
	int32_t partition;
	int64_t offset;
};

/* ------------------------------------------------------------------ input */

struct dd_kin_hooks {
	/* Where to resume a partition: the next offset to read, -1 for the
	 * beginning, -3 for the group's committed offset, -2 on error
	 * (dd_errmsg()). */
	int64_t (*resume)(void *ctx, const char *topic, int32_t partition);
	/* The group takes partitions away: make everything read so far
	 * durable first. 0 or -1 (dd_errmsg()). */
	int (*revoke)(void *ctx);
	void *ctx;
};

struct dd_kin;

/* Connect, check the topics (and the partitions asked for) within
 * o->timeout_ms, and assign or subscribe. NULL with dd_errmsg(). */
struct dd_kin *dd_kin_open(const struct dd_kafka_opts *o, const struct dd_kin_hooks *h);

/* The next message, valid until the next call: 1, 0 at the end of every
 * assigned partition (--kafka-eof only), DD_LINES_TIMEOUT (-2) when none
 * came by deadline_ms (epoch ms, or in a slice of at most 200 ms, so the
 * caller can look at signals), -1 on failure (dd_errmsg()). With
 * o->ordered, the message of the earliest event time among the heads of
 * the partitions: a partition that has nothing waiting holds the others
 * back until it has, or is at its end (what comes to it later comes
 * late, as in any stream), or until DD_KIN_HOLD_MAX bytes wait. */
int dd_kin_next(struct dd_kin *k, struct dd_kmsg *m, int64_t deadline_ms);
#define DD_KIN_HOLD_MAX ((size_t)64 << 20)

/* The positions of the assigned partitions read from (valid until the
 * next call of any dd_kin function). */
struct dd_koffsets dd_kin_positions(struct dd_kin *k);

/* Tell the broker the positions ko are durable: for monitoring (lag),
 * asynchronously; or, with sync, as the place a restart resumes from
 * (RD_KAFKA_OFFSET_STORED), waiting for the broker's answer. 0, or -1
 * (dd_errmsg(); sync only). */
int dd_kin_committed(struct dd_kin *k, const struct dd_koffsets *ko, int sync);

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

/* Produce the complete lines written so far, when enough piled up, so
 * the broker acknowledges them while the program goes on (the caller
 * flushed nothing: what stdio holds waits). Waits for nothing. 0, or -1
 * (dd_errmsg()). */
int dd_kout_pump(struct dd_kout *k);

/* A line for stderr about the brokers (as dd_kin_notice), else NULL. */
const char *dd_kout_notice(struct dd_kout *k);

void dd_kout_close(struct dd_kout *k);

/* Check a --topic list: names (letters, digits, . _ -) or patterns
 * (^...), separated by commas; 0 or -1 (dd_errmsg()). */
int dd_kafka_check_topics(const char *list);

/* Parse a partition list "0,2,5-7" into a malloc'd array; 0 or -1. */
int dd_kafka_parse_partitions(const char *s, int32_t **out, size_t *n);

#endif
