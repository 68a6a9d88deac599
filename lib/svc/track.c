#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exitcodes.h"
#include "stage.h"
#include "track-int.h"

void
dd_track_defaults(struct dd_track_opts *o)
{
	memset(o, 0, sizeof *o);
	o->retain_ms = 3600 * 1000;
	o->cache_bytes = DD_TRACK_CACHE_DEFAULT;
	o->out = stdout;
}

/* ---- one delivery ---- */

/* The stage as a function of the aggregates (see track.h). */
int
dd_trk_stage(const struct dlv *d)
{
	if (d->fstage)
		return d->fstage;
	/* At equal times the order of order.h: a reschedule comes after its
	 * schedule and before a dispatch or pickup of the same millisecond. */
	if (d->t_pick != DD_NOTIME && d->t_pick >= d->t_resched)
		return DD_STAGE_HEADED_TO_DROPOFF;
	if (d->t_disp != DD_NOTIME && d->t_disp >= d->t_resched)
		return DD_STAGE_HEADED_TO_PICKUP;
	if (d->t_sched != DD_NOTIME && d->t_sched > d->t_resched)
		return DD_STAGE_CREATED;
	if (d->t_resched != DD_NOTIME)
		return DD_STAGE_RESCHEDULED;
	return DD_STAGE_UNKNOWN;
}

uint64_t
dd_trk_hash(const char *id, size_t n)
{
	return dd_hash64(id, n);
}

static void
loc_free(struct loc *l)
{
	free(l->json);
	l->json = NULL;
}

void
dd_trk_dlv_clear(struct dlv *d)
{
	dd_trk_drone_set(d, NULL, 0);
	loc_free(&d->loc);
	loc_free(&d->pickup);
	loc_free(&d->dropoff);
	free(d->seen);
	d->seen = NULL;
	d->seenlen = d->seencap = 0;
	d->t_sched = d->t_disp = d->t_pick = d->t_resched = DD_NOTIME;
	d->fstage = 0;
	d->t_final = d->updated = d->drone_time = DD_NOTIME;
	d->loc_time = d->pickup_time = d->dropoff_time = DD_NOTIME;
	d->pickup_eta = d->dropoff_eta = d->eta_time = d->pos_ms = DD_NOTIME;
	d->speed = d->battery = NAN;
}

void
dd_trk_dlv_free(struct dlv *d)
{
	dd_trk_dlv_clear(d);
	free(d);
}

static uint64_t
get_le64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void
put_le64(unsigned char *c, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		c[i] = (unsigned char)v;
}

const char *
dd_trk_drone(const struct dlv *d, size_t *n)
{
	*n = d->dronelen;
	if (!d->has_drone)
		return NULL;
	return d->drone_on_heap ? d->drone.heap : d->drone.in;
}

void
dd_trk_drone_set(struct dlv *d, const char *s, size_t n)
{
	if (d->drone_on_heap)
		free(d->drone.heap);
	d->drone_on_heap = 0;
	d->has_drone = s != NULL;
	d->dronelen = (uint32_t)(s ? n : 0);
	if (s == NULL)
		return;
	char *p = d->drone.in;
	if (n >= sizeof d->drone.in) {
		p = d->drone.heap = dd_malloc(n + 1);
		d->drone_on_heap = 1;
	}
	memcpy(p, s, n);
	p[n] = '\0';
}

/* A delivery has a few ids: a walk over them beats a hash set of its own.
 * Its events' ids mostly differ at the end only (t-1-000042-3, -4, ...):
 * the last byte is compared first, and memcmp is called for a likely
 * match only. */
int
dd_trk_seen(const struct dlv *d, const char *id, size_t n)
{
	const unsigned char *p = d->seen, *end = p + d->seenlen;
	unsigned char last = n ? (unsigned char)id[n - 1] : 0;
	for (; p < end; p += 9 + p[8])
		if (p[8] == n && p[8 + n] == last && memcmp(p + 9, id, n) == 0)
			return 1;
	return 0;
}

