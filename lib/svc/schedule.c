/*
 * The scheduler's handle (schedule-int.h has the map of its files): the
 * store and its schema, the names of states, ids derived from content,
 * the clock, what memory holds (fleet, bookings, waiting items) and the
 * transactions that keep it the store's, and the fleet file.
 */
#include <errno.h>
#include <math.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "csvin.h"
#include "ddtime.h"
#include "exitcodes.h"
#include "reject.h"
#include "schedule-int.h"

/* ---- names ---- */

const char *const sched_state_names[ST_N] = {
	"waiting", "scheduled", "in-progress", "completed", "cancelled", "rejected", "failed",
};
const char *const sched_confirm_names[4] = { "None", "FingerPrint", "Picture", "Voice" };

int
dd_sched_state_valid(const char *name)
{
	for (int i = 0; i < ST_N; i++)
		if (strcmp(name, sched_state_names[i]) == 0)
			return 1;
	return 0;
}

int
sched_state_parse(const char *name)
{
	for (int i = 0; i < ST_N; i++)
		if (name && strcmp(name, sched_state_names[i]) == 0)
			return i;
	return -1;
}

/* ---- the store ---- */

static const char *const migrations[] = {
	/* 1 */
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER) WITHOUT ROWID;"
	"CREATE TABLE drones(id TEXT PRIMARY KEY, lat REAL NOT NULL, lon REAL NOT NULL,"
	" max_kg REAL NOT NULL, max_size TEXT NOT NULL, range_km REAL NOT NULL,"
	" speed_mps REAL NOT NULL) WITHOUT ROWID;"
	/* One row per work item, in arrival order (seq); times are UTC epoch
	 * milliseconds. */
	"CREATE TABLE items(seq INTEGER PRIMARY KEY, delivery_id TEXT NOT NULL UNIQUE,"
	" request_id TEXT NOT NULL, owner_id TEXT NOT NULL, state TEXT NOT NULL,"
	" ever INTEGER NOT NULL, valid INTEGER NOT NULL, reason TEXT, field TEXT,"
	" pk_lat REAL, pk_lon REAL, pk_alt REAL, dr_lat REAL, dr_lon REAL, dr_alt REAL,"
	" pickup_time INTEGER, deadline INTEGER, expedited INTEGER, confirmation TEXT,"
	" package_id TEXT, size TEXT, weight_kg REAL, tag TEXT,"
	" drone_id TEXT, version INTEGER NOT NULL, depart INTEGER, pickup_eta INTEGER,"
	" dropoff_eta INTEGER, return_eta INTEGER, busy_until INTEGER,"
	" stage TEXT, prev_stage TEXT, stage_time INTEGER,"
	" received INTEGER NOT NULL, updated INTEGER NOT NULL, nlog INTEGER NOT NULL);"
	"CREATE INDEX items_state ON items(state);"
	/* The steps done for each item, and the state after each: the events
	 * it emitted (their ids follow from the delivery and the step) and the
	 * statuses it received (event_id: the id received). */
	"CREATE TABLE log(delivery_id TEXT NOT NULL, n INTEGER NOT NULL, time INTEGER NOT NULL,"
	" step TEXT NOT NULL, state TEXT NOT NULL, detail TEXT, event_id TEXT);"
	"CREATE UNIQUE INDEX log_item ON log(delivery_id, n);"
	/* Reschedule operations applied, by a hash of their content. */
	"CREATE TABLE ops(hash TEXT PRIMARY KEY) WITHOUT ROWID;",
	/* 2: every operation's outcome is kept (rejected: why), and the ids of
	 * statuses about deliveries unknown when they came, so a replay
	 * decides each the same way again. */
	"ALTER TABLE ops ADD COLUMN rejected TEXT;"
	"CREATE TABLE seen(event_id TEXT PRIMARY KEY) WITHOUT ROWID;",
	/* 3: a request is found by its full key (owner, request, attempt),
	 * never by the hash its delivery id is derived from; a failed
	 * delivery's request gets another delivery, attempt 2, 3, ... */
	"ALTER TABLE items ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;"
	"CREATE INDEX items_request ON items(owner_id, request_id, attempt);"
	"ALTER TABLE items ADD COLUMN held_reason TEXT;"
	"ALTER TABLE items ADD COLUMN held_op TEXT;"
	/* A drone that failed (failed_at) is out of service until it has
	 * returned (returned_at) and the inspection time has passed. */
	"ALTER TABLE drones ADD COLUMN failed_at INTEGER;"
	"ALTER TABLE drones ADD COLUMN returned_at INTEGER;",
};

