/*
 * What the Kafka input and output share: the client's configuration, the
 * check of brokers and topic at start, the state of the brokers as the
 * client reports it.
 */
#include <inttypes.h>
#include <regex.h>
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

/* The end of the JSON string starting at p[i] (its opening quote), or
 * n + 1 when it does not end before n. memchr finds each quote (a byte
 * loop here was most of the cost of keying every output line); a quote
 * after an odd run of backslashes is escaped. */
static size_t
skip_str(const char *p, size_t n, size_t i)
{
	size_t start = i + 1;
	for (i = start; i < n;) {
		const char *q = memchr(p + i, '"', n - i);
		if (q == NULL)
			return n + 1;
		size_t j = (size_t)(q - p), b = 0;
		while (j - b > start && p[j - b - 1] == '\\')
			b++;
		if (b % 2 == 0)
			return j + 1;
		i = j + 1;
	}
	return n + 1;
}

static size_t
skip_blank(const char *p, size_t n, size_t i)
{
	while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
		i++;
	return i;
}

int
dd_kjson_top_str(const char *p, size_t n, const char *key, const char **v, size_t *vn)
{
	size_t i = skip_blank(p, n, 0), kl = strlen(key);
	int depth = 0;
	if (i >= n || p[i] != '{')
		return 0;
	for (; i < n; i++) {
		char c = p[i];
		if (c == '"') {
			size_t e = skip_str(p, n, i);
			size_t j = skip_blank(p, n, e);
			/* A key of the top level (a string followed by ':'). */
			if (depth == 1 && e - i == kl + 2 && memcmp(p + i + 1, key, kl) == 0 &&
			    j < n && p[j] == ':') {
				j = skip_blank(p, n, j + 1);
				if (j >= n || p[j] != '"')
					return 0;
				size_t f = skip_str(p, n, j);
				if (f > n || f - j < 2 || p[f - 1] != '"')
					return 0;
				*v = p + j + 1;
				*vn = f - j - 2;
				return 1;
			}
			i = e - 1;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (--depth <= 0)
				break;
		}
	}
	return 0;
}

/* The items of a --topic list, one at a time: its start and length. */
static int
next_item(const char **at, const char **p, size_t *n)
{
	const char *s = *at;
	if (*s == '\0')
		return 0;
	const char *c = strchr(s, ',');
	*p = s;
	*n = c ? (size_t)(c - s) : strlen(s);
	*at = c ? c + 1 : s + *n;
	return 1;
}

int
dd_kafka_check_topics(const char *list)
{
	const char *at = list, *p;
	size_t n, cnt = 0;
	if (*list == '\0' || list[strlen(list) - 1] == ',')
		goto bad;
	while (next_item(&at, &p, &n)) {
		cnt++;
		if (n == 0)
			goto bad;
		if (*p == '^') {
			/* A pattern may hold any character but the list's comma. */
			char *re = dd_strndup(p, n);
			regex_t rx;
			int rc = regcomp(&rx, re, REG_EXTENDED | REG_NOSUB);
			if (rc == 0)
				regfree(&rx);
			free(re);
			if (rc) {
				dd_seterr("\"%.*s\" is not a regular expression", (int)n, p);
				return -1;
			}
			continue;
		}
		/* Kafka's own rule for topic names. */
		if (n > 249)
			goto bad;
		for (size_t i = 0; i < n; i++)
			if (!(p[i] == '.' || p[i] == '_' || p[i] == '-' ||
			    (p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'z') ||
			    (p[i] >= 'A' && p[i] <= 'Z')))
				goto bad;
	}
	if (cnt)
		return 0;
bad:
	dd_seterr("\"%s\" is not a list of topics (NAME or ^PATTERN, separated by commas)",
	    list);
	return -1;
}

void
dd_ktopics_free(struct dd_ktopic *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(t[i].name);
	free(t);
}

static int
add_topic(struct dd_ktopic **v, size_t *n, const char *name, int nparts)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*v)[i].name, name) == 0)
			return 0;
	*v = dd_realloc(*v, (*n + 1) * sizeof **v);
	(*v)[*n].name = dd_strdup(name);
	(*v)[*n].nparts = nparts;
	(*n)++;
	return 0;
}

int
dd_kafka_topics_resolve(rd_kafka_t *rk, const char *brokers, const char *list,
    int64_t timeout_ms, struct dd_ktopic **out, size_t *nout)
{
	const struct rd_kafka_metadata *md = NULL;
	*out = NULL;
	*nout = 0;
	/* All topics: asking for one by name could create it on a broker
	 * that creates topics on demand. */
	rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md,
	    (int)(timeout_ms > 0x7fffffff ? 0x7fffffff : timeout_ms));
	if (err) {
		dd_seterr("kafka: %s: no broker answered within %" PRId64 " ms (%s)", brokers,
		    timeout_ms, rd_kafka_err2str(err));
		return -1;
	}
	struct dd_ktopic *v = NULL;
	size_t n = 0;
	const char *at = list, *p;
	size_t len;
	int rc = 0;
	while (rc == 0 && next_item(&at, &p, &len)) {
		char *item = dd_strndup(p, len);
		int found = 0;
		regex_t rx;
		int pattern = *item == '^';
		if (pattern && regcomp(&rx, item, REG_EXTENDED | REG_NOSUB)) {
			dd_seterr("\"%s\" is not a regular expression", item);
			rc = -1;
		}
		for (int i = 0; rc == 0 && i < md->topic_cnt; i++) {
			const struct rd_kafka_metadata_topic *t = &md->topics[i];
			if (t->err || t->partition_cnt <= 0)
				continue;
			/* A pattern leaves the broker's own topics (__consumer_offsets)
			 * alone unless it names them. */
			if (pattern ? regexec(&rx, t->topic, 0, NULL, 0) != 0 ||
			    (t->topic[0] == '_' && t->topic[1] == '_' && item[1] != '_') :
			    strcmp(t->topic, item) != 0)
				continue;
			add_topic(&v, &n, t->topic, t->partition_cnt);
			found = 1;
		}
		if (pattern && rc == 0)
			regfree(&rx);
		if (rc == 0 && !found) {
			dd_seterr(pattern ? "kafka: %s: no topic matches \"%s\"" :
			    "kafka: %s: no topic \"%s\"", brokers, item);
			rc = -1;
		}
		free(item);
	}
	rd_kafka_metadata_destroy(md);
	if (rc) {
		dd_ktopics_free(v, n);
		return -1;
	}
	*out = v;
	*nout = n;
	return 0;
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
