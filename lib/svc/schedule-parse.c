/*
 * Reading a request's members: ids, locations (SPEC's {lat, lon, alt} or
 * the reference's "altitude,latitude,longitude"), times, the package. The
 * first field at fault is kept with a message, so an invalid request is
 * answered (delivery.rejected) rather than thrown away as bad input.
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ddtime.h"
#include "event.h"
#include "schedule-int.h"

static const char *const knames[K_N] = {
	"specversion", "op", "requestId", "ownerId", "deliveryId", "pickup", "dropoff",
	"pickupTime", "deadline", "expedited", "confirmationRequired", "package",
	"pickupLocation", "dropOffLocation", "packageInfo", "reason",
};

int
sched_key_member(void *ctx, const struct dd_jval *k, const struct dd_jval *v)
{
	struct keys *ks = ctx;
	if (k->esc)
		return 0;
	for (int i = 0; i < K_N; i++)
		if (strlen(knames[i]) == k->n && memcmp(knames[i], k->p, k->n) == 0) {
			ks->v[i] = *v;	/* the last of duplicates wins, as in jq */
			break;
		}
	return 0;
}

static void __attribute__((format(printf, 3, 4)))
fault(struct fault *f, const char *field, const char *fmt, ...)
{
	if (f->field[0])
		return;
	snprintf(f->field, sizeof f->field, "%s", field);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof f->msg, fmt, ap);
	va_end(ap);
}

/* A string id of 1 to 128 bytes without NUL: 1, 0 absent, -1 not one
 * (why in *why). */
int
sched_get_id(const struct dd_jval *v, char out[IDMAX + 1], const char **why)
{
	if (v->type == DD_JNONE) {
		*why = "missing";
		return 0;
	}
	if (v->type != DD_JSTR) {
		*why = "not a string";
		return -1;
	}
	int n = dd_env_str(v, out, IDMAX + 1);
	if (n == 0) {
		*why = "empty";
		return -1;
	}
	if (n < 0) {
		/* dd_env_str refuses both: say which. */
		struct dd_buf b = { 0 };
		dd_jstr_decode(v, &b);
		*why = b.len <= IDMAX ? "a string with a NUL character" : "longer than 128 bytes";
		dd_buf_free(&b);
		return -1;
	}
	return 1;
}

static char *
get_text(const struct dd_jval *v)
{
	struct dd_buf b = { 0 };
	dd_jstr_decode(v, &b);
	if (b.p == NULL)
		return dd_strdup("");
	return b.p;
}

static void
check_coords(struct fault *ft, const char *name, double lat, double lon)
{
	char f[48];
	if (lat < -90 || lat > 90) {
		snprintf(f, sizeof f, "%s.lat", name);
		fault(ft, f, "latitude %g out of range", lat);
	} else if (lon < -180 || lon > 180) {
		snprintf(f, sizeof f, "%s.lon", name);
		fault(ft, f, "longitude %g out of range", lon);
	}
}

/* SPEC.md's {lat, lon, alt} location. */
void
sched_loc_obj(const struct dd_jval *v, const char *name, double *lat, double *lon, double *alt,
    struct fault *ft)
{
	struct dd_jval m;
	char f[48];
	*alt = 0;
	if (v->type == DD_JNONE) {
		fault(ft, name, "missing");
		return;
	}
	if (v->type != DD_JOBJ) {
		fault(ft, name, "not an object with lat and lon");
		return;
	}
	static const char *const parts[] = { "lat", "lon", "alt" };
	double *dst[] = { lat, lon, alt };
	for (int k = 0; k < 3; k++) {
		snprintf(f, sizeof f, "%s.%s", name, parts[k]);
		if (!dd_json_get(v, parts[k], strlen(parts[k]), &m)) {
			if (k < 2)
				fault(ft, f, "missing");
			continue;
		}
		if (m.type != DD_JNUM || dd_jnum_double(&m, dst[k])) {
			fault(ft, f, "not a number");
			return;
		}
	}
	check_coords(ft, name, *lat, *lon);
}

/* A number in text, all of it. */
static int
text_num(const char *s, double *d)
{
	char *end;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0')
		return -1;
	*d = strtod(s, &end);
	while (*end == ' ' || *end == '\t')
		end++;
	return *end == '\0' && isfinite(*d) ? 0 : -1;
}

