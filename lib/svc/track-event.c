#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddtime.h"
#include "order.h"
#include "stage.h"
#include "track-int.h"

/* Below this speed (hovering, loading) the drone gives no ETA. */
#define MIN_SPEED 0.5
#define EARTH_M 6371008.8

/* Great-circle distance in metres. */
static double
haversine(double lat1, double lon1, double lat2, double lon2)
{
	double r = M_PI / 180;
	double dlat = (lat2 - lat1) * r, dlon = (lon2 - lon1) * r;
	double a = sin(dlat / 2) * sin(dlat / 2) +
	    cos(lat1 * r) * cos(lat2 * r) * sin(dlon / 2) * sin(dlon / 2);
	return 2 * EARTH_M * asin(sqrt(a > 1 ? 1 : a));
}

static int64_t
eta_after(int64_t t, double metres, double speed)
{
	return t + (int64_t)llround(metres / speed * 1000);
}

/* Recompute the ETAs from the newest position and speed. */
static void
eta_update(struct dlv *d)
{
	if (d->loc.json == NULL || isnan(d->speed) || d->speed < MIN_SPEED ||
	    d->loc_time < d->eta_time)
		return;
	double v = d->speed;
	switch (dd_trk_stage(d)) {
	case DD_STAGE_UNKNOWN:
	case DD_STAGE_CREATED:
	case DD_STAGE_RESCHEDULED:
	case DD_STAGE_HEADED_TO_PICKUP:
		if (d->pickup.json == NULL)
			return;
		d->pickup_eta = eta_after(d->loc_time,
		    haversine(d->loc.lat, d->loc.lon, d->pickup.lat, d->pickup.lon), v);
		if (d->dropoff.json)
			d->dropoff_eta = eta_after(d->pickup_eta, haversine(d->pickup.lat,
			    d->pickup.lon, d->dropoff.lat, d->dropoff.lon), v);
		break;
	case DD_STAGE_HEADED_TO_DROPOFF:
		if (d->dropoff.json == NULL)
			return;
		d->dropoff_eta = eta_after(d->loc_time,
		    haversine(d->loc.lat, d->loc.lon, d->dropoff.lat, d->dropoff.lon), v);
		break;
	default:
		return;
	}
	d->eta_time = d->loc_time;
}

/* ---- events ---- */

enum kind {
	K_NONE, K_SCHEDULED, K_RESCHEDULED, K_CANCELLED, K_DISPATCHED, K_POSITION,
	K_PICKEDUP, K_DELIVERED, K_FAILED, K_RETURNED,
};

/* Each kind's rank in the one order of order.h. */
static const int rank_of[] = {
	[K_NONE] = DD_RANK_OTHER,
	[K_SCHEDULED] = 2 * DD_STAGE_CREATED,
	[K_RESCHEDULED] = 2 * DD_STAGE_RESCHEDULED,
	[K_CANCELLED] = 2 * DD_STAGE_CANCELLED,
	[K_DISPATCHED] = 2 * DD_STAGE_HEADED_TO_PICKUP,
	[K_POSITION] = DD_RANK_POSITION,
	[K_PICKEDUP] = 2 * DD_STAGE_HEADED_TO_DROPOFF,
	[K_DELIVERED] = 2 * DD_STAGE_COMPLETED,
	[K_FAILED] = 2 * DD_STAGE_FAILED,
	[K_RETURNED] = DD_RANK_AFTER,
};

static enum kind
kind_of(const struct dd_env *e)
{
	if (dd_env_type_has_prefix(e, "drone.")) {
		if (dd_env_type_is(e, "drone.position")) return K_POSITION;
		if (dd_env_type_is(e, "drone.dispatched")) return K_DISPATCHED;
		if (dd_env_type_is(e, "drone.picked-up")) return K_PICKEDUP;
		if (dd_env_type_is(e, "drone.delivered")) return K_DELIVERED;
		if (dd_env_type_is(e, "drone.failed")) return K_FAILED;
		if (dd_env_type_is(e, "drone.returned")) return K_RETURNED;
	} else if (dd_env_type_has_prefix(e, "delivery.")) {
		if (dd_env_type_is(e, "delivery.scheduled")) return K_SCHEDULED;
		if (dd_env_type_is(e, "delivery.rescheduled")) return K_RESCHEDULED;
		if (dd_env_type_is(e, "delivery.cancelled")) return K_CANCELLED;
	}
	return K_NONE;
}

