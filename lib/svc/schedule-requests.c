/*
 * The filter's ops: each line is a new delivery request, an operation on
 * one (cancel, reschedule), or a delivery.status event fed back by the
 * delivery service; every outcome is recorded with the work item in the
 * batch's transaction. With --csv the lines come from a CSV feed.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "exitcodes.h"
#include "filter.h"
#include "schedule-int.h"

/* ---- requests ---- */

static enum dd_verdict
new_request(struct dd_sched *s, const struct keys *k)
{
	struct item *it = sched_item_new();
	struct fault ft = { { 0 }, { 0 } };
	enum dd_verdict v = DD_ACCEPT;
	if (sched_parse_request(s, k, it, &ft)) {
		sched_item_free(it);
		return DD_REJECT;
	}
	/* Found by its full key, never by the hash of its delivery id. */
	struct item *old;
	int found = sched_item_get_request(s, it->owner, it->rid, &old);
	if (found < 0)
		goto fail;
	if (found) {
		/* An invalid request does not claim its id: the corrected one
		 * that follows is scheduled under the same delivery id. Replays
		 * of either stay replays: the item is no longer invalid. */
		int corrected = old->state == ST_REJECTED && !old->valid && !ft.field[0];
		if (!corrected) {
			sched_item_free(old);
			sched_item_free(it);
			s->n_dup++;	/* replayed: nothing new to say */
			return DD_ACCEPT;
		}
		snprintf(it->did, sizeof it->did, "%s", old->did);
		it->nlog = old->nlog;	/* its log goes on */
		sched_item_free(old);
	} else if (sched_name_item(s, it)) {
		goto fail;
	}
	s->n_new++;
	int64_t at = ft.field[0] || it->pickup_time == INT64_MIN ? INT64_MIN
	    : it->pickup_time - s->o.lead_ms;
	if (sched_window_tick(s, at))
		goto fail;
	int64_t t = sched_advance(s, at);
	it->seq = ++s->seq;
	it->received = it->updated = t;
	if (ft.field[0]) {
		s->n_invalid++;
		it->state = ST_REJECTED;
		snprintf(it->reason, sizeof it->reason, "invalid");
		snprintf(it->field, sizeof it->field, "%s", ft.field);
		char msg[260];
		snprintf(msg, sizeof msg, "%s: %s", ft.field, ft.msg);
		if (sched_emit_rejected(s, it, t, "invalid", msg, 0) || sched_item_put(s, it))
			goto fail;
		sched_item_free(it);
		return v;
	}
	/* The unit of work is recorded with its first step, in this
	 * transaction: register the package, then find a drone. A deadline
	 * no capable drone could meet even idle is rejected at once, before
	 * any package is registered. */
	it->valid = 1;
	it->state = ST_WAITING;
	struct dd_trip tr;
	struct dd_plan p = { 0 };
	sched_trip_of(it, t, -1, &tr);
	/* In a window, only whether it can be flown at all: the drone is
	 * chosen when the window closes. */
	int fit = s->o.window_ms ? dd_fleet_check(s->fleet, &tr) : dd_fleet_search(s->fleet, &tr, &p);
	if (fit == DD_FIT_LATE) {
		s->n_late++;
		it->state = ST_REJECTED;
		snprintf(it->reason, sizeof it->reason, "deadline");
		if (sched_emit_rejected(s, it, t, "deadline", "no capable drone can drop it off"
		    " by the deadline", 0) || sched_item_put(s, it))
			goto fail;
		sched_item_free(it);
		return v;
	}
	if (sched_emit_registered(s, it, t))
		goto fail;
	if (s->o.window_ms == 0 || fit == DD_FIT_NONE)
		return sched_place_fit(s, it, t, fit, &p) ? DD_FAIL : v;
	/* It competes with the others of the window: placed when it closes. */
	if (sched_item_put(s, it))
		goto fail;
	if (s->win_start == DD_NOTIME)
		s->win_start = t;
	sched_pend_add(s, it);
	return v;
fail:
	sched_item_free(it);
	return DD_FAIL;
}

/* The delivery an operation names: deliveryId, or requestId + ownerId
 * (then the request's latest delivery). name gets the naming as given,
 * for the operation's key, so that a replay names it the same way
 * whether or not the request has come since. 0, or -1 (bad input,
 * dd_errmsg()), -2 (store failure). */
