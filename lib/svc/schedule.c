#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "csvin.h"
#include "ddtime.h"
#include "event.h"
#include "exitcodes.h"
#include "fleet.h"
#include "json.h"
#include "reject.h"
#include "schedule.h"
#include "store.h"
#include "util.h"

#define SOURCE "/dd-schedule"
#define IDMAX 128

/* ---- work items ---- */

enum state {
	ST_WAITING, ST_SCHEDULED, ST_INPROGRESS, ST_COMPLETED, ST_CANCELLED,
	ST_REJECTED, ST_FAILED, ST_N
};
static const char *const state_names[ST_N] = {
	"waiting", "scheduled", "in-progress", "completed", "cancelled", "rejected", "failed",
};
static const char *const confirm_names[] = { "None", "FingerPrint", "Picture", "Voice" };

int
dd_sched_state_valid(const char *name)
{
	for (int i = 0; i < ST_N; i++)
		if (strcmp(name, state_names[i]) == 0)
			return 1;
	return 0;
}

static int
state_parse(const char *name)
{
	for (int i = 0; i < ST_N; i++)
		if (name && strcmp(name, state_names[i]) == 0)
			return i;
	return -1;
}

struct item {
	char did[24];
	char rid[IDMAX + 1], owner[IDMAX + 1];
	int64_t seq;
	int state;
	int ever;		/* has had a drone: counts as scheduled */
	int valid;		/* the request passed validation (its fields are set) */
	char reason[IDMAX + 1], field[48];
	double pk_lat, pk_lon, pk_alt, dr_lat, dr_lon, dr_alt;
	int64_t pickup_time, deadline;
	int expedited, confirm;
	char package_id[IDMAX + 1];
	int size;
	double kg;
	char *tag;		/* NULL: none */
	char drone[IDMAX + 1];	/* "": none */
	int version;		/* assignments so far: names the steps */
	int64_t depart, pickup_eta, dropoff_eta, return_eta, busy_until;
	char stage[24], prev_stage[24];
	int64_t stage_time;
	int64_t received, updated;
	int nlog;
};

static void
item_free(struct item *it)
{
	if (it) {
		free(it->tag);
		free(it);
	}
}

static int
is_final(int st)
{
	return st == ST_COMPLETED || st == ST_CANCELLED || st == ST_REJECTED;
}

/* The booking key of a delivery in the fleet. */
static uint64_t
item_key(const struct item *it)
{
	return dd_hash64(it->did, strlen(it->did));
}

/* ---- the scheduler ---- */

/* The CSV reader thread that turns rows into request lines. */
struct csvfeed;

struct dd_sched {
	struct dd_store st;
	struct dd_sched_opts o;
	FILE *out;
	sqlite3_stmt *q_get, *q_put, *q_log, *q_step, *q_op, *q_opseen, *q_meta, *q_dv,
	    *q_seen, *q_seenadd;
	struct dd_fleet *fleet;
	struct item **wait;	/* waiting items, most urgent first */
	size_t nwait, capwait;
	int64_t clock;		/* the input's time, never going back */
	int64_t seq;
	int loaded;
	int64_t dv;
	struct dd_buf ev, data, tmp;
	struct csvfeed *csv;
	/* figures of the run */
	uint64_t n_new, n_dup, n_opdup, n_invalid, n_sched, n_wait, n_nodrone, n_status, n_ops,
	    n_emitted, n_retried;
};

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
};

#define ITEM_COLS "delivery_id, request_id, owner_id, seq, state, ever, valid, reason, field," \
	" pk_lat, pk_lon, pk_alt, dr_lat, dr_lon, dr_alt, pickup_time, deadline, expedited," \
	" confirmation, package_id, size, weight_kg, tag, drone_id, version, depart," \
	" pickup_eta, dropoff_eta, return_eta, busy_until, stage, prev_stage, stage_time," \
	" received, updated, nlog"
#define ITEM_NCOLS 36

void
dd_sched_defaults(struct dd_sched_opts *o)
{
	memset(o, 0, sizeof *o);
	o->lead_ms = DD_SCHED_LEAD_MS;
	o->timeout_ms = DD_SCHED_TIMEOUT_MS;
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
	int rc = o->readonly ? dd_store_open_ro(&s->st, o->db)
	    : dd_store_open(&s->st, o->db, migrations, (int)(sizeof migrations / sizeof migrations[0]));
	if (rc) {
		free(s);
		return rc;
	}
	if (!o->readonly && (
	    prep(s, &s->q_get, "SELECT " ITEM_COLS " FROM items WHERE delivery_id = ?") ||
	    prep(s, &s->q_put, "INSERT OR REPLACE INTO items(" ITEM_COLS ") VALUES(?,?,?,?,?,?,?,?,?,?,"
		"?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)") ||
	    prep(s, &s->q_log, "INSERT INTO log VALUES(?,?,?,?,?,?,?)") ||
	    prep(s, &s->q_step, "SELECT 1 FROM log WHERE delivery_id = ? AND step = ?") ||
	    prep(s, &s->q_op, "INSERT OR IGNORE INTO ops(hash, rejected) VALUES(?, ?)") ||
	    prep(s, &s->q_opseen, "SELECT rejected FROM ops WHERE hash = ?") ||
	    prep(s, &s->q_seen, "SELECT 1 FROM seen WHERE event_id = ?") ||
	    prep(s, &s->q_seenadd, "INSERT OR IGNORE INTO seen(event_id) VALUES(?)") ||
	    prep(s, &s->q_meta, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)") ||
	    prep(s, &s->q_dv, "PRAGMA data_version"))) {
		dd_sched_close(s);
		return DD_EXIT_IO;
	}
	*sp = s;
	return 0;
}

static void
wait_clear(struct dd_sched *s)
{
	for (size_t i = 0; i < s->nwait; i++)
		item_free(s->wait[i]);
	s->nwait = 0;
}

void
dd_sched_close(struct dd_sched *s)
{
	if (s == NULL)
		return;
	sqlite3_stmt *qs[] = { s->q_get, s->q_put, s->q_log, s->q_step, s->q_op, s->q_opseen,
		s->q_meta, s->q_dv, s->q_seen, s->q_seenadd };
	for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++)
		sqlite3_finalize(qs[i]);
	dd_store_close(&s->st);
	dd_fleet_free(s->fleet);
	wait_clear(s);
	free(s->wait);
	dd_buf_free(&s->ev);
	dd_buf_free(&s->data);
	dd_buf_free(&s->tmp);
	free(s);
}

/* ---- small helpers ---- */

static int
step_sql(struct dd_sched *s, sqlite3_stmt *q, const char *what)
{
	int rc = sqlite3_step(q);
	sqlite3_reset(q);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return dd_store_err(&s->st, what);
	return 0;
}