/* What one event says, checked before anything changes. */
struct fact {
	enum kind k;
	char did[DD_ID_MAX + 1];
	size_t didlen;
	struct dd_jval drone;		/* string or none */
	struct dd_jval loc;		/* location object or none */
	double lat, lon;
	struct dd_jval pickup, dropoff;
	double plat, plon, dlat, dlon;
	int has_speed, has_battery;
	double speed, battery;
	int64_t peta, deta;		/* DD_NOTIME when not given */
	struct dd_jval reason;		/* a string or none */
};

static int
bad(const char *field, const char *what)
{
	dd_seterr("\"data.%s\" %s", field, what);
	return -1;
}

static int
opt_loc(const struct dd_jval *v, const char *key, double *lat, double *lon)
{
	if (v->type == DD_JNONE || v->type == DD_JNULL)
		return 0;
	if (dd_trk_loc_parse(v, lat, lon))
		return bad(key, "is not a location {lat, lon} in range");
	return 0;
}

static int
opt_time(const struct dd_jval *v, const char *key, int64_t *ms)
{
	*ms = DD_NOTIME;
	if (v->type == DD_JNONE)
		return 0;
	if (v->type != DD_JSTR || v->esc || dd_time_parse(v->p, v->n, ms))
		return bad(key, "is not an RFC 3339 time");
	return 0;
}

static int
opt_num(const struct dd_jval *v, const char *key, double lo, double hi, int *has, double *x)
{
	*has = 0;
	if (v->type == DD_JNONE)
		return 0;
	if (dd_jnum_double(v, x) || *x < lo || *x > hi)
		return bad(key, "is not a number in range");
	*has = 1;
	return 0;
}

static int
key_is(const struct dd_jval *k, const char *s, size_t n)
{
	return k->esc ? dd_jstr_eq(k, s, n) : k->n == n && memcmp(k->p, s, n) == 0;
}
#define KEY_IS(k, lit) key_is(k, lit, sizeof lit - 1)

