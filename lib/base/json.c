/*
 * A validating JSON scanner that builds no tree. Validation is one pass
 * over the bytes with a character-class table; lookups re-walk validated
 * text with faster, non-validating skips.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "json.h"

/* Validation state. sub/subfn: the members of the top-level member named
 * sub are handed to subfn as they are validated (see dd_json_scan_object2). */
typedef int (*member_fn)(void *ctx, const struct dd_jval *k, const struct dd_jval *v);
struct scan {
	const unsigned char *s, *p, *e;
	int depth;
	const char *why;
	const char *sub;
	size_t sublen;
	member_fn subfn;
	void *subctx;
	int pending_sub;	/* the value being validated is sub's */
};

/* Bytes a string scan must stop at: quote, backslash, controls, non-ASCII. */
static unsigned char stop[256];
static void
init_stop(void)
{
	if (stop['"'])
		return;
	for (int c = 0; c < 0x20; c++)
		stop[c] = 1;
	for (int c = 0x80; c < 256; c++)
		stop[c] = 1;
	stop['\\'] = 1;
	stop['"'] = 1;
}

static int
fail(struct scan *sc, const char *why)
{
	if (sc->why == NULL)
		sc->why = why;
	return -1;
}

static inline void
ws(struct scan *sc)
{
	/* Compact JSON has none: one test decides (all four are <= ' '). */
	if (sc->p < sc->e && *sc->p > ' ')
		return;
	while (sc->p < sc->e && (*sc->p == ' ' || *sc->p == '\t' || *sc->p == '\n' ||
	    *sc->p == '\r'))
		sc->p++;
}

static int
hex4(const unsigned char *p, unsigned *u)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		unsigned c = p[i], d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			d = (c | 0x20) - 'a' + 10;
		else
			return -1;
		v = v << 4 | d;
	}
	*u = v;
	return 0;
}

/* At the opening quote; leaves p after the closing one. */
static int
str(struct scan *sc, int *esc)
{
	const unsigned char *p = sc->p + 1, *e = sc->e;
	*esc = 0;
	for (;;) {
		/* Many bytes at a time to the first that needs a look: a
		 * quote, backslash, control or non-ASCII byte. */
#ifdef __SSE2__
		/* Sixteen: a signed compare with 0x20 takes controls and
		 * non-ASCII bytes (negative) at once. */
		const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
		    space = _mm_set1_epi8(0x20);
		while (e - p >= 16) {
			__m128i w = _mm_loadu_si128((const __m128i *)(const void *)p);
			__m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(w, quote),
			    _mm_cmpeq_epi8(w, bslash)), _mm_cmplt_epi8(w, space));
			unsigned m = (unsigned)_mm_movemask_epi8(hit);
			if (m) {
				p += __builtin_ctz(m);
				break;
			}
			p += 16;
		}
