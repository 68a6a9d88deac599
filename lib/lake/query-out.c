/*
 * Output: the frames of each partition in turn become records (NDJSON,
 * CSV, TSV, a table) as they arrive; counts are written at the end, as
 * one number, rows of counts by key or a bar chart. Diagnostics go to the
 * callback of the options, after the records before them are flushed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "exitcodes.h"
#include "json.h"
#include "query-int.h"

void
out_diag(struct dd_query *q, const char *msg)
{
	if (q->o.diag)
		q->o.diag(q->o.diag_ctx, msg);
	else
		dd_seterr("%s", msg);
}

static void
check_out(struct dd_query *q)
{
	if (!q->ioerr && ferror(q->out)) {
		dd_seterr("stdout: %s", strerror(errno ? errno : EIO));
		q->ioerr = 1;
		q->stop = 1;
	}
}

/* The header row of tabular records, once the workers are forked (they
 * must not inherit it). */
void
start_output(struct dd_query *q)
{
	if ((q->mode == M_RECORDS || q->mode == M_PARTITIONS) && q->o.fmt != DD_FMT_NDJSON)
		q->tab = dd_out_new(q->out, q->o.fmt, (const char *const *)q->colnames,
		    q->mode == M_PARTITIONS ? 8 : q->npaths);
}

/* One frame of the current partition, in order. */
void
out_consume(struct dd_query *q, uint32_t type, const char *p, size_t n)
{
	const char *e = p + n;
	switch (type) {
	case F_REC:
		while (p < e && !q->stop) {
			for (int c = 0; c < q->ncells; c++) {
				uint32_t len = get32(p);
				p += 4;
				if (q->tab)
					dd_out_cell(q->tab, p, len);
				else
					fwrite(p, 1, len, q->out);
				p += len;
			}
			if (q->tab)
				dd_out_endrow(q->tab);
			else
				putc('\n', q->out);
			if (++q->emitted == q->o.limit)
				q->stop = 1;
		}
		check_out(q);
		break;
	case F_ERR:
		if (n > 0) {
			if (p[0] > q->rc)
				q->rc = p[0];
			char *msg = dd_strndup(p + 1, n - 1);
			/* Results before the message reach the output first, so
			 * 2>&1 shows each error where it happened. */
			fflush(q->out);
			out_diag(q, msg);
			free(msg);
		}
		break;
	case F_COUNT:
		q->total += get64(p);
		break;
	case F_KEYS:
		sset_merge(&q->keys, p, n);
		break;
	case F_TYPES:
		merge_types(q, p, n);
		break;
	}
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

static void
write_chart(struct dd_query *q, struct row *rows, size_t n)
{
	static const char *const eighths[] = { "", "\u258F", "\u258E", "\u258D", "\u258C",
	    "\u258B", "\u258A", "\u2589" };
	struct dd_buf *labels = dd_calloc(n ? n : 1, sizeof *labels);
	size_t lw = 0, cw = 1;
	uint64_t max = 0;
	for (size_t i = 0; i < n; i++) {
		size_t pos = 0;
		struct dd_jval v;
		for (int k = 0; dd_json_next(&rows[i].key, &pos, NULL, &v); k++) {
			if (k)
				dd_buf_addc(&labels[i], ' ');
			if (v.type == DD_JNULL)
				dd_buf_adds(&labels[i], "null");
			else
				dd_jval_text(&v, &labels[i]);
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
		char num[32];
		size_t c = (size_t)snprintf(num, sizeof num, "%" PRIu64, rows[i].n);
		if (c > cw)
			cw = c;
		if (rows[i].n > max)
			max = rows[i].n;
	}
	int bar = chart_width(q, lw, cw);
	for (size_t i = 0; i < n; i++) {
		fputs(labels[i].p, q->out);
		for (size_t k = width(labels[i].p, labels[i].len); k < lw + 2; k++)
			putc(' ', q->out);
		fprintf(q->out, "%*" PRIu64 " ", (int)cw, rows[i].n);
		/* In eighths of a column, so small differences still show. */
		uint64_t units = max ? (uint64_t)((long double)rows[i].n * bar * 8 / max + 0.5) : 0;
		if (units == 0 && rows[i].n > 0)
			units = 1;
		for (uint64_t k = 0; k < units / 8; k++)
			fputs("\u2588", q->out);
		fputs(eighths[units % 8], q->out);
		putc('\n', q->out);
		dd_buf_free(&labels[i]);
	}
	free(labels);
}

static void
write_counts(struct dd_query *q)
{
	size_t n;
	struct row *rows = sorted_counts(q, &n);
	if (q->o.fmt == DD_FMT_CHART) {
		write_chart(q, rows, n);
	} else if (q->o.fmt == DD_FMT_NDJSON) {
		for (size_t i = 0; i < n; i++) {
			size_t pos = 0;
			struct dd_jval v;
			putc('{', q->out);
			for (int k = 0; dd_json_next(&rows[i].key, &pos, NULL, &v); k++) {
				struct dd_buf b = { 0 };
				dd_buf_json_str(&b, q->colnames[k], strlen(q->colnames[k]));
				fprintf(q->out, "%s:%.*s,", b.p, (int)v.n + (v.type == DD_JSTR ? 2 : 0),
				    v.type == DD_JSTR ? v.p - 1 : v.p);
				dd_buf_free(&b);
			}
			fprintf(q->out, "\"count\":%" PRIu64 "}\n", rows[i].n);
		}
	} else {
		q->colnames[q->npaths] = dd_strdup("count");
		struct dd_out *t = dd_out_new(q->out, q->o.fmt, (const char *const *)q->colnames,
		    q->npaths + 1);
		for (size_t i = 0; i < n; i++) {
			size_t pos = 0;
			struct dd_jval v;
			while (dd_json_next(&rows[i].key, &pos, NULL, &v)) {
				struct dd_buf b = { 0 };
				dd_jval_text(&v, &b);
				dd_out_cell(t, b.p ? b.p : "", b.len);
				dd_buf_free(&b);
			}
			char num[32];
			int c = snprintf(num, sizeof num, "%" PRIu64, rows[i].n);
			dd_out_cell(t, num, (size_t)c);
			dd_out_endrow(t);
		}
		if (dd_out_finish(t))
			q->ioerr = 1;
	}
	free(rows);
}

int
out_finish(struct dd_query *q, int rc)
{
	if (rc == DD_EXIT_OK && !q->ioerr) {
		if (q->mode == M_COUNT)
			fprintf(q->out, "%" PRIu64 "\n", q->total);
		else if (q->mode == M_COUNTBY)
			write_counts(q);
	}
	if (q->tab && dd_out_finish(q->tab) && !q->ioerr)
		q->ioerr = 1;
	q->tab = NULL;
	check_out(q);
	if (q->ioerr)
		return DD_EXIT_IO;
	return rc != DD_EXIT_OK ? rc : q->rc;
}