static int
read_data(const struct dd_env *e, struct fact *f)
{
	/* One pass over data for every member used (the last of duplicate
	 * keys wins, as with dd_json_get). */
	struct dd_jval k, v, did = { 0 }, pe = { 0 }, de = { 0 }, sp = { 0 }, bat = { 0 };
	struct dd_jval reason = { 0 };
	size_t pos = 0;
	f->drone.type = f->loc.type = f->pickup.type = f->dropoff.type = DD_JNONE;
	while (dd_json_next(&e->data, &pos, &k, &v)) {
		switch (k.n ? k.p[0] : 0) {
		case 'b': if (KEY_IS(&k, "battery")) bat = v; break;
		case 'd':
			if (KEY_IS(&k, "droneId")) f->drone = v;
			else if (KEY_IS(&k, "deliveryId")) did = v;
			else if (KEY_IS(&k, "dropoff")) f->dropoff = v;
			else if (KEY_IS(&k, "dropoffEta")) de = v;
			break;
		case 'l': if (KEY_IS(&k, "location")) f->loc = v; break;
		case 'p':
			if (KEY_IS(&k, "pickup")) f->pickup = v;
			else if (KEY_IS(&k, "pickupEta")) pe = v;
			break;
		case 's': if (KEY_IS(&k, "speedMps")) sp = v; break;
		case 'r': if (KEY_IS(&k, "reason")) reason = v; break;
		default:
			/* An escaped key: compare it decoded. */
			if (k.esc) {
				if (KEY_IS(&k, "battery")) bat = v;
				else if (KEY_IS(&k, "droneId")) f->drone = v;
				else if (KEY_IS(&k, "deliveryId")) did = v;
				else if (KEY_IS(&k, "location")) f->loc = v;
				else if (KEY_IS(&k, "speedMps")) sp = v;
				else if (KEY_IS(&k, "pickup")) f->pickup = v;
				else if (KEY_IS(&k, "dropoff")) f->dropoff = v;
				else if (KEY_IS(&k, "pickupEta")) pe = v;
				else if (KEY_IS(&k, "dropoffEta")) de = v;
				else if (KEY_IS(&k, "reason")) reason = v;
			}
		}
	}
	/* What dd_event_check_data requires of telemetry (see read_fact). */
	if (f->k >= K_DISPATCHED) {
		if (f->drone.type == DD_JNONE)
			return bad("droneId", "is missing");
		if (f->k == K_POSITION && (f->loc.type == DD_JNONE || sp.type == DD_JNONE ||
		    bat.type == DD_JNONE))
			return bad(f->loc.type == DD_JNONE ? "location" :
			    sp.type == DD_JNONE ? "speedMps" : "battery", "is missing");
		if (f->k == K_FAILED && reason.type != DD_JSTR)
			return bad("reason", "is missing or not a string");
	}
	f->reason = reason.type == DD_JSTR ? reason : (struct dd_jval){ 0 };
	if (f->k <= K_CANCELLED) {
		int n = dd_env_str(&did, f->did, sizeof f->did);	/* a string: checked */
		if (n <= 0)
			return bad("deliveryId", "is empty or longer than 128 bytes");
		f->didlen = (size_t)n;
	} else {
		if (e->subject.type == DD_JNONE) {
			dd_seterr("missing \"subject\" (the delivery id)");
			return -1;
		}
		int n = dd_env_str(&e->subject, f->did, sizeof f->did);
		if (n <= 0) {
			dd_seterr("\"subject\" is longer than %d bytes", DD_ID_MAX);
			return -1;
		}
		f->didlen = (size_t)n;
	}
	if (f->drone.type == DD_JNULL)
		f->drone.type = DD_JNONE;
	else if (f->drone.type != DD_JNONE && (f->drone.type != DD_JSTR || f->drone.n == 0))
		return bad("droneId", "is not a non-empty string");
	if (opt_loc(&f->loc, "location", &f->lat, &f->lon) ||
	    opt_num(&sp, "speedMps", 0, 1e6, &f->has_speed, &f->speed) ||
	    opt_num(&bat, "battery", 0, 1, &f->has_battery, &f->battery))
		return -1;
	if (f->loc.type == DD_JNULL)
		f->loc.type = DD_JNONE;
	f->peta = f->deta = DD_NOTIME;
	if (f->k == K_SCHEDULED || f->k == K_RESCHEDULED) {
		if (opt_loc(&f->pickup, "pickup", &f->plat, &f->plon) ||
		    opt_loc(&f->dropoff, "dropoff", &f->dlat, &f->dlon) ||
		    opt_time(&pe, "pickupEta", &f->peta) || opt_time(&de, "dropoffEta", &f->deta))
			return -1;
		if (f->pickup.type == DD_JNULL)
			f->pickup.type = DD_JNONE;
		if (f->dropoff.type == DD_JNULL)
			f->dropoff.type = DD_JNONE;
	} else {
		f->pickup.type = f->dropoff.type = DD_JNONE;
	}
	return 0;
}

/*
 * The data of one event, checked. delivery.* events are few: the
 * library's per-type check runs first. Telemetry is the bulk: read_data
 * checks all that the library checks of drone.* (and more) in its one
 * pass, and the library's check runs only for a bad event, so its
 * wording wins where it has something to say.
 */
static int
read_fact(const struct dd_env *e, struct fact *f)
{
	if (f->k <= K_CANCELLED ? dd_event_check_data(e) : dd_event_check_version(e))
		return -1;
	if (read_data(e, f) == 0)
		return 0;
	char *why = dd_strdup(dd_errmsg());
	if (dd_event_check_data(e) == 0)
		dd_seterr("%s", why);
	free(why);
	return -1;
}

