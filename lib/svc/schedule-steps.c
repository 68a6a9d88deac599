/*
 * The steps of a work item and the event each emits (package.registered,
 * delivery.scheduled, .rescheduled, .cancelled, .rejected, drone.released,
 * package.removed), logged with the item so a replay or a crash never
 * emits a step twice under two ids; and the moves built of them: assign a
 * drone, compensate, retry the waiting items when a drone frees time.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ddtime.h"
#include "schedule-int.h"

#define SOURCE "/dd-schedule"

/* ---- events ---- */

/*
 * Emit one event of the item's step with data (a JSON object's text) and
 * log it; the id comes from the delivery and the step. With check set,
 * a step already in the log is not done again (0 is returned).
 */
static int
emit(struct dd_sched *s, struct item *it, int64_t t, const char *step, const char *type,
    const char *subject, const struct dd_buf *data, const char *detail, int check)
{
	char eid[24], ts[DD_TIMEBUF];
	if (check) {
		int done = sched_step_done(s, it, step);
		if (done)
			return done < 0 ? -1 : 0;
	}
	sched_derive_eid(it->did, step, eid);
	dd_time_format(t, ts);
	struct dd_buf *b = &s->ev;
	dd_buf_reset(b);
	dd_buf_adds(b, "{\"specversion\":\"1.0\",\"id\":\"");
	dd_buf_adds(b, eid);
	dd_buf_adds(b, "\",\"source\":\"" SOURCE "\",\"type\":\"");
	dd_buf_adds(b, type);
	/* The schema and major version of the data (SPEC.md). */
	dd_buf_adds(b, "\",\"dataschema\":\"urn:dd:schema:");
	dd_buf_adds(b, type);
	dd_buf_adds(b, ":1\",\"time\":\"");
	dd_buf_adds(b, ts);
	dd_buf_adds(b, "\",\"subject\":");
	dd_buf_json_str(b, subject, strlen(subject));
	dd_buf_adds(b, ",\"datacontenttype\":\"application/json\",\"data\":");
	dd_buf_add(b, data->p, data->len);
	dd_buf_adds(b, "}\n");
	if (fwrite(b->p, 1, b->len, s->out) != b->len) {
		dd_seterr("stdout: %s", strerror(errno));
		return -1;
	}
	s->n_emitted++;
	return sched_log_row(s, it, t, step, detail, NULL);
}

static void
data_begin(struct dd_sched *s)
{
	dd_buf_reset(&s->data);
	dd_buf_addc(&s->data, '{');
}

static struct dd_buf *
data_end(struct dd_sched *s)
{
	dd_buf_addc(&s->data, '}');
	return &s->data;
}

static void
package_json(struct dd_buf *b, const struct item *it)
{
	sched_jkey(b, "package");
	dd_buf_addc(b, '{');
	sched_jstr(b, "packageId", it->package_id);
	sched_jstr(b, "size", dd_size_name(it->size));
	sched_jdbl(b, "weightKg", it->kg);
	if (it->tag)
		sched_jstr(b, "tag", it->tag);
	dd_buf_addc(b, '}');
}

/* The terms of a valid request, as delivery.scheduled has them. */
void
sched_terms_json(struct dd_buf *b, const struct item *it)
{
	sched_jloc(b, "pickup", it->pk_lat, it->pk_lon, it->pk_alt);
	sched_jloc(b, "dropoff", it->dr_lat, it->dr_lon, it->dr_alt);
	sched_jtime(b, "pickupTime", it->pickup_time);
	sched_jtime(b, "deadline", it->deadline);
	sched_jkey(b, "expedited");
	dd_buf_adds(b, it->expedited ? "true" : "false");
	sched_jstr(b, "confirmationRequired", sched_confirm_names[it->confirm]);
	package_json(b, it);
}

void
sched_etas_json(struct dd_buf *b, const struct item *it)
{
	sched_jstr(b, "droneId", it->drone);
	sched_jtime(b, "pickupEta", it->pickup_eta);
	sched_jtime(b, "dropoffEta", it->dropoff_eta);
	sched_jtime(b, "departureEta", it->depart);
	sched_jtime(b, "returnEta", it->return_eta);
}

int
sched_emit_registered(struct dd_sched *s, struct item *it, int64_t t)
{
	data_begin(s);
	struct dd_buf *b = &s->data;
	sched_jstr(b, "packageId", it->package_id);
	sched_jstr(b, "ownerId", it->owner);
	sched_jstr(b, "deliveryId", it->did);
	sched_jstr(b, "size", dd_size_name(it->size));
	sched_jdbl(b, "weightKg", it->kg);
	if (it->tag)
		sched_jstr(b, "tag", it->tag);
	return emit(s, it, t, "registered", "package.registered", it->package_id, data_end(s),
	    NULL, 0);
}

