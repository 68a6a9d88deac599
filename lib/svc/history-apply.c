#include <stdlib.h>
#include <string.h>

#include "history-int.h"
#include "lake.h"
#include "order.h"
#include "stage.h"

static const char sql_sel[] =
	"SELECT dkey, request, owner, origin_ms, origin_eid, stage, stage_ms, stage_eid,"
	" final, drone, drone_ms, drone_eid, created_ms, updated_ms, drone_rank"
	" FROM deliveries WHERE id = ?1";
static const char sql_ins_d[] =
	"INSERT INTO deliveries (dkey, id, request, owner, origin_ms, origin_eid,"
	" stage, stage_ms, stage_eid, final, drone, drone_ms, drone_eid,"
	" created_ms, updated_ms, ended_ms, events, drone_rank)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";
static const char sql_ins_e[] =
	"INSERT OR IGNORE INTO events (dkey, eid, time_ms, line) VALUES (?1, ?2, ?3, ?4)";
/* The columns no index covers are written on every change; the indexed
 * ones (owner, created, ended) only when they really change, so their
 * indexes are not rewritten for nothing. */
static const char sql_upd[] =
	"UPDATE deliveries SET stage = ?2, stage_ms = ?3, stage_eid = ?4, final = ?5,"
	" drone = ?6, drone_ms = ?7, drone_eid = ?8, updated_ms = ?9,"
	" events = events + ?10, drone_rank = ?11 WHERE dkey = ?1";
static const char sql_upd_origin[] =
	"UPDATE deliveries SET request = ?2, owner = ?3, origin_ms = ?4, origin_eid = ?5"
	" WHERE dkey = ?1";
static const char sql_upd_created[] =
	"UPDATE deliveries SET created_ms = ?2 WHERE dkey = ?1";
static const char sql_upd_ended[] =
	"UPDATE deliveries SET ended_ms = ?2 WHERE dkey = ?1";

int
dd_hist_apply_prepare(struct dd_history_ingest *h)
{
	struct dd_store *s = h->s;
	if (!(h->sel = dd_store_prepare(s, sql_sel)) ||
	    !(h->ins_d = dd_store_prepare(s, sql_ins_d)) ||
	    !(h->ins_e = dd_store_prepare(s, sql_ins_e)) ||
	    !(h->upd = dd_store_prepare(s, sql_upd)) ||
	    !(h->upd_origin = dd_store_prepare(s, sql_upd_origin)) ||
	    !(h->upd_created = dd_store_prepare(s, sql_upd_created)) ||
	    !(h->upd_ended = dd_store_prepare(s, sql_upd_ended)) ||
	    !(h->maxkey = dd_store_prepare(s, "SELECT coalesce(max(dkey), 0) FROM deliveries")) ||
	    !(h->tomb = dd_store_prepare(s, "SELECT stage, stage_ms, stage_eid FROM archived"
	    " WHERE id = ?1")))
		return -1;
	return 0;
}

void
dd_hist_apply_finalize(struct dd_history_ingest *h)
{
	sqlite3_finalize(h->sel);
	sqlite3_finalize(h->ins_d);
	sqlite3_finalize(h->ins_e);
	sqlite3_finalize(h->upd);
	sqlite3_finalize(h->upd_origin);
	sqlite3_finalize(h->upd_created);
	sqlite3_finalize(h->upd_ended);
	sqlite3_finalize(h->maxkey);
	sqlite3_finalize(h->tomb);
}

/* A text value of the summary: bytes, or p NULL for SQL NULL. */
struct txt {
	const char *p;
	int n;
};

/* A delivery's summary while a batch is folded into it. */
struct sum {
	int64_t origin_ms, stage_ms, drone_ms, created, updated;
	struct txt origin_eid, owner, request, stage_eid, drone, drone_eid;
	int has_origin, has_stage, has_drone, has_times, stage, final, drone_rank;
	int origin_chg, stage_chg, created_chg;
};

