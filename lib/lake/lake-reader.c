/*
 * The lake's readers (lake.h): the partitions of a dataset, the parts of
 * a partition with their metadata, and one part's lines, each zstd frame
 * verified before any of its lines is handed out.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "ddtime.h"
#include "json.h"
#include "lake.h"
#include "lake-int.h"
#include "util.h"

/* A reader refuses frames bigger than this (foreign files): the largest
 * line the filters accept (1 GiB) plus a frame. */
#define READER_FRAME_MAX (((size_t)1 << 30) + 2 * DD_LAKE_FRAME)
/* A part up to this size is read whole, and its frames decoded in one
 * call each, straight into the line buffer; bigger ones are streamed. */
#define READER_WHOLE_MAX ((size_t)8 << 20)

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
	char *root = lake_path_join(lake, dataset);
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
	char *mp = lake_meta_path(part);
	if (mp == NULL)
		return 0;
	struct stat sb;
	int fd = lake_open_regular(mp, &sb);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT || e == ENODEV) {
			/* No metadata, or something odd in its place: the part
			 * is scanned in full. */
			if (e == ENODEV)
				lake_odd(mp, sb.st_mode);
			free(mp);
			return 0;
		}
		free(mp);
		return -1;
	}
	if (sb.st_size > ((off_t)1 << 32)) {
		dd_seterr("%s: too large", mp);
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
	/* Written by writers that check (lake-unique.c); absent, it is no. */
	struct dd_jval u;
	if (dd_json_get(&o, "unique", 6, &u) && u.type == DD_JTRUE &&
	    dd_json_get(&o, "checked", 7, &u) && u.type == DD_JARR) {
		m->unique = 1;
		m->checked = u;
	}
	struct dd_jval to;
	m->time_ordered = dd_json_get(&o, "timeOrdered", 11, &to) && to.type == DD_JTRUE;
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

/* Size and last four bytes of a part file. 0, or -1 (dd_errmsg(); errno
 * ENOENT when it is gone, ENODEV when it is not a regular file, *mode
 * then saying what it is). */
static int
part_tail(const char *path, uint64_t *size, unsigned char sum[4], mode_t *mode, int *keep)
{
	struct stat sb;
	int fd = lake_open_regular(path, &sb);
	*mode = sb.st_mode;
	if (fd < 0)
		return -1;
	*size = (uint64_t)sb.st_size;
	memset(sum, 0, 4);
	if (sb.st_size >= 4 && pread(fd, sum, 4, sb.st_size - 4) != 4) {
		dd_seterr("%s: %s", path, strerror(errno ? errno : EIO));
		close(fd);
		return -1;
	}
	if (keep)
		*keep = fd;
	else
		close(fd);
	return 0;
}

int
dd_lake_meta_load(const char *part_path, struct dd_lake_meta *m)
{
	uint64_t size;
	unsigned char sum[4];
	mode_t mode;
	memset(m, 0, sizeof *m);
	if (part_tail(part_path, &size, sum, &mode, NULL))
		return -1;
	return meta_load(part_path, size, sum, m);
}

static int
cmp_part(const void *a, const void *b)
{
	return strcmp(((const struct dd_lake_part *)a)->name,
	    ((const struct dd_lake_part *)b)->name);
}

/* Raise the soft limit of open files to the hard one, once: a snapshot of
 * a partition holds every part open. 0 when it was raised. */
static int
more_files(void)
{
	static int done;
	struct rlimit rl;
	if (done || getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return -1;
	done = 1;
	rl.rlim_cur = rl.rlim_max;
	return setrlimit(RLIMIT_NOFILE, &rl);
}

/*
 * One listing of the partition, every part opened. 1 when a listed part
 * was gone by the time it was opened (a compaction finished meanwhile:
 * list again), 0 when every part listed is open, -1 on error.
 */
static int
parts_list(const char *partition, struct dd_lake_part **out, size_t *n)
{
	DIR *d;
	if (lake_opendir(partition, &d))
		return -1;
	if (d == NULL)
		return 0;
	size_t cap = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!lake_is_part_name(de->d_name))
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			*out = dd_realloc(*out, cap * sizeof **out);
		}
		struct dd_lake_part *p = &(*out)[*n];
		memset(p, 0, sizeof *p);
		p->fd = -1;
		p->path = lake_path_join(partition, de->d_name);
		p->name = strrchr(p->path, '/') + 1;
		(*n)++;
	}
	closedir(d);
	if (*n)		/* qsort(NULL, 0, ...) is undefined behaviour */
		qsort(*out, *n, sizeof **out, cmp_part);
	for (size_t i = 0; i < *n; i++) {
		struct dd_lake_part *p = &(*out)[i];
		unsigned char sum[4];
		mode_t mode;
		int rc = part_tail(p->path, &p->bytes, sum, &mode, &p->fd);
		if (rc && errno == EMFILE && more_files() == 0)
			rc = part_tail(p->path, &p->bytes, sum, &mode, &p->fd);
		if (rc) {
			if (errno == ENOENT)
				return 1;
			if (errno == ENODEV) {
				/* Not a regular file: not a part, whatever its name. */
				lake_odd(p->path, mode);
				free(p->path);
				memmove(p, p + 1, (*n - i - 1) * sizeof *p);
				(*n)--;
				i--;
				continue;
			}
			return -1;
		}
		/* Metadata that cannot be read or parsed only costs a full scan
		 * of its part (dd_lake_part_verify reports it). */
		p->has_meta = meta_load(p->path, p->bytes, sum, &p->meta) == 1;
	}
	return 0;
}