void
dd_sched_defaults(struct dd_sched_opts *o)
{
	memset(o, 0, sizeof *o);
	o->lead_ms = DD_SCHED_LEAD_MS;
	o->timeout_ms = DD_SCHED_TIMEOUT_MS;
	o->inspection_ms = DD_SCHED_INSPECTION_MS;
	o->max_attempts = DD_SCHED_MAX_ATTEMPTS;
	o->window_ms = DD_SCHED_WINDOW_MS;
	o->out = stdout;
}

static int
prep(struct dd_sched *s, sqlite3_stmt **q, const char *sql)
{
	*q = dd_store_prepare(&s->st, sql);
	return *q ? 0 : -1;
}

int
dd_sched_open(struct dd_sched **sp, const struct dd_sched_opts *o)
{
	struct dd_sched *s = dd_calloc(1, sizeof *s);
	s->o = *o;
	s->out = o->out ? o->out : stdout;
	s->clock = INT64_MIN;
	s->win_start = DD_NOTIME;
	int rc = o->readonly ? dd_store_open_ro(&s->st, o->db)
	    : dd_store_open(&s->st, o->db, migrations, (int)(sizeof migrations / sizeof migrations[0]));
	if (rc) {
		free(s);
		return rc;
	}
	if (!o->readonly && (
	    prep(s, &s->q_get, "SELECT " ITEM_COLS " FROM items WHERE delivery_id = ?") ||
	    prep(s, &s->q_getreq, "SELECT " ITEM_COLS " FROM items WHERE owner_id = ?"
		" AND request_id = ? ORDER BY attempt DESC LIMIT 1") ||
	    /* An upsert, not a replace: the second write of an item (placed
	     * after its window) changes its row in place, and only the
	     * indexes whose columns changed. */
	    prep(s, &s->q_put, "INSERT INTO items(" ITEM_COLS ") VALUES(?,?,?,?,?,?,?,?,?,?,"
		"?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
		" ON CONFLICT(delivery_id) DO UPDATE SET "
		"request_id = excluded.request_id, owner_id = excluded.owner_id, "
		" seq = excluded.seq, state = excluded.state, ever = excluded.ever, "
		" valid = excluded.valid, reason = excluded.reason, "
		" field = excluded.field, pk_lat = excluded.pk_lat, "
		" pk_lon = excluded.pk_lon, pk_alt = excluded.pk_alt, "
		" dr_lat = excluded.dr_lat, dr_lon = excluded.dr_lon, "
		" dr_alt = excluded.dr_alt, pickup_time = excluded.pickup_time, "
		" deadline = excluded.deadline, expedited = excluded.expedited, "
		" confirmation = excluded.confirmation, "
		" package_id = excluded.package_id, size = excluded.size, "
		" weight_kg = excluded.weight_kg, tag = excluded.tag, "
		" drone_id = excluded.drone_id, version = excluded.version, "
		" depart = excluded.depart, pickup_eta = excluded.pickup_eta, "
		" dropoff_eta = excluded.dropoff_eta, return_eta = excluded.return_eta, "
		" busy_until = excluded.busy_until, stage = excluded.stage, "
		" prev_stage = excluded.prev_stage, stage_time = excluded.stage_time, "
		" received = excluded.received, updated = excluded.updated, "
		" nlog = excluded.nlog, attempt = excluded.attempt, "
		" held_reason = excluded.held_reason, held_op = excluded.held_op") ||
	    prep(s, &s->q_log, "INSERT INTO log VALUES(?,?,?,?,?,?,?)") ||
	    prep(s, &s->q_step, "SELECT 1 FROM log WHERE delivery_id = ? AND step = ?") ||
	    prep(s, &s->q_op, "INSERT OR IGNORE INTO ops(hash, rejected) VALUES(?, ?)") ||
	    prep(s, &s->q_opseen, "SELECT rejected FROM ops WHERE hash = ?") ||
	    prep(s, &s->q_opset, "UPDATE ops SET rejected = ? WHERE hash = ?") ||
	    prep(s, &s->q_seen, "SELECT 1 FROM seen WHERE event_id = ?") ||
	    prep(s, &s->q_seenadd, "INSERT OR IGNORE INTO seen(event_id) VALUES(?)") ||
	    prep(s, &s->q_meta, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)") ||
	    prep(s, &s->q_dv, "PRAGMA data_version"))) {
		dd_sched_close(s);
		return DD_EXIT_IO;
	}
	s->did_bits = (int)sched_fault_at("did-bits:");
	*sp = s;
	return 0;
}

