/* The deliveries view: one delivery.summary per ended delivery (view.h). */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ddtime.h"
#include "json.h"
#include "store.h"
#include "stage.h"
#include "view.h"

/* A JSON value kept as its text ("null" when there is none). */
enum {
	F_DELIVERY, F_REQUEST, F_OWNER, F_DRONE, F_ATTEMPT, F_REASON, F_PKGID, F_SIZE,
	F_WEIGHT, F_BATTERY, F_LOCATION, F_N
};

struct dd_view {
	struct dd_buf key, id;
	struct dd_buf f[F_N];
	int has_origin;		/* requestId, ownerId from a schedule or rejection */
	int outcome;		/* a final stage, or 0 */
	int64_t created, dispatched, picked, ended, deadline;
	uint64_t events;
	struct dd_buf out;
};

struct dd_view *
dd_view_new(void)
{
	return dd_calloc(1, sizeof(struct dd_view));
}

void
dd_view_free(struct dd_view *v)
{
	if (v == NULL)
		return;
	dd_buf_free(&v->key);
	dd_buf_free(&v->id);
	for (int i = 0; i < F_N; i++)
		dd_buf_free(&v->f[i]);
	dd_buf_free(&v->out);
	free(v);
}

void
dd_view_begin(struct dd_view *v, const char *key, size_t keylen)
{
	dd_buf_reset(&v->key);
	dd_buf_add(&v->key, key, keylen);
	for (int i = 0; i < F_N; i++)
		dd_buf_reset(&v->f[i]);
	v->has_origin = v->outcome = 0;
	v->created = v->dispatched = v->picked = v->ended = v->deadline = DD_NOTIME;
	v->events = 0;
}

/* Keep a value's JSON text: strings as they came, quotes and escapes. */
static void
keep(struct dd_buf *b, const struct dd_jval *v)
{
	dd_buf_reset(b);
	if (v->type == DD_JNONE)
		return;
	if (v->type == DD_JSTR)
		dd_buf_addc(b, '"');
	dd_buf_add(b, v->p, v->n);
	if (v->type == DD_JSTR)
		dd_buf_addc(b, '"');
}

/* Keep data.NAME when it is present and of type t (DD_JNONE: any but null). */
static int
keep_member(struct dd_buf *b, const struct dd_jval *obj, const char *name, enum dd_jtype t)
{
	struct dd_jval x;
	if (!dd_json_get(obj, name, strlen(name), &x) || x.type == DD_JNULL ||
	    (t != DD_JNONE && x.type != t))
		return 0;
	keep(b, &x);
	return 1;
}

static int64_t
time_member(const struct dd_jval *obj, const char *name)
{
	struct dd_jval x;
	int64_t ms;
	if (!dd_json_get(obj, name, strlen(name), &x) || x.type != DD_JSTR || x.esc ||
	    dd_time_parse(x.p, x.n, &ms))
		return DD_NOTIME;
	return ms;
}

/* The schedule's terms: package, deadline, attempt (a reschedule may
 * change the first two). */
static void
terms(struct dd_view *v, const struct dd_jval *data)
{
	struct dd_jval pkg;
	if (dd_json_get(data, "package", 7, &pkg) && pkg.type == DD_JOBJ) {
		keep_member(&v->f[F_PKGID], &pkg, "packageId", DD_JSTR);
		keep_member(&v->f[F_SIZE], &pkg, "size", DD_JSTR);
		keep_member(&v->f[F_WEIGHT], &pkg, "weightKg", DD_JNUM);
	}
	int64_t dl = time_member(data, "deadline");
	if (dl != DD_NOTIME)
		v->deadline = dl;
}

/* The stage of a delivery.status, and whether it is a change. */
static int
status_stage(const struct dd_jval *data, int *change)
{
	struct dd_jval st, prev;
	int s = -1, p = -1;
	if (dd_json_get(data, "stage", 5, &st) && st.type == DD_JSTR && !st.esc)
		s = dd_stage_lookup(st.p, st.n, DD_STAGE_SPEC);
	if (dd_json_get(data, "previousStage", 13, &prev) && prev.type == DD_JSTR && !prev.esc)
		p = dd_stage_lookup(prev.p, prev.n, DD_STAGE_SPEC);
	*change = s != p;
	return s;
}

void
dd_view_add(struct dd_view *v, const struct dd_env *e)
{
	v->events++;
	if (v->created == DD_NOTIME || e->time_ms < v->created)
		v->created = e->time_ms;
	if (v->outcome || !dd_env_type_has_prefix(e, "delivery."))
		return;		/* after the end: counted, nothing else */
	const struct dd_jval *data = &e->data;
	int final = 0, change = 0;
	if (dd_env_type_is(e, "delivery.scheduled") || dd_env_type_is(e, "delivery.rejected")) {
		if (!v->has_origin) {
			v->has_origin = 1;
			keep_member(&v->f[F_REQUEST], data, "requestId", DD_JSTR);
			keep_member(&v->f[F_OWNER], data, "ownerId", DD_JSTR);
		}
		keep_member(&v->f[F_DELIVERY], data, "deliveryId", DD_JSTR);
		if (dd_env_type_is(e, "delivery.scheduled")) {
			terms(v, data);
			if (!keep_member(&v->f[F_ATTEMPT], data, "attempt", DD_JNUM))
				dd_buf_reset(&v->f[F_ATTEMPT]);
		} else {
			final = DD_STAGE_REJECTED;
		}
	} else if (dd_env_type_is(e, "delivery.rescheduled")) {
		terms(v, data);
		v->dispatched = v->picked = DD_NOTIME;	/* a new flight */
	} else if (dd_env_type_is(e, "delivery.cancelled")) {
		final = DD_STAGE_CANCELLED;
	} else if (dd_env_type_is(e, "delivery.status")) {
		int s = status_stage(data, &change);
		if (s == DD_STAGE_RESCHEDULED && change)
			v->dispatched = v->picked = DD_NOTIME;
		else if (s == DD_STAGE_HEADED_TO_PICKUP && change && v->dispatched == DD_NOTIME)
			v->dispatched = e->time_ms;
		else if (s == DD_STAGE_HEADED_TO_DROPOFF && change && v->picked == DD_NOTIME)
			v->picked = e->time_ms;
		else if (dd_stage_final(s))
			final = s;
		keep_member(&v->f[F_LOCATION], data, "location", DD_JOBJ);
		keep_member(&v->f[F_BATTERY], data, "battery", DD_JNUM);
	} else {
		return;
	}
	keep_member(&v->f[F_DRONE], data, "droneId", DD_JSTR);
	if (final) {
		v->outcome = final;
		v->ended = e->time_ms;
		keep_member(&v->f[F_REASON], data, "reason", DD_JSTR);
	}
}

