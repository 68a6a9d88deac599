#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ddtime.h"
#include "exitcodes.h"
#include "json.h"
#include "store.h"
#include "track.h"

/* "No time": an aggregate not set yet (NULL in the store). */
#define NONE INT64_MIN
/* Below this speed (hovering, loading) the drone gives no ETA. */
#define MIN_SPEED 0.5
#define EARTH_M 6371008.8

static const char *const stage_names[DD_NSTAGES] = {
	"unknown", "created", "rescheduled", "headed-to-pickup", "headed-to-dropoff",
	"completed", "cancelled", "failed",
};

const char *
dd_stage_name(enum dd_stage s)
{
	return (unsigned)s < DD_NSTAGES ? stage_names[s] : "unknown";
}

int
dd_stage_parse(const char *s)
{
	for (int i = 0; i < DD_NSTAGES; i++)
		if (strcmp(s, stage_names[i]) == 0)
			return i;
	return -1;
}

static int
is_final(int s)
{
	return s >= DD_STAGE_COMPLETED;
}

void
dd_track_defaults(struct dd_track_opts *o)
{
	memset(o, 0, sizeof *o);
	o->retain_ms = 3600 * 1000;
	o->cache_max = 100000;
	o->out = stdout;
}

/* ---- one delivery ---- */

struct seen {
	uint64_t h;		/* hash of an applied event's id */
	int64_t t;		/* its time: pruned once it is too old to recur */
};

struct loc {
	char *json;		/* the location object as received */
	double lat, lon;
};

struct dlv {
	struct dlv *next;	/* hash chain */
	struct dlv *dnext;	/* list of changed deliveries */
	uint64_t hash;
	char *id;
	size_t idlen;
	int dirty, in_db;
	/* The aggregates the stage is computed from. */
	int64_t t_sched, t_disp, t_pick, t_resched;
	int fstage;		/* earliest final event, or 0 */
	int64_t t_final;
	int64_t updated;	/* newest event applied */
	char *drone;
	int64_t drone_time;
	struct loc loc, pickup, dropoff;
	int64_t loc_time, pickup_time, dropoff_time;
	double speed, battery;	/* NAN: not reported */
	int64_t pickup_eta, dropoff_eta, eta_time;
	int64_t pos_ms;		/* bucket of the last position status */
	struct seen *seen;
	size_t nseen, capseen;
};

/* The stage as a function of the aggregates (see track.h). */
static int
stage_of(const struct dlv *d)
{
	if (d->fstage)
		return d->fstage;
	if (d->t_pick != NONE && d->t_pick > d->t_resched)
		return DD_STAGE_HEADED_TO_DROPOFF;
	if (d->t_disp != NONE && d->t_disp > d->t_resched)
		return DD_STAGE_HEADED_TO_PICKUP;
	if (d->t_sched != NONE && d->t_sched > d->t_resched)
		return DD_STAGE_CREATED;
	if (d->t_resched != NONE)
		return DD_STAGE_RESCHEDULED;
	return DD_STAGE_UNKNOWN;
}

static void
loc_free(struct loc *l)
{
	free(l->json);
	l->json = NULL;
}

static void
dlv_clear(struct dlv *d)
{
	free(d->drone);
	loc_free(&d->loc);
	loc_free(&d->pickup);
	loc_free(&d->dropoff);
	free(d->seen);
	d->drone = NULL;
	d->seen = NULL;
	d->nseen = d->capseen = 0;
	d->t_sched = d->t_disp = d->t_pick = d->t_resched = NONE;
	d->fstage = 0;
	d->t_final = d->updated = d->drone_time = NONE;
	d->loc_time = d->pickup_time = d->dropoff_time = NONE;
	d->pickup_eta = d->dropoff_eta = d->eta_time = d->pos_ms = NONE;
	d->speed = d->battery = NAN;
}

static void
dlv_free(struct dlv *d)
{
	dlv_clear(d);
	free(d->id);
	free(d);
}

static int
seen_has(const struct dlv *d, uint64_t h)
{
	for (size_t i = 0; i < d->nseen; i++)
		if (d->seen[i].h == h)
			return 1;
	return 0;
}

static void
seen_add(struct dlv *d, uint64_t h, int64_t t)
{
	if (d->nseen == d->capseen) {
		d->capseen = d->capseen ? d->capseen * 2 : 8;
		d->seen = dd_realloc(d->seen, d->capseen * sizeof *d->seen);
	}
	d->seen[d->nseen].h = h;
	d->seen[d->nseen].t = t;
	d->nseen++;
}

/* Forget the ids of events older than horizon: one of them coming again
 * is late, and late events are dropped before the duplicate check. */
static void
seen_prune(struct dlv *d, int64_t horizon)
{
	size_t j = 0;
	for (size_t i = 0; i < d->nseen; i++)
		if (d->seen[i].t >= horizon)
			d->seen[j++] = d->seen[i];
	d->nseen = j;
}

/* Great-circle distance in metres. */
static double
haversine(double lat1, double lon1, double lat2, double lon2)
{
	double r = M_PI / 180;
	double dlat = (lat2 - lat1) * r, dlon = (lon2 - lon1) * r;
	double a = sin(dlat / 2) * sin(dlat / 2) +
	    cos(lat1 * r) * cos(lat2 * r) * sin(dlon / 2) * sin(dlon / 2);
	return 2 * EARTH_M * asin(sqrt(a > 1 ? 1 : a));
}

static int64_t
eta_after(int64_t t, double metres, double speed)
{
	return t + (int64_t)llround(metres / speed * 1000);
}

/* Recompute the ETAs from the newest position and speed. */
static void
eta_update(struct dlv *d)
{
	if (d->loc.json == NULL || isnan(d->speed) || d->speed < MIN_SPEED ||
	    d->loc_time < d->eta_time)
		return;
	double v = d->speed;
	switch (stage_of(d)) {
	case DD_STAGE_UNKNOWN:
	case DD_STAGE_CREATED:
	case DD_STAGE_RESCHEDULED:
	case DD_STAGE_HEADED_TO_PICKUP:
		if (d->pickup.json == NULL)
			return;
		d->pickup_eta = eta_after(d->loc_time,
		    haversine(d->loc.lat, d->loc.lon, d->pickup.lat, d->pickup.lon), v);
		if (d->dropoff.json)
			d->dropoff_eta = eta_after(d->pickup_eta, haversine(d->pickup.lat,
			    d->pickup.lon, d->dropoff.lat, d->dropoff.lon), v);
		break;
	case DD_STAGE_HEADED_TO_DROPOFF:
		if (d->dropoff.json == NULL)
			return;
		d->dropoff_eta = eta_after(d->loc_time,
		    haversine(d->loc.lat, d->loc.lon, d->dropoff.lat, d->dropoff.lon), v);
		break;
	default:
		return;
	}
	d->eta_time = d->loc_time;
}

