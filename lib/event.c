#include <string.h>

#include "ddtime.h"
#include "event.h"

/* The envelope attributes the scanner picks out, by name. */
static const struct {
	const char *name;
	size_t len;
	size_t off;
} attrs[] = {
#define A(n, f) { n, sizeof n - 1, offsetof(struct dd_env, f) }
	A("specversion", specversion), A("id", id), A("source", source),
	A("type", type), A("time", time), A("subject", subject),
	A("datacontenttype", datacontenttype), A("data", data),
	A("traceparent", traceparent),
#undef A
};

static int
member(void *ctx, const struct dd_jval *k, const struct dd_jval *v)
{
	struct dd_env *e = ctx;
	if (k->esc)
		return 0;	/* no attribute name needs escaping */
	for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
		if (attrs[i].len != k->n || memcmp(attrs[i].name, k->p, k->n))
			continue;
		struct dd_jval *slot = (struct dd_jval *)((char *)e + attrs[i].off);
		if (slot->type != DD_JNONE) {
			dd_seterr("duplicate attribute \"%s\"", attrs[i].name);
			return -1;
		}
		*slot = *v;
		return 0;
	}
	return 0;
}

static int
need_str(const struct dd_jval *v, const char *name, int nonempty)
{
	if (v->type == DD_JNONE) {
		dd_seterr("missing \"%s\"", name);
		return -1;
	}
	if (v->type != DD_JSTR) {
		dd_seterr("\"%s\" is not a string", name);
		return -1;
	}
	if (nonempty && v->n == 0) {
		dd_seterr("empty \"%s\"", name);
		return -1;
	}
	return 0;
}

int
dd_env_scan(const char *p, size_t n, struct dd_env *e)
{
	memset(e, 0, sizeof *e);
	if (dd_json_scan_object(p, n, member, e))
		return -1;
	/* The scan validated exactly one object: it spans the text less the
	 * whitespace around it, found without a second walk over the line. */
	size_t lo = 0, hi = n;
	while (lo < hi && (p[lo] == ' ' || p[lo] == '\t' || p[lo] == '\n' || p[lo] == '\r'))
		lo++;
	while (hi > lo && (p[hi - 1] == ' ' || p[hi - 1] == '\t' || p[hi - 1] == '\n' ||
	    p[hi - 1] == '\r'))
		hi--;
	e->whole = (struct dd_jval){ DD_JOBJ, p + lo, hi - lo, 0 };
	if (need_str(&e->specversion, "specversion", 1))
		return -1;
	if (!dd_jstr_eq(&e->specversion, "1.0", 3)) {
		dd_seterr("unsupported specversion \"%.*s\"",
		    (int)(e->specversion.n > 16 ? 16 : e->specversion.n), e->specversion.p);
		return -1;
	}
	if (need_str(&e->id, "id", 1) || need_str(&e->source, "source", 1) ||
	    need_str(&e->type, "type", 1) || need_str(&e->time, "time", 1))
		return -1;
	if (e->id.n > DD_ID_MAX) {
		/* Escapes only shorten: check the decoded length when there are any. */
		struct dd_buf b = { 0 };
		dd_jstr_decode(&e->id, &b);
		size_t len = b.len;
		dd_buf_free(&b);
		if (len > DD_ID_MAX) {
			dd_seterr("\"id\" is longer than %d bytes", DD_ID_MAX);
			return -1;
		}
	}
	if (e->time.esc || dd_time_parse(e->time.p, e->time.n, &e->time_ms)) {
		dd_seterr("bad \"time\": \"%.*s\"", (int)(e->time.n > 40 ? 40 : e->time.n),
		    e->time.p);
		return -1;
	}
	if (e->subject.type != DD_JNONE && need_str(&e->subject, "subject", 1))
		return -1;
	if (e->data.type == DD_JNONE) {
		dd_seterr("missing \"data\"");
		return -1;
	}
	if (e->data.type != DD_JOBJ) {
		dd_seterr("\"data\" is not an object");
		return -1;
	}
	return 0;
}

int
dd_env_type_is(const struct dd_env *e, const char *type)
{
	size_t n = strlen(type);
	return e->type.n == n && memcmp(e->type.p, type, n) == 0;
}

