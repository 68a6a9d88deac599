/*
 * The removed deliveries' ids (the ended table) as a set in memory, so
 * that a new delivery, the common case, costs no query: the ids' 64-bit
 * hashes in an open-addressing table at most half full (16 bytes an id
 * or less, counted in --cache). A hash found is only a candidate: the
 * table decides. Tombstones pruned from the table stay in the set until
 * it is rebuilt, which costs one query for each of them that recurs.
 */
#include <stdlib.h>

#include "track-int.h"

static void
put(uint64_t *slot, size_t cap, uint64_t h)
{
	for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
		if (slot[i] == h)
			return;
		if (slot[i] == 0) {
			slot[i] = h;
			return;
		}
	}
}

/* 0 marks an empty slot. */
static uint64_t
key(uint64_t h)
{
	return h ? h : 1;
}

static void
resize(struct dd_track *t, size_t cap)
{
	uint64_t *slot = dd_calloc(cap, sizeof *slot);
	for (size_t i = 0; i < t->tombcap; i++)
		if (t->tomb[i])
			put(slot, cap, t->tomb[i]);
	t->mem += cap * sizeof *slot;
	t->mem -= t->tombcap * sizeof *slot;
	free(t->tomb);
	t->tomb = slot;
	t->tombcap = cap;
}

void
dd_trk_tomb_add(struct dd_track *t, uint64_t h)
{
	if (2 * (t->tombn + 1) > t->tombcap)
		resize(t, t->tombcap ? t->tombcap * 2 : 1024);
	put(t->tomb, t->tombcap, key(h));
	t->tombn++;	/* an upper bound: a hash added twice counts twice */
}

int
dd_trk_tomb_maybe(const struct dd_track *t, uint64_t h)
{
	if (t->tombcap == 0)
		return 0;
	h = key(h);
	for (size_t i = h & (t->tombcap - 1);; i = (i + 1) & (t->tombcap - 1)) {
		if (t->tomb[i] == h)
			return 1;
		if (t->tomb[i] == 0)
			return 0;
	}
}

void
dd_trk_tomb_free(struct dd_track *t)
{
	t->mem -= t->tombcap * sizeof *t->tomb;
	free(t->tomb);
	t->tomb = NULL;
	t->tombcap = t->tombn = 0;
}

int
dd_trk_tomb_load(struct dd_track *t)
{
	dd_trk_tomb_free(t);
	sqlite3_stmt *st = dd_store_prepare(&t->s, "SELECT id FROM ended");
	if (st == NULL)
		return -1;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		size_t n;
		const char *id = dd_col_text(st, 0, &n);
		dd_trk_tomb_add(t, dd_hash64(id, n));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return dd_store_err(&t->s, "loading removed deliveries");
	return 0;
}