void
dd_trk_seen_add(struct dlv *d, int64_t t, const char *id, size_t n)
{
	size_t need = d->seenlen + 9 + n;
	if (need > d->seencap) {
		/* Most have few: the first block fits one id, then half again
		 * as much each time, and the slack malloc gives is used. */
		size_t cap = d->seencap + d->seencap / 2;
		d->seen = dd_realloc(d->seen, cap > need ? cap : need);
		d->seencap = (uint32_t)malloc_usable_size(d->seen);
	}
	unsigned char *p = d->seen + d->seenlen;
	put_le64(p, (uint64_t)t);
	p[8] = (unsigned char)n;
	memcpy(p + 9, id, n);
	d->seenlen = (uint32_t)need;
}

/* Forget the ids of events older than horizon: one of them coming again
 * is late, and late events are dropped before the duplicate check. */
void
dd_trk_seen_prune(struct dlv *d, int64_t horizon)
{
	unsigned char *p = d->seen, *end = p + d->seenlen, *w = p;
	while (p < end) {
		size_t len = 9 + (size_t)p[8];
		if ((int64_t)get_le64(p) >= horizon) {
			if (w != p)
				memmove(w, p, len);
			w += len;
		}
		p += len;
	}
	d->seenlen = (uint32_t)(w - d->seen);
}

static const char *const migrations[] = {
	/* 1: live deliveries. Times are epoch milliseconds (NULL: none);
	 * locations are the JSON objects as received. The t_* columns and
	 * seen (ids of recent events, see row_write) are the engine's
	 * state; stage and ended are derived from them. */
	"CREATE TABLE delivery ("
	" id TEXT PRIMARY KEY,"
	" stage TEXT NOT NULL,"
	" drone_id TEXT,"
	" location TEXT,"
	" location_time INTEGER,"
	" speed REAL,"
	" battery REAL,"
	" pickup TEXT,"
	" dropoff TEXT,"
	" pickup_eta INTEGER,"
	" dropoff_eta INTEGER,"
	" updated INTEGER NOT NULL,"
	" ended INTEGER,"
	" t_scheduled INTEGER,"
	" t_dispatched INTEGER,"
	" t_picked_up INTEGER,"
	" t_rescheduled INTEGER,"
	" drone_time INTEGER,"
	" pickup_time INTEGER,"
	" dropoff_time INTEGER,"
	" eta_time INTEGER,"
	" position_time INTEGER,"
	" seen BLOB"
	") WITHOUT ROWID;"
	"CREATE INDEX delivery_ended ON delivery(updated) WHERE ended IS NOT NULL;"
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER) WITHOUT ROWID;",
	/* 2: deliveries removed after --retain leave their id and final
	 * stage for a week, so a later event about one (a compensation, a
	 * late cancel) cannot bring it back in another final stage. */
	"CREATE TABLE ended (id TEXT PRIMARY KEY, stage TEXT NOT NULL,"
	" ended INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX ended_time ON ended(ended);",
	/* 3: seen holds the ids themselves (row_write), no longer 64-bit
	 * hashes that crafted ids could make collide. Hashes cannot be
	 * turned back into ids, so they are forgotten: a duplicate of an
	 * event applied before is applied again, which leaves the stage as
	 * it was (a function of the set of events). */
	"UPDATE delivery SET seen = NULL;",
	/* 4: a rowid table, rows in the order deliveries were first written
	 * (their rowids, given by the tracker), found by id through a unique
	 * index. Keyed by id, a commit's rows were spread over the whole
	 * B-tree, so each commit wrote (to the WAL, then at the checkpoint)
	 * a page for nearly every row; now the deliveries live together,
	 * those a commit changes, share pages, and new ones are appended.
	 * The rows are copied in the order of their last update, the
	 * nearest to first written that a store of version 3 knows. */
	"CREATE TABLE delivery4 ("
	" id TEXT NOT NULL,"
	" stage TEXT NOT NULL,"
	" drone_id TEXT,"
	" location TEXT,"
	" location_time INTEGER,"
	" speed REAL,"
	" battery REAL,"
	" pickup TEXT,"
	" dropoff TEXT,"
	" pickup_eta INTEGER,"
	" dropoff_eta INTEGER,"
	" updated INTEGER NOT NULL,"
	" ended INTEGER,"
	" t_scheduled INTEGER,"
	" t_dispatched INTEGER,"
	" t_picked_up INTEGER,"
	" t_rescheduled INTEGER,"
	" drone_time INTEGER,"
	" pickup_time INTEGER,"
	" dropoff_time INTEGER,"
	" eta_time INTEGER,"
	" position_time INTEGER,"
	" seen BLOB"
	");"
	"INSERT INTO delivery4 (" COLS ") SELECT " COLS " FROM delivery ORDER BY updated, id;"
	"DROP TABLE delivery;"
	"ALTER TABLE delivery4 RENAME TO delivery;"
	"CREATE UNIQUE INDEX delivery_id ON delivery(id);"
	"CREATE INDEX delivery_ended ON delivery(updated) WHERE ended IS NOT NULL;",
};

