/*
 * The lake's writer (lake.h). It keeps, per open part, up to one frame's
 * worth of raw lines and compresses it in one shot when it is full (or
 * early, when all frames together hold more than max_buffered), so memory
 * is bounded by max_buffered, max_held and the few frames queued for
 * compression, whatever the input.
 *
 * With o.threads (the default) the work is a pipeline of threads, so
 * that parsing (the caller's), compression and durable writes overlap:
 *   caller       routes lines to parts, indexes ids, fills frames; hands
 *                full frames to the compressors, and batches of parts
 *                to close to the closer
 *   compressors  (o.threads of them) compress frames side by side, each
 *                appended to its part's temporary in the part's order
 *   closer       once every frame of a batch is written, writes the
 *                metadata, fsyncs, renames and fsyncs the directories
 *                (close_io), making the batch visible.
 * Only dd_lake_commit() waits for the closer: an event is acknowledged
 * only once its part and metadata are durable. The section "pipeline"
 * below holds all of the threading.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "ddtime.h"
#include "lake.h"
#include "lake-int.h"
#include "util.h"

/* ------------------------------------------------------------- helpers */

static int
write_all(int fd, const void *p, size_t n, const char *path)
{
	const char *s = p;
	while (n) {
		ssize_t k = write(fd, s, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			dd_seterr("%s: %s", path, strerror(errno));
			return -1;
		}
		s += k;
		n -= (size_t)k;
	}
	return 0;
}

static int
fsync_fd(int fd, const char *path)
{
	while (fsync(fd) < 0) {
		if (errno == EINTR)
			continue;
		dd_seterr("%s: fsync: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --------------------------------------------------------------- writer */

/* The times a partition can hold: 0000-01-01 to 9999-12-31 (UTC). */
#define DAY0_MS (-62167219200000LL)
#define DAY10000_MS (253402300800000LL)

/* Frames waiting for the compressors. */
#define QMAX 8
/* Compression threads at most (o.threads). */
#define MAXCOMP 8

struct part {
	int64_t day;
	char *dir;		/* the partition directory */
	char name[LAKE_NAME_MAX];	/* NAME: of the temporaries, then (part_name)
					 * the visible one */
	char *tmp, *final, *mtmp, *mfinal;
	int fd;
	struct dd_buf frame;	/* raw lines of the frame being filled */
	uint64_t raw, out, events, frames;
	int64_t min_ms, max_ms;
	int64_t last_ms;	/* time of the last line */
	int unordered;		/* a line came earlier than the one before */
	unsigned char lastsum[4];	/* the last 4 bytes written */
	struct idset ids;
	struct hset subjects;
	struct tmap types;
	uint64_t lru;
	int64_t opened;		/* monotonic ms */
	struct lake_kranges *kr;	/* Kafka offsets it holds (lake-kafka.c) */
	char *kmeta;		/* its "kafka" metadata, made when it is handed to close */
	uint64_t fqueued, fwritten;	/* frames handed over, appended (w->mu) */
};

/* One compressor's own context and output buffer. */
struct comp {
	struct dd_lake_writer *w;
	ZSTD_CCtx *cctx;
	char *zbuf;
	size_t zcap;
	pthread_t thr;
	int started;
};

/* Parts to finish and make visible together (close_io), with the
 * directories that gained entries since the last batch. Owned by the
 * pipeline once handed over. */
struct batch {
	struct part **ps;
	int n;
	char **dirty;
	size_t ndirty;
	uint64_t held;		/* ids in the parts' sets (memory in flight) */
	struct batch *next;
};

struct dd_lake_writer {
	char *lake, *dataset, *root;	/* root = LAKE/DATASET */
	struct dd_lake_wopts o;
	struct comp comp[MAXCOMP];	/* comp[0] is the caller's unthreaded */
	int ncomp;
	struct part **open;
	int nopen;
	struct part *last;
	uint64_t tick;
	struct hset days;	/* partitions this writer has opened parts in */
	int broken;
	uint64_t buffered;	/* raw bytes in the open parts' frames */
	char **dirty;		/* directories with new entries, not yet fsynced */
	size_t ndirty, capdirty;
	struct hset dirtyset;
	uint64_t held;		/* events in the open parts' id sets */
	unsigned ncompact;	/* parts named after o.compact_after so far */
	/* Events of partitions that found no open part (o.spill), by day,
	 * each "time_ms, id, subject and type lengths, the strings, the
	 * line"; written as parts by the next commit (spill_drain). */
	struct lake_sort *spill;
	int draining;
	struct dd_buf rec;
	/* Frame buffers of closed parts and compressed frames, kept for the
	 * next ones, so a long run does not fault fresh pages for each part. */
	struct dd_buf *pool;
	int npool, maxpool;
	/*
	 * The pipeline (o.threads). mu guards everything below, the pool,
	 * the parts' fqueued and fwritten, and st's parts, durable and
	 * out_bytes (the closer's). Frames wait in q, at most QMAX, so memory
	 * stays bounded when the disk is slow; the compressor appending a
	 * part's frame updates its out, frames and lastsum, which the closer
	 * reads once fwritten has caught up with fqueued. Batches wait for
	 * the closer in the list closing; closing_held bounds the ids they
	 * keep in memory. werr: a thread failed (werrmsg says why); from then
	 * on the threads only discard what reaches them.
	 */
	pthread_t thr_x;
	int thr_c_started, thr_x_started;
	pthread_mutex_t mu;
	pthread_cond_t cv_job, cv_close, cv_done;
	struct job {
		struct part *p;
		struct dd_buf frame;
		uint64_t seq;		/* the frame's place in p */
	} q[QMAX];
	int qhead, qlen, cbusy, xbusy, stop_c, stop_x, werr;
	struct batch *closing, *closing_tail;
	uint64_t closing_held;
	char werrmsg[700];
	/* Fed from Kafka: the topic, epoch and positions the parts record
	 * (lake-kafka.c), the caller's alone; committing: dd_lake_commit is
	 * closing the parts. */
	struct lake_kw *kw;
	int committing;
	char **vis;
	size_t nvis, capvis;
	struct dd_lake_wstats st;
};

static int pipe_start(struct dd_lake_writer *w);
static int pipe_frame(struct dd_lake_writer *w, struct part *p);
static int pipe_close(struct dd_lake_writer *w, struct batch *b);
static int pipe_drain(struct dd_lake_writer *w);
static void pipe_abandon(struct dd_lake_writer *w);
static void pipe_join(struct dd_lake_writer *w);
static int pipe_failed(struct dd_lake_writer *w);
static void part_name(struct dd_lake_writer *w, struct part *p);
static struct dd_buf pool_get(struct dd_lake_writer *w);
static void pool_put(struct dd_lake_writer *w, struct dd_buf *b);

void
dd_lake_wopts_defaults(struct dd_lake_wopts *o)
{
	memset(o, 0, sizeof *o);
	o->level = 3;
	o->part_size = (uint64_t)32 << 20;
	o->max_open = 64;
	o->max_buffered = (uint64_t)16 << 20;
	o->max_held = 500000;
	o->max_age_ms = 10 * 60 * 1000;
	o->dedupe = 1;
	o->spill = 1;
	/* One compressor per core (the caller's thread parses meanwhile). */
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	o->threads = cpus < 1 ? 1 : cpus > 4 ? 4 : (int)cpus;
}

struct dd_lake_writer *
dd_lake_writer_open(const char *lake, const char *dataset, const struct dd_lake_wopts *o)
{
	if (!dd_lake_dataset_ok(dataset))
		return NULL;
	struct dd_lake_wopts def;
	if (o == NULL) {
		dd_lake_wopts_defaults(&def);
		o = &def;
	}
	if (o->level < ZSTD_minCLevel() || o->level > ZSTD_maxCLevel()) {
		dd_seterr("zstd level %d out of range (%d to %d)", o->level,
		    ZSTD_minCLevel(), ZSTD_maxCLevel());
		return NULL;
	}
	char *root = lake_path_join(lake, dataset);
	struct stat sb;
	if (stat(root, &sb) < 0) {
		if (dd_mkdirs(root) || dd_fsync_dir(lake)) {
			free(root);
			return NULL;
		}
	} else if (!S_ISDIR(sb.st_mode)) {
		dd_seterr("%s: not a directory", root);
		free(root);
		return NULL;
	}
	if (access(root, W_OK) < 0) {
		dd_seterr("%s: %s", root, strerror(errno));
		free(root);
		return NULL;
	}
	struct dd_lake_writer *w = dd_calloc(1, sizeof *w);
	w->lake = dd_strdup(lake);
	w->dataset = dd_strdup(dataset);
	w->root = root;
	w->o = *o;
	if (w->o.max_open < 1)
		w->o.max_open = 1;
	if (w->o.part_size == 0)
		w->o.part_size = 1;
	if (w->o.threads < 0)
		w->o.threads = 0;
	if (w->o.threads > MAXCOMP)
		w->o.threads = MAXCOMP;
	w->ncomp = w->o.threads ? w->o.threads : 1;
	for (int i = 0; i < w->ncomp; i++) {
		struct comp *c = &w->comp[i];
		c->w = w;
		c->cctx = ZSTD_createCCtx();
		if (c->cctx == NULL) {
			dd_seterr("out of memory for zstd");
			dd_lake_writer_abort(w);
			return NULL;
		}
		size_t r = ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel, o->level);
		if (!ZSTD_isError(r))
			r = ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_checksumFlag, 1);
		if (ZSTD_isError(r)) {
			dd_seterr("zstd: %s", ZSTD_getErrorName(r));
			dd_lake_writer_abort(w);
			return NULL;
		}
	}
	w->open = dd_calloc((size_t)w->o.max_open, sizeof *w->open);
	/* Enough buffers to cycle through the queue without allocating. */
	w->maxpool = QMAX + MAXCOMP + 4;
	w->pool = dd_calloc((size_t)w->maxpool, sizeof *w->pool);
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv_job, NULL);
	pthread_cond_init(&w->cv_close, NULL);
	pthread_cond_init(&w->cv_done, NULL);
	if (w->o.threads && pipe_start(w)) {
		dd_lake_writer_abort(w);
		return NULL;
	}
	return w;
}