static void
wait_clear(struct dd_sched *s)
{
	for (size_t i = 0; i < s->nwait; i++)
		sched_item_free(s->wait[i]);
	s->nwait = 0;
	for (size_t i = 0; i < s->npend; i++)
		sched_item_free(s->pend[i]);
	s->npend = 0;
}

void
dd_sched_forget(struct dd_sched *s)
{
	wait_clear(s);
	dd_fleet_free(s->fleet);
	s->fleet = NULL;
	s->loaded = 0;
	s->clock = INT64_MIN;	/* load() only moves it forward */
	s->seq = 0;
	s->end_failed = 0;
	/* Values still bound hold copies of the last run's text. */
	for (sqlite3_stmt *q = NULL; (q = sqlite3_next_stmt(s->st.db, q)) != NULL;)
		sqlite3_clear_bindings(q);
}

void
dd_sched_close(struct dd_sched *s)
{
	if (s == NULL)
		return;
	sqlite3_stmt *qs[] = { s->q_get, s->q_getreq, s->q_put, s->q_log, s->q_step, s->q_op, s->q_opseen,
		s->q_meta, s->q_dv, s->q_seen, s->q_seenadd, s->q_opset };
	for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++)
		sqlite3_finalize(qs[i]);
	dd_store_close(&s->st);
	dd_fleet_free(s->fleet);
	wait_clear(s);
	free(s->wait);
	free(s->pend);
	dd_buf_free(&s->ev);
	dd_buf_free(&s->data);
	dd_buf_free(&s->tmp);
	dd_buf_free(&s->opname);
	free(s->feed_err);
	free(s);
}

/* ---- small helpers ---- */

int
sched_step_sql(struct dd_sched *s, sqlite3_stmt *q, const char *what)
{
	int rc = sqlite3_step(q);
	sqlite3_reset(q);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return dd_store_err(&s->st, what);
	return 0;
}

/*
 * A double that is a whole number of millionths from 1e-4 to 1e9 (coordinates,
 * weights: most of what the scheduler writes), as %.15g writes it: the
 * decimal r / 10^6 has at most 15 significant digits, and d is the double
 * nearest to it, so it reads back as d. 0 when d is not one (or is -0).
 */