/* ---- reading and writing rows ---- */

/* One pass over the members: this runs for every position. */
int
dd_trk_loc_parse(const struct dd_jval *v, double *lat, double *lon)
{
	struct dd_jval k, c, la = { 0 }, lo = { 0 };
	size_t pos = 0;
	if (v->type != DD_JOBJ)
		return -1;
	while (dd_json_next(v, &pos, &k, &c)) {
		if (k.n == 3 && !k.esc && k.p[0] == 'l' && k.p[1] == 'a' && k.p[2] == 't')
			la = c;
		else if (k.n == 3 && !k.esc && k.p[0] == 'l' && k.p[1] == 'o' && k.p[2] == 'n')
			lo = c;
		else if (k.esc && dd_jstr_eq(&k, "lat", 3))
			la = c;
		else if (k.esc && dd_jstr_eq(&k, "lon", 3))
			lo = c;
	}
	if (dd_jnum_double(&la, lat) || dd_jnum_double(&lo, lon))
		return -1;
	if (*lat < -90 || *lat > 90 || *lon < -180 || *lon > 180)
		return -1;
	return 0;
}

static void
loc_set_text(struct loc *l, const char *s, size_t n)
{
	loc_free(l);
	if (s == NULL)
		return;
	struct dd_jval v = dd_json_value(s, n);
	if (dd_json_validate(s, n, NULL) || dd_trk_loc_parse(&v, &l->lat, &l->lon))
		return;		/* a store edited by hand: treat as unknown */
	l->json = dd_strndup(s, n);
}

static void
col_loc(sqlite3_stmt *st, int c, struct loc *l)
{
	size_t n;
	const char *s = dd_col_text(st, c, &n);
	loc_set_text(l, s, n);
}

/* Fill d (already cleared) from a row of SELECT COLS, rowid. */
static void
row_load(sqlite3_stmt *st, struct dlv *d)
{
	{
		size_t n;
		const char *dr = dd_col_text(st, C_DRONE, &n);
		dd_trk_drone_set(d, dr, n);
	}
	col_loc(st, C_LOC, &d->loc);
	col_loc(st, C_PICKUP, &d->pickup);
	col_loc(st, C_DROPOFF, &d->dropoff);
	d->loc_time = dd_col_time(st, C_LOCTIME);
	d->speed = dd_col_real(st, C_SPEED);
	d->battery = dd_col_real(st, C_BATTERY);
	d->pickup_eta = dd_col_time(st, C_PETA);
	d->dropoff_eta = dd_col_time(st, C_DETA);
	d->updated = dd_col_time(st, C_UPDATED);
	d->t_final = dd_col_time(st, C_ENDED);
	if (d->t_final != DD_NOTIME) {
		int s = dd_stage_parse(dd_col_text(st, C_STAGE, NULL), DD_STAGE_TRACK);
		d->fstage = dd_stage_final(s) ? s : DD_STAGE_COMPLETED;
	}
	d->t_sched = dd_col_time(st, C_TSCHED);
	d->t_disp = dd_col_time(st, C_TDISP);
	d->t_pick = dd_col_time(st, C_TPICK);
	d->t_resched = dd_col_time(st, C_TRESCHED);
	d->drone_time = dd_col_time(st, C_DRONETIME);
	d->pickup_time = dd_col_time(st, C_PTIME);
	d->dropoff_time = dd_col_time(st, C_DTIME);
	d->eta_time = dd_col_time(st, C_ETATIME);
	d->pos_ms = dd_col_time(st, C_POSTIME);
	const unsigned char *b = sqlite3_column_blob(st, C_SEEN);
	size_t n = (size_t)sqlite3_column_bytes(st, C_SEEN);
	/* Entries as dd_trk_seen_add packs them; a truncated or empty one
	 * ends the list. */
	size_t i = 0;
	while (n - i >= 9 && b[i + 8] > 0 && n - i - 9 >= b[i + 8])
		i += 9 + b[i + 8];
	if (i > 0) {
		d->seen = dd_malloc(i);
		memcpy(d->seen, b, i);
		d->seenlen = d->seencap = (uint32_t)i;
	}
	d->rowid = sqlite3_column_int64(st, C_N);
}


