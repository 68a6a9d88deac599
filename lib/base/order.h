/*
 * The one order of a delivery's events (SPEC.md "Delivery stages"), for
 * every service that orders them: dd-track's stage, dd-history's summary
 * and get, dd-archive's deliveries view. Events are ordered by time; at
 * equal times by the step of the delivery's life they record (the rank
 * below: created, rescheduled, headed-to-pickup, headed-to-dropoff,
 * positions, then the final stages completed, cancelled, failed,
 * rejected, then what follows an end: returned, released, packages);
 * then by event id, bytewise. So a reschedule at the millisecond of its
 * schedule comes after it, wherever it arrived, and track and history
 * derive the same stage from the same events.
 */
#ifndef DD_ORDER_H
#define DD_ORDER_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "util.h"

/* Ranks are twice the stage (enum dd_stage), so the steps that set no
 * stage fit between: positions before the end, then what follows it. */
#define DD_RANK_POSITION (2 * 4 + 1)	/* after headed-to-dropoff (4) */
#define DD_RANK_AFTER (2 * 9)		/* after every stage (DD_NSTAGES 9) */
#define DD_RANK_OTHER (2 * 9 + 1)

/* The rank of a stage (enum dd_stage). */
int dd_order_stage_rank(int stage);
/* The rank of an event: by its type, and for delivery.status by the
 * stage in its data (an unknown stage ranks last). */
int dd_order_rank(const struct dd_env *e);
/* <0, 0, >0 as (t1, r1, id1) sorts before, with or after (t2, r2, id2). */
int dd_order_cmp(int64_t t1, int r1, const char *id1, size_t n1,
    int64_t t2, int r2, const char *id2, size_t n2);

/*
 * A list of event lines put in the one order: the lines of one delivery
 * as a store holds them (dd-history get, dd-archive). The lines are
 * copied; after dd_olist_sort(), line i is dd_olist_line(l, i, &len).
 */
struct dd_olist {
	struct dd_buf arena;
	struct dd_oev {
		size_t off, len, idoff, idlen;
		int64_t t;
		int rank;
	} *v;
	size_t n, cap;
};
/* Add one line: 0, or -1 when it is not an event (dd_errmsg()). */
int dd_olist_add(struct dd_olist *l, const char *line, size_t len);
void dd_olist_sort(struct dd_olist *l);
const char *dd_olist_line(const struct dd_olist *l, size_t i, size_t *len);
void dd_olist_reset(struct dd_olist *l);
void dd_olist_free(struct dd_olist *l);

#endif