static int
micro_text(double d, char out[40])
{
	if (!(fabs(d) < 1e9) || !(fabs(d) >= 1e-4))
		return 0;	/* (%g writes an exponent below 1e-4) */
	double r = nearbyint(d * 1e6);
	if (r / 1e6 != d)
		return 0;
	int64_t v = (int64_t)r;
	char *p = out;
	if (v < 0) {
		*p++ = '-';
		v = -v;
	}
	p += sprintf(p, "%" PRId64, v / 1000000);
	int64_t frac = v % 1000000;
	if (frac) {
		char f[8];
		int n = 6;
		sprintf(f, "%06" PRId64, frac);
		while (f[n - 1] == '0')
			n--;
		*p++ = '.';
		memcpy(p, f, (size_t)n);
		p += n;
	}
	*p = '\0';
	return 1;
}

/* Shortest text that reads back as the same double. */
void
sched_jnum(struct dd_buf *b, double d)
{
	char tmp[40];
	if (micro_text(d, tmp)) {
		dd_buf_adds(b, tmp);
		return;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof tmp, "%.*g", prec, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	dd_buf_adds(b, tmp);
}

void
sched_jkey(struct dd_buf *b, const char *k)
{
	if (b->len && b->p[b->len - 1] != '{' && b->p[b->len - 1] != '[')
		dd_buf_addc(b, ',');
	dd_buf_addc(b, '"');
	dd_buf_adds(b, k);
	dd_buf_adds(b, "\":");
}

void
sched_jstr(struct dd_buf *b, const char *k, const char *v)
{
	sched_jkey(b, k);
	dd_buf_json_str(b, v, strlen(v));
}

void
sched_jtime(struct dd_buf *b, const char *k, int64_t ms)
{
	char t[DD_TIMEBUF];
	sched_jkey(b, k);
	if (ms == INT64_MIN) {
		dd_buf_adds(b, "null");
		return;
	}
	dd_time_format(ms, t);
	dd_buf_json_str(b, t, strlen(t));
}

void
sched_jdbl(struct dd_buf *b, const char *k, double v)
{
	sched_jkey(b, k);
	sched_jnum(b, v);
}

void
sched_jloc(struct dd_buf *b, const char *k, double lat, double lon, double alt)
{
	sched_jkey(b, k);
	dd_buf_adds(b, "{\"lat\":");
	sched_jnum(b, lat);
	dd_buf_adds(b, ",\"lon\":");
	sched_jnum(b, lon);
	dd_buf_adds(b, ",\"alt\":");
	sched_jnum(b, alt);
	dd_buf_addc(b, '}');
}

void
sched_hex_id(char *out, size_t cap, const char *prefix, uint64_t h)
{
	snprintf(out, cap, "%s%016" PRIx64, prefix, h);
}

static void hex128(const unsigned char *md, char *out);

/* A field of a hashed key at b + off: its length (4 bytes, big-endian),
 * then it; the new offset. Ids are at most IDMAX bytes. */
static size_t
put_field(unsigned char *b, size_t off, const void *p, size_t n)
{
	b[off] = (unsigned char)(n >> 24);
	b[off + 1] = (unsigned char)(n >> 16);
	b[off + 2] = (unsigned char)(n >> 8);
	b[off + 3] = (unsigned char)n;
	memcpy(b + off + 4, p, n);
	return off + 4 + n;
}

/*
 * The delivery id of (owner, request, attempt): "d-" and the first 128
 * bits of SHA-256 over the length-prefixed fields, so no client can make
 * two keys share an id (the old 64-bit FNV could be steered in
 * milliseconds). probe > 0 names the next candidate after a collision;
 * bits (a test aid) keeps only that many bits of the first candidate, to
 * make collisions happen.
 */
void
sched_derive_did(const char *owner, const char *rid, int attempt, unsigned probe, int bits,
    char out[DIDMAX])
{
	static const char tag[] = "dd-schedule delivery id";
	unsigned char md[SHA256_DIGEST_LENGTH], num[8] = {
		(unsigned char)(attempt >> 24), (unsigned char)(attempt >> 16),
		(unsigned char)(attempt >> 8), (unsigned char)attempt,
		(unsigned char)(probe >> 24), (unsigned char)(probe >> 16),
		(unsigned char)(probe >> 8), (unsigned char)probe };
	unsigned char b[4 * 4 + sizeof tag + 2 * IDMAX + sizeof num];
	size_t lo = strnlen(owner, IDMAX), lr = strnlen(rid, IDMAX);
	size_t n = put_field(b, 0, tag, sizeof tag - 1);
	n = put_field(b, n, owner, lo);
	n = put_field(b, n, rid, lr);
	n = put_field(b, n, num, sizeof num);
	SHA256(b, n, md);
	if (bits > 0 && bits < 128 && probe == 0)
		for (int i = 0; i < 16; i++)
			md[i] &= i * 8 + 8 <= bits ? 0xff : i * 8 >= bits ? 0 :
			    (unsigned char)(0xff << (8 - bits % 8));
	memcpy(out, "d-", 2);
	hex128(md, out + 2);
}

static void
hex128(const unsigned char *md, char *out)
{
	for (int i = 0; i < 16; i++) {
		out[2 * i] = "0123456789abcdef"[md[i] >> 4];
		out[2 * i + 1] = "0123456789abcdef"[md[i] & 15];
	}
	out[32] = '\0';
}

void
sched_key_hex(const void *p, size_t n, char out[DIDMAX])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256(p, n, md);
	hex128(md, out);
}

