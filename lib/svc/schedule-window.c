/*
 * Expedited first (dd-schedule(1), "The scheduling window"): new requests
 * that compete for drones within --window of request time are held, each
 * registered and recorded as waiting, and placed together when the window
 * closes (the input's time passes its end, or the input ends), most urgent
 * first: expedited, then the earliest deadline, then arrival. An expedited
 * request that finds no drone free in time may take the place of normal
 * deliveries that have not left yet, when each of them gets a later slot
 * before its deadline (delivery.rescheduled). Never one already on its way.
 *
 * The items of the open window are those waiting with a seq above the
 * last closed (meta closed_seq), so a restarted filter finds the same
 * window again and a replay after a crash places them the same way.
 */
#include <stdlib.h>
#include <string.h>

#include "schedule-int.h"

/* The most normal bookings one expedited request may move. */
#define PREEMPT_MAX 8

void
sched_pend_add(struct dd_sched *s, struct item *it)
{
	if (s->npend == s->cappend) {
		s->cappend = s->cappend ? s->cappend * 2 : 64;
		s->pend = dd_realloc(s->pend, s->cappend * sizeof *s->pend);
	}
	s->pend[s->npend++] = it;
}

struct item *
sched_pend_take(struct dd_sched *s, const char *did)
{
	for (size_t i = 0; i < s->npend; i++)
		if (strcmp(s->pend[i]->did, did) == 0) {
			struct item *it = s->pend[i];
			memmove(s->pend + i, s->pend + i + 1, (s->npend - i - 1) * sizeof *s->pend);
			s->npend--;
			return it;
		}
	return NULL;
}

/* Give a normal delivery whose drone was taken a new plan at t: another
 * slot (delivery.rescheduled with its drone; all_movable made sure there
 * is one), else it waits without one. */
static int
move_aside(struct dd_sched *s, struct item *m, int64_t t)
{
	char old[IDMAX + 1];
	int oldv = m->version;
	snprintf(old, sizeof old, "%s", m->drone);
	struct dd_trip tr;
	struct dd_plan p;
	sched_trip_of(m, t, -1, &tr);
	int fit = m->deadline > t ? dd_fleet_search(s->fleet, &tr, &p) : DD_FIT_LATE;
	s->n_moved++;
	if ((fit != DD_FIT_OK || strcmp(old, dd_fleet_spec(s->fleet, p.drone)->id) != 0) &&
	    sched_emit_released(s, m, t, old, oldv, "expedited", 1))
		return -1;
	if (fit == DD_FIT_OK)
		return sched_assign(s, m, &p, t, 0, "expedited") || sched_item_put(s, m);
	if (fit != DD_FIT_BUSY)
		return sched_compensate(s, m, t, "expedited", 1, 1) || sched_item_put(s, m);
	sched_drop_drone(m);
	m->version++;
	m->state = ST_WAITING;
	m->updated = t;
	if (sched_emit_rescheduled(s, m, t, 0, "expedited") || sched_item_put(s, m))
		return -1;
	sched_wait_add(s, m);
	return 1;	/* m is the wait list's now */
}

/*
 * Would every one of the nm deliveries in moved find another slot before
 * its deadline once the expedited item has plan p? Tried in memory and
 * undone: the fleet is as it was after. 1 yes, 0 no.
 */
static int
all_movable(struct dd_sched *s, struct item *it, const struct dd_plan *p, struct item **moved,
    int nm, int64_t t)
{
	struct dd_fleet *f = s->fleet;
	int drone[PREEMPT_MAX], placed[PREEMPT_MAX] = { 0 }, ok = 1;
	struct dd_plan q[PREEMPT_MAX];
	for (int k = 0; k < nm; k++) {
		drone[k] = dd_fleet_find(f, moved[k]->drone);
		dd_fleet_unbook(f, drone[k], item_key(moved[k]));
	}
	dd_fleet_book(f, p->drone, p->depart, p->busy_end, item_key(it));
	for (int k = 0; k < nm && ok; k++) {
		struct dd_trip tr;
		sched_trip_of(moved[k], t, -1, &tr);
		ok = moved[k]->deadline > t && dd_fleet_search(f, &tr, &q[k]) == DD_FIT_OK &&
		    dd_fleet_book(f, q[k].drone, q[k].depart, q[k].busy_end, item_key(moved[k])) == 0;
		placed[k] = ok;
	}
	for (int k = nm - 1; k >= 0; k--)
		if (placed[k])
			dd_fleet_unbook(f, q[k].drone, item_key(moved[k]));
	dd_fleet_unbook(f, p->drone, item_key(it));
	for (int k = 0; k < nm; k++)
		dd_fleet_book_movable(f, drone[k], moved[k]->depart, moved[k]->busy_until,
		    item_key(moved[k]), moved[k]->did);
	return ok;
}

/*
 * An expedited item found no drone free in time: take the place of the
 * normal deliveries in its way, if that gives it a drone and each of them
 * another slot before its deadline (a delivery the delivery service would
 * go on flying is never left without a drone). 1 placed (it is put), 0
 * not (nothing changed), -1 error.
 */
