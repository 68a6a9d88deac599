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
	return block(d) + block(d->drone) + block(d->loc.json) +
	    block(d->pickup.json) + block(d->dropoff.json) + block(d->seen) +
	    sizeof(struct dlv *);	/* its share of the buckets */
}

void
dd_trk_cache_account(struct dd_track *t, struct dlv *d)
{
	t->mem -= d->cost;
	d->cost = dlv_cost(d);
	t->mem += d->cost;
}

struct dlv *
dd_trk_cache_find(struct dd_track *t, const char *id, size_t n, uint64_t h)
{
	for (struct dlv *d = t->tab[h & (t->nb - 1)]; d; d = d->next)
		if (d->hash == h && d->idlen == n && memcmp(d->id, id, n) == 0)
			return d;
	return NULL;
}

/* Double the buckets (at most one delivery a bucket on average). */
static void
grow(struct dd_track *t)
{
	size_t nb = t->nb ? t->nb * 2 : 1024;
	struct dlv **tab = dd_calloc(nb, sizeof *tab);
	for (size_t i = 0; i < t->nb; i++) {
		for (struct dlv *d = t->tab[i], *next; d; d = next) {
			next = d->next;
			d->next = tab[d->hash & (nb - 1)];
			tab[d->hash & (nb - 1)] = d;
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
	d->hash = h;
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
	struct dlv **pp = &t->tab[d->hash & (t->nb - 1)];
	while (*pp != d)
		pp = &(*pp)->next;
	*pp = d->next;
	t->n--;
	t->mem -= d->cost;
	dd_trk_dlv_free(d);
}

void
dd_trk_cache_sweep(struct dd_track *t, int (*gone)(const struct dd_track *, const struct dlv *))
{
	for (size_t i = 0; i < t->nb; i++) {
		for (struct dlv **pp = &t->tab[i], *d; (d = *pp) != NULL; ) {
			if (gone(t, d)) {
				*pp = d->next;
				t->n--;
				t->mem -= d->cost;
				dd_trk_dlv_free(d);
			} else {
				pp = &d->next;
			}
		}
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
}

static int
id_cmp(const struct dlv *a, const struct dlv *b)
{
	size_t n = a->idlen < b->idlen ? a->idlen : b->idlen;
	int c = memcmp(a->id, b->id, n);
	return c ? c : (a->idlen > b->idlen) - (a->idlen < b->idlen);
}

/* Bottom-up merge sort of the dirty list (linked by dnext), no memory. */
void
dd_trk_dirty_sort(struct dd_track *t)
{
	struct dlv *list = t->dirty;
	for (size_t k = 1; list; k *= 2) {
		struct dlv *p = list, *tail = NULL;
		size_t merges = 0;
		list = NULL;
		while (p) {
			merges++;
			struct dlv *q = p;
			size_t ps = 0, qs = k;
			while (ps < k && q) {
				ps++;
				q = q->dnext;
			}
			while (ps > 0 || (qs > 0 && q)) {
				struct dlv *e;
				if (ps == 0) {
					e = q; q = q->dnext; qs--;
				} else if (qs == 0 || q == NULL || id_cmp(p, q) <= 0) {
					e = p; p = p->dnext; ps--;
				} else {
					e = q; q = q->dnext; qs--;
				}
				if (tail)
					tail->dnext = e;
				else
					list = e;
				tail = e;
			}
			p = q;
		}
		tail->dnext = NULL;
		if (merges <= 1)
			break;
	}
	t->dirty = list;
}
