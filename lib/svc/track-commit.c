/*
 * The tracker's commit, on a thread of its own. At a commit the filter's
 * thread turns the changed deliveries into row images (one buffer, in the
 * store's order) and goes back to the events; the writer thread runs the
 * transaction: the rows, the removals, the meta, COMMIT and its fsync.
 * With two cores, the SQLite work and the durable write overlap the next
 * batch's parsing. One job at a time: the next commit, any read of the
 * store (a delivery not in memory, a removed id's candidate), the end of
 * the run and a Kafka commit (whose offsets must be in the store when the
 * broker is told) wait for the job in flight first and take its outcome.
 * A kill -9 while a job is in flight loses at most that job's batch and
 * the next, both uncommitted: the replay of the input restores them, as
 * before.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "stage.h"
#include "track-int.h"

/* How long, in event time, a removed delivery's id is remembered. */
#define TOMBSTONE_MS (7 * 86400000LL)

/* ---- row images: what a commit writes, as bytes ---- */

enum { R_WRITE = 'W', R_REMOVE = 'R' };
#define R_NULL 0xffffffffu

static void
put_u32(struct dd_buf *b, uint32_t v)
{
	dd_buf_add(b, &v, sizeof v);
}

static void
put_i64(struct dd_buf *b, int64_t v)
{
	dd_buf_add(b, &v, sizeof v);
}

static void
put_f64(struct dd_buf *b, double v)
{
	dd_buf_add(b, &v, sizeof v);
}

static void
put_bytes(struct dd_buf *b, const void *p, size_t n)
{
	if (p == NULL) {
		put_u32(b, R_NULL);
		return;
	}
	put_u32(b, (uint32_t)n);
	dd_buf_add(b, p, n);
}

static void
put_str(struct dd_buf *b, const char *s)
{
	put_bytes(b, s, s ? strlen(s) : 0);
}

struct cur {
	const char *p;
};

static uint32_t
get_u32(struct cur *c)
{
	uint32_t v;
	memcpy(&v, c->p, sizeof v);
	c->p += sizeof v;
	return v;
}

static int64_t
get_i64(struct cur *c)
{
	int64_t v;
	memcpy(&v, c->p, sizeof v);
	c->p += sizeof v;
	return v;
}

static double
get_f64(struct cur *c)
{
	double v;
	memcpy(&v, c->p, sizeof v);
	c->p += sizeof v;
	return v;
}

static const char *
get_bytes(struct cur *c, size_t *n)
{
	uint32_t len = get_u32(c);
	if (len == R_NULL) {
		*n = 0;
		return NULL;
	}
	const char *s = c->p;
	c->p += len;
	*n = len;
	return s;
}

/* What each column of COLS is, in the image and to SQLite. */
enum { T_STR, T_STAGE, T_TIME, T_REAL, T_BLOB };
static const unsigned char col_type[C_N] = {
	[C_ID] = T_STR, [C_STAGE] = T_STAGE, [C_DRONE] = T_STR, [C_LOC] = T_STR,
	[C_LOCTIME] = T_TIME, [C_SPEED] = T_REAL, [C_BATTERY] = T_REAL, [C_PICKUP] = T_STR,
	[C_DROPOFF] = T_STR, [C_PETA] = T_TIME, [C_DETA] = T_TIME, [C_UPDATED] = T_TIME,
	[C_ENDED] = T_TIME, [C_TSCHED] = T_TIME, [C_TDISP] = T_TIME, [C_TPICK] = T_TIME,
	[C_TRESCHED] = T_TIME, [C_DRONETIME] = T_TIME, [C_PTIME] = T_TIME, [C_DTIME] = T_TIME,
	[C_ETATIME] = T_TIME, [C_POSTIME] = T_TIME, [C_SEEN] = T_BLOB,
};

/* d's row, as of now: its rowid, then COLS in order. A new row takes
 * the next rowid: rows are in the order deliveries were first written,
 * so the deliveries live at one time, those a commit changes, share
 * pages. */
static void
image_row(struct dd_track *t, struct dd_buf *b, struct dlv *d)
{
	dd_buf_addc(b, d->rowid ? 'U' : 'I');
	if (d->rowid == 0)
		d->rowid = t->next_rowid++;
	put_i64(b, d->rowid);
	put_bytes(b, d->id, d->idlen);
	put_i64(b, dd_trk_stage(d));
	size_t dn;
	const char *dr = dd_trk_drone(d, &dn);
	put_bytes(b, dr, dn);
	put_str(b, d->loc.json);
	put_i64(b, d->loc_time);
	put_f64(b, d->speed);
	put_f64(b, d->battery);
	put_str(b, d->pickup.json);
	put_str(b, d->dropoff.json);
	put_i64(b, d->pickup_eta);
	put_i64(b, d->dropoff_eta);
	put_i64(b, d->updated);
	put_i64(b, d->fstage ? d->t_final : DD_NOTIME);
	put_i64(b, d->t_sched);
	put_i64(b, d->t_disp);
	put_i64(b, d->t_pick);
	put_i64(b, d->t_resched);
	put_i64(b, d->drone_time);
	put_i64(b, d->pickup_time);
	put_i64(b, d->dropoff_time);
	put_i64(b, d->eta_time);
	put_i64(b, d->pos_ms);
	put_bytes(b, d->seen ? (const void *)d->seen : "", d->seenlen);
}