#endif
		/* Eight (SWAR tests): a borrow can only mark bytes above a
		 * true hit, so the lowest marked byte is the first hit. */
		while (e - p >= 8) {
			uint64_t w;
			memcpy(&w, p, 8);
			const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
			uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
			uint64_t hit = (((q - ones) & ~q) | ((b - ones) & ~b) | (w - ones * 0x20) | w) & high;
			if (hit) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
				p += __builtin_ctzll(hit) / 8;
#endif
				break;
			}
			p += 8;
		}
		while (p < e && !stop[*p])
			p++;
		if (p >= e) {
			sc->p = p;
			return fail(sc, "unterminated string");
		}
		unsigned c = *p;
		if (c == '"') {
			sc->p = p + 1;
			return 0;
		}
		if (c == '\\') {
			*esc = 1;
			if (p + 1 >= e) {
				sc->p = p;
				return fail(sc, "unterminated string");
			}
			switch (p[1]) {
			case '"': case '\\': case '/': case 'b': case 'f':
			case 'n': case 'r': case 't':
				p += 2;
				break;
			case 'u': {
				unsigned u;
				if (e - p < 6 || hex4(p + 2, &u)) {
					sc->p = p;
					return fail(sc, "bad \\u escape");
				}
				/* A surrogate escape stands for nothing alone: a
				 * high one must be followed by a low one, or the
				 * decoded string would not be UTF-8 (and distinct
				 * strings would decode alike). */
				if (u >= 0xDC00 && u <= 0xDFFF) {
					sc->p = p;
					return fail(sc, "unpaired surrogate in \\u escape");
				}
				if (u >= 0xD800 && u <= 0xDBFF) {
					unsigned lo;
					if (e - p < 12 || p[6] != '\\' || p[7] != 'u' ||
					    hex4(p + 8, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
						sc->p = p;
						return fail(sc, "unpaired surrogate in \\u escape");
					}
					p += 6;
				}
				p += 6;
				break;
			}
			default:
				sc->p = p;
				return fail(sc, "bad escape in string");
			}
			continue;
		}
		if (c < 0x20) {
			sc->p = p;
			return fail(sc, "control character in string");
		}
		/* Non-ASCII: one whole, valid UTF-8 sequence. */
		size_t k;
		if (c >= 0xC2 && c <= 0xDF)
			k = 2;
		else if (c >= 0xE0 && c <= 0xEF)
			k = 3;
		else if (c >= 0xF0 && c <= 0xF4)
			k = 4;
		else
			k = 0;
		if (k == 0 || (size_t)(e - p) < k || !dd_utf8_valid((const char *)p, k)) {
			sc->p = p;
			return fail(sc, "invalid UTF-8");
		}
		p += k;
	}
}