static int
op_did(struct dd_sched *s, const struct keys *k, char did[IDMAX + 1], struct dd_buf *name)
{
	char rid[IDMAX + 1], owner[IDMAX + 1];
	const char *why;
	int r = sched_get_id(&k->v[K_DELIVERYID], did, &why);
	dd_buf_reset(name);
	if (r < 0) {
		dd_seterr("\"deliveryId\": %s", why);
		return -1;
	}
	if (r > 0) {
		dd_buf_printf(name, "%zu:%s", strlen(did), did);
		return 0;
	}
	if (sched_get_id(&k->v[K_REQUESTID], rid, &why) <= 0 ||
	    sched_get_id(&k->v[K_OWNERID], owner, &why) <= 0) {
		dd_seterr("an operation names its delivery by deliveryId, or by requestId and ownerId");
		return -1;
	}
	dd_buf_printf(name, "%zu:%s%zu:%s", strlen(owner), owner, strlen(rid), rid);
	struct item *it;
	int found = sched_item_get_request(s, owner, rid, &it);
	if (found < 0)
		return -2;
	if (found)
		snprintf(did, IDMAX + 1, "%s", it->did);
	else
		snprintf(did, IDMAX + 1, "request %s of %s", rid, owner);
	sched_item_free(it);
	return 0;
}

/*
 * An operation is decided once, the first time it is seen, and a replay
 * of the same operation (the same content) gets the same outcome, even
 * if the delivery has changed since (a cancel read before its request
 * stays rejected). 0: new; 1: applied before; 2: rejected before (why in
 * dd_errmsg()); -1: store failure.
 */
static int
op_recall(struct dd_sched *s, const char *hash)
{
	dd_bind_text(s->q_opseen, 0, hash, (size_t)-1);
	int rc = sqlite3_step(s->q_opseen), r = 0;
	if (rc == SQLITE_ROW) {
		const char *why = dd_col_text(s->q_opseen, 0, NULL);
		r = why ? 2 : 1;
		if (why)
			dd_seterr("%s", why);
	}
	sqlite3_reset(s->q_opseen);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return dd_store_err(&s->st, "reading the operations");
	return r;
}

/* Keep an operation's outcome: applied (rejected NULL) or why not. */
static int
op_remember(struct dd_sched *s, const char *hash, const char *rejected)
{
	dd_bind_text(s->q_op, 0, hash, (size_t)-1);
	dd_bind_text(s->q_op, 1, rejected && *rejected ? rejected : NULL, (size_t)-1);
	return sched_step_sql(s, s->q_op, "recording an operation");
}