/* Positions come by the million: the block is reused when it fits. */
static void
set_loc(struct loc *l, const struct dd_jval *v, double lat, double lon)
{
	if (l->json == NULL || malloc_usable_size(l->json) <= v->n) {
		free(l->json);
		l->json = dd_malloc(v->n + 1);
	}
	memcpy(l->json, v->p, v->n);
	l->json[v->n] = '\0';
	l->lat = lat;
	l->lon = lon;
}

static void
final_event(struct dlv *d, int stage, int64_t t)
{
	/* The earliest final event wins (at equal times, the lower stage). */
	if (!d->fstage || t < d->t_final || (t == d->t_final && stage < d->fstage)) {
		d->fstage = stage;
		d->t_final = t;
	}
}

static void
apply(struct dd_track *t, struct dlv *d, const struct fact *f, int64_t ts)
{
	switch (f->k) {
	case K_SCHEDULED: if (ts > d->t_sched) d->t_sched = ts; break;
	case K_RESCHEDULED: if (ts > d->t_resched) d->t_resched = ts; break;
	case K_DISPATCHED: if (ts > d->t_disp) d->t_disp = ts; break;
	case K_PICKEDUP: if (ts > d->t_pick) d->t_pick = ts; break;
	case K_CANCELLED: final_event(d, DD_STAGE_CANCELLED, ts); break;
	case K_DELIVERED: final_event(d, DD_STAGE_COMPLETED, ts); break;
	case K_FAILED: final_event(d, DD_STAGE_FAILED, ts); break;
	default: break;
	}
	/* Every other field: the newest event that carries it wins. */
	/* At equal times, the later step of the one order (a reschedule's
	 * drone over its schedule's, whatever came first). */
	if (f->drone.type == DD_JSTR && (ts > d->drone_time ||
	    (ts == d->drone_time && rank_of[f->k] >= d->drone_rank))) {
		d->drone_rank = rank_of[f->k];
		dd_buf_reset(&t->str);
		dd_jstr_decode(&f->drone, &t->str);
		/* Mostly the same drone as before: kept, not copied again. */
		size_t dn;
		const char *dr = dd_trk_drone(d, &dn);
		if (dr == NULL || dn != t->str.len || memcmp(dr, t->str.p, dn) != 0)
			dd_trk_drone_set(d, t->str.p ? t->str.p : "", t->str.len);
		d->drone_time = ts;
	}
	if (f->pickup.type == DD_JOBJ && ts >= d->pickup_time) {
		set_loc(&d->pickup, &f->pickup, f->plat, f->plon);
		d->pickup_time = ts;
	}
	if (f->dropoff.type == DD_JOBJ && ts >= d->dropoff_time) {
		set_loc(&d->dropoff, &f->dropoff, f->dlat, f->dlon);
		d->dropoff_time = ts;
	}
	if ((f->peta != DD_NOTIME || f->deta != DD_NOTIME) && ts >= d->eta_time) {
		if (f->peta != DD_NOTIME)
			d->pickup_eta = f->peta;
		if (f->deta != DD_NOTIME)
			d->dropoff_eta = f->deta;
		d->eta_time = ts;
	}
	/* The delivery's location is the drone's until the delivery ends:
	 * positions of the flight home do not move it, and a final event
	 * replaces one of those that arrived before it. */
	int after_end = d->fstage && ts > d->t_final;
	int stale = d->fstage && d->loc_time > d->t_final;
	if (f->loc.type == DD_JOBJ && !after_end && (ts > d->loc_time || stale)) {
		set_loc(&d->loc, &f->loc, f->lat, f->lon);
		d->loc_time = ts;
		d->speed = f->has_speed ? f->speed : NAN;
		if (f->has_battery)
			d->battery = f->battery;
		eta_update(d);
	}
	if (ts > d->updated)
		d->updated = ts;
}

void
dd_trk_add_time(struct dd_buf *b, int64_t ms)
{
	if (ms == DD_NOTIME) {
		dd_buf_adds(b, "null");
		return;
	}
	char tb[DD_TIMEBUF];
	size_t n = dd_time_format(ms, tb);
	dd_buf_addc(b, '"');
	dd_buf_add(b, tb, n);
	dd_buf_addc(b, '"');
}

