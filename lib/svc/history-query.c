#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddtime.h"
#include "exitcodes.h"
#include "history.h"
#include "order.h"
#include "stage.h"
#include "util.h"

int
dd_history_stage_ok(const char *s)
{
	return dd_stage_parse(s, DD_STAGE_HISTORY) >= 0;
}

/* A column as a JSON string or null. */
static void
json_col(struct dd_buf *b, sqlite3_stmt *st, int i)
{
	size_t n;
	const char *s = dd_col_text(st, i, &n);
	if (s)
		dd_buf_json_str(b, s, n);
	else
		dd_buf_adds(b, "null");
}

/* A time column in RFC 3339, or null. */
static void
json_time(struct dd_buf *b, sqlite3_stmt *st, int i)
{
	int64_t ms = dd_col_time(st, i);
	if (ms == DD_NOTIME) {
		dd_buf_adds(b, "null");
		return;
	}
	char t[DD_TIMEBUF];
	dd_time_format(ms, t);
	dd_buf_printf(b, "\"%s\"", t);
}

/* The summary columns every query selects, in this order. */
#define SUMMARY_COLS "dkey, id, request, owner, stage, drone, created_ms, ended_ms," \
	" updated_ms, events"

/* The summary members of a delivery's JSON object (no braces). */
static void
json_summary(struct dd_buf *b, sqlite3_stmt *st)
{
	dd_buf_adds(b, "\"deliveryId\":");
	json_col(b, st, 1);
	dd_buf_adds(b, ",\"requestId\":");
	json_col(b, st, 2);
	dd_buf_adds(b, ",\"ownerId\":");
	json_col(b, st, 3);
	dd_buf_adds(b, ",\"stage\":");
	json_col(b, st, 4);
	dd_buf_adds(b, ",\"droneId\":");
	json_col(b, st, 5);
	dd_buf_adds(b, ",\"created\":");
	json_time(b, st, 6);
	dd_buf_adds(b, ",\"ended\":");
	json_time(b, st, 7);
	dd_buf_adds(b, ",\"updated\":");
	json_time(b, st, 8);
}

static int
write_buf(const struct dd_buf *b, FILE *out)
{
	if (b->len && fwrite(b->p, 1, b->len, out) != b->len) {
		dd_seterr("stdout: %s", strerror(errno ? errno : EIO));
		return -1;
	}
	return 0;
}

struct getq {
	sqlite3_stmt *st, *ev;
	struct dd_store *s;
	struct dd_buf b;
	struct dd_olist ol;
};

/* One delivery of a batch get (dd_store_get), inside its read
 * transaction: the summary and the events agree. */
static int
get_one(void *vq, const char *id, FILE *out)
{
	struct getq *q = vq;
	sqlite3_stmt *st = q->st, *ev = q->ev;
	struct dd_buf *b = &q->b;
	struct dd_olist *ol = &q->ol;
	int rc = DD_EXIT_IO;
	dd_buf_reset(b);
	dd_bind_text(st, 0, id, (size_t)-1);
	int r = sqlite3_step(st);
	if (r == SQLITE_DONE) {
		dd_seterr("%s: no such delivery", id);
		rc = DD_EXIT_REJECTED;
		goto out;
	}
	if (r != SQLITE_ROW) {
		dd_store_err(q->s, "get");
		goto out;
	}
	dd_buf_addc(b, '{');
	json_summary(b, st);
	dd_buf_adds(b, ",\"events\":[");
	dd_bind_int(ev, 0, dd_col_int(st, 0));
	/* In the one order of order.h: equal times by stage, then id. */
	dd_olist_reset(ol);
	while ((r = sqlite3_step(ev)) == SQLITE_ROW) {
		size_t len;
		const char *line = dd_col_text(ev, 0, &len);
		if (dd_olist_add(ol, line, len)) {
			dd_seterr("%s: delivery \"%s\": a stored event is not an event: %s",
			    q->s->path, id, dd_errmsg());
			goto out;
		}
	}
	if (r != SQLITE_DONE) {
		dd_store_err(q->s, "get");
		goto out;
	}
	dd_olist_sort(ol);
	uint64_t n = ol->n;
	for (size_t i = 0; i < ol->n; i++) {
		if (i)
			dd_buf_addc(b, ',');
		/* The original line, embedded as it came: it is one valid JSON
		 * object (checked when it was stored). */
		size_t len;
		const char *line = dd_olist_line(ol, i, &len);
		dd_buf_add(b, line, len);
	}
	dd_buf_printf(b, "],\"eventCount\":%" PRIu64 "}\n", n);
	rc = write_buf(b, out) ? DD_EXIT_IO : 0;
out:
	sqlite3_reset(st);
	sqlite3_reset(ev);
	return rc;
}

int
dd_history_get(struct dd_store *s, char **ids, FILE *out)
{
	struct getq q = { .s = s };
	int rc = DD_EXIT_IO;
	q.st = dd_store_prepare(s, "SELECT " SUMMARY_COLS " FROM deliveries WHERE id = ?1");
	q.ev = dd_store_prepare(s, "SELECT line FROM events WHERE dkey = ?1 ORDER BY time_ms, eid");
	if (q.st && q.ev)
		rc = dd_store_get(s, ids, get_one, &q, out);
	sqlite3_finalize(q.st);
	sqlite3_finalize(q.ev);
	dd_buf_free(&q.b);
	dd_olist_free(&q.ol);
	return rc;
}

