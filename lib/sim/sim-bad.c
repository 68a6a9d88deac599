/*
 * The malformed lines of --bad: a valid line is taken as fields, which
 * each kind drops, replaces or breaks (broken syntax and bytes for both
 * generators, schema violations for requests, envelope faults for events),
 * and the --bad-manifest record that says what a consumer must report.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "sim-int.h"

void
fields_add(struct fields *fs, const char *key, const char *json, size_t n)
{
	struct dd_buf *b = &fs->text;
	fs->key[fs->n] = key;
	fs->off[fs->n] = b->len;
	dd_buf_addc(b, '"');
	dd_buf_adds(b, key);
	dd_buf_adds(b, "\":");
	dd_buf_add(b, json, n);
	fs->len[fs->n] = b->len - fs->off[fs->n];
	fs->n++;
}

void
fields_join(const struct fields *fs, struct dd_buf *out, const char *omit,
    const char *repl, const char *val, size_t valn)
{
	dd_buf_addc(out, '{');
	int first = 1;
	for (int i = 0; i < fs->n; i++) {
		const char *k = fs->key[i];
		if (omit && strcmp(k, omit) == 0)
			continue;
		if (!first)
			dd_buf_addc(out, ',');
		first = 0;
		const char *text = fs->text.p + fs->off[i];
		size_t kl = strlen(k);
		if (repl && strncmp(repl, k, kl) == 0 && (repl[kl] == '\0' || repl[kl] == '.')) {
			dd_buf_add(out, text, kl + 3);
			if (repl[kl] == '\0') {
				dd_buf_add(out, val, valn);
			} else {
				/* Replace the member repl+kl+1 of the object value. */
				const char *sub = repl + kl + 1;
				const char *v = text + kl + 3;
				size_t vn = fs->len[i] - kl - 3;
				char pat[64];
				snprintf(pat, sizeof pat, "\"%s\":", sub);
				const char *at = strstr(v, pat);
				if (at == NULL || at >= v + vn) {
					dd_buf_add(out, v, vn);
					continue;
				}
				at += strlen(pat);
				const char *end = at;
				if (*end == '"') {
					end = strchr(end + 1, '"') + 1;
				} else {
					while (*end != ',' && *end != '}')
						end++;
				}
				dd_buf_add(out, v, (size_t)(at - v));
				dd_buf_add(out, val, valn);
				dd_buf_add(out, end, (size_t)(v + vn - end));
			}
		} else {
			dd_buf_add(out, text, fs->len[i]);
		}
	}
	dd_buf_addc(out, '}');
}

static const struct badkind common_kinds[BK_COMMON] = {
	{ "broken-json", "json" }, { "truncated-json", "json" },
	{ "not-object", "not-object" }, { "trailing-garbage", "json" },
	{ "nul-byte", "json" }, { "control-character", "json" },
	{ "bad-escape", "json" }, { "deep-nesting", "depth" }, { "empty-line", "empty" },
	{ "invalid-utf8", "utf8" }, { "huge-line", "too-long" }, { "nan", "json" },
};

#define HUGE_LINE (3 * 1024 * 1024 / 2)	/* 1.5 MiB: over the default --max-line */
#define DEEP 10000			/* deeper than any consumer allows */

/* Corrupt the object `good` (a whole valid line without newline) as kind
 * k of common_kinds; detail says how. Writes the line to out. */
