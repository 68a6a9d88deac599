/*
 * What the lake's writer, reader and maintenance share (lake-int.h): the
 * names of partitions, parts and their files, the sets a part's metadata
 * is made of and its encoding. The format is in lake.h; one definition of
 * each rule keeps the writer, the readers and the cleaner agreeing on it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ddtime.h"
#include "lake.h"
#include "lake-int.h"
#include "util.h"

/* ----------------------------------------------------------------- names */

char *
lake_path_join(const char *a, const char *b)
{
	struct dd_buf p = { 0 };
	dd_buf_printf(&p, "%s/%s", a, b);
	return p.p;
}

/* 8 hex digits naming this host in temporaries, so a cleaner never
 * judges another machine's writer by a local process id. */
uint32_t
lake_host_id(void)
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

/*
 * A part name: the wall-clock time it is taken (UTC, to the nanosecond),
 * and 64 random bits. Taken just before the part becomes visible, and
 * strictly increasing within a process, so within a partition names sort
 * in write order, even between writers started in the same second (two
 * processes would need the same nanosecond to tie, and then the random
 * bits decide).
 */
void
lake_new_name(char out[LAKE_NAME_MAX])
{
	static uint64_t last;	/* ns of the last name, any thread */
	uint64_t r;
	if (getrandom(&r, sizeof r, 0) != sizeof r) {
		/* No entropy source: mix what differs between two openings. */
		static uint64_t n;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t v[4] = { (uint64_t)ts.tv_sec, (uint64_t)ts.tv_nsec,
		    (uint64_t)getpid(), __atomic_add_fetch(&n, 1, __ATOMIC_RELAXED) };
		r = dd_hash64(v, sizeof v);
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	uint64_t prev = __atomic_load_n(&last, __ATOMIC_RELAXED), want;
	do {
		want = ns > prev ? ns : prev + 1;
	} while (!__atomic_compare_exchange_n(&last, &prev, want, 0, __ATOMIC_RELAXED,
	    __ATOMIC_RELAXED));
	time_t sec = (time_t)(want / 1000000000u);
	struct tm tm;
	gmtime_r(&sec, &tm);
	size_t n = strftime(out, 24, "%Y%m%dT%H%M%S", &tm);
	snprintf(out + n, LAKE_NAME_MAX - n, ".%09uZ-%016" PRIx64,
	    (unsigned)(want % 1000000000u), r);
}

/*
 * The name of the k-th part (k from 1) a compaction writes in place of
 * parts whose last, in name order, is after: after's own NAME (without a
 * compaction suffix) and "~" with a 6-digit generation past after's, so
 * the new parts sort right after the last one they replace and before
 * any part written later, and a name is never reused.
 */
void
lake_compact_name(const char *after, unsigned k, char out[LAKE_NAME_MAX])
{
	size_t n = strlen(after);
	unsigned gen = 0;
	const char *t = strrchr(after, '~');
	if (t && strlen(t) == 7 && strspn(t + 1, "0123456789") == 6) {
		gen = (unsigned)atoi(t + 1);
		n = (size_t)(t - after);
	}
	if (n > LAKE_NAME_MAX - 8)
		n = LAKE_NAME_MAX - 8;
	snprintf(out, LAKE_NAME_MAX, "%.*s~%06u", (int)n, after, (gen + k) % 1000000);
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

void
lake_day_dirs(struct dd_buf *b, int64_t day)
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
	lake_day_dirs(&b, day);
	return b.p;
}

/* The metadata path of a part path: DIR/BASE.ndjson.zst -> DIR/_BASE.meta.
 * NULL when the name is not a part's. */
char *
lake_meta_path(const char *part)
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

static void (*odd_hook)(const char *msg);

int
lake_opendir(const char *dir, DIR **d)
{
	*d = opendir(dir);
	if (*d == NULL && errno == ENOTDIR) {
		/* A file named like a partition holds no part. */
		if (odd_hook) {
			struct dd_buf b = { 0 };
			dd_buf_printf(&b, "%s: not a directory, skipped", dir);
			odd_hook(b.p);
			dd_buf_free(&b);
		}
		return 0;
	}
	if (*d == NULL && errno != ENOENT) {
		dd_seterr("%s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

void
dd_lake_set_odd_hook(void (*fn)(const char *msg))
{
	odd_hook = fn;
}

static const char *
mode_kind(mode_t m)
{
	return S_ISFIFO(m) ? "a FIFO" : S_ISDIR(m) ? "a directory" : S_ISSOCK(m) ? "a socket" :
	    S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device" :
	    S_ISLNK(m) ? "a symbolic link" : "not a file";
}

void
lake_odd(const char *path, mode_t mode)
{
	if (odd_hook == NULL)
		return;
	struct dd_buf b = { 0 };
	dd_buf_printf(&b, "%s: not a regular file (%s), skipped", path, mode_kind(mode));
	odd_hook(b.p);
	dd_buf_free(&b);
}

int
lake_open_regular(const char *path, struct stat *sb)
{
	memset(sb, 0, sizeof *sb);
	/* O_NONBLOCK: opening a FIFO for reading would wait for a writer. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		/* A socket cannot be opened at all (ENXIO): what is it? */
		if (e != ENOENT && stat(path, sb) == 0 && !S_ISREG(sb->st_mode)) {
			dd_seterr("%s: not a regular file (%s)", path, mode_kind(sb->st_mode));
			errno = ENODEV;
			return -1;
		}
		dd_seterr("%s: %s", path, strerror(e));
		errno = e;
		return -1;
	}
	if (fstat(fd, sb) < 0) {
		int e = errno;
		dd_seterr("%s: %s", path, strerror(e));
		close(fd);
		errno = e;
		return -1;
	}
	if (!S_ISREG(sb->st_mode)) {
		dd_seterr("%s: not a regular file (%s)", path, mode_kind(sb->st_mode));
		close(fd);
		errno = ENODEV;
		return -1;
	}
	/* Reads of a regular file never block anyway; clear the flag so
	 * nothing later mistakes it for a pipe. */
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	return fd;
}

int
lake_is_part_name(const char *name)
{
	size_t n = strlen(name), sl = strlen(PART_SUFFIX);
	return name[0] != '.' && name[0] != '_' && n > sl && !strcmp(name + n - sl, PART_SUFFIX);
}

/*
 * Is base the name of a part the writer made ("part-" lake_new_name(),
 * maybe a compaction's "~NNNNNN", ".ndjson.zst"; or the older names of
 * whole seconds)? Such a part has a checksum on every frame, so a frame
 * without one is damage (a corrupt header can clear the flag and still
 * decode); other writers' parts (DuckDB, Spark) may have none.
 */
static int
name_matches(const char *s, const char *pat, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (pat[i] == 'D' ? !(c >= '0' && c <= '9') :
		    pat[i] == 'X' ? !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) :
		    c != pat[i])
			return 0;
	}
	return 1;
}

int
lake_own_part_name(const char *base)
{
	static const char old[] = "part-DDDDDDDDTDDDDDDZ-XXXXXXXXXXXXXXXX";
	static const char cur[] = "part-DDDDDDDDTDDDDDD.DDDDDDDDDZ-XXXXXXXXXXXXXXXX";
	static const char gen[] = "~DDDDDD";
	size_t n = strlen(base), sl = strlen(PART_SUFFIX);
	if (n <= sl || strcmp(base + n - sl, PART_SUFFIX))
		return 0;
	n -= sl;
	size_t stem = n;
	if (n > sizeof gen - 1 && name_matches(base + n - (sizeof gen - 1), gen, sizeof gen - 1))
		stem = n - (sizeof gen - 1);
	return (stem == sizeof old - 1 && name_matches(base, old, stem)) ||
	    (stem == sizeof cur - 1 && name_matches(base, cur, stem));
}

/* ------------------------------------------------------ hash sets, Bloom */

void
lake_idset_free(struct idset *s)
{
	free(s->h);
	free(s->off);
	dd_buf_free(&s->arena);
	memset(s, 0, sizeof *s);
}

/* Place (h, off) in the first empty slot of its probe sequence. */
static void
idset_place(struct idset *s, uint64_t h, uint64_t off)
{
	size_t mask = s->cap - 1, i = (size_t)dd_slot(h) & mask;
	while (s->h[i])
		i = (i + 1) & mask;
	s->h[i] = h;
	s->off[i] = off;
}

static void
idset_reserve(struct idset *s)
{
	if ((s->n + 1) * 4 <= s->cap * 3)
		return;
	struct idset old = *s;
	s->cap = old.cap ? old.cap * 2 : 1024;
	s->h = dd_calloc(s->cap, sizeof *s->h);
	s->off = dd_malloc(s->cap * sizeof *s->off);
	for (size_t i = 0; i < old.cap; i++)
		if (old.h[i])
			idset_place(s, old.h[i], old.off[i]);
	free(old.h);
	free(old.off);
}

void
lake_idset_put_hash(struct idset *s, uint64_t h)
{
	if (h == 0) {
		s->zero = 1;
		h = 1;
	}
	idset_reserve(s);
	idset_place(s, h, 0);
	s->n++;
}

int
lake_idset_check_add(struct idset *s, uint64_t h, const char *id, size_t n,
    uint64_t val, uint64_t *old)
{
	if (h == 0) {
		s->zero = 1;
		h = 1;
	}
	idset_reserve(s);
	size_t mask = s->cap - 1, i = (size_t)dd_slot(h) & mask;
	for (; s->h[i]; i = (i + 1) & mask) {
		if (s->h[i] != h || s->off[i] == 0)
			continue;
		/* Same hash: the same id only if the bytes are. */
		const char *e = s->arena.p + s->off[i] - 1;
		uint32_t len;
		memcpy(&len, e + 8, 4);
		if (len == n && memcmp(e + 12, id, n) == 0) {
			if (old)
				memcpy(old, e, 8);
			return 1;
		}
	}
	/* The empty slot that ended the search is where it goes. */
	uint32_t len = (uint32_t)n;
	s->h[i] = h;
	s->off[i] = s->arena.len + 1;
	dd_buf_add(&s->arena, &val, 8);
	dd_buf_add(&s->arena, &len, 4);
	dd_buf_add(&s->arena, id, n);
	s->n++;
	return 0;
}

/* The public face of struct idset (lake.h). */
struct dd_lake_idset {
	struct idset s;
};

struct dd_lake_idset *
dd_lake_idset_new(void)
{
	return dd_calloc(1, sizeof(struct dd_lake_idset));
}

int
dd_lake_idset_add(struct dd_lake_idset *s, const char *id, size_t n, uint64_t val,
    uint64_t *old)
{
	return lake_idset_check_add(&s->s, dd_hash64(id, n), id, n, val, old);
}

void
dd_lake_idset_free(struct dd_lake_idset *s)
{
	if (s == NULL)
		return;
	lake_idset_free(&s->s);
	free(s);
}

void
lake_hset_free(struct hset *s)
{
	free(s->h);
	memset(s, 0, sizeof *s);
}

/* 1 when present; else adds it and returns 0. */
int
lake_hset_add(struct hset *s, uint64_t h)
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
			size_t j = (size_t)dd_slot(old.h[i]) & (s->cap - 1);
			while (s->h[j])
				j = (j + 1) & (s->cap - 1);
			s->h[j] = old.h[i];
		}
		free(old.h);
	}
	size_t mask = s->cap - 1, i = (size_t)dd_slot(h) & mask;
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

