#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddtime.h"
#include "exitcodes.h"
#include "stage.h"
#include "track-int.h"

static const char *const q_cols = "id, stage, drone_id, location, location_time, speed, "
	"battery, pickup, dropoff, pickup_eta, dropoff_eta, updated, ended";
enum { Q_ID, Q_STAGE, Q_DRONE, Q_LOC, Q_LOCTIME, Q_SPEED, Q_BATTERY, Q_PICKUP, Q_DROPOFF,
	Q_PETA, Q_DETA, Q_UPDATED, Q_ENDED };

static void
q_str(struct dd_buf *b, sqlite3_stmt *st, int c)
{
	size_t n;
	const char *s = dd_col_text(st, c, &n);
	if (s)
		dd_buf_json_str(b, s, n);
	else
		dd_buf_adds(b, "null");
}

static void
q_json(struct dd_buf *b, sqlite3_stmt *st, int c)
{
	const char *s = dd_col_text(st, c, NULL);
	dd_buf_adds(b, s ? s : "null");
}

static void
q_time(struct dd_buf *b, sqlite3_stmt *st, int c)
{
	dd_trk_add_time(b, dd_col_time(st, c));
}

static void
q_real(struct dd_buf *b, sqlite3_stmt *st, int c)
{
	double v = dd_col_real(st, c);
	if (isnan(v))
		dd_buf_adds(b, "null");
	else
		dd_buf_printf(b, "%.15g", v);
}

/* A delivery as one JSON object. */
static void
row_json(struct dd_buf *b, sqlite3_stmt *st)
{
	dd_buf_adds(b, "{\"deliveryId\":");
	q_str(b, st, Q_ID);
	dd_buf_adds(b, ",\"stage\":");
	q_str(b, st, Q_STAGE);
	dd_buf_adds(b, ",\"droneId\":");
	q_str(b, st, Q_DRONE);
	dd_buf_adds(b, ",\"location\":");
	q_json(b, st, Q_LOC);
	dd_buf_adds(b, ",\"locationTime\":");
	q_time(b, st, Q_LOCTIME);
	dd_buf_adds(b, ",\"speedMps\":");
	q_real(b, st, Q_SPEED);
	dd_buf_adds(b, ",\"battery\":");
	q_real(b, st, Q_BATTERY);
	dd_buf_adds(b, ",\"pickup\":");
	q_json(b, st, Q_PICKUP);
	dd_buf_adds(b, ",\"dropoff\":");
	q_json(b, st, Q_DROPOFF);
	dd_buf_adds(b, ",\"pickupEta\":");
	q_time(b, st, Q_PETA);
	dd_buf_adds(b, ",\"dropoffEta\":");
	q_time(b, st, Q_DETA);
	dd_buf_adds(b, ",\"updated\":");
	q_time(b, st, Q_UPDATED);
	dd_buf_adds(b, ",\"ended\":");
	q_time(b, st, Q_ENDED);
	dd_buf_adds(b, "}\n");
}

static int
q_write(FILE *out, const struct dd_buf *b)
{
	if (b->len && fwrite(b->p, 1, b->len, out) != b->len) {
		dd_seterr("stdout: %s", strerror(errno));
		return -1;
	}
	return 0;
}

struct getq {
	sqlite3_stmt *st;
	struct dd_buf b;
};

/* One delivery of a batch get (dd_store_get). */
static int
get_one(void *vq, const char *id, FILE *out)
{
	struct getq *q = vq;
	sqlite3_stmt *st = q->st;
	int rc = 0;
	dd_bind_text(st, 0, id, (size_t)-1);
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		dd_buf_reset(&q->b);
		row_json(&q->b, st);
		rc = q_write(out, &q->b) ? DD_EXIT_IO : 0;
	} else if (r == SQLITE_DONE) {
		dd_seterr("%s: no such delivery", id);
		rc = DD_EXIT_REJECTED;
	} else {
		dd_seterr("reading: %s", sqlite3_errmsg(sqlite3_db_handle(st)));
		rc = DD_EXIT_IO;
	}
	sqlite3_reset(st);
	return rc;
}

int
dd_track_get(struct dd_store *s, char **ids, FILE *out)
{
	struct dd_buf sql = { 0 };
	dd_buf_printf(&sql, "SELECT %s FROM delivery WHERE id = ?", q_cols);
	struct getq q = { dd_store_prepare(s, sql.p), { 0 } };
	dd_buf_free(&sql);
	if (q.st == NULL)
		return DD_EXIT_IO;
	int rc = dd_store_get(s, ids, get_one, &q, out);
	sqlite3_finalize(q.st);
	dd_buf_free(&q.b);
	return rc;
}

/* The text of a member of a stored location, for a table cell. */
static void
loc_member(struct dd_buf *b, const char *json, const char *key)
{
	if (json == NULL)
		return;
	struct dd_jval v = dd_json_value(json, strlen(json)), m;
	if (dd_json_get(&v, key, strlen(key), &m))
		dd_jval_text(&m, b);
}