static void
bad_common(int k, struct dd_rng *r, const struct fields *fs, struct dd_buf *out,
    const char **detail)
{
	struct dd_buf good = { 0 };
	fields_join(fs, &good, NULL, NULL, NULL, 0);
	const char *g = good.p;
	size_t gn = good.len;
	switch (k) {
	case BK_BROKEN: {
		/* Drop the colon after the second key. */
		const char *c = strstr(g, "\":");
		c = c ? strstr(c + 2, "\":") : NULL;
		size_t at = c ? (size_t)(c - g) + 1 : gn / 2;
		dd_buf_add(out, g, at);
		dd_buf_add(out, g + at + 1, gn - at - 1);
		*detail = "a colon missing";
		break;
	}
	case BK_TRUNCATED: {
		size_t at = 1 + (size_t)dd_rng_below(r, gn - 2);
		dd_buf_add(out, g, at);
		*detail = "cut short";
		break;
	}
	case BK_NOTOBJ: {
		static const char *const v[] = { "[\"drone.position\",47.61,-122.33]", "42",
			"\"a string\"", "null", "true", "[]" };
		size_t i = (size_t)dd_rng_below(r, NELEM(v));
		dd_buf_adds(out, v[i]);
		*detail = i == 0 || i == 5 ? "an array" : i == 1 ? "a number" :
		    i == 2 ? "a string" : "a literal";
		break;
	}
	case BK_TRAILING:
		dd_buf_add(out, g, gn);
		if (dd_rng_below(r, 2)) {
			dd_buf_add(out, g, gn);
			*detail = "two objects on one line";
		} else {
			dd_buf_adds(out, " x");
			*detail = "text after the object";
		}
		break;
	case BK_NUL:
	case BK_CTRL: {
		/* Inside the first string value. */
		const char *q = strstr(g, "\":\"");
		size_t at = q ? (size_t)(q - g) + 3 : 1;
		dd_buf_add(out, g, at);
		dd_buf_addc(out, k == BK_NUL ? '\0' : '\t');
		dd_buf_add(out, g + at, gn - at);
		*detail = k == BK_NUL ? "a NUL byte in a string" : "a raw tab in a string";
		break;
	}
	case BK_ESCAPE: {
		const char *q = strstr(g, "\":\"");
		size_t at = q ? (size_t)(q - g) + 3 : 1;
		dd_buf_add(out, g, at);
		dd_buf_adds(out, dd_rng_below(r, 2) ? "\\x41" : "\\u12G4");
		dd_buf_add(out, g + at, gn - at);
		*detail = "a bad escape in a string";
		break;
	}
	case BK_DEEP:
		dd_buf_add(out, g, gn - 1);
		dd_buf_adds(out, ",\"nested\":");
		for (int i = 0; i < DEEP; i++)
			dd_buf_addc(out, '[');
		for (int i = 0; i < DEEP; i++)
			dd_buf_addc(out, ']');
		dd_buf_addc(out, '}');
		*detail = "arrays nested 10000 deep";
		break;
	case BK_EMPTY:
		*detail = "nothing";
		break;
	case BK_UTF8: {
		static const char *const seq[] = { "\xff\xfe", "\xc0\xaf", "\xed\xa0\x80", "\xe2\x82" };
		size_t i = (size_t)dd_rng_below(r, NELEM(seq));
		const char *q = strstr(g, "\":\"");
		size_t at = q ? (size_t)(q - g) + 3 : 1;
		dd_buf_add(out, g, at);
		dd_buf_adds(out, seq[i]);
		dd_buf_add(out, g + at, gn - at);
		*detail = i == 0 ? "bytes FF FE" : i == 1 ? "an overlong encoding" :
		    i == 2 ? "an encoded surrogate" : "a cut sequence";
		break;
	}
	case BK_HUGE:
		dd_buf_add(out, g, gn - 1);
		dd_buf_adds(out, ",\"padding\":\"");
		dd_buf_grow(out, HUGE_LINE);
		memset(out->p + out->len, 'x', HUGE_LINE);
		out->len += HUGE_LINE;
		out->p[out->len] = '\0';
		dd_buf_adds(out, "\"}");
		*detail = "1.5 MiB";
		break;
	case BK_NAN: {
		/* A number that JSON does not have, as the first number value. */
		static const char *const v[] = { "NaN", "Infinity", "-Infinity", "01", "1.", ".5", "+1" };
		const char *q = g;
		while ((q = strstr(q, "\":")) != NULL) {
			char c = q[2];
			if ((c >= '0' && c <= '9') || c == '-')
				break;
			q += 2;
		}
		size_t at = q ? (size_t)(q - g) + 2 : gn - 1;
		const char *e = g + at;
		while (e < g + gn && *e != ',' && *e != '}')
			e++;
		dd_buf_add(out, g, at);
		dd_buf_adds(out, v[dd_rng_below(r, NELEM(v))]);
		dd_buf_add(out, e, (size_t)(g + gn - e));
		*detail = "a number JSON does not allow";
		break;
	}
	}
	dd_buf_free(&good);
}

