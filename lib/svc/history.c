#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddtime.h"
#include "exitcodes.h"
#include "history.h"
#include "json.h"
#include "util.h"

/* Migrations of history.db: migrations[i] takes user_version i to i+1. */
static const char *const migrations[] = {
	/* 1: deliveries and their events */
	"CREATE TABLE deliveries ("
	"  dkey INTEGER PRIMARY KEY,"
	"  id TEXT NOT NULL UNIQUE,"
	"  request TEXT, owner TEXT, origin_ms INTEGER, origin_eid TEXT,"
	"  stage TEXT, stage_ms INTEGER, stage_eid TEXT, final INTEGER NOT NULL DEFAULT 0,"
	"  drone TEXT, drone_ms INTEGER, drone_eid TEXT,"
	"  created_ms INTEGER, updated_ms INTEGER, ended_ms INTEGER,"
	"  events INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX deliveries_owner ON deliveries(owner, created_ms);"
	"CREATE INDEX deliveries_created ON deliveries(created_ms);"
	"CREATE INDEX deliveries_ended ON deliveries(ended_ms) WHERE ended_ms IS NOT NULL;"
	"CREATE TABLE events ("
	"  dkey INTEGER NOT NULL, eid TEXT NOT NULL, time_ms INTEGER NOT NULL,"
	"  line TEXT NOT NULL, PRIMARY KEY (dkey, eid)) WITHOUT ROWID;",
	/* 2: tombstones of archived deliveries: an event arriving for one
	 * after it left (a replay, a very late status) starts a new entry
	 * that keeps the archived final stage, so the next run archives it
	 * too, instead of an entry stuck at whatever stage that event says. */
	"CREATE TABLE archived ("
	"  id TEXT PRIMARY KEY, stage TEXT NOT NULL, stage_ms INTEGER NOT NULL,"
	"  stage_eid TEXT) WITHOUT ROWID;",
};

int
dd_history_open(struct dd_store *s, const char *path)
{
	/* SQLite's allocation statistics take a global mutex on every
	 * malloc; nothing here reads them. Only possible before SQLite's
	 * first use in the process, and harmless (SQLITE_MISUSE) after. */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	int rc = dd_store_open(s, path, migrations,
	    (int)(sizeof migrations / sizeof migrations[0]));
	/* Checkpoint every 64 MiB of WAL rather than every 4: each checkpoint
	 * costs two fsyncs (synchronous=FULL), and at the default they, not
	 * the inserts, bound the ingest rate. */
	if (rc == 0 && dd_store_exec(s, "PRAGMA wal_autocheckpoint=16384")) {
		dd_store_close(s);
		return DD_EXIT_IO;
	}
	return rc;
}

/* ------------------------------------------------------------------ stages */

static const char *const stages[] = {
	"created", "headed-to-pickup", "headed-to-dropoff", "completed",
	"rescheduled", "cancelled", "failed", "rejected",
};

int
dd_history_stage_ok(const char *s)
{
	for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++)
		if (strcmp(s, stages[i]) == 0)
			return 1;
	return 0;
}

static int
stage_final(const char *s)
{
	return strcmp(s, "completed") == 0 || strcmp(s, "cancelled") == 0 ||
	    strcmp(s, "failed") == 0 || strcmp(s, "rejected") == 0;
}

/* --------------------------------------------------------------- ingestion */

/*
 * Events are buffered in memory and applied in short write transactions,
 * grouped by delivery: one lookup and one row write per delivery and
 * batch, one insert per event. A writer thread applies one batch while
 * the filter loop parses the next (parsing and SQLite each take about
 * half the time); the filter's commit waits for it and applies the rest,
 * so when commit returns everything accepted is durable, as the loop
 * expects. The write lock is held only while a batch is applied, so
 * dd-archive beside a live writer waits milliseconds.
 *
 * The writer thread reports errors in werr, not through dd_seterr(),
 * which is not thread-safe; the main thread copies them over.
 */

/* A string in the batch arena: offset and length; len < 0 for none. */
struct span {
	uint32_t off;
	int32_t len;
};

/* One buffered event and what it says about its delivery. */
struct pev {
	struct span line, eid, owner, request, drone;
	int64_t t;
	uint32_t next;		/* next event of the same delivery, or NONE */
	uint8_t stage;		/* index into stages[] */
	uint8_t origin;		/* scheduled or rejected: owner and request */
};

/* The events of one delivery in the batch. */
struct agg {
	uint64_t h;
	struct span key;
	uint32_t first, last;
};

struct batch {
	struct dd_buf arena;
	struct pev *ev;
	size_t nev, capev;
	struct agg *ag;
	size_t nag, capag;
	uint32_t *slot;		/* open addressing: agg index + 1, 0 empty */
	size_t nslot;
};

#define NONE UINT32_MAX
/* Hand a batch to the writer thread once it holds this many events or
 * bytes (it takes a larger one when it was busy meanwhile): large enough
 * that the fsync of each commit is not what bounds the rate. */
#define CHUNK 32768
#define CHUNK_BYTES (16u << 20)
/* Wait for the writer rather than buffer more than this, so memory stays
 * bounded whatever --batch says. */
#define ARENA_MAX (64u << 20)
#define WERR 700

struct dd_history_ingest {
	struct dd_store *s;
	sqlite3_stmt *sel, *ins_d, *ins_e, *upd, *upd_origin, *upd_created, *upd_ended;
	sqlite3_stmt *maxkey, *tomb;
	struct dd_history_istats st;
	struct batch b[2];
	struct batch *fill;	/* the filter loop adds here */
	struct batch *work;	/* the writer thread applies this one */
	int threaded;
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv_job, cv_done;
	int job, quit, failed;	/* under mu */
	char werr[WERR];	/* the writer's error, under mu */
	/* Checkpoints run on their own connection and thread, beside the
	 * writer instead of inside its commits. */
	struct dd_store ck;
	int ck_started;
	pthread_t ckthr;
	pthread_cond_t cv_ck;
	int ck_want;		/* under mu */
};