static int
num(struct scan *sc)
{
	const unsigned char *p = sc->p, *e = sc->e;
	if (p < e && *p == '-')
		p++;
	if (p >= e || *p < '0' || *p > '9') {
		sc->p = p;
		return fail(sc, "bad number");
	}
	if (*p == '0')
		p++;
	else
		while (p < e && *p >= '0' && *p <= '9')
			p++;
	if (p < e && *p == '.') {
		p++;
		if (p >= e || *p < '0' || *p > '9') {
			sc->p = p;
			return fail(sc, "bad number");
		}
		while (p < e && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		if (p >= e || *p < '0' || *p > '9') {
			sc->p = p;
			return fail(sc, "bad number");
		}
		while (p < e && *p >= '0' && *p <= '9')
			p++;
	}
	sc->p = p;
	return 0;
}

static int
lit(struct scan *sc, const char *w, size_t n)
{
	if ((size_t)(sc->e - sc->p) < n || memcmp(sc->p, w, n) != 0)
		return fail(sc, "unexpected character");
	sc->p += n;
	return 0;
}

static int value(struct scan *sc, struct dd_jval *v);

/* Validate an object; member() (if any) sees each member of this level. */

static int
object(struct scan *sc, member_fn member, void *ctx)
{
	if (++sc->depth > DD_JSON_MAXDEPTH)
		return fail(sc, "nested too deeply");
	sc->p++;	/* '{' */
	ws(sc);
	if (sc->p < sc->e && *sc->p == '}') {
		sc->p++;
		sc->depth--;
		return 0;
	}
	for (;;) {
		struct dd_jval k, v;
		ws(sc);
		if (sc->p >= sc->e || *sc->p != '"')
			return fail(sc, sc->p >= sc->e ? "truncated JSON" :
			    "expected a string key");
		k.type = DD_JSTR;
		k.p = (const char *)sc->p + 1;
		if (str(sc, &k.esc))
			return -1;
		k.n = (size_t)((const char *)sc->p - 1 - k.p);
		ws(sc);
		if (sc->p >= sc->e || *sc->p != ':')
			return fail(sc, sc->p >= sc->e ? "truncated JSON" : "expected ':'");
		sc->p++;
		ws(sc);
		sc->pending_sub = sc->subfn && sc->depth == 1 && !k.esc && k.n == sc->sublen &&
		    memcmp(k.p, sc->sub, k.n) == 0;
		if (value(sc, &v))
			return -1;
		sc->pending_sub = 0;
		if (member && member(ctx, &k, &v))
			return fail(sc, NULL);
		ws(sc);
		if (sc->p >= sc->e)
			return fail(sc, "truncated JSON");
		if (*sc->p == ',') {
			sc->p++;
			continue;
		}
		if (*sc->p == '}') {
			sc->p++;
			sc->depth--;
			return 0;
		}
		return fail(sc, "expected ',' or '}'");
	}
}

static int
array(struct scan *sc)
{
	if (++sc->depth > DD_JSON_MAXDEPTH)
		return fail(sc, "nested too deeply");
	sc->p++;
	ws(sc);
	if (sc->p < sc->e && *sc->p == ']') {
		sc->p++;
		sc->depth--;
		return 0;
	}
	for (;;) {
		struct dd_jval v;
		ws(sc);
		if (value(sc, &v))
			return -1;
		ws(sc);
		if (sc->p >= sc->e)
			return fail(sc, "truncated JSON");
		if (*sc->p == ',') {
			sc->p++;
			continue;
		}
		if (*sc->p == ']') {
			sc->p++;
			sc->depth--;
			return 0;
		}
		return fail(sc, "expected ',' or ']'");
	}
}

static int
value(struct scan *sc, struct dd_jval *v)
{
	const unsigned char *start = sc->p;
	v->esc = 0;
	if (sc->p >= sc->e)
		return fail(sc, "truncated JSON");
	switch (*sc->p) {
	case '{': {
		v->type = DD_JOBJ;
		int sub = sc->pending_sub;
		sc->pending_sub = 0;
		if (object(sc, sub ? sc->subfn : NULL, sub ? sc->subctx : NULL))
			return -1;
		break;
	}
	case '[':
		v->type = DD_JARR;
		if (array(sc))
			return -1;
		break;
	case '"':
		v->type = DD_JSTR;
		if (str(sc, &v->esc))
			return -1;
		v->p = (const char *)start + 1;
		v->n = (size_t)(sc->p - start) - 2;
		return 0;
	case 't':
		v->type = DD_JTRUE;
		if (lit(sc, "true", 4))
			return -1;
		break;
	case 'f':
		v->type = DD_JFALSE;
		if (lit(sc, "false", 5))
			return -1;
		break;
	case 'n':
		v->type = DD_JNULL;
		if (lit(sc, "null", 4))
			return -1;
		break;
	default:
		v->type = DD_JNUM;
		if ((*sc->p < '0' || *sc->p > '9') && *sc->p != '-')
			return fail(sc, "unexpected character");
		if (num(sc))
			return -1;
	}
	v->p = (const char *)start;
	v->n = (size_t)(sc->p - start);
	return 0;
}

static int
finish(struct scan *sc, int rc, size_t *erroff)
{
	if (rc == 0) {
		ws(sc);
		if (sc->p != sc->e)
			rc = fail(sc, "trailing characters after JSON");
	}
	if (rc) {
		if (erroff)
			*erroff = (size_t)(sc->p - sc->s);
		if (sc->why)
			dd_seterr("invalid JSON at byte %zu: %s",
			    (size_t)(sc->p - sc->s) + 1, sc->why);
		return -1;
	}
	return 0;
}

int
dd_json_validate(const char *p, size_t n, size_t *erroff)
{
	struct scan sc = { (const unsigned char *)p, (const unsigned char *)p,
		(const unsigned char *)p + n, 0, NULL };
	struct dd_jval v;
	init_stop();
	ws(&sc);
	return finish(&sc, value(&sc, &v), erroff);
}

int
dd_json_scan_object(const char *p, size_t n, member_fn member, void *ctx)
{
	return dd_json_scan_object2(p, n, member, ctx, NULL, NULL);
}

int
dd_json_scan_object2(const char *p, size_t n, member_fn member, void *ctx,
    const char *sub, member_fn submember)
{
	struct scan sc = { (const unsigned char *)p, (const unsigned char *)p,
		(const unsigned char *)p + n, 0, NULL, sub, sub ? strlen(sub) : 0,
		submember, ctx, 0 };
	init_stop();
	ws(&sc);
	if (sc.p >= sc.e) {
		dd_seterr("empty line");
		return -1;
	}
	if (*sc.p != '{') {
		struct dd_jval v;
		if (finish(&sc, value(&sc, &v), NULL))
			return -1;
		dd_seterr("not a JSON object");
		return -1;
	}
	return finish(&sc, object(&sc, member, ctx), NULL);
}

/* ---- text validated before: the structure only ---- */

/* Lines that were validated when they were stored (the lake's own parts,
 * their bytes proved unchanged by checksums) and hold no backslash: a
 * string then ends at the next quote, so the scan is a memchr from quote
 * to quote. Bounds are checked all the same; what is not well formed
 * fails, and the caller asks the validating scan why. */
struct tscan {
	const char *p, *e;
};

/* After the whitespace at p: one test when there is none. */
static inline const char *
tskip(const char *p, const char *e)
{
	if (p < e && *p > ' ')
		return p;
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* The first quote in [p, e), or NULL: strings of stored lines hold no
 * escape, so this ends one. Inline and 16 bytes a step (most strings are
 * shorter): a memchr call costs more than the search for a short one. */
static inline const char *
tquote(const char *p, const char *e)
{
#ifdef __SSE2__
	const __m128i quote = _mm_set1_epi8('"');
	for (; e - p >= 16; p += 16) {
		__m128i w = _mm_loadu_si128((const __m128i *)(const void *)p);
		unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(w, quote));
		if (m)
			return p + __builtin_ctz(m);
	}
#endif
	for (; p < e; p++)
		if (*p == '"')
			return p;
	return NULL;
}

/* The first quote or bracket in [p, e), or e: what the skip of a nested
 * value stops at. '[' and ']' are '{' and '}' with bit 5 clear. */
static inline const char *
tstruct(const char *p, const char *e)
{
#ifdef __SSE2__
	const __m128i quote = _mm_set1_epi8('"'), b5 = _mm_set1_epi8(0x20),
	    open = _mm_set1_epi8('{'), close = _mm_set1_epi8('}');
	for (; e - p >= 16; p += 16) {
		__m128i w = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i l = _mm_or_si128(w, b5);
		unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(w, quote),
		    _mm_or_si128(_mm_cmpeq_epi8(l, open), _mm_cmpeq_epi8(l, close))));
		if (m)
			return p + __builtin_ctz(m);
	}