/*
 * Give a new item (owner, rid and attempt set) its delivery id: the
 * derived one, or when another request holds it (a collision, however
 * unlikely), the next candidate that is free. The first to arrive keeps
 * the plain id and the store remembers who has which, so a replay finds
 * the same id again (by its full key) and nothing is ever refused for it.
 * 0, or -1 (dd_errmsg()).
 */
int
sched_name_item(struct dd_sched *s, struct item *it)
{
	for (unsigned probe = 0;; probe++) {
		struct item *other;
		sched_derive_did(it->owner, it->rid, it->attempt, probe, s->did_bits, it->did);
		int found = sched_item_get(s, it->did, &other);
		sched_item_free(other);
		if (found <= 0)
			return found;
	}
}

void
sched_derive_eid(const char *did, const char *step, char out[24])
{
	char b[DIDMAX + 48];
	int n = snprintf(b, sizeof b, "%s/%s", did, step);
	sched_hex_id(out, 24, "e-", dd_hash64(b, (size_t)n));
}

/* The clock for an action driven by the input at time t (INT64_MIN:
 * none): --now when given, else the input's clock, which never goes back. */
int64_t
sched_advance(struct dd_sched *s, int64_t t)
{
	if (s->o.has_now)
		return s->o.now;
	if (t > s->clock)
		s->clock = t;
	if (s->clock == INT64_MIN)
		return dd_now_ms();
	if (s->fleet)
		dd_fleet_set_floor(s->fleet, s->clock);
	return s->clock;
}

/* ---- meta ---- */

static int
meta_get(struct dd_sched *s, const char *key, int64_t *v)
{
	sqlite3_stmt *q = dd_store_prepare(&s->st, "SELECT value FROM meta WHERE key = ?");
	if (q == NULL)
		return -1;
	dd_bind_text(q, 0, key, (size_t)-1);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL)
		*v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : dd_store_err(&s->st, "reading meta");
}

static int
meta_put(struct dd_sched *s, const char *key, int64_t v)
{
	dd_bind_text(s->q_meta, 0, key, (size_t)-1);
	dd_bind_int(s->q_meta, 1, v);
	return sched_step_sql(s, s->q_meta, "writing meta");
}

/* ---- the fleet in memory ---- */

/* Most urgent first: expedited, then the earliest deadline, then arrival. */
static int
urgent_before(const struct item *a, const struct item *b)
{
	if (a->expedited != b->expedited)
		return a->expedited > b->expedited;
	if (a->deadline != b->deadline)
		return a->deadline < b->deadline;
	return a->seq < b->seq;
}

