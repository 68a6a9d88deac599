/* What kafka-in.c and kafka-out.c share (kafka.c). */
#ifndef DD_KAFKA_INT_H
#define DD_KAFKA_INT_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

/* The brokers' state as the client reports it, for one notice a change. */
struct kstate {
	const char *brokers;
	int down;		/* every broker unreachable, as last reported */
	int said;		/* the notice for the current state was handed out */
	char why[256];
	char notice[512];
};

/* A configuration with the common settings: brokers, the client's own
 * logging silenced (library code writes no stderr) and errors kept in st. */
rd_kafka_conf_t *dd_kconf_new(const char *brokers, struct kstate *st);
/* Set one property; 0 or -1 (dd_errmsg()). */
int dd_kconf_set(rd_kafka_conf_t *c, const char *name, const char *value);
/* Check within timeout_ms that the brokers answer and know topic; its
 * number of partitions, or -1 (dd_errmsg(): one line). */
int dd_kafka_topic_check(rd_kafka_t *rk, const char *brokers, const char *topic,
    int64_t timeout_ms);
/* A topic of a --topic list as the brokers know it. */
struct dd_ktopic {
	char *name;
	int nparts;
};
/* Within timeout_ms, the topics list names (each name as given, each
 * pattern ^... as every topic it matches, none twice) with their numbers
 * of partitions: 0 and a malloc'd array (dd_ktopics_free), or -1
 * (dd_errmsg(): one line; a name the brokers do not know, or a pattern
 * that matches nothing, is an error). */
int dd_kafka_topics_resolve(rd_kafka_t *rk, const char *brokers, const char *list,
    int64_t timeout_ms, struct dd_ktopic **out, size_t *n);
void dd_ktopics_free(struct dd_ktopic *t, size_t n);
/* The top-level member key of the JSON object p[0..n), when it is a
 * string: 1 and its text between the quotes (escapes as they are), 0 when
 * there is none or it is not a string. A light walk for the hot path (the
 * order of the input, the key of the output), no validation: bad JSON
 * gives 0 or some string, never a read past n. */
int dd_kjson_top_str(const char *p, size_t n, const char *key, const char **v, size_t *vn);
/* Progress became possible: the brokers are reachable again. */
void dd_kstate_up(struct kstate *st);
/* The notice to show, once, or NULL. */
const char *dd_kstate_notice(struct kstate *st);

#endif