#endif
	for (; p < e; p++)
		if (*p == '"' || (*p | 0x20) == '{' || (*p | 0x20) == '}')
			return p;
	return e;
}

/* The bytes of a number (their order is not checked again). */
static const unsigned char numbyte[256] = {
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
	['7'] = 1, ['8'] = 1, ['9'] = 1, ['-'] = 1, ['+'] = 1, ['.'] = 1, ['e'] = 1,
	['E'] = 1,
};

/* At a value: fills v, leaves p after it; -1 when malformed. */
static inline int
tvalue(struct tscan *t, struct dd_jval *v)
{
	const char *s = t->p, *e = t->e;
	v->esc = 0;
	if (s >= e)
		return -1;
	switch (*s) {
	case '"': {
		const char *q = tquote(s + 1, e);
		if (q == NULL)
			return -1;
		v->type = DD_JSTR;
		v->p = s + 1;
		v->n = (size_t)(q - s - 1);
		t->p = q + 1;
		return 0;
	}
	case '{': case '[': {
		int depth = 0;
		const char *p = s;
		v->type = *s == '{' ? DD_JOBJ : DD_JARR;
		for (;;) {
			p = tstruct(p, e);
			if (p >= e)
				return -1;
			if (*p == '"') {
				p = tquote(p + 1, e);
				if (p == NULL)
					return -1;
			} else if ((*p | 0x20) == '{') {
				if (++depth > DD_JSON_MAXDEPTH)
					return -1;
			} else if (--depth == 0) {
				break;
			}
			p++;
		}
		t->p = p + 1;
		break;
	}
	case 't': case 'n':
		if (e - s < 4 || memcmp(s, *s == 't' ? "true" : "null", 4) != 0)
			return -1;
		v->type = *s == 't' ? DD_JTRUE : DD_JNULL;
		t->p = s + 4;
		break;
	case 'f':
		if (e - s < 5 || memcmp(s, "false", 5) != 0)
			return -1;
		v->type = DD_JFALSE;
		t->p = s + 5;
		break;
	default: {
		const char *p = s;
		while (p < e && numbyte[(unsigned char)*p])
			p++;
		if (p == s)
			return -1;
		v->type = DD_JNUM;
		t->p = p;
	}
	}
	v->p = s;
	v->n = (size_t)(t->p - s);
	return 0;
}

