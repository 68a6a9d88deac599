/*
 * The event lake: format and contract in lake.h. The writer keeps, per
 * open part, up to one frame's worth of raw lines and compresses it in one
 * shot when it is full (or early, when all frames together hold more than
 * max_buffered), so memory is bounded by max_buffered, max_held and the
 * few frames queued for compression, whatever the input.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "ddtime.h"
#include "event.h"
#include "json.h"
#include "lake.h"
#include "util.h"

#define META_FORMAT "dd-lake-meta/1"
#define BLOOM_BITS_PER_KEY 10
#define BLOOM_HASHES 7
#define PART_SUFFIX ".ndjson.zst"
#define STALE_TMP_SECS (24 * 3600)
#define STALE_META_SECS 3600
/* A reader refuses frames bigger than this (foreign files): the largest
 * line the filters accept (1 GiB) plus a frame. */
#define READER_FRAME_MAX (((size_t)1 << 30) + 2 * DD_LAKE_FRAME)

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

static char *
path_join(const char *a, const char *b)
{
	struct dd_buf p = { 0 };
	dd_buf_printf(&p, "%s/%s", a, b);
	return p.p;
}

static int64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 8 hex digits naming this host in temporaries, so a cleaner never
 * judges another machine's writer by a local process id. */
static uint32_t
host_id(void)
{
	static uint32_t id;
	static int done;
	if (!done) {
		char h[256] = "";
		gethostname(h, sizeof h - 1);
		id = (uint32_t)dd_hash64(h, strlen(h));
		done = 1;
	}
	return id;
}

/* A part name: open time (UTC, to the second) and 64 random bits. */
static void
new_name(char out[40])
{
	uint64_t r;
	if (getrandom(&r, sizeof r, 0) != sizeof r) {
		/* No entropy source: mix what differs between two openings. */
		static uint64_t n;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t v[4] = { (uint64_t)ts.tv_sec, (uint64_t)ts.tv_nsec,
		    (uint64_t)getpid(), ++n };
		r = dd_hash64(v, sizeof v);
	}
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	size_t n = strftime(out, 24, "%Y%m%dT%H%M%SZ", &tm);
	snprintf(out + n, 40 - n, "-%016" PRIx64, r);
}

int
dd_lake_dataset_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > DD_LAKE_DATASET_MAX) {
		dd_seterr("dataset name must be 1 to %d bytes", DD_LAKE_DATASET_MAX);
		return 0;
	}
	if (name[0] == '.' || name[0] == '_' || name[0] == '-') {
		dd_seterr("dataset name \"%s\" must not start with '.', '_' or '-'", name);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
			dd_seterr("dataset name may hold only letters, digits, '.', '_' and '-'");
			return 0;
		}
	}
	return 1;
}

static void
day_dirs(struct dd_buf *b, int64_t day)
{
	int y;
	unsigned m, d;
	dd_civil_from_days(day, &y, &m, &d);
	dd_buf_printf(b, "year=%04d/month=%02u/day=%02u", y, m, d);
}

char *
dd_lake_partition_path(const char *lake, const char *dataset, int64_t day)
{
	struct dd_buf b = { 0 };
	dd_buf_printf(&b, "%s/%s/", lake, dataset);
	day_dirs(&b, day);
	return b.p;
}

/* ------------------------------------------------------ hash sets, Bloom */

/* Ids of one part: the hash and the low 32 bits of the event time, so a
 * duplicate is only dropped when both match (a 64-bit hash collision
 * alone must never lose an event). Slot hash 0 means empty; an id whose
 * hash is 0 is stored as 1 and remembered in zero for the Bloom filter. */
struct idset {
	uint64_t *h;
	uint32_t *t;
	size_t cap, n;
	int zero;
};

static void
idset_free(struct idset *s)
{
	free(s->h);
	free(s->t);
	memset(s, 0, sizeof *s);
}

static void idset_put(struct idset *s, uint64_t h, uint32_t t);

static void
idset_grow(struct idset *s)
{
	struct idset old = *s;
	s->cap = old.cap ? old.cap * 2 : 1024;
	s->h = dd_calloc(s->cap, sizeof *s->h);
	s->t = dd_malloc(s->cap * sizeof *s->t);
	s->n = 0;
	for (size_t i = 0; i < old.cap; i++)
		if (old.h[i])
			idset_put(s, old.h[i], old.t[i]);
	free(old.h);
	free(old.t);
}

static void
idset_put(struct idset *s, uint64_t h, uint32_t t)
{
	if ((s->n + 1) * 4 > s->cap * 3)
		idset_grow(s);
	size_t mask = s->cap - 1, i = (size_t)h & mask;
	while (s->h[i])
		i = (i + 1) & mask;
	s->h[i] = h;
	s->t[i] = t;
	s->n++;
}

/* 1 when (h, t) is present; else adds it and returns 0. */
static int
idset_check_add(struct idset *s, uint64_t h, uint32_t t)
{
	if (h == 0) {
		s->zero = 1;
		h = 1;
	}
	if ((s->n + 1) * 4 > s->cap * 3)
		idset_grow(s);
	size_t mask = s->cap - 1, i = (size_t)h & mask;
	for (; s->h[i]; i = (i + 1) & mask)
		if (s->h[i] == h && s->t[i] == t)
			return 1;
	/* The empty slot that ended the search is where it goes. */
	s->h[i] = h;
	s->t[i] = t;
	s->n++;
	return 0;
}

/* A plain set of 64-bit hashes (subjects, days). */
struct hset {
	uint64_t *h;
	size_t cap, n;
	int zero;
};

static void
hset_free(struct hset *s)
{
	free(s->h);
	memset(s, 0, sizeof *s);
}

/* 1 when present; else adds it and returns 0. */
static int
hset_add(struct hset *s, uint64_t h)
{
	if (h == 0) {
		if (s->zero)
			return 1;
		s->zero = 1;
		s->n++;
		return 0;
	}
	if ((s->n + 1) * 4 > s->cap * 3) {
		struct hset old = *s;
		s->cap = old.cap ? old.cap * 2 : 256;
		s->h = dd_calloc(s->cap, sizeof *s->h);
		for (size_t i = 0; i < old.cap; i++) {
			if (!old.h[i])
				continue;
			size_t j = (size_t)old.h[i] & (s->cap - 1);
			while (s->h[j])
				j = (j + 1) & (s->cap - 1);
			s->h[j] = old.h[i];
		}
		free(old.h);
	}
	size_t mask = s->cap - 1, i = (size_t)h & mask;
	for (; s->h[i]; i = (i + 1) & mask)
		if (s->h[i] == h)
			return 1;
	s->h[i] = h;
	s->n++;
	return 0;
}

static void
bloom_set(unsigned char *bits, uint64_t m, unsigned k, uint64_t h)
{
	uint64_t a = h & 0xffffffffu, b = h >> 32;
	for (unsigned i = 0; i < k; i++) {
		uint64_t pos = (a + i * b) % m;
		bits[pos >> 3] |= (unsigned char)(1u << (pos & 7));
	}
}

int
dd_lake_bloom_test(const struct dd_lake_bloom *b, uint64_t h)
{
	if (b == NULL || b->p == NULL || b->bits == 0)
		return 1;
	uint64_t a = h & 0xffffffffu, c = h >> 32;
	for (unsigned i = 0; i < b->hashes; i++) {
		uint64_t pos = (a + i * c) % b->bits;
		if (!(b->p[pos >> 3] & (1u << (pos & 7))))
			return 0;
	}
	return 1;
}

/* Bits for n keys: about BLOOM_BITS_PER_KEY each, a whole number of
 * 64-bit words, at least one. */
static uint64_t
bloom_bits(uint64_t n)
{
	uint64_t m = n * BLOOM_BITS_PER_KEY;
	if (m < 64)
		m = 64;
	return (m + 63) / 64 * 64;
}

