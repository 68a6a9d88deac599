#include <csv.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "out.h"
#include "util.h"

/* A table cell wider than this is cut with an ellipsis: a terminal row
 * should stay readable; CSV and TSV carry full values. */
#define TABLE_MAXW 60

struct dd_out {
	FILE *f;
	enum dd_fmt fmt;
	int ncols, col;
	/* table: every cell kept until the end, to align the columns */
	struct dd_buf cells;	/* cells, each NUL-terminated */
	size_t ncells;
	size_t *width;
};

int
dd_fmt_parse(const char *s, unsigned allowed, enum dd_fmt *f)
{
	static const char *const names[] = { "ndjson", "csv", "tsv", "table", "chart" };
	for (int i = 0; i < 5; i++)
		if (strcmp(s, names[i]) == 0 && (allowed & (1u << i))) {
			*f = (enum dd_fmt)i;
			return 0;
		}
	struct dd_buf b = { 0 };
	for (int i = 0; i < 5; i++)
		if (allowed & (1u << i))
			dd_buf_printf(&b, "%s%s", b.len ? ", " : "", names[i]);
	dd_seterr("\"%s\" is not a format (%s)", s, b.p ? b.p : "");
	dd_buf_free(&b);
	return -1;
}

/* Display width of UTF-8 text: code points, which is right for the
 * ids, names and numbers these tables hold. */
static size_t
width(const char *s, size_t n)
{
	size_t w = 0;
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			w++;
	return w;
}

static void
put_cell(struct dd_out *o, const char *s, size_t n)
{
	if (o->col > 0)
		fputc(o->fmt == DD_FMT_CSV ? ',' : '\t', o->f);
	if (o->fmt == DD_FMT_CSV) {
		int quote = n > 0 && (s[0] == ' ' || s[n - 1] == ' ');
		for (size_t i = 0; i < n && !quote; i++)
			quote = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
		if (quote)
			csv_fwrite(o->f, s, n);
		else
			fwrite(s, 1, n, o->f);
	} else {
		for (size_t i = 0; i < n; i++) {
			switch (s[i]) {
			case '\t': fputs("\\t", o->f); break;
			case '\n': fputs("\\n", o->f); break;
			case '\r': fputs("\\r", o->f); break;
			case '\\': fputs("\\\\", o->f); break;
			default: fputc(s[i], o->f);
			}
		}
	}
}

void
dd_out_cell(struct dd_out *o, const char *s, size_t n)
{
	if (o->fmt != DD_FMT_TABLE) {
		put_cell(o, s, n);
		o->col++;
		return;
	}
	/* Controls would wreck the layout: shown as spaces. */
	size_t w = 0, i = 0;
	while (i < n) {
		size_t k = 1;
		unsigned char c = (unsigned char)s[i];
		if (c >= 0xC0)
			while (i + k < n && ((unsigned char)s[i + k] & 0xC0) == 0x80)
				k++;
		if (w == TABLE_MAXW - 1 && width(s + i, n - i) > 1) {
			dd_buf_add(&o->cells, "\xE2\x80\xA6", 3);	/* … */
			w++;
			break;
		}
		if (c < 0x20 || c == 0x7F)
			dd_buf_addc(&o->cells, ' ');
		else
			dd_buf_add(&o->cells, s + i, k);
		w++;
		i += k;
	}
	dd_buf_addc(&o->cells, '\0');
	if (w > o->width[o->col])
		o->width[o->col] = w;
	o->ncells++;
	o->col++;
}

void
dd_out_endrow(struct dd_out *o)
{
	/* Short rows are padded, so every row has every column. */
	while (o->col < o->ncols)
		dd_out_cell(o, "", 0);
	if (o->fmt != DD_FMT_TABLE)
		fputs(o->fmt == DD_FMT_CSV ? "\r\n" : "\n", o->f);
	o->col = 0;
}

struct dd_out *
dd_out_new(FILE *f, enum dd_fmt fmt, const char *const *cols, int ncols)
{
	struct dd_out *o = dd_calloc(1, sizeof *o);
	o->f = f;
	o->fmt = fmt;
	o->ncols = ncols;
	o->width = dd_calloc((size_t)ncols, sizeof *o->width);
	for (int i = 0; i < ncols; i++)
		dd_out_cell(o, cols[i], strlen(cols[i]));
	dd_out_endrow(o);
	return o;
}

int
dd_out_finish(struct dd_out *o)
{
	if (o->fmt == DD_FMT_TABLE) {
		const char *c = o->cells.p;
		for (size_t i = 0; i < o->ncells; i++) {
			int col = (int)(i % (size_t)o->ncols);
			size_t n = strlen(c), w = width(c, n);
			fputs(c, o->f);
			if (col == o->ncols - 1) {
				fputc('\n', o->f);
			} else {
				for (size_t k = w; k < o->width[col] + 2; k++)
					fputc(' ', o->f);
			}
			c += n + 1;
		}
	}
	int rc = fflush(o->f) != 0 || ferror(o->f) ? -1 : 0;
	if (rc)
		dd_seterr("stdout: %s", strerror(errno ? errno : EIO));
	dd_buf_free(&o->cells);
	free(o->width);
	free(o);
	return rc;
}
