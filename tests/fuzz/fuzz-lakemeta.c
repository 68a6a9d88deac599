/*
 * libFuzzer target: the _part-*.meta loader on its own (dd_lake_meta_load
 * and the listing dd_lake_parts that calls it), beside a fixed sound part.
 * Metadata is untrusted input (anyone can drop a file in the lake): the
 * loader must refuse it or describe the part consistently, and the Bloom
 * filters it hands out must lie inside the file's bytes; never a crash.
 *
 * The first byte chooses the mode:
 *   0  the rest is the metadata file as it is (any bytes);
 *   1  the metadata the writer would make for the part (lake_meta_build),
 *      then the rest of the input as edits: 3 bytes each, a 2-byte
 *      offset into the file and the byte to put there.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "lake.h"
#include "lake-int.h"
#include "util.h"

#define NAME "20261126T000000.000000000Z-0123456789abcdef"
static char dir[64], part[160], meta[160];
static struct dd_buf good;	/* the sound metadata of the part */

static void
cleanup(void)
{
	unlink(part);
	unlink(meta);
	rmdir(dir);
	dd_buf_free(&good);
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
	fprintf(stderr, "fuzz-lakemeta: %s (%s)\n", what, dd_errmsg());
	abort();
}

/* The part: two events in one checksummed frame, and its metadata. */
static void
setup(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof dir, "%s/dd-fuzz-lakemeta.XXXXXX", base);
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(part, sizeof part, "%s/part-" NAME ".ndjson.zst", dir);
	snprintf(meta, sizeof meta, "%s/_part-" NAME ".meta", dir);
	atexit(cleanup);
	static const char lines[] =
	    "{\"specversion\":\"1.0\",\"id\":\"e1\",\"source\":\"/t\",\"type\":\"x.a\","
	    "\"time\":\"2026-11-26T01:00:00Z\",\"subject\":\"s1\",\"data\":{}}\n"
	    "{\"specversion\":\"1.0\",\"id\":\"e2\",\"source\":\"/t\",\"type\":\"x.b\","
	    "\"time\":\"2026-11-26T02:00:00Z\",\"subject\":\"s2\",\"data\":{}}\n";
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
	char z[1024];
	size_t zn = ZSTD_compress2(cc, z, sizeof z, lines, sizeof lines - 1);
	ZSTD_freeCCtx(cc);
	if (ZSTD_isError(zn))
		abort();
	put(part, z, zn);
	struct idset ids = { 0 };
	struct hset subs = { 0 };
	struct tmap types = { 0 };
	lake_idset_check_add(&ids, dd_hash64("e1", 2), "e1", 2, 0, NULL);
	lake_idset_check_add(&ids, dd_hash64("e2", 2), "e2", 2, 0, NULL);
	lake_hset_add(&subs, dd_hash64("s1", 2));
	lake_hset_add(&subs, dd_hash64("s2", 2));
	lake_tmap_inc(&types, "x.a", 3);
	lake_tmap_inc(&types, "x.b", 3);
	lake_meta_build(&(struct meta_src){ .name = NAME, .part_bytes = zn, .frames = 1,
	    .events = 2, .raw_bytes = sizeof lines - 1,
	    .lastsum = (const unsigned char *)z + zn - 4,
	    .min_ms = 1795741200000LL, .max_ms = 1795744800000LL, .time_ordered = 1,
	    .ids = &ids, .subjects = &subs, .types = &types }, &good);
	lake_idset_free(&ids);
	lake_hset_free(&subs);
	lake_tmap_free(&types);
	/* The sound metadata loads. */
	put(meta, good.p, good.len);
	struct dd_lake_meta m;
	if (dd_lake_meta_load(part, &m) != 1 || m.events != 2 ||
	    !dd_lake_may_have_id(&m, "e1", 2) || !dd_lake_may_have_subject(&m, "s2", 2))
		fail("the sound metadata does not load");
	dd_lake_meta_free(&m);
}

/* What a loaded metadata says must hold together. */
static void
check(const struct dd_lake_meta *m)
{
	const struct dd_lake_bloom *b[2] = { &m->ids, &m->subjects };
	for (int i = 0; i < 2; i++) {
		const unsigned char *lo = (const unsigned char *)m->buf;
		if (b[i]->p < lo || b[i]->bits / 8 > m->buflen ||
		    b[i]->p + b[i]->bits / 8 > lo + m->buflen)
			fail("a Bloom filter outside the file");
		if (b[i]->hashes == 0 || b[i]->bits == 0)
			fail("an empty Bloom filter accepted");
	}
	/* Every probe reads inside the filter (ASan would see it). */
	for (uint64_t h = 0; h < 64; h++)
		(void)dd_lake_bloom_test(&m->ids, h * 0x9e3779b97f4a7c15ULL);
	(void)dd_lake_may_have_id(m, "e1", 2);
	(void)dd_lake_may_have_subject(m, "s1", 2);
	(void)dd_lake_may_have_time(m, 0, INT64_MAX);
	for (size_t i = 0; i < m->ntypes; i++)
		if (m->types[i].type == NULL)
			fail("a type without a name");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (dir[0] == '\0')
		setup();
	if (size < 1)
		return 0;
	if (data[0] % 2 == 0) {
		put(meta, data + 1, size - 1);
	} else {
		struct dd_buf b = { 0 };
		dd_buf_add(&b, good.p, good.len);
		for (size_t i = 1; i + 3 <= size; i += 3) {
			size_t off = (size_t)(data[i] | data[i + 1] << 8);
			if (off < b.len)
				b.p[off] = (char)data[i + 2];
		}
		put(meta, b.p, b.len);
		dd_buf_free(&b);
	}
	struct dd_lake_meta m;
	int rc = dd_lake_meta_load(part, &m);
	if (rc == 1)
		check(&m);
	else if (m.buf != NULL || m.ntypes != 0)
		fail("metadata refused but not cleared");
	dd_lake_meta_free(&m);
	/* The listing agrees with the loader, and never loses the part. */
	struct dd_lake_part *ps;
	size_t n;
	if (dd_lake_parts(dir, &ps, &n))
		fail("listing a partition with odd metadata failed");
	if (n != 1)
		fail("the part left the listing");
	if (ps[0].has_meta != (rc == 1))
		fail("the listing and the loader disagree");
	if (ps[0].has_meta)
		check(&ps[0].meta);
	dd_lake_parts_free(ps, n);
	return 0;
}
