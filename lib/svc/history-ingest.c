#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "history-int.h"
#include "json.h"
#include "lake.h"
#include "stage.h"

/*
 * Events are buffered in memory and applied in short write transactions,
 * grouped by delivery: one lookup and one row write per delivery and
 * batch, one insert per event. A writer thread applies one batch while
 * the filter loop parses the next (parsing and SQLite each take about
 * half the time); the filter's commit waits for it and applies the rest,
 * so when commit returns everything accepted is durable, as the loop
 * expects. The write lock is held only while a batch is applied, so
 * dd-archive beside a live writer waits milliseconds.
 */

/* Hand a batch to the writer thread once it holds this many events or
 * bytes (it takes a larger one when it was busy meanwhile): large enough
 * that the fsync of each commit is not what bounds the rate. */
#define CHUNK 32768
#define CHUNK_BYTES (16u << 20)
/* Wait for the writer rather than buffer more than this, so memory stays
 * bounded whatever --batch says. */
#define ARENA_MAX (64u << 20)

/* Checkpoint once the WAL holds this many pages (64 MiB). */
#define CKPT_PAGES 16384

static void batch_reset(struct batch *b);

static void *
writer(void *arg)
{
	struct dd_history_ingest *h = arg;
	pthread_mutex_lock(&h->mu);
	for (;;) {
		while (!h->job && !h->quit)
			pthread_cond_wait(&h->cv_job, &h->mu);
		if (!h->job)
			break;
		pthread_mutex_unlock(&h->mu);
		int rc = dd_hist_batch_apply(h, h->work);
		pthread_mutex_lock(&h->mu);
		if (rc && h->writer_err == NULL)
			h->writer_err = dd_strdup(dd_errmsg());
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
	if (dd_hist_apply_prepare(h)) {
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
	dd_hist_apply_finalize(h);
	if (h->lw)
		dd_lake_writer_abort(h->lw);	/* committed with each batch */
	free(h->lake);
	free(h->dataset);
	dd_buf_free(&h->lbid);
	dd_buf_free(&h->lbsub);
	dd_buf_free(&h->lbtype);
	free(h->writer_err);
	batch_free(&h->b[0]);
	batch_free(&h->b[1]);
	free(h);
}

void
dd_history_ingest_lake(struct dd_history_ingest *h, const char *lake, const char *dataset)
{
	free(h->lake);
	free(h->dataset);
	h->lake = dd_strdup(lake);
	h->dataset = dd_strdup(dataset);
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
	static const int stage_of[] = { DD_STAGE_CREATED, DD_STAGE_RESCHEDULED,
		DD_STAGE_CANCELLED, DD_STAGE_REJECTED, -1 };
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
		/* Decoded, so an escaped name is still the stage it spells. */
		for (int i = 0; i < DD_NSTAGES; i++)
			if (dd_stage_known(i, DD_STAGE_SPEC) &&
			    dd_jstr_eq(v, dd_stage_name(i), strlen(dd_stage_name(i))))
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
	a->first = a->last = NOEV;
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
	while (wait && h->job && h->writer_err == NULL)
		pthread_cond_wait(&h->cv_done, &h->mu);
	if (h->writer_err) {
		dd_seterr("%s", h->writer_err);
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
	p->next = NOEV;
	if (origin) {
		if (d.owner.type == DD_JSTR)
			p->owner = put_jstr(b, &d.owner);
		if (d.request.type == DD_JSTR)
			p->request = put_jstr(b, &d.request);
	}
	if (d.drone.type == DD_JSTR)
		p->drone = put_jstr(b, &d.drone);
	if (a->last == NOEV)
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

int
dd_history_ingest_commit(struct dd_history_ingest *h)
{
	if (h->threaded) {
		/* Wait for the writer; the connection is then ours. */
		int failed;
		pthread_mutex_lock(&h->mu);
		while (h->job)
			pthread_cond_wait(&h->cv_done, &h->mu);
		if ((failed = h->writer_err != NULL))
			dd_seterr("%s", h->writer_err);
		pthread_mutex_unlock(&h->mu);
		if (failed)
			return -1;
	}
	h->final = 1;
	int rc = dd_hist_batch_apply(h, h->fill);
	h->final = 0;
	if (rc)
		return -1;
	batch_reset(h->fill);
	return 0;
}
