#include <stdlib.h>
#include <string.h>

#include "order.h"
#include "stage.h"

#define R_POSITION DD_RANK_POSITION
#define R_AFTER DD_RANK_AFTER
#define R_OTHER DD_RANK_OTHER
_Static_assert(DD_RANK_POSITION == 2 * DD_STAGE_HEADED_TO_DROPOFF + 1 &&
    DD_RANK_AFTER == 2 * DD_NSTAGES, "order.h's ranks follow enum dd_stage");

int
dd_order_stage_rank(int stage)
{
	return stage >= 0 && stage < DD_NSTAGES ? 2 * stage : R_OTHER;
}

static const struct {
	const char *type;
	int rank;
} types[] = {
	{ "delivery.scheduled", 2 * DD_STAGE_CREATED },
	{ "delivery.rescheduled", 2 * DD_STAGE_RESCHEDULED },
	{ "drone.dispatched", 2 * DD_STAGE_HEADED_TO_PICKUP },
	{ "drone.picked-up", 2 * DD_STAGE_HEADED_TO_DROPOFF },
	{ "drone.position", R_POSITION },
	{ "drone.delivered", 2 * DD_STAGE_COMPLETED },
	{ "delivery.cancelled", 2 * DD_STAGE_CANCELLED },
	{ "drone.failed", 2 * DD_STAGE_FAILED },
	{ "delivery.rejected", 2 * DD_STAGE_REJECTED },
	{ "drone.returned", R_AFTER },
	{ "drone.released", R_AFTER },
	{ "package.registered", R_AFTER },
	{ "package.removed", R_AFTER },
};

int
dd_order_rank(const struct dd_env *e)
{
	if (dd_env_type_is(e, "delivery.status")) {
		struct dd_jval v;
		if (!dd_json_get(&e->data, "stage", 5, &v) || v.type != DD_JSTR)
			return R_OTHER;
		for (int s = 0; s < DD_NSTAGES; s++)
			if (dd_stage_known(s, DD_STAGE_SPEC) &&
			    dd_jstr_eq(&v, dd_stage_name(s), strlen(dd_stage_name(s))))
				return dd_order_stage_rank(s);
		return R_OTHER;
	}
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		if (dd_env_type_is(e, types[i].type))
			return types[i].rank;
	return R_OTHER;
}

int
dd_order_cmp(int64_t t1, int r1, const char *id1, size_t n1,
    int64_t t2, int r2, const char *id2, size_t n2)
{
	if (t1 != t2)
		return t1 < t2 ? -1 : 1;
	if (r1 != r2)
		return r1 < r2 ? -1 : 1;
	size_t n = n1 < n2 ? n1 : n2;
	int c = n ? memcmp(id1, id2, n) : 0;
	return c ? c : (n1 > n2) - (n1 < n2);
}

int
dd_olist_add(struct dd_olist *l, const char *line, size_t len)
{
	struct dd_env e;
	if (dd_env_scan(line, len, &e))
		return -1;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = dd_realloc(l->v, l->cap * sizeof *l->v);
	}
	struct dd_oev *v = &l->v[l->n++];
	v->t = e.time_ms;
	v->rank = dd_order_rank(&e);
	v->off = l->arena.len;
	v->len = len;
	dd_buf_add(&l->arena, line, len);
	v->idoff = l->arena.len;
	dd_jstr_decode(&e.id, &l->arena);
	v->idlen = l->arena.len - v->idoff;
	return 0;
}

/* qsort has no context argument: the arena of the list being sorted. */
static __thread const char *sort_arena;

static int
oev_cmp(const void *a, const void *b)
{
	const struct dd_oev *x = a, *y = b;
	int c = dd_order_cmp(x->t, x->rank, sort_arena + x->idoff, x->idlen,
	    y->t, y->rank, sort_arena + y->idoff, y->idlen);
	/* Equal ids at equal times: the order they were added (stable). */
	return c ? c : (x->off > y->off) - (x->off < y->off);
}

void
dd_olist_sort(struct dd_olist *l)
{
	if (l->n < 2)
		return;
	sort_arena = l->arena.p;
	qsort(l->v, l->n, sizeof *l->v, oev_cmp);
	sort_arena = NULL;
}

const char *
dd_olist_line(const struct dd_olist *l, size_t i, size_t *len)
{
	*len = l->v[i].len;
	return l->arena.p + l->v[i].off;
}

void
dd_olist_reset(struct dd_olist *l)
{
	dd_buf_reset(&l->arena);
	l->n = 0;
}

void
dd_olist_free(struct dd_olist *l)
{
	dd_buf_free(&l->arena);
	free(l->v);
	memset(l, 0, sizeof *l);
}