/* The reference's "altitude,latitude,longitude" string. */
static void
loc_str(const struct dd_jval *v, const char *name, double *lat, double *lon, double *alt,
    struct fault *ft)
{
	if (v->type == DD_JNONE) {
		fault(ft, name, "missing");
		return;
	}
	if (v->type != DD_JSTR) {
		fault(ft, name, "not an \"altitude,latitude,longitude\" string");
		return;
	}
	char *t = get_text(v);
	char *p1 = strchr(t, ','), *p2 = p1 ? strchr(p1 + 1, ',') : NULL;
	int ok = p1 && p2 && !strchr(p2 + 1, ',');
	if (ok) {
		*p1 = *p2 = '\0';
		ok = text_num(t, alt) == 0 && text_num(p1 + 1, lat) == 0 && text_num(p2 + 1, lon) == 0;
	}
	if (!ok) {
		fault(ft, name, "free text has no coordinates: expected \"altitude,latitude,longitude\"");
		free(t);
		return;
	}
	free(t);
	check_coords(ft, name, *lat, *lon);
}

void
sched_get_time(const struct dd_jval *v, const char *name, int64_t *ms, struct fault *ft)
{
	if (v->type == DD_JNONE) {
		fault(ft, name, "missing");
		return;
	}
	char *t = v->type == DD_JSTR ? get_text(v) : NULL;
	if (t == NULL || dd_time_parse(t, strlen(t), ms))
		fault(ft, name, "not an RFC 3339 time");
	free(t);
}

void
sched_get_bool(const struct dd_jval *v, const char *name, int *b, struct fault *ft)
{
	if (v->type == DD_JNONE)
		return;
	if (v->type == DD_JTRUE || v->type == DD_JFALSE)
		*b = v->type == DD_JTRUE;
	else
		fault(ft, name, "not true or false");
}

void
sched_get_confirm(const struct dd_jval *v, int *c, struct fault *ft)
{
	if (v->type == DD_JNONE)
		return;
	for (int k = 0; k < 4; k++)
		if (v->type == DD_JSTR && dd_jstr_eq(v, sched_confirm_names[k], strlen(sched_confirm_names[k]))) {
			*c = k;
			return;
		}
	fault(ft, "confirmationRequired", "not None, FingerPrint, Picture or Voice");
}

/* The package: SPEC's package {packageId, size, weightKg, tag}, or the
 * reference's packageInfo {packageId, size: Small.., weight: 14 or "14"}. */
static void
get_package(struct dd_sched *s, const struct dd_jval *v, int ext, struct item *it,
    struct fault *ft)
{
	const char *name = ext ? "packageInfo" : "package";
	const char *wname = ext ? "weight" : "weightKg";
	char f[48];
	struct dd_jval m;
	const char *why;
	if (v->type == DD_JNONE) {
		fault(ft, name, "missing");
		return;
	}
	if (v->type != DD_JOBJ) {
		fault(ft, name, "not an object");
		return;
	}
	snprintf(f, sizeof f, "%s.packageId", name);
	if (!dd_json_get(v, "packageId", 9, &m))
		m.type = DD_JNONE;
	if (sched_get_id(&m, it->package_id, &why) <= 0)
		fault(ft, f, "%s", why);
	snprintf(f, sizeof f, "%s.size", name);
	if (!dd_json_get(v, "size", 4, &m))
		fault(ft, f, "missing");
	else if (m.type != DD_JSTR || m.esc ||
	    (it->size = dd_size_parse(m.p, m.n, 1)) == DD_SIZE_NONE)
		fault(ft, f, "not small, medium or large");
	snprintf(f, sizeof f, "%s.%s", name, wname);
	it->kg = 0;
	if (!dd_json_get(v, wname, strlen(wname), &m)) {
		fault(ft, f, "missing: a drone is chosen by the weight it carries");
	} else if (m.type == DD_JNUM) {
		if (dd_jnum_double(&m, &it->kg))
			fault(ft, f, "not a number");
	} else if (ext && m.type == DD_JSTR) {
		/* The reference's load tests send "14". */
		char *t = get_text(&m);
		int ok = t[0] != '\0' && strspn(t, "0123456789.") == strlen(t) &&
		    text_num(t, &it->kg) == 0;
		free(t);
		if (!ok)
			fault(ft, f, "not a number");
	} else {
		fault(ft, f, "not a number");
	}
	if (!ft->field[0] && !(it->kg > 0))
		fault(ft, f, "must be more than 0");
	if (dd_json_get(v, "tag", 3, &m)) {
		if (m.type == DD_JSTR)
			it->tag = get_text(&m);
		else if (m.type != DD_JNULL) {
			snprintf(f, sizeof f, "%s.tag", name);
			fault(ft, f, "not a string");
		}
	}
	/* Within what the fleet can do at all (an empty fleet is no-drone). */
	if (!ft->field[0] && dd_fleet_count(s->fleet) > 0) {
		if (it->kg > dd_fleet_max_kg(s->fleet)) {
			snprintf(f, sizeof f, "%s.%s", name, wname);
			fault(ft, f, "%g kg is more than any drone carries (%g kg)", it->kg,
			    dd_fleet_max_kg(s->fleet));
		} else if (it->size > dd_fleet_max_size(s->fleet)) {
			snprintf(f, sizeof f, "%s.size", name);
			fault(ft, f, "no drone takes a %s package", dd_size_name(it->size));
		}
	}
}