/* At '{': each member to fn (when not NULL), the members of the one
 * named sub to subfn, and the members of sub's members that are objects
 * to nestfn (before subfn has the object itself); leaves p after '}'.
 * nest: this object is sub, its object values go to nestfn. Keys,
 * strings and numbers, the members of nearly every line, are taken here
 * with the position in a local; the rest goes through tvalue. */
static int
tobject(struct tscan *t, member_fn fn, void *ctx, const char *sub, size_t sublen,
    member_fn subfn, member_fn nestfn, int nest)
{
	const char *p = tskip(t->p + 1, t->e), *e = t->e, *q;
	if (p < e && *p == '}') {
		t->p = p + 1;
		return 0;
	}
	for (;;) {
		struct dd_jval k, v;
		p = tskip(p, e);
		if (p >= e || *p != '"' || (q = tquote(p + 1, e)) == NULL)
			return -1;
		k = (struct dd_jval){ DD_JSTR, p + 1, (size_t)(q - p - 1), 0 };
		p = tskip(q + 1, e);
		if (p >= e || *p != ':')
			return -1;
		p = tskip(p + 1, e);
		if (p >= e)
			return -1;
		if (*p == '"') {
			if ((q = tquote(p + 1, e)) == NULL)
				return -1;
			v = (struct dd_jval){ DD_JSTR, p + 1, (size_t)(q - p - 1), 0 };
			p = q + 1;
		} else if ((*p >= '0' && *p <= '9') || *p == '-') {
			q = p + 1;
			while (q < e && numbyte[(unsigned char)*q])
				q++;
			v = (struct dd_jval){ DD_JNUM, p, (size_t)(q - p), 0 };
			p = q;
		} else if (subfn && *p == '{' && k.n == sublen && memcmp(k.p, sub, sublen) == 0) {
			t->p = p;
			if (tobject(t, subfn, ctx, NULL, 0, NULL, nestfn, nestfn != NULL))
				return -1;
			v = (struct dd_jval){ DD_JOBJ, p, (size_t)(t->p - p), 0 };
			p = t->p;
		} else if (nest && *p == '{') {
			t->p = p;
			if (tobject(t, nestfn, ctx, NULL, 0, NULL, NULL, 0))
				return -1;
			v = (struct dd_jval){ DD_JOBJ, p, (size_t)(t->p - p), 0 };
			p = t->p;
		} else {
			t->p = p;
			if (tvalue(t, &v))
				return -1;
			p = t->p;
		}
		if (fn && fn(ctx, &k, &v))
			return -1;
		p = tskip(p, e);
		if (p >= e)
			return -1;
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p == '}') {
			t->p = p + 1;
			return 0;
		}
		return -1;
	}
}