/* Checkpoint once the WAL holds this many pages (64 MiB). */
#define CKPT_PAGES 16384

static const char sql_sel[] =
	"SELECT dkey, request, owner, origin_ms, origin_eid, stage, stage_ms, stage_eid,"
	" final, drone, drone_ms, drone_eid, created_ms, updated_ms"
	" FROM deliveries WHERE id = ?1";
static const char sql_ins_d[] =
	"INSERT INTO deliveries (dkey, id, request, owner, origin_ms, origin_eid,"
	" stage, stage_ms, stage_eid, final, drone, drone_ms, drone_eid,"
	" created_ms, updated_ms, ended_ms, events)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";
static const char sql_ins_e[] =
	"INSERT OR IGNORE INTO events (dkey, eid, time_ms, line) VALUES (?1, ?2, ?3, ?4)";
/* The columns no index covers are written on every change; the indexed
 * ones (owner, created, ended) only when they really change, so their
 * indexes are not rewritten for nothing. */
static const char sql_upd[] =
	"UPDATE deliveries SET stage = ?2, stage_ms = ?3, stage_eid = ?4, final = ?5,"
	" drone = ?6, drone_ms = ?7, drone_eid = ?8, updated_ms = ?9,"
	" events = events + ?10 WHERE dkey = ?1";
static const char sql_upd_origin[] =
	"UPDATE deliveries SET request = ?2, owner = ?3, origin_ms = ?4, origin_eid = ?5"
	" WHERE dkey = ?1";
static const char sql_upd_created[] =
	"UPDATE deliveries SET created_ms = ?2 WHERE dkey = ?1";
static const char sql_upd_ended[] =
	"UPDATE deliveries SET ended_ms = ?2 WHERE dkey = ?1";

static void batch_reset(struct batch *b);
static int batch_apply(struct dd_history_ingest *h, struct batch *b, char *why);