int
manifest_open(struct manifest *m, const char *path)
{
	m->f = NULL;
	m->count = 0;
	if (path == NULL)
		return 0;
	m->f = fopen(path, "w");
	if (m->f == NULL) {
		dd_seterr("%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

void
manifest_add(struct manifest *m, uint64_t line, const char *kind, const char *expect,
    const char *detail)
{
	m->count++;
	if (m->f == NULL)
		return;
	fprintf(m->f, "{\"line\":%" PRIu64 ",\"kind\":\"%s\",\"expect\":\"%s\",\"detail\":\"%s\"}\n",
	    line, kind, expect, detail);
}

int
manifest_close(struct manifest *m, const char *path)
{
	if (m->f == NULL)
		return 0;
	int bad = ferror(m->f);
	if (fclose(m->f) || bad) {
		dd_seterr("%s: write error", path);
		return -1;
	}
	return 0;
}
/* ---- the kinds of each generator ---- */

const struct badkind request_kinds[RK_END - BK_COMMON] = {
	{ "wrong-type", "schema" }, { "missing-field", "schema" }, { "bad-time", "schema" },
	{ "bad-enum", "schema" }, { "out-of-range", "schema" }, { "bad-op", "schema" },
};

const char *
kind_name(int k, const struct badkind *extra, const char **expect)
{
	const struct badkind *b = k < BK_COMMON ? &common_kinds[k] : &extra[k - BK_COMMON];
	*expect = b->expect;
	return b->kind;
}

void
bad_request(int k, struct dd_rng *r, const struct fields *fs, struct dd_buf *out,
    const char **detail)
{
	if (k < BK_COMMON) {
		bad_common(k, r, fs, out, detail);
		return;
	}
	static const struct {
		const char *path, *val;
	} wrong[] = {
		{ "pickup.lat", "\"47.61\"" }, { "package.weightKg", "\"14\"" },
		{ "expedited", "\"yes\"" }, { "requestId", "1234567890123456789" },
		{ "dropoff", "\"0,47.6,-122.3\"" }, { "package", "[]" },
	}, badtime[] = {
		{ "pickupTime", "\"2026-13-45T99:00:00Z\"" }, { "deadline", "\"yesterday\"" },
		{ "pickupTime", "\"2026-02-30T10:00:00Z\"" }, { "deadline", "\"26/11/2026 12:00\"" },
		{ "pickupTime", "\"2026-11-26T10:00:00\"" },
	}, badenum[] = {
		{ "package.size", "\"gigantic\"" }, { "confirmationRequired", "\"Retina\"" },
		{ "package.size", "\"Small \"" },
	}, range[] = {
		{ "pickup.lat", "123.4" }, { "dropoff.lon", "-200.5" },
		{ "package.weightKg", "-2.5" }, { "package.weightKg", "0" },
	};
	static const char *const missing[] = { "requestId", "ownerId", "pickup", "dropoff",
		"pickupTime", "deadline", "package" };
	static char det[96];
	size_t i;
	switch (k) {
	case RK_WRONGTYPE:
		i = (size_t)dd_rng_below(r, NELEM(wrong));
		fields_join(fs, out, NULL, wrong[i].path, wrong[i].val, strlen(wrong[i].val));
		snprintf(det, sizeof det, "%s is %s", wrong[i].path, wrong[i].val);
		break;
	case RK_MISSING:
		i = (size_t)dd_rng_below(r, NELEM(missing));
		fields_join(fs, out, missing[i], NULL, NULL, 0);
		snprintf(det, sizeof det, "no %s", missing[i]);
		break;
	case RK_BADTIME:
		i = (size_t)dd_rng_below(r, NELEM(badtime));
		fields_join(fs, out, NULL, badtime[i].path, badtime[i].val, strlen(badtime[i].val));
		snprintf(det, sizeof det, "%s is %s", badtime[i].path, badtime[i].val);
		break;
	case RK_BADENUM:
		i = (size_t)dd_rng_below(r, NELEM(badenum));
		fields_join(fs, out, NULL, badenum[i].path, badenum[i].val, strlen(badenum[i].val));
		snprintf(det, sizeof det, "%s is %s", badenum[i].path, badenum[i].val);
		break;
	case RK_RANGE:
		i = (size_t)dd_rng_below(r, NELEM(range));
		fields_join(fs, out, NULL, range[i].path, range[i].val, strlen(range[i].val));
		snprintf(det, sizeof det, "%s is %s", range[i].path, range[i].val);
		break;
	case RK_BADOP:
		if (dd_rng_below(r, 2)) {
			dd_buf_adds(out, "{\"op\":\"delete\",\"deliveryId\":\"d-1\"}");
			snprintf(det, sizeof det, "op is \"delete\"");
		} else {
			dd_buf_adds(out, "{\"op\":\"cancel\",\"reason\":\"customer-request\"}");
			snprintf(det, sizeof det, "a cancel naming no delivery");
		}
		break;
	}
	/* The detail quotes JSON; keep the manifest line valid JSON. */
	for (char *c = det; *c; c++)
		if (*c == '"')
			*c = '\'';
	*detail = det;
}

int
next_kind(struct dd_rng *r, uint64_t nbad, int nkinds, int *perm)
{
	if (nbad % (uint64_t)nkinds == 0) {
		for (int i = 0; i < nkinds; i++)
			perm[i] = i;
		for (int i = nkinds - 1; i > 0; i--) {
			int j = (int)dd_rng_below(r, (uint64_t)i + 1);
			int t = perm[i];
			perm[i] = perm[j];
			perm[j] = t;
		}
	}
	return perm[nbad % (uint64_t)nkinds];
}

const struct badkind event_kinds[EK_END - BK_COMMON] = {
	{ "missing-attribute", "missing" }, { "duplicate-attribute", "duplicate" },
	{ "bad-time", "time" }, { "bad-specversion", "specversion" },
	{ "id-not-string", "id" }, { "id-too-long", "id" },
	{ "data-not-object", "data" }, { "data-field-missing", "data" },
};

void
event_fields(struct fields *fs, uint64_t seed, uint64_t n, int64_t t, int scheduled)
{
	struct dd_buf v = { 0 };
	fs->n = 0;
	dd_buf_reset(&fs->text);
#define FV(key) fields_add(fs, key, v.p, v.len)
#define FS(key, lit) fields_add(fs, key, lit, sizeof(lit) - 1)
	FS("specversion", "\"1.0\"");
	dd_buf_reset(&v);
	dd_buf_adds(&v, "\"bad-");
	buf_u64(&v, seed);
	dd_buf_addc(&v, '-');
	buf_u64(&v, n);
	dd_buf_addc(&v, '"');
	FV("id");
	if (scheduled) {
		FS("source", "\"/dd-schedule\"");
		FS("type", "\"delivery.scheduled\"");
	} else {
		FS("source", "\"/drones/D-0000\"");
		FS("type", "\"drone.position\"");
	}
	dd_buf_reset(&v);
	buf_time(&v, t);
	FV("time");
	FS("subject", "\"d-bad\"");
	FS("datacontenttype", "\"application/json\"");
	dd_buf_reset(&v);
	if (scheduled) {
		/* Everything but the drone. */
		dd_buf_adds(&v, "{\"deliveryId\":\"d-bad\",\"requestId\":\"r-bad\",\"ownerId\":\"o-1\","
		    "\"pickup\":{\"lat\":47.61,\"lon\":-122.33,\"alt\":0},"
		    "\"dropoff\":{\"lat\":47.66,\"lon\":-122.3,\"alt\":0},\"pickupTime\":");
		buf_time(&v, t);
		dd_buf_adds(&v, ",\"deadline\":");
		buf_time(&v, t + 3600000);
		dd_buf_adds(&v, ",\"expedited\":false,\"confirmationRequired\":\"None\","
		    "\"package\":{\"packageId\":\"p-bad\",\"size\":\"small\",\"weightKg\":1.5,"
		    "\"tag\":\"books\"},\"pickupEta\":");
		buf_time(&v, t);
		dd_buf_adds(&v, ",\"dropoffEta\":");
		buf_time(&v, t + 1800000);
		dd_buf_addc(&v, '}');
	} else {
		dd_buf_adds(&v, "{\"droneId\":\"D-0000\",\"location\":{\"lat\":47.61,\"lon\":-122.33,"
		    "\"alt\":120.0},\"speedMps\":15.0,\"battery\":0.5}");
	}
	FV("data");
#undef FV
#undef FS
	dd_buf_free(&v);
}

void
bad_event(int k, struct dd_rng *r, const struct fields *fs, struct dd_buf *out,
    const char **detail)
{
	if (k < BK_COMMON) {
		bad_common(k, r, fs, out, detail);
		return;
	}
	static const char *const required[] = { "specversion", "id", "source", "type",
		"time", "data" };
	static const char *const badtimes[] = { "\"2026-13-45T99:00:00Z\"", "\"yesterday\"",
		"\"2026-11-26 25:00\"", "\"2026-02-30T10:00:00Z\"", "1795672800000", "\"\"" };
	static const char *const specs[] = { "\"0.3\"", "1.0", "\"2.0\"" };
	static const char *const datas[] = { "\"x\"", "[]", "null", "42" };
	static char det[96];
	size_t i;
	switch (k) {
	case EK_MISSING:
		i = (size_t)dd_rng_below(r, NELEM(required));
		fields_join(fs, out, required[i], NULL, NULL, 0);
		snprintf(det, sizeof det, "no %s", required[i]);
		break;
	case EK_DUP: {
		/* The id twice, with different values. */
		struct dd_buf g = { 0 };
		fields_join(fs, &g, NULL, NULL, NULL, 0);
		dd_buf_add(out, g.p, g.len - 1);
		dd_buf_adds(out, ",\"id\":\"another-id\"}");
		dd_buf_free(&g);
		snprintf(det, sizeof det, "id twice");
		break;
	}
	case EK_BADTIME:
		i = (size_t)dd_rng_below(r, NELEM(badtimes));
		fields_join(fs, out, NULL, "time", badtimes[i], strlen(badtimes[i]));
		snprintf(det, sizeof det, "time is %s", badtimes[i]);
		break;
	case EK_SPEC:
		i = (size_t)dd_rng_below(r, NELEM(specs));
		fields_join(fs, out, NULL, "specversion", specs[i], strlen(specs[i]));
		snprintf(det, sizeof det, "specversion is %s", specs[i]);
		break;
	case EK_IDNUM:
		fields_join(fs, out, NULL, "id", "12345678901234567890", 20);
		snprintf(det, sizeof det, "id is a number");
		break;
	case EK_IDLONG: {
		char longid[160];
		memset(longid, 'i', sizeof longid);
		longid[0] = '"';
		longid[sizeof longid - 1] = '"';
		fields_join(fs, out, NULL, "id", longid, sizeof longid);
		snprintf(det, sizeof det, "id of 158 bytes");
		break;
	}
	case EK_DATA:
		i = (size_t)dd_rng_below(r, NELEM(datas));
		fields_join(fs, out, NULL, "data", datas[i], strlen(datas[i]));
		snprintf(det, sizeof det, "data is %s", datas[i]);
		break;
	case EK_DATAFIELD:
		/* fs was built as a delivery.scheduled without droneId. */
		fields_join(fs, out, NULL, NULL, NULL, 0);
		snprintf(det, sizeof det, "delivery.scheduled without data.droneId");
		break;
	}
	for (char *c = det; *c; c++)
		if (*c == '"')
			*c = '\'';
	*detail = det;
}