int
dd_json_scan_object3_stored(const char *p, size_t n, member_fn member, void *ctx,
    const char *sub, member_fn submember, member_fn nested)
{
	struct tscan t = { p, p + n };
	t.p = tskip(t.p, t.e);
	if (t.p >= t.e || *t.p != '{' ||
	    tobject(&t, member, ctx, sub, sub ? strlen(sub) : 0, submember, nested, 0)) {
		dd_seterr("not well formed");
		return -1;
	}
	t.p = tskip(t.p, t.e);
	if (t.p != t.e) {
		dd_seterr("not well formed");
		return -1;
	}
	return 0;
}

/* ---- lookups in validated text: no checks, just skipping ---- */

/* The first quote or backslash in [p, e), or e. */
static inline const char *
find_qb(const char *p, const char *e)
{
#ifdef __SSE2__
	const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
	for (; e - p >= 16; p += 16) {
		__m128i w = _mm_loadu_si128((const __m128i *)(const void *)p);
		unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(w, quote),
		    _mm_cmpeq_epi8(w, bslash)));
		if (m)
			return p + __builtin_ctz(m);
	}
#endif
	while (p < e && *p != '"' && *p != '\\')
		p++;
	return p;
}

static const char *
skip_str(const char *p, const char *e, int *esc)
{
	/* p after the opening quote; returns the closing quote (or e). An
	 * escape takes the byte after its backslash with it. */
	for (;;) {
		const char *q = find_qb(p, e);
		if (q >= e)
			return e;
		if (*q == '"')
			return q;
		*esc = 1;
		if (e - q < 2)
			return e;
		p = q + 2;
	}
}

static const char *
skip_ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* p at a value; fills v and returns the end of the value. */
static const char *
skip_val(const char *p, const char *e, struct dd_jval *v)
{
	const char *s = p;
	v->esc = 0;
	switch (*p) {
	case '"': {
		const char *q = skip_str(p + 1, e, &v->esc);
		v->type = DD_JSTR;
		v->p = p + 1;
		v->n = (size_t)(q - p - 1);
		return q < e ? q + 1 : e;
	}
	case '{': case '[': {
		int depth = 0;
		v->type = *p == '{' ? DD_JOBJ : DD_JARR;
		for (; p < e; p++) {
			if (*p == '"') {
				int esc;
				p = skip_str(p + 1, e, &esc);
			}
			else if (*p == '{' || *p == '[')
				depth++;
			else if ((*p == '}' || *p == ']') && --depth == 0) {
				p++;
				break;
			}
		}
		break;
	}
	case 't': v->type = DD_JTRUE; p += 4; break;
	case 'f': v->type = DD_JFALSE; p += 5; break;
	case 'n': v->type = DD_JNULL; p += 4; break;
	default:
		v->type = DD_JNUM;
		while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' &&
		    *p != '\t' && *p != '\n' && *p != '\r')
			p++;
	}
	v->p = s;
	v->n = (size_t)(p - s);
	return p;
}

struct dd_jval
dd_json_value(const char *p, size_t n)
{
	struct dd_jval v = { DD_JNONE, NULL, 0, 0 };
	const char *e = p + n;
	p = skip_ws(p, e);
	if (p < e)
		skip_val(p, e, &v);
	return v;
}

int
dd_json_next(const struct dd_jval *c, size_t *pos, struct dd_jval *key, struct dd_jval *val)
{
	if (c->type != DD_JOBJ && c->type != DD_JARR)
		return 0;
	const char *e = c->p + c->n - 1;	/* the closing bracket */
	const char *p = c->p + (*pos ? *pos : 1);
	p = skip_ws(p, e);
	if (p < e && *p == ',')
		p = skip_ws(p + 1, e);
	if (p >= e)
		return 0;
	if (c->type == DD_JOBJ) {
		struct dd_jval k;
		p = skip_val(p, e, &k);
		if (key)
			*key = k;
		p = skip_ws(p, e);
		p = skip_ws(p + 1, e);	/* ':' */
	} else if (key) {
		key->type = DD_JNONE;
	}
	p = skip_val(p, e, val);
	*pos = (size_t)(p - c->p);
	return 1;
}