static struct txt
col_txt(sqlite3_stmt *st, int i)
{
	size_t n;
	struct txt t;
	t.p = dd_col_text(st, i, &n);
	t.n = (int)n;
	return t;
}

static struct txt
span_txt(const struct batch *b, struct span s)
{
	struct txt t = { NULL, 0 };
	if (s.len >= 0) {
		t.p = b->arena.p + s.off;
		t.n = s.len;
	}
	return t;
}

static void
bind_txt(sqlite3_stmt *st, int i, struct txt t)
{
	dd_bind_text(st, i, t.p, (size_t)t.n);
}

/* A stored stage name; one this build does not know reads as created. */
static int
col_stage(sqlite3_stmt *st, int i)
{
	size_t n;
	const char *p = dd_col_text(st, i, &n);
	int s = p ? dd_stage_lookup(p, n, DD_STAGE_HISTORY) : -1;
	return s < 0 ? DD_STAGE_CREATED : s;
}

/* Order of (time, id) pairs: time first, then the id bytewise. */
static int
cmp_at(int64_t t1, struct txt a, int64_t t2, struct txt b)
{
	return dd_order_cmp(t1, 0, a.p, (size_t)a.n, t2, 0, b.p, (size_t)b.n);
}

/* The one order of order.h for the events that set the stage: at equal
 * times the stage's rank decides (a reschedule after its schedule), as
 * it does in dd-track. */
static int
cmp_stage(int64_t t1, int s1, struct txt a, int64_t t2, int s2, struct txt b)
{
	return dd_order_cmp(t1, dd_order_stage_rank(s1), a.p, (size_t)a.n,
	    t2, dd_order_stage_rank(s2), b.p, (size_t)b.n);
}

/* Fold one newly stored event into the summary (see history.h). */
static void
fold(const struct batch *b, struct sum *s, const struct pev *p)
{
	struct txt eid = span_txt(b, p->eid);
	int final = dd_stage_final(p->stage);
	if (p->origin && (!s->has_origin || cmp_at(p->t, eid, s->origin_ms, s->origin_eid) < 0)) {
		s->has_origin = s->origin_chg = 1;
		s->origin_ms = p->t;
		s->origin_eid = eid;
		s->owner = span_txt(b, p->owner);
		s->request = span_txt(b, p->request);
	}
	int c = s->has_stage ?
	    cmp_stage(p->t, p->stage, eid, s->stage_ms, s->stage, s->stage_eid) : 0;
	/* Final stages: the earliest wins and nothing else moves them;
	 * before that, the latest event decides. */
	if (!s->has_stage || (final ? (!s->final || c < 0) : (!s->final && c > 0))) {
		s->has_stage = s->stage_chg = 1;
		s->stage = p->stage;
		s->final = final;
		s->stage_ms = p->t;
		s->stage_eid = eid;
	}
	if (p->drone.len >= 0 &&
	    (!s->has_drone || dd_order_cmp(p->t, dd_order_stage_rank(p->stage), eid.p,
	    (size_t)eid.n, s->drone_ms, s->drone_rank, s->drone_eid.p,
	    (size_t)s->drone_eid.n) > 0)) {
		s->has_drone = 1;
		s->drone_rank = dd_order_stage_rank(p->stage);
		s->drone_ms = p->t;
		s->drone_eid = eid;
		s->drone = span_txt(b, p->drone);
	}
	if (!s->has_times) {
		s->has_times = s->created_chg = 1;
		s->created = s->updated = p->t;
	} else {
		if (p->t < s->created) {
			s->created = p->t;
			s->created_chg = 1;
		}
		if (p->t > s->updated)
			s->updated = p->t;
	}
}

