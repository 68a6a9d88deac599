/*
 * The tracker's deliveries in memory: a hash table by id, a write-back
 * cache within a memory budget (--cache). Each delivery knows what it
 * costs (its blocks as malloc holds them); the sum is kept exact at each
 * commit, when every changed delivery is measured again, so the budget
 * holds between commits up to what one batch adds. Over budget, the
 * clean deliveries least likely to be needed again are evicted: ended
 * ones first, then those updated longest ago (in event time). An evicted
 * delivery is read back from the store when an event needs it.
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "track-int.h"

/* What one block of malloc costs: its usable size and the chunk header. */
static size_t
block(const void *p)
{
	return p ? malloc_usable_size((void *)p) + sizeof(size_t) : 0;
}

static size_t
dlv_cost(const struct dlv *d)
{
	return block(d) + (d->drone_on_heap ? block(d->drone.heap) : 0) + block(d->loc.json) +
	    block(d->pickup.json) + block(d->dropoff.json) + block(d->seen) +
	    sizeof(struct dlv *);	/* its share of the buckets */
}

/* The list of ended deliveries: each knows its place, so it leaves the
 * list at once (the last one takes its place). */
static void
ended_add(struct dd_track *t, struct dlv *d)
{
	if (t->nended == t->endedcap) {
		t->endedcap = t->endedcap ? 2 * t->endedcap : 1024;
		t->ended = dd_realloc(t->ended, t->endedcap * sizeof *t->ended);
	}
	t->ended[t->nended++] = d;
	d->eidx = (uint32_t)t->nended;
}

static void
ended_del(struct dd_track *t, struct dlv *d)
{
	struct dlv *last = t->ended[--t->nended];
	t->ended[d->eidx - 1] = last;
	last->eidx = d->eidx;
	d->eidx = 0;
}

/* Called for every delivery loaded or changed (at each commit, for those
 * it writes), hence where an ended one joins the list: a delivery never
 * ends again once ended. */
void
dd_trk_cache_account(struct dd_track *t, struct dlv *d)
{
	t->mem -= d->cost;
	d->cost = dlv_cost(d);
	t->mem += d->cost;
	if (d->fstage && !d->eidx)
		ended_add(t, d);
}

struct dlv *
dd_trk_cache_find(struct dd_track *t, const char *id, size_t n, uint64_t h)
{
	for (struct dlv *d = t->tab[h & (t->nb - 1)]; d; d = d->next)
		if (d->idlen == n && memcmp(d->id, id, n) == 0)
			return d;
	return NULL;
}

/* Double the buckets (at most one delivery a bucket on average). The
 * hashes are computed again: a few times in a run, against 8 bytes a
 * delivery kept. */
static void
grow(struct dd_track *t)
{
	size_t nb = t->nb ? t->nb * 2 : 1024;
	struct dlv **tab = dd_calloc(nb, sizeof *tab);
	for (size_t i = 0; i < t->nb; i++) {
		for (struct dlv *d = t->tab[i], *next; d; d = next) {
			next = d->next;
			uint64_t h = dd_trk_dlv_hash(d);
			d->next = tab[h & (nb - 1)];
			tab[h & (nb - 1)] = d;
		}
	}
	free(t->tab);
	t->tab = tab;
	t->nb = nb;
}

void
dd_trk_cache_init(struct dd_track *t)
{
	grow(t);
}

struct dlv *
dd_trk_cache_add(struct dd_track *t, const char *id, size_t n, uint64_t h)
{
	if (t->n >= t->nb)
		grow(t);
	struct dlv *d = dd_calloc(1, sizeof *d + n + 1);
	memcpy(d->id, id, n);
	d->idlen = (uint32_t)n;
	dd_trk_dlv_clear(d);
	d->next = t->tab[h & (t->nb - 1)];
	t->tab[h & (t->nb - 1)] = d;
	t->n++;
	dd_trk_cache_account(t, d);
	return d;
}

void
dd_trk_cache_remove(struct dd_track *t, struct dlv *d)
{
	struct dlv **pp = &t->tab[dd_trk_dlv_hash(d) & (t->nb - 1)];
	while (*pp != d)
		pp = &(*pp)->next;
	*pp = d->next;
	t->n--;
	t->mem -= d->cost;
	if (d->eidx)
		ended_del(t, d);
	dd_trk_dlv_free(d);
}

/* Over the ended deliveries only: with a million in memory, a walk over
 * all of them at every commit was a fifth of the run's time. */