/* A status event id: DELIVERY:WHAT[:MS], where MS tells apart the same
 * stage in different flights (the reschedule's time), corrected final
 * stages (the end's time) and position buckets. Ids stay within 128
 * bytes: a delivery id too long for the suffix is replaced by its hash. */
static void
add_status_id(struct dd_buf *b, const struct dlv *d, const char *what, int64_t ms)
{
	char suffix[64];
	int n = ms == DD_NOTIME ? snprintf(suffix, sizeof suffix, ":%s", what) :
	    snprintf(suffix, sizeof suffix, ":%s:%" PRId64, what, ms);
	struct dd_buf id = { 0 };
	if (d->idlen + (size_t)n <= DD_ID_MAX)
		dd_buf_add(&id, d->id, d->idlen);
	else
		dd_buf_printf(&id, "h-%016" PRIx64, dd_trk_dlv_hash(d));
	dd_buf_add(&id, suffix, (size_t)n);
	dd_buf_json_str(b, id.p, id.len);
	dd_buf_free(&id);
}

/* A battery level (0-1) as %.3f prints it, without printf where the
 * thousandths are plain: a product more than 1e-6 from a half rounds the
 * same whatever its last bit. */
static void
add_battery(struct dd_buf *b, double v)
{
	double x = v * 1000, r = floor(x + 0.5);
	if (v < 0 || v > 1 || fabs(x - floor(x) - 0.5) < 1e-6) {
		dd_buf_printf(b, "%.3f", v);
		return;
	}
	int k = (int)r;
	char s[6] = { (char)('0' + k / 1000), '.', (char)('0' + k / 100 % 10),
		(char)('0' + k / 10 % 10), (char)('0' + k % 10), 0 };
	dd_buf_add(b, s, 5);
}

static void
emit(struct dd_track *t, const struct dlv *d, const struct dd_env *e, const struct fact *f,
    int prev, int stage, const char *what, int64_t key)
{
	struct dd_buf *b = &t->out;
	dd_buf_reset(b);
	dd_buf_adds(b, "{\"specversion\":\"1.0\",\"id\":");
	add_status_id(b, d, what, key);
	dd_buf_adds(b, ",\"source\":\"/dd-track\",\"type\":\"delivery.status\","
	    "\"dataschema\":\"urn:dd:schema:delivery.status:1\",\"time\":");
	dd_trk_add_time(b, e->time_ms);
	dd_buf_adds(b, ",\"subject\":");
	dd_buf_json_str(b, d->id, d->idlen);
	dd_buf_adds(b, ",\"datacontenttype\":\"application/json\"");
	if (e->traceparent.type == DD_JSTR) {
		/* The status belongs to the trace of the event that caused it. */
		dd_buf_adds(b, ",\"traceparent\":\"");
		dd_buf_add(b, e->traceparent.p, e->traceparent.n);
		dd_buf_addc(b, '"');
	}
	dd_buf_adds(b, ",\"data\":{\"deliveryId\":");
	dd_buf_json_str(b, d->id, d->idlen);
	dd_buf_adds(b, ",\"stage\":\"");
	dd_buf_adds(b, dd_stage_name(stage));
	dd_buf_adds(b, "\",\"previousStage\":");
	if (prev == DD_STAGE_UNKNOWN) {
		dd_buf_adds(b, "null");
	} else {
		dd_buf_addc(b, '"');
		dd_buf_adds(b, dd_stage_name(prev));
		dd_buf_addc(b, '"');
	}
	dd_buf_adds(b, ",\"droneId\":");
	size_t dn;
	const char *dr = dd_trk_drone(d, &dn);
	if (dr)
		dd_buf_json_str(b, dr, dn);
	else
		dd_buf_adds(b, "null");
	dd_buf_adds(b, ",\"location\":");
	dd_buf_adds(b, d->loc.json ? d->loc.json : "null");
	dd_buf_adds(b, ",\"pickupEta\":");
	dd_trk_add_time(b, d->pickup_eta);
	dd_buf_adds(b, ",\"dropoffEta\":");
	dd_trk_add_time(b, d->dropoff_eta);
	/* Optional fields (version 1 still: adding one is compatible): the
	 * last battery reported, and the reason of the event that ended the
	 * delivery, so the history holds what the deliveries view shows. */
	if (!isnan(d->battery)) {
		dd_buf_adds(b, ",\"battery\":");
		add_battery(b, d->battery);
	}
	if (dd_stage_final(stage) && stage != prev && f->reason.type == DD_JSTR) {
		dd_buf_adds(b, ",\"reason\":\"");
		dd_buf_add(b, f->reason.p, f->reason.n);
		dd_buf_addc(b, '"');
	}
	dd_buf_adds(b, "}}\n");
	fwrite(b->p, 1, b->len, t->o.out);
	t->emitted++;
}