/* Listings tried before a partition that keeps changing is an error. */
#define SNAPSHOT_TRIES 100

int
dd_lake_parts(const char *partition, struct dd_lake_part **out, size_t *n)
{
	/*
	 * A snapshot: every listed part is opened before any is read, and an
	 * open file stays readable after a compaction removes it. A part gone
	 * before it was opened means a compaction finished between the
	 * listing and the opening (its new parts, visible before any old one
	 * goes, may be missing from the listing): list again. So the parts
	 * returned are the partition at one moment: before a compaction,
	 * after it, or between its renames, where the old parts are all there
	 * and sort before the new ones that copy them.
	 */
	for (int t = 0; t < SNAPSHOT_TRIES; t++) {
		*out = NULL;
		*n = 0;
		int rc = parts_list(partition, out, n);
		if (rc == 0)
			return 0;
		dd_lake_parts_free(*out, *n);
		*out = NULL;
		*n = 0;
		if (rc < 0)
			return -1;
	}
	dd_seterr("%s: the partition changed under every one of %d listings", partition,
	    SNAPSHOT_TRIES);
	return -1;
}

void
dd_lake_parts_free(struct dd_lake_part *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].path);
		if (p[i].fd >= 0)
			close(p[i].fd);
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

int
dd_lake_part_stored(const struct dd_lake_part *p)
{
	return p->has_meta && lake_own_part_name(p->name);
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
	int started;		/* the first fill tried to read the part whole */
	int stream;		/* frames are decoded by ZSTD_decompressStream */
	uint64_t inoff;		/* file offset of in[0] */
	uint64_t fstart;	/* file offset of the current frame */
};

static struct dd_lake_reader *reader_new(const char *part_path, int fd);

struct dd_lake_reader *
dd_lake_reader_open(const char *part_path)
{
	struct stat sb;
	int fd = lake_open_regular(part_path, &sb);
	if (fd < 0)
		return NULL;
	return reader_new(part_path, fd);
}

struct dd_lake_reader *
dd_lake_reader_open_part(const struct dd_lake_part *p)
{
	if (p->fd < 0)
		return dd_lake_reader_open(p->path);
	/* Its own file offset: pread for the checksum flags, read for data. */
	int fd = fcntl(p->fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		dd_seterr("%s: %s", p->path, strerror(errno));
		return NULL;
	}
	if (lseek(fd, 0, SEEK_SET) < 0) {
		dd_seterr("%s: %s", p->path, strerror(errno));
		close(fd);
		return NULL;
	}
	return reader_new(p->path, fd);
}

