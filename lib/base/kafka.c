/*
 * What the Kafka input and output share: the client's configuration, the
 * check of brokers and topic at start, the state of the brokers as the
 * client reports it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "kafka-int.h"
#include "util.h"

/* librdkafka logs on stderr by default; the state of the brokers reaches
 * the user as one notice instead (dd_kstate_notice). */
static void
quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
}

/* Called from the client's poll: "all brokers down" is the one state the
 * user must hear of; the client retries by itself. */
static void
on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct kstate *st = opaque;
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
		if (!st->down)
			st->said = 0;
		st->down = 1;
		snprintf(st->why, sizeof st->why, "%s", reason);
	}
}

rd_kafka_conf_t *
dd_kconf_new(const char *brokers, struct kstate *st)
{
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	st->brokers = brokers;
	st->said = 1;
	rd_kafka_conf_set_log_cb(c, quiet_log);
	rd_kafka_conf_set_error_cb(c, on_error);
	rd_kafka_conf_set_opaque(c, st);
	if (dd_kconf_set(c, "bootstrap.servers", brokers))
		goto fail;
	/* What a site needs beyond the brokers (security.protocol, sasl.*,
	 * fetch sizes): librdkafka properties, "NAME=VALUE" separated by
	 * blanks, applied last. */
	const char *env = getenv("DD_KAFKA_CONF");
	if (env && *env) {
		char *copy = dd_strdup(env), *save = NULL;
		for (char *t = strtok_r(copy, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save)) {
			char *eq = strchr(t, '=');
			if (eq == NULL) {
				dd_seterr("DD_KAFKA_CONF: \"%s\" is not NAME=VALUE", t);
				free(copy);
				goto fail;
			}
			*eq = '\0';
			if (dd_kconf_set(c, t, eq + 1)) {
				free(copy);
				goto fail;
			}
		}
		free(copy);
	}
	return c;
fail:
	rd_kafka_conf_destroy(c);
	return NULL;
}

int
dd_kconf_set(rd_kafka_conf_t *c, const char *name, const char *value)
{
	char err[512];
	if (rd_kafka_conf_set(c, name, value, err, sizeof err) != RD_KAFKA_CONF_OK) {
		dd_seterr("kafka: %s: %s", name, err);
		return -1;
	}
	return 0;
}

int
dd_kafka_topic_check(rd_kafka_t *rk, const char *brokers, const char *topic,
    int64_t timeout_ms)
{
	const struct rd_kafka_metadata *md = NULL;
	/* All topics: asking for one by name could create it on a broker
	 * that creates topics on demand. */
	rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md,
	    (int)(timeout_ms > 0x7fffffff ? 0x7fffffff : timeout_ms));
	if (err) {
		dd_seterr("kafka: %s: no broker answered within %" PRId64 " ms (%s)", brokers,
		    timeout_ms, rd_kafka_err2str(err));
		return -1;
	}
	int n = -1;
	for (int i = 0; i < md->topic_cnt; i++) {
		if (strcmp(md->topics[i].topic, topic) != 0)
			continue;
		if (md->topics[i].err == 0)
			n = md->topics[i].partition_cnt;
		break;
	}
	rd_kafka_metadata_destroy(md);
	if (n <= 0) {
		dd_seterr("kafka: %s: no topic \"%s\"", brokers, topic);
		return -1;
	}
	return n;
}

void
dd_kstate_up(struct kstate *st)
{
	if (st->down) {
		st->down = 0;
		st->said = 0;
	}
}

const char *
dd_kstate_notice(struct kstate *st)
{
	if (st->said)
		return NULL;
	st->said = 1;
	if (st->down)
		snprintf(st->notice, sizeof st->notice,
		    "kafka: %s: all brokers down (%s); waiting for them", st->brokers, st->why);
	else
		snprintf(st->notice, sizeof st->notice, "kafka: %s: brokers back", st->brokers);
	return st->notice;
}

int
dd_kafka_parse_partitions(const char *s, int32_t **out, size_t *n)
{
	int32_t *v = NULL;
	size_t cnt = 0, cap = 0;
	const char *p = s;
	*out = NULL;
	*n = 0;
	while (*p) {
		char *end;
		long a = strtol(p, &end, 10), b;
		if (end == p || a < 0 || a > 1000000)
			goto bad;
		b = a;
		if (*end == '-') {
			p = end + 1;
			b = strtol(p, &end, 10);
			if (end == p || b < a || b > 1000000)
				goto bad;
		}
		for (long i = a; i <= b; i++) {
			for (size_t j = 0; j < cnt; j++)
				if (v[j] == i)
					goto bad;
			if (cnt == cap) {
				cap = cap ? cap * 2 : 8;
				v = dd_realloc(v, cap * sizeof *v);
			}
			v[cnt++] = (int32_t)i;
		}
		if (*end == ',' && end[1])
			end++;
		else if (*end)
			goto bad;
		p = end;
	}
	if (cnt == 0)
		goto bad;
	*out = v;
	*n = cnt;
	return 0;
bad:
	free(v);
	dd_seterr("\"%s\" is not a list of partitions (0,2,5-7), each once", s);
	return -1;
}