/* Reject an operation for good: remembered, and the reason in dd_errmsg(). */
static enum dd_verdict __attribute__((format(printf, 3, 4)))
op_refuse(struct dd_sched *s, const char *hash, const char *fmt, ...)
{
	char why[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	if (op_remember(s, hash, why))
		return DD_FAIL;
	dd_seterr("%s", why);
	return DD_REJECT;
}

/*
 * An operation whose content is in s->tmp: name it by a hash of that, and
 * recall its outcome if it was seen before, else find its delivery.
 * Returns 1 with *it to decide it, or 0 with the verdict in *v.
 */
static int
op_open(struct dd_sched *s, const char *did, char hash[DIDMAX], struct item **it,
    enum dd_verdict *v)
{
	sched_key_hex(s->tmp.p, s->tmp.len, hash);
	int r = op_recall(s, hash);
	if (r) {
		*v = r < 0 ? DD_FAIL : r == 1 ? (s->n_opdup++, DD_ACCEPT) : DD_REJECT;
		return 0;
	}
	int found = sched_item_get(s, did, it);
	if (found <= 0) {
		*v = found < 0 ? DD_FAIL : op_refuse(s, hash, "no such delivery: %s", did);
		return 0;
	}
	return 1;
}

static int
op_reason(const struct keys *k, char out[IDMAX + 1], const char *dflt)
{
	const char *why;
	int r = sched_get_id(&k->v[K_REASON], out, &why);
	if (r < 0) {
		dd_seterr("\"reason\": %s", why);
		return -1;
	}
	if (r == 0)
		snprintf(out, IDMAX + 1, "%s", dflt);
	return 0;
}

/*
 * Where a delivery's package may be, for an operation that would take
 * it back: PKG_HOME (not picked up, and by the plan it cannot have been
 * yet), PKG_MAYBE (the plan's pickup time has passed and the delivery
 * service has not said the drone has it, or not), PKG_ABOARD (picked up:
 * headed to the dropoff, or delivered).
 */
enum { PKG_HOME, PKG_MAYBE, PKG_ABOARD };

static int
stage_rank(const char *st);

static int
package_where(const struct item *it, int64_t t)
{
	if (it->state == ST_COMPLETED || (it->state == ST_INPROGRESS && stage_rank(it->stage) == 2))
		return PKG_ABOARD;
	if ((it->state == ST_SCHEDULED || it->state == ST_INPROGRESS) &&
	    it->pickup_eta != DD_NOTIME && t >= it->pickup_eta)
		return PKG_MAYBE;
	return PKG_HOME;
}

/* Why an operation on a delivery whose package is or may be aboard is
 * refused. */
static const char *
aboard_reason(const struct item *it, int64_t t)
{
	return it->state == ST_COMPLETED ? "delivered" :
	    package_where(it, t) == PKG_ABOARD ? "picked-up" : "may-be-on-board";
}

/*
 * Refuse an operation visibly: delivery.refused on stdout (other services
 * see it), and its outcome remembered so a replay is refused again. line
 * set: the operation is the current input line (its verdict is a reject,
 * with --rejects and the summary); else it was held and a status decides
 * it now (the summary counts it).
 */
static enum dd_verdict
op_refuse_aboard(struct dd_sched *s, struct item *it, const char *hash, const char *op,
    int64_t t, int line)
{
	const char *why = aboard_reason(it, t);
	s->n_refused++;
	if (sched_emit_refused(s, it, t, op, why, hash))
		return DD_FAIL;
	if (!line) {
		char msg[300];
		snprintf(msg, sizeof msg, "cannot %s delivery %s: the package is %s", op, it->did,
		    why);
		dd_bind_text(s->q_opset, 0, msg, (size_t)-1);
		dd_bind_text(s->q_opset, 1, hash, (size_t)-1);
		return sched_step_sql(s, s->q_opset, "recording an operation") ? DD_FAIL : DD_ACCEPT;
	}
	return op_refuse(s, hash, "cannot %s delivery %s: the package is %s", op, it->did, why);
}

/* Apply a cancel: compensate, and offer a drone freed to those waiting. */
static int
cancel_apply(struct dd_sched *s, struct item *it, const char *reason, int64_t t)
{
	char drone[IDMAX + 1];
	snprintf(drone, sizeof drone, "%s", it->drone);
	if (it->state == ST_WAITING)
		sched_item_free(sched_wait_take(s, it->did));
	it->held[0] = it->held_op[0] = '\0';
	return sched_compensate(s, it, t, reason, 1, 1) || sched_item_put(s, it) ||
	    (*drone && sched_retry_waiting(s, drone, t));
}

static enum dd_verdict
op_cancel(struct dd_sched *s, const struct keys *k)
{
	char reason[IDMAX + 1], did[IDMAX + 1], hash[DIDMAX];
	if (op_reason(k, reason, "client"))
		return DD_REJECT;
	int r = op_did(s, k, did, &s->opname);
	if (r)
		return r == -1 ? DD_REJECT : DD_FAIL;
	struct dd_buf *h = &s->tmp;
	dd_buf_reset(h);
	dd_buf_printf(h, "cancel\n%s\n%s", s->opname.p, reason);
	struct item *it;
	enum dd_verdict v;
	if (!op_open(s, did, hash, &it, &v))
		return v;
	v = DD_ACCEPT;
	int64_t t = sched_advance(s, INT64_MIN);
	int where = package_where(it, t);
	if (it->state == ST_CANCELLED || *it->held) {
		s->n_opdup++;	/* cancelled already, or held, another way */
		if (op_remember(s, hash, NULL))
			v = DD_FAIL;
	} else if (where == PKG_ABOARD) {
		v = op_refuse_aboard(s, it, hash, "cancel", t, 1);
		if (v != DD_FAIL && sched_item_put(s, it))
			v = DD_FAIL;
	} else if (is_final(it->state)) {
		v = op_refuse(s, hash, "cannot cancel delivery %s: it is %s", it->did,
		    sched_state_names[it->state]);
	} else if (where == PKG_MAYBE) {
		/* The scheduler cannot tell: the delivery service's status will. */
		s->n_held++;
		snprintf(it->held, sizeof it->held, "%s", reason);
		snprintf(it->held_op, sizeof it->held_op, "%s", hash);
		it->updated = t;
		if (sched_log_row(s, it, t, "held", reason, NULL) || sched_item_put(s, it) ||
		    op_remember(s, hash, NULL))
			v = DD_FAIL;
	} else {
		s->n_ops++;
		if (cancel_apply(s, it, reason, t) || op_remember(s, hash, NULL))
			v = DD_FAIL;
	}
	sched_item_free(it);
	return v;
}

/*
 * Apply new terms to a delivery: release its drone, look for the best
 * drone under the new terms (the same one may come back), and say what
 * changed; with no drone free in time it waits for one.
 */
static int
apply_reschedule(struct dd_sched *s, struct item *it, const struct item *n, unsigned changed,
    const char *reason, int64_t t)
{
	char old[IDMAX + 1];
	int oldv = it->version;
	snprintf(old, sizeof old, "%s", it->drone);
	if (it->state == ST_WAITING)
		sched_item_free(sched_wait_take(s, it->did));
	sched_unbook(s, it);
	it->pk_lat = n->pk_lat, it->pk_lon = n->pk_lon, it->pk_alt = n->pk_alt;
	it->dr_lat = n->dr_lat, it->dr_lon = n->dr_lon, it->dr_alt = n->dr_alt;
	it->pickup_time = n->pickup_time;
	it->deadline = n->deadline;
	it->expedited = n->expedited;
	it->confirm = n->confirm;
	struct dd_trip tr;
	struct dd_plan p;
	sched_trip_of(it, t, -1, &tr);
	int fit = dd_fleet_search(s->fleet, &tr, &p);
	if (fit == DD_FIT_NONE || fit == DD_FIT_LATE)
		return sched_compensate(s, it, t, fit == DD_FIT_NONE ? "no-drone" : "deadline", 1,
		    it->ever);
	if (*old && (fit != DD_FIT_OK || strcmp(old, dd_fleet_spec(s->fleet, p.drone)->id) != 0) &&
	    sched_emit_released(s, it, t, old, oldv, "rescheduled", 1))
		return -1;
	if (fit == DD_FIT_OK)
		return sched_assign(s, it, &p, t, changed, reason);
	sched_drop_drone(it);
	it->version++;
	it->state = ST_WAITING;
	it->updated = t;
	return sched_emit_rescheduled(s, it, t, changed, reason);
}

static enum dd_verdict
op_reschedule(struct dd_sched *s, const struct keys *k)
{
	char reason[IDMAX + 1], did[IDMAX + 1], hash[DIDMAX];
	if (op_reason(k, reason, "client"))
		return DD_REJECT;
	int r = op_did(s, k, did, &s->opname);
	if (r)
		return r == -1 ? DD_REJECT : DD_FAIL;
	/* The new terms as given (g), checked on their own. */
	struct fault ft = { { 0 }, { 0 } };
	struct item g;
	memset(&g, 0, sizeof g);
	unsigned changed = 0;
	if (k->v[K_PICKUP].type) {
		sched_loc_obj(&k->v[K_PICKUP], "pickup", &g.pk_lat, &g.pk_lon, &g.pk_alt, &ft);
		changed |= CH_PICKUP;
	}
	if (k->v[K_DROPOFF].type) {
		sched_loc_obj(&k->v[K_DROPOFF], "dropoff", &g.dr_lat, &g.dr_lon, &g.dr_alt, &ft);
		changed |= CH_DROPOFF;
	}
	if (k->v[K_PICKUPTIME].type) {
		sched_get_time(&k->v[K_PICKUPTIME], "pickupTime", &g.pickup_time, &ft);
		changed |= CH_PTIME;
	}
	if (k->v[K_DEADLINE].type) {
		sched_get_time(&k->v[K_DEADLINE], "deadline", &g.deadline, &ft);
		changed |= CH_DEADLINE;
	}
	if (k->v[K_EXPEDITED].type) {
		sched_get_bool(&k->v[K_EXPEDITED], "expedited", &g.expedited, &ft);
		changed |= CH_EXPEDITED;
	}
	if (k->v[K_CONFIRM].type) {
		sched_get_confirm(&k->v[K_CONFIRM], &g.confirm, &ft);
		changed |= CH_CONFIRM;
	}
	if (ft.field[0]) {
		dd_seterr("reschedule: %s: %s", ft.field, ft.msg);
		return DD_REJECT;
	}
	if (!changed) {
		dd_seterr("reschedule: nothing to change (pickup, dropoff, pickupTime, deadline,"
		    " expedited or confirmationRequired)");
		return DD_REJECT;
	}
	struct dd_buf *h = &s->tmp;
	dd_buf_reset(h);
	dd_buf_printf(h, "reschedule\n%s\n%u\n%.17g,%.17g,%.17g\n%.17g,%.17g,%.17g\n%" PRId64
	    "\n%" PRId64 "\n%d\n%d\n%s", s->opname.p, changed, g.pk_lat, g.pk_lon, g.pk_alt, g.dr_lat,
	    g.dr_lon, g.dr_alt, g.pickup_time, g.deadline, g.expedited, g.confirm, reason);
	struct item *it;
	enum dd_verdict v;
	if (!op_open(s, did, hash, &it, &v))
		return v;
	struct item n = *it;
	if (changed & CH_PICKUP)
		n.pk_lat = g.pk_lat, n.pk_lon = g.pk_lon, n.pk_alt = g.pk_alt;
	if (changed & CH_DROPOFF)
		n.dr_lat = g.dr_lat, n.dr_lon = g.dr_lon, n.dr_alt = g.dr_alt;
	if (changed & CH_PTIME)
		n.pickup_time = g.pickup_time;
	if (changed & CH_DEADLINE)
		n.deadline = g.deadline;
	if (changed & CH_EXPEDITED)
		n.expedited = g.expedited;
	if (changed & CH_CONFIRM)
		n.confirm = g.confirm;
	int64_t now = sched_advance(s, INT64_MIN);
	if (it->valid && package_where(it, now) != PKG_HOME) {
		/* Once the package may be on board, new terms cannot be kept. */
		v = op_refuse_aboard(s, it, hash, "reschedule", now, 1);
		if (v != DD_FAIL && sched_item_put(s, it))
			v = DD_FAIL;
		goto out;
	}
	if (!it->valid || is_final(it->state) || it->state == ST_FAILED) {
		v = op_refuse(s, hash, "cannot reschedule delivery %s: it is %s", it->did,
		    it->state == ST_INPROGRESS ? it->stage : sched_state_names[it->state]);
		goto out;
	}
	if (n.deadline <= n.pickup_time) {
		v = op_refuse(s, hash, "reschedule: deadline: not after pickupTime");
		goto out;
	}
	v = DD_ACCEPT;
	s->n_ops++;
	/* An operation has no time of its own: it happens at the clock. */
	int64_t t = sched_advance(s, INT64_MIN);
	char old[IDMAX + 1];
	snprintf(old, sizeof old, "%s", it->drone);
	if (op_remember(s, hash, NULL) || apply_reschedule(s, it, &n, changed, reason, t) ||
	    sched_item_put(s, it)) {
		v = DD_FAIL;
		goto out;
	}
	if (it->state == ST_WAITING) {
		sched_wait_add(s, it);
		it = NULL;
	}
	if (*old && sched_retry_waiting(s, old, t))
		v = DD_FAIL;
out:
	sched_item_free(it);
	return v;
}

/* ---- feedback: delivery.status ---- */

static int
stage_rank(const char *st)
{
	if (strcmp(st, "headed-to-pickup") == 0)
		return 1;
	if (strcmp(st, "headed-to-dropoff") == 0)
		return 2;
	if (strcmp(st, "completed") == 0 || strcmp(st, "failed") == 0 ||
	    strcmp(st, "cancelled") == 0)
		return 3;
	return 0;	/* created, rescheduled: our own events coming back */
}

static enum dd_verdict
status_event(struct dd_sched *s, const struct dd_env *e)
{
	if (dd_event_check_data(e))
		return DD_REJECT;
	struct dd_jval v;
	char did[IDMAX + 1], stage[24], eid[IDMAX + 1], drone[IDMAX + 1] = "";
	if (!dd_json_get(&e->data, "deliveryId", 10, &v) || dd_env_str(&v, did, sizeof did) <= 0) {
		dd_seterr("\"data.deliveryId\" is not an id");
		return DD_REJECT;
	}
	if (!dd_json_get(&e->data, "stage", 5, &v) || dd_env_str(&v, stage, sizeof stage) <= 0) {
		dd_seterr("\"data.stage\" is not a stage");
		return DD_REJECT;
	}
	if (dd_json_get(&e->data, "droneId", 7, &v) && v.type == DD_JSTR)
		dd_env_str(&v, drone, sizeof drone);
	dd_env_str(&e->id, eid, sizeof eid);
	if (sched_window_tick(s, e->time_ms))
		return DD_FAIL;
	int64_t t = sched_advance(s, e->time_ms);
	struct item *it;
	int found = sched_item_get(s, did, &it);
	if (found < 0)
		return DD_FAIL;
	if (!found) {
		/* Not one of ours, and it stays so: a replay where the delivery
		 * exists by then must not apply it either. */
		dd_bind_text(s->q_seenadd, 0, eid, (size_t)-1);
		return sched_step_sql(s, s->q_seenadd, "recording a status") ? DD_FAIL : DD_SKIP;
	}
	dd_bind_text(s->q_seen, 0, eid, (size_t)-1);
	int rc = sqlite3_step(s->q_seen);
	sqlite3_reset(s->q_seen);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		sched_item_free(it);
		return dd_store_err(&s->st, "reading the statuses"), DD_FAIL;
	}
	if (rc == SQLITE_ROW) {
		sched_item_free(it);
		return DD_SKIP;
	}
	s->n_status++;
	enum dd_verdict verdict = DD_ACCEPT;
	int rank = stage_rank(stage);
	/* Only news about the current flight moves an item: not a stage it
	 * has passed, not a status of a drone it no longer has. */
	if ((it->state != ST_SCHEDULED && it->state != ST_INPROGRESS) || rank == 0 ||
	    rank <= (*it->stage ? stage_rank(it->stage) : 0) ||
	    (*drone && strcmp(drone, it->drone) != 0) || strcmp(stage, "cancelled") == 0) {
		sched_item_free(it);
		return verdict;
	}
	snprintf(it->prev_stage, sizeof it->prev_stage, "%s", it->stage);
	snprintf(it->stage, sizeof it->stage, "%s", stage);
	it->stage_time = e->time_ms;
	it->updated = t;
	int i = dd_fleet_find(s->fleet, it->drone);
	int freed = 0;
	if (i >= 0)
		dd_fleet_pin(s->fleet, i, item_key(it));	/* on its way: never moved */
	if (strcmp(stage, "completed") == 0) {
		it->state = ST_COMPLETED;
		/* Home after the return leg: the drone may be free sooner. */
		if (i >= 0) {
			int64_t end = e->time_ms + dd_fleet_return_ms(s->fleet, i, it->dr_lat, it->dr_lon) +
			    DD_TURNAROUND_MS;
			if (end < it->depart)
				end = it->depart;	/* (a flight earlier than planned) */
			if (end < it->busy_until) {
				dd_fleet_shorten(s->fleet, i, item_key(it), end);
				it->busy_until = end;
				freed = 1;
			}
		}
	} else if (strcmp(stage, "failed") == 0) {
		/* The supervisor retries or compensates it; the delivery's
		 * booking ends now, and the drone is out of service. */
		it->state = ST_FAILED;
		if (i >= 0) {
			if (e->time_ms <= it->depart) {
				sched_unbook(s, it);
			} else if (e->time_ms < it->busy_until) {
				dd_fleet_shorten(s->fleet, i, item_key(it), e->time_ms);
				it->busy_until = e->time_ms;
			}
			if (sched_item_put(s, it) || sched_ground(s, i, e->time_ms, t)) {
				sched_item_free(it);
				return DD_FAIL;
			}
		}
	} else {
		it->state = ST_INPROGRESS;
	}
	if (sched_log_row(s, it, t, "status", stage, eid))
		verdict = DD_FAIL;
	/* A held cancel is decided once the package is known to be aboard;
	 * a failed flight keeps it for the supervisor (no new attempt). */
	if (verdict == DD_ACCEPT && *it->held && package_where(it, t) == PKG_ABOARD) {
		verdict = op_refuse_aboard(s, it, it->held_op, "cancel", t, 0);
		it->held[0] = it->held_op[0] = '\0';
	}
	if (verdict != DD_ACCEPT || sched_item_put(s, it) ||
	    (freed && sched_retry_waiting(s, it->drone, t)))
		verdict = DD_FAIL;
	sched_item_free(it);
	return verdict;
}