static int
emit_scheduled(struct dd_sched *s, struct item *it, int64_t t)
{
	data_begin(s);
	struct dd_buf *b = &s->data;
	sched_jstr(b, "deliveryId", it->did);
	sched_jstr(b, "requestId", it->rid);
	sched_jstr(b, "ownerId", it->owner);
	sched_terms_json(b, it);
	sched_etas_json(b, it);
	sched_jkey(b, "attempt");
	dd_buf_printf(b, "%d", it->attempt);
	return emit(s, it, t, "scheduled", "delivery.scheduled", it->did, data_end(s), it->drone, 0);
}

int
sched_emit_released(struct dd_sched *s, struct item *it, int64_t t, const char *drone,
    int version, const char *reason, int check)
{
	char step[32];
	snprintf(step, sizeof step, "released.%d", version);
	data_begin(s);
	struct dd_buf *b = &s->data;
	sched_jstr(b, "droneId", drone);
	sched_jstr(b, "deliveryId", it->did);
	sched_jstr(b, "reason", reason);
	return emit(s, it, t, step, "drone.released", it->did, data_end(s), drone, check);
}

static int
emit_removed(struct dd_sched *s, struct item *it, int64_t t, const char *reason, int check)
{
	data_begin(s);
	struct dd_buf *b = &s->data;
	sched_jstr(b, "packageId", it->package_id);
	sched_jstr(b, "deliveryId", it->did);
	sched_jstr(b, "reason", reason);
	return emit(s, it, t, "removed", "package.removed", it->package_id, data_end(s), reason,
	    check);
}

static int
emit_cancelled(struct dd_sched *s, struct item *it, int64_t t, const char *reason, int check)
{
	data_begin(s);
	struct dd_buf *b = &s->data;
	sched_jstr(b, "deliveryId", it->did);
	sched_jstr(b, "reason", reason);
	return emit(s, it, t, "cancelled", "delivery.cancelled", it->did, data_end(s), reason,
	    check);
}

/* delivery.rejected; message explains an invalid field. */
int
sched_emit_rejected(struct dd_sched *s, struct item *it, int64_t t, const char *reason,
    const char *message, int check)
{
	data_begin(s);
	struct dd_buf *b = &s->data;
	sched_jstr(b, "requestId", it->rid);
	if (*it->owner)
		sched_jstr(b, "ownerId", it->owner);
	if (it->valid)
		sched_jstr(b, "deliveryId", it->did);
	sched_jstr(b, "reason", reason);
	if (*it->field)
		sched_jstr(b, "field", it->field);
	if (message)
		sched_jstr(b, "message", message);
	return emit(s, it, t, "rejected", "delivery.rejected", it->did, data_end(s),
	    *it->field ? it->field : reason, check);
}

/* delivery.refused: an operation (op) refused because of where the
 * package is (reason); hash names the operation, so each is said once. */
int
sched_emit_refused(struct dd_sched *s, struct item *it, int64_t t, const char *op,
    const char *reason, const char *hash)
{
	char step[32];
	snprintf(step, sizeof step, "refused.%.16s", hash);
	data_begin(s);
	struct dd_buf *b = &s->data;
	sched_jstr(b, "deliveryId", it->did);
	sched_jstr(b, "op", op);
	sched_jstr(b, "reason", reason);
	if (*it->stage)
		sched_jstr(b, "stage", it->stage);
	if (*it->drone)
		sched_jstr(b, "droneId", it->drone);
	return emit(s, it, t, step, "delivery.refused", it->did, data_end(s), reason, 1);
}

int
sched_emit_rescheduled(struct dd_sched *s, struct item *it, int64_t t, unsigned changed,
    const char *reason)
{
	char step[32];
	snprintf(step, sizeof step, "rescheduled.%d", it->version);
	data_begin(s);
	struct dd_buf *b = &s->data;
	sched_jstr(b, "deliveryId", it->did);
	if (changed & CH_PICKUP)
		sched_jloc(b, "pickup", it->pk_lat, it->pk_lon, it->pk_alt);
	if (changed & CH_DROPOFF)
		sched_jloc(b, "dropoff", it->dr_lat, it->dr_lon, it->dr_alt);
	if (changed & CH_PTIME)
		sched_jtime(b, "pickupTime", it->pickup_time);
	if (changed & CH_DEADLINE)
		sched_jtime(b, "deadline", it->deadline);
	if (changed & CH_EXPEDITED) {
		sched_jkey(b, "expedited");
		dd_buf_adds(b, it->expedited ? "true" : "false");
	}
	if (changed & CH_CONFIRM)
		sched_jstr(b, "confirmationRequired", sched_confirm_names[it->confirm]);
	if (*it->drone)
		sched_etas_json(b, it);
	sched_jstr(b, "reason", reason);
	return emit(s, it, t, step, "delivery.rescheduled", it->did, data_end(s), reason, 1);
}