int
dd_env_type_has_prefix(const struct dd_env *e, const char *prefix)
{
	size_t n = strlen(prefix);
	return e->type.n >= n && memcmp(e->type.p, prefix, n) == 0;
}

int
dd_env_str(const struct dd_jval *v, char *buf, size_t bufsz)
{
	if (v->type != DD_JSTR)
		return -1;
	if (!v->esc) {
		if (v->n >= bufsz)
			return -1;
		memcpy(buf, v->p, v->n);
		buf[v->n] = '\0';
		return (int)v->n;
	}
	struct dd_buf b = { 0 };
	dd_jstr_decode(v, &b);
	int n = -1;
	if (b.len < bufsz && memchr(b.p, '\0', b.len) == NULL) {
		memcpy(buf, b.p, b.len + 1);
		n = (int)b.len;
	}
	dd_buf_free(&b);
	return n;
}

/*
 * The data fields each of the toolkit's types requires, with their JSON
 * types: S string, N number, B boolean, O object, T an RFC 3339 string,
 * L a location object with numeric lat and lon. These mirror the
 * "required" lists of data/schemas/; the full schemas are checked by the
 * test suite with an independent validator.
 */
static const struct {
	const char *type;
	const char *fields;	/* "name:K name:K ..." */
} rules[] = {
	{ "delivery.scheduled", "deliveryId:S requestId:S ownerId:S pickup:L dropoff:L "
	    "pickupTime:T deadline:T expedited:B confirmationRequired:S package:O "
	    "droneId:S pickupEta:T dropoffEta:T" },
	{ "delivery.rescheduled", "deliveryId:S reason:S" },
	{ "delivery.cancelled", "deliveryId:S reason:S" },
	{ "delivery.rejected", "requestId:S reason:S" },
	{ "delivery.status", "deliveryId:S stage:S" },
	{ "package.registered", "packageId:S size:S weightKg:N" },
	{ "package.removed", "packageId:S reason:S" },
	{ "drone.released", "droneId:S deliveryId:S reason:S" },
	{ "drone.dispatched", "droneId:S" },
	{ "drone.position", "droneId:S location:L speedMps:N battery:N" },
	{ "drone.picked-up", "droneId:S" },
	{ "drone.delivered", "droneId:S" },
	{ "drone.failed", "droneId:S reason:S" },
	{ "drone.returned", "droneId:S" },
};

static int
check_field(const struct dd_jval *data, const char *name, size_t n, char kind)
{
	struct dd_jval v, c;
	if (!dd_json_get(data, name, n, &v)) {
		dd_seterr("missing \"data.%.*s\"", (int)n, name);
		return -1;
	}
	int ok;
	int64_t ms;
	switch (kind) {
	case 'S': ok = v.type == DD_JSTR; break;
	case 'N': ok = v.type == DD_JNUM; break;
	case 'B': ok = v.type == DD_JTRUE || v.type == DD_JFALSE; break;
	case 'O': ok = v.type == DD_JOBJ; break;
	case 'T': ok = v.type == DD_JSTR && !v.esc && dd_time_parse(v.p, v.n, &ms) == 0; break;
	case 'L':
		ok = v.type == DD_JOBJ && dd_json_get(&v, "lat", 3, &c) &&
		    c.type == DD_JNUM && dd_json_get(&v, "lon", 3, &c) && c.type == DD_JNUM;
		break;
	default: ok = 0;
	}
	if (!ok) {
		static const char *const what[] = { "a string", "a number", "a boolean",
			"an object", "an RFC 3339 time", "a location {lat, lon}" };
		const char *k = "SNBOTL";
		dd_seterr("\"data.%.*s\" is not %s", (int)n, name, what[strchr(k, kind) - k]);
		return -1;
	}
	return 0;
}

int
dd_event_check_data(const struct dd_env *e)
{
	for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
		if (!dd_env_type_is(e, rules[i].type))
			continue;
		for (const char *f = rules[i].fields; *f; ) {
			const char *colon = strchr(f, ':');
			if (check_field(&e->data, f, (size_t)(colon - f), colon[1]))
				return -1;
			f = colon + 2;
			while (*f == ' ')
				f++;
		}
		return 0;
	}
	return 0;
}