/* drone.returned: a failed drone is home, its inspection starts. */
static enum dd_verdict
drone_returned(struct dd_sched *s, const struct dd_env *e)
{
	if (dd_event_check_data(e))
		return DD_REJECT;
	struct dd_jval v;
	char drone[IDMAX + 1];
	if (!dd_json_get(&e->data, "droneId", 7, &v) || dd_env_str(&v, drone, sizeof drone) <= 0) {
		dd_seterr("\"data.droneId\" is not an id");
		return DD_REJECT;
	}
	if (sched_window_tick(s, e->time_ms))
		return DD_FAIL;
	int64_t t = sched_advance(s, e->time_ms);
	return sched_drone_returned(s, drone, e->time_ms, t) ? DD_FAIL : DD_ACCEPT;
}

/* ---- one input line ---- */

static enum dd_verdict
sched_line(struct dd_sched *s, const char *p, size_t n)
{
	struct keys k;
	memset(&k, 0, sizeof k);
	if (dd_json_scan_object(p, n, sched_key_member, &k))
		return DD_REJECT;
	if (sched_ensure_tx(s))
		return DD_FAIL;
	if (k.v[K_SPECVERSION].type) {
		struct dd_env e;
		if (dd_env_scan(p, n, &e))
			return DD_REJECT;
		if (dd_env_type_is(&e, "drone.returned"))
			return drone_returned(s, &e);
		if (!dd_env_type_is(&e, "delivery.status"))
			return DD_SKIP;	/* other events: not ours to consume */
		return status_event(s, &e);
	}
	if (k.v[K_OP].type) {
		if (dd_jstr_eq(&k.v[K_OP], "cancel", 6))
			return op_cancel(s, &k);
		if (dd_jstr_eq(&k.v[K_OP], "reschedule", 10))
			return op_reschedule(s, &k);
		dd_seterr("unknown \"op\" (cancel or reschedule)");
		return DD_REJECT;
	}
	return new_request(s, &k);
}