/* Per-type counts of one part. */
struct tcount {
	uint64_t h, n;
	char *name;
	size_t len;
};

struct tmap {
	struct tcount *v;
	size_t cap, n;
};

static void
tmap_inc(struct tmap *m, const char *s, size_t len)
{
	uint64_t h = dd_hash64(s, len);
	if ((m->n + 1) * 2 > m->cap) {
		struct tmap old = *m;
		m->cap = old.cap ? old.cap * 2 : 16;
		m->v = dd_calloc(m->cap, sizeof *m->v);
		for (size_t i = 0; i < old.cap; i++) {
			if (!old.v[i].name)
				continue;
			size_t j = (size_t)old.v[i].h & (m->cap - 1);
			while (m->v[j].name)
				j = (j + 1) & (m->cap - 1);
			m->v[j] = old.v[i];
		}
		free(old.v);
	}
	size_t mask = m->cap - 1, i = (size_t)h & mask;
	for (; m->v[i].name; i = (i + 1) & mask) {
		if (m->v[i].h == h && m->v[i].len == len && !memcmp(m->v[i].name, s, len)) {
			m->v[i].n++;
			return;
		}
	}
	m->v[i].h = h;
	m->v[i].name = dd_strndup(s, len);
	m->v[i].len = len;
	m->v[i].n = 1;
	m->n++;
}

static void
tmap_free(struct tmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->v[i].name);
	free(m->v);
	memset(m, 0, sizeof *m);
}

static int
cmp_tcount(const void *a, const void *b)
{
	const struct tcount *x = *(const struct tcount *const *)a;
	const struct tcount *y = *(const struct tcount *const *)b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->name, y->name, n);
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* --------------------------------------------------------------- writer */

/* The times a partition can hold: 0000-01-01 to 9999-12-31 (UTC). */
#define DAY0_MS (-62167219200000LL)
#define DAY10000_MS (253402300800000LL)

/* Frames waiting for the compression thread. */
#define QMAX 4

struct part {
	int64_t day;
	char *dir;		/* the partition directory */
	char name[40];		/* NAME */
	char *tmp, *final, *mtmp, *mfinal;
	int fd;
	struct dd_buf frame;	/* raw lines of the frame being filled */
	uint64_t raw, out, events, frames;
	int64_t min_ms, max_ms;
	unsigned char lastsum[4];	/* the last 4 bytes written */
	struct idset ids;
	struct hset subjects;
	struct tmap types;
	uint64_t lru;
	int64_t opened;		/* monotonic ms */
};

struct dd_lake_writer {
	char *lake, *dataset, *root;	/* root = LAKE/DATASET */
	struct dd_lake_wopts o;
	ZSTD_CCtx *cctx;
	char *zbuf;
	size_t zcap;
	struct part **open;
	int nopen;
	struct part *last;
	uint64_t tick;
	struct hset days;	/* partitions this writer has opened parts in */
	char **vis;
	size_t nvis, capvis;
	struct dd_lake_wstats st;
	int broken;
	uint64_t buffered;	/* raw bytes in the open parts' frames */
	char **dirty;		/* directories with new entries, not yet fsynced */
	size_t ndirty, capdirty;
	struct hset dirtyset;
	uint64_t held;		/* events in the open parts' id sets */
	/* Frame buffers of closed parts and compressed frames, kept for the
	 * next ones, so a long run does not fault fresh pages for each part. */
	struct dd_buf *pool;
	int npool, maxpool;
	/* The compression thread (o.threads): full frames wait in q, at most
	 * QMAX of them, so memory stays bounded when the disk is slow. The
	 * thread updates a part's out, frames and lastsum; the caller reads
	 * them only after drain(). */
	pthread_t thr;
	int thr_started;
	pthread_mutex_t mu;
	pthread_cond_t cv_job, cv_done;
	struct job {
		struct part *p;
		struct dd_buf frame;
	} q[QMAX];
	int qhead, qlen, busy, stop, werr;
	char werrmsg[700];
};

static void *compressor(void *arg);
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
	o->threads = 1;
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
	char *root = path_join(lake, dataset);
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
	w->cctx = ZSTD_createCCtx();
	if (w->cctx == NULL) {
		dd_seterr("out of memory for zstd");
		dd_lake_writer_abort(w);
		return NULL;
	}
	size_t r = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, o->level);
	if (!ZSTD_isError(r))
		r = ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
	if (ZSTD_isError(r)) {
		dd_seterr("zstd: %s", ZSTD_getErrorName(r));
		dd_lake_writer_abort(w);
		return NULL;
	}
	w->open = dd_calloc((size_t)w->o.max_open, sizeof *w->open);
	/* Enough buffers to cycle through the queue without allocating. */
	w->maxpool = QMAX + 4;
	w->pool = dd_calloc((size_t)w->maxpool, sizeof *w->pool);
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv_job, NULL);
	pthread_cond_init(&w->cv_done, NULL);
	if (w->o.threads) {
		int e = pthread_create(&w->thr, NULL, compressor, w);
		if (e) {
			dd_seterr("cannot start the compression thread: %s", strerror(e));
			dd_lake_writer_abort(w);
			return NULL;
		}
		w->thr_started = 1;
	}
	return w;
}

