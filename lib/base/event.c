#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "ddtime.h"
#include "event.h"

/* The envelope attributes the scanner picks out, by name (member()
 * finds them by their index here). */
static const struct {
	const char *name;
	size_t len;
	size_t off;
} attrs[] = {
#define A(n, f) { n, sizeof n - 1, offsetof(struct dd_env, f) }
	A("specversion", specversion), A("id", id), A("source", source),
	A("type", type), A("time", time), A("subject", subject),
	A("datacontenttype", datacontenttype), A("data", data),
	A("traceparent", traceparent), A("dataschema", dataschema),
#undef A
};

/* Equal short strings, for the few bytes of an attribute or field name
 * (this runs per member): two overlapping loads a side instead of a
 * loop, or a memcmp call, over the bytes. */
static inline int
same(const char *a, const char *b, size_t n)
{
	if (n >= 8) {
		if (n > 16)
			return memcmp(a, b, n) == 0;
		uint64_t x0, y0, x1, y1;
		memcpy(&x0, a, 8);
		memcpy(&y0, b, 8);
		memcpy(&x1, a + n - 8, 8);
		memcpy(&y1, b + n - 8, 8);
		return ((x0 ^ y0) | (x1 ^ y1)) == 0;
	}
	if (n >= 4) {
		uint32_t x0, y0, x1, y1;
		memcpy(&x0, a, 4);
		memcpy(&y0, b, 4);
		memcpy(&x1, a + n - 4, 4);
		memcpy(&y1, b + n - 4, 4);
		return ((x0 ^ y0) | (x1 ^ y1)) == 0;
	}
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

/* The attribute named p[0..n) (no escapes): its index in attrs[], or -1.
 * The one candidate by length and a byte, then the whole name compared:
 * this runs per member of every line. */
static inline int
attr_index(const char *p, size_t n)
{
	int i;
	switch (n) {
	case 2: i = 1; break;					/* id */
	case 4: i = p[1] == 'y' ? 3 : p[1] == 'i' ? 4 : 7; break;	/* type time data */
	case 6: i = 2; break;					/* source */
	case 7: i = 5; break;					/* subject */
	case 10: i = 9; break;					/* dataschema */
	case 11: i = p[0] == 's' ? 0 : 8; break;		/* specversion traceparent */
	case 15: i = 6; break;					/* datacontenttype */
	default: return -1;
	}
	return attrs[i].len == n && same(attrs[i].name, p, n) ? i : -1;
}

static int
member(void *ctx, const struct dd_jval *k, const struct dd_jval *v)
{
	struct dd_env *e = ctx;
	if (k->esc)
		return 0;	/* no attribute name needs escaping */
	int i = attr_index(k->p, k->n);
	if (i < 0)
		return 0;
	struct dd_jval *slot = (struct dd_jval *)((char *)e + attrs[i].off);
	if (slot->type != DD_JNONE) {
		dd_seterr("duplicate attribute \"%s\"", attrs[i].name);
		return -1;
	}
	*slot = *v;
	return 0;
}

/* A member of data, as the scan validates it. An object's members came
 * to sub_member() just before (the scan of stored lines, nest set). */
static int
data_member(void *ctx, const struct dd_jval *k, const struct dd_jval *v)
{
	struct dd_env *e = ctx;
	if (e->ndata >= 0 && e->ndata < DD_ENV_DATA_MAX) {
		int i = e->ndata++;
		e->dm[i].key = *k;
		e->dm[i].val = *v;
		e->sfirst[i] = -1;
		if (e->nest && v->type == DD_JOBJ && !e->sover) {
			e->sfirst[i] = (signed char)e->smark;
			e->scount[i] = (unsigned char)(e->nsub - e->smark);
		}
	} else {
		e->ndata = -1;
	}
	e->smark = e->nsub;
	e->sover = 0;
	return 0;
}

/* A member of one of data's objects. */
static int
sub_member(void *ctx, const struct dd_jval *k, const struct dd_jval *v)
{
	struct dd_env *e = ctx;
	if (e->nsub < DD_ENV_SUB_MAX) {
		e->sm[e->nsub].key = *k;
		e->sm[e->nsub++].val = *v;
	} else {
		e->sover = 1;
	}
	return 0;
}

int
dd_env_data_get(const struct dd_env *e, const char *key, size_t n, struct dd_jval *out)
{
	if (e->ndata < 0)
		return dd_json_get(&e->data, key, n, out);
	for (int i = e->ndata - 1; i >= 0; i--) {
		const struct dd_jval *k = &e->dm[i].key;
		if (k->esc)
			return dd_json_get(&e->data, key, n, out);
		if (k->n == n && same(k->p, key, n)) {
			/* The last one; an earlier escaped twin cannot follow. */
			*out = e->dm[i].val;
			return 1;
		}
	}
	return 0;
}

int
dd_env_sub_get(const struct dd_env *e, const struct dd_jval *obj, const char *key, size_t n,
    struct dd_jval *out)
{
	for (int i = 0; obj->type == DD_JOBJ && i < e->ndata; i++) {
		if (e->dm[i].val.p != obj->p || e->sfirst[i] < 0)
			continue;
		/* The last of duplicate keys, as jq; an escaped key (never in
		 * a stored line) could be a twin: then walk. */
		const struct dd_jmember *m = &e->sm[e->sfirst[i]];
		for (int j = e->scount[i] - 1; j >= 0; j--) {
			if (m[j].key.esc)
				return dd_json_get(obj, key, n, out);
			if (m[j].key.n == n && same(m[j].key.p, key, n)) {
				*out = m[j].val;
				return 1;
			}
		}
		return 0;
	}
	return dd_json_get(obj, key, n, out);
}

int
dd_env_path(const struct dd_env *e, const char *path, struct dd_jval *out)
{
	const char *dot = strchr(path, '.');
	size_t n = dot ? (size_t)(dot - path) : strlen(path);
	int i = attr_index(path, n);
	if (i < 0)
		return -1;
	const struct dd_jval *a = (const struct dd_jval *)((const char *)e + attrs[i].off);
	if (a->type == DD_JNONE)
		return 0;
	if (!dot) {
		*out = *a;
		return 1;
	}
	if (a != &e->data)
		return dd_json_path(a, dot + 1, out);
	/* Under data: its member from the scan, then the rest. */
	const char *k = dot + 1, *kd = strchr(k, '.');
	size_t kn = kd ? (size_t)(kd - k) : strlen(k);
	struct dd_jval m;
	if (!dd_env_data_get(e, k, kn, &m))
		return 0;
	if (!kd) {
		*out = m;
		return 1;
	}
	/* And under data's objects: the member from the scan, then the rest. */
	const char *k2 = kd + 1, *kd2 = strchr(k2, '.');
	size_t kn2 = kd2 ? (size_t)(kd2 - k2) : strlen(k2);
	struct dd_jval m2;
	if (m.type != DD_JOBJ)
		return dd_json_path(&m, k2, out);	/* an array's element, or nothing */
	if (!dd_env_sub_get(e, &m, k2, kn2, &m2))
		return 0;
	if (!kd2) {
		*out = m2;
		return 1;
	}
	return dd_json_path(&m2, kd2 + 1, out);
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

static int env_check(const char *p, size_t n, struct dd_env *e);

int
dd_env_scan(const char *p, size_t n, struct dd_env *e)
{
	memset(e, 0, offsetof(struct dd_env, dm));
	if (dd_json_scan_object2(p, n, member, e, "data", data_member))
		return -1;
	return env_check(p, n, e);
}

int
dd_env_scan_stored(const char *p, size_t n, struct dd_env *e)
{
	memset(e, 0, offsetof(struct dd_env, dm));
	if (memchr(p, '\\', n) != NULL ||
	    (e->nest = 1, dd_json_scan_object3_stored(p, n, member, e, "data", data_member,
	    sub_member)) ||
	    env_check(p, n, e))
		return dd_env_scan(p, n, e);	/* the validating scan decides */
	return 0;
}

/* The attributes SPEC.md requires, once the members are found. */
static int
env_check(const char *p, size_t n, struct dd_env *e)
{
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
	if (e->dataschema.type != DD_JNONE && need_str(&e->dataschema, "dataschema", 1))
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
#define R(type, fields) { type, sizeof type - 1, fields }
static const struct {
	const char *type;
	size_t typelen;
	const char *fields;	/* "name:K name:K ..." */
} rules[] = {
	R("delivery.scheduled", "deliveryId:S requestId:S ownerId:S pickup:L dropoff:L "
	    "pickupTime:T deadline:T expedited:B confirmationRequired:C package:P "
	    "droneId:S pickupEta:T dropoffEta:T"),
	R("delivery.rescheduled", "deliveryId:S reason:S confirmationRequired:c package:p"),
	R("delivery.cancelled", "deliveryId:S reason:S"),
	R("delivery.rejected", "requestId:S reason:S"),
	R("delivery.status", "deliveryId:S stage:G previousStage:g"),
	R("delivery.summary", "outcome:S created:T ended:T events:N"),
	R("package.registered", "packageId:S size:Z weightKg:N"),
	R("package.removed", "packageId:S reason:S"),
	R("drone.released", "droneId:S deliveryId:S reason:S"),
	R("drone.dispatched", "droneId:S"),
	R("drone.position", "droneId:S location:L speedMps:N battery:N"),
	R("drone.picked-up", "droneId:S"),
	R("drone.delivered", "droneId:S"),
	R("drone.failed", "droneId:S reason:S"),
	R("drone.returned", "droneId:S"),
};
#undef R

/* Is v a string equal to one of the NULL-terminated names? */
static int
one_of(const struct dd_jval *v, const char *const *names)
{
	if (v->type != DD_JSTR)
		return 0;
	for (; *names; names++)
		if (dd_jstr_eq(v, *names, strlen(*names)))
			return 1;
	return 0;
}

/* The enums of data/schemas/defs.json. */
static const char *const sizes[] = { "small", "medium", "large", NULL };
static const char *const confirmations[] = { "None", "FingerPrint", "Picture", "Voice", NULL };
static const char *const stages[] = { "created", "headed-to-pickup", "headed-to-dropoff",
	"completed", "rescheduled", "cancelled", "failed", NULL };

/* The package object of defs.json: packageId, size, weightKg > 0, tag. */
static int
package_ok(const struct dd_jval *v)
{
	struct dd_jval c;
	double kg;
	if (v->type != DD_JOBJ)
		return 0;
	if (!dd_json_get(v, "packageId", 9, &c) || c.type != DD_JSTR || c.n == 0)
		return 0;
	if (!dd_json_get(v, "size", 4, &c) || !one_of(&c, sizes))
		return 0;
	if (!dd_json_get(v, "weightKg", 8, &c) || dd_jnum_double(&c, &kg) || !(kg > 0))
		return 0;
	if (dd_json_get(v, "tag", 3, &c) && c.type != DD_JSTR)
		return 0;
	return 1;
}

/* Is v of the JSON kind K of the rules above? */
static int
kind_ok(const struct dd_jval *v, char kind)
{
	struct dd_jval c;
	int64_t ms;
	switch (kind) {
	case 'C': case 'c': return one_of(v, confirmations);
	case 'Z': return one_of(v, sizes);
	case 'G': return one_of(v, stages);
	case 'g': return v->type == DD_JNULL || one_of(v, stages);
	case 'P': case 'p': return package_ok(v);
	case 'S': return v->type == DD_JSTR;
	case 'N': return v->type == DD_JNUM;
	case 'B': return v->type == DD_JTRUE || v->type == DD_JFALSE;
	case 'O': return v->type == DD_JOBJ;
	case 'T': return v->type == DD_JSTR && !v->esc && dd_time_parse(v->p, v->n, &ms) == 0;
	case 'L':
		return v->type == DD_JOBJ && dd_json_get(v, "lat", 3, &c) &&
		    c.type == DD_JNUM && dd_json_get(v, "lon", 3, &c) && c.type == DD_JNUM;
	}
	return 0;
}

#define MAXFIELDS 16
#define NRULES (sizeof rules / sizeof rules[0])

/* The rules' field lists, parsed once from their text. */
struct field {
	const char *name;
	size_t len;
	char kind;
};
static struct {
	struct field f[MAXFIELDS];
	int n;
} parsed[NRULES];
static pthread_once_t parsed_once = PTHREAD_ONCE_INIT;

static void
parse_rules(void)
{
	for (size_t i = 0; i < NRULES; i++)
		for (const char *f = rules[i].fields; *f && parsed[i].n < MAXFIELDS; ) {
			const char *colon = strchr(f, ':');
			struct field *x = &parsed[i].f[parsed[i].n++];
			x->name = f;
			x->len = (size_t)(colon - f);
			x->kind = colon[1];
			f = colon + 2;
			while (*f == ' ')
				f++;
		}
}

int
dd_event_check_data(const struct dd_env *e)
{
	/* Upper case: required; lower case: checked when present. */
	static const char *const what[] = { "a string", "a number", "a boolean",
		"an object", "an RFC 3339 time", "a location {lat, lon}",
		"one of None, FingerPrint, Picture, Voice",
		"a package {packageId, size: small|medium|large, weightKg > 0}",
		"one of small, medium, large", "a stage" };
	static const char kinds[] = "SNBOTLCPZG";
	for (size_t i = 0; i < NRULES; i++) {
		/* (no strlen: this runs for every event) */
		if (e->type.n != rules[i].typelen ||
		    !same(e->type.p, rules[i].type, rules[i].typelen))
			continue;
		/* One walk over data's members against the rule's fields (parsed
		 * once), rather than a search of data per field. */
		if (dd_event_check_version(e))
			return -1;
		pthread_once(&parsed_once, parse_rules);
		const struct field *fl = parsed[i].f;
		int n = parsed[i].n;
		struct dd_jval val[MAXFIELDS];
		for (int j = 0; j < n; j++)
			val[j].type = DD_JNONE;
		struct dd_jval k, v;
		size_t pos = 0;
		for (int m = 0; e->ndata >= 0 ? m < e->ndata : dd_json_next(&e->data, &pos, &k, &v);
		    m++) {
			if (e->ndata >= 0) {
				k = e->dm[m].key;
				v = e->dm[m].val;
			}
			for (int j = 0; j < n; j++)
				if (k.esc ? dd_jstr_eq(&k, fl[j].name, fl[j].len) :
				    (k.n == fl[j].len && same(k.p, fl[j].name, k.n))) {
					val[j] = v;	/* the last duplicate wins, as in jq */
					break;
				}
		}
		for (int j = 0; j < n; j++) {
			int optional = fl[j].kind >= 'a' && fl[j].kind <= 'z';
			if (val[j].type == DD_JNONE) {
				if (optional)
					continue;
				dd_seterr("missing \"data.%.*s\"", (int)fl[j].len, fl[j].name);
				return -1;
			}
			if (!kind_ok(&val[j], fl[j].kind)) {
				char kk = optional ? (char)(fl[j].kind - 'a' + 'A') : fl[j].kind;
				const char *w = what[strchr(kinds, kk) - kinds];
				/* An enum's outsider is shown: the reader sees what came. */
				if (strchr("CZG", kk) && val[j].type == DD_JSTR)
					dd_seterr("\"data.%.*s\" is not %s: \"%.*s\"", (int)fl[j].len,
					    fl[j].name, w, (int)(val[j].n > 32 ? 32 : val[j].n), val[j].p);
				else
					dd_seterr("\"data.%.*s\" is not %s", (int)fl[j].len, fl[j].name, w);
				return -1;
			}
		}
		return 0;
	}
	return 0;
}

int
dd_event_type_known(const struct dd_env *e)
{
	for (size_t i = 0; i < NRULES; i++)
		if (e->type.n == rules[i].typelen && same(e->type.p, rules[i].type, rules[i].typelen))
			return 1;
	return 0;
}

int
dd_event_check_version(const struct dd_env *e)
{
	static const char urn[] = "urn:dd:schema:";
	const struct dd_jval *v = &e->dataschema;
	if (v->type == DD_JNONE || !dd_event_type_known(e))
		return 0;
	/* urn:dd:schema:TYPE:MAJOR; no escapes in any of it. */
	size_t n = sizeof urn - 1;
	const char *p = v->p;
	int ok = v->type == DD_JSTR && !v->esc && v->n > n + e->type.n + 1 &&
	    memcmp(p, urn, n) == 0 && memcmp(p + n, e->type.p, e->type.n) == 0 &&
	    p[n + e->type.n] == ':';
	long major = 0;
	if (ok) {
		for (size_t i = n + e->type.n + 1; i < v->n; i++) {
			if (p[i] < '0' || p[i] > '9' || major > 100000000) {
				ok = 0;
				break;
			}
			major = major * 10 + (p[i] - '0');
		}
		ok = ok && major > 0 && p[n + e->type.n + 1] != '0';
	}
	if (!ok) {
		dd_seterr("\"dataschema\" is not urn:dd:schema:%.*s:MAJOR: \"%.*s\"",
		    (int)e->type.n, e->type.p, (int)(v->n > 64 ? 64 : v->n), v->p);
		return -1;
	}
	if (major != DD_SCHEMA_MAJOR) {
		dd_seterr("unknown schema version: \"dataschema\" names %.*s version %ld; this"
		    " build reads version %d", (int)e->type.n, e->type.p, major, DD_SCHEMA_MAJOR);
		return -1;
	}
	return 0;
}