void
lake_tmap_inc(struct tmap *m, const char *s, size_t len)
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

void
lake_tmap_free(struct tmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->v[i].name);
	free(m->v);
	memset(m, 0, sizeof *m);
}

/* -------------------------------------------------------- metadata */

static int
cmp_tcount(const void *a, const void *b)
{
	const struct tcount *x = *(const struct tcount *const *)a;
	const struct tcount *y = *(const struct tcount *const *)b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->name, y->name, n);
	return c ? c : (x->len > y->len) - (x->len < y->len);
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
void
lake_meta_build(const struct meta_src *p, struct dd_buf *b)
{
	char t1[DD_TIMEBUF], t2[DD_TIMEBUF], t3[DD_TIMEBUF];
	dd_time_format(p->min_ms, t1);
	dd_time_format(p->max_ms, t2);
	dd_time_format(dd_now_ms(), t3);
	uint64_t idkeys = p->ids->n + (uint64_t)p->ids->zero;
	uint64_t ibits = bloom_bits(idkeys), sbits = bloom_bits(p->subjects->n);
	dd_buf_printf(b, "{\"format\":\"" META_FORMAT "\",\"part\":\"part-%s" PART_SUFFIX
	    "\",\"partBytes\":%" PRIu64 ",\"contentChecksum\":\"%02x%02x%02x%02x\""
	    ",\"frames\":%" PRIu64 ",\"events\":%" PRIu64 ",\"rawBytes\":%" PRIu64
	    ",\"minTimeMs\":%" PRId64 ",\"maxTimeMs\":%" PRId64
	    ",\"minTime\":\"%s\",\"maxTime\":\"%s\",\"types\":{",
	    p->name, p->part_bytes, p->lastsum[0], p->lastsum[1], p->lastsum[2], p->lastsum[3],
	    p->frames, p->events, p->raw_bytes, p->min_ms, p->max_ms, t1, t2);
	/* Types in name order, so equal parts have equal metadata. */
	const struct tcount **tv = dd_calloc(p->types->n, sizeof *tv);
	size_t nt = 0;
	for (size_t i = 0; i < p->types->cap; i++)
		if (p->types->v[i].name)
			tv[nt++] = &p->types->v[i];
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
	meta_bloom_json(b, "subjects", p->subjects->n, sbits, ibits / 8);
	if (p->unique)
		dd_buf_printf(b, ",\"unique\":true,\"checked\":%s", p->unique);
	if (p->extra)
		dd_buf_adds(b, p->extra);
	dd_buf_printf(b, ",\"timeOrdered\":%s,\"written\":\"%s\"}\n",
	    p->time_ordered ? "true" : "false", t3);

	size_t base = b->len;
	dd_buf_grow(b, (size_t)(ibits / 8 + sbits / 8));
	memset(b->p + base, 0, (size_t)(ibits / 8 + sbits / 8));
	unsigned char *ib = (unsigned char *)b->p + base, *sb = ib + ibits / 8;
	for (size_t i = 0; i < p->ids->cap; i++)
		if (p->ids->h[i])
			bloom_set(ib, ibits, BLOOM_HASHES, p->ids->h[i]);
	if (p->ids->zero)
		bloom_set(ib, ibits, BLOOM_HASHES, 0);
	for (size_t i = 0; i < p->subjects->cap; i++)
		if (p->subjects->h[i])
			bloom_set(sb, sbits, BLOOM_HASHES, p->subjects->h[i]);
	if (p->subjects->zero)
		bloom_set(sb, sbits, BLOOM_HASHES, 0);
	b->len += (size_t)(ibits / 8 + sbits / 8);
}
