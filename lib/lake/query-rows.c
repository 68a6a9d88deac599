/*
 * The rows of an aggregate answer: one per group, its key parts then its
 * aggregates, as JSON values; ordered by --sort (else by the keys) in
 * jq's order of values, cut by --limit, and written as NDJSON objects,
 * CSV, TSV, a table, or a bar chart of the first aggregate.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "json.h"
#include "query-int.h"

/* jq's order of values (null < false < true < numbers < strings <
 * arrays < objects). */
static int
rank(const struct dd_jval *v)
{
	switch (v->type) {
	case DD_JNULL: case DD_JNONE: return 1;
	case DD_JFALSE: return 2;
	case DD_JTRUE: return 3;
	case DD_JNUM: return 4;
	case DD_JSTR: return 5;
	case DD_JARR: return 6;
	default: return 7;
	}
}

static int
cmp_val(const struct dd_jval *a, const struct dd_jval *b)
{
	int ra = rank(a), rb = rank(b);
	if (ra != rb)
		return ra - rb;
	if (ra == 4) {
		double x = 0, y = 0;
		dd_jnum_double(a, &x);
		dd_jnum_double(b, &y);
		return (x > y) - (x < y);
	}
	if (ra == 5) {
		struct dd_buf x = { 0 }, y = { 0 };
		dd_jstr_decode(a, &x);
		dd_jstr_decode(b, &y);
		size_t m = x.len < y.len ? x.len : y.len;
		int c = m ? memcmp(x.p, y.p, m) : 0;
		if (c == 0)
			c = (x.len > y.len) - (x.len < y.len);
		dd_buf_free(&x);
		dd_buf_free(&y);
		return c;
	}
	if (ra == 6) {
		size_t pa = 0, pb = 0;
		struct dd_jval ea, eb;
		for (;;) {
			int ha = dd_json_next(a, &pa, NULL, &ea), hb = dd_json_next(b, &pb, NULL, &eb);
			if (!ha || !hb)
				return ha - hb;
			int c = cmp_val(&ea, &eb);
			if (c)
				return c;
		}
	}
	if (ra == 7) {
		size_t m = a->n < b->n ? a->n : b->n;
		int c = memcmp(a->p, b->p, m);
		return c ? c : (a->n > b->n) - (a->n < b->n);
	}
	return 0;
}

struct cell {
	size_t off, len;	/* its JSON text in the arena */
	struct dd_jval v;
};

static int
cmp_row(const void *x, const void *y, void *ctx)
{
	const struct dd_query *q = ctx;
	const struct cell *a = *(struct cell *const *)x, *b = *(struct cell *const *)y;
	for (int i = 0; i < q->nsort; i++) {
		int c = cmp_val(&a[q->sortcol[i]].v, &b[q->sortcol[i]].v);
		if (c)
			return q->sortdesc[i] ? -c : c;
	}
	/* Then by the keys, so that ties come in one order. */
	for (int i = 0; i < q->npaths; i++) {
		int c = cmp_val(&a[i].v, &b[i].v);
		if (c)
			return c;
	}
	return 0;
}

/* Display width in code points. */
static size_t
width(const char *s, size_t n)
{
	size_t w = 0;
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			w++;
	return w;
}

static int
chart_width(const struct dd_query *q, size_t lw, size_t cw)
{
	if (q->o.chart_width > 0)
		return q->o.chart_width;
	struct winsize ws;
	if (isatty(fileno(q->out)) && ioctl(fileno(q->out), TIOCGWINSZ, &ws) == 0 &&
	    ws.ws_col > 0) {
		long w = (long)ws.ws_col - (long)lw - (long)cw - 4;
		return w < 10 ? 10 : (int)w;
	}
	return 60;
}

/* A bar per row: its keys, the first aggregate's value and a bar in
 * proportion to it (negative and null values draw none). */