/* ---- the filter ---- */

static enum dd_verdict
filter_line(void *ctx, const struct dd_line *l)
{
	struct dd_sched *s = ctx;
	if (s->feed) {
		int r = dd_csvfeed_line(s->feed, l->lineno);
		if (r)
			return r < 0 ? DD_FAIL : DD_REJECT;
	}
	return sched_line(s, l->p, l->n);
}

static const struct dd_line *
filter_origin(void *ctx, const struct dd_line *l)
{
	struct dd_sched *s = ctx;
	const struct dd_line *o = s->feed ? dd_csvfeed_origin(s->feed, l->lineno) : NULL;
	return o ? o : l;
}

static int
filter_commit(void *ctx)
{
	struct dd_sched *s = ctx;
	/* A test aid, like supervise-kill: the loop has flushed the output
	 * of this batch, which is not committed yet. */
	static long commits;
	long kill_at = sched_fault_at("commit-kill:");
	if (kill_at > 0 && s->st.in_tx && ++commits == kill_at)
		raise(SIGKILL);
	if (s->end_failed)
		return -1;	/* dd_errmsg() still says why */
	/* Stopped by a signal: the input ends here, as at its end. */
	if (dd_signalled && s->npend) {
		if (sched_ensure_tx(s) || sched_window_close(s, sched_advance(s, INT64_MIN)))
			return -1;
		if (fflush(s->out) != 0 || ferror(s->out)) {
			dd_seterr("stdout: %s", strerror(errno));
			return -1;
		}
	}
	return sched_commit(s);
}