/* Look a delivery up in the store (when not all of it is in memory). */
static int
store_find(struct dd_track *t, const char *id, size_t n, uint64_t h, struct dlv **out)
{
	*out = NULL;
	dd_bind_text(t->sel, 0, id, n);
	int rc = sqlite3_step(t->sel);
	if (rc == SQLITE_ROW) {
		struct dlv *d = dd_trk_cache_add(t, id, n, h);
		row_load(t->sel, d);
		dd_trk_cache_account(t, d);
		*out = d;
	}
	sqlite3_reset(t->sel);
	sqlite3_clear_bindings(t->sel);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return dd_store_err(&t->s, "reading a delivery");
	return 0;
}

/* Meta values are times or counts, NULL for none: DD_NOTIME both ways. */
int
dd_trk_meta_get(struct dd_store *s, const char *key, int64_t *v)
{
	sqlite3_stmt *st = dd_store_prepare(s, "SELECT value FROM meta WHERE key = ?");
	if (st == NULL)
		return -1;
	dd_bind_text(st, 0, key, (size_t)-1);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && dd_col_time(st, 0) != DD_NOTIME)
		*v = dd_col_time(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : dd_store_err(s, "reading meta");
}

/* Load the deliveries of the store while they fit in half the budget:
 * when all of them do, a miss in memory means a new delivery, and costs
 * no lookup. */
static int
load_all(struct dd_track *t)
{
	sqlite3_stmt *st = dd_store_prepare(&t->s, "SELECT " COLS ", rowid FROM delivery");
	if (st == NULL)
		return -1;
	int rc;
	t->authoritative = 1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (t->mem > t->o.cache_bytes / 2) {
			t->authoritative = 0;
			rc = SQLITE_DONE;
			break;
		}
		size_t n;
		const char *id = dd_col_text(st, C_ID, &n);
		struct dlv *d = dd_trk_cache_add(t, id, n, dd_trk_hash(id, n));
		row_load(st, d);
		dd_trk_cache_account(t, d);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return dd_store_err(&t->s, "loading deliveries");
	return 0;
}