void
sched_wait_add(struct dd_sched *s, struct item *it)
{
	if (s->nwait == s->capwait) {
		s->capwait = s->capwait ? s->capwait * 2 : 64;
		s->wait = dd_realloc(s->wait, s->capwait * sizeof *s->wait);
	}
	size_t lo = 0, hi = s->nwait;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (urgent_before(s->wait[mid], it))
			lo = mid + 1;
		else
			hi = mid;
	}
	memmove(s->wait + lo + 1, s->wait + lo, (s->nwait - lo) * sizeof *s->wait);
	s->wait[lo] = it;
	s->nwait++;
}

/* Take the item out of the waiting list, or the open window (freed by
 * the caller). */
struct item *
sched_wait_take(struct dd_sched *s, const char *did)
{
	struct item *p = s->npend ? sched_pend_take(s, did) : NULL;
	if (p)
		return p;
	for (size_t i = 0; i < s->nwait; i++)
		if (strcmp(s->wait[i]->did, did) == 0) {
			struct item *it = s->wait[i];
			memmove(s->wait + i, s->wait + i + 1, (s->nwait - i - 1) * sizeof *s->wait);
			s->nwait--;
			return it;
		}
	return NULL;
}

/* (Re)build everything held in memory from the store: the fleet index,
 * the bookings (of active deliveries, and of ended ones whose drone may
 * not be home yet), the waiting items, the clock. */
static int
load(struct dd_sched *s)
{
	dd_fleet_free(s->fleet);
	s->fleet = dd_fleet_new();
	wait_clear(s);
	int64_t c = INT64_MIN;
	s->closed_seq = 0;
	s->win_start = DD_NOTIME;
	if (meta_get(s, "clock", &c) || meta_get(s, "seq", &s->seq) ||
	    meta_get(s, "closed_seq", &s->closed_seq) || meta_get(s, "window_start", &s->win_start))
		return -1;
	if (c > s->clock)
		s->clock = c;
	sqlite3_stmt *q = dd_store_prepare(&s->st, "SELECT id, lat, lon, max_kg, max_size,"
	    " range_km, speed_mps FROM drones");
	if (q == NULL)
		return -1;
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct dd_drone_spec d;
		d.id = (const char *)sqlite3_column_text(q, 0);
		d.lat = sqlite3_column_double(q, 1);
		d.lon = sqlite3_column_double(q, 2);
		d.max_kg = sqlite3_column_double(q, 3);
		const char *sz = (const char *)sqlite3_column_text(q, 4);
		d.max_size = sz ? dd_size_parse(sz, strlen(sz), 0) : DD_SIZE_NONE;
		d.range_km = sqlite3_column_double(q, 5);
		d.speed_mps = sqlite3_column_double(q, 6);
		dd_fleet_add(s->fleet, &d);
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return dd_store_err(&s->st, "reading the fleet");
	if (dd_fleet_build(s->fleet))
		return -1;
	int64_t floor = s->o.has_now ? s->o.now : s->clock;
	dd_fleet_set_floor(s->fleet, floor);
	/* A normal delivery's booking that no status has reached may make
	 * room for an expedited one (schedule-window.c). */
	q = dd_store_prepare(&s->st, "SELECT delivery_id, drone_id, depart, busy_until,"
	    " state = 'scheduled' AND NOT expedited AND stage IS NULL FROM items"
	    " WHERE state IN ('scheduled', 'in-progress', 'failed', 'completed', 'cancelled')"
	    " AND drone_id IS NOT NULL AND busy_until > ? AND busy_until > depart");
	if (q == NULL)
		return -1;
	dd_bind_int(q, 0, floor);	/* not a time: INT64_MIN (no clock yet) keeps all */
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *did = (const char *)sqlite3_column_text(q, 0);
		const char *drone = (const char *)sqlite3_column_text(q, 1);
		int i = drone ? dd_fleet_find(s->fleet, drone) : -1;
		if (i < 0)
			continue;	/* a drone since removed from the fleet */
		if (dd_fleet_book_movable(s->fleet, i, sqlite3_column_int64(q, 2),
		    sqlite3_column_int64(q, 3), dd_hash64(did, strlen(did)),
		    sqlite3_column_int(q, 4) ? did : NULL)) {
			dd_seterr("%s: delivery %s: %s", s->st.path, did, dd_errmsg());
			sqlite3_finalize(q);
			return -1;
		}
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return dd_store_err(&s->st, "reading the bookings");
	/* Failed drones: out of service from their failure on. */
	q = dd_store_prepare(&s->st, "SELECT id, failed_at, returned_at FROM drones"
	    " WHERE failed_at IS NOT NULL");
	if (q == NULL)
		return -1;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int i = dd_fleet_find(s->fleet, (const char *)sqlite3_column_text(q, 0));
		int64_t ret = sqlite3_column_type(q, 2) == SQLITE_NULL ? DD_NOTIME
		    : sqlite3_column_int64(q, 2);
		if (i >= 0)
			sched_ground_book(s, i, sqlite3_column_int64(q, 1), ret);
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return dd_store_err(&s->st, "reading the fleet's failures");
	q = dd_store_prepare(&s->st, "SELECT " ITEM_COLS " FROM items WHERE state = 'waiting'"
	    " ORDER BY seq");
	if (q == NULL)
		return -1;
	/* Those of the open window wait for it to close, in arrival order. */
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct item *it = sched_item_read(q);
		if (it->seq > s->closed_seq)
			sched_pend_add(s, it);
		else
			sched_wait_add(s, it);
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return dd_store_err(&s->st, "reading the waiting items");
	s->loaded = 1;
	return 0;
}