/* ---- assignment ---- */

void
sched_trip_of(const struct item *it, int64_t now, int exclude, struct dd_trip *t)
{
	t->pk_lat = it->pk_lat;
	t->pk_lon = it->pk_lon;
	t->dr_lat = it->dr_lat;
	t->dr_lon = it->dr_lon;
	t->pickup_time = it->pickup_time;
	t->deadline = it->deadline;
	t->now = now;
	t->size = it->size;
	t->kg = it->kg;
	t->exclude = exclude;
}

/* Forget the item's drone booking (the drone is free for others). */
void
sched_unbook(struct dd_sched *s, struct item *it)
{
	int i = *it->drone ? dd_fleet_find(s->fleet, it->drone) : -1;
	if (i >= 0)
		dd_fleet_unbook(s->fleet, i, item_key(it));
	it->busy_until = DD_NOTIME;
}

/* Book the plan's drone for the item and emit delivery.scheduled (the
 * first time) or delivery.rescheduled. */
int
sched_assign(struct dd_sched *s, struct item *it, const struct dd_plan *p, int64_t t,
    unsigned changed, const char *reason)
{
	/* A normal delivery's booking may later make room for an expedited
	 * one, until its drone is on its way. */
	if (dd_fleet_book_movable(s->fleet, p->drone, p->depart, p->busy_end, item_key(it),
	    it->expedited ? NULL : it->did))
		return -1;
	snprintf(it->drone, sizeof it->drone, "%s", dd_fleet_spec(s->fleet, p->drone)->id);
	it->version++;
	it->depart = p->depart;
	it->pickup_eta = p->pickup;
	it->dropoff_eta = p->dropoff;
	it->return_eta = p->ret;
	it->busy_until = p->busy_end;
	it->stage[0] = it->prev_stage[0] = '\0';
	it->stage_time = INT64_MIN;
	it->state = ST_SCHEDULED;
	it->updated = t;
	s->n_sched++;
	if (!it->ever) {
		it->ever = 1;
		return emit_scheduled(s, it, t);
	}
	return sched_emit_rescheduled(s, it, t, changed, reason);
}

/*
 * Undo the completed steps of an item, in reverse order: release its
 * drone, remove its package, then cancel the delivery (cancel set: the
 * client asked, or it had a drone) or reject the request. Steps already
 * logged are not redone.
 */
int
sched_compensate(struct dd_sched *s, struct item *it, int64_t t, const char *reason, int check,
    int cancel)
{
	it->state = cancel ? ST_CANCELLED : ST_REJECTED;
	it->updated = t;
	snprintf(it->reason, sizeof it->reason, "%s", reason);
	if (*it->drone) {
		/* A drone that may have left keeps its booking until it is home
		 * and turned around: released from the delivery, but never
		 * bookable while it may be flying. */
		if (it->depart == DD_NOTIME || t < it->depart)
			sched_unbook(s, it);
		if (sched_emit_released(s, it, t, it->drone, it->version, reason, check))
			return -1;
	}
	if (emit_removed(s, it, t, reason, check))
		return -1;
	int rc = cancel ? emit_cancelled(s, it, t, reason, check)
	    : sched_emit_rejected(s, it, t, reason, NULL, check);
	it->held[0] = it->held_op[0] = '\0';	/* decided (reason may be it->held) */
	return rc;
}

/* A drone freed time at t: the waiting items it can now fly, most urgent
 * first. Only that drone changed, so only it needs trying. */
int
sched_retry_waiting(struct dd_sched *s, const char *drone, int64_t t)
{
	int i = dd_fleet_find(s->fleet, drone);
	if (i < 0)
		return 0;
	for (size_t k = 0; k < s->nwait;) {
		struct item *it = s->wait[k];
		struct dd_trip tr;
		struct dd_plan p;
		sched_trip_of(it, t, -1, &tr);
		if (it->deadline < t || dd_fleet_fit(s->fleet, i, &tr, &p) != DD_FIT_OK) {
			k++;
			continue;
		}
		memmove(s->wait + k, s->wait + k + 1, (s->nwait - k - 1) * sizeof *s->wait);
		s->nwait--;
		s->n_retried++;
		int rc = sched_assign(s, it, &p, t, 0, "drone-freed") || sched_item_put(s, it);
		sched_item_free(it);
		if (rc)
			return -1;
	}
	return 0;
}