/* d removed: its row deleted (when written before) and its tombstone. */
static void
image_remove(struct dd_buf *b, const struct dlv *d)
{
	dd_buf_addc(b, d->rowid ? 'D' : 'T');
	put_i64(b, d->rowid);
	put_bytes(b, d->id, d->idlen);
	put_i64(b, d->fstage);
	put_i64(b, d->t_final);
}

/* ---- the writer ---- */

struct dd_trk_job {
	struct dd_track *t;
	struct dd_buf img;
	int64_t horizon, max_time;
	uint64_t removed;		/* the count to record, before the DELETE's */
	pthread_t th;
	int running;
	/* The outcome, read once the job is joined. */
	int rc;
	char *msg;
	uint64_t n_deleted;		/* rows the DELETE of expired ones took */
	int64_t d_ntomb;		/* tombstones added by it, less those pruned */
	uint64_t *hashes;		/* the ids of the tombstones it added */
	size_t nh, caph;
};

static int
step(struct dd_track *t, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : dd_store_err(&t->s, what);
}

static int
write_rows(struct dd_trk_job *j)
{
	struct dd_track *t = j->t;
	struct cur c = { j->img.p };
	const char *end = j->img.p + j->img.len;
	while (c.p < end) {
		char op = *c.p++;
		size_t n;
		int64_t rowid = get_i64(&c);
		const char *id = get_bytes(&c, &n);
		if (op == 'D' || op == 'T') {
			int stage = (int)get_i64(&c);
			int64_t ended = get_i64(&c);
			if (op == 'D') {
				sqlite3_bind_int64(t->del, 1, rowid);
				if (step(t, t->del, "removing deliveries"))
					return -1;
			}
			sqlite3_bind_text(t->tomb_one, 1, id, (int)n, SQLITE_STATIC);
			sqlite3_bind_text(t->tomb_one, 2, dd_stage_name(stage), -1, SQLITE_STATIC);
			sqlite3_bind_int64(t->tomb_one, 3, ended);
			if (step(t, t->tomb_one, "removing deliveries"))
				return -1;
			continue;
		}
		sqlite3_stmt *st = op == 'U' ? t->upd : t->ins;
		/* An update names the row by rowid: the id is not written. */
		if (op == 'I')
			sqlite3_bind_text(st, C_ID + 1, id, (int)n, SQLITE_STATIC);
		sqlite3_bind_int64(st, C_N + 1, rowid);
		for (int col = 1; col < C_N; col++) {
			const char *s;
			double x;
			switch (col_type[col]) {
			case T_STR:
				s = get_bytes(&c, &n);
				if (s)
					sqlite3_bind_text(st, col + 1, s, (int)n, SQLITE_STATIC);
				else
					sqlite3_bind_null(st, col + 1);
				break;
			case T_BLOB:
				s = get_bytes(&c, &n);
				sqlite3_bind_blob(st, col + 1, s ? s : "", (int)n, SQLITE_STATIC);
				break;
			case T_STAGE:
				sqlite3_bind_text(st, col + 1, dd_stage_name((int)get_i64(&c)), -1,
				    SQLITE_STATIC);
				break;
			case T_TIME:
				dd_bind_time(st, col, get_i64(&c));
				break;
			case T_REAL:
				x = get_f64(&c);
				dd_bind_real(st, col, x);
				break;
			}
		}
		if (step(t, st, "writing a delivery"))
			return -1;
	}
	return 0;
}

/* Ended deliveries past --retain that this batch did not change (their
 * rows are current): moved to the tombstones by one statement each. */
static int
remove_expired(struct dd_trk_job *j)
{
	struct dd_track *t = j->t;
	sqlite3_bind_int64(t->tomb_expired, 1, j->horizon);
	int rc;
	while ((rc = sqlite3_step(t->tomb_expired)) == SQLITE_ROW) {
		size_t n;
		const char *id = dd_col_text(t->tomb_expired, 0, &n);
		if (j->nh == j->caph) {
			j->caph = j->caph ? 2 * j->caph : 256;
			j->hashes = dd_realloc(j->hashes, j->caph * sizeof *j->hashes);
		}
		j->hashes[j->nh++] = dd_hash64(id, n);
	}
	sqlite3_reset(t->tomb_expired);
	if (rc != SQLITE_DONE)
		return dd_store_err(&t->s, "removing deliveries");
	j->d_ntomb += sqlite3_changes(t->s.db);
	sqlite3_bind_int64(t->del_expired, 1, j->horizon);
	if (step(t, t->del_expired, "removing deliveries"))
		return -1;
	j->n_deleted = (uint64_t)sqlite3_changes(t->s.db);
	sqlite3_bind_int64(t->tomb_prune, 1, j->horizon - TOMBSTONE_MS);
	if (step(t, t->tomb_prune, "removing deliveries"))
		return -1;
	j->d_ntomb -= sqlite3_changes(t->s.db);
	return 0;
}