static int
preempt(struct dd_sched *s, struct item *it, int64_t t)
{
	struct dd_trip tr;
	struct dd_plan p;
	sched_trip_of(it, t, -1, &tr);
	if (dd_fleet_search_preempt(s->fleet, &tr, &p) != DD_FIT_OK)
		return 0;
	char *refs[PREEMPT_MAX + 1];
	int n = dd_fleet_movable_in(s->fleet, p.drone, p.depart, p.busy_end, t, refs,
	    PREEMPT_MAX + 1);
	int rc = 0;
	struct item *moved[PREEMPT_MAX];
	int nm = 0;
	if (n > PREEMPT_MAX)
		goto out;	/* too many to move for one */
	for (int k = 0; k < n; k++) {
		struct item *m;
		int found = sched_item_get(s, refs[k], &m);
		if (found <= 0 || dd_fleet_find(s->fleet, m->drone) < 0) {
			if (found >= 0)
				dd_seterr("booking of an unknown delivery %s", refs[k]);
			sched_item_free(found > 0 ? m : NULL);
			rc = -1;
			goto out;
		}
		moved[nm++] = m;
	}
	if (!all_movable(s, it, &p, moved, nm, t))
		goto out;
	/* Released first, so that no reader of the events sees the drone
	 * booked twice; then the same moves again, for good. */
	for (int k = 0; k < nm; k++) {
		sched_unbook(s, moved[k]);
		if (sched_emit_released(s, moved[k], t, moved[k]->drone, moved[k]->version,
		    "expedited", 1)) {
			rc = -1;
			goto out;
		}
	}
	s->n_preempt++;
	rc = sched_assign(s, it, &p, t, 0, NULL) || sched_item_put(s, it) ? -1 : 1;
	for (int k = 0; k < nm && rc > 0; k++) {
		int r = move_aside(s, moved[k], t);
		if (r < 0)
			rc = -1;
		if (r == 1)
			moved[k] = NULL;	/* waiting: the list has it */
	}
out:
	for (int k = 0; k < nm; k++)
		sched_item_free(moved[k]);
	for (int k = 0; k < n; k++)
		free(refs[k]);
	return rc;
}

int
sched_place(struct dd_sched *s, struct item *it, int64_t t)
{
	struct dd_trip tr;
	struct dd_plan p;
	sched_trip_of(it, t, -1, &tr);
	int fit = it->deadline > t ? dd_fleet_search(s->fleet, &tr, &p) : DD_FIT_LATE;
	return sched_place_fit(s, it, t, fit, &p);
}

int
sched_place_fit(struct dd_sched *s, struct item *it, int64_t t, int fit, const struct dd_plan *pp)
{
	struct dd_plan p = *pp;
	if (fit == DD_FIT_BUSY && it->expedited) {
		int r = preempt(s, it, t);
		if (r) {
			sched_item_free(it);
			return r < 0 ? -1 : 0;
		}
	}
	int rc;
	if (fit == DD_FIT_OK) {
		rc = sched_assign(s, it, &p, t, 0, NULL) || sched_item_put(s, it);
	} else if (fit == DD_FIT_NONE || fit == DD_FIT_LATE) {
		if (fit == DD_FIT_NONE)
			s->n_nodrone++;
		else
			s->n_late++;
		rc = sched_compensate(s, it, t, fit == DD_FIT_NONE ? "no-drone" : "deadline", 0, 0) ||
		    sched_item_put(s, it);
	} else {
		s->n_wait++;
		if (sched_log_row(s, it, t, "waiting", "no drone free before the deadline", NULL) ||
		    sched_item_put(s, it))
			return sched_item_free(it), -1;
		sched_wait_add(s, it);
		return 0;
	}
	sched_item_free(it);
	return rc ? -1 : 0;
}

/* Most urgent first: expedited, then the earliest deadline, then arrival. */
static int
cmp_urgent(const void *a, const void *b)
{
	const struct item *x = *(struct item *const *)a, *y = *(struct item *const *)b;
	if (x->expedited != y->expedited)
		return x->expedited ? -1 : 1;
	if (x->deadline != y->deadline)
		return x->deadline < y->deadline ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int
sched_window_close(struct dd_sched *s, int64_t t)
{
	if (s->npend > 1)
		qsort(s->pend, s->npend, sizeof *s->pend, cmp_urgent);
	size_t n = s->npend;
	s->npend = 0;
	int rc = 0;
	for (size_t k = 0; k < n; k++) {
		if (rc == 0 && sched_place(s, s->pend[k], t))
			rc = -1;
		else if (rc)
			sched_item_free(s->pend[k]);
	}
	s->closed_seq = s->seq;
	s->win_start = DD_NOTIME;
	return rc;
}

int
sched_window_tick(struct dd_sched *s, int64_t t)
{
	if (s->npend == 0 || s->win_start == DD_NOTIME || t == DD_NOTIME ||
	    t < s->win_start + s->o.window_ms)
		return 0;
	/* At the window's end, not at t: the next line may come much later,
	 * and the drones are chosen as of the end of the window. */
	return sched_window_close(s, sched_advance(s, s->win_start + s->o.window_ms));
}