/* The id of the stage's status event tells flights and ends apart. */
static int64_t
stage_key(const struct dlv *d, int stage)
{
	if (dd_stage_final(stage))
		return d->t_final;
	return d->t_resched;
}

enum dd_verdict
dd_track_event(struct dd_track *t, const struct dd_line *l, const struct dd_env *e)
{
	struct fact f;
	f.k = kind_of(e);
	if (f.k != K_NONE && read_fact(e, &f))
		return DD_REJECT;
	/* Valid: passed on unchanged, whatever it is. */
	if (!t->o.only_status) {
		/* fulllen: a CR before the newline stays, as it came. */
		fwrite(l->p, 1, (size_t)l->fulllen, t->o.out);
		putc('\n', t->o.out);
	}
	if (f.k == K_NONE)
		return DD_SKIP;
	int64_t ts = e->time_ms;
	if (t->max_time == DD_NOTIME || ts > t->max_time)
		t->max_time = ts;
	/* Late telemetry changes nothing worth its cost, but a late end
	 * (delivered, failed, cancelled) still ends its delivery: --retain
	 * bounds how long ended deliveries are kept, never whether one can
	 * end. A delivery already over (removed, or ended and past
	 * --retain) stays as it is, below. */
	int late = ts < dd_trk_horizon(t);
	if (late && f.k != K_DELIVERED && f.k != K_FAILED && f.k != K_CANCELLED) {
		t->late++;
		return DD_ACCEPT;
	}
	struct dlv *d;
	int over = dd_trk_lookup(t, f.did, f.didlen, &d);
	if (over < 0)
		return DD_FAIL;
	if (over) {
		t->after_removal++;
		return DD_ACCEPT;
	}
	size_t idn;
	const char *id = dd_jstr_text(&e->id, &t->str, &idn);
	if (dd_trk_seen(d, id, idn)) {
		t->dups++;
		return DD_ACCEPT;
	}
	dd_trk_seen_add(d, ts, id, idn);
	if (late)
		t->late_ends++;
	int64_t pos_before = d->loc_time;
	int prev = dd_trk_stage(d);
	apply(t, d, &f, ts);
	int stage = dd_trk_stage(d);
	dd_trk_dirty(t, d);
	/* With --position-every, at most one status per delivery per interval
	 * of event time carries a new position; a stage change that carries
	 * one counts as that interval's. */
	int64_t every = t->o.position_every_ms, b = DD_NOTIME;
	if (every && d->loc_time == ts)
		b = ts - (ts % every + every) % every;	/* the interval's start */
	if (stage != prev && stage != DD_STAGE_UNKNOWN) {
		emit(t, d, e, &f, prev, stage, dd_stage_name(stage), stage_key(d, stage));
		if (b != DD_NOTIME && b > d->pos_ms)
			d->pos_ms = b;
	} else if (b != DD_NOTIME && b > d->pos_ms && pos_before < ts &&
	    stage != DD_STAGE_UNKNOWN && !dd_stage_final(stage)) {
		d->pos_ms = b;
		emit(t, d, e, &f, stage, stage, "position", b);
	}
	return DD_ACCEPT;
}

