/*
 * The CloudEvents 1.0 envelope of SPEC.md, scanned from one line without
 * building a tree, and the data checks of the toolkit's own event types.
 */
#ifndef DD_EVENT_H
#define DD_EVENT_H

#include <stddef.h>
#include <stdint.h>
#include "json.h"

#define DD_ID_MAX 128
#define DD_ENV_DATA_MAX 16
#define DD_ENV_SUB_MAX 32

struct dd_env {
	struct dd_jval whole;	/* the object itself */
	struct dd_jval specversion, id, source, type, time, subject;
	struct dd_jval datacontenttype, data, traceparent, dataschema;
	int64_t time_ms;	/* time in UTC epoch ms */
	/* The members of data's objects (data.location.lat), gathered by
	 * the scan of stored lines (nest set): nsub of them so far, smark
	 * where those of the object being scanned begin, sover when they
	 * did not fit in sm. */
	int nest, nsub, smark, sover;
	/* data's members, gathered while the line was validated, so checks
	 * need no second walk; ndata < 0 when there were more than
	 * DD_ENV_DATA_MAX (then walk data itself). Last of what a scan
	 * clears: what follows is only read where ndata and nsub say. */
	int ndata;
	struct dd_jmember {
		struct dd_jval key, val;
	} dm[DD_ENV_DATA_MAX];
	/* Of dm[i] an object: its members are sm[sfirst[i] ...] (scount[i]
	 * of them), or sfirst[i] < 0 when they were not gathered. */
	signed char sfirst[DD_ENV_DATA_MAX];
	unsigned char scount[DD_ENV_DATA_MAX];
	struct dd_jmember sm[DD_ENV_SUB_MAX];
};

/*
 * Scan one line as an event: it must be one valid JSON object with the
 * required attributes of SPEC.md (specversion "1.0", id a string of 1-128
 * bytes, source and type non-empty strings, time an RFC 3339 string, data
 * an object; subject a string when present). A repeated envelope
 * attribute is rejected (which of two ids would de-duplication use?).
 * Returns 0, or -1 with the reason in dd_errmsg(), worded for the reject
 * line: missing "time", bad "time": ..., not a JSON object, ...
 */
int dd_env_scan(const char *p, size_t n, struct dd_env *e);
/*
 * The same for a line validated when it was stored, whose bytes are
 * proved unchanged (the lake's own parts, see dd_lake_part_stored): its
 * structure is followed without checking strings, numbers and UTF-8
 * again. A line with a backslash, or one that does not come out as an
 * event, goes through dd_env_scan, so a bad line is still told why.
 */
int dd_env_scan_stored(const char *p, size_t n, struct dd_env *e);

/*
 * Check data against the schema of the toolkit's own type e->type (the
 * version, the required fields and their JSON types, the enums of sizes,
 * confirmations and stages, data/schemas/). Unknown types pass.
 * Returns 0, or -1 with the reason in dd_errmsg().
 */
int dd_event_check_data(const struct dd_env *e);

/*
 * The major version of e's data schema (SPEC.md "Schema evolution"):
 * dataschema "urn:dd:schema:TYPE:MAJOR" names it, absent means 1. Every
 * type of the toolkit is at major version DD_SCHEMA_MAJOR here. For one
 * of those types, 0 when this build reads the version named, else -1
 * with the reason in dd_errmsg() (worded for a reject line); other types
 * pass. dd_event_check_data() checks it first; the fast paths that skip
 * that call this.
 */
#define DD_SCHEMA_MAJOR 1
int dd_event_check_version(const struct dd_env *e);
/* Is e's type one of the toolkit's own (those of data/schemas/)? */
int dd_event_type_known(const struct dd_env *e);

/*
 * A member of data, key[0..n), as the scan gathered it (no walk over
 * data unless it had more than DD_ENV_DATA_MAX members or an escaped
 * key): 1 with *out (the last of duplicate keys, as jq), 0 when absent.
 */
int dd_env_data_get(const struct dd_env *e, const char *key, size_t n, struct dd_jval *out);
/*
 * A member of obj, a value dd_env_data_get returned (data.location), by
 * the scan's gathering when it has the object's members, else by a walk
 * over obj (dd_json_get): 1 with *out, 0 when absent.
 */
int dd_env_sub_get(const struct dd_env *e, const struct dd_jval *obj, const char *key,
    size_t n, struct dd_jval *out);
/*
 * A dotted path into the event (as dd_json_path) taken from the scan: an
 * envelope attribute, a member of data, then the rest walked. 1 with
 * *out, 0 when absent, -1 when path does not start with an attribute
 * (walk the whole line).
 */
int dd_env_path(const struct dd_env *e, const char *path, struct dd_jval *out);
/* Compare the type with a literal: dd_env_type_is(e, "drone.position"). */
int dd_env_type_is(const struct dd_env *e, const char *type);
/* True when the type starts with prefix ("delivery.", "drone."). */
int dd_env_type_has_prefix(const struct dd_env *e, const char *prefix);

/* The id or subject decoded to a NUL-terminated string in buf (ids are
 * at most 128 bytes, but subjects come from input; truncation is an error).
 * Returns the length, or -1 when absent or too long. */
int dd_env_str(const struct dd_jval *v, char *buf, size_t bufsz);

#endif
