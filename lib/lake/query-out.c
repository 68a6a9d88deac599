/*
 * Output: the frames of each partition in turn become records (NDJSON,
 * CSV, TSV, a table) as they arrive; a count is written at the end, and
 * the rows of an aggregate (query-rows.c). Diagnostics go to the
 * callback of the options, after the records before them are flushed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

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
	case F_AGG:
		merge_groups(q, p, n);
		break;
	case F_TYPES:
		merge_types(q, p, n);
		break;
	}
}

int
out_finish(struct dd_query *q, int rc)
{
	if (rc == DD_EXIT_OK && !q->ioerr) {
		if (q->mode == M_COUNT)
			fprintf(q->out, "%" PRIu64 "\n", q->total);
		else if (q->mode == M_AGG)
			write_rows(q);
	}
	if (q->skipped && !q->o.quiet) {
		/* As SQL would, a value of another kind is no value; said once. */
		char msg[160];
		snprintf(msg, sizeof msg, "%" PRIu64 " value%s not a number, skipped by the numeric "
		    "aggregates", q->skipped, q->skipped == 1 ? " was" : "s were");
		fflush(q->out);
		out_diag(q, msg);
	}
	if (q->tab && dd_out_finish(q->tab) && !q->ioerr)
		q->ioerr = 1;
	q->tab = NULL;
	check_out(q);
	if (q->ioerr)
		return DD_EXIT_IO;
	return rc != DD_EXIT_OK ? rc : q->rc;
}