static int
data_version(struct dd_sched *s, int64_t *v)
{
	int rc = sqlite3_step(s->q_dv);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int64(s->q_dv, 0);
	sqlite3_reset(s->q_dv);
	return rc == SQLITE_ROW ? 0 : dd_store_err(&s->st, "data_version");
}

/*
 * Open a transaction if none is, and reload what memory holds when
 * another process (the supervisor, another filter) committed since: the
 * fleet's bookings must be the store's, or a drone could be booked twice.
 */
int
sched_ensure_tx(struct dd_sched *s)
{
	if (s->st.in_tx)
		return 0;
	if (dd_store_begin(&s->st))
		return -1;
	int64_t v = 0;
	if (data_version(s, &v))
		return -1;
	if (!s->loaded || v != s->dv) {
		if (load(s))
			return -1;
	}
	s->dv = v;
	return 0;
}

int
sched_commit(struct dd_sched *s)
{
	if (!s->st.in_tx)
		return 0;
	if ((s->clock != INT64_MIN && meta_put(s, "clock", s->clock)) || meta_put(s, "seq", s->seq) ||
	    meta_put(s, "closed_seq", s->closed_seq) || meta_put(s, "window_start", s->win_start))
		return -1;
	return dd_store_commit(&s->st);
}

/* ---- the fleet file ---- */

struct import {
	struct dd_sched *s;
	struct dd_rejects *rj;
	const char *name;
	struct dd_fleet_cols cols;
	int header;
	int failed;
	sqlite3_stmt *q;
	uint64_t ok, bad;
};