/* The input has ended: the open window closes. */
static void
filter_end(void *ctx)
{
	struct dd_sched *s = ctx;
	if (s->npend == 0)
		return;
	if (sched_ensure_tx(s) || sched_window_close(s, sched_advance(s, INT64_MIN)))
		s->end_failed = 1;
}

static void
filter_summary(void *ctx, struct dd_buf *b)
{
	struct dd_sched *s = ctx;
	dd_buf_printf(b, "; requests %" PRIu64 " new, %" PRIu64 " replayed; scheduled %" PRIu64
	    ", waiting %" PRIu64 ", invalid %" PRIu64 ", no-drone %" PRIu64 ", deadline %" PRIu64
	    "; operations %" PRIu64
	    " applied, %" PRIu64 " replayed, %" PRIu64 " held, %" PRIu64 " refused; statuses %" PRIu64
	    "; emitted %" PRIu64, s->n_new, s->n_dup, s->n_sched, s->n_wait, s->n_invalid,
	    s->n_nodrone, s->n_late, s->n_ops, s->n_opdup, s->n_held, s->n_refused, s->n_status, s->n_emitted);
	uint64_t drones, nodes, searches;
	dd_fleet_counters(s->fleet, &drones, &nodes, &searches);
	if (s->n_preempt)
		dd_buf_printf(b, "; %" PRIu64 " expedited took the place of %" PRIu64 " normal",
		    s->n_preempt, s->n_moved);
	if (searches)
		dd_buf_printf(b, "; %.1f drones examined per search", (double)drones / (double)searches);
}