static int
meta_put(struct dd_track *t, const char *key, int64_t v)
{
	sqlite3_bind_text(t->meta_put, 1, key, -1, SQLITE_STATIC);
	dd_bind_time(t->meta_put, 1, v);
	return step(t, t->meta_put, "writing meta");
}

static void *
run_job(void *arg)
{
	struct dd_trk_job *j = arg;
	struct dd_track *t = j->t;
	int rc = dd_store_begin(&t->s) || write_rows(j) ||
	    (j->horizon != DD_NOTIME && remove_expired(j)) ||
	    meta_put(t, "max_time", j->max_time) ||
	    meta_put(t, "removed", (int64_t)(j->removed + j->n_deleted));
	if (rc == 0 && t->kill_at && ++t->commits == t->kill_at)
		raise(SIGKILL);	/* DD_TRACK_FAULT: the rows written, not committed */
	if (rc == 0 && dd_store_commit(&t->s))
		rc = -1;
	if (rc) {
		/* The message lives in this thread's dd_errmsg(): kept for the
		 * thread that joins. */
		j->msg = dd_strdup(dd_errmsg());
		dd_store_rollback(&t->s);
	}
	j->rc = rc;
	return NULL;
}

/* A finished job's outcome into the tracker. */
static int
take(struct dd_track *t, struct dd_trk_job *j)
{
	j->running = 0;
	for (size_t i = 0; i < j->nh; i++)
		dd_trk_tomb_add(t, j->hashes[i]);
	j->nh = 0;
	t->ntomb += j->d_ntomb;
	t->removed += j->n_deleted;
	t->removed_run += j->n_deleted;
	if (j->rc) {
		dd_seterr("%s", j->msg);
		free(j->msg);
		j->msg = NULL;
		t->failed = 1;
		return -1;
	}
	/* Rebuilt when most of the set is pruned tombstones. */
	if (t->tombn > 1024 && (size_t)(t->ntomb > 0 ? t->ntomb : 0) < t->tombn / 2 &&
	    dd_trk_tomb_load(t))
		return -1;
	return 0;
}

/* The job in flight, if any, finished and taken in: 0, or -1 with its
 * failure in dd_errmsg(). */
int
dd_trk_join(struct dd_track *t)
{
	struct dd_trk_job *j = t->job;
	if (j == NULL || !j->running)
		return 0;
	pthread_join(j->th, NULL);
	return take(t, j);
}

void
dd_trk_job_free(struct dd_track *t)
{
	struct dd_trk_job *j = t->job;
	if (j == NULL)
		return;
	dd_trk_join(t);
	dd_buf_free(&j->img);
	free(j->hashes);
	free(j->msg);
	free(j);
	t->job = NULL;
}

/* Swept from memory: its row goes by the job's DELETE, its id into the
 * set now (an event about it before the job is joined must find it). */
static int
gone(struct dd_track *t, const struct dlv *d)
{
	if (!dd_trk_expired(t, d))
		return 0;
	dd_trk_tomb_add(t, dd_trk_dlv_hash(d));
	return 1;
}

int
dd_track_commit(struct dd_track *t)
{
	if (t->failed)
		return -1;
	if (dd_trk_join(t))
		return -1;
	if (t->job == NULL)
		t->job = dd_calloc(1, sizeof *t->job);
	struct dd_trk_job *j = t->job;
	j->t = t;
	j->rc = 0;
	j->n_deleted = 0;
	j->d_ntomb = 0;
	dd_buf_reset(&j->img);
	int64_t h = dd_trk_horizon(t);
	dd_trk_dirty_sort(t);
	for (struct dlv *d = t->dirty, *next; d; d = next) {
		next = d->dnext;
		d->dirty = 0;
		d->dnext = NULL;
		if (dd_trk_expired(t, d)) {
			image_remove(&j->img, d);
			t->ntomb++;
			dd_trk_tomb_add(t, dd_trk_dlv_hash(d));
			dd_trk_cache_remove(t, d);
			t->removed++;
			t->removed_run++;
			continue;
		}
		dd_trk_seen_prune(d, h);
		image_row(t, &j->img, d);
		dd_trk_cache_account(t, d);
	}
	t->dirty = NULL;
	/* The expired deliveries this batch did not change: their rows go
	 * by the job's DELETE, and they leave memory now. */
	if (h != DD_NOTIME)
		dd_trk_cache_sweep(t, gone);
	j->horizon = h;
	j->max_time = t->max_time;
	j->removed = t->removed;
	j->running = 1;
	/* A Kafka commit: the offsets go in this transaction, and the broker
	 * is told once it is on disk, so it runs here. */
	int async = t->s.koff == NULL;
	if (async) {
		/* The writer takes no signal: the filter's thread handles them. */
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		async = pthread_create(&j->th, NULL, run_job, j) == 0;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (!async) {
		run_job(j);
		if (take(t, j))
			return -1;
	}
	dd_trk_cache_trim(t);
	return 0;
}