/* Free p, its frame buffer back to w's pool. Any thread: the caller's
 * counters (buffered, held) were settled when p left the open set. */
static void
part_free(struct dd_lake_writer *w, struct part *p)
{
	if (p == NULL)
		return;
	pool_put(w, &p->frame);
	if (p->fd >= 0)
		close(p->fd);
	free(p->dir);
	free(p->tmp);
	free(p->final);
	free(p->mtmp);
	free(p->mfinal);
	dd_buf_free(&p->frame);
	lake_idset_free(&p->ids);
	lake_hset_free(&p->subjects);
	lake_tmap_free(&p->types);
	lake_kranges_free(p->kr);
	free(p->kmeta);
	free(p);
}

/* Remove an unfinished part's temporaries and free it. */
static void
part_discard(struct dd_lake_writer *w, struct part *p)
{
	if (p->fd >= 0) {
		close(p->fd);
		p->fd = -1;
	}
	unlink(p->tmp);
	unlink(p->mtmp);
	part_free(w, p);
}

static void
drop_open(struct dd_lake_writer *w, int i)
{
	if (w->last == w->open[i])
		w->last = NULL;
	w->open[i] = w->open[--w->nopen];
	w->open[w->nopen] = NULL;
}

/* p leaves the open set: its raw bytes and ids no longer count there. */
static void
part_leave(struct dd_lake_writer *w, struct part *p)
{
	w->buffered -= p->frame.len;
	w->held -= p->ids.n;
}

/* An I/O error: nothing more becomes visible, no temporary stays. */
static void
writer_break(struct dd_lake_writer *w)
{
	/* No frame may still be on its way to a file about to be removed,
	 * and every batch in the pipeline is discarded. */
	pipe_abandon(w);
	for (int i = 0; i < w->nopen; i++) {
		part_leave(w, w->open[i]);
		part_discard(w, w->open[i]);
		w->open[i] = NULL;
	}
	w->nopen = 0;
	w->last = NULL;
	w->broken = 1;
	/* Spilled events were never visible: their files vanish. */
	if (!w->draining) {
		lake_sort_free(w->spill);
		w->spill = NULL;
	}
}

/*
 * Make a partition directory. The parents whose entries changed are noted
 * in w->dirty, handed to the next batch of parts to close and fsynced
 * once, after its parts became visible (sync_dirty), rather than three
 * fsyncs per new partition.
 */
