/*
 * libFuzzer target: the lake part reader (dd_lake_reader_*, verify) and
 * the metadata loader, on damaged files written into a scratch partition.
 * The reader must report damage, never crash, and never hand out a byte
 * that did not go in.
 *
 * The first byte chooses the mode:
 *   0  the rest is the part file as it is (any bytes);
 *   1  6 control bytes, then lines: the lines are compressed into a part
 *      the way the writer makes one (frames on line boundaries, with
 *      checksums), then one fault is applied (none, truncation, a byte
 *      flipped, junk appended, a byte range overwritten). The reader must
 *      hand out exactly the original lines, in order, up to where it
 *      reports damage, and all of them when there is none; verify must
 *      agree with it;
 *   2  2 bytes of length L, L bytes of part, the rest is its metadata
 *      file: the loader must refuse or describe the part consistently.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "lake.h"
#include "util.h"

static char dir[64], part[128], meta[128];

static void
cleanup(void)
{
	unlink(part);
	unlink(meta);
	rmdir(dir);
}

static void
setup(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof dir, "%s/dd-fuzz-lakepart.XXXXXX", base);
	if (mkdtemp(dir) == NULL)
		abort();
	/* Named as the writer names parts: every frame must have a checksum. */
	snprintf(part, sizeof part, "%s/part-20261126T000000Z-0123456789abcdef.ndjson.zst", dir);
	snprintf(meta, sizeof meta, "%s/_part-20261126T000000Z-0123456789abcdef.meta", dir);
	atexit(cleanup);
}

static void
put(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || (n && write(fd, p, n) != (ssize_t)n) || close(fd))
		abort();
}

static void __attribute__((noreturn))
fail(const char *what)
{
	fprintf(stderr, "fuzz-lakepart: %s (%s)\n", what, dd_errmsg());
	abort();
}

/* Read the part to its end or its first fault; the lines in *lines. */
static int
read_part(struct dd_buf *lines, uint64_t *count)
{
	struct dd_lake_reader *r = dd_lake_reader_open(part);
	if (r == NULL)
		fail("cannot open the part");
	const char *l;
	size_t n;
	uint64_t no;
	int rc;
	*count = 0;
	while ((rc = dd_lake_reader_next(r, &l, &n, &no)) == 1) {
		if (no != ++*count || memchr(l, '\n', n))
			fail("line numbers out of step, or a line holding a newline");
		dd_buf_add(lines, l, n);
		dd_buf_addc(lines, '\n');
	}
	/* After the end or a fault, it stays there. */
	if (dd_lake_reader_next(r, &l, &n, &no) != rc)
		fail("the reader moved past its end");
	dd_lake_reader_close(r);
	if (rc < 0 && strstr(dd_errmsg(), part) == NULL)
		fail("a fault that does not name the part");
	return rc;
}