static int
step_done(struct dd_history_ingest *h, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : dd_store_err(h->s, what);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

/* The summary of a stored delivery from its row in sel. */
static void
load_row(sqlite3_stmt *sel, struct sum *s)
{
	s->request = col_txt(sel, 1);
	s->owner = col_txt(sel, 2);
	s->origin_ms = dd_col_time(sel, 3);
	s->has_origin = s->origin_ms != DD_NOTIME;
	s->origin_eid = col_txt(sel, 4);
	s->has_stage = dd_col_text(sel, 5, NULL) != NULL;
	if (s->has_stage)
		s->stage = col_stage(sel, 5);
	s->stage_ms = dd_col_int(sel, 6);
	s->stage_eid = col_txt(sel, 7);
	s->final = (int)dd_col_int(sel, 8);
	s->drone = col_txt(sel, 9);
	s->drone_ms = dd_col_time(sel, 10);
	s->has_drone = s->drone_ms != DD_NOTIME;
	s->drone_eid = col_txt(sel, 11);
	s->drone_rank = (int)dd_col_int(sel, 14);
	s->created = dd_col_time(sel, 12);
	s->has_times = s->created != DD_NOTIME;
	s->updated = dd_col_int(sel, 13);
}

/*
 * The summary the batch's events of a delivery are folded into: its row
 * (*exists), or for a delivery not stored, the final stage it had when
 * it was archived (a tombstone), or nothing. The text of s points into
 * the rows of h->sel and h->tomb: valid until apply() resets them.
 * 0 or -1.
 */
static int
load_summary(struct dd_history_ingest *h, const struct batch *b, const struct agg *a,
    struct sum *s, int64_t *dkey, int *exists, int *archived)
{
	*archived = 0;
	const char *key = b->arena.p + a->key.off;
	memset(s, 0, sizeof *s);
	dd_bind_text(h->sel, 0, key, (size_t)a->key.len);
	int r = sqlite3_step(h->sel);
	if ((*exists = r == SQLITE_ROW)) {
		*dkey = dd_col_int(h->sel, 0);
		load_row(h->sel, s);
		return 0;
	}
	if (r != SQLITE_DONE)
		return dd_store_err(h->s, "select delivery");
	dd_bind_text(h->tomb, 0, key, (size_t)a->key.len);
	r = sqlite3_step(h->tomb);
	if (r == SQLITE_ROW) {
		*archived = 1;
		s->has_stage = s->final = 1;
		s->stage = col_stage(h->tomb, 0);
		s->stage_ms = dd_col_int(h->tomb, 1);
		s->stage_eid = col_txt(h->tomb, 2);
	} else if (r != SQLITE_DONE) {
		return dd_store_err(h->s, "select archived");
	}
	return 0;
}

/* Store the delivery's events: only those newly stored are counted in
 * *fresh and folded into s, so a duplicate changes nothing at all. */
static int
store_events(struct dd_history_ingest *h, const struct batch *b, const struct agg *a,
    int64_t dkey, struct sum *s, int64_t *fresh)
{
	sqlite3_stmt *st = h->ins_e;
	int rc = 0;
	dd_bind_int(st, 0, dkey);
	for (uint32_t i = a->first; rc == 0 && i != NOEV; i = b->ev[i].next) {
		const struct pev *p = &b->ev[i];
		dd_bind_text(st, 1, b->arena.p + p->eid.off, (size_t)p->eid.len);
		dd_bind_int(st, 2, p->t);
		dd_bind_text(st, 3, b->arena.p + p->line.off, (size_t)p->line.len);
		if (sqlite3_step(st) != SQLITE_DONE) {
			rc = dd_store_err(h->s, "insert event");
		} else if (sqlite3_changes(h->s->db) > 0) {
			(*fresh)++;
			fold(b, s, p);
		}
		sqlite3_reset(st);
	}
	sqlite3_clear_bindings(st);
	return rc;
}

/* The stage and drone columns, in the same order in the insert and the
 * update: seven parameters from i. */
static void
bind_stage_drone(sqlite3_stmt *st, int i, const struct sum *s)
{
	dd_bind_text(st, i, dd_stage_name(s->stage), (size_t)-1);
	dd_bind_int(st, i + 1, s->stage_ms);
	bind_txt(st, i + 2, s->stage_eid);
	dd_bind_int(st, i + 3, s->final);
	bind_txt(st, i + 4, s->drone);
	dd_bind_time(st, i + 5, s->has_drone ? s->drone_ms : DD_NOTIME);
	bind_txt(st, i + 6, s->drone_eid);
}

/* Bind the row of a new delivery. */
static void
bind_insert(struct dd_history_ingest *h, const struct batch *b, const struct agg *a,
    int64_t dkey, const struct sum *s, int64_t fresh)
{
	sqlite3_stmt *st = h->ins_d;
	dd_bind_int(st, 0, dkey);
	dd_bind_text(st, 1, b->arena.p + a->key.off, (size_t)a->key.len);
	bind_txt(st, 2, s->request);
	bind_txt(st, 3, s->owner);
	dd_bind_time(st, 4, s->has_origin ? s->origin_ms : DD_NOTIME);
	bind_txt(st, 5, s->origin_eid);
	bind_stage_drone(st, 6, s);
	dd_bind_int(st, 13, s->created);
	dd_bind_int(st, 14, s->updated);
	dd_bind_time(st, 15, s->final ? s->stage_ms : DD_NOTIME);
	dd_bind_int(st, 16, fresh);
	dd_bind_int(st, 17, s->drone_rank);
}

/* Bind the columns of a stored delivery that every change rewrites, and
 * its origin when that changed. */
static void
bind_update(struct dd_history_ingest *h, int64_t dkey, const struct sum *s, int64_t fresh)
{
	sqlite3_stmt *st = h->upd;
	dd_bind_int(st, 0, dkey);
	bind_stage_drone(st, 1, s);
	dd_bind_int(st, 8, s->updated);
	dd_bind_int(st, 9, fresh);
	dd_bind_int(st, 10, s->drone_rank);
	if (s->origin_chg) {
		st = h->upd_origin;
		dd_bind_int(st, 0, dkey);
		bind_txt(st, 1, s->request);
		bind_txt(st, 2, s->owner);
		dd_bind_int(st, 3, s->origin_ms);
		bind_txt(st, 4, s->origin_eid);
	}
}

/* Run what bind_update() bound, then the indexed columns that changed
 * (only then, so their indexes are not rewritten for nothing). */
static int
write_update(struct dd_history_ingest *h, int64_t dkey, const struct sum *s)
{
	int rc = step_done(h, h->upd, "update delivery");
	if (rc == 0 && s->origin_chg)
		rc = step_done(h, h->upd_origin, "update delivery");
	else
		sqlite3_clear_bindings(h->upd_origin);
	if (rc == 0 && s->created_chg) {
		dd_bind_int(h->upd_created, 0, dkey);
		dd_bind_int(h->upd_created, 1, s->created);
		rc = step_done(h, h->upd_created, "update delivery");
	}
	if (rc == 0 && s->stage_chg && s->final) {
		dd_bind_int(h->upd_ended, 0, dkey);
		dd_bind_int(h->upd_ended, 1, s->stage_ms);
		rc = step_done(h, h->upd_ended, "update delivery");
	}
	return rc;
}

/*
 * The events of a delivery dd-archive has moved to the lake: appended to
 * its history there (each in the partition of its own time), so the
 * delivery keeps one record, in one place. Committed with the batch
 * (dd_hist_batch_apply); a replay appends them again, and the lake
 * de-duplicates by id. 0 or -1.
 */
static int
to_lake(struct dd_history_ingest *h, const struct batch *b, const struct agg *a,
    uint64_t *n)
{
	if (h->lw == NULL) {
		char *def = h->lake ? NULL : dd_default_path("lake");
		h->lw = dd_lake_writer_open(h->lake ? h->lake : def,
		    h->dataset ? h->dataset : DD_LAKE_DATASET_DEFAULT, NULL);
		free(def);
		if (h->lw == NULL)
			return -1;
	}
	for (uint32_t i = a->first; i != NOEV; i = b->ev[i].next) {
		const struct pev *p = &b->ev[i];
		const char *line = b->arena.p + p->line.off;
		struct dd_env e;
		if (dd_env_scan(line, (size_t)p->line.len, &e))
			return -1;	/* scanned when it was read: cannot happen */
		struct dd_lake_ev ev = { .time_ms = e.time_ms };
		ev.id = dd_jstr_text(&e.id, &h->lbid, &ev.idlen);
		ev.subject = dd_jstr_text(&e.subject, &h->lbsub, &ev.sublen);
		ev.type = dd_jstr_text(&e.type, &h->lbtype, &ev.typelen);
		int r = dd_lake_add(h->lw, line, (size_t)p->line.len, &ev);
		if (r < 0)
			return -1;
		h->lake_pending++;
		(*n)++;
	}
	return 0;
}

/* Store one delivery's buffered events and fold them into its row,
 * adding to *nfresh the events newly stored and to *ncreated a new
 * delivery. */
static int
apply(struct dd_history_ingest *h, const struct batch *b, const struct agg *a,
    int64_t *next_dkey, uint64_t *nfresh, uint64_t *ncreated, uint64_t *nlake)
{
	struct sum s;
	int64_t dkey = 0, fresh = 0;
	int exists = 0, archived = 0;
	int rc = load_summary(h, b, a, &s, &dkey, &exists, &archived);
	if (rc == 0 && archived) {
		sqlite3_reset(h->sel);
		sqlite3_reset(h->tomb);
		return to_lake(h, b, a, nlake);
	}
	if (rc == 0 && !exists)
		dkey = (*next_dkey)++;
	if (rc == 0)
		rc = store_events(h, b, a, dkey, &s, &fresh);
	if (rc == 0 && fresh > 0) {
		if (exists)
			bind_update(h, dkey, &s, fresh);
		else
			bind_insert(h, b, a, dkey, &s, fresh);
	}
	/* The one reset, on every path: the text of s came from these rows,
	 * and what is bound above is SQLite's own copy. */
	sqlite3_reset(h->sel);
	sqlite3_reset(h->tomb);
	if (rc || fresh == 0)
		return rc;
	*nfresh += (uint64_t)fresh;
	if (exists)
		return write_update(h, dkey, &s);
	(*ncreated)++;
	return step_done(h, h->ins_d, "insert delivery");
}

int
dd_hist_batch_apply(struct dd_history_ingest *h, const struct batch *b)
{
	uint64_t fresh = 0, created = 0, lake = 0;
	if (b->nev == 0)
		return 0;
	if (sqlite3_exec(h->s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return dd_store_err(h->s, "begin");
	/* New deliveries get keys after the largest one: allocated here, in
	 * the write transaction, so no other writer can take them. */
	int64_t next = 0;
	if (sqlite3_step(h->maxkey) == SQLITE_ROW)
		next = dd_col_int(h->maxkey, 0) + 1;
	if (next == 0)
		dd_store_err(h->s, "select max key");
	sqlite3_reset(h->maxkey);
	int rc = next == 0 ? -1 : 0;
	for (size_t i = 0; rc == 0 && i < b->nag; i++)
		rc = apply(h, b, &b->ag[i], &next, &fresh, &created, &lake);
	/* What went to the lake is durable there before the batch commits. */
	if (rc == 0 && h->lake_pending) {
		rc = dd_lake_commit(h->lw);
		h->lake_pending = 0;
	}
	if (rc == 0 && h->final)
		rc = dd_store_koff_write(h->s);
	if (rc == 0 && sqlite3_exec(h->s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = dd_store_err(h->s, "commit");
	if (rc) {
		/* A failed COMMIT may leave the transaction open. */
		if (!sqlite3_get_autocommit(h->s->db))
			sqlite3_exec(h->s->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	h->st.events += fresh;
	h->st.archived += lake;
	h->st.duplicates += b->nev - fresh - lake;
	h->st.deliveries += created;
	return 0;
}