int
dd_json_get(const struct dd_jval *obj, const char *key, size_t keylen, struct dd_jval *out)
{
	struct dd_jval k, v;
	size_t pos = 0;
	int found = 0;
	if (obj->type != DD_JOBJ)
		return 0;
	while (dd_json_next(obj, &pos, &k, &v)) {
		if (k.esc ? dd_jstr_eq(&k, key, keylen) :
		    (k.n == keylen && memcmp(k.p, key, keylen) == 0)) {
			*out = v;
			found = 1;	/* keep going: the last duplicate wins */
		}
	}
	return found;
}

int
dd_json_path(const struct dd_jval *obj, const char *path, struct dd_jval *out)
{
	struct dd_jval cur = *obj;
	const char *p = path;
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		struct dd_jval next;
		if (cur.type == DD_JARR) {
			char *end;
			errno = 0;
			unsigned long idx = strtoul(p, &end, 10);
			if (end != p + n || n == 0 || errno)
				return 0;
			size_t pos = 0;
			unsigned long i = 0;
			int ok = 0;
			while (dd_json_next(&cur, &pos, NULL, &next))
				if (i++ == idx) {
					ok = 1;
					break;
				}
			if (!ok)
				return 0;
		} else if (!dd_json_get(&cur, p, n, &next)) {
			return 0;
		}
		cur = next;
		if (!dot)
			break;
		p = dot + 1;
	}
	*out = cur;
	return 1;
}

static void
put_utf8(struct dd_buf *b, unsigned u)
{
	char c[4];
	if (u < 0x80) {
		dd_buf_addc(b, (char)u);
	} else if (u < 0x800) {
		c[0] = (char)(0xC0 | u >> 6);
		c[1] = (char)(0x80 | (u & 0x3F));
		dd_buf_add(b, c, 2);
	} else if (u < 0x10000) {
		c[0] = (char)(0xE0 | u >> 12);
		c[1] = (char)(0x80 | (u >> 6 & 0x3F));
		c[2] = (char)(0x80 | (u & 0x3F));
		dd_buf_add(b, c, 3);
	} else {
		c[0] = (char)(0xF0 | u >> 18);
		c[1] = (char)(0x80 | (u >> 12 & 0x3F));
		c[2] = (char)(0x80 | (u >> 6 & 0x3F));
		c[3] = (char)(0x80 | (u & 0x3F));
		dd_buf_add(b, c, 4);
	}
}