static int
import_row(void *ctx, const struct dd_csv_row *r)
{
	struct import *im = ctx;
	const char *why = r->error;
	char msg[300];
	struct dd_drone_spec d;
	if (why == NULL && !im->header) {
		if (dd_fleet_header(r, &im->cols)) {
			snprintf(msg, sizeof msg, "%s", dd_errmsg());
			dd_reject_raw(im->rj, im->name, r->lineno, r->off, r->raw, r->rawlen, 0, msg);
			im->bad++;
			return 1;	/* nothing can be read without the columns */
		}
		im->header = 1;
		return 0;
	}
	if (why == NULL && dd_fleet_row(&im->cols, r, &d) == 0) {
		sqlite3_stmt *q = im->q;
		dd_bind_text(q, 0, d.id, (size_t)-1);
		dd_bind_real(q, 1, d.lat);
		dd_bind_real(q, 2, d.lon);
		dd_bind_real(q, 3, d.max_kg);
		dd_bind_text(q, 4, dd_size_name(d.max_size), (size_t)-1);
		dd_bind_real(q, 5, d.range_km);
		dd_bind_real(q, 6, d.speed_mps);
		if (sched_step_sql(im->s, q, "importing the fleet")) {
			im->failed = 1;
			return 1;
		}
		im->ok++;
		return 0;
	}
	snprintf(msg, sizeof msg, "%s", why ? why : dd_errmsg());
	im->bad++;
	if (dd_reject_raw(im->rj, im->name, r->lineno, r->off, r->raw, r->rawlen, 0, msg)) {
		im->failed = 1;
		return 1;
	}
	return 0;
}

int
dd_sched_fleet_import(struct dd_sched *s, const char *path, const char *rejects,
    uint64_t *imported, uint64_t *rejected)
{
	int stdin_ = strcmp(path, "-") == 0;
	FILE *f = stdin_ ? stdin : fopen(path, "r");
	if (f == NULL) {
		dd_seterr("%s: %s", path, strerror(errno));
		return DD_EXIT_IO;
	}
	struct import im = { .s = s, .name = stdin_ ? "stdin" : path };
	im.rj = dd_rejects_open(rejects);
	int code = DD_EXIT_OK;
	if (im.rj == NULL) {
		code = DD_EXIT_IO;
		goto out;
	}
	/* An upsert: a drone imported again keeps its failure, if any. */
	if (sched_ensure_tx(s) || (im.q = dd_store_prepare(&s->st, "INSERT INTO drones"
	    "(id, lat, lon, max_kg, max_size, range_km, speed_mps) VALUES(?,?,?,?,?,?,?)"
	    " ON CONFLICT(id) DO UPDATE SET lat = excluded.lat, lon = excluded.lon,"
	    " max_kg = excluded.max_kg, max_size = excluded.max_size,"
	    " range_km = excluded.range_km, speed_mps = excluded.speed_mps")) == NULL) {
		code = DD_EXIT_IO;
		goto out;
	}
	int rc = dd_csv_read(f, import_row, &im);
	sqlite3_finalize(im.q);
	if (rc < 0 || im.failed) {
		if (rc < 0)
			dd_seterr("%s: %s", im.name, dd_errmsg());
		dd_store_rollback(&s->st);
		s->loaded = 0;
		code = DD_EXIT_IO;
		goto out;
	}
	/* The index is rebuilt from the store with the new drones. */
	if (load(s) || sched_commit(s)) {
		code = DD_EXIT_IO;
		goto out;
	}
	if (im.bad)
		code = DD_EXIT_REJECTED;
out:
	if (im.rj && dd_rejects_close(im.rj) && code != DD_EXIT_IO) {
		code = DD_EXIT_IO;
	}
	if (!stdin_)
		fclose(f);
	*imported = im.ok;
	*rejected = im.bad;
	return code;
}

/*
 * Test aids, DD_SCHEDULE_FAULT: supervise-kill:N makes the supervisor
 * kill itself (SIGKILL) after writing the events of the Nth item it acts
 * on and before committing them; commit-kill:N makes the filter do so at
 * its Nth commit, after the batch's output. The worst moments for a crash.
 */
long
sched_fault_at(const char *what)
{
	const char *f = getenv("DD_SCHEDULE_FAULT");
	size_t n = strlen(what);
	if (f && strncmp(f, what, n) == 0)
		return strtol(f + n, NULL, 10);
	return 0;
}