/* Lines compressed as the writer does, then one fault. */
static void
structured(const uint8_t *c, const uint8_t *text, size_t n)
{
	struct dd_buf raw = { 0 }, z = { 0 };
	dd_buf_add(&raw, text, n);
	if (raw.len == 0 || raw.p[raw.len - 1] != '\n')
		dd_buf_addc(&raw, '\n');
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, c[0] % 4 - 1);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, c[0] >> 7);
	int per = c[1] % 4 + 1;	/* lines per frame */
	for (size_t i = 0; i < raw.len;) {
		size_t j = i;
		for (int k = 0; k < per && j < raw.len; k++)
			j = (size_t)((char *)memchr(raw.p + j, '\n', raw.len - j) - raw.p) + 1;
		size_t bound = ZSTD_compressBound(j - i);
		dd_buf_grow(&z, bound);
		size_t got = ZSTD_compress2(cc, z.p + z.len, bound, raw.p + i, j - i);
		if (ZSTD_isError(got))
			abort();
		z.len += got;
		i = j;
	}
	ZSTD_freeCCtx(cc);
	size_t pos = ((size_t)c[3] << 8 | c[4]) % z.len;
	int fault = c[2] % 5;
	switch (fault) {
	case 1:	/* truncated */
		z.len = pos;
		break;
	case 2:	/* one byte flipped */
		z.p[pos] ^= c[5] ? c[5] : 1;
		break;
	case 3:	/* junk after the last frame */
		dd_buf_add(&z, c, c[5] % 6 + 1);
		break;
	case 4:	/* a range overwritten */
		for (size_t k = pos; k < z.len && k < pos + 1 + c[5] % 16; k++)
			z.p[k] = (char)c[k % 6];
		break;
	}
	put(part, z.p, z.len);
	struct dd_buf out = { 0 };
	uint64_t count, vcount;
	int rc = read_part(&out, &count);
	if (getenv("FUZZ_DEBUG"))
		fprintf(stderr, "fault %d: %d, %zu of %zu bytes (%s)\n", fault, rc, out.len, raw.len,
		    rc ? dd_errmsg() : "sound");
	/* Exactly the first lines that went in. */
	if (out.len > raw.len || (out.len && memcmp(out.p, raw.p, out.len)))
		fail("the reader handed out bytes that did not go in");
	if (fault == 0 && (rc != 0 || out.len != raw.len))
		fail("a sound part was not read whole");
	int v = dd_lake_part_verify(part, &vcount);
	if ((v == 0) != (rc == 0) || vcount != count)
		fail("verify and the reader disagree");
	dd_buf_free(&out);
	dd_buf_free(&raw);
	dd_buf_free(&z);
}

static void
check_bloom(const struct dd_lake_meta *m, const struct dd_lake_bloom *b)
{
	if (b->p < (const unsigned char *)m->buf ||
	    b->p + b->bits / 8 > (const unsigned char *)m->buf + m->buflen)
		fail("a Bloom filter outside its metadata");
}

static void
with_meta(const uint8_t *data, size_t size)
{
	if (size < 2)
		return;
	size_t l = (size_t)data[0] << 8 | data[1];
	data += 2;
	size -= 2;
	if (l > size)
		l = size;
	put(part, data, l);
	put(meta, data + l, size - l);
	struct dd_lake_meta m;
	int hm = dd_lake_meta_load(part, &m);
	if (getenv("FUZZ_DEBUG"))
		fprintf(stderr, "metadata: %d\n", hm);
	if (hm == 1) {
		check_bloom(&m, &m.ids);
		check_bloom(&m, &m.subjects);
		if (m.part_bytes != l)
			fail("metadata of another part taken");
	}
	(void)dd_lake_may_have_id(&m, "d-1:t:0", 7);
	(void)dd_lake_may_have_subject(&m, "d-1", 3);
	(void)dd_lake_may_have_time(&m, 0, INT64_MAX);
	dd_lake_meta_free(&m);
	struct dd_lake_part *ps;
	size_t np;
	if (dd_lake_parts(dir, &ps, &np) == 0) {
		if (np != 1)
			fail("the part is not listed once");
		if (ps[0].has_meta) {
			check_bloom(&ps[0].meta, &ps[0].meta.ids);
			(void)dd_lake_may_have_id(&ps[0].meta, "x", 1);
		}
		dd_lake_parts_free(ps, np);
	}
	uint64_t count;
	(void)dd_lake_part_verify(part, &count);
	unlink(meta);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (dir[0] == '\0')
		setup();
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0: {
		put(part, data + 1, size - 1);
		struct dd_buf out = { 0 };
		uint64_t count, vcount;
		int rc = read_part(&out, &count);
		int v = dd_lake_part_verify(part, &vcount);
		if ((v == 0) != (rc == 0) || vcount != count)
			fail("verify and the reader disagree");
		dd_buf_free(&out);
		break;
	}
	case 1:
		if (size >= 7)
			structured(data + 1, data + 7, size - 7);
		break;
	case 2:
		with_meta(data + 1, size - 1);
		break;
	}
	return 0;
}