/* ---- the tracker ---- */

struct dd_track {
	struct dd_track_opts o;
	struct dd_store s;
	char *lockpath;
	int lockfd;
	struct dlv **tab;
	size_t nb, n;
	struct dlv *dirty;
	int authoritative;	/* every delivery of the store is in memory */
	int64_t max_time;	/* newest event time seen (the stream's clock) */
	uint64_t removed;	/* deliveries removed, ever (stored) */
	uint64_t emitted, dups, late, removed_run, after_removal;
	int64_t ntomb;		/* rows in ended: none, no lookups */
	sqlite3_stmt *ins, *upd, *sel, *del, *del_expired, *meta_put;
	sqlite3_stmt *tomb_one, *tomb_expired, *tomb_get, *tomb_prune;
	struct dd_buf out, tmp, str;
};

static const char *const migrations[] = {
	/* 1: live deliveries. Times are epoch milliseconds (NULL: none);
	 * locations are the JSON objects as received. The t_* columns and
	 * seen (ids of recent events, 16 bytes each: hash, time) are the
	 * engine's state; stage and ended are derived from them. */
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
};

/* How long, in event time, a removed delivery's id is remembered. */
#define TOMBSTONE_MS (7 * 86400000LL)

#define COLS "id, stage, drone_id, location, location_time, speed, battery, pickup, " \
	"dropoff, pickup_eta, dropoff_eta, updated, ended, t_scheduled, t_dispatched, " \
	"t_picked_up, t_rescheduled, drone_time, pickup_time, dropoff_time, eta_time, " \
	"position_time, seen"
enum {
	C_ID, C_STAGE, C_DRONE, C_LOC, C_LOCTIME, C_SPEED, C_BATTERY, C_PICKUP,
	C_DROPOFF, C_PETA, C_DETA, C_UPDATED, C_ENDED, C_TSCHED, C_TDISP, C_TPICK,
	C_TRESCHED, C_DRONETIME, C_PTIME, C_DTIME, C_ETATIME, C_POSTIME, C_SEEN, C_N
};

static uint64_t
hash_id(const char *id, size_t n)
{
	return dd_hash64(id, n);
}

static struct dlv *
cache_find(struct dd_track *t, const char *id, size_t n, uint64_t h)
{
	for (struct dlv *d = t->tab[h & (t->nb - 1)]; d; d = d->next)
		if (d->hash == h && d->idlen == n && memcmp(d->id, id, n) == 0)
			return d;
	return NULL;
}

static void
cache_grow(struct dd_track *t)
{
	size_t nb = t->nb ? t->nb * 2 : 1024;
	struct dlv **tab = dd_calloc(nb, sizeof *tab);
	for (size_t i = 0; i < t->nb; i++) {
		for (struct dlv *d = t->tab[i], *next; d; d = next) {
			next = d->next;
			d->next = tab[d->hash & (nb - 1)];
			tab[d->hash & (nb - 1)] = d;
		}
	}
	free(t->tab);
	t->tab = tab;
	t->nb = nb;
}

static struct dlv *
cache_add(struct dd_track *t, const char *id, size_t n, uint64_t h)
{
	if (t->n >= t->nb)
		cache_grow(t);
	struct dlv *d = dd_calloc(1, sizeof *d);
	d->id = dd_strndup(id, n);
	d->idlen = n;
	d->hash = h;
	dlv_clear(d);
	d->next = t->tab[h & (t->nb - 1)];
	t->tab[h & (t->nb - 1)] = d;
	t->n++;
	return d;
}

static void
cache_unlink(struct dd_track *t, struct dlv *d)
{
	struct dlv **pp = &t->tab[d->hash & (t->nb - 1)];
	while (*pp != d)
		pp = &(*pp)->next;
	*pp = d->next;
	t->n--;
}

static void
mark_dirty(struct dd_track *t, struct dlv *d)
{
	if (!d->dirty) {
		d->dirty = 1;
		d->dnext = t->dirty;
		t->dirty = d;
	}
}

/* ---- reading and writing rows ---- */

static int64_t
col_time(sqlite3_stmt *st, int c)
{
	return sqlite3_column_type(st, c) == SQLITE_NULL ? NONE : sqlite3_column_int64(st, c);
}

static double
col_real(sqlite3_stmt *st, int c)
{
	return sqlite3_column_type(st, c) == SQLITE_NULL ? NAN : sqlite3_column_double(st, c);
}

static char *
col_strdup(sqlite3_stmt *st, int c)
{
	const unsigned char *s = sqlite3_column_text(st, c);
	return s ? dd_strndup((const char *)s, (size_t)sqlite3_column_bytes(st, c)) : NULL;
}

/* A location object {lat, lon[, alt]}: 0 with the coordinates, or -1.
 * One pass over its members (this runs for every position). */
static int
loc_parse(const struct dd_jval *v, double *lat, double *lon)
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
	if (dd_json_validate(s, n, NULL) || loc_parse(&v, &l->lat, &l->lon))
		return;		/* a store edited by hand: treat as unknown */
	l->json = dd_strndup(s, n);
}