int
dd_history_list(struct dd_store *s, const struct dd_history_query *q, enum dd_fmt fmt,
    FILE *out)
{
	static const char *const cols[] = { "deliveryId", "requestId", "ownerId", "stage", "droneId",
		"created", "ended", "updated", "eventCount" };
	struct dd_buf sql = { 0 }, b = { 0 };
	/* Only the conditions asked for, so the planner can use the owner or
	 * created index. */
	dd_buf_adds(&sql, "SELECT " SUMMARY_COLS " FROM deliveries WHERE 1");
	if (q->owner)
		dd_buf_adds(&sql, " AND owner = ?1");
	if (q->stage)
		dd_buf_adds(&sql, " AND stage = ?2");
	if (q->since_ms != INT64_MIN)
		dd_buf_adds(&sql, " AND created_ms >= ?3");
	if (q->until_ms != INT64_MAX)
		dd_buf_adds(&sql, " AND created_ms < ?4");
	dd_buf_adds(&sql, " ORDER BY created_ms, id");
	sqlite3_stmt *st = dd_store_prepare(s, sql.p);
	dd_buf_free(&sql);
	if (st == NULL)
		return -1;
	if (q->owner)
		dd_bind_text(st, 0, q->owner, (size_t)-1);
	if (q->stage)
		dd_bind_text(st, 1, q->stage, (size_t)-1);
	dd_bind_int(st, 2, q->since_ms);
	dd_bind_int(st, 3, q->until_ms);
	struct dd_out *o = fmt == DD_FMT_NDJSON ? NULL : dd_out_new(out, fmt, cols, 9);
	int r, rc = 0;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		dd_buf_reset(&b);
		if (o == NULL) {
			dd_buf_addc(&b, '{');
			json_summary(&b, st);
			dd_buf_printf(&b, ",\"eventCount\":%" PRId64 "}\n", dd_col_int(st, 9));
			if (write_buf(&b, out)) {
				rc = -1;
				break;
			}
			continue;
		}
		for (int i = 1; i <= 9; i++) {
			/* NULL: an empty cell. */
			dd_buf_reset(&b);
			if (i >= 6 && i <= 8) {
				int64_t ms = dd_col_time(st, i);
				char t[DD_TIMEBUF];
				if (ms != DD_NOTIME)
					dd_buf_add(&b, t, dd_time_format(ms, t));
			} else {
				size_t n;
				const char *v = dd_col_text(st, i, &n);
				if (v)
					dd_buf_add(&b, v, n);
			}
			dd_out_cell(o, b.p ? b.p : "", b.len);
		}
		dd_out_endrow(o);
	}
	if (rc == 0 && r != SQLITE_DONE)
		rc = dd_store_err(s, "list");
	if (o && dd_out_finish(o) && rc == 0)
		rc = -1;	/* dd_out_finish() said why */
	sqlite3_finalize(st);
	dd_buf_free(&b);
	return rc;
}

int
dd_history_stats(struct dd_store *s, FILE *out)
{
	struct dd_buf b = { 0 };
	int rc = -1;
	sqlite3_stmt *st = NULL;
	if (dd_store_exec(s, "BEGIN"))
		return -1;
	st = dd_store_prepare(s, "SELECT count(*), coalesce(sum(events), 0), min(created_ms),"
	    " max(updated_ms), count(ended_ms), min(ended_ms) FROM deliveries");
	if (st == NULL || sqlite3_step(st) != SQLITE_ROW) {
		dd_store_err(s, "stats");
		goto out;
	}
	dd_buf_printf(&b, "{\"deliveries\":%" PRId64 ",\"events\":%" PRId64 ",\"ended\":%"
	    PRId64 ",\"firstCreated\":", dd_col_int(st, 0), dd_col_int(st, 1), dd_col_int(st, 4));
	json_time(&b, st, 2);
	dd_buf_adds(&b, ",\"lastUpdated\":");
	json_time(&b, st, 3);
	dd_buf_adds(&b, ",\"firstEnded\":");
	json_time(&b, st, 5);
	sqlite3_finalize(st);
	st = dd_store_prepare(s, "SELECT stage, count(*) FROM deliveries GROUP BY stage"
	    " ORDER BY stage");
	if (st == NULL)
		goto out;
	dd_buf_adds(&b, ",\"stages\":{");
	int r, n = 0;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (n++)
			dd_buf_addc(&b, ',');
		json_col(&b, st, 0);
		dd_buf_printf(&b, ":%" PRId64, dd_col_int(st, 1));
	}
	if (r != SQLITE_DONE) {
		dd_store_err(s, "stats");
		goto out;
	}
	dd_buf_adds(&b, "}}\n");
	rc = write_buf(&b, out);
out:
	sqlite3_finalize(st);
	sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	dd_buf_free(&b);
	return rc;
}