static struct dd_lake_reader *
reader_new(const char *part_path, int fd)
{
	struct dd_lake_reader *r = dd_calloc(1, sizeof *r);
	r->path = dd_strdup(part_path);
	r->fd = fd;
	const char *base = strrchr(part_path, '/');
	r->own = lake_own_part_name(base ? base + 1 : part_path);
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

/* Does the frame whose first five bytes are h carry a checksum? Its
 * header says so (RFC 8878: bit 2 of the byte after the magic number).
 * Skippable frames hold no lines and need none. */
static int
header_has_checksum(const unsigned char *h)
{
	uint32_t magic = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 |
	    (uint32_t)h[3] << 24;
	if ((magic & 0xfffffff0u) == ZSTD_MAGIC_SKIPPABLE_START)
		return 1;
	return magic == ZSTD_MAGICNUMBER && (h[4] & 4);
}

/* The same for the frame that just ended (at fstart), from the file. */
static int
frame_has_checksum(struct dd_lake_reader *r)
{
	unsigned char h[5];
	if (pread(r->fd, h, sizeof h, (off_t)r->fstart) != (ssize_t)sizeof h)
		return 0;
	return header_has_checksum(h);
}

/* First fill: a part small enough is read whole into in. A read error
 * is left for the streamed reads to meet and report. */
static void
reader_whole(struct dd_lake_reader *r)
{
	struct stat sb;
	r->started = 1;
	if (fstat(r->fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size <= 0 ||
	    (uint64_t)sb.st_size > READER_WHOLE_MAX)
		return;
	size_t size = (size_t)sb.st_size, got = 0;
	if (size > r->incap) {
		free(r->in);
		r->in = dd_malloc(size);
		r->incap = size;
	}
	while (got < size) {
		ssize_t k = read(r->fd, r->in + got, size - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	r->inlen = got;
}

/* At a frame's start with the whole frame in memory and its size in its
 * header (as this writer makes them): decode it in one call, straight
 * into buf, its checksum verified. 1 done, 0 when it must be streamed
 * (a frame cut short, or without its size: the stream tells), -1 on a
 * damaged frame. */
static int
reader_frame(struct dd_lake_reader *r)
{
	const unsigned char *src = r->in + r->inpos;
	size_t avail = r->inlen - r->inpos;
	size_t csize = ZSTD_findFrameCompressedSize(src, avail);
	if (ZSTD_isError(csize))
		return 0;
	unsigned long long fcs = ZSTD_getFrameContentSize(src, csize);
	if (fcs == ZSTD_CONTENTSIZE_UNKNOWN || fcs == ZSTD_CONTENTSIZE_ERROR ||
	    fcs > READER_FRAME_MAX)
		return 0;
	while (r->cap - r->len < fcs) {
		r->cap *= 2;
		r->buf = dd_realloc(r->buf, r->cap);
	}
	r->fstart = r->inoff + r->inpos;
	size_t n = ZSTD_decompressDCtx(r->dctx, r->buf + r->len, r->cap - r->len, src, csize);
	if (ZSTD_isError(n))
		return reader_fail(r, ZSTD_getErrorName(n));
	if (r->own && csize >= 5 && !header_has_checksum(src))
		return reader_fail(r, "zstd frame without a checksum");
	r->inpos += csize;
	r->len += n;
	r->done = 1;
	return 1;
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
	if (!r->started)
		reader_whole(r);
	for (;;) {
		if (!r->stream && !r->midframe && r->inpos < r->inlen) {
			int rc = reader_frame(r);
			if (rc < 0)
				return -1;
			if (rc == 0) {
				/* From here on the stream decodes, from a fresh
				 * session. */
				r->stream = 1;
				ZSTD_DCtx_reset(r->dctx, ZSTD_reset_session_only);
			} else if (r->len > r->verified) {
				r->verified = r->len;
				return 1;
			} else {
				continue;	/* an empty or skippable frame */
			}
		}
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