int
dd_track_open(struct dd_track **tp, const char *path, const struct dd_track_opts *o)
{
	struct dd_track *t = dd_calloc(1, sizeof *t);
	*tp = NULL;
	t->o = *o;
	t->lockfd = -1;
	/* A test aid, DD_TRACK_FAULT=commit-kill:N: SIGKILL at the Nth
	 * commit, its coalesced writes made and not committed, the worst
	 * moment for a crash. */
	const char *f = getenv("DD_TRACK_FAULT");
	if (f && strncmp(f, "commit-kill:", 12) == 0)
		t->kill_at = strtol(f + 12, NULL, 10);
	t->max_time = DD_NOTIME;
	/* One tracker per store: two would each hold their own copy of the
	 * live deliveries in memory. Taken before the store is opened (and
	 * migrated); get/list/stats read without it. */
	char *dir = dd_strdup(path), *slash = strrchr(dir, '/');
	int rc = 0;
	if (slash && slash != dir) {
		*slash = '\0';
		rc = dd_mkdirs(dir);
	}
	free(dir);
	if (rc) {
		free(t);
		return DD_EXIT_IO;
	}
	struct dd_buf lp = { 0 };
	dd_buf_printf(&lp, "%s.lock", path);
	t->lockpath = lp.p;
	t->lockfd = dd_lock(t->lockpath);
	if (t->lockfd < 0) {
		rc = -t->lockfd;
		free(t->lockpath);
		free(t);
		return rc;
	}
	rc = dd_store_open(&t->s, path, migrations,
	    (int)(sizeof migrations / sizeof migrations[0]));
	if (rc) {
		close(t->lockfd);
		free(t->lockpath);
		free(t);
		return rc;
	}
	dd_trk_cache_init(t);
	int64_t removed = 0;
	if (dd_trk_meta_get(&t->s, "max_time", &t->max_time) ||
	    dd_trk_meta_get(&t->s, "removed", &removed))
		goto fail_io;
	t->removed = (uint64_t)removed;
	/* Rows are written by rowid (?24), the tracker's (see image_row). */
	if ((t->ins = dd_store_prepare(&t->s, "INSERT INTO delivery (" COLS ", rowid) VALUES "
	    "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")) == NULL ||
	    (t->upd = dd_store_prepare(&t->s, "UPDATE delivery SET stage=?2, drone_id=?3, "
	    "location=?4, location_time=?5, speed=?6, battery=?7, pickup=?8, dropoff=?9, "
	    "pickup_eta=?10, dropoff_eta=?11, updated=?12, ended=?13, t_scheduled=?14, "
	    "t_dispatched=?15, t_picked_up=?16, t_rescheduled=?17, drone_time=?18, "
	    "pickup_time=?19, dropoff_time=?20, eta_time=?21, position_time=?22, seen=?23 "
	    "WHERE rowid=?24")) == NULL ||
	    (t->sel = dd_store_prepare(&t->s, "SELECT " COLS ", rowid FROM delivery WHERE id = ?")) == NULL ||
	    (t->del = dd_store_prepare(&t->s, "DELETE FROM delivery WHERE rowid = ?")) == NULL ||
	    (t->del_expired = dd_store_prepare(&t->s, "DELETE FROM delivery "
	    "WHERE ended IS NOT NULL AND updated < ?")) == NULL ||
	    (t->meta_put = dd_store_prepare(&t->s, "INSERT OR REPLACE INTO meta (key, value) "
	    "VALUES (?, ?)")) == NULL ||
	    (t->tomb_one = dd_store_prepare(&t->s, "INSERT OR REPLACE INTO ended (id, stage, "
	    "ended) VALUES (?, ?, ?)")) == NULL ||
	    (t->tomb_expired = dd_store_prepare(&t->s, "INSERT OR REPLACE INTO ended (id, "
	    "stage, ended) SELECT id, stage, ended FROM delivery WHERE ended IS NOT NULL "
	    "AND updated < ? RETURNING id")) == NULL ||
	    (t->tomb_get = dd_store_prepare(&t->s, "SELECT 1 FROM ended WHERE id = ?")) == NULL ||
	    (t->tomb_prune = dd_store_prepare(&t->s, "DELETE FROM ended WHERE ended < ?")) == NULL)
		goto fail_io;
	{
		sqlite3_stmt *q = dd_store_prepare(&t->s, "SELECT count(*) FROM ended");
		if (q == NULL)
			goto fail_io;
		if (sqlite3_step(q) == SQLITE_ROW)
			t->ntomb = dd_col_int(q, 0);
		sqlite3_finalize(q);
		/* New rows go after every row there is (a rowid freed by a
		 * removal may come again: it names no row then). */
		if ((q = dd_store_prepare(&t->s, "SELECT coalesce(max(rowid), 0) + 1 FROM "
		    "delivery")) == NULL)
			goto fail_io;
		if (sqlite3_step(q) == SQLITE_ROW)
			t->next_rowid = dd_col_int(q, 0);
		sqlite3_finalize(q);
		if (t->next_rowid <= 0) {
			dd_store_err(&t->s, "reading deliveries");
			goto fail_io;
		}
	}
	if (dd_trk_tomb_load(t))
		goto fail_io;
	if (load_all(t))
		goto fail_io;
	*tp = t;
	return 0;
fail_io:
	rc = DD_EXIT_IO;
	{
		char *msg = dd_strdup(dd_errmsg());
		dd_track_close(t);
		dd_seterr("%s", msg);
		free(msg);
	}
	return rc;
}