static void
part_free(struct dd_lake_writer *w, struct part *p)
{
	if (p == NULL)
		return;
	if (w) {
		w->buffered -= p->frame.len;
		w->held -= p->ids.n;
		pool_put(w, &p->frame);
	}
	if (p->fd >= 0)
		close(p->fd);
	free(p->dir);
	free(p->tmp);
	free(p->final);
	free(p->mtmp);
	free(p->mfinal);
	dd_buf_free(&p->frame);
	idset_free(&p->ids);
	hset_free(&p->subjects);
	tmap_free(&p->types);
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

/* An I/O error: nothing more becomes visible, no temporary stays. */
static void
writer_break(struct dd_lake_writer *w)
{
	/* No frame may still be on its way to a file about to be removed. */
	if (w->thr_started) {
		/* Not drain(): the caller's dd_errmsg() holds the reason. */
		pthread_mutex_lock(&w->mu);
		if (!w->werr) {
			w->werr = 1;
			snprintf(w->werrmsg, sizeof w->werrmsg, "%s: the lake writer stopped"
			    " after an error", w->root);
		}
		while (w->qlen > 0 || w->busy)
			pthread_cond_wait(&w->cv_done, &w->mu);
		pthread_mutex_unlock(&w->mu);
	}
	for (int i = 0; i < w->nopen; i++) {
		part_discard(w, w->open[i]);
		w->open[i] = NULL;
	}
	w->nopen = 0;
	w->last = NULL;
	w->broken = 1;
}

/*
 * Make a partition directory. The parents whose entries changed are noted
 * in w->dirty and fsynced once, before the next part becomes visible
 * (sync_dirty), rather than three fsyncs per new partition.
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
			if (!hset_add(&w->dirtyset, dd_hash64(p, strlen(p)))) {
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

/* fsync the directories that gained an entry since the last call. */
static int
sync_dirty(struct dd_lake_writer *w)
{
	int rc = 0;
	/* Deepest first is not needed: each entry is made durable by its own
	 * directory's fsync, and all of them happen before we return. */
	for (size_t i = 0; i < w->ndirty; i++) {
		if (rc == 0 && dd_fsync_dir(w->dirty[i]))
			rc = -1;
		free(w->dirty[i]);
	}
	w->ndirty = 0;
	hset_free(&w->dirtyset);
	return rc;
}

static struct part *
part_open(struct dd_lake_writer *w, int64_t day)
{
	struct part *p = dd_calloc(1, sizeof *p);
	p->fd = -1;
	p->day = day;
	struct dd_buf b = { 0 };
	dd_buf_printf(&b, "%s/", w->root);
	day_dirs(&b, day);
	p->dir = b.p;
	if (make_partition_dir(w, p->dir)) {
		part_free(w, p);
		return NULL;
	}
	if (!hset_add(&w->days, (uint64_t)day)) {
		w->st.partitions++;
		/* The first time this run writes here: clear what killed runs left. */
		dd_lake_clean_partition(p->dir);
	}
	new_name(p->name);
	unsigned pid = (unsigned)getpid();
	struct dd_buf s = { 0 };
	dd_buf_printf(&s, "%s/.part-%s" PART_SUFFIX ".%u-%08x.tmp", p->dir, p->name, pid,
	    host_id());
	p->tmp = s.p;
	s = (struct dd_buf){ 0 };
	dd_buf_printf(&s, "%s/part-%s" PART_SUFFIX, p->dir, p->name);
	p->final = s.p;
	s = (struct dd_buf){ 0 };
	dd_buf_printf(&s, "%s/._part-%s.meta.%u-%08x.tmp", p->dir, p->name, pid, host_id());
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
 * Compress one frame of p and append it to p's temporary. Runs in the
 * compression thread (or the caller's when o.threads is 0), so it reports
 * errors in why, not through dd_seterr(), which is not thread-safe.
 */
static int
compress_write(struct dd_lake_writer *w, struct part *p, const struct dd_buf *f,
    char *why, size_t whysz)
{
	size_t bound = ZSTD_compressBound(f->len);
	if (bound > w->zcap) {
		free(w->zbuf);
		w->zbuf = dd_malloc(bound);
		w->zcap = bound;
	}
	size_t r = ZSTD_compress2(w->cctx, w->zbuf, w->zcap, f->p, f->len);
	if (ZSTD_isError(r)) {
		snprintf(why, whysz, "%s: zstd: %s", p->tmp, ZSTD_getErrorName(r));
		return -1;
	}
	const char *s = w->zbuf;
	for (size_t n = r; n > 0; ) {
		ssize_t k = write(p->fd, s, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			snprintf(why, whysz, "%s: %s", p->tmp, strerror(errno));
			return -1;
		}
		s += k;
		n -= (size_t)k;
	}
	memcpy(p->lastsum, w->zbuf + r - 4, 4);
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

static void *
compressor(void *arg)
{
	struct dd_lake_writer *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (w->qlen == 0 && !w->stop)
			pthread_cond_wait(&w->cv_job, &w->mu);
		if (w->qlen == 0)
			break;
		struct job j = w->q[w->qhead];
		w->qhead = (w->qhead + 1) % QMAX;
		w->qlen--;
		w->busy = 1;
		int failed = w->werr;
		pthread_mutex_unlock(&w->mu);
		char why[sizeof w->werrmsg];
		/* After a failure the remaining frames are only dropped: the
		 * caller removes every temporary. */
		int rc = failed ? 0 : compress_write(w, j.p, &j.frame, why, sizeof why);
		pool_put(w, &j.frame);
		pthread_mutex_lock(&w->mu);
		if (rc && !w->werr) {
			w->werr = 1;
			memcpy(w->werrmsg, why, sizeof why);
		}
		w->busy = 0;
		pthread_cond_broadcast(&w->cv_done);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Wait until every queued frame is written. 0, or -1 (dd_errmsg()) when
 * the compression thread failed. */
static int
drain(struct dd_lake_writer *w)
{
	if (!w->thr_started)
		return 0;
	pthread_mutex_lock(&w->mu);
	while (w->qlen > 0 || w->busy)
		pthread_cond_wait(&w->cv_done, &w->mu);
	int err = w->werr;
	pthread_mutex_unlock(&w->mu);
	if (err) {
		dd_seterr("%s", w->werrmsg);
		return -1;
	}
	return 0;
}

/* Hand p's full frame over for compression (or compress it now). */
static int
flush_frame(struct dd_lake_writer *w, struct part *p)
{
	if (p->frame.len == 0)
		return 0;
	w->buffered -= p->frame.len;
	if (!w->thr_started) {
		char why[sizeof w->werrmsg];
		if (compress_write(w, p, &p->frame, why, sizeof why)) {
			dd_seterr("%s", why);
			return -1;
		}
		dd_buf_reset(&p->frame);
		return 0;
	}
	pthread_mutex_lock(&w->mu);
	while (w->qlen == QMAX && !w->werr)
		pthread_cond_wait(&w->cv_done, &w->mu);
	if (w->werr) {
		pthread_mutex_unlock(&w->mu);
		dd_seterr("%s", w->werrmsg);
		return -1;
	}
	w->q[(w->qhead + w->qlen) % QMAX] = (struct job){ p, p->frame };
	w->qlen++;
	p->frame = pool_get(w);
	pthread_cond_signal(&w->cv_job);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

static void
meta_bloom_json(struct dd_buf *b, const char *name, uint64_t keys, uint64_t bits,
    uint64_t off)
{
	dd_buf_printf(b, ",\"%s\":{\"keys\":%" PRIu64 ",\"bits\":%" PRIu64
	    ",\"hashes\":%d,\"offset\":%" PRIu64 ",\"bytes\":%" PRIu64 "}",
	    name, keys, bits, BLOOM_HASHES, off, bits / 8);
}

/* The metadata file of a finished part (lake.h). */
static void
meta_build(const struct part *p, struct dd_buf *b)
{
	char t1[DD_TIMEBUF], t2[DD_TIMEBUF], t3[DD_TIMEBUF];
	dd_time_format(p->min_ms, t1);
	dd_time_format(p->max_ms, t2);
	dd_time_format(dd_now_ms(), t3);
	uint64_t idkeys = p->ids.n + (uint64_t)p->ids.zero;
	uint64_t ibits = bloom_bits(idkeys), sbits = bloom_bits(p->subjects.n);
	dd_buf_printf(b, "{\"format\":\"" META_FORMAT "\",\"part\":\"part-%s" PART_SUFFIX
	    "\",\"partBytes\":%" PRIu64 ",\"contentChecksum\":\"%02x%02x%02x%02x\""
	    ",\"frames\":%" PRIu64 ",\"events\":%" PRIu64 ",\"rawBytes\":%" PRIu64
	    ",\"minTimeMs\":%" PRId64 ",\"maxTimeMs\":%" PRId64
	    ",\"minTime\":\"%s\",\"maxTime\":\"%s\",\"types\":{",
	    p->name, p->out, p->lastsum[0], p->lastsum[1], p->lastsum[2], p->lastsum[3],
	    p->frames, p->events, p->raw, p->min_ms, p->max_ms, t1, t2);
	/* Types in name order, so equal parts have equal metadata. */
	const struct tcount **tv = dd_calloc(p->types.n, sizeof *tv);
	size_t nt = 0;
	for (size_t i = 0; i < p->types.cap; i++)
		if (p->types.v[i].name)
			tv[nt++] = &p->types.v[i];
	qsort(tv, nt, sizeof *tv, cmp_tcount);
	for (size_t i = 0; i < nt; i++) {
		if (i)
			dd_buf_addc(b, ',');
		dd_buf_json_str(b, tv[i]->name, tv[i]->len);
		dd_buf_printf(b, ":%" PRIu64, tv[i]->n);
	}
	free(tv);
	dd_buf_addc(b, '}');
	meta_bloom_json(b, "ids", idkeys, ibits, 0);
	meta_bloom_json(b, "subjects", p->subjects.n, sbits, ibits / 8);
	dd_buf_printf(b, ",\"written\":\"%s\"}\n", t3);

	size_t base = b->len;
	dd_buf_grow(b, (size_t)(ibits / 8 + sbits / 8));
	memset(b->p + base, 0, (size_t)(ibits / 8 + sbits / 8));
	unsigned char *ib = (unsigned char *)b->p + base, *sb = ib + ibits / 8;
	for (size_t i = 0; i < p->ids.cap; i++)
		if (p->ids.h[i])
			bloom_set(ib, ibits, BLOOM_HASHES, p->ids.h[i]);
	if (p->ids.zero)
		bloom_set(ib, ibits, BLOOM_HASHES, 0);
	for (size_t i = 0; i < p->subjects.cap; i++)
		if (p->subjects.h[i])
			bloom_set(sb, sbits, BLOOM_HASHES, p->subjects.h[i]);
	if (p->subjects.zero)
		bloom_set(sb, sbits, BLOOM_HASHES, 0);
	b->len += (size_t)(ibits / 8 + sbits / 8);
}

static void
add_visible(struct dd_lake_writer *w, const char *path)
{
	if (w->nvis == w->capvis) {
		w->capvis = w->capvis ? w->capvis * 2 : 16;
		w->vis = dd_realloc(w->vis, w->capvis * sizeof *w->vis);
	}
	w->vis[w->nvis++] = dd_strdup(path);
}

/*
 * Finish parts and make them visible: data and metadata written and
 * fsynced, then each meta renamed before its part, then the directories
 * fsynced. Done as a batch, each step for every part before the next
 * step, so the journal commits of many parts' fsyncs coincide (one commit
 * closing a month's worth of partitions costs about three disk flushes,
 * not three per part). Frees the parts either way; on failure no part
 * that was not yet visible becomes visible, and no temporary stays.
 */
static int
close_parts(struct dd_lake_writer *w, struct part **ps, int n)
{
	int rc = 0, i;
	int *mfd = dd_malloc((size_t)(n ? n : 1) * sizeof *mfd);
	for (i = 0; i < n; i++)
		mfd[i] = -1;
	for (i = 0; i < n; i++)
		if (ps[i]->events && flush_frame(w, ps[i]))
			goto fail;
	if (drain(w))
		goto fail;
	/* Start writing back every part's data at once. */
	for (i = 0; i < n; i++)
		if (ps[i]->events)
			sync_file_range(ps[i]->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	for (i = 0; i < n; i++) {
		struct part *p = ps[i];
		if (p->events == 0)
			continue;
		struct dd_buf m = { 0 };
		meta_build(p, &m);
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
		if (p->events == 0)
			continue;
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
		if (p->events == 0)
			continue;
		if (rename(p->mtmp, p->mfinal) < 0) {
			dd_seterr("%s: %s", p->mfinal, strerror(errno));
			goto fail;
		}
		if (rename(p->tmp, p->final) < 0) {
			dd_seterr("%s: %s", p->final, strerror(errno));
			unlink(p->mfinal);
			goto fail;
		}
		add_visible(w, p->final);
		w->st.parts++;
		w->st.durable += p->events;
		w->st.out_bytes += p->out;
		p->events = 0;	/* done: nothing of it to remove below */
	}
	/* The parts are whole; only their durability is at stake now. */
	for (i = 0; i < n; i++)
		if (rc == 0 && dd_fsync_dir(ps[i]->dir))
			rc = -1;
	if (sync_dirty(w))
		rc = -1;
	for (i = 0; i < n; i++)
		part_free(w, ps[i]);
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
	free(mfd);
	return -1;
}

static int
part_close(struct dd_lake_writer *w, struct part *p)
{
	return close_parts(w, &p, 1);
}

int
dd_lake_add(struct dd_lake_writer *w, const char *line, size_t len, int64_t time_ms,
    const char *id, size_t idlen, const char *subject, size_t sublen,
    const char *type, size_t typelen)
{
	if (w->broken) {
		dd_seterr("%s: the lake writer stopped after an error", w->root);
		return -1;
	}
	/* Refused, the writer goes on: a newline would split the line in
	 * two events, and a year past 9999 has no partition readers list. */
	if (memchr(line, '\n', len)) {
		dd_seterr("an event line must not hold a newline");
		return -1;
	}
	if (time_ms < DAY0_MS || time_ms >= DAY10000_MS) {
		dd_seterr("time %" PRId64 " ms is outside years 0000 to 9999", time_ms);
		return -1;
	}
	int64_t day = dd_ms_to_days(time_ms);
	struct part *p = w->last;
	if (p == NULL || p->day != day) {
		p = NULL;
		for (int i = 0; i < w->nopen; i++) {
			if (w->open[i]->day == day) {
				p = w->open[i];
				break;
			}
		}
	}
	if (p == NULL) {
		if (w->nopen == w->o.max_open) {
			/* Close the least recently used part to bound open files
			 * and memory. */
			int lru = 0;
			for (int i = 1; i < w->nopen; i++)
				if (w->open[i]->lru < w->open[lru]->lru)
					lru = i;
			struct part *old = w->open[lru];
			drop_open(w, lru);
			if (part_close(w, old)) {
				writer_break(w);
				return -1;
			}
		}
		p = part_open(w, day);
		if (p == NULL) {
			writer_break(w);
			return -1;
		}
		w->open[w->nopen++] = p;
	}
	w->last = p;
	p->lru = ++w->tick;
	uint64_t h = dd_hash64(id, idlen);
	if (w->o.dedupe) {
		if (idset_check_add(&p->ids, h, (uint32_t)time_ms)) {
			w->st.duplicates++;
			return 1;
		}
	} else {
		if (h == 0) {
			p->ids.zero = 1;
			h = 1;
		}
		idset_put(&p->ids, h, (uint32_t)time_ms);
	}
	w->held++;
	if (subject)
		hset_add(&p->subjects, dd_hash64(subject, sublen));
	if (type)
		tmap_inc(&p->types, type, typelen);
	if (p->frame.len && p->frame.len + len + 1 > DD_LAKE_FRAME && flush_frame(w, p))
		goto fail;
	if (p->frame.cap == 0)
		dd_buf_grow(&p->frame, DD_LAKE_FRAME);
	dd_buf_grow(&p->frame, len + 1);
	memcpy(p->frame.p + p->frame.len, line, len);
	p->frame.len += len;
	p->frame.p[p->frame.len++] = '\n';
	p->raw += len + 1;
	p->events++;
	if (time_ms < p->min_ms)
		p->min_ms = time_ms;
	if (time_ms > p->max_ms)
		p->max_ms = time_ms;
	w->st.events++;
	w->st.raw_bytes += len + 1;
	w->buffered += len + 1;
	if (p->frame.len >= DD_LAKE_FRAME && flush_frame(w, p))
		goto fail;
	if (p->raw >= w->o.part_size) {
		for (int i = 0; i < w->nopen; i++)
			if (w->open[i] == p)
				drop_open(w, i);
		if (part_close(w, p))
			goto fail;
	}
	/* Memory: compress the fullest frame early; close the least recently
	 * used parts (p itself may go; it is not used below). */
	while (w->buffered > w->o.max_buffered) {
		struct part *big = NULL;
		for (int i = 0; i < w->nopen; i++)
			if (big == NULL || w->open[i]->frame.len > big->frame.len)
				big = w->open[i];
		if (big == NULL || big->frame.len == 0)
			break;
		if (flush_frame(w, big))
			goto fail;
	}
	while (w->o.max_held && w->held > w->o.max_held && w->nopen > 0) {
		int lru = 0;
		for (int i = 1; i < w->nopen; i++)
			if (w->open[i]->lru < w->open[lru]->lru)
				lru = i;
		struct part *old = w->open[lru];
		drop_open(w, lru);
		if (part_close(w, old))
			goto fail;
	}
	/* Ages change slowly: look at the clock every 256 events. */
	if (w->o.max_age_ms > 0 && (w->tick & 255) == 0) {
		int64_t now = mono_ms();
		for (int i = 0; i < w->nopen; i++) {
			if (now - w->open[i]->opened < w->o.max_age_ms)
				continue;
			struct part *old = w->open[i];
			drop_open(w, i--);
			if (part_close(w, old))
				goto fail;
		}
	}
	return 0;
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
	int n = w->nopen;
	struct part **ps = dd_malloc((size_t)(n ? n : 1) * sizeof *ps);
	memcpy(ps, w->open, (size_t)n * sizeof *ps);
	for (int i = 0; i < n; i++)
		w->open[i] = NULL;
	w->nopen = 0;
	w->last = NULL;
	int rc = close_parts(w, ps, n);
	free(ps);
	if (rc) {
		writer_break(w);
		return -1;
	}
	return 0;
}

size_t
dd_lake_take_visible(struct dd_lake_writer *w, char ***paths)
{
	size_t n = w->nvis;
	*paths = w->vis;
	w->vis = NULL;
	w->nvis = w->capvis = 0;
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
	*st = w->st;
}

static void
writer_free(struct dd_lake_writer *w)
{
	if (w->thr_started) {
		pthread_mutex_lock(&w->mu);
		w->stop = 1;
		pthread_cond_signal(&w->cv_job);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->thr, NULL);
	}
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv_job);
	pthread_cond_destroy(&w->cv_done);
	ZSTD_freeCCtx(w->cctx);
	free(w->zbuf);
	free(w->open);
	for (int i = 0; i < w->npool; i++)
		dd_buf_free(&w->pool[i]);
	free(w->pool);
	hset_free(&w->days);
	for (size_t i = 0; i < w->ndirty; i++)
		free(w->dirty[i]);
	free(w->dirty);
	hset_free(&w->dirtyset);
	dd_lake_paths_free(w->vis, w->nvis);
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

/* -------------------------------------------------------------- readers */

/* "key=" followed by exactly ndig digits; the value, or -1. */
static int
hive_num(const char *name, const char *key, int ndig)
{
	size_t k = strlen(key);
	if (strncmp(name, key, k) || name[k] != '=' || strlen(name + k + 1) != (size_t)ndig)
		return -1;
	int v = 0;
	for (const char *s = name + k + 1; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v;
}

/* The sorted numeric values of the hive directories key=NNN in dir. */
static int
hive_list(const char *dir, const char *key, int ndig, int **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (d == NULL) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		dd_seterr("%s: %s", dir, strerror(errno));
		return -1;
	}
	size_t cap = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		int v = hive_num(de->d_name, key, ndig);
		if (v < 0)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			*out = dd_realloc(*out, cap * sizeof **out);
		}
		(*out)[(*n)++] = v;
	}
	closedir(d);
	for (size_t i = 1; i < *n; i++)	/* few entries: insertion sort */
		for (size_t j = i; j > 0 && (*out)[j - 1] > (*out)[j]; j--) {
			int t = (*out)[j];
			(*out)[j] = (*out)[j - 1];
			(*out)[j - 1] = t;
		}
	return 0;
}

int
dd_lake_partitions(const char *lake, const char *dataset, int64_t since_ms,
    int64_t until_ms, struct dd_lake_partition **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!dd_lake_dataset_ok(dataset))
		return -1;
	if (until_ms <= since_ms)
		return 0;
	/* Inclusive day range; the bounds of int64 ms are far beyond year 9999. */
	int64_t d0 = since_ms == DD_LAKE_MIN_MS ? INT64_MIN : dd_ms_to_days(since_ms);
	int64_t d1 = until_ms == DD_LAKE_MAX_MS ? INT64_MAX : dd_ms_to_days(until_ms - 1);
	int y0 = INT32_MIN, y1 = INT32_MAX;
	unsigned m0 = 1, m1 = 12, dd;
	if (d0 != INT64_MIN)
		dd_civil_from_days(d0, &y0, &m0, &dd);
	if (d1 != INT64_MAX)
		dd_civil_from_days(d1, &y1, &m1, &dd);
	char *root = path_join(lake, dataset);
	int *years = NULL, *months = NULL, *days = NULL;
	size_t ny = 0, nm = 0, nd = 0, cap = 0;
	int rc = hive_list(root, "year", 4, &years, &ny);
	for (size_t i = 0; rc == 0 && i < ny; i++) {
		int y = years[i];
		if (y < y0 || y > y1)
			continue;
		struct dd_buf yp = { 0 };
		dd_buf_printf(&yp, "%s/year=%04d", root, y);
		rc = hive_list(yp.p, "month", 2, &months, &nm);
		for (size_t j = 0; rc == 0 && j < nm; j++) {
			unsigned m = (unsigned)months[j];
			if (m < 1 || m > 12 || (y == y0 && m < m0) || (y == y1 && m > m1))
				continue;
			struct dd_buf mp = { 0 };
			dd_buf_printf(&mp, "%s/month=%02u", yp.p, m);
			rc = hive_list(mp.p, "day", 2, &days, &nd);
			for (size_t k = 0; rc == 0 && k < nd; k++) {
				int64_t day = dd_days_from_civil(y, m, (unsigned)days[k]);
				int cy;
				unsigned cm, cd;
				dd_civil_from_days(day, &cy, &cm, &cd);
				if (cy != y || cm != m || cd != (unsigned)days[k])
					continue;	/* day=31 in a 30-day month */
				if (day < d0 || day > d1)
					continue;
				if (*n == cap) {
					cap = cap ? cap * 2 : 32;
					*out = dd_realloc(*out, cap * sizeof **out);
				}
				struct dd_buf dp = { 0 };
				dd_buf_printf(&dp, "%s/day=%02u", mp.p, cd);
				(*out)[*n].day = day;
				(*out)[(*n)++].path = dp.p;
			}
			free(days);
			days = NULL;
			dd_buf_free(&mp);
		}
		free(months);
		months = NULL;
		dd_buf_free(&yp);
	}
	free(years);
	free(root);
	if (rc) {
		dd_lake_partitions_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

void
dd_lake_partitions_free(struct dd_lake_partition *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(p[i].path);
	free(p);
}

/* The metadata path of a part path: DIR/BASE.ndjson.zst -> DIR/_BASE.meta.
 * NULL when the name is not a part's. */
static char *
meta_path(const char *part)
{
	const char *slash = strrchr(part, '/');
	const char *base = slash ? slash + 1 : part;
	size_t n = strlen(base), sl = strlen(PART_SUFFIX);
	if (n <= sl || strcmp(base + n - sl, PART_SUFFIX))
		return NULL;
	struct dd_buf b = { 0 };
	dd_buf_printf(&b, "%.*s_%.*s.meta", (int)(base - part), part, (int)(n - sl), base);
	return b.p;
}

static int
is_part_name(const char *name)
{
	size_t n = strlen(name), sl = strlen(PART_SUFFIX);
	return name[0] != '.' && name[0] != '_' && n > sl && !strcmp(name + n - sl, PART_SUFFIX);
}

static int
json_u64(const struct dd_jval *o, const char *key, uint64_t *v)
{
	struct dd_jval x;
	int64_t i;
	if (!dd_json_get(o, key, strlen(key), &x) || dd_jnum_int64(&x, &i) || i < 0)
		return -1;
	*v = (uint64_t)i;
	return 0;
}

static int
json_i64(const struct dd_jval *o, const char *key, int64_t *v)
{
	struct dd_jval x;
	if (!dd_json_get(o, key, strlen(key), &x) || dd_jnum_int64(&x, v))
		return -1;
	return 0;
}

static int
meta_bloom_parse(const struct dd_jval *o, const char *key, const unsigned char *bin,
    size_t binlen, struct dd_lake_bloom *b)
{
	struct dd_jval x;
	uint64_t hashes, off, bytes;
	if (!dd_json_get(o, key, strlen(key), &x) || x.type != DD_JOBJ ||
	    json_u64(&x, "keys", &b->keys) || json_u64(&x, "bits", &b->bits) ||
	    json_u64(&x, "hashes", &hashes) || json_u64(&x, "offset", &off) ||
	    json_u64(&x, "bytes", &bytes))
		return -1;
	if (b->bits == 0 || b->bits % 8 || bytes != b->bits / 8 || hashes == 0 ||
	    hashes > 64 || off > binlen || bytes > binlen - off)
		return -1;
	b->hashes = (unsigned)hashes;
	b->p = bin + off;
	return 0;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Load and check the metadata of part (whose size is size, and last four
 * bytes sum). 1, 0 (absent or not this part's), -1 (malformed/unreadable). */
static int
meta_load(const char *part, uint64_t size, const unsigned char sum[4],
    struct dd_lake_meta *m)
{
	memset(m, 0, sizeof *m);
	char *mp = meta_path(part);
	if (mp == NULL)
		return 0;
	int fd = open(mp, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT) {
			free(mp);
			return 0;
		}
		dd_seterr("%s: %s", mp, strerror(e));
		free(mp);
		return -1;
	}
	struct stat sb;
	if (fstat(fd, &sb) < 0 || sb.st_size > ((off_t)1 << 32)) {
		dd_seterr("%s: %s", mp, sb.st_size > ((off_t)1 << 32) ? "too large" :
		    strerror(errno));
		goto bad;
	}
	m->buflen = (size_t)sb.st_size;
	m->buf = dd_malloc(m->buflen + 1);
	size_t got = 0;
	while (got < m->buflen) {
		ssize_t k = read(fd, m->buf + got, m->buflen - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			dd_seterr("%s: %s", mp, k < 0 ? strerror(errno) : "shorter than its size");
			goto bad;
		}
		got += (size_t)k;
	}
	m->buf[m->buflen] = '\0';
	close(fd);
	fd = -1;
	char *nl = memchr(m->buf, '\n', m->buflen);
	if (nl == NULL || dd_json_validate(m->buf, (size_t)(nl - m->buf), NULL)) {
		dd_seterr("%s: malformed metadata", mp);
		goto bad;
	}
	struct dd_jval o = dd_json_value(m->buf, (size_t)(nl - m->buf)), x;
	const unsigned char *bin = (const unsigned char *)nl + 1;
	size_t binlen = m->buflen - (size_t)(nl + 1 - m->buf);
	if (o.type != DD_JOBJ || !dd_json_get(&o, "format", 6, &x) ||
	    !dd_jstr_eq(&x, META_FORMAT, strlen(META_FORMAT))) {
		dd_seterr("%s: not " META_FORMAT " metadata", mp);
		goto bad;
	}
	/* Does it describe the part beside it? */
	const char *base = strrchr(part, '/');
	base = base ? base + 1 : part;
	if (!dd_json_get(&o, "part", 4, &x) || !dd_jstr_eq(&x, base, strlen(base)) ||
	    json_u64(&o, "partBytes", &m->part_bytes) || m->part_bytes != size ||
	    !dd_json_get(&o, "contentChecksum", 15, &x) || x.type != DD_JSTR || x.n != 8)
		goto mismatch;
	for (int i = 0; i < 4; i++) {
		int hi = hexval(x.p[2 * i]), lo = hexval(x.p[2 * i + 1]);
		if (hi < 0 || lo < 0 || (unsigned)(hi << 4 | lo) != sum[i])
			goto mismatch;
		m->checksum = m->checksum << 8 | (uint32_t)(hi << 4 | lo);
	}
	if (json_u64(&o, "events", &m->events) || json_u64(&o, "rawBytes", &m->raw_bytes) ||
	    json_u64(&o, "frames", &m->frames) || json_i64(&o, "minTimeMs", &m->min_ms) ||
	    json_i64(&o, "maxTimeMs", &m->max_ms) ||
	    meta_bloom_parse(&o, "ids", bin, binlen, &m->ids) ||
	    meta_bloom_parse(&o, "subjects", bin, binlen, &m->subjects) ||
	    !dd_json_get(&o, "types", 5, &x) || x.type != DD_JOBJ) {
		dd_seterr("%s: malformed metadata", mp);
		goto bad;
	}
	size_t pos = 0, cap = 0;
	struct dd_jval k, v;
	while (dd_json_next(&x, &pos, &k, &v)) {
		int64_t c;
		if (dd_jnum_int64(&v, &c) || c < 0) {
			dd_seterr("%s: malformed metadata", mp);
			goto bad;
		}
		if (m->ntypes == cap) {
			cap = cap ? cap * 2 : 8;
			m->types = dd_realloc(m->types, cap * sizeof *m->types);
		}
		struct dd_buf t = { 0 };
		dd_jstr_decode(&k, &t);
		if (t.p == NULL)
			t.p = dd_strdup("");
		m->types[m->ntypes].type = t.p;
		m->types[m->ntypes++].n = (uint64_t)c;
	}
	free(mp);
	return 1;
mismatch:
	free(mp);
	dd_lake_meta_free(m);
	return 0;
bad:
	if (fd >= 0)
		close(fd);
	free(mp);
	dd_lake_meta_free(m);
	return -1;
}

void
dd_lake_meta_free(struct dd_lake_meta *m)
{
	for (size_t i = 0; i < m->ntypes; i++)
		free(m->types[i].type);
	free(m->types);
	free(m->buf);
	memset(m, 0, sizeof *m);
}

/* Size and last four bytes of a part file. 0, or -1 (dd_errmsg()). */
static int
part_tail(const char *path, uint64_t *size, unsigned char sum[4])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0) {
		dd_seterr("%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*size = (uint64_t)sb.st_size;
	memset(sum, 0, 4);
	if (sb.st_size >= 4 && pread(fd, sum, 4, sb.st_size - 4) != 4) {
		dd_seterr("%s: %s", path, strerror(errno ? errno : EIO));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int
dd_lake_meta_load(const char *part_path, struct dd_lake_meta *m)
{
	uint64_t size;
	unsigned char sum[4];
	memset(m, 0, sizeof *m);
	if (part_tail(part_path, &size, sum))
		return -1;
	return meta_load(part_path, size, sum, m);
}

static int
cmp_part(const void *a, const void *b)
{
	return strcmp(((const struct dd_lake_part *)a)->name,
	    ((const struct dd_lake_part *)b)->name);
}

int
dd_lake_parts(const char *partition, struct dd_lake_part **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	DIR *d = opendir(partition);
	if (d == NULL) {
		if (errno == ENOENT)
			return 0;
		dd_seterr("%s: %s", partition, strerror(errno));
		return -1;
	}
	size_t cap = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!is_part_name(de->d_name))
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			*out = dd_realloc(*out, cap * sizeof **out);
		}
		struct dd_lake_part *p = &(*out)[*n];
		memset(p, 0, sizeof *p);
		p->path = path_join(partition, de->d_name);
		p->name = strrchr(p->path, '/') + 1;
		(*n)++;
	}
	closedir(d);
	if (*n)		/* qsort(NULL, 0, ...) is undefined behaviour */
		qsort(*out, *n, sizeof **out, cmp_part);
	for (size_t i = 0; i < *n; i++) {
		struct dd_lake_part *p = &(*out)[i];
		unsigned char sum[4];
		if (part_tail(p->path, &p->bytes, sum)) {
			if (errno == ENOENT) {
				/* Removed by a compaction meanwhile: its events are in
				 * the part that replaced it. */
				free(p->path);
				memmove(p, p + 1, (*n - i - 1) * sizeof *p);
				(*n)--;
				i--;
				continue;
			}
			goto fail;
		}
		/* Metadata that cannot be read or parsed only costs a full scan
		 * of its part (dd_lake_part_verify reports it). */
		p->has_meta = meta_load(p->path, p->bytes, sum, &p->meta) == 1;
	}
	return 0;
fail:
	dd_lake_parts_free(*out, *n);
	*out = NULL;
	*n = 0;
	return -1;
}

void
dd_lake_parts_free(struct dd_lake_part *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].path);
		dd_lake_meta_free(&p[i].meta);
	}
	free(p);
}

int
dd_lake_may_have_id(const struct dd_lake_meta *m, const char *id, size_t n)
{
	if (m == NULL || m->buf == NULL)
		return 1;
	return dd_lake_bloom_test(&m->ids, dd_hash64(id, n));
}

int
dd_lake_may_have_subject(const struct dd_lake_meta *m, const char *s, size_t n)
{
	if (m == NULL || m->buf == NULL)
		return 1;
	return dd_lake_bloom_test(&m->subjects, dd_hash64(s, n));
}

int
dd_lake_may_have_time(const struct dd_lake_meta *m, int64_t since_ms, int64_t until_ms)
{
	if (m == NULL || m->buf == NULL)
		return 1;
	return m->max_ms >= since_ms && m->min_ms < until_ms;
}

/* ---------------------------------------------------------- part reader */

struct dd_lake_reader {
	char *path;
	int fd;
	ZSTD_DCtx *dctx;
	unsigned char *in;
	size_t incap, inlen, inpos;
	char *buf;		/* decoded bytes: [pos, verified) checked, [verified, len) not yet */
	size_t cap, len, pos, verified;
	uint64_t lineno;
	int midframe;		/* inside a frame (input fed since the last frame end) */
	int eof, err, done;
	int own;		/* a part this writer made: every frame has a checksum */
	uint64_t inoff;		/* file offset of in[0] */
	uint64_t fstart;	/* file offset of the current frame */
};

/*
 * Is base the name of a part the writer made ("part-" new_name()
 * ".ndjson.zst")? Such a part has a checksum on every frame, so a frame
 * without one is damage (a corrupt header can clear the flag and still
 * decode); other writers' parts (DuckDB, Spark) may have none.
 */
static int
own_part_name(const char *base)
{
	static const char pat[] = "part-DDDDDDDDTDDDDDDZ-XXXXXXXXXXXXXXXX" PART_SUFFIX;
	if (strlen(base) != sizeof pat - 1)
		return 0;
	for (size_t i = 0; i < sizeof pat - 1; i++) {
		char c = base[i];
		if (pat[i] == 'D' ? !(c >= '0' && c <= '9') :
		    pat[i] == 'X' ? !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) :
		    c != pat[i])
			return 0;
	}
	return 1;
}

struct dd_lake_reader *
dd_lake_reader_open(const char *part_path)
{
	int fd = open(part_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		dd_seterr("%s: %s", part_path, strerror(errno));
		return NULL;
	}
	struct dd_lake_reader *r = dd_calloc(1, sizeof *r);
	r->path = dd_strdup(part_path);
	r->fd = fd;
	const char *base = strrchr(part_path, '/');
	r->own = own_part_name(base ? base + 1 : part_path);
	r->dctx = ZSTD_createDCtx();
	r->incap = ZSTD_DStreamInSize();
	r->in = dd_malloc(r->incap);
	r->cap = DD_LAKE_FRAME + ZSTD_DStreamOutSize();
	r->buf = dd_malloc(r->cap);
	return r;
}

void
dd_lake_reader_close(struct dd_lake_reader *r)
{
	if (r == NULL)
		return;
	close(r->fd);
	ZSTD_freeDCtx(r->dctx);
	free(r->in);
	free(r->buf);
	free(r->path);
	free(r);
}

static int
reader_fail(struct dd_lake_reader *r, const char *what)
{
	dd_seterr("%s: %s (after line %" PRIu64 ")", r->path, what, r->lineno);
	r->err = 1;
	return -1;
}

/* Does the frame that just ended (at fstart) carry a checksum? Its
 * header says so (RFC 8878: bit 2 of the byte after the magic number).
 * Skippable frames hold no lines and need none. */
static int
frame_has_checksum(struct dd_lake_reader *r)
{
	unsigned char h[5];
	if (pread(r->fd, h, sizeof h, (off_t)r->fstart) != (ssize_t)sizeof h)
		return 0;
	uint32_t magic = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 |
	    (uint32_t)h[3] << 24;
	if ((magic & 0xfffffff0u) == ZSTD_MAGIC_SKIPPABLE_START)
		return 1;
	return magic == ZSTD_MAGICNUMBER && (h[4] & 4);
}

/* Decode until the current frame ends (its checksum verified) or the
 * input ends. 1 when more verified bytes are ready, 0 at a clean end. */
static int
reader_fill(struct dd_lake_reader *r)
{
	/* Keep only the unread part of the buffer. */
	if (r->pos) {
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->len -= r->pos;
		r->verified -= r->pos;
		r->pos = 0;
	}
	for (;;) {
		if (r->inpos == r->inlen && !r->eof) {
			ssize_t k = read(r->fd, r->in, r->incap);
			if (k < 0) {
				if (errno == EINTR)
					continue;
				return reader_fail(r, strerror(errno));
			}
			r->inoff += r->inlen;
			r->inlen = (size_t)k;
			r->inpos = 0;
			if (k == 0)
				r->eof = 1;
		}
		if (r->inpos == r->inlen && r->eof) {
			if (r->midframe)
				return reader_fail(r, "truncated zstd frame");
			if (r->lineno == 0 && r->len == 0 && r->verified == 0 && !r->done)
				return reader_fail(r, "empty file, not a zstd frame");
			r->done = 1;
			return 0;
		}
		if (r->cap - r->len < ZSTD_DStreamOutSize()) {
			if (r->cap >= READER_FRAME_MAX)
				return reader_fail(r, "zstd frame too large");
			r->cap *= 2;
			r->buf = dd_realloc(r->buf, r->cap);
		}
		if (!r->midframe)
			r->fstart = r->inoff + r->inpos;
		ZSTD_inBuffer in = { r->in, r->inlen, r->inpos };
		ZSTD_outBuffer out = { r->buf, r->cap, r->len };
		size_t rc = ZSTD_decompressStream(r->dctx, &out, &in);
		if (ZSTD_isError(rc))
			return reader_fail(r, ZSTD_getErrorName(rc));
		r->inpos = in.pos;
		r->len = out.pos;
		r->done = 1;	/* something was read: not an empty file */
		if (rc == 0) {
			r->midframe = 0;
			if (r->own && !frame_has_checksum(r))
				return reader_fail(r, "zstd frame without a checksum");
			if (r->len > r->verified) {
				r->verified = r->len;
				return 1;
			}
		} else {
			r->midframe = 1;
		}
	}
}

int
dd_lake_reader_next(struct dd_lake_reader *r, const char **line, size_t *len,
    uint64_t *lineno)
{
	for (;;) {
		if (r->err)
			return -1;
		if (r->pos < r->verified) {
			char *s = r->buf + r->pos;
			char *nl = memchr(s, '\n', r->verified - r->pos);
			if (nl) {
				*line = s;
				*len = (size_t)(nl - s);
				r->pos = (size_t)(nl + 1 - r->buf);
				*lineno = ++r->lineno;
				return 1;
			}
		}
		int rc = reader_fill(r);
		if (rc < 0)
			return -1;
		if (rc == 0) {
			/* A last line without '\n' (parts from other writers). */
			if (r->pos < r->verified) {
				*line = r->buf + r->pos;
				*len = r->verified - r->pos;
				r->pos = r->verified;
				*lineno = ++r->lineno;
				return 1;
			}
			return 0;
		}
	}
}

int
dd_lake_part_verify(const char *part_path, uint64_t *lines)
{
	struct dd_lake_meta m;
	int hm = dd_lake_meta_load(part_path, &m);
	if (hm < 0)
		return -1;
	struct dd_lake_reader *r = dd_lake_reader_open(part_path);
	if (r == NULL) {
		dd_lake_meta_free(&m);
		return -1;
	}
	const char *l;
	size_t n;
	uint64_t no, count = 0, raw = 0;
	int rc;
	while ((rc = dd_lake_reader_next(r, &l, &n, &no)) == 1) {
		count++;
		raw += n + 1;
	}
	dd_lake_reader_close(r);
	if (rc == 0 && hm == 1 && (count != m.events || raw != m.raw_bytes)) {
		dd_seterr("%s: holds %" PRIu64 " lines (%" PRIu64 " bytes), its metadata says %"
		    PRIu64 " (%" PRIu64 " bytes)", part_path, count, raw, m.events, m.raw_bytes);
		rc = -1;
	}
	dd_lake_meta_free(&m);
	if (lines)
		*lines = count;
	return rc < 0 ? -1 : 0;
}

/* ---------------------------------------------------------- maintenance */

/* Is a temporary (".….PID-HOST.tmp") stale? */
static int
tmp_stale(const char *name, time_t mtime, time_t now)
{
	if (now - mtime > STALE_TMP_SECS)
		return 1;
	size_t n = strlen(name);
	if (n < 4 + 1 + 8 + 1 || strcmp(name + n - 4, ".tmp"))
		return 0;
	const char *host = name + n - 4 - 8;
	if (host[-1] != '-')
		return 0;
	char hx[9];
	memcpy(hx, host, 8);
	hx[8] = '\0';
	char *end;
	unsigned long h = strtoul(hx, &end, 16);
	if (*end || (uint32_t)h != host_id())
		return 0;
	const char *dot = host - 1;
	const char *s = dot;
	while (s > name && s[-1] >= '0' && s[-1] <= '9')
		s--;
	if (s == dot || s == name || s[-1] != '.')
		return 0;
	long pid = strtol(s, NULL, 10);
	if (pid <= 0 || pid == (long)getpid())
		return 0;
	return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

int
dd_lake_clean_partition(const char *partition)
{
	DIR *d = opendir(partition);
	if (d == NULL) {
		if (errno == ENOENT)
			return 0;
		dd_seterr("%s: %s", partition, strerror(errno));
		return -1;
	}
	int removed = 0;
	time_t now = time(NULL);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *nm = de->d_name;
		size_t n = strlen(nm);
		int tmp = nm[0] == '.' && n > 4 && !strcmp(nm + n - 4, ".tmp");
		int meta = nm[0] == '_' && n > 5 && !strcmp(nm + n - 5, ".meta");
		if (!tmp && !meta)
			continue;
		char *p = path_join(partition, nm);
		struct stat sb;
		int stale = 0;
		if (lstat(p, &sb) == 0 && S_ISREG(sb.st_mode)) {
			if (tmp) {
				stale = tmp_stale(nm, sb.st_mtime, now);
			} else if (now - sb.st_mtime > STALE_META_SECS) {
				/* _BASE.meta without BASE.ndjson.zst */
				struct dd_buf part = { 0 };
				dd_buf_printf(&part, "%s/%.*s" PART_SUFFIX, partition, (int)(n - 6),
				    nm + 1);
				stale = access(part.p, F_OK) < 0 && errno == ENOENT;
				dd_buf_free(&part);
			}
		}
		if (stale && unlink(p) == 0)
			removed++;
		free(p);
	}
	closedir(d);
	return removed;
}

int
dd_lake_clean(const char *lake, const char *dataset)
{
	struct dd_lake_partition *ps;
	size_t n;
	if (dd_lake_partitions(lake, dataset, DD_LAKE_MIN_MS, DD_LAKE_MAX_MS, &ps, &n))
		return -1;
	int total = 0;
	for (size_t i = 0; i < n; i++) {
		int k = dd_lake_clean_partition(ps[i].path);
		if (k < 0) {
			dd_lake_partitions_free(ps, n);
			return -1;
		}
		total += k;
	}
	dd_lake_partitions_free(ps, n);
	return total;
}

/* ----------------------------------------------------------- compaction */

int
dd_lake_compact_partition(const char *lake, const char *dataset, int64_t day,
    const struct dd_lake_wopts *o, struct dd_lake_cstats *st)
{
	struct dd_lake_cstats dummy;
	if (st == NULL)
		st = &dummy;
	memset(st, 0, sizeof *st);
	if (!dd_lake_dataset_ok(dataset))
		return -1;
	char *dir = dd_lake_partition_path(lake, dataset, day);
	struct dd_lake_part *ps;
	size_t n;
	if (dd_lake_parts(dir, &ps, &n)) {
		free(dir);
		return -1;
	}
	st->parts_in = n;
	for (size_t i = 0; i < n; i++)
		st->bytes_in += ps[i].bytes;
	if (n == 0 || (n == 1 && ps[0].has_meta)) {
		/* Nothing to merge: one part written by this library holds no
		 * duplicate (its writer dropped them). */
		if (n == 1) {
			st->parts_out = 1;
			st->events_in = st->events_out = ps[0].meta.events;
			st->bytes_out = ps[0].bytes;
		}
		dd_lake_parts_free(ps, n);
		free(dir);
		return 0;
	}
	struct dd_lake_wopts wo;
	if (o)
		wo = *o;
	else
		dd_lake_wopts_defaults(&wo);
	wo.max_open = 1;	/* one partition */
	wo.max_age_ms = 0;
	wo.dedupe = 0;		/* done here, across all the parts */
	struct dd_lake_writer *w = dd_lake_writer_open(lake, dataset, &wo);
	if (w == NULL) {
		dd_lake_parts_free(ps, n);
		free(dir);
		return -1;
	}
	struct idset seen = { 0 };
	struct dd_buf bid = { 0 }, bsub = { 0 }, btype = { 0 };
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct dd_lake_reader *r = dd_lake_reader_open(ps[i].path);
		if (r == NULL) {
			rc = -1;
			break;
		}
		const char *l;
		size_t len;
		uint64_t no;
		int k;
		while ((k = dd_lake_reader_next(r, &l, &len, &no)) == 1) {
			st->events_in++;
			struct dd_env e;
			if (dd_env_scan(l, len, &e)) {
				/* Not written by a dd writer: leave the partition as it is
				 * rather than drop or move anything. */
				dd_seterr("%s:%" PRIu64 ": %s; partition not compacted", ps[i].path,
				    no, dd_errmsg());
				rc = -1;
				break;
			}
			if (dd_ms_to_days(e.time_ms) != day) {
				dd_seterr("%s:%" PRIu64 ": an event of another day; partition not"
				    " compacted", ps[i].path, no);
				rc = -1;
				break;
			}
			size_t idn, subn, typen;
			const char *id = dd_jstr_text(&e.id, &bid, &idn);
			const char *sub = dd_jstr_text(&e.subject, &bsub, &subn);
			const char *type = dd_jstr_text(&e.type, &btype, &typen);
			/* The same id at the same time is the same event (SPEC). */
			if (idset_check_add(&seen, dd_hash64(id, idn), (uint32_t)e.time_ms)) {
				st->duplicates++;
				continue;
			}
			if (dd_lake_add(w, l, len, e.time_ms, id, idn, sub, subn, type, typen) < 0) {
				rc = -1;
				break;
			}
			st->events_out++;
		}
		if (k < 0)
			rc = -1;
		dd_lake_reader_close(r);
	}
	idset_free(&seen);
	dd_buf_free(&bid);
	dd_buf_free(&bsub);
	dd_buf_free(&btype);
	if (rc) {
		dd_lake_writer_abort(w);
		dd_lake_parts_free(ps, n);
		free(dir);
		return -1;
	}
	/* The new parts are visible and durable before any old one goes. */
	if (dd_lake_commit(w)) {
		dd_lake_writer_abort(w);
		dd_lake_parts_free(ps, n);
		free(dir);
		return -1;
	}
	struct dd_lake_wstats ws;
	dd_lake_wstats(w, &ws);
	st->parts_out = ws.parts;
	st->bytes_out = ws.out_bytes;
	dd_lake_writer_close(w);
	for (size_t i = 0; i < n; i++) {
		char *mp = meta_path(ps[i].path);
		if (unlink(ps[i].path) < 0 && errno != ENOENT) {
			dd_seterr("%s: %s", ps[i].path, strerror(errno));
			rc = -1;
		}
		if (mp && unlink(mp) < 0 && errno != ENOENT) {
			dd_seterr("%s: %s", mp, strerror(errno));
			rc = -1;
		}
		free(mp);
	}
	if (dd_fsync_dir(dir))
		rc = -1;
	dd_lake_parts_free(ps, n);
	free(dir);
	return rc;
}