static void *
writer(void *arg)
{
	struct dd_history_ingest *h = arg;
	char why[WERR];
	pthread_mutex_lock(&h->mu);
	for (;;) {
		while (!h->job && !h->quit)
			pthread_cond_wait(&h->cv_job, &h->mu);
		if (!h->job)
			break;
		pthread_mutex_unlock(&h->mu);
		int rc = batch_apply(h, h->work, why);
		pthread_mutex_lock(&h->mu);
		if (rc) {
			h->failed = 1;
			memcpy(h->werr, why, sizeof why);
		}
		batch_reset(h->work);
		h->job = 0;
		pthread_cond_broadcast(&h->cv_done);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/* After each commit of the writer's connection: wake the checkpointer
 * when the WAL has grown enough. */
static int
wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct dd_history_ingest *h = arg;
	if (pages >= CKPT_PAGES) {
		pthread_mutex_lock(&h->mu);
		h->ck_want = 1;
		pthread_cond_signal(&h->cv_ck);
		pthread_mutex_unlock(&h->mu);
	}
	return SQLITE_OK;
}

/* PASSIVE checkpoints never block the writer; one that cannot finish
 * (a reader's snapshot) leaves the rest for the next. A failure only
 * lets the WAL grow, so it is not an error of the run. */
static void *
checkpointer(void *arg)
{
	struct dd_history_ingest *h = arg;
	pthread_mutex_lock(&h->mu);
	for (;;) {
		while (!h->ck_want && !h->quit)
			pthread_cond_wait(&h->cv_ck, &h->mu);
		if (h->quit)
			break;
		h->ck_want = 0;
		pthread_mutex_unlock(&h->mu);
		sqlite3_wal_checkpoint_v2(h->ck.db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		pthread_mutex_lock(&h->mu);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/* Start the checkpointer; without it the writer's connection checkpoints
 * by itself (wal_autocheckpoint), which is only slower. */
static void
start_checkpointer(struct dd_history_ingest *h)
{
	if (dd_history_open(&h->ck, h->s->path))
		return;
	pthread_cond_init(&h->cv_ck, NULL);
	if (pthread_create(&h->ckthr, NULL, checkpointer, h) != 0) {
		pthread_cond_destroy(&h->cv_ck);
		dd_store_close(&h->ck);
		return;
	}
	h->ck_started = 1;
	/* Replaces the automatic checkpoints of the writer's connection. */
	sqlite3_wal_hook(h->s->db, wal_hook, h);
}

struct dd_history_ingest *
dd_history_ingest_new(struct dd_store *s)
{
	struct dd_history_ingest *h = dd_calloc(1, sizeof *h);
	h->s = s;
	h->fill = &h->b[0];
	h->work = &h->b[1];
	if (!(h->sel = dd_store_prepare(s, sql_sel)) ||
	    !(h->ins_d = dd_store_prepare(s, sql_ins_d)) ||
	    !(h->ins_e = dd_store_prepare(s, sql_ins_e)) ||
	    !(h->upd = dd_store_prepare(s, sql_upd)) ||
	    !(h->upd_origin = dd_store_prepare(s, sql_upd_origin)) ||
	    !(h->upd_created = dd_store_prepare(s, sql_upd_created)) ||
	    !(h->upd_ended = dd_store_prepare(s, sql_upd_ended)) ||
	    !(h->maxkey = dd_store_prepare(s, "SELECT coalesce(max(dkey), 0) FROM deliveries")) ||
	    !(h->tomb = dd_store_prepare(s, "SELECT stage, stage_ms, stage_eid FROM archived"
	    " WHERE id = ?1"))) {
		dd_history_ingest_free(h);
		return NULL;
	}
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv_job, NULL);
	pthread_cond_init(&h->cv_done, NULL);
	/* SIGINT and SIGTERM must reach the main thread (its read returns
	 * EINTR), so the writer starts with them blocked. Without a thread
	 * everything still works, one batch at a time. */
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	h->threaded = pthread_create(&h->thr, NULL, writer, h) == 0;
	if (h->threaded)
		start_checkpointer(h);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return h;
}

static void
batch_free(struct batch *b)
{
	dd_buf_free(&b->arena);
	free(b->ev);
	free(b->ag);
	free(b->slot);
}

void
dd_history_ingest_free(struct dd_history_ingest *h)
{
	if (h == NULL)
		return;
	if (h->threaded) {
		pthread_mutex_lock(&h->mu);
		h->quit = 1;
		pthread_cond_signal(&h->cv_job);
		if (h->ck_started)
			pthread_cond_signal(&h->cv_ck);
		pthread_mutex_unlock(&h->mu);
		pthread_join(h->thr, NULL);
		if (h->ck_started) {
			pthread_join(h->ckthr, NULL);
			sqlite3_wal_hook(h->s->db, NULL, NULL);
			pthread_cond_destroy(&h->cv_ck);
			dd_store_close(&h->ck);
		}
		pthread_mutex_destroy(&h->mu);
		pthread_cond_destroy(&h->cv_job);
		pthread_cond_destroy(&h->cv_done);
	}
	sqlite3_finalize(h->sel);
	sqlite3_finalize(h->ins_d);
	sqlite3_finalize(h->ins_e);
	sqlite3_finalize(h->upd);
	sqlite3_finalize(h->upd_origin);
	sqlite3_finalize(h->upd_created);
	sqlite3_finalize(h->upd_ended);
	sqlite3_finalize(h->maxkey);
	sqlite3_finalize(h->tomb);
	batch_free(&h->b[0]);
	batch_free(&h->b[1]);
	free(h);
}

void
dd_history_ingest_stats(const struct dd_history_ingest *h, struct dd_history_istats *st)
{
	*st = h->st;
}

static struct span
put(struct batch *b, const char *p, size_t n)
{
	struct span s = { (uint32_t)b->arena.len, (int32_t)n };
	dd_buf_add(&b->arena, p, n);
	return s;
}

/* A JSON string value decoded into the arena. */
static struct span
put_jstr(struct batch *b, const struct dd_jval *v)
{
	if (!v->esc)
		return put(b, v->p, v->n);
	struct span s = { (uint32_t)b->arena.len, 0 };
	dd_jstr_decode(v, &b->arena);
	s.len = (int32_t)(b->arena.len - s.off);
	return s;
}

static const struct span nospan = { 0, -1 };

/* The members of data that dd-history reads, found in one walk. */
struct dfields {
	struct dd_jval delivery, request, owner, drone, stage;
};

static void
data_fields(const struct dd_env *e, struct dfields *d)
{
	struct dd_jval k, v;
	size_t pos = 0;
	memset(d, 0, sizeof *d);
	while (dd_json_next(&e->data, &pos, &k, &v)) {
		struct dd_jval *slot = NULL;
		if (k.esc)
			continue;	/* none of our names needs escaping */
		switch (k.n) {
		case 5:
			if (memcmp(k.p, "stage", 5) == 0)
				slot = &d->stage;
			break;
		case 7:
			if (memcmp(k.p, "ownerId", 7) == 0)
				slot = &d->owner;
			else if (memcmp(k.p, "droneId", 7) == 0)
				slot = &d->drone;
			break;
		case 9:
			if (memcmp(k.p, "requestId", 9) == 0)
				slot = &d->request;
			break;
		case 10:
			if (memcmp(k.p, "deliveryId", 10) == 0)
				slot = &d->delivery;
			break;
		}
		if (slot)
			*slot = v;	/* the last of duplicates wins, as in dd_json_get */
	}
}

/* A member as a decoded id: 1 ok, 0 absent or null, -1 bad. */
static int
data_id(const struct dd_jval *v, const char *name, char *buf)
{
	if (v->type == DD_JNONE || v->type == DD_JNULL)
		return 0;
	if (v->type != DD_JSTR) {
		dd_seterr("\"data.%s\" is not a string", name);
		return -1;
	}
	int n = dd_env_str(v, buf, DD_ID_MAX + 1);
	if (n <= 0) {
		dd_seterr(n == 0 ? "empty \"data.%s\"" : "\"data.%s\" is longer than %d bytes",
		    name, DD_ID_MAX);
		return -1;
	}
	return 1;
}

/* The delivery an event is about, and the stage it implies: 1 consumed,
 * 0 not a type of ours, -1 bad data (dd_errmsg()). */
static int
classify(const struct dd_env *e, struct dfields *d, char key[DD_ID_MAX + 1], int *stage,
    int *origin)
{
	static const char *const types[] = { "delivery.scheduled", "delivery.rescheduled",
		"delivery.cancelled", "delivery.rejected", "delivery.status" };
	static const int stage_of[] = { 0, 4, 5, 7, -1 };
	size_t k;
	if (!dd_env_type_has_prefix(e, "delivery."))
		return 0;
	for (k = 0; k < 5; k++)
		if (dd_env_type_is(e, types[k]))
			break;
	if (k == 5)
		return 0;
	if (dd_event_check_data(e))
		return -1;
	data_fields(e, d);
	int rc = data_id(&d->delivery, "deliveryId", key);
	if (rc < 0)
		return -1;
	/* A rejected request may have no delivery: key it by its request. */
	if (rc == 0 && (k != 3 || data_id(&d->request, "requestId", key) != 1)) {
		if (k != 3)
			dd_seterr("missing \"data.deliveryId\"");
		return -1;
	}
	*origin = k == 0 || k == 3;
	*stage = stage_of[k];
	if (*stage < 0) {
		const struct dd_jval *v = &d->stage;	/* a string: checked above */
		for (int i = 0; i < 7; i++)
			if (dd_jstr_eq(v, stages[i], strlen(stages[i])))
				*stage = i;
		if (*stage < 0) {
			dd_seterr("\"data.stage\" is not a stage: \"%.*s\"",
			    (int)(v->n > 32 ? 32 : v->n), v->p);
			return -1;
		}
	}
	return 1;
}

static void
grow(void **p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return;
	size_t n = *cap ? *cap : 1024;
	while (n < need)
		n *= 2;
	*p = dd_realloc(*p, n * size);
	*cap = n;
}

/* The batch's aggregate of delivery key, created when first seen. */
static struct agg *
agg_of(struct batch *b, const char *key, size_t n)
{
	if (b->nag * 2 >= b->nslot) {
		size_t ns = b->nslot ? b->nslot * 2 : 4096;
		free(b->slot);
		b->slot = dd_calloc(ns, sizeof *b->slot);
		b->nslot = ns;
		for (size_t i = 0; i < b->nag; i++) {
			size_t j = b->ag[i].h & (ns - 1);
			while (b->slot[j])
				j = (j + 1) & (ns - 1);
			b->slot[j] = (uint32_t)i + 1;
		}
	}
	uint64_t hv = dd_hash64(key, n);
	size_t j = hv & (b->nslot - 1);
	while (b->slot[j]) {
		struct agg *a = &b->ag[b->slot[j] - 1];
		if (a->h == hv && (size_t)a->key.len == n &&
		    memcmp(b->arena.p + a->key.off, key, n) == 0)
			return a;
		j = (j + 1) & (b->nslot - 1);
	}
	grow((void **)&b->ag, &b->capag, b->nag + 1, sizeof *b->ag);
	struct agg *a = &b->ag[b->nag];
	a->h = hv;
	a->key = put(b, key, n);
	a->first = a->last = NONE;
	b->slot[j] = (uint32_t)++b->nag;
	return a;
}

static void
batch_reset(struct batch *b)
{
	dd_buf_reset(&b->arena);
	b->nev = b->nag = 0;
	if (b->slot)
		memset(b->slot, 0, b->nslot * sizeof *b->slot);
}

/* Give the filled batch to the writer thread if it is idle (or, with
 * wait, once it is). 0, or -1 when the writer failed (dd_errmsg()). */
static int
hand_over(struct dd_history_ingest *h, int wait)
{
	int rc = 0;
	pthread_mutex_lock(&h->mu);
	while (wait && h->job && !h->failed)
		pthread_cond_wait(&h->cv_done, &h->mu);
	if (h->failed) {
		dd_seterr("%s", h->werr);
		rc = -1;
	} else if (!h->job) {
		struct batch *t = h->work;
		h->work = h->fill;
		h->fill = t;
		h->job = 1;
		pthread_cond_signal(&h->cv_job);
	}
	pthread_mutex_unlock(&h->mu);
	return rc;
}

enum dd_verdict
dd_history_ingest_event(struct dd_history_ingest *h, const struct dd_env *e,
    const char *line, size_t len)
{
	char key[DD_ID_MAX + 1], eid[DD_ID_MAX + 1];
	struct dfields d;
	int stage, origin;
	int rc = classify(e, &d, key, &stage, &origin);
	if (rc <= 0)
		return rc == 0 ? DD_SKIP : DD_REJECT;
	int eidlen = dd_env_str(&e->id, eid, sizeof eid);
	if (eidlen < 0) {
		dd_seterr("\"id\" is not a valid id");
		return DD_REJECT;
	}
	struct batch *b = h->fill;
	struct agg *a = agg_of(b, key, strlen(key));
	grow((void **)&b->ev, &b->capev, b->nev + 1, sizeof *b->ev);
	struct pev *p = &b->ev[b->nev];
	memset(p, 0, sizeof *p);
	p->line = put(b, line, len);
	p->eid = put(b, eid, (size_t)eidlen);
	p->t = e->time_ms;
	p->stage = (uint8_t)stage;
	p->origin = (uint8_t)origin;
	p->owner = p->request = p->drone = nospan;
	p->next = NONE;
	if (origin) {
		if (d.owner.type == DD_JSTR)
			p->owner = put_jstr(b, &d.owner);
		if (d.request.type == DD_JSTR)
			p->request = put_jstr(b, &d.request);
	}
	if (d.drone.type == DD_JSTR)
		p->drone = put_jstr(b, &d.drone);
	if (a->last == NONE)
		a->first = (uint32_t)b->nev;
	else
		b->ev[a->last].next = (uint32_t)b->nev;
	a->last = (uint32_t)b->nev;
	b->nev++;

	if (b->arena.len >= ARENA_MAX) {
		if (h->threaded ? hand_over(h, 1) : dd_history_ingest_commit(h))
			return DD_FAIL;
	} else if (h->threaded && (b->nev >= CHUNK || b->arena.len >= CHUNK_BYTES)) {
		if (hand_over(h, 0))
			return DD_FAIL;
	}
	return DD_ACCEPT;
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
	int has_origin, has_stage, has_drone, has_times, stage, final;
	int origin_chg, stage_chg, created_chg;
};

static struct txt
col_txt(sqlite3_stmt *st, int i)
{
	struct txt t = { NULL, 0 };
	if (sqlite3_column_type(st, i) != SQLITE_NULL) {
		t.p = (const char *)sqlite3_column_text(st, i);
		t.n = sqlite3_column_bytes(st, i);
	}
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

/* Order of (time, id) pairs: time first, then the id bytewise. */
static int
cmp_at(int64_t t1, struct txt a, int64_t t2, struct txt b)
{
	if (t1 != t2)
		return t1 < t2 ? -1 : 1;
	int n = a.n < b.n ? a.n : b.n;
	int c = n ? memcmp(a.p, b.p, (size_t)n) : 0;
	return c ? c : (a.n > b.n) - (a.n < b.n);
}

static int
stage_index(const char *p, int n)
{
	for (int i = 0; i < 8; i++)
		if ((int)strlen(stages[i]) == n && memcmp(stages[i], p, (size_t)n) == 0)
			return i;
	return 0;
}

/* Fold one newly stored event into the summary (see history.h). */
static void
fold(const struct batch *b, struct sum *s, const struct pev *p)
{
	struct txt eid = span_txt(b, p->eid);
	int final = stage_final(stages[p->stage]);
	if (p->origin && (!s->has_origin || cmp_at(p->t, eid, s->origin_ms, s->origin_eid) < 0)) {
		s->has_origin = s->origin_chg = 1;
		s->origin_ms = p->t;
		s->origin_eid = eid;
		s->owner = span_txt(b, p->owner);
		s->request = span_txt(b, p->request);
	}
	int c = s->has_stage ? cmp_at(p->t, eid, s->stage_ms, s->stage_eid) : 0;
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
	    (!s->has_drone || cmp_at(p->t, eid, s->drone_ms, s->drone_eid) > 0)) {
		s->has_drone = 1;
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

static void
bind_txt(sqlite3_stmt *st, int i, struct txt t)
{
	if (t.p == NULL)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_text(st, i, t.p, t.n, SQLITE_TRANSIENT);
}

/* The SQLite error of the store, into why (never dd_seterr: threads). */
static int
werr(struct dd_history_ingest *h, char *why, const char *what)
{
	snprintf(why, WERR, "%s: %s: %s", h->s->path, what, sqlite3_errmsg(h->s->db));
	return -1;
}

static int
step_done(struct dd_history_ingest *h, sqlite3_stmt *st, char *why, const char *what)
{
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		werr(h, why, what);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Store one delivery's buffered events and fold them into its row.
 * *fresh gets the number of events newly stored, *created 1 for a new
 * delivery. */
static int
apply(struct dd_history_ingest *h, const struct batch *b, const struct agg *a,
    int64_t *next_dkey, uint64_t *nfresh, uint64_t *ncreated, char *why)
{
	sqlite3_stmt *sel = h->sel, *st;
	struct sum s;
	memset(&s, 0, sizeof s);
	sqlite3_bind_text(sel, 1, b->arena.p + a->key.off, a->key.len, SQLITE_STATIC);
	int r = sqlite3_step(sel);
	if (r != SQLITE_ROW && r != SQLITE_DONE) {
		werr(h, why, "select delivery");
		sqlite3_reset(sel);
		return -1;
	}
	int exists = r == SQLITE_ROW;
	int64_t dkey;
	if (exists) {
		/* The row's values stay valid until sel is reset, below. */
		dkey = sqlite3_column_int64(sel, 0);
		s.request = col_txt(sel, 1);
		s.owner = col_txt(sel, 2);
		s.has_origin = sqlite3_column_type(sel, 3) != SQLITE_NULL;
		s.origin_ms = sqlite3_column_int64(sel, 3);
		s.origin_eid = col_txt(sel, 4);
		s.has_stage = sqlite3_column_type(sel, 5) != SQLITE_NULL;
		if (s.has_stage)
			s.stage = stage_index((const char *)sqlite3_column_text(sel, 5),
			    sqlite3_column_bytes(sel, 5));
		s.stage_ms = sqlite3_column_int64(sel, 6);
		s.stage_eid = col_txt(sel, 7);
		s.final = sqlite3_column_int(sel, 8);
		s.drone = col_txt(sel, 9);
		s.has_drone = sqlite3_column_type(sel, 10) != SQLITE_NULL;
		s.drone_ms = sqlite3_column_int64(sel, 10);
		s.drone_eid = col_txt(sel, 11);
		s.has_times = sqlite3_column_type(sel, 12) != SQLITE_NULL;
		s.created = sqlite3_column_int64(sel, 12);
		s.updated = sqlite3_column_int64(sel, 13);
	} else {
		dkey = (*next_dkey)++;
		/* Archived before? Then it had ended: keep that final stage. */
		sqlite3_bind_text(h->tomb, 1, b->arena.p + a->key.off, a->key.len, SQLITE_STATIC);
		r = sqlite3_step(h->tomb);
		if (r == SQLITE_ROW) {
			/* Valid until h->tomb is reset, after the row is inserted. */
			s.has_stage = s.final = 1;
			s.stage = stage_index((const char *)sqlite3_column_text(h->tomb, 0),
			    sqlite3_column_bytes(h->tomb, 0));
			s.stage_ms = sqlite3_column_int64(h->tomb, 1);
			s.stage_eid = col_txt(h->tomb, 2);
		} else if (r != SQLITE_DONE) {
			werr(h, why, "select archived");
			sqlite3_reset(h->tomb);
			sqlite3_reset(sel);
			return -1;
		}
	}

	/* The events first: only those newly stored count and are folded,
	 * so a duplicate changes nothing at all. */
	int64_t fresh = 0;
	st = h->ins_e;
	sqlite3_bind_int64(st, 1, dkey);
	for (uint32_t i = a->first; i != NONE; i = b->ev[i].next) {
		const struct pev *p = &b->ev[i];
		sqlite3_bind_text(st, 2, b->arena.p + p->eid.off, p->eid.len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, p->t);
		sqlite3_bind_text(st, 4, b->arena.p + p->line.off, p->line.len, SQLITE_STATIC);
		r = sqlite3_step(st);
		if (r != SQLITE_DONE)
			werr(h, why, "insert event");
		sqlite3_reset(st);
		if (r != SQLITE_DONE) {
			sqlite3_reset(sel);
			sqlite3_reset(h->tomb);
			sqlite3_clear_bindings(st);
			return -1;
		}
		if (sqlite3_changes(h->s->db) > 0) {
			fresh++;
			fold(b, &s, p);
		}
	}
	sqlite3_clear_bindings(st);
	*nfresh += (uint64_t)fresh;
	if (fresh == 0) {
		sqlite3_reset(sel);
		sqlite3_reset(h->tomb);
		return 0;
	}

	if (!exists) {
		st = h->ins_d;
		sqlite3_bind_int64(st, 1, dkey);
		sqlite3_bind_text(st, 2, b->arena.p + a->key.off, a->key.len, SQLITE_STATIC);
		bind_txt(st, 3, s.request);
		bind_txt(st, 4, s.owner);
		if (s.has_origin)
			sqlite3_bind_int64(st, 5, s.origin_ms);
		bind_txt(st, 6, s.origin_eid);
		sqlite3_bind_text(st, 7, stages[s.stage], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 8, s.stage_ms);
		bind_txt(st, 9, s.stage_eid);
		sqlite3_bind_int(st, 10, s.final);
		bind_txt(st, 11, s.drone);
		if (s.has_drone)
			sqlite3_bind_int64(st, 12, s.drone_ms);
		bind_txt(st, 13, s.drone_eid);
		sqlite3_bind_int64(st, 14, s.created);
		sqlite3_bind_int64(st, 15, s.updated);
		if (s.final)
			sqlite3_bind_int64(st, 16, s.stage_ms);
		sqlite3_bind_int64(st, 17, fresh);
		sqlite3_reset(sel);
		sqlite3_reset(h->tomb);
		(*ncreated)++;
		return step_done(h, st, why, "insert delivery");
	}

	/* Bind everything (copies) before sel is reset. */
	st = h->upd;
	sqlite3_bind_int64(st, 1, dkey);
	sqlite3_bind_text(st, 2, stages[s.stage], -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, s.stage_ms);
	bind_txt(st, 4, s.stage_eid);
	sqlite3_bind_int(st, 5, s.final);
	bind_txt(st, 6, s.drone);
	if (s.has_drone)
		sqlite3_bind_int64(st, 7, s.drone_ms);
	bind_txt(st, 8, s.drone_eid);
	sqlite3_bind_int64(st, 9, s.updated);
	sqlite3_bind_int64(st, 10, fresh);
	if (s.origin_chg) {
		sqlite3_bind_int64(h->upd_origin, 1, dkey);
		bind_txt(h->upd_origin, 2, s.request);
		bind_txt(h->upd_origin, 3, s.owner);
		sqlite3_bind_int64(h->upd_origin, 4, s.origin_ms);
		bind_txt(h->upd_origin, 5, s.origin_eid);
	}
	sqlite3_reset(sel);
	int rc = step_done(h, st, why, "update delivery");
	if (rc == 0 && s.origin_chg)
		rc = step_done(h, h->upd_origin, why, "update delivery");
	else
		sqlite3_clear_bindings(h->upd_origin);
	if (rc == 0 && s.created_chg) {
		sqlite3_bind_int64(h->upd_created, 1, dkey);
		sqlite3_bind_int64(h->upd_created, 2, s.created);
		rc = step_done(h, h->upd_created, why, "update delivery");
	}
	if (rc == 0 && s.stage_chg && s.final) {
		sqlite3_bind_int64(h->upd_ended, 1, dkey);
		sqlite3_bind_int64(h->upd_ended, 2, s.stage_ms);
		rc = step_done(h, h->upd_ended, why, "update delivery");
	}
	return rc;
}

/* Apply a batch in one write transaction and commit it (on disk when
 * this returns: synchronous=FULL). 0, or -1 with the reason in why and
 * the transaction rolled back. Called by one thread at a time. */
static int
batch_apply(struct dd_history_ingest *h, struct batch *b, char *why)
{
	uint64_t fresh = 0, created = 0;
	if (b->nev == 0)
		return 0;
	if (sqlite3_exec(h->s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return werr(h, why, "begin");
	/* New deliveries get keys after the largest one: allocated here, in
	 * the write transaction, so no other writer can take them. */
	int64_t next = 0;
	if (sqlite3_step(h->maxkey) == SQLITE_ROW)
		next = sqlite3_column_int64(h->maxkey, 0) + 1;
	if (next == 0)
		werr(h, why, "select max key");
	sqlite3_reset(h->maxkey);
	int rc = next == 0 ? -1 : 0;
	for (size_t i = 0; rc == 0 && i < b->nag; i++)
		rc = apply(h, b, &b->ag[i], &next, &fresh, &created, why);
	if (rc == 0 && sqlite3_exec(h->s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = werr(h, why, "commit");
	if (rc) {
		/* A failed COMMIT may leave the transaction open. */
		if (!sqlite3_get_autocommit(h->s->db))
			sqlite3_exec(h->s->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	h->st.events += fresh;
	h->st.duplicates += b->nev - fresh;
	h->st.deliveries += created;
	return 0;
}

int
dd_history_ingest_commit(struct dd_history_ingest *h)
{
	char why[WERR];
	if (h->threaded) {
		/* Wait for the writer; the connection is then ours. */
		pthread_mutex_lock(&h->mu);
		while (h->job)
			pthread_cond_wait(&h->cv_done, &h->mu);
		int failed = h->failed;
		if (failed)
			memcpy(why, h->werr, sizeof why);
		pthread_mutex_unlock(&h->mu);
		if (failed) {
			dd_seterr("%s", why);
			return -1;
		}
	}
	if (batch_apply(h, h->fill, why)) {
		dd_seterr("%s", why);
		return -1;
	}
	batch_reset(h->fill);
	return 0;
}

/* ----------------------------------------------------------------- queries */

/* A column as a JSON string or null. */
static void
json_col(struct dd_buf *b, sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL) {
		dd_buf_adds(b, "null");
		return;
	}
	const char *s = (const char *)sqlite3_column_text(st, i);
	dd_buf_json_str(b, s, (size_t)sqlite3_column_bytes(st, i));
}

/* A time column in RFC 3339, or null. */
static void
json_time(struct dd_buf *b, sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL) {
		dd_buf_adds(b, "null");
		return;
	}
	char t[DD_TIMEBUF];
	dd_time_format(sqlite3_column_int64(st, i), t);
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

int
dd_history_get(struct dd_store *s, const char *id, FILE *out)
{
	sqlite3_stmt *st = NULL, *ev = NULL;
	struct dd_buf b = { 0 };
	int rc = -1;
	/* One read transaction: the summary and the events agree. */
	if (dd_store_exec(s, "BEGIN"))
		return -1;
	st = dd_store_prepare(s, "SELECT " SUMMARY_COLS " FROM deliveries WHERE id = ?1");
	ev = dd_store_prepare(s, "SELECT line FROM events WHERE dkey = ?1 ORDER BY time_ms, eid");
	if (st == NULL || ev == NULL)
		goto out;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r == SQLITE_DONE) {
		rc = 0;
		goto out;
	}
	if (r != SQLITE_ROW) {
		dd_store_err(s, "get");
		goto out;
	}
	dd_buf_addc(&b, '{');
	json_summary(&b, st);
	dd_buf_adds(&b, ",\"events\":[");
	sqlite3_bind_int64(ev, 1, sqlite3_column_int64(st, 0));
	uint64_t n = 0;
	while ((r = sqlite3_step(ev)) == SQLITE_ROW) {
		if (n++)
			dd_buf_addc(&b, ',');
		/* The original line, embedded as it came: it is one valid JSON
		 * object (checked when it was stored). */
		dd_buf_add(&b, sqlite3_column_text(ev, 0), (size_t)sqlite3_column_bytes(ev, 0));
	}
	if (r != SQLITE_DONE) {
		dd_store_err(s, "get");
		goto out;
	}
	dd_buf_printf(&b, "],\"eventCount\":%" PRIu64 "}\n", n);
	rc = write_buf(&b, out) ? -1 : 1;
out:
	sqlite3_finalize(st);
	sqlite3_finalize(ev);
	sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	dd_buf_free(&b);
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
		sqlite3_bind_text(st, 1, q->owner, -1, SQLITE_STATIC);
	if (q->stage)
		sqlite3_bind_text(st, 2, q->stage, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, q->since_ms);
	sqlite3_bind_int64(st, 4, q->until_ms);
	struct dd_out *o = fmt == DD_FMT_NDJSON ? NULL : dd_out_new(out, fmt, cols, 9);
	int r, rc = 0;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		dd_buf_reset(&b);
		if (o == NULL) {
			dd_buf_addc(&b, '{');
			json_summary(&b, st);
			dd_buf_printf(&b, ",\"eventCount\":%lld}\n",
			    (long long)sqlite3_column_int64(st, 9));
			if (write_buf(&b, out)) {
				rc = -1;
				break;
			}
			continue;
		}
		for (int i = 1; i <= 9; i++) {
			dd_buf_reset(&b);
			if (sqlite3_column_type(st, i) == SQLITE_NULL) {
				/* empty cell */
			} else if (i >= 6 && i <= 8) {
				char t[DD_TIMEBUF];
				dd_buf_add(&b, t, dd_time_format(sqlite3_column_int64(st, i), t));
			} else {
				dd_buf_add(&b, sqlite3_column_text(st, i),
				    (size_t)sqlite3_column_bytes(st, i));
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
	dd_buf_printf(&b, "{\"deliveries\":%lld,\"events\":%lld,\"ended\":%lld,"
	    "\"firstCreated\":", (long long)sqlite3_column_int64(st, 0),
	    (long long)sqlite3_column_int64(st, 1), (long long)sqlite3_column_int64(st, 4));
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
		dd_buf_printf(&b, ":%lld", (long long)sqlite3_column_int64(st, 1));
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

/* -------------------------------------------------------------- archiving */

struct dd_history_arch {
	struct dd_store *s;
	sqlite3_stmt *cand, *events, *del_event, *del_delivery, *recount, *tomb;
};

struct dd_history_arch *
dd_history_arch_new(struct dd_store *s)
{
	struct dd_history_arch *a = dd_calloc(1, sizeof *a);
	a->s = s;
	/* Row values walk the ended index: (ended, dkey) after the cursor. */
	if (!(a->cand = dd_store_prepare(s, "SELECT dkey, ended_ms, id FROM deliveries"
	    " WHERE ended_ms IS NOT NULL AND ended_ms < ?1 AND (ended_ms, dkey) > (?2, ?3)"
	    " ORDER BY ended_ms, dkey LIMIT ?4")) ||
	    !(a->events = dd_store_prepare(s, "SELECT line, time_ms, eid FROM events"
	    " WHERE dkey = ?1 ORDER BY time_ms, eid")) ||
	    !(a->del_event = dd_store_prepare(s, "DELETE FROM events WHERE dkey = ?1 AND eid = ?2")) ||
	    !(a->del_delivery = dd_store_prepare(s, "DELETE FROM deliveries WHERE dkey = ?1"
	    " AND NOT EXISTS (SELECT 1 FROM events WHERE dkey = ?1)"
	    " RETURNING id, stage, stage_ms, stage_eid")) ||
	    !(a->recount = dd_store_prepare(s, "UPDATE deliveries SET events ="
	    " (SELECT count(*) FROM events WHERE dkey = ?1) WHERE dkey = ?1"))) {
		dd_history_arch_free(a);
		return NULL;
	}
	return a;
}

void
dd_history_arch_free(struct dd_history_arch *a)
{
	if (a == NULL)
		return;
	sqlite3_finalize(a->cand);
	sqlite3_finalize(a->events);
	sqlite3_finalize(a->del_event);
	sqlite3_finalize(a->del_delivery);
	sqlite3_finalize(a->recount);
	sqlite3_finalize(a->tomb);
	free(a);
}

int
dd_history_candidates(struct dd_history_arch *a, int64_t cutoff_ms, int64_t *after_ms,
    int64_t *after_dkey, size_t limit, struct dd_history_cand **out, size_t *n)
{
	sqlite3_stmt *st = a->cand;
	*out = NULL;
	*n = 0;
	sqlite3_bind_int64(st, 1, cutoff_ms);
	sqlite3_bind_int64(st, 2, *after_ms);
	sqlite3_bind_int64(st, 3, *after_dkey);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)limit);
	struct dd_history_cand *c = dd_calloc(limit ? limit : 1, sizeof *c);
	size_t k = 0;
	int r = SQLITE_DONE;
	while (k < limit && (r = sqlite3_step(st)) == SQLITE_ROW) {
		c[k].dkey = sqlite3_column_int64(st, 0);
		c[k].ended_ms = sqlite3_column_int64(st, 1);
		c[k].id = dd_strndup((const char *)sqlite3_column_text(st, 2),
		    (size_t)sqlite3_column_bytes(st, 2));
		k++;
	}
	if (k < limit && r != SQLITE_DONE) {
		dd_store_err(a->s, "select deliveries to archive");
		sqlite3_reset(st);
		dd_history_cands_free(c, k);
		return -1;
	}
	sqlite3_reset(st);
	if (k) {
		*after_ms = c[k - 1].ended_ms;
		*after_dkey = c[k - 1].dkey;
	}
	*out = c;
	*n = k;
	return 0;
}

void
dd_history_cands_free(struct dd_history_cand *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(c[i].id);
	free(c);
}

int
dd_history_events(struct dd_history_arch *a, int64_t dkey,
    int (*fn)(void *ctx, const char *line, size_t len, int64_t time_ms,
        const char *eid, size_t eidlen), void *ctx)
{
	sqlite3_stmt *st = a->events;
	sqlite3_bind_int64(st, 1, dkey);
	int r, rc = 0;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		rc = fn(ctx, (const char *)sqlite3_column_text(st, 0),
		    (size_t)sqlite3_column_bytes(st, 0), sqlite3_column_int64(st, 1),
		    (const char *)sqlite3_column_text(st, 2), (size_t)sqlite3_column_bytes(st, 2));
		if (rc)
			break;
	}
	if (rc == 0 && r != SQLITE_DONE)
		rc = dd_store_err(a->s, "read events");
	sqlite3_reset(st);
	return rc;
}

static int
run(struct dd_history_arch *a, sqlite3_stmt *st)
{
	int r = sqlite3_step(st);
	sqlite3_reset(st);
	return r == SQLITE_DONE ? 0 : dd_store_err(a->s, "delete archived deliveries");
}

int
dd_history_forget(struct dd_history_arch *a, const struct dd_history_cand *c, size_t n,
    const char *const *eids, uint64_t *deleted)
{
	struct dd_store *s = a->s;
	*deleted = 0;
	/* Prepared here, not with the others: a dry run reads a store that
	 * may not have been migrated to the tombstones yet. */
	if (a->tomb == NULL && !(a->tomb = dd_store_prepare(s, "INSERT OR REPLACE INTO"
	    " archived (id, stage, stage_ms, stage_eid) VALUES (?1, ?2, ?3, ?4)")))
		return -1;
	if (dd_store_begin(s))
		return -1;
	for (size_t i = 0; i < n; i++) {
		const char *e = eids[i];
		sqlite3_bind_int64(a->del_event, 1, c[i].dkey);
		for (int64_t k = 0; k < c[i].events; k++) {
			size_t len = strlen(e);
			sqlite3_bind_text(a->del_event, 2, e, (int)len, SQLITE_STATIC);
			if (run(a, a->del_event))
				goto fail;
			e += len + 1;
		}
		/* The row goes unless events arrived for it meanwhile; its
		 * tombstone keeps the final stage for late events. */
		sqlite3_stmt *d = a->del_delivery;
		sqlite3_bind_int64(d, 1, c[i].dkey);
		int r = sqlite3_step(d), gone = r == SQLITE_ROW;
		if (gone) {
			sqlite3_stmt *t = a->tomb;
			for (int k = 0; k < 4; k++)
				sqlite3_bind_value(t, k + 1, sqlite3_column_value(d, k));
			int tr = run(a, t);
			sqlite3_clear_bindings(t);
			r = tr ? SQLITE_ERROR : sqlite3_step(d);
		}
		sqlite3_reset(d);
		if (r != SQLITE_DONE) {
			if (r != SQLITE_ERROR)
				dd_store_err(s, "delete archived deliveries");
			goto fail;
		}
		if (gone) {
			(*deleted)++;
			continue;
		}
		/* Events arrived for it meanwhile: they stay, for the next run. */
		sqlite3_bind_int64(a->recount, 1, c[i].dkey);
		if (run(a, a->recount))
			goto fail;
	}
	if (dd_store_commit(s))
		return -1;
	return 0;
fail:
	{
		char *msg = dd_strdup(dd_errmsg());
		dd_store_rollback(s);
		dd_seterr("%s", msg);
		free(msg);
	}
	*deleted = 0;
	return -1;
}