void
dd_track_close(struct dd_track *t)
{
	if (t == NULL)
		return;
	dd_trk_job_free(t);
	sqlite3_finalize(t->ins);
	sqlite3_finalize(t->upd);
	sqlite3_finalize(t->sel);
	sqlite3_finalize(t->del);
	sqlite3_finalize(t->del_expired);
	sqlite3_finalize(t->meta_put);
	sqlite3_finalize(t->tomb_one);
	sqlite3_finalize(t->tomb_expired);
	sqlite3_finalize(t->tomb_get);
	sqlite3_finalize(t->tomb_prune);
	dd_store_close(&t->s);
	dd_trk_tomb_free(t);
	dd_trk_cache_free(t);
	if (t->lockfd >= 0)
		close(t->lockfd);
	free(t->lockpath);
	dd_buf_free(&t->out);
	dd_buf_free(&t->tmp);
	dd_buf_free(&t->str);
	free(t);
}

/* Events older than the horizon are late, and ended deliveries last
 * updated before it are removed. */
int64_t
dd_trk_horizon(const struct dd_track *t)
{
	if (t->max_time == DD_NOTIME)
		return DD_NOTIME;
	return t->max_time - t->o.retain_ms;
}

int
dd_trk_expired(const struct dd_track *t, const struct dlv *d)
{
	int64_t h = dd_trk_horizon(t);
	return d->fstage && h != DD_NOTIME && d->updated < h;
}

int
dd_trk_lookup(struct dd_track *t, const char *id, size_t n, struct dlv **dp)
{
	uint64_t h = dd_trk_hash(id, n);
	struct dlv *d = dd_trk_cache_find(t, id, n, h);
	*dp = NULL;
	/* The store is read only with no commit in flight (track-commit.c). */
	if (d == NULL && !t->authoritative && (dd_trk_join(t) || store_find(t, id, n, h, &d)))
		return -1;
	/* Ended and past --retain: over, as the next commit records with
	 * its tombstone; nothing brings it back. */
	if (d && dd_trk_expired(t, d))
		return 1;
	if (d == NULL && dd_trk_tomb_maybe(t, h)) {
		if (dd_trk_join(t))
			return -1;
		dd_bind_text(t->tomb_get, 0, id, n);
		int rc = sqlite3_step(t->tomb_get);
		sqlite3_reset(t->tomb_get);
		if (rc == SQLITE_ROW)
			return 1;
		if (rc != SQLITE_DONE)
			return dd_store_err(&t->s, "reading removed deliveries");
	}
	*dp = d ? d : dd_trk_cache_add(t, id, n, h);
	return 0;
}

void
dd_track_summary(struct dd_track *t, struct dd_buf *b)
{
	dd_buf_printf(b, ", emitted %" PRIu64 ", duplicates %" PRIu64 ", late %" PRIu64
	    " (dropped), late ends %" PRIu64 " (applied), removed %" PRIu64 ", after removal %"
	    PRIu64 ", live %zu", t->emitted, t->dups, t->late, t->late_ends, t->removed_run,
	    t->after_removal, t->n);
}

/* ---- the filter ---- */

static enum dd_verdict
on_event(void *ctx, const struct dd_line *l, const struct dd_env *e)
{
	return dd_track_event(ctx, l, e);
}

static int
on_commit(void *ctx)
{
	return dd_track_commit(ctx);
}

/* The last commit is on disk before the run reports how it went. */
static int
on_finish(void *ctx, int code)
{
	return dd_trk_join(ctx);
}

static void
on_summary(void *ctx, struct dd_buf *b)
{
	dd_track_summary(ctx, b);
}

int
dd_track_filter(struct dd_track *t, const struct dd_filter_opts *fo)
{
	static const char *const families[] = { "delivery.", "drone.", NULL };
	struct dd_filter_ops ops = { .event = on_event, .commit = on_commit, .families = families,
		.summary = on_summary, .finish = on_finish, .store = &t->s };
	return dd_filter_run(fo, &ops, t, NULL);
}

