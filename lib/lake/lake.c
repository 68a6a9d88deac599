/*
 * What the lake's writer, reader and maintenance share (lake-int.h): the
 * names of partitions, parts and their files, the sets a part's metadata
 * is made of and its encoding. The format is in lake.h; one definition of
 * each rule keeps the writer, the readers and the cleaner agreeing on it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
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

/* A part name: open time (UTC, to the second) and 64 random bits. */
void
lake_new_name(char out[40])
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

int
lake_opendir(const char *dir, DIR **d)
{
	*d = opendir(dir);
	if (*d == NULL && errno != ENOENT) {
		dd_seterr("%s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

int
lake_is_part_name(const char *name)
{
	size_t n = strlen(name), sl = strlen(PART_SUFFIX);
	return name[0] != '.' && name[0] != '_' && n > sl && !strcmp(name + n - sl, PART_SUFFIX);
}

/*
 * Is base the name of a part the writer made ("part-" lake_new_name()
 * ".ndjson.zst")? Such a part has a checksum on every frame, so a frame
 * without one is damage (a corrupt header can clear the flag and still
 * decode); other writers' parts (DuckDB, Spark) may have none.
 */
int
lake_own_part_name(const char *base)
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

/* ------------------------------------------------------ hash sets, Bloom */

void
lake_idset_free(struct idset *s)
{
	free(s->h);
	free(s->t);
	memset(s, 0, sizeof *s);
}

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
			lake_idset_put(s, old.h[i], old.t[i]);
	free(old.h);
	free(old.t);
}

void
lake_idset_put(struct idset *s, uint64_t h, uint32_t t)
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
int
lake_idset_check_add(struct idset *s, uint64_t h, uint32_t t)
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
	dd_buf_printf(b, ",\"written\":\"%s\"}\n", t3);

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
