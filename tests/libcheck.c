/*
 * dd-libcheck: drives the library pieces from the shell, so tests/lib.bats
 * can state its cases as tables (input, expected output).
 *
 *   scan            each stdin line through dd_env_scan + dd_event_check_data
 *   validate        each stdin line through dd_json_validate
 *   hash            dd_hash64 of each stdin line, hex
 *   count           scan every stdin line as an event, print the number
 *                   accepted and rejected (for the scanner benchmark)
 *   get PATH...     each stdin line: the value at each dotted path
 *   time STR...     dd_time_parse, printed as ms and formatted back
 *   arg NOW STR...  dd_time_arg relative to NOW (ms)
 *   duration STR... dd_duration_parse
 *   lines MAXLINE   dd_lines_next over stdin: lineno offset length toolong
 *   reject FILE     every stdin line rejected into FILE with reason "test"
 *   csv             rows of stdin through dd_csv_read
 *   out FMT         stdin lines of tab-separated cells through dd_out
 *   jqfast PROG...  "fast" when dd_jqf decides PROG without libjq, else "jq"
 *   order           stdin events in the one order of order.h: "rank id" each
 *   envpath PATH... each stdin event: dd_env_path (the scan's members) and
 *                   dd_json_path (a walk) at each path, "same" or both shown
 *   stored          each stdin line through dd_env_scan_stored and
 *                   dd_env_scan: "same" when both give the same attributes
 *                   and data members (or the same reason), else both
 *   numbers N SEED  N random JSON numbers of every shape: dd_jnum_double
 *                   against strtod, bit for bit; the mismatches, then "ok"
 *   ktop KEY        dd_kjson_top_str: each stdin line's top-level string KEY
 */
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csvin.h"
#include "ddtime.h"
#include "event.h"
#include "exitcodes.h"
#include "jqf.h"
#include "kafka-int.h"
#include "line.h"
#include "order.h"
#include "out.h"
#include "reject.h"

static int
csv_row(void *ctx, const struct dd_csv_row *r)
{
	if (r->error) {
		printf("%" PRIu64 ": error: %s\n", r->lineno, r->error);
		return 0;
	}
	printf("%" PRIu64 ":", r->lineno);
	for (int i = 0; i < r->n; i++)
		printf(" [%s]", r->f[i]);
	printf("\n");
	return 0;
}