static void
col_loc(sqlite3_stmt *st, int c, struct loc *l)
{
	loc_set_text(l, (const char *)sqlite3_column_text(st, c),
	    (size_t)sqlite3_column_bytes(st, c));
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
put_le64(struct dd_buf *b, uint64_t v)
{
	unsigned char c[8];
	for (int i = 0; i < 8; i++, v >>= 8)
		c[i] = (unsigned char)v;
	dd_buf_add(b, c, 8);
}

/* Fill d (already cleared) from a row of SELECT COLS. */
static void
row_load(sqlite3_stmt *st, struct dlv *d)
{
	d->drone = col_strdup(st, C_DRONE);
	col_loc(st, C_LOC, &d->loc);
	col_loc(st, C_PICKUP, &d->pickup);
	col_loc(st, C_DROPOFF, &d->dropoff);
	d->loc_time = col_time(st, C_LOCTIME);
	d->speed = col_real(st, C_SPEED);
	d->battery = col_real(st, C_BATTERY);
	d->pickup_eta = col_time(st, C_PETA);
	d->dropoff_eta = col_time(st, C_DETA);
	d->updated = col_time(st, C_UPDATED);
	d->t_final = col_time(st, C_ENDED);
	if (d->t_final != NONE) {
		int s = dd_stage_parse((const char *)sqlite3_column_text(st, C_STAGE));
		d->fstage = is_final(s) ? s : DD_STAGE_COMPLETED;
	}
	d->t_sched = col_time(st, C_TSCHED);
	d->t_disp = col_time(st, C_TDISP);
	d->t_pick = col_time(st, C_TPICK);
	d->t_resched = col_time(st, C_TRESCHED);
	d->drone_time = col_time(st, C_DRONETIME);
	d->pickup_time = col_time(st, C_PTIME);
	d->dropoff_time = col_time(st, C_DTIME);
	d->eta_time = col_time(st, C_ETATIME);
	d->pos_ms = col_time(st, C_POSTIME);
	const unsigned char *b = sqlite3_column_blob(st, C_SEEN);
	size_t n = (size_t)sqlite3_column_bytes(st, C_SEEN) / 16;
	for (size_t i = 0; i < n; i++)
		seen_add(d, get_le64(b + 16 * i), (int64_t)get_le64(b + 16 * i + 8));
	d->in_db = 1;
}

static void
bind_time(sqlite3_stmt *st, int c, int64_t v)
{
	if (v == NONE)
		sqlite3_bind_null(st, c + 1);
	else
		sqlite3_bind_int64(st, c + 1, v);
}

static void
bind_real(sqlite3_stmt *st, int c, double v)
{
	if (isnan(v))
		sqlite3_bind_null(st, c + 1);
	else
		sqlite3_bind_double(st, c + 1, v);
}

static void
bind_text(sqlite3_stmt *st, int c, const char *s)
{
	if (s)
		sqlite3_bind_text(st, c + 1, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, c + 1);
}

static int
row_write(struct dd_track *t, struct dlv *d, int64_t horizon)
{
	sqlite3_stmt *st = d->in_db ? t->upd : t->ins;
	seen_prune(d, horizon);
	dd_buf_reset(&t->tmp);
	for (size_t i = 0; i < d->nseen; i++) {
		put_le64(&t->tmp, d->seen[i].h);
		put_le64(&t->tmp, (uint64_t)d->seen[i].t);
	}
	sqlite3_bind_text(st, C_ID + 1, d->id, (int)d->idlen, SQLITE_STATIC);
	bind_text(st, C_STAGE, dd_stage_name(stage_of(d)));
	bind_text(st, C_DRONE, d->drone);
	bind_text(st, C_LOC, d->loc.json);
	bind_time(st, C_LOCTIME, d->loc_time);
	bind_real(st, C_SPEED, d->speed);
	bind_real(st, C_BATTERY, d->battery);
	bind_text(st, C_PICKUP, d->pickup.json);
	bind_text(st, C_DROPOFF, d->dropoff.json);
	bind_time(st, C_PETA, d->pickup_eta);
	bind_time(st, C_DETA, d->dropoff_eta);
	bind_time(st, C_UPDATED, d->updated);
	bind_time(st, C_ENDED, d->fstage ? d->t_final : NONE);
	bind_time(st, C_TSCHED, d->t_sched);
	bind_time(st, C_TDISP, d->t_disp);
	bind_time(st, C_TPICK, d->t_pick);
	bind_time(st, C_TRESCHED, d->t_resched);
	bind_time(st, C_DRONETIME, d->drone_time);
	bind_time(st, C_PTIME, d->pickup_time);
	bind_time(st, C_DTIME, d->dropoff_time);
	bind_time(st, C_ETATIME, d->eta_time);
	bind_time(st, C_POSTIME, d->pos_ms);
	sqlite3_bind_blob(st, C_SEEN + 1, t->tmp.p ? t->tmp.p : "", (int)t->tmp.len,
	    SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return dd_store_err(&t->s, "writing a delivery");
	d->in_db = 1;
	return 0;
}

/* Look a delivery up in the store (when not all of it is in memory). */
static int
store_find(struct dd_track *t, const char *id, size_t n, uint64_t h, struct dlv **out)
{
	*out = NULL;
	sqlite3_bind_text(t->sel, 1, id, (int)n, SQLITE_STATIC);
	int rc = sqlite3_step(t->sel);
	if (rc == SQLITE_ROW) {
		struct dlv *d = cache_add(t, id, n, h);
		row_load(t->sel, d);
		*out = d;
	}
	sqlite3_reset(t->sel);
	sqlite3_clear_bindings(t->sel);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return dd_store_err(&t->s, "reading a delivery");
	return 0;
}

static int
meta_get(struct dd_store *s, const char *key, int64_t *v)
{
	sqlite3_stmt *st = dd_store_prepare(s, "SELECT value FROM meta WHERE key = ?");
	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		*v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : dd_store_err(s, "reading meta");
}

static int
meta_put(struct dd_track *t, const char *key, int64_t v)
{
	sqlite3_bind_text(t->meta_put, 1, key, -1, SQLITE_STATIC);
	if (v == NONE)
		sqlite3_bind_null(t->meta_put, 2);
	else
		sqlite3_bind_int64(t->meta_put, 2, v);
	int rc = sqlite3_step(t->meta_put);
	sqlite3_reset(t->meta_put);
	return rc == SQLITE_DONE ? 0 : dd_store_err(&t->s, "writing meta");
}

/* Load every delivery when the store is small enough: then a miss in
 * memory means a new delivery, and costs no lookup. */
static int
load_all(struct dd_track *t)
{
	sqlite3_stmt *st = dd_store_prepare(&t->s, "SELECT count(*) FROM delivery");
	if (st == NULL)
		return -1;
	int64_t count = 0;
	if (sqlite3_step(st) == SQLITE_ROW)
		count = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (count > (int64_t)(t->o.cache_max / 2)) {
		t->authoritative = 0;
		return 0;
	}
	if ((st = dd_store_prepare(&t->s, "SELECT " COLS " FROM delivery")) == NULL)
		return -1;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, C_ID);
		size_t n = (size_t)sqlite3_column_bytes(st, C_ID);
		row_load(st, cache_add(t, id, n, hash_id(id, n)));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return dd_store_err(&t->s, "loading deliveries");
	t->authoritative = 1;
	return 0;
}

int
dd_track_open(struct dd_track **tp, const char *path, const struct dd_track_opts *o)
{
	struct dd_track *t = dd_calloc(1, sizeof *t);
	*tp = NULL;
	t->o = *o;
	t->lockfd = -1;
	t->max_time = NONE;
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
	cache_grow(t);
	int64_t removed = 0;
	if (meta_get(&t->s, "max_time", &t->max_time) || meta_get(&t->s, "removed", &removed))
		goto fail_io;
	t->removed = (uint64_t)removed;
	if ((t->ins = dd_store_prepare(&t->s, "INSERT INTO delivery (" COLS ") VALUES "
	    "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")) == NULL ||
	    (t->upd = dd_store_prepare(&t->s, "UPDATE delivery SET stage=?2, drone_id=?3, "
	    "location=?4, location_time=?5, speed=?6, battery=?7, pickup=?8, dropoff=?9, "
	    "pickup_eta=?10, dropoff_eta=?11, updated=?12, ended=?13, t_scheduled=?14, "
	    "t_dispatched=?15, t_picked_up=?16, t_rescheduled=?17, drone_time=?18, "
	    "pickup_time=?19, dropoff_time=?20, eta_time=?21, position_time=?22, seen=?23 "
	    "WHERE id=?1")) == NULL ||
	    (t->sel = dd_store_prepare(&t->s, "SELECT " COLS " FROM delivery WHERE id = ?")) == NULL ||
	    (t->del = dd_store_prepare(&t->s, "DELETE FROM delivery WHERE id = ?")) == NULL ||
	    (t->del_expired = dd_store_prepare(&t->s, "DELETE FROM delivery "
	    "WHERE ended IS NOT NULL AND updated < ?")) == NULL ||
	    (t->meta_put = dd_store_prepare(&t->s, "INSERT OR REPLACE INTO meta (key, value) "
	    "VALUES (?, ?)")) == NULL ||
	    (t->tomb_one = dd_store_prepare(&t->s, "INSERT OR REPLACE INTO ended (id, stage, "
	    "ended) VALUES (?, ?, ?)")) == NULL ||
	    (t->tomb_expired = dd_store_prepare(&t->s, "INSERT OR REPLACE INTO ended (id, "
	    "stage, ended) SELECT id, stage, ended FROM delivery WHERE ended IS NOT NULL "
	    "AND updated < ?")) == NULL ||
	    (t->tomb_get = dd_store_prepare(&t->s, "SELECT 1 FROM ended WHERE id = ?")) == NULL ||
	    (t->tomb_prune = dd_store_prepare(&t->s, "DELETE FROM ended WHERE ended < ?")) == NULL)
		goto fail_io;
	{
		sqlite3_stmt *q = dd_store_prepare(&t->s, "SELECT count(*) FROM ended");
		if (q == NULL)
			goto fail_io;
		if (sqlite3_step(q) == SQLITE_ROW)
			t->ntomb = sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
	}
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
	for (size_t i = 0; i < t->nb; i++)
		for (struct dlv *d = t->tab[i], *next; d; d = next) {
			next = d->next;
			dlv_free(d);
		}
	free(t->tab);
	if (t->lockfd >= 0)
		close(t->lockfd);
	free(t->lockpath);
	dd_buf_free(&t->out);
	dd_buf_free(&t->tmp);
	dd_buf_free(&t->str);
	free(t);
}

/* The oldest event time that still counts: events older than this are
 * late, and ended deliveries last updated before it are removed. */
static int64_t
horizon(const struct dd_track *t)
{
	if (t->max_time == NONE)
		return NONE;
	return t->max_time - t->o.retain_ms;
}

static int
expired(const struct dd_track *t, const struct dlv *d)
{
	int64_t h = horizon(t);
	return d->fstage && h != NONE && d->updated < h;
}

int
dd_track_commit(struct dd_track *t)
{
	int64_t h = horizon(t);
	if (dd_store_begin(&t->s))
		return -1;
	/* Changed deliveries: written, or deleted when they have expired. */
	for (struct dlv *d = t->dirty, *next; d; d = next) {
		next = d->dnext;
		d->dirty = 0;
		d->dnext = NULL;
		if (expired(t, d)) {
			if (d->in_db) {
				sqlite3_bind_text(t->del, 1, d->id, (int)d->idlen, SQLITE_STATIC);
				int rc = sqlite3_step(t->del);
				sqlite3_reset(t->del);
				if (rc != SQLITE_DONE)
					goto fail;
			}
			sqlite3_bind_text(t->tomb_one, 1, d->id, (int)d->idlen, SQLITE_STATIC);
			sqlite3_bind_text(t->tomb_one, 2, dd_stage_name(d->fstage), -1,
			    SQLITE_STATIC);
			sqlite3_bind_int64(t->tomb_one, 3, d->t_final);
			int trc = sqlite3_step(t->tomb_one);
			sqlite3_reset(t->tomb_one);
			if (trc != SQLITE_DONE)
				goto fail;
			t->ntomb++;
			cache_unlink(t, d);
			dlv_free(d);
			t->removed++;
			t->removed_run++;
			continue;
		}
		if (row_write(t, d, h))
			goto fail_msg;
	}
	t->dirty = NULL;
	if (h != NONE) {
		/* Expired deliveries not changed in this batch: their rows are
		 * current, so one DELETE removes them (and those not in memory). */
		for (size_t i = 0; i < t->nb; i++) {
			for (struct dlv **pp = &t->tab[i], *d; (d = *pp) != NULL; ) {
				if (expired(t, d)) {
					*pp = d->next;
					t->n--;
					dlv_free(d);
				} else {
					pp = &d->next;
				}
			}
		}
		sqlite3_bind_int64(t->tomb_expired, 1, h);
		int rc = sqlite3_step(t->tomb_expired);
		sqlite3_reset(t->tomb_expired);
		if (rc != SQLITE_DONE)
			goto fail;
		t->ntomb += sqlite3_changes(t->s.db);
		sqlite3_bind_int64(t->del_expired, 1, h);
		rc = sqlite3_step(t->del_expired);
		sqlite3_reset(t->del_expired);
		if (rc != SQLITE_DONE)
			goto fail;
		uint64_t n = (uint64_t)sqlite3_changes(t->s.db);
		t->removed += n;
		t->removed_run += n;
		if (t->ntomb > 0) {
			sqlite3_bind_int64(t->tomb_prune, 1, h - TOMBSTONE_MS);
			rc = sqlite3_step(t->tomb_prune);
			sqlite3_reset(t->tomb_prune);
			if (rc != SQLITE_DONE)
				goto fail;
			t->ntomb -= sqlite3_changes(t->s.db);
		}
	}
	if (meta_put(t, "max_time", t->max_time) || meta_put(t, "removed", (int64_t)t->removed))
		goto fail_msg;
	if (dd_store_commit(&t->s))
		return -1;
	/* Bound the memory: evict clean deliveries (all are clean now); they
	 * are read back from the store when they are needed again. */
	if (t->n > t->o.cache_max) {
		size_t keep = t->o.cache_max * 3 / 4;
		for (size_t i = 0; i < t->nb && t->n > keep; i++) {
			while (t->tab[i] && t->n > keep) {
				struct dlv *d = t->tab[i];
				t->tab[i] = d->next;
				t->n--;
				dlv_free(d);
			}
		}
		t->authoritative = 0;
	}
	return 0;
fail:
	dd_store_err(&t->s, "removing deliveries");
fail_msg:
	{
		char *msg = dd_strdup(dd_errmsg());
		dd_store_rollback(&t->s);
		dd_seterr("%s", msg);
		free(msg);
	}
	return -1;
}

void
dd_track_summary(struct dd_track *t, struct dd_buf *b)
{
	dd_buf_printf(b, ", emitted %" PRIu64 ", duplicates %" PRIu64 ", late %" PRIu64
	    ", removed %" PRIu64 ", after removal %" PRIu64 ", live %zu", t->emitted, t->dups,
	    t->late, t->removed_run, t->after_removal, t->n);
}

/* ---- events ---- */

enum kind {
	K_NONE, K_SCHEDULED, K_RESCHEDULED, K_CANCELLED, K_DISPATCHED, K_POSITION,
	K_PICKEDUP, K_DELIVERED, K_FAILED, K_RETURNED,
};

static enum kind
kind_of(const struct dd_env *e)
{
	if (dd_env_type_has_prefix(e, "drone.")) {
		if (dd_env_type_is(e, "drone.position")) return K_POSITION;
		if (dd_env_type_is(e, "drone.dispatched")) return K_DISPATCHED;
		if (dd_env_type_is(e, "drone.picked-up")) return K_PICKEDUP;
		if (dd_env_type_is(e, "drone.delivered")) return K_DELIVERED;
		if (dd_env_type_is(e, "drone.failed")) return K_FAILED;
		if (dd_env_type_is(e, "drone.returned")) return K_RETURNED;
	} else if (dd_env_type_has_prefix(e, "delivery.")) {
		if (dd_env_type_is(e, "delivery.scheduled")) return K_SCHEDULED;
		if (dd_env_type_is(e, "delivery.rescheduled")) return K_RESCHEDULED;
		if (dd_env_type_is(e, "delivery.cancelled")) return K_CANCELLED;
	}
	return K_NONE;
}

/* What one event says, checked before anything changes. */
struct fact {
	enum kind k;
	char did[DD_ID_MAX + 1];
	size_t didlen;
	struct dd_jval drone;		/* string or none */
	struct dd_jval loc;		/* location object or none */
	double lat, lon;
	struct dd_jval pickup, dropoff;
	double plat, plon, dlat, dlon;
	int has_speed, has_battery;
	double speed, battery;
	int64_t peta, deta;		/* NONE when not given */
};

static int
bad(const char *field, const char *what)
{
	dd_seterr("\"data.%s\" %s", field, what);
	return -1;
}

static int
opt_loc(const struct dd_jval *v, const char *key, double *lat, double *lon)
{
	if (v->type == DD_JNONE || v->type == DD_JNULL)
		return 0;
	if (loc_parse(v, lat, lon))
		return bad(key, "is not a location {lat, lon} in range");
	return 0;
}

static int
opt_time(const struct dd_jval *v, const char *key, int64_t *ms)
{
	*ms = NONE;
	if (v->type == DD_JNONE)
		return 0;
	if (v->type != DD_JSTR || v->esc || dd_time_parse(v->p, v->n, ms))
		return bad(key, "is not an RFC 3339 time");
	return 0;
}

static int
opt_num(const struct dd_jval *v, const char *key, double lo, double hi, int *has, double *x)
{
	*has = 0;
	if (v->type == DD_JNONE)
		return 0;
	if (dd_jnum_double(v, x) || *x < lo || *x > hi)
		return bad(key, "is not a number in range");
	*has = 1;
	return 0;
}

static int
key_is(const struct dd_jval *k, const char *s, size_t n)
{
	return k->esc ? dd_jstr_eq(k, s, n) : k->n == n && memcmp(k->p, s, n) == 0;
}
#define KEY_IS(k, lit) key_is(k, lit, sizeof lit - 1)

static int
read_data(const struct dd_env *e, struct fact *f)
{
	/* One pass over data for every member used (the last of duplicate
	 * keys wins, as with dd_json_get). */
	struct dd_jval k, v, did = { 0 }, pe = { 0 }, de = { 0 }, sp = { 0 }, bat = { 0 };
	struct dd_jval reason = { 0 };
	size_t pos = 0;
	f->drone.type = f->loc.type = f->pickup.type = f->dropoff.type = DD_JNONE;
	while (dd_json_next(&e->data, &pos, &k, &v)) {
		switch (k.n ? k.p[0] : 0) {
		case 'b': if (KEY_IS(&k, "battery")) bat = v; break;
		case 'd':
			if (KEY_IS(&k, "droneId")) f->drone = v;
			else if (KEY_IS(&k, "deliveryId")) did = v;
			else if (KEY_IS(&k, "dropoff")) f->dropoff = v;
			else if (KEY_IS(&k, "dropoffEta")) de = v;
			break;
		case 'l': if (KEY_IS(&k, "location")) f->loc = v; break;
		case 'p':
			if (KEY_IS(&k, "pickup")) f->pickup = v;
			else if (KEY_IS(&k, "pickupEta")) pe = v;
			break;
		case 's': if (KEY_IS(&k, "speedMps")) sp = v; break;
		case 'r': if (KEY_IS(&k, "reason")) reason = v; break;
		default:
			/* An escaped key: compare it decoded. */
			if (k.esc) {
				if (KEY_IS(&k, "battery")) bat = v;
				else if (KEY_IS(&k, "droneId")) f->drone = v;
				else if (KEY_IS(&k, "deliveryId")) did = v;
				else if (KEY_IS(&k, "location")) f->loc = v;
				else if (KEY_IS(&k, "speedMps")) sp = v;
				else if (KEY_IS(&k, "pickup")) f->pickup = v;
				else if (KEY_IS(&k, "dropoff")) f->dropoff = v;
				else if (KEY_IS(&k, "pickupEta")) pe = v;
				else if (KEY_IS(&k, "dropoffEta")) de = v;
				else if (KEY_IS(&k, "reason")) reason = v;
			}
		}
	}
	/* What dd_event_check_data requires of telemetry (see read_fact). */
	if (f->k >= K_DISPATCHED) {
		if (f->drone.type == DD_JNONE)
			return bad("droneId", "is missing");
		if (f->k == K_POSITION && (f->loc.type == DD_JNONE || sp.type == DD_JNONE ||
		    bat.type == DD_JNONE))
			return bad(f->loc.type == DD_JNONE ? "location" :
			    sp.type == DD_JNONE ? "speedMps" : "battery", "is missing");
		if (f->k == K_FAILED && reason.type != DD_JSTR)
			return bad("reason", "is missing or not a string");
	}
	if (f->k <= K_CANCELLED) {
		int n = dd_env_str(&did, f->did, sizeof f->did);	/* a string: checked */
		if (n <= 0)
			return bad("deliveryId", "is empty or longer than 128 bytes");
		f->didlen = (size_t)n;
	} else {
		if (e->subject.type == DD_JNONE) {
			dd_seterr("missing \"subject\" (the delivery id)");
			return -1;
		}
		int n = dd_env_str(&e->subject, f->did, sizeof f->did);
		if (n <= 0) {
			dd_seterr("\"subject\" is longer than %d bytes", DD_ID_MAX);
			return -1;
		}
		f->didlen = (size_t)n;
	}
	if (f->drone.type == DD_JNULL)
		f->drone.type = DD_JNONE;
	else if (f->drone.type != DD_JNONE && (f->drone.type != DD_JSTR || f->drone.n == 0))
		return bad("droneId", "is not a non-empty string");
	if (opt_loc(&f->loc, "location", &f->lat, &f->lon) ||
	    opt_num(&sp, "speedMps", 0, 1e6, &f->has_speed, &f->speed) ||
	    opt_num(&bat, "battery", 0, 1, &f->has_battery, &f->battery))
		return -1;
	if (f->loc.type == DD_JNULL)
		f->loc.type = DD_JNONE;
	f->peta = f->deta = NONE;
	if (f->k == K_SCHEDULED || f->k == K_RESCHEDULED) {
		if (opt_loc(&f->pickup, "pickup", &f->plat, &f->plon) ||
		    opt_loc(&f->dropoff, "dropoff", &f->dlat, &f->dlon) ||
		    opt_time(&pe, "pickupEta", &f->peta) || opt_time(&de, "dropoffEta", &f->deta))
			return -1;
		if (f->pickup.type == DD_JNULL)
			f->pickup.type = DD_JNONE;
		if (f->dropoff.type == DD_JNULL)
			f->dropoff.type = DD_JNONE;
	} else {
		f->pickup.type = f->dropoff.type = DD_JNONE;
	}
	return 0;
}

/*
 * The data of one event, checked. delivery.* events are few: the
 * library's per-type check runs first. Telemetry is the bulk: read_data
 * checks all that the library checks of drone.* (and more) in its one
 * pass, and the library's check runs only for a bad event, so its
 * wording wins where it has something to say.
 */
static int
read_fact(const struct dd_env *e, struct fact *f)
{
	if (f->k <= K_CANCELLED && dd_event_check_data(e))
		return -1;
	if (read_data(e, f) == 0)
		return 0;
	char *why = dd_strdup(dd_errmsg());
	if (dd_event_check_data(e) == 0)
		dd_seterr("%s", why);
	free(why);
	return -1;
}

static void
set_loc(struct loc *l, const struct dd_jval *v, double lat, double lon)
{
	free(l->json);
	l->json = dd_strndup(v->p, v->n);
	l->lat = lat;
	l->lon = lon;
}

static void
final_event(struct dlv *d, int stage, int64_t t)
{
	/* The earliest final event wins (at equal times, the lower stage). */
	if (!d->fstage || t < d->t_final || (t == d->t_final && stage < d->fstage)) {
		d->fstage = stage;
		d->t_final = t;
	}
}

static void
apply(struct dd_track *t, struct dlv *d, const struct fact *f, int64_t ts)
{
	switch (f->k) {
	case K_SCHEDULED: if (ts > d->t_sched) d->t_sched = ts; break;
	case K_RESCHEDULED: if (ts > d->t_resched) d->t_resched = ts; break;
	case K_DISPATCHED: if (ts > d->t_disp) d->t_disp = ts; break;
	case K_PICKEDUP: if (ts > d->t_pick) d->t_pick = ts; break;
	case K_CANCELLED: final_event(d, DD_STAGE_CANCELLED, ts); break;
	case K_DELIVERED: final_event(d, DD_STAGE_COMPLETED, ts); break;
	case K_FAILED: final_event(d, DD_STAGE_FAILED, ts); break;
	default: break;
	}
	/* Every other field: the newest event that carries it wins. */
	if (f->drone.type == DD_JSTR && ts >= d->drone_time) {
		dd_buf_reset(&t->str);
		dd_jstr_decode(&f->drone, &t->str);
		free(d->drone);
		d->drone = dd_strndup(t->str.p, t->str.len);
		d->drone_time = ts;
	}
	if (f->pickup.type == DD_JOBJ && ts >= d->pickup_time) {
		set_loc(&d->pickup, &f->pickup, f->plat, f->plon);
		d->pickup_time = ts;
	}
	if (f->dropoff.type == DD_JOBJ && ts >= d->dropoff_time) {
		set_loc(&d->dropoff, &f->dropoff, f->dlat, f->dlon);
		d->dropoff_time = ts;
	}
	if ((f->peta != NONE || f->deta != NONE) && ts >= d->eta_time) {
		if (f->peta != NONE)
			d->pickup_eta = f->peta;
		if (f->deta != NONE)
			d->dropoff_eta = f->deta;
		d->eta_time = ts;
	}
	/* The delivery's location is the drone's until the delivery ends:
	 * positions of the flight home do not move it, and a final event
	 * replaces one of those that arrived before it. */
	int after_end = d->fstage && ts > d->t_final;
	int stale = d->fstage && d->loc_time > d->t_final;
	if (f->loc.type == DD_JOBJ && !after_end && (ts > d->loc_time || stale)) {
		set_loc(&d->loc, &f->loc, f->lat, f->lon);
		d->loc_time = ts;
		d->speed = f->has_speed ? f->speed : NAN;
		if (f->has_battery)
			d->battery = f->battery;
		eta_update(d);
	}
	if (ts > d->updated)
		d->updated = ts;
}

static void
add_time(struct dd_buf *b, int64_t ms)
{
	if (ms == NONE) {
		dd_buf_adds(b, "null");
		return;
	}
	char tb[DD_TIMEBUF];
	size_t n = dd_time_format(ms, tb);
	dd_buf_addc(b, '"');
	dd_buf_add(b, tb, n);
	dd_buf_addc(b, '"');
}

/* A status event id: DELIVERY:WHAT[:MS], where MS tells apart the same
 * stage in different flights (the reschedule's time), corrected final
 * stages (the end's time) and position buckets. Ids stay within 128
 * bytes: a delivery id too long for the suffix is replaced by its hash. */
static void
add_status_id(struct dd_buf *b, const struct dlv *d, const char *what, int64_t ms)
{
	char suffix[64];
	int n = ms == NONE ? snprintf(suffix, sizeof suffix, ":%s", what) :
	    snprintf(suffix, sizeof suffix, ":%s:%" PRId64, what, ms);
	struct dd_buf id = { 0 };
	if (d->idlen + (size_t)n <= DD_ID_MAX)
		dd_buf_add(&id, d->id, d->idlen);
	else
		dd_buf_printf(&id, "h-%016" PRIx64, d->hash);
	dd_buf_add(&id, suffix, (size_t)n);
	dd_buf_json_str(b, id.p, id.len);
	dd_buf_free(&id);
}

static void
emit(struct dd_track *t, const struct dlv *d, const struct dd_env *e, int prev, int stage,
    const char *what, int64_t key)
{
	struct dd_buf *b = &t->out;
	dd_buf_reset(b);
	dd_buf_adds(b, "{\"specversion\":\"1.0\",\"id\":");
	add_status_id(b, d, what, key);
	dd_buf_adds(b, ",\"source\":\"/dd-track\",\"type\":\"delivery.status\",\"time\":");
	add_time(b, e->time_ms);
	dd_buf_adds(b, ",\"subject\":");
	dd_buf_json_str(b, d->id, d->idlen);
	dd_buf_adds(b, ",\"datacontenttype\":\"application/json\"");
	if (e->traceparent.type == DD_JSTR) {
		/* The status belongs to the trace of the event that caused it. */
		dd_buf_adds(b, ",\"traceparent\":\"");
		dd_buf_add(b, e->traceparent.p, e->traceparent.n);
		dd_buf_addc(b, '"');
	}
	dd_buf_adds(b, ",\"data\":{\"deliveryId\":");
	dd_buf_json_str(b, d->id, d->idlen);
	dd_buf_printf(b, ",\"stage\":\"%s\",\"previousStage\":", dd_stage_name(stage));
	if (prev == DD_STAGE_UNKNOWN)
		dd_buf_adds(b, "null");
	else
		dd_buf_printf(b, "\"%s\"", dd_stage_name(prev));
	dd_buf_adds(b, ",\"droneId\":");
	if (d->drone)
		dd_buf_json_str(b, d->drone, strlen(d->drone));
	else
		dd_buf_adds(b, "null");
	dd_buf_adds(b, ",\"location\":");
	dd_buf_adds(b, d->loc.json ? d->loc.json : "null");
	dd_buf_adds(b, ",\"pickupEta\":");
	add_time(b, d->pickup_eta);
	dd_buf_adds(b, ",\"dropoffEta\":");
	add_time(b, d->dropoff_eta);
	dd_buf_adds(b, "}}\n");
	fwrite(b->p, 1, b->len, t->o.out);
	t->emitted++;
}

/* The id of the stage's status event tells flights and ends apart. */
static int64_t
stage_key(const struct dlv *d, int stage)
{
	if (is_final(stage))
		return d->t_final;
	return d->t_resched;
}

enum dd_verdict
dd_track_event(struct dd_track *t, const struct dd_line *l, const struct dd_env *e)
{
	struct fact f;
	f.k = kind_of(e);
	if (f.k != K_NONE && read_fact(e, &f))
		return DD_REJECT;
	/* Valid: passed on unchanged, whatever it is. */
	if (!t->o.only_status) {
		/* fulllen: a CR before the newline stays, as it came. */
		fwrite(l->p, 1, (size_t)l->fulllen, t->o.out);
		putc('\n', t->o.out);
	}
	if (f.k == K_NONE)
		return DD_SKIP;
	int64_t ts = e->time_ms;
	if (t->max_time == NONE || ts > t->max_time)
		t->max_time = ts;
	if (ts < horizon(t)) {
		t->late++;
		return DD_ACCEPT;
	}
	uint64_t h = hash_id(f.did, f.didlen);
	struct dlv *d = cache_find(t, f.did, f.didlen, h);
	if (d == NULL && !t->authoritative) {
		if (store_find(t, f.did, f.didlen, h, &d))
			return DD_FAIL;
	}
	if (d && expired(t, d)) {
		/* Ended and past --retain: over, as the next commit records
		 * with its tombstone; nothing brings it back. */
		t->after_removal++;
		return DD_ACCEPT;
	}
	if (d == NULL) {
		if (t->ntomb > 0) {
			sqlite3_bind_text(t->tomb_get, 1, f.did, (int)f.didlen, SQLITE_STATIC);
			int rc = sqlite3_step(t->tomb_get);
			sqlite3_reset(t->tomb_get);
			if (rc == SQLITE_ROW) {
				t->after_removal++;
				return DD_ACCEPT;
			}
			if (rc != SQLITE_DONE) {
				dd_store_err(&t->s, "reading removed deliveries");
				return DD_FAIL;
			}
		}
		d = cache_add(t, f.did, f.didlen, h);
	}
	uint64_t eh;
	if (e->id.esc) {
		dd_buf_reset(&t->str);
		dd_jstr_decode(&e->id, &t->str);
		eh = dd_hash64(t->str.p, t->str.len);
	} else {
		eh = dd_hash64(e->id.p, e->id.n);
	}
	if (seen_has(d, eh)) {
		t->dups++;
		return DD_ACCEPT;
	}
	seen_add(d, eh, ts);
	int64_t pos_before = d->loc_time;
	int prev = stage_of(d);
	apply(t, d, &f, ts);
	int stage = stage_of(d);
	mark_dirty(t, d);
	/* With --position-every, at most one status per delivery per interval
	 * of event time carries a new position; a stage change that carries
	 * one counts as that interval's. */
	int64_t every = t->o.position_every_ms, b = NONE;
	if (every && d->loc_time == ts)
		b = ts - (ts % every + every) % every;	/* the interval's start */
	if (stage != prev && stage != DD_STAGE_UNKNOWN) {
		emit(t, d, e, prev, stage, dd_stage_name(stage), stage_key(d, stage));
		if (b != NONE && b > d->pos_ms)
			d->pos_ms = b;
	} else if (b != NONE && b > d->pos_ms && pos_before < ts &&
	    stage != DD_STAGE_UNKNOWN && !is_final(stage)) {
		d->pos_ms = b;
		emit(t, d, e, stage, stage, "position", b);
	}
	return DD_ACCEPT;
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

static void
on_summary(void *ctx, struct dd_buf *b)
{
	dd_track_summary(ctx, b);
}

int
dd_track_filter(const char *path, const struct dd_track_opts *o,
    const struct dd_filter_opts *fo)
{
	struct dd_track *t;
	int rc = dd_track_open(&t, path, o);
	if (rc) {
		dd_warn("%s", dd_errmsg());
		return rc;
	}
	struct dd_filter_ops ops = { .event = on_event, .commit = on_commit,
		.summary = on_summary };
	rc = dd_filter_run(fo, &ops, t, NULL);
	dd_track_close(t);
	return rc;
}

/* ---- questions ---- */

static const char *const q_cols = "id, stage, drone_id, location, location_time, speed, "
	"battery, pickup, dropoff, pickup_eta, dropoff_eta, updated, ended";
enum { Q_ID, Q_STAGE, Q_DRONE, Q_LOC, Q_LOCTIME, Q_SPEED, Q_BATTERY, Q_PICKUP, Q_DROPOFF,
	Q_PETA, Q_DETA, Q_UPDATED, Q_ENDED };

static void
q_str(struct dd_buf *b, sqlite3_stmt *st, int c)
{
	const char *s = (const char *)sqlite3_column_text(st, c);
	if (s)
		dd_buf_json_str(b, s, (size_t)sqlite3_column_bytes(st, c));
	else
		dd_buf_adds(b, "null");
}

static void
q_json(struct dd_buf *b, sqlite3_stmt *st, int c)
{
	const char *s = (const char *)sqlite3_column_text(st, c);
	dd_buf_adds(b, s ? s : "null");
}

static void
q_time(struct dd_buf *b, sqlite3_stmt *st, int c)
{
	add_time(b, col_time(st, c));
}

static void
q_real(struct dd_buf *b, sqlite3_stmt *st, int c)
{
	if (sqlite3_column_type(st, c) == SQLITE_NULL)
		dd_buf_adds(b, "null");
	else
		dd_buf_printf(b, "%.15g", sqlite3_column_double(st, c));
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
q_open(struct dd_store *s, const char *path)
{
	return dd_store_open_ro(s, path);
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

int
dd_track_get(const char *path, const char *id, FILE *out)
{
	struct dd_store s;
	int rc = q_open(&s, path);
	if (rc)
		return rc;
	struct dd_buf sql = { 0 }, b = { 0 };
	dd_buf_printf(&sql, "SELECT %s FROM delivery WHERE id = ?", q_cols);
	sqlite3_stmt *st = dd_store_prepare(&s, sql.p);
	dd_buf_free(&sql);
	if (st == NULL) {
		dd_store_close(&s);
		return DD_EXIT_IO;
	}
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		row_json(&b, st);
		rc = q_write(out, &b) ? DD_EXIT_IO : 0;
	} else if (r == SQLITE_DONE) {
		dd_seterr("%s: no such delivery", id);
		rc = DD_EXIT_REJECTED;
	} else {
		dd_store_err(&s, "reading");
		rc = DD_EXIT_IO;
	}
	dd_buf_free(&b);
	sqlite3_finalize(st);
	dd_store_close(&s);
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
dd_track_list(const char *path, int stage, const char *drone, enum dd_fmt fmt, FILE *out)
{
	struct dd_store s;
	int rc = q_open(&s, path);
	if (rc)
		return rc;
	struct dd_buf sql = { 0 }, b = { 0 };
	dd_buf_printf(&sql, "SELECT %s FROM delivery WHERE (?1 IS NULL OR stage = ?1) "
	    "AND (?2 IS NULL OR drone_id = ?2) ORDER BY id", q_cols);
	sqlite3_stmt *st = dd_store_prepare(&s, sql.p);
	dd_buf_free(&sql);
	if (st == NULL) {
		dd_store_close(&s);
		return DD_EXIT_IO;
	}
	if (stage >= 0)
		sqlite3_bind_text(st, 1, dd_stage_name(stage), -1, SQLITE_STATIC);
	if (drone)
		sqlite3_bind_text(st, 2, drone, -1, SQLITE_STATIC);
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
			const char *v = (const char *)sqlite3_column_text(st, c);
			dd_out_cell(o, v ? v : "", v ? (size_t)sqlite3_column_bytes(st, c) : 0);
		}
		const char *loc = (const char *)sqlite3_column_text(st, Q_LOC);
		loc_member(&b, loc, "lat");
		dd_out_cell(o, b.p ? b.p : "", b.len);
		dd_buf_reset(&b);
		loc_member(&b, loc, "lon");
		dd_out_cell(o, b.p ? b.p : "", b.len);
		for (size_t i = 0; i < sizeof tcols / sizeof tcols[0]; i++) {
			char tb[DD_TIMEBUF];
			int64_t ms = col_time(st, tcols[i]);
			size_t n = ms == NONE ? 0 : dd_time_format(ms, tb);
			dd_out_cell(o, tb, n);
		}
		dd_out_endrow(o);
	}
	if (rc == 0 && r != SQLITE_DONE) {
		dd_store_err(&s, "reading");
		rc = DD_EXIT_IO;
	}
	if (o && dd_out_finish(o) && rc == 0) {
		dd_seterr("stdout: %s", strerror(errno ? errno : EIO));
		rc = DD_EXIT_IO;
	}
	dd_buf_free(&b);
	sqlite3_finalize(st);
	dd_store_close(&s);
	return rc;
}

int
dd_track_stats(const char *path, FILE *out)
{
	struct dd_store s;
	int rc = q_open(&s, path);
	if (rc)
		return rc;
	int64_t count[DD_NSTAGES] = { 0 }, total = 0, max_time = NONE, removed = 0;
	int64_t oldest = NONE, newest = NONE;
	sqlite3_stmt *st = dd_store_prepare(&s, "SELECT stage, count(*), min(updated), "
	    "max(updated) FROM delivery GROUP BY stage");
	if (st == NULL)
		goto fail;
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		int sg = dd_stage_parse((const char *)sqlite3_column_text(st, 0));
		int64_t n = sqlite3_column_int64(st, 1), lo = col_time(st, 2), hi = col_time(st, 3);
		if (sg >= 0)
			count[sg] += n;
		total += n;
		if (lo != NONE && (oldest == NONE || lo < oldest))
			oldest = lo;
		if (hi != NONE && (newest == NONE || hi > newest))
			newest = hi;
	}
	sqlite3_finalize(st);
	if (r != SQLITE_DONE) {
		dd_store_err(&s, "reading");
		goto fail;
	}
	if (meta_get(&s, "max_time", &max_time) || meta_get(&s, "removed", &removed))
		goto fail;
	struct dd_buf b = { 0 };
	dd_buf_printf(&b, "{\"deliveries\":%" PRId64 ",\"stages\":{", total);
	for (int i = 0; i < DD_NSTAGES; i++)
		dd_buf_printf(&b, "%s\"%s\":%" PRId64, i ? "," : "", stage_names[i], count[i]);
	dd_buf_adds(&b, "},\"oldestUpdate\":");
	add_time(&b, oldest);
	dd_buf_adds(&b, ",\"newestUpdate\":");
	add_time(&b, newest);
	dd_buf_adds(&b, ",\"streamTime\":");
	add_time(&b, max_time);
	dd_buf_printf(&b, ",\"removed\":%" PRId64 "}\n", removed);
	rc = q_write(out, &b) ? DD_EXIT_IO : 0;
	dd_buf_free(&b);
	dd_store_close(&s);
	return rc;
fail:
	dd_store_close(&s);
	return DD_EXIT_IO;
}
