/*
 * librdkafka, loaded when first used. Linked as a library, librdkafka
 * and what it needs (libssl, libcrypto, libsasl2, liblz4, libz) are
 * mapped and relocated at the start of every run: about 2.7 ms of CPU,
 * most of a `dd-track get ID` that reads one row (issue 16). Only runs
 * with --kafka or --kafka-out call it, so the programs link these
 * definitions instead, each of which loads the library on its first call
 * (dlopen, once) and goes on to the real function. The prototypes are
 * rdkafka.h's own (__typeof__), so a signature that differs does not
 * compile. The kafka*.c files call librdkafka as before.
 *
 * A library that cannot be loaded is what the dynamic loader would have
 * stopped the program for, only later: the run ends with the loader's
 * reason and DD_EXIT_IO, before any Kafka work.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <librdkafka/rdkafka.h>

#include "exitcodes.h"
#include "util.h"

/* The SONAME of the runtime package (librdkafka1): what -lrdkafka would
 * have recorded as NEEDED. */
#define RDKAFKA_SONAME "librdkafka.so.1"

static void *lib;
static char *why;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void
load(void)
{
	lib = dlopen(RDKAFKA_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL)
		why = dd_strdup(dlerror());
}

static void *
resolve(const char *name)
{
	pthread_once(&once, load);
	if (lib == NULL)
		dd_die(DD_EXIT_IO, "cannot load librdkafka: %s", why);
	void *f = dlsym(lib, name);
	if (f == NULL)
		dd_die(DD_EXIT_IO, "librdkafka: no %s: %s", name, dlerror());
	return f;
}

/* A definition of NAME that calls the library's. Callbacks may come on
 * librdkafka's own threads: the pointer is published atomically. */
#define FN(ret, name, params, args) \
	ret name params \
	{ \
		static __typeof__(name) *f; \
		__typeof__(name) *g = __atomic_load_n(&f, __ATOMIC_ACQUIRE); \
		if (g == NULL) { \
			g = (__typeof__(name) *)resolve(#name); \
			__atomic_store_n(&f, g, __ATOMIC_RELEASE); \
		} \
		return g args; \
	}
#define VFN(name, params, args) \
	void name params \
	{ \
		static __typeof__(name) *f; \
		__typeof__(name) *g = __atomic_load_n(&f, __ATOMIC_ACQUIRE); \
		if (g == NULL) { \
			g = (__typeof__(name) *)resolve(#name); \
			__atomic_store_n(&f, g, __ATOMIC_RELEASE); \
		} \
		g args; \
	}

typedef void (*dr_msg_cb_t)(rd_kafka_t *, const rd_kafka_message_t *, void *);
typedef void (*error_cb_t)(rd_kafka_t *, int, const char *, void *);
typedef void (*log_cb_t)(const rd_kafka_t *, int, const char *, const char *);
typedef void (*rebalance_cb_t)(rd_kafka_t *, rd_kafka_resp_err_t,
    rd_kafka_topic_partition_list_t *, void *);

/* The configuration and the handle. */
FN(rd_kafka_conf_t *, rd_kafka_conf_new, (void), ())
VFN(rd_kafka_conf_destroy, (rd_kafka_conf_t *c), (c))
FN(rd_kafka_conf_res_t, rd_kafka_conf_set, (rd_kafka_conf_t *c, const char *name,
    const char *value, char *errstr, size_t errstr_size), (c, name, value, errstr, errstr_size))
VFN(rd_kafka_conf_set_dr_msg_cb, (rd_kafka_conf_t *c, dr_msg_cb_t cb), (c, cb))
VFN(rd_kafka_conf_set_error_cb, (rd_kafka_conf_t *c, error_cb_t cb), (c, cb))
VFN(rd_kafka_conf_set_log_cb, (rd_kafka_conf_t *c, log_cb_t cb), (c, cb))
VFN(rd_kafka_conf_set_opaque, (rd_kafka_conf_t *c, void *opaque), (c, opaque))
VFN(rd_kafka_conf_set_rebalance_cb, (rd_kafka_conf_t *c, rebalance_cb_t cb), (c, cb))
FN(rd_kafka_t *, rd_kafka_new, (rd_kafka_type_t type, rd_kafka_conf_t *c, char *errstr,
    size_t errstr_size), (type, c, errstr, errstr_size))
VFN(rd_kafka_destroy, (rd_kafka_t *rk), (rk))
FN(const char *, rd_kafka_err2str, (rd_kafka_resp_err_t err), (err))
FN(rd_kafka_resp_err_t, rd_kafka_last_error, (void), ())
FN(int, rd_kafka_poll, (rd_kafka_t *rk, int timeout_ms), (rk, timeout_ms))
FN(int, rd_kafka_outq_len, (rd_kafka_t *rk), (rk))
FN(rd_kafka_resp_err_t, rd_kafka_flush, (rd_kafka_t *rk, int timeout_ms), (rk, timeout_ms))
FN(rd_kafka_resp_err_t, rd_kafka_metadata, (rd_kafka_t *rk, int all_topics,
    rd_kafka_topic_t *only_rkt, const struct rd_kafka_metadata **metadatap, int timeout_ms),
    (rk, all_topics, only_rkt, metadatap, timeout_ms))
VFN(rd_kafka_metadata_destroy, (const struct rd_kafka_metadata *m), (m))

/* Topics and partitions. */
FN(rd_kafka_topic_t *, rd_kafka_topic_new, (rd_kafka_t *rk, const char *topic,
    rd_kafka_topic_conf_t *c), (rk, topic, c))
VFN(rd_kafka_topic_destroy, (rd_kafka_topic_t *rkt), (rkt))
FN(const char *, rd_kafka_topic_name, (const rd_kafka_topic_t *rkt), (rkt))
FN(rd_kafka_topic_partition_list_t *, rd_kafka_topic_partition_list_new, (int size), (size))
VFN(rd_kafka_topic_partition_list_destroy, (rd_kafka_topic_partition_list_t *l), (l))
FN(rd_kafka_topic_partition_t *, rd_kafka_topic_partition_list_add,
    (rd_kafka_topic_partition_list_t *l, const char *topic, int32_t partition),
    (l, topic, partition))

/* The consumer. */
FN(rd_kafka_resp_err_t, rd_kafka_assign, (rd_kafka_t *rk,
    const rd_kafka_topic_partition_list_t *p), (rk, p))
FN(rd_kafka_resp_err_t, rd_kafka_subscribe, (rd_kafka_t *rk,
    const rd_kafka_topic_partition_list_t *t), (rk, t))
FN(rd_kafka_resp_err_t, rd_kafka_commit, (rd_kafka_t *rk,
    const rd_kafka_topic_partition_list_t *offsets, int async), (rk, offsets, async))
FN(rd_kafka_resp_err_t, rd_kafka_poll_set_consumer, (rd_kafka_t *rk), (rk))
FN(rd_kafka_message_t *, rd_kafka_consumer_poll, (rd_kafka_t *rk, int timeout_ms),
    (rk, timeout_ms))
FN(rd_kafka_resp_err_t, rd_kafka_consumer_close, (rd_kafka_t *rk), (rk))
VFN(rd_kafka_message_destroy, (rd_kafka_message_t *m), (m))
FN(const char *, rd_kafka_message_errstr, (const rd_kafka_message_t *m), (m))

/* The producer. */
FN(int, rd_kafka_produce_batch, (rd_kafka_topic_t *rkt, int32_t partition, int msgflags,
    rd_kafka_message_t *rkmessages, int message_cnt),
    (rkt, partition, msgflags, rkmessages, message_cnt))
