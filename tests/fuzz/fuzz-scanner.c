/* libFuzzer target: the envelope scanner (the validating one and the
 * structural one of stored lines) and the lookups over what it accepted. Anything goes in; nothing may crash, read out of bounds, or
 * accept a line that the strict validator refuses. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "json.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct dd_env e;
	size_t off;
	int valid = dd_json_validate(p, size, &off) == 0;
	/* The structural scan of stored lines: anything in, no crash; on a
	 * valid event, the very spans of the validating scan. */
	struct dd_env s;
	int stored = dd_env_scan_stored(p, size, &s);
	if (dd_env_scan(p, size, &e) == 0) {
		if (stored || s.time_ms != e.time_ms || s.id.p != e.id.p || s.id.n != e.id.n ||
		    s.data.p != e.data.p || s.data.n != e.data.n || s.ndata != e.ndata)
			abort();	/* the two scans disagree on a valid event */
		if (!valid)
			abort();	/* the scanner accepted invalid JSON */
		(void)dd_event_check_data(&e);
		char id[DD_ID_MAX + 1];
		(void)dd_env_str(&e.id, id, sizeof id);
		struct dd_jval v, k;
		struct dd_buf b = { 0 };
		static const char *const paths[] = { "data.location.lat", "data.a.0.b",
			"data.package.packageId", "subject", "data" };
		for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
			if (dd_json_path(&e.whole, paths[i], &v)) {
				dd_jval_text(&v, &b);
				double d;
				int64_t n;
				(void)dd_jnum_double(&v, &d);
				(void)dd_jnum_int64(&v, &n);
			}
		/* Lookups from the stored scan (data's objects gathered) find
		 * what a walk over the line finds. */
		static const char *const spaths[] = { "data.location.lat", "data.a.b",
			"data.a.b.c", "data.a.0", "data.x" };
		for (size_t i = 0; i < sizeof spaths / sizeof spaths[0]; i++) {
			struct dd_jval a, w;
			int ra = dd_env_path(&s, spaths[i], &a), rw = dd_json_path(&s.whole, spaths[i], &w);
			if (ra != rw || (ra == 1 && (a.type != w.type || a.p != w.p || a.n != w.n)))
				abort();
		}
		size_t pos = 0;
		while (dd_json_next(&e.data, &pos, &k, &v)) {
			dd_jstr_decode(&k, &b);
			dd_jval_text(&v, &b);
		}
		/* Decoded strings are valid UTF-8 when the input was. */
		dd_buf_reset(&b);
		dd_jstr_decode(&e.type, &b);
		if (b.len && !dd_utf8_valid(b.p, b.len))
			abort();
		dd_buf_free(&b);
	}
	return 0;
}