int
dd_track_list(struct dd_store *s, int stage, const char *drone, enum dd_fmt fmt, FILE *out)
{
	int rc = 0;
	struct dd_buf sql = { 0 }, b = { 0 };
	dd_buf_printf(&sql, "SELECT %s FROM delivery WHERE (?1 IS NULL OR stage = ?1) "
	    "AND (?2 IS NULL OR drone_id = ?2) ORDER BY id", q_cols);
	sqlite3_stmt *st = dd_store_prepare(s, sql.p);
	dd_buf_free(&sql);
	if (st == NULL) {
		return DD_EXIT_IO;
	}
	if (stage >= 0)
		dd_bind_text(st, 0, dd_stage_name(stage), (size_t)-1);
	dd_bind_text(st, 1, drone, (size_t)-1);
	static const char *const cols[] = { "deliveryId", "stage", "droneId", "lat", "lon",
		"locationTime", "pickupEta", "dropoffEta", "updated", "ended" };
	struct dd_out *o = fmt == DD_FMT_NDJSON ? NULL :
	    dd_out_new(out, fmt, cols, (int)(sizeof cols / sizeof cols[0]));
	int r;
	rc = 0;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		dd_buf_reset(&b);
		if (o == NULL) {
			row_json(&b, st);
			if (q_write(out, &b)) {
				rc = DD_EXIT_IO;
				break;
			}
			continue;
		}
		static const int tcols[] = { Q_LOCTIME, Q_PETA, Q_DETA, Q_UPDATED, Q_ENDED };
		for (int c = Q_ID; c <= Q_DRONE; c++) {
			size_t n;
			const char *v = dd_col_text(st, c, &n);
			dd_out_cell(o, v ? v : "", n);
		}
		const char *loc = dd_col_text(st, Q_LOC, NULL);
		loc_member(&b, loc, "lat");
		dd_out_cell(o, b.p ? b.p : "", b.len);
		dd_buf_reset(&b);
		loc_member(&b, loc, "lon");
		dd_out_cell(o, b.p ? b.p : "", b.len);
		for (size_t i = 0; i < sizeof tcols / sizeof tcols[0]; i++) {
			char tb[DD_TIMEBUF];
			int64_t ms = dd_col_time(st, tcols[i]);
			size_t n = ms == DD_NOTIME ? 0 : dd_time_format(ms, tb);
			dd_out_cell(o, tb, n);
		}
		dd_out_endrow(o);
	}
	if (rc == 0 && r != SQLITE_DONE) {
		dd_store_err(s, "reading");
		rc = DD_EXIT_IO;
	}
	if (o && dd_out_finish(o) && rc == 0) {
		dd_seterr("stdout: %s", strerror(errno ? errno : EIO));
		rc = DD_EXIT_IO;
	}
	dd_buf_free(&b);
	sqlite3_finalize(st);
	return rc;
}

int
dd_track_stats(struct dd_store *s, FILE *out)
{
	int rc = 0;
	int64_t count[DD_NSTAGES] = { 0 }, total = 0, max_time = DD_NOTIME, removed = 0;
	int64_t oldest = DD_NOTIME, newest = DD_NOTIME;
	sqlite3_stmt *st = dd_store_prepare(s, "SELECT stage, count(*), min(updated), "
	    "max(updated) FROM delivery GROUP BY stage");
	if (st == NULL)
		goto fail;
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		int sg = dd_stage_parse(dd_col_text(st, 0, NULL), DD_STAGE_TRACK);
		int64_t n = dd_col_int(st, 1), lo = dd_col_time(st, 2), hi = dd_col_time(st, 3);
		if (sg >= 0)
			count[sg] += n;
		total += n;
		if (lo != DD_NOTIME && (oldest == DD_NOTIME || lo < oldest))
			oldest = lo;
		if (hi != DD_NOTIME && (newest == DD_NOTIME || hi > newest))
			newest = hi;
	}
	sqlite3_finalize(st);
	if (r != SQLITE_DONE) {
		dd_store_err(s, "reading");
		goto fail;
	}
	if (dd_trk_meta_get(s, "max_time", &max_time) || dd_trk_meta_get(s, "removed", &removed))
		goto fail;
	struct dd_buf b = { 0 };
	dd_buf_printf(&b, "{\"deliveries\":%" PRId64 ",\"stages\":{", total);
	/* Every stage dd-track knows, in the table's order. */
	for (int i = 0, n = 0; i < DD_NSTAGES; i++)
		if (dd_stage_known(i, DD_STAGE_TRACK))
			dd_buf_printf(&b, "%s\"%s\":%" PRId64, n++ ? "," : "", dd_stage_name(i),
			    count[i]);
	dd_buf_adds(&b, "},\"oldestUpdate\":");
	dd_trk_add_time(&b, oldest);
	dd_buf_adds(&b, ",\"newestUpdate\":");
	dd_trk_add_time(&b, newest);
	dd_buf_adds(&b, ",\"streamTime\":");
	dd_trk_add_time(&b, max_time);
	dd_buf_printf(&b, ",\"removed\":%" PRId64 "}\n", removed);
	rc = q_write(out, &b) ? DD_EXIT_IO : 0;
	dd_buf_free(&b);
	return rc;
fail:
	return DD_EXIT_IO;
}