int
main(int argc, char **argv)
{
	dd_prog = "dd-libcheck";
	if (argc < 2)
		return DD_EXIT_USAGE;
	const char *cmd = argv[1];
	struct dd_lines *in = dd_lines_open(0, "stdin", strcmp(cmd, "lines") == 0 && argc > 2 ?
	    (size_t)atoll(argv[2]) : DD_MAX_LINE_DEFAULT);
	struct dd_line l;
	struct dd_buf b = { 0 };
	int rc = 0;

	if (strcmp(cmd, "scan") == 0) {
		while (dd_lines_next(in, &l, -1) == DD_LINES_OK) {
			struct dd_env e;
			if (dd_env_scan(l.p, l.n, &e) || dd_event_check_data(&e)) {
				printf("reject: %s\n", dd_errmsg());
				continue;
			}
			char id[DD_ID_MAX + 1], tm[DD_TIMEBUF];
			dd_env_str(&e.id, id, sizeof id);
			dd_time_format(e.time_ms, tm);
			dd_buf_reset(&b);
			dd_jval_text(&e.subject, &b);
			printf("ok id=%s type=%.*s time=%s subject=%s\n", id, (int)e.type.n,
			    e.type.p, tm, b.p ? b.p : "");
		}
	} else if (strcmp(cmd, "envpath") == 0 || strcmp(cmd, "envpath-stored") == 0) {
		/* envpath-stored: the scan of stored lines, which gathers the
		 * members of data's objects too. */
		int stored = strcmp(cmd, "envpath-stored") == 0;
		while (dd_lines_next(in, &l, -1) == DD_LINES_OK) {
			struct dd_env e;
			if (stored ? dd_env_scan_stored(l.p, l.n, &e) : dd_env_scan(l.p, l.n, &e)) {
				printf("reject: %s\n", dd_errmsg());
				continue;
			}
			for (int i = 2; i < argc; i++) {
				struct dd_jval a, w;
				int ra = dd_env_path(&e, argv[i], &a), rw = dd_json_path(&e.whole, argv[i], &w);
				struct dd_buf ta = { 0 }, tw = { 0 };
				if (ra == 1)
					dd_buf_add(&ta, a.p, a.n);
				if (rw == 1)
					dd_buf_add(&tw, w.p, w.n);
				if (ra == rw && ta.len == tw.len && (ta.len == 0 || memcmp(ta.p, tw.p, ta.len) == 0))
					printf("%s%s=%.*s", i > 2 ? " " : "", argv[i], (int)ta.len, ta.p ? ta.p : "");
				else if (ra < 0)
					printf("%s%s:walk", i > 2 ? " " : "", argv[i]);
				else {
					printf("%s%s:DIFFER(%d %.*s | %d %.*s)", i > 2 ? " " : "", argv[i], ra,
					    (int)ta.len, ta.p ? ta.p : "", rw, (int)tw.len, tw.p ? tw.p : "");
					rc = 1;
				}
				dd_buf_free(&ta);
				dd_buf_free(&tw);
			}
			printf("\n");
		}
	} else if (strcmp(cmd, "stored") == 0) {
		while (dd_lines_next(in, &l, -1) == DD_LINES_OK) {
			struct dd_env a, w;
			char why[256] = "";
			int ra = dd_env_scan_stored(l.p, l.n, &a);
			if (ra)
				snprintf(why, sizeof why, "%s", dd_errmsg());
			int rw = dd_env_scan(l.p, l.n, &w);
			if (ra || rw) {
				if (ra && rw && strcmp(why, dd_errmsg()) == 0)
					printf("same: %s\n", why);
				else
					printf("differ: stored %s, validated %s\n", ra ? why : "ok",
					    rw ? dd_errmsg() : "ok");
				continue;
			}
			/* Every attribute and data member: the same spans. */
			const struct dd_jval *va = &a.whole, *vw = &w.whole;
			int same = a.time_ms == w.time_ms && a.ndata == w.ndata;
			for (size_t k = 0; same && k <= offsetof(struct dd_env, dataschema) / sizeof *va; k++)
				same = va[k].type == vw[k].type && va[k].p == vw[k].p &&
				    va[k].n == vw[k].n && va[k].esc == vw[k].esc;
			for (int k = 0; same && k < a.ndata; k++)
				same = a.dm[k].key.p == w.dm[k].key.p && a.dm[k].key.n == w.dm[k].key.n &&
				    a.dm[k].val.type == w.dm[k].val.type &&
				    a.dm[k].val.p == w.dm[k].val.p && a.dm[k].val.n == w.dm[k].val.n;
			printf(same ? "same\n" : "differ\n");
			rc |= !same;
		}
	} else if (strcmp(cmd, "numbers") == 0 && argc > 3) {
		long n = atol(argv[2]), bad = 0;
		srand48(atol(argv[3]));
		char t[80];
		for (long i = 0; i < n; i++) {
			/* Integer digits, fraction digits (leading zeros too), an
			 * exponent now and then: the fast path's edges and beyond. */
			int k = 0, id = (int)(lrand48() % 19), fd = (int)(lrand48() % 25);
			if (lrand48() % 2)
				t[k++] = '-';
			if (id == 0 || lrand48() % 4 == 0) {
				t[k++] = '0';
			} else {
				t[k++] = (char)('1' + lrand48() % 9);
				for (int j = 1; j < id; j++)
					t[k++] = (char)('0' + lrand48() % 10);
			}
			if (fd) {
				t[k++] = '.';
				int zeros = (int)(lrand48() % 4 == 0 ? lrand48() % 20 : 0);
				for (int j = 0; j < fd; j++)
					t[k++] = (char)(j < zeros ? '0' : '0' + lrand48() % 10);
			}
			if (lrand48() % 10 == 0)
				k += snprintf(t + k, sizeof t - (size_t)k, "e%ld", lrand48() % 40 - 20);
			t[k] = '\0';
			struct dd_jval v = { DD_JNUM, t, (size_t)k, 0 };
			double got, want = strtod(t, NULL);
			if (dd_jnum_double(&v, &got) || memcmp(&got, &want, sizeof got) != 0) {
				printf("%s: %.17g, strtod %.17g\n", t, got, want);
				bad++;
			}
		}
		printf(bad ? "%ld differ\n" : "ok\n", bad);
		rc = bad != 0;
	} else if (strcmp(cmd, "jqfast") == 0) {
		for (int i = 2; i < argc; i++) {
			struct dd_jqf *f = dd_jqf_new(argv[i], NULL, NULL, 0);
			printf("%s\n", f == NULL ? "bad" : dd_jqf_fast(f) ? "fast" : "jq");
			dd_jqf_free(f);
		}
	} else if (strcmp(cmd, "order") == 0) {
		struct dd_olist ol = { 0 };
		while (dd_lines_next(in, &l, -1) == DD_LINES_OK)
			if (dd_olist_add(&ol, l.p, l.n))
				printf("reject: %s\n", dd_errmsg());
		dd_olist_sort(&ol);
		for (size_t i = 0; i < ol.n; i++)
			printf("%d %.*s\n", ol.v[i].rank, (int)ol.v[i].idlen, ol.arena.p + ol.v[i].idoff);
		dd_olist_free(&ol);
	} else if (strcmp(cmd, "ktop") == 0 && argc > 2) {
		while (dd_lines_next(in, &l, -1) == DD_LINES_OK) {
			const char *v;
			size_t vn;
			if (dd_kjson_top_str(l.p, l.n, argv[2], &v, &vn) == 1)
				printf("[%.*s]\n", (int)vn, v);
			else
				printf("none\n");
		}
	} else if (strcmp(cmd, "count") == 0) {
		uint64_t ok = 0, bad = 0;
		while (dd_lines_next(in, &l, -1) == DD_LINES_OK) {
			struct dd_env e;
			if (dd_env_scan(l.p, l.n, &e) == 0)
				ok++;
			else
				bad++;
		}
		printf("%" PRIu64 " %" PRIu64 "\n", ok, bad);
	} else if (strcmp(cmd, "validate") == 0) {
		while (dd_lines_next(in, &l, -1) == DD_LINES_OK) {
			size_t off;
			if (dd_json_validate(l.p, l.n, &off))
				printf("invalid: %s\n", dd_errmsg());
			else
				printf("valid\n");
		}
	} else if (strcmp(cmd, "hash") == 0) {
		while (dd_lines_next(in, &l, -1) == DD_LINES_OK)
			printf("%016" PRIx64 "\n", dd_hash64(l.p, l.n));
	} else if (strcmp(cmd, "get") == 0) {
		while (dd_lines_next(in, &l, -1) == DD_LINES_OK) {
			struct dd_jval obj = dd_json_value(l.p, l.n), v;
			for (int i = 2; i < argc; i++) {
				if (!dd_json_path(&obj, argv[i], &v)) {
					printf("%s%s", i > 2 ? " " : "", "(absent)");
					continue;
				}
				dd_buf_reset(&b);
				dd_jval_text(&v, &b);
				printf("%s%s", i > 2 ? " " : "", b.p ? b.p : "");
			}
			printf("\n");
		}
	} else if (strcmp(cmd, "time") == 0) {
		for (int i = 2; i < argc; i++) {
			int64_t ms;
			char tm[DD_TIMEBUF];
			if (dd_time_parse(argv[i], strlen(argv[i]), &ms)) {
				printf("bad\n");
				rc = 1;
				continue;
			}
			dd_time_format(ms, tm);
			printf("%" PRId64 " %s\n", ms, tm);
		}
	} else if (strcmp(cmd, "arg") == 0 && argc > 2) {
		int64_t now = atoll(argv[2]), ms;
		for (int i = 3; i < argc; i++) {
			char tm[DD_TIMEBUF];
			if (dd_time_arg(argv[i], now, &ms)) {
				printf("bad: %s\n", dd_errmsg());
				rc = 1;
				continue;
			}
			dd_time_format(ms, tm);
			printf("%s\n", tm);
		}
	} else if (strcmp(cmd, "duration") == 0) {
		for (int i = 2; i < argc; i++) {
			int64_t ms;
			if (dd_duration_parse(argv[i], &ms)) {
				printf("bad\n");
				rc = 1;
			} else {
				printf("%" PRId64 "\n", ms);
			}
		}
	} else if (strcmp(cmd, "lines") == 0) {
		while (dd_lines_next(in, &l, -1) == DD_LINES_OK)
			printf("%" PRIu64 " %" PRIu64 " %zu %" PRIu64 " %d\n", l.lineno, l.off,
			    l.n, l.fulllen, l.toolong);
	} else if (strcmp(cmd, "reject") == 0 && argc > 2) {
		struct dd_rejects *r = dd_rejects_open(argv[2]);
		if (r == NULL)
			return DD_EXIT_IO;
		while (dd_lines_next(in, &l, -1) == DD_LINES_OK)
			dd_reject(r, "stdin", &l, "test");
		rc = dd_rejects_close(r) ? DD_EXIT_IO : 0;
	} else if (strcmp(cmd, "csv") == 0) {
		rc = dd_csv_read(stdin, csv_row, NULL) ? 1 : 0;
	} else if (strcmp(cmd, "out") == 0 && argc > 2) {
		enum dd_fmt f;
		if (dd_fmt_parse(argv[2], 0xF, &f))
			return DD_EXIT_USAGE;
		struct dd_out *o = NULL;
		while (dd_lines_next(in, &l, -1) == DD_LINES_OK) {
			const char *cols[16];
			size_t lens[16];
			int n = 0;
			char *s = l.p, *e = l.p + l.n;
			while (n < 16) {
				char *t = memchr(s, '\t', (size_t)(e - s));
				cols[n] = s;
				lens[n++] = (size_t)((t ? t : e) - s);
				if (!t)
					break;
				s = t + 1;
			}
			if (o == NULL) {
				char *names[16];
				for (int i = 0; i < n; i++)
					names[i] = strndup(cols[i], lens[i]);
				o = dd_out_new(stdout, f, (const char *const *)names, n);
				for (int i = 0; i < n; i++)
					free(names[i]);
				continue;
			}
			for (int i = 0; i < n; i++) {
				/* "\n" in the input stands for a newline in the cell */
				struct dd_buf c = { 0 };
				for (size_t k = 0; k < lens[i]; k++) {
					if (cols[i][k] == '\\' && k + 1 < lens[i] && cols[i][k + 1] == 'n') {
						dd_buf_addc(&c, '\n');
						k++;
					} else {
						dd_buf_addc(&c, cols[i][k]);
					}
				}
				dd_out_cell(o, c.p ? c.p : "", c.len);
				dd_buf_free(&c);
			}
			dd_out_endrow(o);
		}
		if (o)
			rc = dd_out_finish(o) ? DD_EXIT_IO : 0;
	} else {
		rc = DD_EXIT_USAGE;
	}
	dd_buf_free(&b);
	dd_lines_free(in);
	return rc;
}