static void
write_chart(struct dd_query *q, struct cell **rows, size_t n, const char *arena)
{
	static const char *const eighths[] = { "", "\u258F", "\u258E", "\u258D", "\u258C",
	    "\u258B", "\u258A", "\u2589" };
	struct dd_buf *labels = dd_calloc(n ? n : 1, sizeof *labels);
	size_t lw = 0, cw = 1;
	double max = 0;
	int vc = q->npaths;	/* the first aggregate */
	for (size_t i = 0; i < n; i++) {
		for (int k = 0; k < q->npaths; k++) {
			if (k)
				dd_buf_addc(&labels[i], ' ');
			if (rows[i][k].v.type == DD_JNULL)
				dd_buf_adds(&labels[i], "null");
			else
				dd_jval_text(&rows[i][k].v, &labels[i]);
		}
		if (labels[i].p == NULL)
			dd_buf_adds(&labels[i], "");
		/* Controls would break the layout. */
		for (size_t k = 0; k < labels[i].len; k++)
			if ((unsigned char)labels[i].p[k] < 0x20)
				labels[i].p[k] = ' ';
		size_t w = width(labels[i].p, labels[i].len);
		if (w > lw)
			lw = w;
		if (rows[i][vc].len > cw)
			cw = rows[i][vc].len;
		double d = 0;
		if (rows[i][vc].v.type == DD_JNUM && dd_jnum_double(&rows[i][vc].v, &d) == 0 &&
		    d > max)
			max = d;
	}
	int bar = chart_width(q, lw, cw);
	for (size_t i = 0; i < n; i++) {
		fputs(labels[i].p, q->out);
		for (size_t k = width(labels[i].p, labels[i].len); k < lw + 2; k++)
			putc(' ', q->out);
		fprintf(q->out, "%*.*s ", (int)cw, (int)rows[i][vc].len, arena + rows[i][vc].off);
		double d = 0;
		if (rows[i][vc].v.type != DD_JNUM || dd_jnum_double(&rows[i][vc].v, &d) || d < 0)
			d = 0;
		/* In eighths of a column, so small differences still show. */
		uint64_t units = max > 0 ? (uint64_t)((long double)d * bar * 8 / max + 0.5) : 0;
		if (units == 0 && d > 0)
			units = 1;
		for (uint64_t k = 0; k < units / 8; k++)
			fputs("\u2588", q->out);
		fputs(eighths[units % 8], q->out);
		putc('\n', q->out);
		dd_buf_free(&labels[i]);
	}
	free(labels);
}

void
write_rows(struct dd_query *q)
{
	if (q->groups.n == 0 && q->npaths == 0)
		empty_group(q);		/* SQL: an aggregate without GROUP BY is one row */
	int nc = q->npaths + q->naggs;
	size_t n = q->groups.n;
	struct dd_buf arena = { 0 };
	struct cell *cells = dd_calloc(n * (size_t)nc + 1, sizeof *cells);
	struct cell **rows = dd_calloc(n + 1, sizeof *rows);
	size_t r = 0;
	for (size_t i = 0; i < q->groups.idx.cap; i++) {
		const struct sent *k = &q->groups.idx.v[i];
		if (!k->used)
			continue;
		struct cell *c = &cells[r * (size_t)nc];
		rows[r++] = c;
		struct dd_jval key = dd_json_value(q->groups.idx.arena.p + k->off, k->len), v;
		size_t pos = 0;
		for (int j = 0; j < q->npaths && dd_json_next(&key, &pos, NULL, &v); j++) {
			c[j].off = arena.len;
			if (v.type == DD_JSTR)
				dd_buf_addc(&arena, '"');
			dd_buf_add(&arena, v.p, v.n);
			if (v.type == DD_JSTR)
				dd_buf_addc(&arena, '"');
			c[j].len = arena.len - c[j].off;
		}
		for (int j = 0; j < q->naggs; j++) {
			struct cell *a = &c[q->npaths + j];
			a->off = arena.len;
			acc_value(&q->aggs[j], &q->groups.acc[k->n * (size_t)q->naggs + j], &arena);
			a->len = arena.len - a->off;
		}
	}
	/* The arena has stopped moving: the values can point into it. */
	for (size_t i = 0; i < n * (size_t)nc; i++)
		cells[i].v = dd_json_value(arena.p + cells[i].off, cells[i].len);
	qsort_r(rows, n, sizeof *rows, cmp_row, q);
	if (q->o.limit && n > q->o.limit)
		n = (size_t)q->o.limit;
	if (q->o.fmt == DD_FMT_CHART) {
		write_chart(q, rows, n, arena.p);
	} else if (q->o.fmt == DD_FMT_NDJSON) {
		struct dd_buf b = { 0 };
		for (size_t i = 0; i < n; i++) {
			dd_buf_reset(&b);
			dd_buf_addc(&b, '{');
			for (int j = 0; j < nc; j++) {
				if (j)
					dd_buf_addc(&b, ',');
				dd_buf_json_str(&b, q->colnames[j], strlen(q->colnames[j]));
				dd_buf_addc(&b, ':');
				dd_buf_add(&b, arena.p + rows[i][j].off, rows[i][j].len);
			}
			dd_buf_adds(&b, "}\n");
			fwrite(b.p, 1, b.len, q->out);
		}
		dd_buf_free(&b);
	} else {
		struct dd_out *t = dd_out_new(q->out, q->o.fmt, (const char *const *)q->colnames,
		    nc);
		struct dd_buf b = { 0 };
		for (size_t i = 0; i < n; i++) {
			for (int j = 0; j < nc; j++) {
				dd_buf_reset(&b);
				dd_jval_text(&rows[i][j].v, &b);
				dd_out_cell(t, b.p ? b.p : "", b.len);
			}
			dd_out_endrow(t);
		}
		dd_buf_free(&b);
		if (dd_out_finish(t))
			q->ioerr = 1;
	}
	free(rows);
	free(cells);
	dd_buf_free(&arena);
}