/*
 * A new delivery request, in SPEC's shape or the reference's
 * ExternalDelivery shape, into it; a field at fault goes to ft. Returns
 * 0, or -1 when the line cannot be answered at all (no request id):
 * that is bad input, not a business outcome.
 */
int
sched_parse_request(struct dd_sched *s, const struct keys *k, struct item *it, struct fault *ft)
{
	int ext = k->v[K_PICKUPLOC].type || k->v[K_DROPOFFLOC].type || k->v[K_PACKAGEINFO].type;
	const char *why;
	if (ext && k->v[K_DELIVERYID].type == DD_JNONE) {
		/* No id of the client's: the request's own content names it, so a
		 * resent copy is still recognised. */
		struct dd_buf b = { 0 };
		const int parts[] = { K_OWNERID, K_PICKUPLOC, K_DROPOFFLOC, K_PICKUPTIME, K_DEADLINE,
			K_PACKAGEINFO };
		for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
			dd_jval_text(&k->v[parts[i]], &b);
			dd_buf_addc(&b, '\n');
		}
		sched_hex_id(it->rid, sizeof it->rid, "x-", dd_hash64(b.p, b.len));
		dd_buf_free(&b);
	} else {
		const struct dd_jval *rv = &k->v[ext ? K_DELIVERYID : K_REQUESTID];
		int r = sched_get_id(rv, it->rid, &why);
		if (r <= 0) {
			const char *name = ext ? "deliveryId" : "requestId";
			if (r == 0)
				dd_seterr("missing \"%s\"", name);
			else
				dd_seterr("\"%s\" is %s", name, why);
			return -1;
		}
	}
	if (sched_get_id(&k->v[K_OWNERID], it->owner, &why) <= 0) {
		it->owner[0] = '\0';
		fault(ft, "ownerId", "%s", why);
	}
	if (ext) {
		loc_str(&k->v[K_PICKUPLOC], "pickupLocation", &it->pk_lat, &it->pk_lon, &it->pk_alt, ft);
		loc_str(&k->v[K_DROPOFFLOC], "dropOffLocation", &it->dr_lat, &it->dr_lon,
		    &it->dr_alt, ft);
	} else {
		sched_loc_obj(&k->v[K_PICKUP], "pickup", &it->pk_lat, &it->pk_lon, &it->pk_alt, ft);
		sched_loc_obj(&k->v[K_DROPOFF], "dropoff", &it->dr_lat, &it->dr_lon, &it->dr_alt, ft);
	}
	sched_get_time(&k->v[K_PICKUPTIME], "pickupTime", &it->pickup_time, ft);
	sched_get_time(&k->v[K_DEADLINE], "deadline", &it->deadline, ft);
	if (!ft->field[0] && it->deadline <= it->pickup_time)
		fault(ft, "deadline", "not after pickupTime");
	sched_get_bool(&k->v[K_EXPEDITED], "expedited", &it->expedited, ft);
	sched_get_confirm(&k->v[K_CONFIRM], &it->confirm, ft);
	get_package(s, &k->v[ext ? K_PACKAGEINFO : K_PACKAGE], ext, it, ft);
	return 0;
}