void
dd_trk_cache_sweep(struct dd_track *t, int (*gone)(struct dd_track *, const struct dlv *))
{
	for (size_t i = 0; i < t->nended; ) {
		struct dlv *d = t->ended[i];
		if (gone(t, d))
			dd_trk_cache_remove(t, d);	/* the last one comes to i */
		else
			i++;
	}
}

void
dd_trk_dirty(struct dd_track *t, struct dlv *d)
{
	if (!d->dirty) {
		d->dirty = 1;
		d->dnext = t->dirty;
		t->dirty = d;
	}
}

/* Ended deliveries first (few events still come for them), then the
 * oldest updated. */
static int
evict_order(const void *a, const void *b)
{
	const struct dlv *x = *(struct dlv *const *)a, *y = *(struct dlv *const *)b;
	if (!x->fstage != !y->fstage)
		return x->fstage ? -1 : 1;
	return x->updated < y->updated ? -1 : x->updated > y->updated;
}

void
dd_trk_cache_trim(struct dd_track *t)
{
	if (t->mem <= t->o.cache_bytes)
		return;
	/* Down to three quarters, so that eviction is not at every commit. */
	size_t target = t->o.cache_bytes / 4 * 3;
	struct dlv **all = dd_calloc(t->n + 1, sizeof *all);
	size_t n = 0;
	for (size_t i = 0; i < t->nb; i++)
		for (struct dlv *d = t->tab[i]; d; d = d->next)
			if (!d->dirty)
				all[n++] = d;
	qsort(all, n, sizeof *all, evict_order);
	for (size_t i = 0; i < n && t->mem > target; i++)
		dd_trk_cache_remove(t, all[i]);
	free(all);
	t->authoritative = 0;
}

void
dd_trk_cache_free(struct dd_track *t)
{
	for (size_t i = 0; i < t->nb; i++)
		for (struct dlv *d = t->tab[i], *next; d; d = next) {
			next = d->next;
			dd_trk_dlv_free(d);
		}
	free(t->tab);
	t->tab = NULL;
	t->nb = t->n = t->mem = 0;
	free(t->ended);
	t->ended = NULL;
	t->nended = t->endedcap = 0;
}

/* A dirty delivery and its place in the order: the rows written before
 * by rowid (cls 0, hi the rowid), then the new ones by id (cls 1, hi and
 * lo the first 16 bytes of the id, big-endian), so that most comparisons
 * are integers in the array, not ids in the heap. */
struct dkey {
	uint64_t cls, hi, lo;
	struct dlv *d;
};

static uint64_t
be64(const char *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < 8; i++)
		v = v << 8 | (i < n ? (unsigned char)p[i] : 0);
	return v;
}

/* The index's order of ids: memcmp, the shorter first at a tie. */
static int
dkey_cmp(const void *a, const void *b)
{
	const struct dkey *x = a, *y = b;
	if (x->cls != y->cls)
		return x->cls < y->cls ? -1 : 1;
	if (x->hi != y->hi)
		return x->hi < y->hi ? -1 : 1;
	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	if (x->cls == 0)
		return 0;
	const struct dlv *p = x->d, *q = y->d;
	size_t n = p->idlen < q->idlen ? p->idlen : q->idlen;
	int c = memcmp(p->id, q->id, n);
	return c ? c : (p->idlen > q->idlen) - (p->idlen < q->idlen);
}

void
dd_trk_dirty_sort(struct dd_track *t)
{
	size_t n = 0;
	for (struct dlv *d = t->dirty; d; d = d->dnext)
		n++;
	if (n < 2)
		return;
	struct dkey *k = dd_malloc(n * sizeof *k);
	size_t i = 0;
	for (struct dlv *d = t->dirty; d; d = d->dnext, i++) {
		k[i].d = d;
		if (d->rowid) {
			k[i].cls = 0;
			k[i].hi = (uint64_t)d->rowid;
			k[i].lo = 0;
			continue;
		}
		k[i].cls = 1;
		k[i].hi = be64(d->id, d->idlen);
		k[i].lo = be64(d->id + (d->idlen > 8 ? 8 : d->idlen),
		    d->idlen > 8 ? d->idlen - 8 : 0);
	}
	qsort(k, n, sizeof *k, dkey_cmp);
	for (i = 0; i + 1 < n; i++)
		k[i].d->dnext = k[i + 1].d;
	k[n - 1].d->dnext = NULL;
	t->dirty = k[0].d;
	free(k);
}