void
dd_jstr_decode(const struct dd_jval *v, struct dd_buf *b)
{
	const unsigned char *p = (const unsigned char *)v->p, *e = p + v->n;
	if (!v->esc) {
		dd_buf_add(b, v->p, v->n);
		return;
	}
	while (p < e) {
		const unsigned char *q = memchr(p, '\\', (size_t)(e - p));
		if (q == NULL)
			q = e;
		dd_buf_add(b, p, (size_t)(q - p));
		if (q >= e)
			break;
		p = q + 1;
		switch (*p++) {
		case 'b': dd_buf_addc(b, '\b'); break;
		case 'f': dd_buf_addc(b, '\f'); break;
		case 'n': dd_buf_addc(b, '\n'); break;
		case 'r': dd_buf_addc(b, '\r'); break;
		case 't': dd_buf_addc(b, '\t'); break;
		case 'u': {
			unsigned u = 0xFFFD, lo;
			if (e - p >= 4 && hex4(p, &u) == 0)
				p += 4;
			if (u >= 0xD800 && u <= 0xDBFF) {
				/* A high surrogate pairs with a following low one. */
				if (e - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
				    hex4(p + 2, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
					u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
					p += 6;
				} else {
					u = 0xFFFD;
				}
			} else if (u >= 0xDC00 && u <= 0xDFFF) {
				u = 0xFFFD;
			}
			put_utf8(b, u);
			break;
		}
		default: dd_buf_addc(b, (char)p[-1]);	/* " \ / */
		}
	}
}

const char *
dd_jstr_text(const struct dd_jval *v, struct dd_buf *b, size_t *n)
{
	if (v->type != DD_JSTR) {
		*n = 0;
		return NULL;
	}
	if (!v->esc) {
		*n = v->n;
		return v->p;
	}
	dd_buf_reset(b);
	dd_jstr_decode(v, b);
	*n = b->len;
	return b->p ? b->p : "";
}

int
dd_jstr_eq(const struct dd_jval *v, const char *s, size_t n)
{
	if (v->type != DD_JSTR)
		return 0;
	if (!v->esc)
		return v->n == n && memcmp(v->p, s, n) == 0;
	char tmp[256];
	struct dd_buf b = { 0 };
	if (v->n < sizeof tmp) {
		/* Decoding never lengthens a string: a stack buffer suffices. */
		b.p = tmp;
		b.cap = sizeof tmp;
	}
	dd_jstr_decode(v, &b);
	int eq = b.len == n && memcmp(b.p, s, n) == 0;
	if (b.p != tmp)
		dd_buf_free(&b);
	return eq;
}

/* Exact powers of ten as doubles (10^22 is the last one). */
static const double pow10[] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* Clinger's fast path: a number of at most 15 significant digits whose
 * decimal exponent is within 10^+-22 is one exact integer times or over
 * one exact power of ten, so one IEEE operation gives the correctly
 * rounded double, as strtod would (the usual case of sensor values,
 * which strtod's general algorithm costs a hundred times more). 0 with
 * *d, -1 when strtod must decide. */
static int
num_fast(const char *p, size_t n, double *d)
{
	const char *e = p + n;
	int neg = 0, digits = 0, scale = 0;
	uint64_t m = 0;
	if (p < e && *p == '-') {
		neg = 1;
		p++;
	}
	if (p >= e || *p < '0' || *p > '9')
		return -1;
	for (; p < e && *p >= '0' && *p <= '9'; p++) {
		if (m || *p != '0')
			digits++;
		m = m * 10 + (uint64_t)(*p - '0');
		if (digits > 15)
			return -1;
	}
	if (p < e && *p == '.') {
		for (p++; p < e && *p >= '0' && *p <= '9'; p++) {
			if (m || *p != '0')
				digits++;
			m = m * 10 + (uint64_t)(*p - '0');
			scale--;
			if (digits > 15)
				return -1;
		}
	}
	if (p != e)
		return -1;	/* an exponent: strtod */
	double x = (double)m;
	if (scale < -22)
		return -1;
	x = scale ? x / pow10[-scale] : x;
	*d = neg ? -x : x;
	return 0;
}

int
dd_jnum_double(const struct dd_jval *v, double *d)
{
	if (v->type == DD_JNUM && num_fast(v->p, v->n, d) == 0)
		return 0;
	char tmp[64], *end;
	if (v->type != DD_JNUM || v->n >= sizeof tmp)
		return -1;
	memcpy(tmp, v->p, v->n);
	tmp[v->n] = '\0';
	*d = strtod(tmp, &end);
	return *end == '\0' && isfinite(*d) ? 0 : -1;
}

int
dd_jnum_int64(const struct dd_jval *v, int64_t *i)
{
	char tmp[32], *end;
	if (v->type != DD_JNUM || v->n >= sizeof tmp)
		return -1;
	memcpy(tmp, v->p, v->n);
	tmp[v->n] = '\0';
	errno = 0;
	long long x = strtoll(tmp, &end, 10);
	if (*end || errno)
		return -1;
	*i = x;
	return 0;
}

void
dd_jval_text(const struct dd_jval *v, struct dd_buf *b)
{
	switch (v->type) {
	case DD_JNONE:
	case DD_JNULL:
		break;
	case DD_JSTR:
		dd_jstr_decode(v, b);
		break;
	default:
		dd_buf_add(b, v->p, v->n);
	}
}