static void
bind_str(sqlite3_stmt *q, int i, const char *v)
{
	if (v && *v)
		sqlite3_bind_text(q, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(q, i);
}

static void
bind_time(sqlite3_stmt *q, int i, int64_t v)
{
	if (v == INT64_MIN)
		sqlite3_bind_null(q, i);
	else
		sqlite3_bind_int64(q, i, v);
}

static void
col_str(sqlite3_stmt *q, int i, char *buf, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(q, i);
	snprintf(buf, cap, "%s", t ? (const char *)t : "");
}

static int64_t
col_time(sqlite3_stmt *q, int i)
{
	return sqlite3_column_type(q, i) == SQLITE_NULL ? INT64_MIN : sqlite3_column_int64(q, i);
}

/* Shortest text that reads back as the same double. */
static void
jnum(struct dd_buf *b, double d)
{
	char tmp[40];
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof tmp, "%.*g", prec, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	dd_buf_adds(b, tmp);
}

static void
jkey(struct dd_buf *b, const char *k)
{
	if (b->len && b->p[b->len - 1] != '{' && b->p[b->len - 1] != '[')
		dd_buf_addc(b, ',');
	dd_buf_addc(b, '"');
	dd_buf_adds(b, k);
	dd_buf_adds(b, "\":");
}

static void
jstr(struct dd_buf *b, const char *k, const char *v)
{
	jkey(b, k);
	dd_buf_json_str(b, v, strlen(v));
}

static void
jtime(struct dd_buf *b, const char *k, int64_t ms)
{
	char t[DD_TIMEBUF];
	jkey(b, k);
	if (ms == INT64_MIN) {
		dd_buf_adds(b, "null");
		return;
	}
	dd_time_format(ms, t);
	dd_buf_json_str(b, t, strlen(t));
}

static void
jdbl(struct dd_buf *b, const char *k, double v)
{
	jkey(b, k);
	jnum(b, v);
}

static void
jloc(struct dd_buf *b, const char *k, double lat, double lon, double alt)
{
	jkey(b, k);
	dd_buf_adds(b, "{\"lat\":");
	jnum(b, lat);
	dd_buf_adds(b, ",\"lon\":");
	jnum(b, lon);
	dd_buf_adds(b, ",\"alt\":");
	jnum(b, alt);
	dd_buf_addc(b, '}');
}

static void
hex_id(char *out, size_t cap, const char *prefix, uint64_t h)
{
	snprintf(out, cap, "%s%016" PRIx64, prefix, h);
}

/* The delivery id of (owner, request): the same request always maps to
 * the same delivery. Ids hold no NUL, so one separates the two. */
static void
derive_did(const char *owner, const char *rid, char out[24])
{
	size_t lo = strlen(owner), lr = strlen(rid);
	char *b = dd_malloc(lo + lr + 1);
	memcpy(b, owner, lo);
	b[lo] = '\0';
	memcpy(b + lo + 1, rid, lr);
	hex_id(out, 24, "d-", dd_hash64(b, lo + 1 + lr));
	free(b);
}

static void
derive_eid(const char *did, const char *step, char out[24])
{
	char b[64 + 48];
	int n = snprintf(b, sizeof b, "%s/%s", did, step);
	hex_id(out, 24, "e-", dd_hash64(b, (size_t)n));
}

/* The clock for an action driven by the input at time t (INT64_MIN:
 * none): --now when given, else the input's clock, which never goes back. */
static int64_t
advance(struct dd_sched *s, int64_t t)
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

/* ---- store: items, log, meta ---- */

static void
item_bind(sqlite3_stmt *q, const struct item *it)
{
	int i = 1;
	bind_str(q, i++, it->did);
	sqlite3_bind_text(q, i++, it->rid, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, i++, it->owner, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, i++, it->seq);
	sqlite3_bind_text(q, i++, state_names[it->state], -1, SQLITE_STATIC);
	sqlite3_bind_int(q, i++, it->ever);
	sqlite3_bind_int(q, i++, it->valid);
	bind_str(q, i++, it->reason);
	bind_str(q, i++, it->field);
	if (it->valid) {
		sqlite3_bind_double(q, i++, it->pk_lat);
		sqlite3_bind_double(q, i++, it->pk_lon);
		sqlite3_bind_double(q, i++, it->pk_alt);
		sqlite3_bind_double(q, i++, it->dr_lat);
		sqlite3_bind_double(q, i++, it->dr_lon);
		sqlite3_bind_double(q, i++, it->dr_alt);
		bind_time(q, i++, it->pickup_time);
		bind_time(q, i++, it->deadline);
		sqlite3_bind_int(q, i++, it->expedited);
		sqlite3_bind_text(q, i++, confirm_names[it->confirm], -1, SQLITE_STATIC);
		bind_str(q, i++, it->package_id);
		sqlite3_bind_text(q, i++, dd_size_name(it->size), -1, SQLITE_STATIC);
		sqlite3_bind_double(q, i++, it->kg);
		if (it->tag)
			sqlite3_bind_text(q, i++, it->tag, -1, SQLITE_TRANSIENT);
		else
			sqlite3_bind_null(q, i++);
	} else {
		for (int k = 0; k < 14; k++)
			sqlite3_bind_null(q, i++);
	}
	bind_str(q, i++, it->drone);
	sqlite3_bind_int(q, i++, it->version);
	bind_time(q, i++, it->depart);
	bind_time(q, i++, it->pickup_eta);
	bind_time(q, i++, it->dropoff_eta);
	bind_time(q, i++, it->return_eta);
	bind_time(q, i++, it->busy_until);
	bind_str(q, i++, it->stage);
	bind_str(q, i++, it->prev_stage);
	bind_time(q, i++, it->stage_time);
	sqlite3_bind_int64(q, i++, it->received);
	sqlite3_bind_int64(q, i++, it->updated);
	sqlite3_bind_int(q, i++, it->nlog);
}

/* An item from a row of ITEM_COLS. */
static struct item *
item_read(sqlite3_stmt *q)
{
	struct item *it = dd_calloc(1, sizeof *it);
	int i = 0;
	col_str(q, i++, it->did, sizeof it->did);
	col_str(q, i++, it->rid, sizeof it->rid);
	col_str(q, i++, it->owner, sizeof it->owner);
	it->seq = sqlite3_column_int64(q, i++);
	it->state = state_parse((const char *)sqlite3_column_text(q, i++));
	if (it->state < 0)
		it->state = ST_REJECTED;
	it->ever = sqlite3_column_int(q, i++);
	it->valid = sqlite3_column_int(q, i++);
	col_str(q, i++, it->reason, sizeof it->reason);
	col_str(q, i++, it->field, sizeof it->field);
	it->pk_lat = sqlite3_column_double(q, i++);
	it->pk_lon = sqlite3_column_double(q, i++);
	it->pk_alt = sqlite3_column_double(q, i++);
	it->dr_lat = sqlite3_column_double(q, i++);
	it->dr_lon = sqlite3_column_double(q, i++);
	it->dr_alt = sqlite3_column_double(q, i++);
	it->pickup_time = col_time(q, i++);
	it->deadline = col_time(q, i++);
	it->expedited = sqlite3_column_int(q, i++);
	const char *c = (const char *)sqlite3_column_text(q, i++);
	for (int k = 0; k < 4; k++)
		if (c && strcmp(c, confirm_names[k]) == 0)
			it->confirm = k;
	col_str(q, i++, it->package_id, sizeof it->package_id);
	const char *sz = (const char *)sqlite3_column_text(q, i++);
	it->size = sz ? dd_size_parse(sz, strlen(sz), 0) : DD_SIZE_NONE;
	it->kg = sqlite3_column_double(q, i++);
	const char *tag = (const char *)sqlite3_column_text(q, i++);
	it->tag = tag ? dd_strdup(tag) : NULL;
	col_str(q, i++, it->drone, sizeof it->drone);
	it->version = sqlite3_column_int(q, i++);
	it->depart = col_time(q, i++);
	it->pickup_eta = col_time(q, i++);
	it->dropoff_eta = col_time(q, i++);
	it->return_eta = col_time(q, i++);
	it->busy_until = col_time(q, i++);
	col_str(q, i++, it->stage, sizeof it->stage);
	col_str(q, i++, it->prev_stage, sizeof it->prev_stage);
	it->stage_time = col_time(q, i++);
	it->received = sqlite3_column_int64(q, i++);
	it->updated = sqlite3_column_int64(q, i++);
	it->nlog = sqlite3_column_int(q, i++);
	return it;
}

/* Load an item by delivery id: 1 found, 0 not, -1 error. */
static int
item_get(struct dd_sched *s, const char *did, struct item **out)
{
	sqlite3_bind_text(s->q_get, 1, did, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(s->q_get);
	*out = NULL;
	if (rc == SQLITE_ROW)
		*out = item_read(s->q_get);
	sqlite3_reset(s->q_get);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return dd_store_err(&s->st, "reading a work item");
	return rc == SQLITE_ROW;
}

static int
item_put(struct dd_sched *s, struct item *it)
{
	item_bind(s->q_put, it);
	return step_sql(s, s->q_put, "recording a work item");
}

/* Log a step of the item; received: the id of the event received. */
static int
log_row(struct dd_sched *s, struct item *it, int64_t t, const char *step, const char *detail,
    const char *received)
{
	sqlite3_stmt *q = s->q_log;
	sqlite3_bind_text(q, 1, it->did, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(q, 2, ++it->nlog);
	sqlite3_bind_int64(q, 3, t);
	sqlite3_bind_text(q, 4, step, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 5, state_names[it->state], -1, SQLITE_STATIC);
	bind_str(q, 6, detail);
	bind_str(q, 7, received);
	return step_sql(s, q, "logging a step");
}

/* Has this step of the item been done (and committed) already? */
static int
step_done(struct dd_sched *s, const struct item *it, const char *step)
{
	sqlite3_bind_text(s->q_step, 1, it->did, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s->q_step, 2, step, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(s->q_step);
	sqlite3_reset(s->q_step);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return dd_store_err(&s->st, "reading the log");
	return rc == SQLITE_ROW;
}

static int
meta_get(struct dd_sched *s, const char *key, int64_t *v)
{
	sqlite3_stmt *q = dd_store_prepare(&s->st, "SELECT value FROM meta WHERE key = ?");
	if (q == NULL)
		return -1;
	sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL)
		*v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : dd_store_err(&s->st, "reading meta");
}

static int
meta_put(struct dd_sched *s, const char *key, int64_t v)
{
	sqlite3_bind_text(s->q_meta, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s->q_meta, 2, v);
	return step_sql(s, s->q_meta, "writing meta");
}

/* ---- events ---- */

/*
 * Emit one event of the item's step with data (a JSON object's text) and
 * log it; the id comes from the delivery and the step. With check set,
 * a step already in the log is not done again (0 is returned).
 */
static int
emit(struct dd_sched *s, struct item *it, int64_t t, const char *step, const char *type,
    const char *subject, const struct dd_buf *data, const char *detail, int check)
{
	char eid[24], ts[DD_TIMEBUF];
	if (check) {
		int done = step_done(s, it, step);
		if (done)
			return done < 0 ? -1 : 0;
	}
	derive_eid(it->did, step, eid);
	dd_time_format(t, ts);
	struct dd_buf *b = &s->ev;
	dd_buf_reset(b);
	dd_buf_adds(b, "{\"specversion\":\"1.0\",\"id\":\"");
	dd_buf_adds(b, eid);
	dd_buf_adds(b, "\",\"source\":\"" SOURCE "\",\"type\":\"");
	dd_buf_adds(b, type);
	dd_buf_adds(b, "\",\"time\":\"");
	dd_buf_adds(b, ts);
	dd_buf_adds(b, "\",\"subject\":");
	dd_buf_json_str(b, subject, strlen(subject));
	dd_buf_adds(b, ",\"datacontenttype\":\"application/json\",\"data\":");
	dd_buf_add(b, data->p, data->len);
	dd_buf_adds(b, "}\n");
	if (fwrite(b->p, 1, b->len, s->out) != b->len) {
		dd_seterr("stdout: %s", strerror(errno));
		return -1;
	}
	s->n_emitted++;
	return log_row(s, it, t, step, detail, NULL);
}

static void
data_begin(struct dd_sched *s)
{
	dd_buf_reset(&s->data);
	dd_buf_addc(&s->data, '{');
}

static struct dd_buf *
data_end(struct dd_sched *s)
{
	dd_buf_addc(&s->data, '}');
	return &s->data;
}

static void
package_json(struct dd_buf *b, const struct item *it)
{
	jkey(b, "package");
	dd_buf_addc(b, '{');
	jstr(b, "packageId", it->package_id);
	jstr(b, "size", dd_size_name(it->size));
	jdbl(b, "weightKg", it->kg);
	if (it->tag)
		jstr(b, "tag", it->tag);
	dd_buf_addc(b, '}');
}

static void
etas_json(struct dd_buf *b, const struct item *it)
{
	jstr(b, "droneId", it->drone);
	jtime(b, "pickupEta", it->pickup_eta);
	jtime(b, "dropoffEta", it->dropoff_eta);
	jtime(b, "departureEta", it->depart);
	jtime(b, "returnEta", it->return_eta);
}

static int
emit_registered(struct dd_sched *s, struct item *it, int64_t t)
{
	data_begin(s);
	struct dd_buf *b = &s->data;
	jstr(b, "packageId", it->package_id);
	jstr(b, "ownerId", it->owner);
	jstr(b, "deliveryId", it->did);
	jstr(b, "size", dd_size_name(it->size));
	jdbl(b, "weightKg", it->kg);
	if (it->tag)
		jstr(b, "tag", it->tag);
	return emit(s, it, t, "registered", "package.registered", it->package_id, data_end(s),
	    NULL, 0);
}

static int
emit_scheduled(struct dd_sched *s, struct item *it, int64_t t)
{
	data_begin(s);
	struct dd_buf *b = &s->data;
	jstr(b, "deliveryId", it->did);
	jstr(b, "requestId", it->rid);
	jstr(b, "ownerId", it->owner);
	jloc(b, "pickup", it->pk_lat, it->pk_lon, it->pk_alt);
	jloc(b, "dropoff", it->dr_lat, it->dr_lon, it->dr_alt);
	jtime(b, "pickupTime", it->pickup_time);
	jtime(b, "deadline", it->deadline);
	jkey(b, "expedited");
	dd_buf_adds(b, it->expedited ? "true" : "false");
	jstr(b, "confirmationRequired", confirm_names[it->confirm]);
	package_json(b, it);
	etas_json(b, it);
	return emit(s, it, t, "scheduled", "delivery.scheduled", it->did, data_end(s), it->drone, 0);
}

static int
emit_released(struct dd_sched *s, struct item *it, int64_t t, const char *drone,
    int version, const char *reason, int check)
{
	char step[32];
	snprintf(step, sizeof step, "released.%d", version);
	data_begin(s);
	struct dd_buf *b = &s->data;
	jstr(b, "droneId", drone);
	jstr(b, "deliveryId", it->did);
	jstr(b, "reason", reason);
	return emit(s, it, t, step, "drone.released", it->did, data_end(s), drone, check);
}

static int
emit_removed(struct dd_sched *s, struct item *it, int64_t t, const char *reason, int check)
{
	data_begin(s);
	struct dd_buf *b = &s->data;
	jstr(b, "packageId", it->package_id);
	jstr(b, "deliveryId", it->did);
	jstr(b, "reason", reason);
	return emit(s, it, t, "removed", "package.removed", it->package_id, data_end(s), reason,
	    check);
}

static int
emit_cancelled(struct dd_sched *s, struct item *it, int64_t t, const char *reason, int check)
{
	data_begin(s);
	struct dd_buf *b = &s->data;
	jstr(b, "deliveryId", it->did);
	jstr(b, "reason", reason);
	return emit(s, it, t, "cancelled", "delivery.cancelled", it->did, data_end(s), reason,
	    check);
}

/* delivery.rejected; message explains an invalid field. */
static int
emit_rejected(struct dd_sched *s, struct item *it, int64_t t, const char *reason,
    const char *message, int check)
{
	data_begin(s);
	struct dd_buf *b = &s->data;
	jstr(b, "requestId", it->rid);
	if (*it->owner)
		jstr(b, "ownerId", it->owner);
	if (it->valid)
		jstr(b, "deliveryId", it->did);
	jstr(b, "reason", reason);
	if (*it->field)
		jstr(b, "field", it->field);
	if (message)
		jstr(b, "message", message);
	return emit(s, it, t, "rejected", "delivery.rejected", it->did, data_end(s),
	    *it->field ? it->field : reason, check);
}

/* What a reschedule changed, for delivery.rescheduled. */
enum {
	CH_PICKUP = 1, CH_DROPOFF = 2, CH_PTIME = 4, CH_DEADLINE = 8, CH_EXPEDITED = 16,
	CH_CONFIRM = 32,
};

static int
emit_rescheduled(struct dd_sched *s, struct item *it, int64_t t, unsigned changed,
    const char *reason)
{
	char step[32];
	snprintf(step, sizeof step, "rescheduled.%d", it->version);
	data_begin(s);
	struct dd_buf *b = &s->data;
	jstr(b, "deliveryId", it->did);
	if (changed & CH_PICKUP)
		jloc(b, "pickup", it->pk_lat, it->pk_lon, it->pk_alt);
	if (changed & CH_DROPOFF)
		jloc(b, "dropoff", it->dr_lat, it->dr_lon, it->dr_alt);
	if (changed & CH_PTIME)
		jtime(b, "pickupTime", it->pickup_time);
	if (changed & CH_DEADLINE)
		jtime(b, "deadline", it->deadline);
	if (changed & CH_EXPEDITED) {
		jkey(b, "expedited");
		dd_buf_adds(b, it->expedited ? "true" : "false");
	}
	if (changed & CH_CONFIRM)
		jstr(b, "confirmationRequired", confirm_names[it->confirm]);
	if (*it->drone)
		etas_json(b, it);
	jstr(b, "reason", reason);
	return emit(s, it, t, step, "delivery.rescheduled", it->did, data_end(s), reason, 1);
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

static void
wait_add(struct dd_sched *s, struct item *it)
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

/* Take the item out of the waiting list (freed by the caller). */
static struct item *
wait_take(struct dd_sched *s, const char *did)
{
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
 * the bookings of active deliveries, the waiting items, the clock. */
static int
load(struct dd_sched *s)
{
	dd_fleet_free(s->fleet);
	s->fleet = dd_fleet_new();
	wait_clear(s);
	int64_t c = INT64_MIN;
	if (meta_get(s, "clock", &c) || meta_get(s, "seq", &s->seq))
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
	q = dd_store_prepare(&s->st, "SELECT delivery_id, drone_id, depart, busy_until FROM items"
	    " WHERE state IN ('scheduled', 'in-progress', 'failed') AND busy_until > ?");
	if (q == NULL)
		return -1;
	sqlite3_bind_int64(q, 1, floor == INT64_MIN ? INT64_MIN : floor);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *did = (const char *)sqlite3_column_text(q, 0);
		const char *drone = (const char *)sqlite3_column_text(q, 1);
		int i = drone ? dd_fleet_find(s->fleet, drone) : -1;
		if (i < 0)
			continue;	/* a drone since removed from the fleet */
		if (dd_fleet_book(s->fleet, i, sqlite3_column_int64(q, 2),
		    sqlite3_column_int64(q, 3), dd_hash64(did, strlen(did)))) {
			dd_seterr("%s: delivery %s: %s", s->st.path, did, dd_errmsg());
			sqlite3_finalize(q);
			return -1;
		}
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return dd_store_err(&s->st, "reading the bookings");
	q = dd_store_prepare(&s->st, "SELECT " ITEM_COLS " FROM items WHERE state = 'waiting'");
	if (q == NULL)
		return -1;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW)
		wait_add(s, item_read(q));
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
static int
ensure_tx(struct dd_sched *s)
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

static int
commit(struct dd_sched *s)
{
	if (!s->st.in_tx)
		return 0;
	if ((s->clock != INT64_MIN && meta_put(s, "clock", s->clock)) || meta_put(s, "seq", s->seq))
		return -1;
	return dd_store_commit(&s->st);
}

/* ---- assignment ---- */

static void
trip_of(const struct item *it, int64_t now, int exclude, struct dd_trip *t)
{
	t->pk_lat = it->pk_lat;
	t->pk_lon = it->pk_lon;
	t->dr_lat = it->dr_lat;
	t->dr_lon = it->dr_lon;
	t->pickup_time = it->pickup_time;
	t->deadline = it->deadline;
	t->now = now;
	t->size = it->size;
	t->kg = it->kg;
	t->exclude = exclude;
}

/* Forget the item's drone booking (the drone is free for others). */
static void
unbook(struct dd_sched *s, struct item *it)
{
	int i = *it->drone ? dd_fleet_find(s->fleet, it->drone) : -1;
	if (i >= 0)
		dd_fleet_unbook(s->fleet, i, item_key(it));
}

/* Book the plan's drone for the item and emit delivery.scheduled (the
 * first time) or delivery.rescheduled. */
static int
assign(struct dd_sched *s, struct item *it, const struct dd_plan *p, int64_t t,
    unsigned changed, const char *reason)
{
	if (dd_fleet_book(s->fleet, p->drone, p->depart, p->busy_end, item_key(it)))
		return -1;
	snprintf(it->drone, sizeof it->drone, "%s", dd_fleet_spec(s->fleet, p->drone)->id);
	it->version++;
	it->depart = p->depart;
	it->pickup_eta = p->pickup;
	it->dropoff_eta = p->dropoff;
	it->return_eta = p->ret;
	it->busy_until = p->busy_end;
	it->stage[0] = it->prev_stage[0] = '\0';
	it->stage_time = INT64_MIN;
	it->state = ST_SCHEDULED;
	it->updated = t;
	s->n_sched++;
	if (!it->ever) {
		it->ever = 1;
		return emit_scheduled(s, it, t);
	}
	return emit_rescheduled(s, it, t, changed, reason);
}

static void
drop_drone(struct item *it)
{
	it->drone[0] = '\0';
	it->depart = it->pickup_eta = it->dropoff_eta = it->return_eta = it->busy_until = INT64_MIN;
}

/*
 * Undo the completed steps of an item, in reverse order: release its
 * drone, remove its package, then cancel the delivery (cancel set: the
 * client asked, or it had a drone) or reject the request. Steps already
 * logged are not redone.
 */
static int
compensate(struct dd_sched *s, struct item *it, int64_t t, const char *reason, int check,
    int cancel)
{
	it->state = cancel ? ST_CANCELLED : ST_REJECTED;
	it->updated = t;
	snprintf(it->reason, sizeof it->reason, "%s", reason);
	if (*it->drone) {
		unbook(s, it);
		if (emit_released(s, it, t, it->drone, it->version, reason, check))
			return -1;
	}
	if (emit_removed(s, it, t, reason, check))
		return -1;
	return cancel ? emit_cancelled(s, it, t, reason, check)
	    : emit_rejected(s, it, t, reason, NULL, check);
}

/* A drone freed time at t: the waiting items it can now fly, most urgent
 * first. Only that drone changed, so only it needs trying. */
static int
retry_waiting(struct dd_sched *s, const char *drone, int64_t t)
{
	int i = dd_fleet_find(s->fleet, drone);
	if (i < 0)
		return 0;
	for (size_t k = 0; k < s->nwait;) {
		struct item *it = s->wait[k];
		struct dd_trip tr;
		struct dd_plan p;
		trip_of(it, t, -1, &tr);
		if (it->deadline < t || dd_fleet_fit(s->fleet, i, &tr, &p) != DD_FIT_OK) {
			k++;
			continue;
		}
		memmove(s->wait + k, s->wait + k + 1, (s->nwait - k - 1) * sizeof *s->wait);
		s->nwait--;
		s->n_retried++;
		int rc = assign(s, it, &p, t, 0, "drone-freed") || item_put(s, it);
		item_free(it);
		if (rc)
			return -1;
	}
	return 0;
}

/* ---- requests ---- */

/* The top-level members a request or an event may have. */
enum {
	K_SPECVERSION, K_OP, K_REQUESTID, K_OWNERID, K_DELIVERYID, K_PICKUP, K_DROPOFF,
	K_PICKUPTIME, K_DEADLINE, K_EXPEDITED, K_CONFIRM, K_PACKAGE, K_PICKUPLOC,
	K_DROPOFFLOC, K_PACKAGEINFO, K_REASON, K_N
};
static const char *const knames[K_N] = {
	"specversion", "op", "requestId", "ownerId", "deliveryId", "pickup", "dropoff",
	"pickupTime", "deadline", "expedited", "confirmationRequired", "package",
	"pickupLocation", "dropOffLocation", "packageInfo", "reason",
};

struct keys {
	struct dd_jval v[K_N];
};

static int
key_member(void *ctx, const struct dd_jval *k, const struct dd_jval *v)
{
	struct keys *ks = ctx;
	if (k->esc)
		return 0;
	for (int i = 0; i < K_N; i++)
		if (strlen(knames[i]) == k->n && memcmp(knames[i], k->p, k->n) == 0) {
			ks->v[i] = *v;	/* the last of duplicates wins, as in jq */
			break;
		}
	return 0;
}

/* The first field at fault in a request. */
struct fault {
	char field[48];
	char msg[200];
};

static void __attribute__((format(printf, 3, 4)))
fault(struct fault *f, const char *field, const char *fmt, ...)
{
	if (f->field[0])
		return;
	snprintf(f->field, sizeof f->field, "%s", field);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof f->msg, fmt, ap);
	va_end(ap);
}

/* A string id of 1 to 128 bytes without NUL: 1, 0 absent, -1 not one
 * (why in *why). */
static int
get_id(const struct dd_jval *v, char out[IDMAX + 1], const char **why)
{
	if (v->type == DD_JNONE) {
		*why = "missing";
		return 0;
	}
	if (v->type != DD_JSTR) {
		*why = "not a string";
		return -1;
	}
	int n = dd_env_str(v, out, IDMAX + 1);
	if (n == 0) {
		*why = "empty";
		return -1;
	}
	if (n < 0) {
		/* dd_env_str refuses both: say which. */
		struct dd_buf b = { 0 };
		dd_jstr_decode(v, &b);
		*why = b.len <= IDMAX ? "a string with a NUL character" : "longer than 128 bytes";
		dd_buf_free(&b);
		return -1;
	}
	return 1;
}

static char *
get_text(const struct dd_jval *v)
{
	struct dd_buf b = { 0 };
	dd_jstr_decode(v, &b);
	if (b.p == NULL)
		return dd_strdup("");
	return b.p;
}

static void
check_coords(struct fault *ft, const char *name, double lat, double lon)
{
	char f[48];
	if (lat < -90 || lat > 90) {
		snprintf(f, sizeof f, "%s.lat", name);
		fault(ft, f, "latitude %g out of range", lat);
	} else if (lon < -180 || lon > 180) {
		snprintf(f, sizeof f, "%s.lon", name);
		fault(ft, f, "longitude %g out of range", lon);
	}
}

/* SPEC.md's {lat, lon, alt} location. */
static void
loc_obj(const struct dd_jval *v, const char *name, double *lat, double *lon, double *alt,
    struct fault *ft)
{
	struct dd_jval m;
	char f[48];
	*alt = 0;
	if (v->type == DD_JNONE) {
		fault(ft, name, "missing");
		return;
	}
	if (v->type != DD_JOBJ) {
		fault(ft, name, "not an object with lat and lon");
		return;
	}
	static const char *const parts[] = { "lat", "lon", "alt" };
	double *dst[] = { lat, lon, alt };
	for (int k = 0; k < 3; k++) {
		snprintf(f, sizeof f, "%s.%s", name, parts[k]);
		if (!dd_json_get(v, parts[k], strlen(parts[k]), &m)) {
			if (k < 2)
				fault(ft, f, "missing");
			continue;
		}
		if (m.type != DD_JNUM || dd_jnum_double(&m, dst[k])) {
			fault(ft, f, "not a number");
			return;
		}
	}
	check_coords(ft, name, *lat, *lon);
}

/* A number in text, all of it. */
static int
text_num(const char *s, double *d)
{
	char *end;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0')
		return -1;
	*d = strtod(s, &end);
	while (*end == ' ' || *end == '\t')
		end++;
	return *end == '\0' && isfinite(*d) ? 0 : -1;
}

/* The reference's "altitude,latitude,longitude" string. */
static void
loc_str(const struct dd_jval *v, const char *name, double *lat, double *lon, double *alt,
    struct fault *ft)
{
	if (v->type == DD_JNONE) {
		fault(ft, name, "missing");
		return;
	}
	if (v->type != DD_JSTR) {
		fault(ft, name, "not an \"altitude,latitude,longitude\" string");
		return;
	}
	char *t = get_text(v);
	char *p1 = strchr(t, ','), *p2 = p1 ? strchr(p1 + 1, ',') : NULL;
	int ok = p1 && p2 && !strchr(p2 + 1, ',');
	if (ok) {
		*p1 = *p2 = '\0';
		ok = text_num(t, alt) == 0 && text_num(p1 + 1, lat) == 0 && text_num(p2 + 1, lon) == 0;
	}
	if (!ok) {
		fault(ft, name, "free text has no coordinates: expected \"altitude,latitude,longitude\"");
		free(t);
		return;
	}
	free(t);
	check_coords(ft, name, *lat, *lon);
}

static void
get_time(const struct dd_jval *v, const char *name, int64_t *ms, struct fault *ft)
{
	if (v->type == DD_JNONE) {
		fault(ft, name, "missing");
		return;
	}
	char *t = v->type == DD_JSTR ? get_text(v) : NULL;
	if (t == NULL || dd_time_parse(t, strlen(t), ms))
		fault(ft, name, "not an RFC 3339 time");
	free(t);
}

static void
get_bool(const struct dd_jval *v, const char *name, int *b, struct fault *ft)
{
	if (v->type == DD_JNONE)
		return;
	if (v->type == DD_JTRUE || v->type == DD_JFALSE)
		*b = v->type == DD_JTRUE;
	else
		fault(ft, name, "not true or false");
}

static void
get_confirm(const struct dd_jval *v, int *c, struct fault *ft)
{
	if (v->type == DD_JNONE)
		return;
	for (int k = 0; k < 4; k++)
		if (v->type == DD_JSTR && dd_jstr_eq(v, confirm_names[k], strlen(confirm_names[k]))) {
			*c = k;
			return;
		}
	fault(ft, "confirmationRequired", "not None, FingerPrint, Picture or Voice");
}

/* The package: SPEC's package {packageId, size, weightKg, tag}, or the
 * reference's packageInfo {packageId, size: Small.., weight: 14 or "14"}. */
static void
get_package(struct dd_sched *s, const struct dd_jval *v, int ext, struct item *it,
    struct fault *ft)
{
	const char *name = ext ? "packageInfo" : "package";
	const char *wname = ext ? "weight" : "weightKg";
	char f[48];
	struct dd_jval m;
	const char *why;
	if (v->type == DD_JNONE) {
		fault(ft, name, "missing");
		return;
	}
	if (v->type != DD_JOBJ) {
		fault(ft, name, "not an object");
		return;
	}
	snprintf(f, sizeof f, "%s.packageId", name);
	if (!dd_json_get(v, "packageId", 9, &m))
		m.type = DD_JNONE;
	if (get_id(&m, it->package_id, &why) <= 0)
		fault(ft, f, "%s", why);
	snprintf(f, sizeof f, "%s.size", name);
	if (!dd_json_get(v, "size", 4, &m))
		fault(ft, f, "missing");
	else if (m.type != DD_JSTR || m.esc ||
	    (it->size = dd_size_parse(m.p, m.n, 1)) == DD_SIZE_NONE)
		fault(ft, f, "not small, medium or large");
	snprintf(f, sizeof f, "%s.%s", name, wname);
	it->kg = 0;
	if (!dd_json_get(v, wname, strlen(wname), &m)) {
		fault(ft, f, "missing: a drone is chosen by the weight it carries");
	} else if (m.type == DD_JNUM) {
		if (dd_jnum_double(&m, &it->kg))
			fault(ft, f, "not a number");
	} else if (ext && m.type == DD_JSTR) {
		/* The reference's load tests send "14". */
		char *t = get_text(&m);
		int ok = t[0] != '\0' && strspn(t, "0123456789.") == strlen(t) &&
		    text_num(t, &it->kg) == 0;
		free(t);
		if (!ok)
			fault(ft, f, "not a number");
	} else {
		fault(ft, f, "not a number");
	}
	if (!ft->field[0] && !(it->kg > 0))
		fault(ft, f, "must be more than 0");
	if (dd_json_get(v, "tag", 3, &m)) {
		if (m.type == DD_JSTR)
			it->tag = get_text(&m);
		else if (m.type != DD_JNULL) {
			snprintf(f, sizeof f, "%s.tag", name);
			fault(ft, f, "not a string");
		}
	}
	/* Within what the fleet can do at all (an empty fleet is no-drone). */
	if (!ft->field[0] && dd_fleet_count(s->fleet) > 0) {
		if (it->kg > dd_fleet_max_kg(s->fleet)) {
			snprintf(f, sizeof f, "%s.%s", name, wname);
			fault(ft, f, "%g kg is more than any drone carries (%g kg)", it->kg,
			    dd_fleet_max_kg(s->fleet));
		} else if (it->size > dd_fleet_max_size(s->fleet)) {
			snprintf(f, sizeof f, "%s.size", name);
			fault(ft, f, "no drone takes a %s package", dd_size_name(it->size));
		}
	}
}

/*
 * A new delivery request, in SPEC's shape or the reference's
 * ExternalDelivery shape, into it; a field at fault goes to ft. Returns
 * 0, or -1 when the line cannot be answered at all (no request id):
 * that is bad input, not a business outcome.
 */
static int
parse_request(struct dd_sched *s, const struct keys *k, struct item *it, struct fault *ft)
{
	int ext = k->v[K_PICKUPLOC].type || k->v[K_DROPOFFLOC].type || k->v[K_PACKAGEINFO].type;
	const char *why;
	if (ext && k->v[K_DELIVERYID].type == DD_JNONE) {
		/* No id of the client's: the request's own content names it, so a
		 * resent copy is still recognised. */
		struct dd_buf b = { 0 };
		const int parts[] = { K_OWNERID, K_PICKUPLOC, K_DROPOFFLOC, K_PICKUPTIME, K_DEADLINE,
			K_PACKAGEINFO };
		for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
			dd_jval_text(&k->v[parts[i]], &b);
			dd_buf_addc(&b, '\n');
		}
		hex_id(it->rid, sizeof it->rid, "x-", dd_hash64(b.p, b.len));
		dd_buf_free(&b);
	} else {
		const struct dd_jval *rv = &k->v[ext ? K_DELIVERYID : K_REQUESTID];
		int r = get_id(rv, it->rid, &why);
		if (r <= 0) {
			const char *name = ext ? "deliveryId" : "requestId";
			if (r == 0)
				dd_seterr("missing \"%s\"", name);
			else
				dd_seterr("\"%s\" is %s", name, why);
			return -1;
		}
	}
	if (get_id(&k->v[K_OWNERID], it->owner, &why) <= 0) {
		it->owner[0] = '\0';
		fault(ft, "ownerId", "%s", why);
	}
	if (ext) {
		loc_str(&k->v[K_PICKUPLOC], "pickupLocation", &it->pk_lat, &it->pk_lon, &it->pk_alt, ft);
		loc_str(&k->v[K_DROPOFFLOC], "dropOffLocation", &it->dr_lat, &it->dr_lon,
		    &it->dr_alt, ft);
	} else {
		loc_obj(&k->v[K_PICKUP], "pickup", &it->pk_lat, &it->pk_lon, &it->pk_alt, ft);
		loc_obj(&k->v[K_DROPOFF], "dropoff", &it->dr_lat, &it->dr_lon, &it->dr_alt, ft);
	}
	get_time(&k->v[K_PICKUPTIME], "pickupTime", &it->pickup_time, ft);
	get_time(&k->v[K_DEADLINE], "deadline", &it->deadline, ft);
	if (!ft->field[0] && it->deadline <= it->pickup_time)
		fault(ft, "deadline", "not after pickupTime");
	get_bool(&k->v[K_EXPEDITED], "expedited", &it->expedited, ft);
	get_confirm(&k->v[K_CONFIRM], &it->confirm, ft);
	get_package(s, &k->v[ext ? K_PACKAGEINFO : K_PACKAGE], ext, it, ft);
	return 0;
}

static struct item *
item_new(void)
{
	struct item *it = dd_calloc(1, sizeof *it);
	it->pickup_time = it->deadline = it->stage_time = INT64_MIN;
	drop_drone(it);
	return it;
}

static enum dd_verdict
new_request(struct dd_sched *s, const struct keys *k)
{
	struct item *it = item_new();
	struct fault ft = { { 0 }, { 0 } };
	enum dd_verdict v = DD_ACCEPT;
	if (parse_request(s, k, it, &ft)) {
		item_free(it);
		return DD_REJECT;
	}
	derive_did(it->owner, it->rid, it->did);
	struct item *old;
	int found = item_get(s, it->did, &old);
	if (found < 0)
		goto fail;
	if (found) {
		int same = strcmp(old->rid, it->rid) == 0 && strcmp(old->owner, it->owner) == 0;
		/* An invalid request does not claim its id: the corrected one
		 * that follows is scheduled under the same delivery id. Replays
		 * of either stay replays: the item is no longer invalid. */
		int corrected = same && old->state == ST_REJECTED && !old->valid &&
		    !ft.field[0];
		it->nlog = old->nlog;	/* its log goes on */
		item_free(old);
		if (!same) {
			item_free(it);
			dd_seterr("delivery id collision with another request");
			return DD_REJECT;
		}
		if (!corrected) {
			item_free(it);
			s->n_dup++;	/* replayed: nothing new to say */
			return DD_ACCEPT;
		}
	}
	s->n_new++;
	int64_t t = advance(s, ft.field[0] || it->pickup_time == INT64_MIN ? INT64_MIN
	    : it->pickup_time - s->o.lead_ms);
	it->seq = ++s->seq;
	it->received = it->updated = t;
	if (ft.field[0]) {
		s->n_invalid++;
		it->state = ST_REJECTED;
		snprintf(it->reason, sizeof it->reason, "invalid");
		snprintf(it->field, sizeof it->field, "%s", ft.field);
		char msg[260];
		snprintf(msg, sizeof msg, "%s: %s", ft.field, ft.msg);
		if (emit_rejected(s, it, t, "invalid", msg, 0) || item_put(s, it))
			goto fail;
		item_free(it);
		return v;
	}
	/* The unit of work is recorded with its first step, in this
	 * transaction: register the package, then find a drone. */
	it->valid = 1;
	it->state = ST_WAITING;
	if (emit_registered(s, it, t))
		goto fail;
	struct dd_trip tr;
	struct dd_plan p;
	trip_of(it, t, -1, &tr);
	int fit = dd_fleet_search(s->fleet, &tr, &p);
	if (fit == DD_FIT_OK) {
		if (assign(s, it, &p, t, 0, NULL) || item_put(s, it))
			goto fail;
	} else if (fit == DD_FIT_NONE) {
		s->n_nodrone++;
		if (compensate(s, it, t, "no-drone", 0, 0) || item_put(s, it))
			goto fail;
	} else {
		s->n_wait++;
		if (log_row(s, it, t, "waiting", "no drone free before the deadline", NULL) ||
		    item_put(s, it))
			goto fail;
		wait_add(s, it);
		return v;
	}
	item_free(it);
	return v;
fail:
	item_free(it);
	return DD_FAIL;
}

/* The delivery an operation names: deliveryId, or requestId + ownerId.
 * 0, or -1 (bad input, dd_errmsg()). */
static int
op_did(const struct keys *k, char did[IDMAX + 1])
{
	char rid[IDMAX + 1], owner[IDMAX + 1];
	const char *why;
	int r = get_id(&k->v[K_DELIVERYID], did, &why);
	if (r < 0) {
		dd_seterr("\"deliveryId\": %s", why);
		return -1;
	}
	if (r == 0) {
		if (get_id(&k->v[K_REQUESTID], rid, &why) <= 0 ||
		    get_id(&k->v[K_OWNERID], owner, &why) <= 0) {
			dd_seterr("an operation names its delivery by deliveryId, or by requestId and ownerId");
			return -1;
		}
		derive_did(owner, rid, did);
	}
	return 0;
}

/*
 * An operation is decided once, the first time it is seen, and a replay
 * of the same operation (the same content) gets the same outcome, even
 * if the delivery has changed since (a cancel read before its request
 * stays rejected). 0: new; 1: applied before; 2: rejected before (why in
 * dd_errmsg()); -1: store failure.
 */
static int
op_recall(struct dd_sched *s, const char *hash)
{
	sqlite3_bind_text(s->q_opseen, 1, hash, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(s->q_opseen), r = 0;
	if (rc == SQLITE_ROW) {
		const unsigned char *why = sqlite3_column_text(s->q_opseen, 0);
		r = why ? 2 : 1;
		if (why)
			dd_seterr("%s", (const char *)why);
	}
	sqlite3_reset(s->q_opseen);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return dd_store_err(&s->st, "reading the operations");
	return r;
}

/* Keep an operation's outcome: applied (rejected NULL) or why not. */
static int
op_remember(struct dd_sched *s, const char *hash, const char *rejected)
{
	sqlite3_bind_text(s->q_op, 1, hash, -1, SQLITE_TRANSIENT);
	bind_str(s->q_op, 2, rejected);
	return step_sql(s, s->q_op, "recording an operation");
}

/* Reject an operation for good: remembered, and the reason in dd_errmsg(). */
static enum dd_verdict __attribute__((format(printf, 3, 4)))
op_refuse(struct dd_sched *s, const char *hash, const char *fmt, ...)
{
	char why[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	if (op_remember(s, hash, why))
		return DD_FAIL;
	dd_seterr("%s", why);
	return DD_REJECT;
}

static int
op_reason(const struct keys *k, char out[IDMAX + 1], const char *dflt)
{
	const char *why;
	int r = get_id(&k->v[K_REASON], out, &why);
	if (r < 0) {
		dd_seterr("\"reason\": %s", why);
		return -1;
	}
	if (r == 0)
		snprintf(out, IDMAX + 1, "%s", dflt);
	return 0;
}

static enum dd_verdict
op_cancel(struct dd_sched *s, const struct keys *k)
{
	char reason[IDMAX + 1], did[IDMAX + 1], hash[24];
	if (op_reason(k, reason, "client") || op_did(k, did))
		return DD_REJECT;
	struct dd_buf *h = &s->tmp;
	dd_buf_reset(h);
	dd_buf_printf(h, "cancel\n%s\n%s", did, reason);
	hex_id(hash, sizeof hash, "", dd_hash64(h->p, h->len));
	int r = op_recall(s, hash);
	if (r)
		return r < 0 ? DD_FAIL : r == 1 ? (s->n_opdup++, DD_ACCEPT) : DD_REJECT;
	struct item *it;
	int found = item_get(s, did, &it);
	if (found <= 0)
		return found < 0 ? DD_FAIL : op_refuse(s, hash, "no such delivery: %s", did);
	enum dd_verdict v = DD_ACCEPT;
	if (it->state == ST_CANCELLED) {
		s->n_opdup++;	/* cancelled already, another way */
		if (op_remember(s, hash, NULL))
			v = DD_FAIL;
	} else if (is_final(it->state)) {
		v = op_refuse(s, hash, "cannot cancel delivery %s: it is %s", it->did,
		    state_names[it->state]);
	} else {
		s->n_ops++;
		int64_t t = advance(s, INT64_MIN);
		char drone[IDMAX + 1];
		snprintf(drone, sizeof drone, "%s", it->drone);
		if (it->state == ST_WAITING)
			item_free(wait_take(s, it->did));
		if (compensate(s, it, t, reason, 1, 1) || item_put(s, it) ||
		    op_remember(s, hash, NULL) || (*drone && retry_waiting(s, drone, t)))
			v = DD_FAIL;
	}
	item_free(it);
	return v;
}

/*
 * Apply new terms to a delivery: release its drone, look for the best
 * drone under the new terms (the same one may come back), and say what
 * changed; with no drone free in time it waits for one.
 */
static int
apply_reschedule(struct dd_sched *s, struct item *it, const struct item *n, unsigned changed,
    const char *reason, int64_t t)
{
	char old[IDMAX + 1];
	int oldv = it->version;
	snprintf(old, sizeof old, "%s", it->drone);
	if (it->state == ST_WAITING)
		item_free(wait_take(s, it->did));
	unbook(s, it);
	it->pk_lat = n->pk_lat, it->pk_lon = n->pk_lon, it->pk_alt = n->pk_alt;
	it->dr_lat = n->dr_lat, it->dr_lon = n->dr_lon, it->dr_alt = n->dr_alt;
	it->pickup_time = n->pickup_time;
	it->deadline = n->deadline;
	it->expedited = n->expedited;
	it->confirm = n->confirm;
	struct dd_trip tr;
	struct dd_plan p;
	trip_of(it, t, -1, &tr);
	int fit = dd_fleet_search(s->fleet, &tr, &p);
	if (fit == DD_FIT_NONE)
		return compensate(s, it, t, "no-drone", 1, it->ever);
	if (*old && (fit != DD_FIT_OK || strcmp(old, dd_fleet_spec(s->fleet, p.drone)->id) != 0) &&
	    emit_released(s, it, t, old, oldv, "rescheduled", 1))
		return -1;
	if (fit == DD_FIT_OK)
		return assign(s, it, &p, t, changed, reason);
	drop_drone(it);
	it->version++;
	it->state = ST_WAITING;
	it->updated = t;
	return emit_rescheduled(s, it, t, changed, reason);
}

static enum dd_verdict
op_reschedule(struct dd_sched *s, const struct keys *k)
{
	char reason[IDMAX + 1], did[IDMAX + 1], hash[24];
	if (op_reason(k, reason, "client") || op_did(k, did))
		return DD_REJECT;
	/* The new terms as given (g), checked on their own. */
	struct fault ft = { { 0 }, { 0 } };
	struct item g;
	memset(&g, 0, sizeof g);
	unsigned changed = 0;
	if (k->v[K_PICKUP].type) {
		loc_obj(&k->v[K_PICKUP], "pickup", &g.pk_lat, &g.pk_lon, &g.pk_alt, &ft);
		changed |= CH_PICKUP;
	}
	if (k->v[K_DROPOFF].type) {
		loc_obj(&k->v[K_DROPOFF], "dropoff", &g.dr_lat, &g.dr_lon, &g.dr_alt, &ft);
		changed |= CH_DROPOFF;
	}
	if (k->v[K_PICKUPTIME].type) {
		get_time(&k->v[K_PICKUPTIME], "pickupTime", &g.pickup_time, &ft);
		changed |= CH_PTIME;
	}
	if (k->v[K_DEADLINE].type) {
		get_time(&k->v[K_DEADLINE], "deadline", &g.deadline, &ft);
		changed |= CH_DEADLINE;
	}
	if (k->v[K_EXPEDITED].type) {
		get_bool(&k->v[K_EXPEDITED], "expedited", &g.expedited, &ft);
		changed |= CH_EXPEDITED;
	}
	if (k->v[K_CONFIRM].type) {
		get_confirm(&k->v[K_CONFIRM], &g.confirm, &ft);
		changed |= CH_CONFIRM;
	}
	if (ft.field[0]) {
		dd_seterr("reschedule: %s: %s", ft.field, ft.msg);
		return DD_REJECT;
	}
	if (!changed) {
		dd_seterr("reschedule: nothing to change (pickup, dropoff, pickupTime, deadline,"
		    " expedited or confirmationRequired)");
		return DD_REJECT;
	}
	struct dd_buf *h = &s->tmp;
	dd_buf_reset(h);
	dd_buf_printf(h, "reschedule\n%s\n%u\n%.17g,%.17g,%.17g\n%.17g,%.17g,%.17g\n%" PRId64
	    "\n%" PRId64 "\n%d\n%d\n%s", did, changed, g.pk_lat, g.pk_lon, g.pk_alt, g.dr_lat,
	    g.dr_lon, g.dr_alt, g.pickup_time, g.deadline, g.expedited, g.confirm, reason);
	hex_id(hash, sizeof hash, "", dd_hash64(h->p, h->len));
	int r = op_recall(s, hash);
	if (r)
		return r < 0 ? DD_FAIL : r == 1 ? (s->n_opdup++, DD_ACCEPT) : DD_REJECT;
	struct item *it;
	int found = item_get(s, did, &it);
	if (found <= 0)
		return found < 0 ? DD_FAIL : op_refuse(s, hash, "no such delivery: %s", did);
	enum dd_verdict v;
	struct item n = *it;
	if (changed & CH_PICKUP)
		n.pk_lat = g.pk_lat, n.pk_lon = g.pk_lon, n.pk_alt = g.pk_alt;
	if (changed & CH_DROPOFF)
		n.dr_lat = g.dr_lat, n.dr_lon = g.dr_lon, n.dr_alt = g.dr_alt;
	if (changed & CH_PTIME)
		n.pickup_time = g.pickup_time;
	if (changed & CH_DEADLINE)
		n.deadline = g.deadline;
	if (changed & CH_EXPEDITED)
		n.expedited = g.expedited;
	if (changed & CH_CONFIRM)
		n.confirm = g.confirm;
	if (!it->valid || is_final(it->state) || it->state == ST_FAILED ||
	    strcmp(it->stage, "headed-to-dropoff") == 0) {
		v = op_refuse(s, hash, "cannot reschedule delivery %s: it is %s", it->did,
		    it->state == ST_INPROGRESS ? it->stage : state_names[it->state]);
		goto out;
	}
	if (n.deadline <= n.pickup_time) {
		v = op_refuse(s, hash, "reschedule: deadline: not after pickupTime");
		goto out;
	}
	v = DD_ACCEPT;
	s->n_ops++;
	/* An operation has no time of its own: it happens at the clock. */
	int64_t t = advance(s, INT64_MIN);
	char old[IDMAX + 1];
	snprintf(old, sizeof old, "%s", it->drone);
	if (op_remember(s, hash, NULL) || apply_reschedule(s, it, &n, changed, reason, t) ||
	    item_put(s, it)) {
		v = DD_FAIL;
		goto out;
	}
	if (it->state == ST_WAITING) {
		wait_add(s, it);
		it = NULL;
	}
	if (*old && retry_waiting(s, old, t))
		v = DD_FAIL;
out:
	item_free(it);
	return v;
}

/* ---- feedback: delivery.status ---- */

static int
stage_rank(const char *st)
{
	if (strcmp(st, "headed-to-pickup") == 0)
		return 1;
	if (strcmp(st, "headed-to-dropoff") == 0)
		return 2;
	if (strcmp(st, "completed") == 0 || strcmp(st, "failed") == 0 ||
	    strcmp(st, "cancelled") == 0)
		return 3;
	return 0;	/* created, rescheduled: our own events coming back */
}

static enum dd_verdict
status_event(struct dd_sched *s, const struct dd_env *e)
{
	if (dd_event_check_data(e))
		return DD_REJECT;
	struct dd_jval v;
	char did[IDMAX + 1], stage[24], eid[IDMAX + 1], drone[IDMAX + 1] = "";
	if (!dd_json_get(&e->data, "deliveryId", 10, &v) || dd_env_str(&v, did, sizeof did) <= 0) {
		dd_seterr("\"data.deliveryId\" is not an id");
		return DD_REJECT;
	}
	if (!dd_json_get(&e->data, "stage", 5, &v) || dd_env_str(&v, stage, sizeof stage) <= 0) {
		dd_seterr("\"data.stage\" is not a stage");
		return DD_REJECT;
	}
	if (dd_json_get(&e->data, "droneId", 7, &v) && v.type == DD_JSTR)
		dd_env_str(&v, drone, sizeof drone);
	dd_env_str(&e->id, eid, sizeof eid);
	int64_t t = advance(s, e->time_ms);
	struct item *it;
	int found = item_get(s, did, &it);
	if (found < 0)
		return DD_FAIL;
	if (!found) {
		/* Not one of ours, and it stays so: a replay where the delivery
		 * exists by then must not apply it either. */
		sqlite3_bind_text(s->q_seenadd, 1, eid, -1, SQLITE_TRANSIENT);
		return step_sql(s, s->q_seenadd, "recording a status") ? DD_FAIL : DD_SKIP;
	}
	sqlite3_bind_text(s->q_seen, 1, eid, -1, SQLITE_TRANSIENT);
	int rc = sqlite3_step(s->q_seen);
	sqlite3_reset(s->q_seen);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		item_free(it);
		return dd_store_err(&s->st, "reading the statuses"), DD_FAIL;
	}
	if (rc == SQLITE_ROW) {
		item_free(it);
		return DD_SKIP;
	}
	s->n_status++;
	enum dd_verdict verdict = DD_ACCEPT;
	int rank = stage_rank(stage);
	/* Only news about the current flight moves an item: not a stage it
	 * has passed, not a status of a drone it no longer has. */
	if ((it->state != ST_SCHEDULED && it->state != ST_INPROGRESS) || rank == 0 ||
	    rank <= (*it->stage ? stage_rank(it->stage) : 0) ||
	    (*drone && strcmp(drone, it->drone) != 0) || strcmp(stage, "cancelled") == 0) {
		item_free(it);
		return verdict;
	}
	snprintf(it->prev_stage, sizeof it->prev_stage, "%s", it->stage);
	snprintf(it->stage, sizeof it->stage, "%s", stage);
	it->stage_time = e->time_ms;
	it->updated = t;
	int i = dd_fleet_find(s->fleet, it->drone);
	int freed = 0;
	if (strcmp(stage, "completed") == 0) {
		it->state = ST_COMPLETED;
		/* Home after the return leg: the drone may be free sooner. */
		if (i >= 0) {
			int64_t end = e->time_ms + dd_fleet_return_ms(s->fleet, i, it->dr_lat, it->dr_lon) +
			    DD_TURNAROUND_MS;
			if (end < it->busy_until) {
				dd_fleet_shorten(s->fleet, i, item_key(it), end);
				it->busy_until = end;
				freed = 1;
			}
		}
	} else if (strcmp(stage, "failed") == 0) {
		/* The supervisor retries or compensates it; the drone's
		 * booking ends now. */
		it->state = ST_FAILED;
		if (i >= 0 && e->time_ms < it->busy_until) {
			dd_fleet_shorten(s->fleet, i, item_key(it), e->time_ms);
			it->busy_until = e->time_ms > it->depart ? e->time_ms : it->depart;
			freed = 1;
		}
	} else {
		it->state = ST_INPROGRESS;
	}
	if (log_row(s, it, t, "status", stage, eid) || item_put(s, it) ||
	    (freed && retry_waiting(s, it->drone, t)))
		verdict = DD_FAIL;
	item_free(it);
	return verdict;
}

/* ---- one input line ---- */

static enum dd_verdict
sched_line(struct dd_sched *s, const char *p, size_t n)
{
	struct keys k;
	memset(&k, 0, sizeof k);
	if (dd_json_scan_object(p, n, key_member, &k))
		return DD_REJECT;
	if (ensure_tx(s))
		return DD_FAIL;
	if (k.v[K_SPECVERSION].type) {
		struct dd_env e;
		if (dd_env_scan(p, n, &e))
			return DD_REJECT;
		if (!dd_env_type_is(&e, "delivery.status"))
			return DD_SKIP;	/* other events: not ours to consume */
		return status_event(s, &e);
	}
	if (k.v[K_OP].type) {
		if (dd_jstr_eq(&k.v[K_OP], "cancel", 6))
			return op_cancel(s, &k);
		if (dd_jstr_eq(&k.v[K_OP], "reschedule", 10))
			return op_reschedule(s, &k);
		dd_seterr("unknown \"op\" (cancel or reschedule)");
		return DD_REJECT;
	}
	return new_request(s, &k);
}

/* ---- CSV requests ---- */

/*
 * With --csv a thread reads the CSV (libcsv, rows may span lines) and
 * writes each row as one JSON request line into a pipe that the filter
 * loop reads, so CSV input goes through exactly the code NDJSON does.
 * Each line's origin (CSV line, offset, raw row, or the reason the row is
 * malformed) goes through a queue, for rejects that name the CSV line.
 */
struct origin {
	uint64_t lineno, off;
	char *raw;
	size_t rawlen;
	char *error;
	struct origin *next;
};

/* The header as a tree: dotted names nest ("pickup.lat" is lat inside
 * pickup); a leaf holds its column. */
struct cnode {
	char *key;
	int col;		/* leaf: the column; -1: an object */
	struct cnode *kids;
	int nkids;
};

struct csvfeed {
	pthread_t th;
	FILE *in;
	int wfd;
	pthread_mutex_t mu;
	struct origin *head, *tail, *cur;
	uint64_t popped;	/* origins taken: cur is that line's */
	struct dd_line line;
	int ncols;
	int header_done;
	struct cnode root;
	int rc;
	char err[256];
};

static void
cnode_free(struct cnode *n)
{
	for (int i = 0; i < n->nkids; i++)
		cnode_free(&n->kids[i]);
	free(n->kids);
	free(n->key);
}

/* Add column col named name under n; -1 (dd_errmsg()) when a name is
 * both a value and an object, or given twice. */
static int
cnode_add(struct cnode *n, const char *name, int col, const char *full)
{
	const char *dot = strchr(name, '.');
	size_t len = dot ? (size_t)(dot - name) : strlen(name);
	if (len == 0) {
		dd_seterr("bad column name \"%s\"", full);
		return -1;
	}
	struct cnode *k = NULL;
	for (int i = 0; i < n->nkids; i++)
		if (strlen(n->kids[i].key) == len && memcmp(n->kids[i].key, name, len) == 0)
			k = &n->kids[i];
	if (k == NULL) {
		n->kids = dd_realloc(n->kids, (size_t)(n->nkids + 1) * sizeof *n->kids);
		k = &n->kids[n->nkids++];
		memset(k, 0, sizeof *k);
		k->key = dd_strndup(name, len);
		k->col = dot ? -1 : col;
		if (!dot)
			return 0;
	} else if (!dot || k->col >= 0) {
		dd_seterr("column \"%s\" clashes with another", full);
		return -1;
	}
	return cnode_add(k, dot + 1, col, full);
}

static int
csv_numeric(const char *key)
{
	return strcmp(key, "lat") == 0 || strcmp(key, "lon") == 0 || strcmp(key, "alt") == 0 ||
	    strcmp(key, "weightKg") == 0 || strcmp(key, "weight") == 0;
}

/* One cell as a JSON value: numbers and booleans where the request has
 * them (and the text is one), strings otherwise, so a bad cell is
 * judged like the same bad value in NDJSON. */
static void
csv_value(struct dd_buf *b, const char *key, const char *v, size_t n)
{
	if (csv_numeric(key) && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9')) &&
	    dd_json_validate(v, n, NULL) == 0) {
		dd_buf_add(b, v, n);
		return;
	}
	if (strcmp(key, "expedited") == 0 && (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)) {
		dd_buf_adds(b, v);
		return;
	}
	dd_buf_json_str(b, v, n);
}

/* The object of node n for row r; empty cells are absent members, and
 * an object with no member is absent too. Returns the members written. */
static int
csv_object(const struct cnode *n, const struct dd_csv_row *r, struct dd_buf *b)
{
	int written = 0;
	dd_buf_addc(b, '{');
	for (int i = 0; i < n->nkids; i++) {
		const struct cnode *k = &n->kids[i];
		size_t mark = b->len;
		if (written)
			dd_buf_addc(b, ',');
		dd_buf_json_str(b, k->key, strlen(k->key));
		dd_buf_addc(b, ':');
		if (k->col >= 0) {
			if (k->col >= r->n || r->len[k->col] == 0) {
				b->len = mark;
				continue;
			}
			csv_value(b, k->key, r->f[k->col], r->len[k->col]);
		} else if (csv_object(k, r, b) == 0) {
			b->len = mark;
			continue;
		}
		written++;
	}
	dd_buf_addc(b, '}');
	return written;
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
csv_row(void *ctx, const struct dd_csv_row *r)
{
	struct csvfeed *c = ctx;
	struct dd_buf b = { 0 };
	char why[200] = "";
	int stop = 0;
	if (r->error) {
		snprintf(why, sizeof why, "bad CSV: %s", r->error);
		stop = !c->header_done;
	} else if (!c->header_done) {
		c->header_done = 1;
		c->ncols = r->n;
		c->root.col = -1;
		for (int i = 0; i < r->n && !stop; i++)
			if (r->len[i] && cnode_add(&c->root, r->f[i], i, r->f[i])) {
				snprintf(why, sizeof why, "header: %s", dd_errmsg());
				stop = 1;
			}
		if (!stop)
			return 0;
	} else if (r->n != c->ncols) {
		snprintf(why, sizeof why, "%d fields, the header has %d", r->n, c->ncols);
	} else {
		csv_object(&c->root, r, &b);
		dd_buf_addc(&b, '\n');
	}
	struct origin *o = dd_calloc(1, sizeof *o);
	o->lineno = r->lineno;
	o->off = r->off;
	o->raw = dd_strndup(r->raw ? r->raw : "", r->rawlen);
	o->rawlen = r->rawlen;
	if (why[0]) {
		o->error = dd_strdup(why);
		dd_buf_reset(&b);
		dd_buf_adds(&b, "-\n");	/* a placeholder line, rejected with the reason */
	}
	pthread_mutex_lock(&c->mu);
	if (c->tail)
		c->tail->next = o;
	else
		c->head = o;
	c->tail = o;
	pthread_mutex_unlock(&c->mu);
	int rc = write_all(c->wfd, b.p, b.len);
	dd_buf_free(&b);
	/* Stop when the reader went away, or without a usable header. */
	return rc || stop ? 1 : 0;
}

static void *
csv_thread(void *arg)
{
	struct csvfeed *c = arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	int rc = dd_csv_read(c->in, csv_row, c);
	if (rc < 0) {
		c->rc = -1;
		snprintf(c->err, sizeof c->err, "%s", dd_errmsg());
	}
	close(c->wfd);
	return NULL;
}

static void
origin_free(struct origin *o)
{
	if (o) {
		free(o->raw);
		free(o->error);
		free(o);
	}
}

/* Take the origin of the next line; NULL when out of step (a bug). */
static struct origin *
csv_next(struct csvfeed *c)
{
	c->popped++;
	pthread_mutex_lock(&c->mu);
	struct origin *o = c->head;
	if (o) {
		c->head = o->next;
		if (c->head == NULL)
			c->tail = NULL;
	}
	pthread_mutex_unlock(&c->mu);
	origin_free(c->cur);
	c->cur = o;
	return o;
}

/* The origin of line lineno of the pipe: line k is the kth row after the
 * header. (The loop rejects an over-long line without showing it to us.) */
static struct origin *
csv_origin(struct csvfeed *c, uint64_t lineno)
{
	while (c->popped < lineno)
		if (csv_next(c) == NULL)
			return NULL;
	return c->popped == lineno ? c->cur : NULL;
}

/* ---- the filter ---- */

static enum dd_verdict
filter_line(void *ctx, const struct dd_line *l)
{
	struct dd_sched *s = ctx;
	if (s->csv) {
		struct origin *o = csv_origin(s->csv, l->lineno);
		if (o == NULL) {
			dd_seterr("internal error: CSV rows out of step");
			return DD_FAIL;
		}
		if (o->error) {
			dd_seterr("%s", o->error);
			return DD_REJECT;
		}
	}
	return sched_line(s, l->p, l->n);
}

static const struct dd_line *
filter_origin(void *ctx, const struct dd_line *l)
{
	struct dd_sched *s = ctx;
	if (s->csv == NULL || csv_origin(s->csv, l->lineno) == NULL)
		return l;
	struct dd_line *o = &s->csv->line;
	memset(o, 0, sizeof *o);
	o->p = s->csv->cur->raw;
	o->n = s->csv->cur->rawlen;
	o->fulllen = o->n;
	o->lineno = s->csv->cur->lineno;
	o->off = s->csv->cur->off;
	if (o->n > DD_LINE_KEEP) {
		o->n = DD_LINE_KEEP;
		o->toolong = 1;
	}
	return o;
}

static long fault_at(const char *what);

static int
filter_commit(void *ctx)
{
	struct dd_sched *s = ctx;
	/* A test aid, like supervise-kill below: the loop has flushed the
	 * output of this batch, which is not committed yet. */
	static long commits;
	long kill_at = fault_at("commit-kill:");
	if (kill_at > 0 && s->st.in_tx && ++commits == kill_at)
		raise(SIGKILL);
	return commit(s);
}

static void
filter_summary(void *ctx, struct dd_buf *b)
{
	struct dd_sched *s = ctx;
	dd_buf_printf(b, "; requests %" PRIu64 " new, %" PRIu64 " replayed; scheduled %" PRIu64
	    ", waiting %" PRIu64 ", invalid %" PRIu64 ", no-drone %" PRIu64 "; operations %" PRIu64
	    " applied, %" PRIu64 " replayed; statuses %" PRIu64 "; emitted %" PRIu64, s->n_new,
	    s->n_dup, s->n_sched, s->n_wait, s->n_invalid, s->n_nodrone, s->n_ops, s->n_opdup,
	    s->n_status, s->n_emitted);
	uint64_t drones, nodes, searches;
	dd_fleet_counters(s->fleet, &drones, &nodes, &searches);
	if (searches)
		dd_buf_printf(b, "; %.1f drones examined per search", (double)drones / (double)searches);
}

static int
start_csv(struct dd_sched *s, int fd, int *rfd)
{
	int p[2];
	if (pipe(p) < 0) {
		dd_seterr("pipe: %s", strerror(errno));
		return -1;
	}
	struct csvfeed *c = dd_calloc(1, sizeof *c);
	c->in = fdopen(dup(fd), "r");
	c->wfd = p[1];
	pthread_mutex_init(&c->mu, NULL);
	if (c->in == NULL || pthread_create(&c->th, NULL, csv_thread, c) != 0) {
		dd_seterr("cannot start the CSV reader: %s", strerror(errno));
		if (c->in)
			fclose(c->in);
		close(p[0]);
		close(p[1]);
		free(c);
		return -1;
	}
	s->csv = c;
	*rfd = p[0];
	return 0;
}

/* A CSV reader left waiting for input when the filter stopped early:
 * kept reachable, the process exit ends it. */
static struct csvfeed *abandoned;

static int
stop_csv(struct dd_sched *s, int rfd, int finished)
{
	struct csvfeed *c = s->csv;
	int rc = 0;
	close(rfd);	/* a writer still busy gets EPIPE and stops */
	if (!finished) {
		/* Stopped early (--strict, a signal): the reader ends at once
		 * unless it is waiting for input that may never come. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (pthread_timedjoin_np(c->th, NULL, &ts) != 0) {
			pthread_detach(c->th);
			abandoned = c;
			s->csv = NULL;
			return 0;
		}
	} else {
		pthread_join(c->th, NULL);
	}
	if (c->rc < 0) {
		dd_seterr("%s", c->err);
		rc = -1;
	}
	origin_free(c->cur);
	while (c->head) {
		struct origin *o = c->head;
		c->head = o->next;
		origin_free(o);
	}
	cnode_free(&c->root);
	fclose(c->in);
	pthread_mutex_destroy(&c->mu);
	free(c);
	s->csv = NULL;
	return rc;
}

int
dd_sched_filter(struct dd_sched *s, const struct dd_filter_opts *fo, int csv)
{
	struct dd_filter_opts o = *fo;
	struct dd_filter_ops ops = {
		.line = filter_line, .commit = filter_commit, .summary = filter_summary,
		.origin = filter_origin,
	};
	o.raw = 1;
	int rfd = -1;
	if (csv && start_csv(s, fo->fd, &rfd)) {
		dd_warn("%s", dd_errmsg());
		return DD_EXIT_IO;
	}
	if (csv)
		o.fd = rfd;
	/* Load now, so a broken store is reported before any input is read. */
	if (ensure_tx(s) || commit(s)) {
		dd_warn("%s", dd_errmsg());
		if (csv)
			stop_csv(s, rfd, 0);
		return DD_EXIT_IO;
	}
	if (dd_fleet_count(s->fleet) == 0 && !o.quiet)
		dd_warn("%s: the fleet is empty (dd-schedule fleet import FILE, or --fleet FILE)",
		    s->st.path);
	int code = dd_filter_run(&o, &ops, s, NULL);
	if (csv) {
		int finished = code == DD_EXIT_OK || code == DD_EXIT_REJECTED;
		if (stop_csv(s, rfd, finished) && finished) {
			dd_warn("%s: %s", fo->input, dd_errmsg());
			code = DD_EXIT_IO;
		}
	}
	return code;
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
		sqlite3_bind_text(q, 1, d.id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_double(q, 2, d.lat);
		sqlite3_bind_double(q, 3, d.lon);
		sqlite3_bind_double(q, 4, d.max_kg);
		sqlite3_bind_text(q, 5, dd_size_name(d.max_size), -1, SQLITE_STATIC);
		sqlite3_bind_double(q, 6, d.range_km);
		sqlite3_bind_double(q, 7, d.speed_mps);
		if (step_sql(im->s, q, "importing the fleet")) {
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
	if (ensure_tx(s) || (im.q = dd_store_prepare(&s->st, "INSERT OR REPLACE INTO drones"
	    "(id, lat, lon, max_kg, max_size, range_km, speed_mps) VALUES(?,?,?,?,?,?,?)")) == NULL) {
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
	if (load(s) || commit(s)) {
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

/* ---- the supervisor ---- */

/*
 * Test aids, DD_SCHEDULE_FAULT: supervise-kill:N makes the supervisor
 * kill itself (SIGKILL) after writing the events of the Nth item it acts
 * on and before committing them; commit-kill:N makes the filter do so at
 * its Nth commit, after the batch's output. The worst moments for a crash.
 */
static long
fault_at(const char *what)
{
	const char *f = getenv("DD_SCHEDULE_FAULT");
	size_t n = strlen(what);
	if (f && strncmp(f, what, n) == 0)
		return strtol(f + n, NULL, 10);
	return 0;
}

struct supstats {
	uint64_t examined, scheduled, rescheduled, cancelled, rejected;
};

/* Reassign an item to another drone at t, or compensate. */
static int
reassign(struct dd_sched *s, struct item *it, int64_t t, const char *reason, int exclude_old,
    struct supstats *ss)
{
	char old[IDMAX + 1];
	int oldv = it->version;
	snprintf(old, sizeof old, "%s", it->drone);
	int ex = exclude_old && *old ? dd_fleet_find(s->fleet, old) : -1;
	unbook(s, it);
	struct dd_trip tr;
	struct dd_plan p;
	trip_of(it, t, ex, &tr);
	if (it->deadline > t && dd_fleet_search(s->fleet, &tr, &p) == DD_FIT_OK) {
		if (*old && emit_released(s, it, t, old, oldv, reason, 1))
			return -1;
		ss->rescheduled++;
		return assign(s, it, &p, t, 0, reason);
	}
	if (it->ever)
		ss->cancelled++;
	else
		ss->rejected++;
	return compensate(s, it, t, reason, 1, it->ever);
}

/* Decide about one item at t; 0 also when there was nothing to do. */
static int
supervise_item(struct dd_sched *s, struct item *it, int64_t t, struct supstats *ss)
{
	switch (it->state) {
	case ST_FAILED:
		/* Failed is a final stage (SPEC.md): dd-track and dd-history
		 * ignore whatever follows it, so a new drone for this delivery
		 * would fly unseen. It is compensated; a retry is a new request. */
		ss->cancelled++;
		return compensate(s, it, t, "drone-failed", 1, 1);
	case ST_SCHEDULED:
		if (it->pickup_eta == INT64_MIN || it->pickup_eta + s->o.timeout_ms > t)
			return 0;
		return reassign(s, it, t, "no-progress", 1, ss);
	case ST_WAITING: {
		struct dd_trip tr;
		struct dd_plan p;
		trip_of(it, t, -1, &tr);
		if (it->deadline > t) {
			int fit = dd_fleet_search(s->fleet, &tr, &p);
			if (fit == DD_FIT_OK) {
				item_free(wait_take(s, it->did));
				ss->scheduled++;
				return assign(s, it, &p, t, 0, "drone-freed");
			}
			if (fit == DD_FIT_BUSY)
				return 0;
		}
		item_free(wait_take(s, it->did));
		if (it->ever)
			ss->cancelled++;
		else
			ss->rejected++;
		return compensate(s, it, t, it->deadline > t ? "no-drone" : "deadline", 1, it->ever);
	}
	default:
		return 0;
	}
}

static char *
lock_path(const char *db)
{
	char *p = dd_malloc(strlen(db) + 32);
	sprintf(p, "%s.supervise.lock", db);
	return p;
}

int
dd_sched_supervise(struct dd_sched *s, int quiet)
{
	char *lp = lock_path(s->o.db);
	int lock = dd_lock(lp);
	free(lp);
	if (lock < 0)
		return -lock;
	int64_t t = s->o.has_now ? s->o.now : dd_now_ms();
	/* The supervisor's clock is t: its floor too. */
	s->o.has_now = 1;
	s->o.now = t;
	long kill_at = fault_at("supervise-kill:"), acted = 0;
	struct supstats ss = { 0 };
	int code = DD_EXIT_OK;
	/* The candidates: deliveries already promised first (replacing their
	 * drone may free time for the others), then the waiting ones, most
	 * urgent first. Each is then re-read and handled in its own
	 * transaction. */
	struct dd_buf ids = { 0 };
	size_t nids = 0;
	sqlite3_stmt *q = dd_store_prepare(&s->st, "SELECT delivery_id FROM items WHERE"
	    " state = 'failed' OR (state = 'scheduled' AND pickup_eta <= ?) OR state = 'waiting'"
	    " ORDER BY state = 'waiting', expedited DESC, deadline, seq");
	if (q == NULL) {
		code = DD_EXIT_IO;
		goto out;
	}
	sqlite3_bind_int64(q, 1, t - s->o.timeout_ms);
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const unsigned char *id = sqlite3_column_text(q, 0);
		dd_buf_adds(&ids, (const char *)id);
		dd_buf_addc(&ids, '\0');
		nids++;
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE) {
		dd_store_err(&s->st, "finding stuck items");
		code = DD_EXIT_IO;
		goto out;
	}
	const char *id = ids.p;
	for (size_t k = 0; k < nids; k++, id += strlen(id) + 1) {
		struct item *it;
		if (ensure_tx(s)) {
			code = DD_EXIT_IO;
			break;
		}
		int found = item_get(s, id, &it);
		if (found < 0) {
			code = DD_EXIT_IO;
			break;
		}
		if (!found)
			continue;
		ss.examined++;
		int before = it->nlog;
		if (supervise_item(s, it, t, &ss) || (it->nlog != before && item_put(s, it))) {
			item_free(it);
			code = DD_EXIT_IO;
			break;
		}
		if (it->nlog != before)
			acted++;
		item_free(it);
		/* Output first, then the commit: a crash in between repeats this
		 * item's events with the same ids, never loses them. */
		if (fflush(s->out) != 0 || ferror(s->out)) {
			dd_seterr("stdout: %s", strerror(errno));
			code = DD_EXIT_IO;
			break;
		}
		if (kill_at > 0 && acted == kill_at)
			raise(SIGKILL);
		if (commit(s)) {
			code = DD_EXIT_IO;
			break;
		}
		if (dd_signalled) {
			code = 128 + dd_signalled;
			break;
		}
	}
out:
	if (code == DD_EXIT_IO)
		dd_warn("%s", dd_errmsg());
	if (s->st.in_tx)
		dd_store_rollback(&s->st);
	dd_buf_free(&ids);
	if (!quiet)
		dd_warn("supervised %" PRIu64 " items: %" PRIu64 " scheduled, %" PRIu64
		    " rescheduled, %" PRIu64 " cancelled, %" PRIu64 " rejected; %zu still waiting",
		    ss.examined, ss.scheduled, ss.rescheduled, ss.cancelled, ss.rejected, s->nwait);
	close(lock);
	return code;
}

/* ---- questions: get, list, stats, fleet list ---- */

static void
item_json(struct dd_buf *b, const struct item *it)
{
	dd_buf_addc(b, '{');
	jstr(b, "deliveryId", it->did);
	jstr(b, "requestId", it->rid);
	jstr(b, "ownerId", it->owner);
	jstr(b, "state", state_names[it->state]);
	if (*it->reason)
		jstr(b, "reason", it->reason);
	if (*it->field)
		jstr(b, "field", it->field);
	if (it->valid) {
		jloc(b, "pickup", it->pk_lat, it->pk_lon, it->pk_alt);
		jloc(b, "dropoff", it->dr_lat, it->dr_lon, it->dr_alt);
		jtime(b, "pickupTime", it->pickup_time);
		jtime(b, "deadline", it->deadline);
		jkey(b, "expedited");
		dd_buf_adds(b, it->expedited ? "true" : "false");
		jstr(b, "confirmationRequired", confirm_names[it->confirm]);
		package_json(b, it);
	}
	if (*it->drone)
		etas_json(b, it);
	if (*it->stage) {
		jstr(b, "stage", it->stage);
		jtime(b, "stageTime", it->stage_time);
	}
	jkey(b, "version");
	dd_buf_printf(b, "%d", it->version);
	jtime(b, "received", it->received);
	jtime(b, "updated", it->updated);
}

static int
ro_query(struct dd_sched *s, sqlite3_stmt **q, const char *sql)
{
	*q = dd_store_prepare(&s->st, sql);
	return *q ? 0 : DD_EXIT_IO;
}

static int
put_out(struct dd_buf *b, FILE *out)
{
	if (fwrite(b->p, 1, b->len, out) != b->len) {
		dd_seterr("stdout: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* The event type of a logged step (NULL: a step without one). */
static const char *
step_type(const char *step)
{
	static const char *const map[][2] = {
		{ "registered", "package.registered" }, { "scheduled", "delivery.scheduled" },
		{ "rejected", "delivery.rejected" }, { "removed", "package.removed" },
		{ "cancelled", "delivery.cancelled" }, { "released.", "drone.released" },
		{ "rescheduled.", "delivery.rescheduled" }, { "status", "delivery.status" },
	};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
		size_t n = strlen(map[i][0]);
		if (strncmp(step, map[i][0], n) == 0 && (map[i][0][n - 1] == '.' || step[n] == '\0'))
			return map[i][1];
	}
	return NULL;
}

int
dd_sched_get(struct dd_sched *s, const char *id, FILE *out)
{
	sqlite3_stmt *q;
	if (ro_query(s, &q, "SELECT " ITEM_COLS " FROM items WHERE delivery_id = ?1 OR"
	    " (request_id = ?1 AND NOT EXISTS (SELECT 1 FROM items WHERE delivery_id = ?1))"
	    " ORDER BY seq"))
		return DD_EXIT_IO;
	sqlite3_bind_text(q, 1, id, -1, SQLITE_TRANSIENT);
	sqlite3_stmt *lq;
	if (ro_query(s, &lq, "SELECT n, time, step, state, detail, event_id FROM log"
	    " WHERE delivery_id = ? ORDER BY n")) {
		sqlite3_finalize(q);
		return DD_EXIT_IO;
	}
	int rc, n = 0, code = 0;
	struct dd_buf b = { 0 };
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct item *it = item_read(q);
		dd_buf_reset(&b);
		item_json(&b, it);
		jkey(&b, "log");
		dd_buf_addc(&b, '[');
		sqlite3_bind_text(lq, 1, it->did, -1, SQLITE_TRANSIENT);
		int lrc;
		while ((lrc = sqlite3_step(lq)) == SQLITE_ROW) {
			if (b.p[b.len - 1] != '[')
				dd_buf_addc(&b, ',');
			dd_buf_addc(&b, '{');
			jkey(&b, "n");
			dd_buf_printf(&b, "%d", sqlite3_column_int(lq, 0));
			jtime(&b, "time", sqlite3_column_int64(lq, 1));
			const char *step = (const char *)sqlite3_column_text(lq, 2);
			jstr(&b, "step", step);
			const char *type = step_type(step);
			if (type) {
				char eid[24];
				jstr(&b, "type", type);
				if (sqlite3_column_type(lq, 5) != SQLITE_NULL) {
					jstr(&b, "eventId", (const char *)sqlite3_column_text(lq, 5));
				} else {
					derive_eid(it->did, step, eid);
					jstr(&b, "eventId", eid);
				}
			}
			jstr(&b, "state", (const char *)sqlite3_column_text(lq, 3));
			if (sqlite3_column_type(lq, 4) != SQLITE_NULL)
				jstr(&b, "detail", (const char *)sqlite3_column_text(lq, 4));
			dd_buf_addc(&b, '}');
		}
		sqlite3_reset(lq);
		item_free(it);
		dd_buf_adds(&b, "]}\n");
		if (lrc != SQLITE_DONE) {
			dd_store_err(&s->st, "reading the log");
			code = DD_EXIT_IO;
			break;
		}
		if (put_out(&b, out)) {
			code = DD_EXIT_IO;
			break;
		}
		n++;
	}
	if (code == 0 && rc != SQLITE_DONE) {
		dd_store_err(&s->st, "reading a work item");
		code = DD_EXIT_IO;
	}
	sqlite3_finalize(q);
	sqlite3_finalize(lq);
	dd_buf_free(&b);
	if (code == 0 && n == 0) {
		dd_seterr("no such delivery or request: %s", id);
		code = 1;
	}
	return code;
}

int
dd_sched_list(struct dd_sched *s, const char *state, enum dd_fmt fmt, FILE *out)
{
	static const char *const cols[] = {
		"deliveryId", "requestId", "ownerId", "state", "reason", "droneId",
		"pickupTime", "deadline", "pickupEta", "dropoffEta",
	};
	sqlite3_stmt *q;
	if (ro_query(s, &q, state ? "SELECT " ITEM_COLS " FROM items WHERE state = ? ORDER BY seq"
	    : "SELECT " ITEM_COLS " FROM items ORDER BY seq"))
		return DD_EXIT_IO;
	if (state)
		sqlite3_bind_text(q, 1, state, -1, SQLITE_TRANSIENT);
	struct dd_out *o = fmt == DD_FMT_NDJSON ? NULL : dd_out_new(out, fmt, cols, 10);
	struct dd_buf b = { 0 };
	int rc, code = 0;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct item *it = item_read(q);
		char t[4][DD_TIMEBUF];
		int64_t tv[4] = { it->pickup_time, it->deadline, it->pickup_eta, it->dropoff_eta };
		for (int k = 0; k < 4; k++)
			if (tv[k] == INT64_MIN)
				t[k][0] = '\0';
			else
				dd_time_format(tv[k], t[k]);
		const char *v[10] = { it->did, it->rid, it->owner, state_names[it->state],
			it->reason, it->drone, t[0], t[1], t[2], t[3] };
		if (o) {
			for (int k = 0; k < 10; k++)
				dd_out_cell(o, v[k], strlen(v[k]));
			dd_out_endrow(o);
		} else {
			dd_buf_reset(&b);
			dd_buf_addc(&b, '{');
			for (int k = 0; k < 10; k++) {
				jkey(&b, cols[k]);
				if (*v[k])
					dd_buf_json_str(&b, v[k], strlen(v[k]));
				else
					dd_buf_adds(&b, "null");
			}
			dd_buf_adds(&b, "}\n");
			if (put_out(&b, out))
				code = DD_EXIT_IO;
		}
		item_free(it);
		if (code)
			break;
	}
	if (code == 0 && rc != SQLITE_DONE) {
		dd_store_err(&s->st, "listing work items");
		code = DD_EXIT_IO;
	}
	sqlite3_finalize(q);
	dd_buf_free(&b);
	if (o && dd_out_finish(o) && code == 0) {
		dd_seterr("stdout: %s", strerror(errno));
		code = DD_EXIT_IO;
	}
	return code;
}

int
dd_sched_stats(struct dd_sched *s, FILE *out)
{
	sqlite3_stmt *q;
	if (ro_query(s, &q, "SELECT count(*), total(ever), total(NOT ever AND state = 'waiting'),"
	    " total(NOT ever AND state IN ('rejected', 'cancelled')),"
	    " (SELECT count(*) FROM drones) FROM items"))
		return DD_EXIT_IO;
	struct dd_buf b = { 0 };
	int code = 0;
	if (sqlite3_step(q) != SQLITE_ROW) {
		dd_store_err(&s->st, "counting");
		sqlite3_finalize(q);
		return DD_EXIT_IO;
	}
	dd_buf_printf(&b, "{\"requests\":%lld,\"scheduled\":%lld,\"rejected\":%lld,"
	    "\"waiting\":%lld,\"drones\":%lld", sqlite3_column_int64(q, 0),
	    (long long)sqlite3_column_double(q, 1), (long long)sqlite3_column_double(q, 3),
	    (long long)sqlite3_column_double(q, 2), sqlite3_column_int64(q, 4));
	sqlite3_finalize(q);
	static const char *const groups[][2] = {
		{ "states", "SELECT state, count(*) FROM items GROUP BY state ORDER BY state" },
		{ "reasons", "SELECT reason, count(*) FROM items WHERE reason IS NOT NULL"
		    " GROUP BY reason ORDER BY reason" },
	};
	for (int g = 0; g < 2 && code == 0; g++) {
		if (ro_query(s, &q, groups[g][1])) {
			code = DD_EXIT_IO;
			break;
		}
		jkey(&b, groups[g][0]);
		dd_buf_addc(&b, '{');
		int rc;
		while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
			jkey(&b, (const char *)sqlite3_column_text(q, 0));
			dd_buf_printf(&b, "%lld", sqlite3_column_int64(q, 1));
		}
		dd_buf_addc(&b, '}');
		if (rc != SQLITE_DONE)
			code = dd_store_err(&s->st, "counting") ? DD_EXIT_IO : 0;
		sqlite3_finalize(q);
	}
	dd_buf_adds(&b, "}\n");
	if (code == 0 && put_out(&b, out))
		code = DD_EXIT_IO;
	dd_buf_free(&b);
	return code;
}

int
dd_sched_fleet_list(struct dd_sched *s, enum dd_fmt fmt, FILE *out)
{
	sqlite3_stmt *q;
	if (ro_query(s, &q, "SELECT id, lat, lon, max_kg, max_size, range_km, speed_mps"
	    " FROM drones ORDER BY id"))
		return DD_EXIT_IO;
	struct dd_out *o = fmt == DD_FMT_NDJSON ? NULL : dd_out_new(out, fmt, dd_fleet_colnames, 7);
	struct dd_buf b = { 0 }, cell = { 0 };
	int rc, code = 0;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(q, 0);
		const char *size = (const char *)sqlite3_column_text(q, 4);
		if (o) {
			dd_out_cell(o, id, strlen(id));
			for (int k = 1; k < 7; k++) {
				if (k == 4) {
					dd_out_cell(o, size, strlen(size));
					continue;
				}
				dd_buf_reset(&cell);
				jnum(&cell, sqlite3_column_double(q, k));
				dd_out_cell(o, cell.p, cell.len);
			}
			dd_out_endrow(o);
			continue;
		}
		dd_buf_reset(&b);
		dd_buf_addc(&b, '{');
		jstr(&b, "id", id);
		jkey(&b, "base");
		dd_buf_adds(&b, "{\"lat\":");
		jnum(&b, sqlite3_column_double(q, 1));
		dd_buf_adds(&b, ",\"lon\":");
		jnum(&b, sqlite3_column_double(q, 2));
		dd_buf_addc(&b, '}');
		jdbl(&b, "maxPayloadKg", sqlite3_column_double(q, 3));
		jstr(&b, "maxSize", size);
		jdbl(&b, "rangeKm", sqlite3_column_double(q, 5));
		jdbl(&b, "speedMps", sqlite3_column_double(q, 6));
		dd_buf_adds(&b, "}\n");
		if (put_out(&b, out)) {
			code = DD_EXIT_IO;
			break;
		}
	}
	if (code == 0 && rc != SQLITE_DONE) {
		dd_store_err(&s->st, "listing the fleet");
		code = DD_EXIT_IO;
	}
	sqlite3_finalize(q);
	dd_buf_free(&b);
	dd_buf_free(&cell);
	if (o && dd_out_finish(o) && code == 0) {
		dd_seterr("stdout: %s", strerror(errno));
		code = DD_EXIT_IO;
	}
	return code;
}
