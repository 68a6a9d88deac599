/*
 * Can a partition hold an event id twice? The writer answers for each
 * part as it closes it (lake.h, "unique" and "checked" in the metadata),
 * so that readers may take counts from the metadata with de-duplication
 * on (dd_lake_partition_unique): a part is unique when no id repeats
 * within it and none of its ids is in the parts it names as checked, the
 * parts of its partition visible when it closed. A Bloom filter's "no"
 * settles a part at once; a "maybe" (about 1% of the ids) is settled by
 * reading that part's ids; past READ_MAX bytes, or for a part whose lines
 * cannot be scanned, the answer is "not unique", which only costs readers
 * a full scan. Ids are compared by their 64-bit hash: a collision also
 * only makes the answer conservative (ids crafted to collide make their
 * parts read in full, nothing worse).
 */
#include <string.h>

#include "event.h"
#include "json.h"
#include "lake-int.h"
#include "lake.h"

/* Raw bytes of earlier parts read to settle Bloom "maybe"s, at most: one
 * part of the default size, so closing a part costs at most about as much
 * again (a partition of more parts is marked by compaction instead). */
#define READ_MAX ((uint64_t)48 << 20)

/* Is hash h among the part's ids? (Slots hold 1 for a hash of 0.) */
static int
ids_have(const struct idset *s, uint64_t h)
{
	if (h == 0)
		h = 1;
	if (s->cap == 0)
		return 0;
	size_t mask = s->cap - 1, i = (size_t)dd_slot(h) & mask;
	for (; s->h[i]; i = (i + 1) & mask)
		if (s->h[i] == h)
			return 1;
	return 0;
}

/* Does part pt hold one of the ids? 0 no, 1 yes or cannot tell. */
static int
shares_ids(const struct dd_lake_part *pt, const struct idset *ids, uint64_t *budget)
{
	if (pt->has_meta) {
		/* The filters hold the slots' hashes, 0 too when zero is set. */
		int maybe = ids->zero && dd_lake_bloom_test(&pt->meta.ids, 0);
		for (size_t i = 0; i < ids->cap && !maybe; i++)
			if (ids->h[i])
				maybe = dd_lake_bloom_test(&pt->meta.ids, ids->h[i]);
		if (!maybe)
			return 0;
	}
	/* Read its ids. */
	uint64_t raw = pt->has_meta ? pt->meta.raw_bytes : pt->bytes * 8;
	if (raw > *budget)
		return 1;
	*budget -= raw;
	struct dd_lake_reader *r = dd_lake_reader_open(pt->path);
	if (r == NULL)
		return 1;
	const char *line;
	size_t len;
	uint64_t lineno;
	int rc, shared = 0;
	struct dd_buf b = { 0 };
	while (!shared && (rc = dd_lake_reader_next(r, &line, &len, &lineno)) == 1) {
		struct dd_env e;
		if (dd_env_scan(line, len, &e)) {
			shared = 1;
			break;
		}
		size_t n;
		const char *id = dd_jstr_text(&e.id, &b, &n);
		shared = ids_have(ids, dd_hash64(id, n));
	}
	if (rc < 0)
		shared = 1;
	dd_buf_free(&b);
	dd_lake_reader_close(r);
	return shared;
}

int
lake_part_unique(const char *dir, const char *self, const struct idset *ids,
    char *const *only, size_t nonly, int use_only, struct dd_buf *checked)
{
	dd_buf_reset(checked);
	dd_buf_addc(checked, '[');
	/* No id twice within the part: as many distinct hashes as entries. */
	struct hset seen = { 0 };
	int unique = 1;
	for (size_t i = 0; i < ids->cap && unique; i++)
		if (ids->h[i])
			unique = !lake_hset_add(&seen, ids->h[i]);
	lake_hset_free(&seen);
	struct dd_lake_part *pts = NULL;
	size_t n = 0;
	if (unique && dd_lake_parts(dir, &pts, &n))
		unique = 0;
	uint64_t budget = READ_MAX;
	size_t dl = strlen(dir);
	for (size_t i = 0; i < n && unique; i++) {
		const struct dd_lake_part *pt = &pts[i];
		if (strcmp(pt->name, self) == 0)
			continue;
		if (use_only) {
			/* Only the parts named (the others are being replaced). */
			int named = 0;
			for (size_t k = 0; k < nonly && !named; k++)
				named = strncmp(only[k], dir, dl) == 0 && only[k][dl] == '/' &&
				    strcmp(only[k] + dl + 1, pt->name) == 0;
			if (!named)
				continue;
		}
		if (shares_ids(pt, ids, &budget)) {
			unique = 0;
			break;
		}
		if (checked->len > 1)
			dd_buf_addc(checked, ',');
		dd_buf_json_str(checked, pt->name, strlen(pt->name));
	}
	dd_lake_parts_free(pts, n);
	dd_buf_addc(checked, ']');
	return unique;
}

/* Is name in the metadata's "checked" list? */
static int
checked_has(const struct dd_lake_meta *m, const char *name)
{
	size_t pos = 0;
	struct dd_jval v;
	while (dd_json_next(&m->checked, &pos, NULL, &v))
		if (dd_jstr_eq(&v, name, strlen(name)))
			return 1;
	return 0;
}

int
dd_lake_partition_unique(const struct dd_lake_part *ps, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!ps[i].has_meta || !ps[i].meta.unique)
			return 0;
	/* Every pair: one of the two was checked against the other. */
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (!checked_has(&ps[j].meta, ps[i].name) &&
			    !checked_has(&ps[i].meta, ps[j].name))
				return 0;
	return 1;
}