static void
put_field(struct dd_buf *b, const char *name, const struct dd_buf *val)
{
	dd_buf_printf(b, ",\"%s\":", name);
	if (val->len)
		dd_buf_add(b, val->p, val->len);
	else
		dd_buf_adds(b, "null");
}

static void
put_time(struct dd_buf *b, const char *name, int64_t ms)
{
	char t[DD_TIMEBUF];
	dd_buf_printf(b, ",\"%s\":", name);
	if (ms == DD_NOTIME)
		dd_buf_adds(b, "null");
	else
		dd_buf_printf(b, "\"%.*s\"", (int)dd_time_format(ms, t), t);
}

int
dd_view_summary(struct dd_view *v, struct dd_buf *out, int64_t *time_ms,
    const char **id, size_t *idlen, const char **subject, size_t *sublen)
{
	if (!v->outcome)
		return 0;
	/* The id names the delivery, within the 128 bytes of an id. */
	dd_buf_reset(&v->id);
	if (v->key.len + 8 <= DD_ID_MAX)
		dd_buf_printf(&v->id, "summary:%.*s", (int)v->key.len, v->key.p);
	else
		dd_buf_printf(&v->id, "summary:h-%016" PRIx64, dd_hash64(v->key.p, v->key.len));
	struct dd_buf *b = out;
	char t[DD_TIMEBUF];
	dd_buf_reset(b);
	dd_buf_adds(b, "{\"specversion\":\"1.0\",\"id\":");
	dd_buf_json_str(b, v->id.p, v->id.len);
	dd_buf_adds(b, ",\"source\":\"/dd-archive\",\"type\":\"delivery.summary\","
	    "\"dataschema\":\"urn:dd:schema:delivery.summary:1\",\"time\":");
	dd_buf_printf(b, "\"%.*s\"", (int)dd_time_format(v->ended, t), t);
	dd_buf_adds(b, ",\"subject\":");
	dd_buf_json_str(b, v->key.p, v->key.len);
	dd_buf_adds(b, ",\"datacontenttype\":\"application/json\",\"data\":{\"deliveryId\":");
	if (v->f[F_DELIVERY].len)
		dd_buf_add(b, v->f[F_DELIVERY].p, v->f[F_DELIVERY].len);
	else if (v->outcome == DD_STAGE_REJECTED)
		dd_buf_adds(b, "null");	/* a request that never got one */
	else
		dd_buf_json_str(b, v->key.p, v->key.len);
	put_field(b, "requestId", &v->f[F_REQUEST]);
	put_field(b, "ownerId", &v->f[F_OWNER]);
	put_field(b, "droneId", &v->f[F_DRONE]);
	if (v->f[F_ATTEMPT].len)
		put_field(b, "attempt", &v->f[F_ATTEMPT]);
	else
		dd_buf_adds(b, ",\"attempt\":1");
	dd_buf_printf(b, ",\"outcome\":\"%s\"", dd_stage_name(v->outcome));
	put_field(b, "reason", &v->f[F_REASON]);
	put_time(b, "created", v->created);
	put_time(b, "dispatched", v->dispatched);
	put_time(b, "pickedUp", v->picked);
	put_time(b, "ended", v->ended);
	put_time(b, "deadline", v->deadline);
	dd_buf_adds(b, ",\"onTime\":");
	if (v->outcome == DD_STAGE_COMPLETED && v->deadline != DD_NOTIME)
		dd_buf_adds(b, v->ended <= v->deadline ? "true" : "false");
	else
		dd_buf_adds(b, "null");
	dd_buf_adds(b, ",\"durationS\":");
	if (v->dispatched != DD_NOTIME && v->ended >= v->dispatched)
		dd_buf_printf(b, "%.3f", (double)(v->ended - v->dispatched) / 1000.0);
	else
		dd_buf_adds(b, "null");
	dd_buf_printf(b, ",\"events\":%" PRIu64 ",\"package\":", v->events);
	if (v->f[F_PKGID].len) {
		dd_buf_adds(b, "{\"packageId\":");
		dd_buf_add(b, v->f[F_PKGID].p, v->f[F_PKGID].len);
		put_field(b, "size", &v->f[F_SIZE]);
		put_field(b, "weightKg", &v->f[F_WEIGHT]);
		dd_buf_addc(b, '}');
	} else {
		dd_buf_adds(b, "null");
	}
	put_field(b, "lastBattery", &v->f[F_BATTERY]);
	put_field(b, "lastLocation", &v->f[F_LOCATION]);
	dd_buf_adds(b, "}}");
	*time_ms = v->ended;
	*id = v->id.p;
	*idlen = v->id.len;
	*subject = v->key.p;
	*sublen = v->key.len;
	return 1;
}