/* Before any input is read: a broken store (or a CSV feed that could not
 * start) is reported first, an empty fleet is worth a word. */
static int
filter_start(void *ctx, struct dd_buf *note)
{
	struct dd_sched *s = ctx;
	if (s->feed_err) {
		dd_seterr("%s", s->feed_err);
		return -1;
	}
	if (sched_ensure_tx(s) || sched_commit(s))
		return -1;
	if (dd_fleet_count(s->fleet) == 0)
		dd_buf_printf(note, "%s: the fleet is empty (dd-schedule fleet import FILE,"
		    " or --fleet FILE)", s->st.path);
	return 0;
}

/* The CSV feed ends with the run; its read error fails a run that read
 * all input, and means nothing in one stopped early. */
static int
filter_finish(void *ctx, int code)
{
	struct dd_sched *s = ctx;
	free(s->feed_err);
	s->feed_err = NULL;
	if (s->feed == NULL)
		return 0;
	int finished = code == DD_EXIT_OK || code == DD_EXIT_REJECTED;
	int rc = dd_csvfeed_stop(s->feed, finished);
	s->feed = NULL;
	if (rc && finished) {
		dd_seterr("%s: %s", s->input, dd_errmsg());
		return -1;
	}
	return 0;
}

/* The cells of a CSV request that are not strings. */
static const char *const csv_numbers[] = { "lat", "lon", "alt", "weightKg", "weight", NULL };
static const char *const csv_booleans[] = { "expedited", NULL };

int
dd_sched_filter(struct dd_sched *s, const struct dd_filter_opts *fo, int csv)
{
	static const struct dd_csvfeed_types types = { csv_numbers, csv_booleans };
	struct dd_filter_opts o = *fo;
	struct dd_filter_ops ops = {
		.line = filter_line, .commit = filter_commit, .summary = filter_summary,
		.origin = filter_origin, .start = filter_start, .finish = filter_finish,
		.end = filter_end,
		.store = &s->st,
	};
	o.raw = 1;
	s->input = fo->input;
	if (csv) {
		s->feed = dd_csvfeed_start(fo->fd, &types);
		if (s->feed)
			o.fd = dd_csvfeed_fd(s->feed);
		else
			s->feed_err = dd_strdup(dd_errmsg());	/* filter_start says it */
	}
	return dd_filter_run(&o, &ops, s, NULL);
}
