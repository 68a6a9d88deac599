#include <csv.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "csvin.h"
#include "util.h"

/*
 * libcsv is fed one input line at a time, so the line where each row
 * starts is known, and the row's raw text (one or more lines, when a
 * quoted field holds a newline) can go into a reject record.
 */
struct reader {
	struct dd_csv_row row;
	int cap;
	struct dd_buf raw;
	dd_csv_cb cb;
	void *ctx;
	int stop;
	int ended;	/* a row ended inside the last csv_parse call */
};

static void
on_field(void *s, size_t len, void *data)
{
	struct reader *r = data;
	if (r->row.n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		r->row.f = dd_realloc(r->row.f, (size_t)r->cap * sizeof *r->row.f);
		r->row.len = dd_realloc(r->row.len, (size_t)r->cap * sizeof *r->row.len);
	}
	r->row.f[r->row.n] = dd_strndup(s ? s : "", s ? len : 0);
	r->row.len[r->row.n] = s ? len : 0;
	r->row.n++;
}

static void
clear_row(struct reader *r)
{
	for (int i = 0; i < r->row.n; i++)
		free(r->row.f[i]);
	r->row.n = 0;
}

static void
on_row(int c, void *data)
{
	struct reader *r = data;
	if (!r->stop) {
		r->row.raw = r->raw.p;
		r->row.rawlen = r->raw.len;
		while (r->row.rawlen && (r->raw.p[r->row.rawlen - 1] == '\n' ||
		    r->raw.p[r->row.rawlen - 1] == '\r'))
			r->row.rawlen--;
		r->row.error = NULL;
		r->stop = r->cb(r->ctx, &r->row);
	}
	clear_row(r);
	r->ended = 1;
}

int
dd_csv_read(FILE *f, dd_csv_cb cb, void *ctx)
{
	struct csv_parser p;
	struct reader r = { .cb = cb, .ctx = ctx };
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	uint64_t lineno = 0, off = 0;
	int rc = 0;

	if (csv_init(&p, CSV_STRICT | CSV_APPEND_NULL) != 0) {
		dd_seterr("csv: cannot initialise the parser");
		return -1;
	}
	while (!r.stop && (n = getline(&line, &cap, f)) > 0) {
		lineno++;
		if (r.raw.len == 0) {
			r.row.lineno = lineno;
			r.row.off = off;
		}
		off += (uint64_t)n;
		dd_buf_add(&r.raw, line, (size_t)n);
		r.ended = 0;
		if (csv_parse(&p, line, (size_t)n, on_field, on_row, &r) != (size_t)n) {
			/* Malformed quoting: report the row, start afresh on the
			 * next line. */
			r.row.raw = r.raw.p;
			r.row.rawlen = r.raw.len;
			while (r.row.rawlen && (r.raw.p[r.row.rawlen - 1] == '\n' ||
			    r.raw.p[r.row.rawlen - 1] == '\r'))
				r.row.rawlen--;
			r.row.error = csv_strerror(csv_error(&p));
			clear_row(&r);
			r.stop = cb(ctx, &r.row);
			csv_free(&p);
			csv_init(&p, CSV_STRICT | CSV_APPEND_NULL);
			r.ended = 1;
		}
		if (r.ended)
			dd_buf_reset(&r.raw);
	}
	if (ferror(f)) {
		dd_seterr("read: %s", strerror(errno));
		rc = -1;
	} else if (!r.stop) {
		if (csv_fini(&p, on_field, on_row, &r) != 0) {
			r.row.raw = r.raw.p;
			r.row.rawlen = r.raw.len;
			r.row.error = "unterminated quoted field";
			clear_row(&r);
			r.stop = cb(ctx, &r.row);
		}
	}
	if (rc == 0 && r.stop)
		rc = r.stop;
	clear_row(&r);
	free(r.row.f);
	free(r.row.len);
	free(line);
	dd_buf_free(&r.raw);
	csv_free(&p);
	return rc;
}
