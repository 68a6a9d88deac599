/*
 * A fast JSON scanner for one line: validates strictly (RFC 8259 and
 * UTF-8) without building a tree, and finds members by key. Values are
 * spans into the caller's text, so nothing is copied or re-serialised:
 * numbers stay as their text (ids beyond 2^53 survive), strings are
 * decoded only when asked.
 */
#ifndef DD_JSON_H
#define DD_JSON_H

#include <stddef.h>
#include <stdint.h>
#include "util.h"

enum dd_jtype {
	DD_JNONE = 0,		/* absent */
	DD_JNULL, DD_JFALSE, DD_JTRUE, DD_JNUM, DD_JSTR, DD_JARR, DD_JOBJ,
};

struct dd_jval {
	enum dd_jtype type;
	const char *p;		/* strings: the bytes between the quotes, still escaped;
				 * others: the whole token ('{' to '}' for objects) */
	size_t n;
	int esc;		/* a string holding a backslash escape */
};

/* Maximum nesting accepted by the validator. */
#define DD_JSON_MAXDEPTH 256

/*
 * Validate that p[0..n) is exactly one JSON value, whitespace around it
 * allowed. Returns 0, or -1 with a short reason in dd_errmsg() and the
 * byte offset of the fault in *erroff (when not NULL).
 */
int dd_json_validate(const char *p, size_t n, size_t *erroff);

/*
 * Look key up among the members of the object v (which must be valid
 * JSON, as after dd_json_validate). The last of duplicate keys wins, as in
 * jq. Returns 1 and fills out when found, 0 when not.
 */
int dd_json_get(const struct dd_jval *obj, const char *key, size_t keylen,
    struct dd_jval *out);
/* A dotted path: "data.location.lat"; array elements by number "a.0". */
int dd_json_path(const struct dd_jval *obj, const char *path, struct dd_jval *out);
/*
 * Validate p[0..n) as one JSON object and call member() for each of its
 * top-level members, in order. Returns 0; -1 with dd_errmsg() when the
 * text is not valid JSON or not an object ("not a JSON object"), or when
 * member() returned non-zero (member() sets dd_errmsg() itself).
 */
int dd_json_scan_object(const char *p, size_t n,
    int (*member)(void *ctx, const struct dd_jval *key, const struct dd_jval *val),
    void *ctx);
/*
 * The same, and the members of the top-level member named sub, when it is
 * an object, go to submember() (same ctx) as they are validated: one pass
 * gives a consumer the envelope and the fields of data.
 */
int dd_json_scan_object2(const char *p, size_t n,
    int (*member)(void *ctx, const struct dd_jval *key, const struct dd_jval *val),
    void *ctx, const char *sub,
    int (*submember)(void *ctx, const struct dd_jval *key, const struct dd_jval *val));
/*
 * The same for text validated before and holding no backslash (lines of
 * the lake's own parts: checked when stored, their bytes proved unchanged
 * by checksums): the structure is followed, nothing else is checked, so
 * it costs a search from quote to quote. -1 ("not well formed") when the
 * structure is broken; dd_json_scan_object2 then tells why. And, when
 * nested is not NULL, the members of sub's members that are objects go
 * to nested() (same ctx) as they are found, before submember() has the
 * object itself: data.location's lat and lon in the one pass.
 */
int dd_json_scan_object3_stored(const char *p, size_t n,
    int (*member)(void *ctx, const struct dd_jval *key, const struct dd_jval *val),
    void *ctx, const char *sub,
    int (*submember)(void *ctx, const struct dd_jval *key, const struct dd_jval *val),
    int (*nested)(void *ctx, const struct dd_jval *key, const struct dd_jval *val));
/* Wrap a whole validated text as a value (type from its first byte). */
struct dd_jval dd_json_value(const char *p, size_t n);

/*
 * Iterate over an object's members or an array's elements: start with
 * *pos = 0; returns 1 with the next key (objects) and value, 0 at the end.
 */
int dd_json_next(const struct dd_jval *v, size_t *pos, struct dd_jval *key,
    struct dd_jval *val);

/*
 * The decoded bytes of a string value: in place when it has no escape
 * (the usual case, no copy), else decoded into b (reset first). NULL with
 * *n = 0 when v is not a string.
 */
const char *dd_jstr_text(const struct dd_jval *v, struct dd_buf *b, size_t *n);
/* Decode a string value (escapes resolved) into b (appended). */
void dd_jstr_decode(const struct dd_jval *v, struct dd_buf *b);
/* Compare a string value with s, decoding escapes on the fly; 1 if equal. */
int dd_jstr_eq(const struct dd_jval *v, const char *s, size_t n);
/* Numbers: 0 ok, -1 when v is not a number (or out of range for int). */
int dd_jnum_double(const struct dd_jval *v, double *d);
int dd_jnum_int64(const struct dd_jval *v, int64_t *i);

/*
 * The text of v for output in a CSV/TSV cell or a table: strings decoded,
 * null empty, everything else its JSON text. Appended to b.
 */
void dd_jval_text(const struct dd_jval *v, struct dd_buf *b);

#endif