static int
make_partition_dir(struct dd_lake_writer *w, const char *dir)
{
	struct stat sb;
	if (stat(dir, &sb) == 0)
		return 0;
	/* dir is ROOT/year=Y/month=M/day=D; ROOT exists. */
	size_t rl = strlen(w->root);
	char *p = dd_strdup(dir);
	for (char *s = p + rl + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, 0777) == 0) {
			char *slash = strrchr(p, '/');
			*slash = '\0';
			if (!lake_hset_add(&w->dirtyset, dd_hash64(p, strlen(p)))) {
				if (w->ndirty == w->capdirty) {
					w->capdirty = w->capdirty ? w->capdirty * 2 : 8;
					w->dirty = dd_realloc(w->dirty, w->capdirty * sizeof *w->dirty);
				}
				w->dirty[w->ndirty++] = dd_strdup(p);
			}
			*slash = '/';
		} else if (errno != EEXIST) {
			dd_seterr("%s: %s", p, strerror(errno));
			free(p);
			return -1;
		}
		*s = c;
		if (c == '\0')
			break;
	}
	free(p);
	return 0;
}

static struct part *
part_open(struct dd_lake_writer *w, int64_t day)
{
	struct part *p = dd_calloc(1, sizeof *p);
	p->fd = -1;
	p->day = day;
	struct dd_buf b = { 0 };
	dd_buf_printf(&b, "%s/", w->root);
	lake_day_dirs(&b, day);
	p->dir = b.p;
	if (make_partition_dir(w, p->dir)) {
		part_free(w, p);
		return NULL;
	}
	if (!lake_hset_add(&w->days, (uint64_t)day)) {
		w->st.partitions++;
		/* The first time this run writes here: clear what killed runs
		 * left. A failure is not this write's: the garbage only waits
		 * for the next cleaner (readers ignore it). */
		(void)dd_lake_clean_partition(p->dir);
	}
	lake_new_name(p->name);
	unsigned pid = (unsigned)getpid();
	struct dd_buf s = { 0 };
	dd_buf_printf(&s, "%s/.part-%s" PART_SUFFIX ".%u-%08x.tmp", p->dir, p->name, pid,
	    lake_host_id());
	p->tmp = s.p;
	s = (struct dd_buf){ 0 };
	dd_buf_printf(&s, "%s/part-%s" PART_SUFFIX, p->dir, p->name);
	p->final = s.p;
	s = (struct dd_buf){ 0 };
	dd_buf_printf(&s, "%s/._part-%s.meta.%u-%08x.tmp", p->dir, p->name, pid, lake_host_id());
	p->mtmp = s.p;
	s = (struct dd_buf){ 0 };
	dd_buf_printf(&s, "%s/_part-%s.meta", p->dir, p->name);
	p->mfinal = s.p;
	p->fd = open(p->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	if (p->fd < 0) {
		dd_seterr("%s: %s", p->tmp, strerror(errno));
		part_free(w, p);
		return NULL;
	}
	p->min_ms = INT64_MAX;
	p->max_ms = INT64_MIN;
	p->opened = mono_ms();
	pthread_mutex_lock(&w->mu);
	p->frame = pool_get(w);
	pthread_mutex_unlock(&w->mu);
	return p;
}

/*
 * Compress one frame of p into c->zbuf: a compressor's work (the
 * caller's when o.threads is 0). Its size, or 0 with dd_errmsg() of the
 * thread it runs in.
 */
static size_t
compress_frame(struct comp *c, struct part *p, const struct dd_buf *f)
{
	size_t bound = ZSTD_compressBound(f->len);
	if (bound > c->zcap) {
		free(c->zbuf);
		c->zbuf = dd_malloc(bound);
		c->zcap = bound;
	}
	size_t r = ZSTD_compress2(c->cctx, c->zbuf, c->zcap, f->p, f->len);
	if (ZSTD_isError(r)) {
		dd_seterr("%s: zstd: %s", p->tmp, ZSTD_getErrorName(r));
		return 0;
	}
	return r;
}

/* Append a compressed frame of r bytes to p's temporary. 0, or -1 with
 * dd_errmsg(). One thread at a time per part, in the part's order. */
static int
append_frame(struct part *p, const char *z, size_t r)
{
	if (write_all(p->fd, z, r, p->tmp))
		return -1;
	/* Start its writeback now: the closer's fsync then finds little
	 * left to write, and dirty pages do not pile up until the kernel
	 * throttles every writer. */
	sync_file_range(p->fd, (off_t)p->out, (off_t)r, SYNC_FILE_RANGE_WRITE);
	memcpy(p->lastsum, z + r - 4, 4);
	p->out += r;
	p->frames++;
	return 0;
}

/* A frame buffer from the pool (w->mu held when threaded), or an empty one. */
static struct dd_buf
pool_get(struct dd_lake_writer *w)
{
	if (w->npool > 0)
		return w->pool[--w->npool];
	return (struct dd_buf){ 0 };
}

/* Return b to the pool (or free it); b is left empty. Takes w->mu. */
static void
pool_put(struct dd_lake_writer *w, struct dd_buf *b)
{
	pthread_mutex_lock(&w->mu);
	if (b->cap && b->cap <= 2 * (size_t)DD_LAKE_FRAME && w->npool < w->maxpool) {
		dd_buf_reset(b);
		w->pool[w->npool++] = *b;
	} else {
		dd_buf_free(b);
	}
	pthread_mutex_unlock(&w->mu);
	*b = (struct dd_buf){ 0 };
}

/* Hand p's full frame over for compression (or compress it now). */
static int
flush_frame(struct dd_lake_writer *w, struct part *p)
{
	if (p->frame.len == 0)
		return 0;
	w->buffered -= p->frame.len;
	if (w->thr_c_started)
		return pipe_frame(w, p);
	size_t r = compress_frame(&w->comp[0], p, &p->frame);
	int rc = r ? append_frame(p, w->comp[0].zbuf, r) : -1;
	dd_buf_reset(&p->frame);
	return rc;
}

/* Note a part made visible (w->mu held). */
static void
add_visible(struct dd_lake_writer *w, const char *path)
{
	if (w->nvis == w->capvis) {
		w->capvis = w->capvis ? w->capvis * 2 : 16;
		w->vis = dd_realloc(w->vis, w->capvis * sizeof *w->vis);
	}
	w->vis[w->nvis++] = dd_strdup(path);
}

/* Free a batch that never became visible: its temporaries go. */
static void
batch_discard(struct dd_lake_writer *w, struct batch *b)
{
	for (int i = 0; i < b->n; i++)
		part_discard(w, b->ps[i]);
	for (size_t i = 0; i < b->ndirty; i++)
		free(b->dirty[i]);
	free(b->dirty);
	free(b->ps);
	free(b);
}

/* fsync the directories that gained an entry before the batch was made. */
static int
sync_dirty(struct batch *b)
{
	int rc = 0;
	/* Deepest first is not needed: each entry is made durable by its own
	 * directory's fsync, and all of them happen before we return. */
	for (size_t i = 0; i < b->ndirty; i++)
		if (rc == 0 && dd_fsync_dir(b->dirty[i]))
			rc = -1;
	return rc;
}

/*
 * Finish a batch of parts whose frames are all written and make them
 * visible: metadata written, data and metadata fsynced, then each meta
 * renamed before its part, then the directories fsynced. Each step for
 * every part before the next step, so the journal commits of many parts'
 * fsyncs coincide (one commit closing a month's worth of partitions costs
 * about three disk flushes, not three per part). The closer's work (the
 * caller's when o.threads is 0). Frees the batch either way; on failure
 * (dd_errmsg()) no part that was not yet visible becomes visible, and no
 * temporary stays.
 */
static int
close_io(struct dd_lake_writer *w, struct batch *b)
{
	int rc = 0, i, n = b->n;
	struct part **ps = b->ps;
	int *mfd = dd_malloc((size_t)(n ? n : 1) * sizeof *mfd);
	for (i = 0; i < n; i++)
		mfd[i] = -1;
	/* Start writing back every part's data at once. */
	for (i = 0; i < n; i++)
		sync_file_range(ps[i]->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	for (i = 0; i < n; i++) {
		struct part *p = ps[i];
		part_name(w, p);
		struct dd_buf m = { 0 }, chk = { 0 };
		/* May readers count it from its metadata, de-duplicating? In a
		 * compaction, against this writer's own parts only (a copy of
		 * their names: the list is the main thread's too). */
		char self[LAKE_NAME_MAX + 32], **only = NULL;
		size_t nonly = 0;
		snprintf(self, sizeof self, "part-%s" PART_SUFFIX, p->name);
		if (w->o.replace) {
			pthread_mutex_lock(&w->mu);
			only = dd_calloc(w->nvis + 1, sizeof *only);
			for (size_t k = 0; k < w->nvis; k++)
				only[nonly++] = dd_strdup(w->vis[k]);
			pthread_mutex_unlock(&w->mu);
		}
		int uniq = lake_part_unique(p->dir, self, &p->ids, only, nonly, w->o.replace, &chk);
		for (size_t k = 0; k < nonly; k++)
			free(only[k]);
		free(only);
		lake_meta_build(&(struct meta_src){ .name = p->name,
		    .part_bytes = p->out, .frames = p->frames, .events = p->events,
		    .raw_bytes = p->raw, .lastsum = p->lastsum, .min_ms = p->min_ms,
		    .max_ms = p->max_ms, .time_ordered = !p->unordered, .ids = &p->ids,
		    .subjects = &p->subjects, .types = &p->types,
		    .unique = uniq ? chk.p : NULL, .extra = p->kmeta }, &m);
		dd_buf_free(&chk);
		mfd[i] = open(p->mtmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (mfd[i] < 0) {
			dd_seterr("%s: %s", p->mtmp, strerror(errno));
			dd_buf_free(&m);
			goto fail;
		}
		int wrc = write_all(mfd[i], m.p, m.len, p->mtmp);
		dd_buf_free(&m);
		if (wrc)
			goto fail;
		sync_file_range(mfd[i], 0, 0, SYNC_FILE_RANGE_WRITE);
	}
	for (i = 0; i < n; i++) {
		struct part *p = ps[i];
		if (fsync_fd(p->fd, p->tmp) || fsync_fd(mfd[i], p->mtmp))
			goto fail;
		int e1 = close(p->fd), e2 = close(mfd[i]);
		p->fd = mfd[i] = -1;
		if (e1 < 0 || e2 < 0) {
			dd_seterr("%s: %s", e1 < 0 ? p->tmp : p->mtmp, strerror(errno));
			goto fail;
		}
	}
	/* Visible now, one part after the other, each meta first. */
	for (i = 0; i < n; i++) {
		struct part *p = ps[i];
		if (rename(p->mtmp, p->mfinal) < 0) {
			dd_seterr("%s: %s", p->mfinal, strerror(errno));
			goto fail;
		}
		if (rename(p->tmp, p->final) < 0) {
			dd_seterr("%s: %s", p->final, strerror(errno));
			unlink(p->mfinal);
			goto fail;
		}
		pthread_mutex_lock(&w->mu);
		add_visible(w, p->final);
		w->st.parts++;
		w->st.durable += p->events;
		w->st.out_bytes += p->out;
		pthread_mutex_unlock(&w->mu);
		p->events = 0;	/* done: nothing of it to remove below */
	}
	/* The parts are whole; only their durability is at stake now. */
	for (i = 0; i < n; i++)
		if (rc == 0 && dd_fsync_dir(ps[i]->dir))
			rc = -1;
	if (rc == 0 && sync_dirty(b))
		rc = -1;
	for (i = 0; i < n; i++)
		part_free(w, ps[i]);
	b->n = 0;
	batch_discard(w, b);
	free(mfd);
	return rc;
fail:
	/* Parts already renamed stay (whole and visible); the others go. */
	for (i = 0; i < n; i++) {
		if (mfd[i] >= 0)
			close(mfd[i]);
		if (ps[i]->events)
			part_discard(w, ps[i]);
		else
			part_free(w, ps[i]);
	}
	b->n = 0;
	batch_discard(w, b);
	free(mfd);
	return -1;
}

/*
 * Name p as it becomes visible, so names sort in write order: a new name
 * now (the temporaries keep the one of the opening), or a compaction's
 * name after the parts it replaces.
 */
static void
part_name(struct dd_lake_writer *w, struct part *p)
{
	if (w->o.compact_after)
		lake_compact_name(w->o.compact_after, ++w->ncompact, p->name);
	else
		lake_new_name(p->name);
	free(p->final);
	free(p->mfinal);
	struct dd_buf s = { 0 };
	dd_buf_printf(&s, "%s/part-%s" PART_SUFFIX, p->dir, p->name);
	p->final = s.p;
	s = (struct dd_buf){ 0 };
	dd_buf_printf(&s, "%s/_part-%s.meta", p->dir, p->name);
	p->mfinal = s.p;
}

/*
 * Close parts that left the open set: flush their last frames and hand
 * them, with the directories made since the last batch, to the closer as
 * one batch (close_io). Only the hand-over is waited for, not the disk:
 * dd_lake_commit() waits for durability. Frees the parts either way.
 */
static int
close_parts(struct dd_lake_writer *w, struct part **ps, int n)
{
	struct batch *b = dd_calloc(1, sizeof *b);
	b->ps = dd_malloc((size_t)(n ? n : 1) * sizeof *b->ps);
	int i;
	for (i = 0; i < n; i++) {
		struct part *p = ps[i];
		if (p->events && flush_frame(w, p))
			goto fail;
		part_leave(w, p);
		if (p->events == 0) {
			part_discard(w, p);
			continue;
		}
		b->held += p->ids.n;
		b->ps[b->n++] = p;
	}
	/* The Kafka metadata is made here, in the caller's thread, which owns
	 * the epoch: the commit's parts close it and say how many it has. */
	if (w->kw) {
		uint64_t epoch_parts = w->committing ? lake_kafka_closed(w->kw) + (uint64_t)b->n : 0;
		for (i = 0; i < b->n; i++) {
			struct dd_buf k = { 0 };
			lake_kafka_meta(w->kw, b->ps[i]->kr, epoch_parts, &k);
			b->ps[i]->kmeta = k.p;
		}
	}
	b->dirty = w->dirty;
	b->ndirty = w->ndirty;
	w->dirty = NULL;
	w->ndirty = w->capdirty = 0;
	lake_hset_free(&w->dirtyset);
	if (b->n == 0 && b->ndirty == 0) {
		batch_discard(w, b);
		return 0;
	}
	if (!w->thr_c_started)
		return close_io(w, b);
	if (pipe_close(w, b) == 0)
		return 0;
	i = n;
fail:
	/* Nothing of the batch may still be on its way to its files. */
	pipe_abandon(w);
	for (; i < n; i++) {
		part_leave(w, ps[i]);
		part_discard(w, ps[i]);
	}
	batch_discard(w, b);
	return -1;
}

static int
part_close(struct dd_lake_writer *w, struct part *p)
{
	return close_parts(w, &p, 1);
}

/* Close the least recently used open part (there is one), to bound open
 * files and memory. */
static int
close_lru(struct dd_lake_writer *w)
{
	int lru = 0;
	for (int i = 1; i < w->nopen; i++)
		if (w->open[i]->lru < w->open[lru]->lru)
			lru = i;
	struct part *old = w->open[lru];
	drop_open(w, lru);
	return part_close(w, old);
}

/* The open part of day, opened when there is none. NULL with dd_errmsg(). */
static struct part *
part_for(struct dd_lake_writer *w, int64_t day)
{
	/* Events come in runs of one day: the last part is the likely one. */
	if (w->last && w->last->day == day)
		return w->last;
	for (int i = 0; i < w->nopen; i++)
		if (w->open[i]->day == day)
			return w->open[i];
	if (w->nopen == w->o.max_open && close_lru(w))
		return NULL;
	struct part *p = part_open(w, day);
	if (p)
		w->open[w->nopen++] = p;
	return p;
}

/* Note the event in p's id set, subjects and types. 1 when it is a
 * duplicate to drop. */
static int
part_index(struct dd_lake_writer *w, struct part *p, const struct dd_lake_ev *ev)
{
	uint64_t h = dd_hash64(ev->id, ev->idlen);
	/* The same id is the same event, whatever its time (SPEC: once per
	 * partition); the hash alone never decides it. */
	if (w->o.dedupe) {
		if (lake_idset_check_add(&p->ids, h, ev->id, ev->idlen, 0, NULL))
			return 1;
	} else {
		lake_idset_put_hash(&p->ids, h);
	}
	w->held++;
	if (ev->subject)
		lake_hset_add(&p->subjects, dd_hash64(ev->subject, ev->sublen));
	if (ev->type)
		lake_tmap_inc(&p->types, ev->type, ev->typelen);
	return 0;
}

/* Append the line to p's frame, handing the frame over when it is full. */
static int
part_append(struct dd_lake_writer *w, struct part *p, const char *line, size_t len,
    int64_t time_ms)
{
	if (p->frame.len && p->frame.len + len + 1 > DD_LAKE_FRAME && flush_frame(w, p))
		return -1;
	if (p->frame.cap == 0)
		dd_buf_grow(&p->frame, DD_LAKE_FRAME);
	dd_buf_grow(&p->frame, len + 1);
	memcpy(p->frame.p + p->frame.len, line, len);
	p->frame.len += len;
	p->frame.p[p->frame.len++] = '\n';
	p->raw += len + 1;
	p->events++;
	if (p->events > 1 && time_ms < p->last_ms)
		p->unordered = 1;
	p->last_ms = time_ms;
	if (time_ms < p->min_ms)
		p->min_ms = time_ms;
	if (time_ms > p->max_ms)
		p->max_ms = time_ms;
	w->st.events++;
	w->st.raw_bytes += len + 1;
	w->buffered += len + 1;
	if (p->frame.len >= DD_LAKE_FRAME && flush_frame(w, p))
		return -1;
	return 0;
}

/*
 * Close what the limits say must close after p grew: p when it is full;
 * the least recently used parts while the id sets hold too many events;
 * parts open too long. Frames are compressed early, fullest first, while
 * too many raw bytes wait. p itself may be freed.
 */
static int
enforce_limits(struct dd_lake_writer *w, struct part *p)
{
	if (p->raw >= w->o.part_size) {
		for (int i = 0; i < w->nopen; i++)
			if (w->open[i] == p)
				drop_open(w, i);
		if (part_close(w, p))
			return -1;
	}
	while (w->buffered > w->o.max_buffered) {
		struct part *big = NULL;
		for (int i = 0; i < w->nopen; i++)
			if (big == NULL || w->open[i]->frame.len > big->frame.len)
				big = w->open[i];
		if (big == NULL || big->frame.len == 0)
			break;
		if (flush_frame(w, big))
			return -1;
	}
	while (w->o.max_held && w->held > w->o.max_held && w->nopen > 0)
		if (close_lru(w))
			return -1;
	/* Ages change slowly: look at the clock every 256 events. */
	if (w->o.max_age_ms > 0 && (w->tick & 255) == 0) {
		int64_t now = mono_ms();
		for (int i = 0; i < w->nopen; i++) {
			if (now - w->open[i]->opened < w->o.max_age_ms)
				continue;
			struct part *old = w->open[i];
			drop_open(w, i--);
			if (part_close(w, old))
				return -1;
		}
	}
	return 0;
}

/* Keep an event of a partition with no open part for the next commit. */
static int
spill_add(struct dd_lake_writer *w, int64_t day, const char *line, size_t len,
    const struct dd_lake_ev *ev)
{
	if (w->spill == NULL)
		w->spill = lake_sort_new(w->root, w->o.max_buffered);
	uint32_t l[3] = { (uint32_t)ev->idlen, ev->subject ? (uint32_t)ev->sublen + 1 : 0,
		ev->type ? (uint32_t)ev->typelen + 1 : 0 };
	/* The Kafka position too: the part the event lands in records it. */
	int32_t k[2] = { ev->kafka, ev->kpart };
	dd_buf_reset(&w->rec);
	dd_buf_add(&w->rec, &ev->time_ms, 8);
	dd_buf_add(&w->rec, &ev->koff, 8);
	dd_buf_add(&w->rec, k, sizeof k);
	dd_buf_add(&w->rec, l, sizeof l);
	dd_buf_add(&w->rec, ev->id, ev->idlen);
	if (ev->subject)
		dd_buf_add(&w->rec, ev->subject, ev->sublen);
	if (ev->type)
		dd_buf_add(&w->rec, ev->type, ev->typelen);
	dd_buf_add(&w->rec, line, len);
	return lake_sort_add(w->spill, day, w->rec.p, w->rec.len);
}

static int add_event(struct dd_lake_writer *w, struct part *p, const char *line, size_t len,
    const struct dd_lake_ev *ev);
static int commit_open(struct dd_lake_writer *w);
static int close_open(struct dd_lake_writer *w, int wait);

/*
 * Write the spilled events, a day after the other (in the order they
 * came within a day), into parts: open ones are closed a batch at a
 * time, when max_open is reached and at the end. 0 or -1 (broken).
 */
static int
spill_drain(struct dd_lake_writer *w)
{
	if (w->spill == NULL)
		return 0;
	struct lake_sort *s = w->spill;
	w->spill = NULL;
	w->draining = 1;
	int64_t day;
	const char *r;
	size_t n;
	int k;
	while ((k = lake_sort_next(s, &day, &r, &n)) == 1) {
		struct dd_lake_ev ev = { 0 };
		uint32_t l[3];
		int32_t kk[2];
		memcpy(&ev.time_ms, r, 8);
		memcpy(&ev.koff, r + 8, 8);
		memcpy(kk, r + 16, sizeof kk);
		ev.kafka = kk[0];
		ev.kpart = kk[1];
		memcpy(l, r + 16 + sizeof kk, sizeof l);
		const char *q = r + 16 + sizeof kk + sizeof l;
		ev.id = q;
		ev.idlen = l[0];
		q += l[0];
		ev.subject = l[1] ? q : NULL;
		ev.sublen = l[1] ? l[1] - 1 : 0;
		q += ev.sublen;
		ev.type = l[2] ? q : NULL;
		ev.typelen = l[2] ? l[2] - 1 : 0;
		q += ev.typelen;
		struct part *p = NULL;
		for (int i = 0; i < w->nopen && p == NULL; i++)
			if (w->open[i]->day == day)
				p = w->open[i];
		/* A batch of max_open days at a time goes to the closer; the
		 * commit that called us waits for them all. */
		if (p == NULL && w->nopen == w->o.max_open && close_open(w, 0))
			break;
		if (p == NULL && (p = part_for(w, day)) == NULL)
			break;
		if (add_event(w, p, q, n - (size_t)(q - r), &ev) < 0)
			break;
	}
	w->draining = 0;
	lake_sort_free(s);
	if (k != 0) {
		if (!w->broken)
			writer_break(w);
		return -1;
	}
	return 0;
}

/* Index and append one event to p, then enforce the limits. 0 stored, 1
 * duplicate, -1 failed (the caller breaks the writer). */
static int
add_event(struct dd_lake_writer *w, struct part *p, const char *line, size_t len,
    const struct dd_lake_ev *ev)
{
	w->last = p;
	p->lru = ++w->tick;
	if (part_index(w, p, ev)) {
		w->st.duplicates++;
		return 1;
	}
	if (part_append(w, p, line, len, ev->time_ms))
		return -1;
	if (ev->kafka && w->kw)
		lake_kafka_range(&p->kr, ev->kpart, ev->koff);
	if (enforce_limits(w, p))
		return -1;
	return 0;
}

int
dd_lake_add(struct dd_lake_writer *w, const char *line, size_t len,
    const struct dd_lake_ev *ev)
{
	if (w->broken) {
		dd_seterr("%s: the lake writer stopped after an error", w->root);
		return -1;
	}
	/* A part closing in the background failed: stop at once. */
	if (pipe_failed(w))
		goto fail;
	/* Refused, the writer goes on: a newline would split the line in
	 * two events, and a year past 9999 has no partition readers list. */
	if (memchr(line, '\n', len)) {
		dd_seterr("an event line must not hold a newline");
		return -1;
	}
	if (ev->time_ms < DAY0_MS || ev->time_ms >= DAY10000_MS) {
		dd_seterr("time %" PRId64 " ms is outside years 0000 to 9999", ev->time_ms);
		return -1;
	}
	int64_t day = dd_ms_to_days(ev->time_ms);
	if (w->o.spill && w->nopen == w->o.max_open && !(w->last && w->last->day == day)) {
		int open = 0;
		for (int i = 0; i < w->nopen && !open; i++)
			open = w->open[i]->day == day;
		/* No room for another open part: rather than close one (and
		 * make a part of every few events of a shuffled stream), the
		 * event waits for the commit with the others of its day. */
		if (!open) {
			if (spill_add(w, day, line, len, ev))
				goto fail;
			return 0;
		}
	}
	struct part *p = part_for(w, day);
	if (p == NULL)
		goto fail;
	int rc = add_event(w, p, line, len, ev);
	if (rc < 0)
		goto fail;
	return rc;
fail:
	writer_break(w);
	return -1;
}

int
dd_lake_commit(struct dd_lake_writer *w)
{
	if (w->broken) {
		dd_seterr("%s: the lake writer stopped after an error", w->root);
		return -1;
	}
	/* The spilled events after the open parts are closed (the drain
	 * commits again for every max_open days it writes). */
	if (w->spill && (commit_open(w) || spill_drain(w)))
		return -1;
	return commit_open(w);
}

/* Close every open part, as a batch; with wait, until durable. 0, or -1
 * (broken). */
static int
close_open(struct dd_lake_writer *w, int wait)
{
	int n = w->nopen;
	struct part **ps = dd_malloc((size_t)(n ? n : 1) * sizeof *ps);
	memcpy(ps, w->open, (size_t)n * sizeof *ps);
	for (int i = 0; i < n; i++)
		w->open[i] = NULL;
	w->nopen = 0;
	w->last = NULL;
	/* Acknowledged only once every part and its metadata are durable. */
	w->committing = 1;
	int rc = close_parts(w, ps, n);
	w->committing = 0;
	free(ps);
	if (rc == 0 && wait)
		rc = pipe_drain(w);
	if (rc) {
		writer_break(w);
		return -1;
	}
	if (w->kw)
		lake_kafka_committed(w->kw);
	return 0;
}

static int
commit_open(struct dd_lake_writer *w)
{
	return close_open(w, 1);
}

void
dd_lake_kafka_topic(struct dd_lake_writer *w, const char *topic)
{
	lake_kafka_free(w->kw);
	w->kw = lake_kafka_new(topic);
}

struct lake_kw *
lake_writer_kw(struct dd_lake_writer *w)
{
	return w->kw;
}

size_t
dd_lake_take_visible(struct dd_lake_writer *w, char ***paths)
{
	pthread_mutex_lock(&w->mu);
	size_t n = w->nvis;
	*paths = w->vis;
	w->vis = NULL;
	w->nvis = w->capvis = 0;
	pthread_mutex_unlock(&w->mu);
	return n;
}

void
dd_lake_paths_free(char **paths, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

int
dd_lake_writer_broken(const struct dd_lake_writer *w)
{
	return w->broken;
}

void
dd_lake_wstats(const struct dd_lake_writer *w, struct dd_lake_wstats *st)
{
	/* The closer counts what becomes durable. */
	pthread_mutex_t *mu = (pthread_mutex_t *)&w->mu;
	pthread_mutex_lock(mu);
	*st = w->st;
	pthread_mutex_unlock(mu);
}

static void
writer_free(struct dd_lake_writer *w)
{
	pipe_join(w);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv_job);
	pthread_cond_destroy(&w->cv_close);
	pthread_cond_destroy(&w->cv_done);
	lake_sort_free(w->spill);
	dd_buf_free(&w->rec);
	for (int i = 0; i < w->ncomp; i++) {
		ZSTD_freeCCtx(w->comp[i].cctx);
		free(w->comp[i].zbuf);
	}
	free(w->open);
	for (int i = 0; i < w->npool; i++)
		dd_buf_free(&w->pool[i]);
	free(w->pool);
	lake_hset_free(&w->days);
	for (size_t i = 0; i < w->ndirty; i++)
		free(w->dirty[i]);
	free(w->dirty);
	lake_hset_free(&w->dirtyset);
	dd_lake_paths_free(w->vis, w->nvis);
	lake_kafka_free(w->kw);
	free(w->lake);
	free(w->dataset);
	free(w->root);
	free(w);
}

int
dd_lake_writer_close(struct dd_lake_writer *w)
{
	if (w == NULL)
		return 0;
	int rc = dd_lake_commit(w);
	writer_free(w);
	return rc;
}

void
dd_lake_writer_abort(struct dd_lake_writer *w)
{
	if (w == NULL)
		return;
	writer_break(w);
	writer_free(w);
}

/* ------------------------------------------------------------- pipeline */

/* Nothing queued or in progress in either thread (w->mu held). */
static int
pipe_idle(const struct dd_lake_writer *w)
{
	return w->qlen == 0 && !w->cbusy && w->closing == NULL && !w->xbusy;
}

/* Note a thread's failure (w->mu held); the first reason wins. */
static void
pipe_seterr(struct dd_lake_writer *w, const char *why)
{
	if (w->werr)
		return;
	snprintf(w->werrmsg, sizeof w->werrmsg, "%s", why);
	__atomic_store_n(&w->werr, 1, __ATOMIC_RELEASE);
}

/* A compressor: takes frames in queue order and compresses them beside
 * the others; appends each once the part's frames before it are
 * appended (they were taken earlier, so their compressor is at work). */
static void *
compressor(void *arg)
{
	struct comp *c = arg;
	struct dd_lake_writer *w = c->w;
	char why[sizeof w->werrmsg];
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (w->qlen == 0 && !w->stop_c)
			pthread_cond_wait(&w->cv_job, &w->mu);
		if (w->qlen == 0)
			break;
		struct job j = w->q[w->qhead];
		w->qhead = (w->qhead + 1) % QMAX;
		w->qlen--;
		w->cbusy++;
		pthread_cond_broadcast(&w->cv_done);	/* room in q */
		int failed = w->werr;
		pthread_mutex_unlock(&w->mu);
		/* After a failure the remaining frames are only dropped: their
		 * parts are discarded. */
		int rc = 0;
		size_t r = failed ? 0 : compress_frame(c, j.p, &j.frame);
		if (!failed && r == 0) {
			rc = -1;
			snprintf(why, sizeof why, "%s", dd_errmsg());
		}
		pool_put(w, &j.frame);
		pthread_mutex_lock(&w->mu);
		while (j.p->fwritten != j.seq)
			pthread_cond_wait(&w->cv_done, &w->mu);
		if (rc == 0 && r && !w->werr) {
			pthread_mutex_unlock(&w->mu);
			if ((rc = append_frame(j.p, c->zbuf, r)) != 0)
				snprintf(why, sizeof why, "%s", dd_errmsg());
			pthread_mutex_lock(&w->mu);
		}
		if (rc)
			pipe_seterr(w, why);
		j.p->fwritten++;
		w->cbusy--;
		pthread_cond_broadcast(&w->cv_done);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Every frame of the batch's parts appended (w->mu held). */
static int
batch_written(const struct batch *b)
{
	for (int i = 0; i < b->n; i++)
		if (b->ps[i]->fwritten != b->ps[i]->fqueued)
			return 0;
	return 1;
}

/* The closer: batches in order, made durable and visible (close_io), or
 * only discarded after a failure. */
static void *
closer(void *arg)
{
	struct dd_lake_writer *w = arg;
	char why[sizeof w->werrmsg];
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (w->closing == NULL && !w->stop_x)
			pthread_cond_wait(&w->cv_close, &w->mu);
		struct batch *b = w->closing;
		if (b == NULL)
			break;
		w->closing = b->next;
		if (w->closing == NULL)
			w->closing_tail = NULL;
		w->xbusy = 1;
		while (!batch_written(b))
			pthread_cond_wait(&w->cv_done, &w->mu);
		int failed = w->werr;
		uint64_t held = b->held;
		pthread_mutex_unlock(&w->mu);
		int rc = 0;
		if (failed)
			batch_discard(w, b);
		else if ((rc = close_io(w, b)) != 0)
			snprintf(why, sizeof why, "%s", dd_errmsg());
		pthread_mutex_lock(&w->mu);
		if (rc)
			pipe_seterr(w, why);
		w->closing_held -= held;
		w->xbusy = 0;
		pthread_cond_broadcast(&w->cv_done);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Start the compressors and the closer. 0, or -1 with dd_errmsg(). */
static int
pipe_start(struct dd_lake_writer *w)
{
	int e = 0;
	for (int i = 0; i < w->ncomp && e == 0; i++) {
		e = pthread_create(&w->comp[i].thr, NULL, compressor, &w->comp[i]);
		if (e == 0)
			w->comp[i].started = w->thr_c_started = 1;
	}
	if (e == 0) {
		e = pthread_create(&w->thr_x, NULL, closer, w);
		if (e == 0)
			w->thr_x_started = 1;
	}
	if (e) {
		dd_seterr("cannot start the lake writer's threads: %s", strerror(e));
		return -1;
	}
	return 0;
}

/* Queue a job, waiting for room (w->mu held). 0, or -1 with dd_errmsg()
 * when a thread failed. */
static int
pipe_put(struct dd_lake_writer *w, struct job j)
{
	while (w->qlen == QMAX && !w->werr)
		pthread_cond_wait(&w->cv_done, &w->mu);
	if (w->werr) {
		dd_seterr("%s", w->werrmsg);
		return -1;
	}
	w->q[(w->qhead + w->qlen) % QMAX] = j;
	w->qlen++;
	pthread_cond_signal(&w->cv_job);
	return 0;
}

/* Hand p's frame to the compressors; p gets an empty one from the pool. */
static int
pipe_frame(struct dd_lake_writer *w, struct part *p)
{
	pthread_mutex_lock(&w->mu);
	int rc = pipe_put(w, (struct job){ .p = p, .frame = p->frame, .seq = p->fqueued });
	if (rc == 0) {
		p->fqueued++;
		p->frame = pool_get(w);
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

/*
 * Hand a batch to the closer (which waits for its frames). The ids of the
 * batches in flight stay within half of max_held (one batch at least),
 * so with the open parts' the writer's memory stays bounded however slow
 * the disk.
 */
static int
pipe_close(struct dd_lake_writer *w, struct batch *b)
{
	pthread_mutex_lock(&w->mu);
	while (w->closing_held && w->closing_held + b->held > w->o.max_held / 2 &&
	    !w->werr)
		pthread_cond_wait(&w->cv_done, &w->mu);
	int rc = 0;
	if (w->werr) {
		dd_seterr("%s", w->werrmsg);
		rc = -1;
	} else {
		w->closing_held += b->held;
		if (w->closing_tail)
			w->closing_tail->next = b;
		else
			w->closing = b;
		w->closing_tail = b;
		pthread_cond_signal(&w->cv_close);
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

/* Wait until everything handed over is written and visible. 0, or -1
 * (dd_errmsg()) when a thread failed. */
static int
pipe_drain(struct dd_lake_writer *w)
{
	if (!w->thr_c_started)
		return 0;
	pthread_mutex_lock(&w->mu);
	while (!pipe_idle(w))
		pthread_cond_wait(&w->cv_done, &w->mu);
	int err = w->werr;
	if (err)
		dd_seterr("%s", w->werrmsg);
	pthread_mutex_unlock(&w->mu);
	return err ? -1 : 0;
}

/* 1, with dd_errmsg(), when a thread failed; cheap enough per event. */
static int
pipe_failed(struct dd_lake_writer *w)
{
	if (!__atomic_load_n(&w->werr, __ATOMIC_ACQUIRE))
		return 0;
	pthread_mutex_lock(&w->mu);
	dd_seterr("%s", w->werrmsg);
	pthread_mutex_unlock(&w->mu);
	return 1;
}

/* Stop the pipeline after a failure and wait until nothing is in
 * progress: the threads discard whatever is still queued. The caller's
 * dd_errmsg() is left alone (it holds the reason). */
static void
pipe_abandon(struct dd_lake_writer *w)
{
	if (!w->thr_c_started)
		return;
	pthread_mutex_lock(&w->mu);
	char why[sizeof w->werrmsg];
	snprintf(why, sizeof why, "%s: the lake writer stopped after an error", w->root);
	pipe_seterr(w, why);
	while (!pipe_idle(w))
		pthread_cond_wait(&w->cv_done, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

/* End the threads (the pipeline is idle: after a commit or a break). */
static void
pipe_join(struct dd_lake_writer *w)
{
	if (w->thr_c_started) {
		pthread_mutex_lock(&w->mu);
		w->stop_c = 1;
		pthread_cond_broadcast(&w->cv_job);
		pthread_mutex_unlock(&w->mu);
		for (int i = 0; i < w->ncomp; i++)
			if (w->comp[i].started)
				pthread_join(w->comp[i].thr, NULL);
		w->thr_c_started = 0;
	}
	if (w->thr_x_started) {
		pthread_mutex_lock(&w->mu);
		w->stop_x = 1;
		pthread_cond_signal(&w->cv_close);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->thr_x, NULL);
		w->thr_x_started = 0;
	}
}
