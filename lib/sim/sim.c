/*
 * dd-sim's engine: requests, flights and telemetry (see sim.h).
 *
 * Determinism: every random choice comes from xoshiro256** streams seeded
 * from the seed and a stable key (the request number, the delivery id),
 * never from rand() or the clock, and floating point is only formatted
 * with fixed decimals, so output is byte-identical across runs.
 *
 * Bounded memory: flights are generated lazily. A flight knows its route
 * and the times of its milestones, and produces its next event on demand;
 * a min-heap of active flights, keyed by the time of each one's next
 * event, merges them in time order.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ddtime.h"
#include "event.h"
#include "exitcodes.h"
#include "filter.h"
#include "json.h"
#include "sim.h"
#include "util.h"

/* ---- random numbers ---- */

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void
dd_rng_seed(struct dd_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static inline uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t
dd_rng_next(struct dd_rng *r)
{
	uint64_t *s = r->s;
	uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

double
dd_rng_unit(struct dd_rng *r)
{
	return (double)(dd_rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t
dd_rng_below(struct dd_rng *r, uint64_t n)
{
	/* Lemire's multiply-shift; the tiny bias does not matter here, but
	 * being exact costs nothing either. */
	for (;;) {
		uint64_t x = dd_rng_next(r);
		__uint128_t m = (__uint128_t)x * n;
		uint64_t lo = (uint64_t)m;
		if (lo >= n || lo >= (-n) % n)
			return (uint64_t)(m >> 64);
	}
}

static double
uniform(struct dd_rng *r, double a, double b)
{
	return a + (b - a) * dd_rng_unit(r);
}

/* A stream of its own for each keyed thing, so that choices made for one
 * request or flight do not shift those of the others. */
static void
rng_for(struct dd_rng *r, uint64_t seed, uint64_t salt, uint64_t key)
{
	uint64_t x = seed ^ (salt * 0x9e3779b97f4a7c15ULL);
	uint64_t a = splitmix64(&x) ^ key;
	dd_rng_seed(r, splitmix64(&a));
}

/* ---- options ---- */

void
dd_sim_defaults(struct dd_sim_opts *o)
{
	memset(o, 0, sizeof *o);
	o->n = 1000;
	o->seed = 1;
	o->start_ms = DD_SIM_START_MS;
	o->area.lat = DD_SIM_LAT;
	o->area.lon = DD_SIM_LON;
	o->area.radius_km = DD_SIM_RADIUS_KM;
	o->rate = DD_SIM_RATE;
	o->days = DD_SIM_DAYS;
	o->fail = DD_SIM_FAIL;
}

void
dd_sim_fly_defaults(struct dd_sim_fly_opts *o)
{
	memset(o, 0, sizeof *o);
	o->seed = 1;
	o->position_every_ms = DD_SIM_POSITION_EVERY_MS;
	o->fail = DD_SIM_FAIL;
	o->input = "stdin";
	o->max_line = DD_MAX_LINE_DEFAULT;
}

int
dd_sim_area_parse(const char *s, struct dd_sim_area *a)
{
	char *e;
	double v[3];
	const char *p = s;
	for (int i = 0; i < 3; i++) {
		errno = 0;
		v[i] = strtod(p, &e);
		if (e == p || errno || !isfinite(v[i]) || *e != (i < 2 ? ',' : '\0')) {
			dd_seterr("\"%s\" is not LAT,LON,RADIUS_KM", s);
			return -1;
		}
		p = e + 1;
	}
	if (v[0] < -85 || v[0] > 85 || v[1] < -180 || v[1] > 180 || v[2] <= 0 || v[2] > 500) {
		dd_seterr("\"%s\": latitude must be within ±85, longitude ±180, "
		    "radius in (0, 500] km", s);
		return -1;
	}
	a->lat = v[0];
	a->lon = v[1];
	a->radius_km = v[2];
	return 0;
}

/* ---- output: one big buffer, flushed with fwrite ---- */

#define OBUF_CAP (1 << 20)
#define OBUF_ROOM 8192		/* more than any generated event needs */

struct obuf {
	char *p;
	size_t len, cap;
	FILE *f;
	int err;
};

static void
obuf_init(struct obuf *o, FILE *f)
{
	o->cap = OBUF_CAP;
	o->p = dd_malloc(o->cap);
	o->len = 0;
	o->f = f;
	o->err = 0;
}

/* Where a write error happened, for SPEC's "PROG: stdout: what". */
static const char *
obuf_name(const struct obuf *o)
{
	return o->f == stdout ? "stdout" : "output";
}

static int
obuf_flush(struct obuf *o)
{
	if (o->len && !o->err && fwrite(o->p, 1, o->len, o->f) != o->len) {
		o->err = errno ? errno : EIO;
		dd_seterr("%s: %s", obuf_name(o), strerror(o->err));
	}
	o->len = 0;
	return o->err ? -1 : 0;
}

/* Make room for n bytes; returns where to write them. */
static char *
obuf_room(struct obuf *o, size_t n)
{
	if (o->cap - o->len < n) {
		obuf_flush(o);
		if (n > o->cap) {
			o->cap = n;
			o->p = dd_realloc(o->p, o->cap);
		}
	}
	return o->p + o->len;
}

static void
obuf_add(struct obuf *o, const void *p, size_t n)
{
	if (n > OBUF_CAP) {
		/* A huge line (a passed-through one): straight out. */
		obuf_flush(o);
		if (!o->err && fwrite(p, 1, n, o->f) != n) {
			o->err = errno ? errno : EIO;
			dd_seterr("%s: %s", obuf_name(o), strerror(o->err));
		}
		return;
	}
	memcpy(obuf_room(o, n), p, n);
	o->len += n;
}

static void
obuf_free(struct obuf *o)
{
	free(o->p);
	o->p = NULL;
}

/* ---- hand formatting (fast, and the same on every libc) ---- */

static char *
put_u64(char *p, uint64_t v)
{
	char tmp[20];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static char *
put_mem(char *p, const void *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

#define PUT_LIT(p, s) put_mem((p), (s), sizeof(s) - 1)

/* v with dec (0-7) decimals, rounded half away from zero. */
static char *
put_fixed(char *p, double v, int dec)
{
	static const uint64_t pw[] = { 1, 10, 100, 1000, 10000, 100000, 1000000, 10000000 };
	double scaled = v * (double)pw[dec];
	int neg = scaled < 0;
	uint64_t x = (uint64_t)((neg ? -scaled : scaled) + 0.5);
	if (neg && x)
		*p++ = '-';
	p = put_u64(p, x / pw[dec]);
	if (dec) {
		uint64_t f = x % pw[dec];
		*p++ = '.';
		for (int i = dec - 1; i >= 0; i--) {
			p[i] = (char)('0' + f % 10);
			f /= 10;
		}
		p += dec;
	}
	return p;
}

static char *
put_time(char *p, int64_t ms)
{
	char tb[DD_TIMEBUF];
	size_t n = dd_time_format(ms, tb);
	*p++ = '"';
	p = put_mem(p, tb, n);
	*p++ = '"';
	return p;
}

static void
buf_fixed(struct dd_buf *b, double v, int dec)
{
	char tmp[48];
	dd_buf_add(b, tmp, (size_t)(put_fixed(tmp, v, dec) - tmp));
}

static void
buf_time(struct dd_buf *b, int64_t ms)
{
	char tmp[DD_TIMEBUF + 2];
	dd_buf_add(b, tmp, (size_t)(put_time(tmp, ms) - tmp));
}

static void
buf_u64(struct dd_buf *b, uint64_t v)
{
	char tmp[24];
	dd_buf_add(b, tmp, (size_t)(put_u64(tmp, v) - tmp));
}

/* ---- geometry: short distances, so a flat earth around each point ---- */

#define EARTH_M 6371008.8
#define DEG (M_PI / 180.0)

struct pt {
	double lat, lon, alt;
};

static double
dist_m(struct pt a, struct pt b)
{
	double x = (b.lon - a.lon) * DEG * cos((a.lat + b.lat) / 2 * DEG);
	double y = (b.lat - a.lat) * DEG;
	return sqrt(x * x + y * y) * EARTH_M;
}

/* The point r metres from c in direction theta (radians from north). */
static struct pt
offset(struct pt c, double r, double theta)
{
	struct pt p = c;
	p.lat = c.lat + r * cos(theta) / EARTH_M / DEG;
	p.lon = c.lon + r * sin(theta) / (EARTH_M * cos(c.lat * DEG)) / DEG;
	if (p.lat > 89.9)
		p.lat = 89.9;
	if (p.lat < -89.9)
		p.lat = -89.9;
	if (p.lon > 180)
		p.lon -= 360;
	if (p.lon < -180)
		p.lon += 360;
	return p;
}

/* Uniform in the disc of the area. */
static struct pt
in_area(struct dd_rng *r, const struct dd_sim_area *a)
{
	struct pt c = { a->lat, a->lon, 0 };
	double rad = a->radius_km * 1000 * sqrt(dd_rng_unit(r));
	return offset(c, rad, uniform(r, 0, 2 * M_PI));
}

static struct pt
lerp(struct pt a, struct pt b, double s)
{
	struct pt p = { a.lat + (b.lat - a.lat) * s, a.lon + (b.lon - a.lon) * s,
		a.alt + (b.alt - a.alt) * s };
	return p;
}

static char *
put_loc(char *p, struct pt l)
{
	p = PUT_LIT(p, "{\"lat\":");
	p = put_fixed(p, l.lat, 6);
	p = PUT_LIT(p, ",\"lon\":");
	p = put_fixed(p, l.lon, 6);
	p = PUT_LIT(p, ",\"alt\":");
	p = put_fixed(p, l.alt, 1);
	*p++ = '}';
	return p;
}

/* ---- the vocabulary ---- */

static const char *const confirmations[] = { "None", "FingerPrint", "Picture", "Voice" };
static const char *const fail_reasons[] = { "battery-low", "motor-fault", "weather",
	"obstacle", "gps-lost", "recipient-absent" };
static const char *const tags[] = { "books", "electronics", "groceries", "clothing",
	"medicine", "documents", "toys", "tools", "flowers", "food", "cosmetics", "spare-parts" };
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- flights ---- */

#define CRUISE_ALT 120.0	/* metres above the ground at the route's ends */
#define CLIMB_MS 20000		/* time to climb to (or descend from) cruise */
#define MAXSEG 8
#define MAXMILE 6

enum mile_kind { M_DISPATCHED, M_PICKEDUP, M_DELIVERED, M_FAILED, M_RETURNED };
static const char *const mile_type[] = { "drone.dispatched", "drone.picked-up",
	"drone.delivered", "drone.failed", "drone.returned" };

/* A leg of the route; altitudes of a and b are of the ground below. */
struct seg {
	int64_t t0, t1;
	struct pt a, b;		/* a == b: hovering */
	int move;
	int air0, air1;		/* starts (ends) in the air: no climb (descent) */
};

struct mile {
	int64_t t;
	int kind;
};

struct flight {
	uint64_t order;		/* creation order: breaks ties in the heap */
	size_t hidx;		/* index in the heap */
	struct flight *hnext;	/* chain of the delivery map */
	int mapped;		/* the map points here */
	/* Pre-escaped JSON pieces of every event of this flight. */
	struct dd_buf frag;
	size_t id_n, src_o, src_n, subj_o, subj_n, drone_o, drone_n;
	char *did;		/* delivery id (decoded), the map key */
	size_t didlen;
	uint64_t didhash;
	char *drone;		/* drone id (decoded) */
	struct dd_rng rng;
	uint64_t seq;		/* sequence number of the next event */
	struct seg seg[MAXSEG];
	int nseg;
	struct mile mile[MAXMILE];
	int nmile, mi;
	int64_t t0;		/* dispatch */
	int64_t pos_num, pos_den;	/* position k at t0 + k*num/den */
	uint64_t pos_k, pos_max;
	double drain;		/* battery per ms */
	double speed;		/* cruise, m/s */
	const char *confirm, *fail_reason;
	struct pt base;
	/* The plan (fly), kept for a reschedule. */
	struct pt pick, drop;
	int64_t eta;
	double weight;
	int64_t next_t;
	int next_mile;		/* the next event is mile[mi], else a position */
};

static void
flight_free(struct flight *f)
{
	if (f == NULL)
		return;
	dd_buf_free(&f->frag);
	free(f->did);
	free(f->drone);
	free(f);
}

/* The JSON pieces: "id":"<did>:t:  ,"source":"/drones/X"  ,"subject":"<did>"
 * {"droneId":"X". Ids stay within 128 bytes: a delivery id too long for
 * the suffix is replaced by its hash (still stable across replays). */
static void
flight_names(struct flight *f, const char *did, size_t didlen, const char *drone,
    size_t dronelen)
{
	struct dd_buf *b = &f->frag;
	dd_buf_reset(b);
	dd_buf_adds(b, "\"id\":");
	if (didlen + 24 <= DD_ID_MAX) {
		dd_buf_json_str(b, did, didlen);
		b->len--;	/* reopen the string */
	} else {
		char h[40];
		snprintf(h, sizeof h, "\"h-%016" PRIx64, dd_hash64(did, didlen));
		dd_buf_adds(b, h);
	}
	dd_buf_adds(b, ":t:");
	f->id_n = b->len;
	f->src_o = b->len;
	dd_buf_adds(b, ",\"source\":");
	/* source is a URI reference: the id is one path segment, with
	 * anything but unreserved characters percent-encoded. */
	struct dd_buf tmp = { 0 };
	dd_buf_adds(&tmp, "/drones/");
	for (size_t i = 0; i < dronelen; i++) {
		unsigned char ch = (unsigned char)drone[i];
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~", ch) != NULL)
			dd_buf_addc(&tmp, (char)ch);
		else
			dd_buf_printf(&tmp, "%%%02X", ch);
	}
	dd_buf_json_str(b, tmp.p, tmp.len);
	dd_buf_free(&tmp);
	f->src_n = b->len - f->src_o;
	f->subj_o = b->len;
	dd_buf_adds(b, ",\"subject\":");
	dd_buf_json_str(b, did, didlen);
	f->subj_n = b->len - f->subj_o;
	f->drone_o = b->len;
	dd_buf_adds(b, ",\"datacontenttype\":\"application/json\",\"data\":{\"droneId\":");
	dd_buf_json_str(b, drone, dronelen);
	f->drone_n = b->len - f->drone_o;
	free(f->drone);
	f->drone = dd_strndup(drone, dronelen);
}

/* Where the drone is at t (and the ground below), and how fast it goes. */
static struct pt
flight_where(const struct flight *f, int64_t t, double *speed, double *ground)
{
	const struct seg *s = &f->seg[0];
	for (int i = 0; i < f->nseg; i++) {
		s = &f->seg[i];
		if (t <= s->t1)
			break;
	}
	if (!s->move) {
		*speed = 0;
		*ground = s->a.alt;
		return s->a;
	}
	double len = (double)(s->t1 - s->t0);
	double u = len > 0 ? (double)(t - s->t0) / len : 1;
	if (u < 0)
		u = 0;
	if (u > 1)
		u = 1;
	struct pt p = lerp(s->a, s->b, u);
	/* Climb after take-off and descend before landing. */
	double up = s->air0 ? CLIMB_MS : (double)(t - s->t0);
	double down = s->air1 ? CLIMB_MS : (double)(s->t1 - t);
	double ramp = up < down ? up : down;
	ramp = ramp >= CLIMB_MS ? 1 : ramp < 0 ? 0 : ramp / CLIMB_MS;
	*ground = p.alt;
	p.alt += CRUISE_ALT * ramp;
	*speed = len > 0 ? dist_m(s->a, s->b) / (len / 1000) : 0;
	if (ramp < 1)
		*speed *= 0.5 + 0.5 * ramp;
	return p;
}

static int64_t
travel_ms(struct pt a, struct pt b, double speed)
{
	int64_t ms = (int64_t)(dist_m(a, b) / speed * 1000);
	return ms < 1000 ? 1000 : ms;
}

static struct seg *
add_seg(struct flight *f, int64_t t0, int64_t t1, struct pt a, struct pt b, int move)
{
	struct seg *s = &f->seg[f->nseg++];
	s->t0 = t0;
	s->t1 = t1;
	s->a = a;
	s->b = b;
	s->move = move;
	s->air0 = s->air1 = 0;
	return s;
}

static void
add_mile(struct flight *f, int64_t t, int kind)
{
	f->mile[f->nmile].t = t;
	f->mile[f->nmile].kind = kind;
	f->nmile++;
}

/*
 * Plan a flight from base to pick (arriving at arrive), a pause, on to
 * drop, a pause, and back; or, when it fails, back from where it failed.
 * Uses f->rng, f->speed, f->base.
 */
static void
flight_plan(struct flight *f, struct pt pick, struct pt drop, int64_t dispatch, int fails)
{
	struct dd_rng *r = &f->rng;
	f->nseg = f->nmile = f->mi = 0;
	f->t0 = dispatch;
	int64_t t = dispatch;
	add_mile(f, t, M_DISPATCHED);
	int64_t ta = t + travel_ms(f->base, pick, f->speed);
	add_seg(f, t, ta, f->base, pick, 1);
	int64_t tp = ta + 30000 + (int64_t)dd_rng_below(r, 90000);
	add_seg(f, ta, tp, pick, pick, 0);
	add_mile(f, tp, M_PICKEDUP);
	int64_t td = tp + travel_ms(pick, drop, f->speed);
	struct pt end = drop;
	if (!fails) {
		add_seg(f, tp, td, pick, drop, 1);
		int64_t tl = td + 20000 + (int64_t)dd_rng_below(r, 70000);
		add_seg(f, td, tl, drop, drop, 0);
		add_mile(f, tl, M_DELIVERED);
		t = tl;
	} else {
		f->fail_reason = fail_reasons[dd_rng_below(r, NELEM(fail_reasons))];
		if (strcmp(f->fail_reason, "recipient-absent") == 0) {
			add_seg(f, tp, td, pick, drop, 1);
			int64_t tl = td + 60000 + (int64_t)dd_rng_below(r, 120000);
			add_seg(f, td, tl, drop, drop, 0);
			t = tl;
		} else {
			double u = uniform(r, 0.1, 0.95);
			end = lerp(pick, drop, u);
			int64_t tf = tp + (int64_t)((double)(td - tp) * u);
			if (tf <= tp)
				tf = tp + 1;
			add_seg(f, tp, tf, pick, end, 1)->air1 = 1;
			t = tf;
		}
		add_mile(f, t, M_FAILED);
	}
	int64_t tr = t + travel_ms(end, f->base, f->speed);
	add_seg(f, t, tr, end, f->base, 1)->air0 = fails &&
	    strcmp(f->fail_reason, "recipient-absent") != 0;
	add_mile(f, tr, M_RETURNED);
}

static int64_t
flight_end(const struct flight *f)
{
	return f->seg[f->nseg - 1].t1;
}

/* Positions on a fixed grid every `every` ms, strictly before the return. */
static void
flight_grid(struct flight *f, int64_t every)
{
	f->pos_num = every;
	f->pos_den = 1;
	int64_t span = flight_end(f) - f->t0;
	f->pos_max = span > 0 ? (uint64_t)((span - 1) / every) : 0;
}

static void
flight_next(struct flight *f)
{
	int64_t tm = f->mi < f->nmile ? f->mile[f->mi].t : INT64_MAX;
	int64_t tp = INT64_MAX;
	if (f->pos_k <= f->pos_max)
		tp = f->t0 + (int64_t)((__int128)f->pos_k * f->pos_num / f->pos_den);
	f->next_mile = tm <= tp;
	f->next_t = tm <= tp ? tm : tp;
}

static int
flight_done(const struct flight *f)
{
	return f->next_t == INT64_MAX;
}

/* Events still to come (to reserve their sequence numbers). */
static uint64_t
flight_remaining(const struct flight *f)
{
	uint64_t n = (uint64_t)(f->nmile - f->mi);
	if (f->pos_k <= f->pos_max)
		n += f->pos_max - f->pos_k + 1;
	return n;
}

/* Write the flight's next event at p (OBUF_ROOM bytes available), advance. */
static char *
flight_emit(struct flight *f, char *p)
{
	int64_t t = f->next_t;
	const char *fr = f->frag.p;
	double speed, ground;
	struct pt loc = flight_where(f, t, &speed, &ground);
	double battery = 1.0 - f->drain * (double)(t - f->t0);
	if (battery < 0.02)
		battery = 0.02;
	const char *type;
	int kind = -1;
	if (f->next_mile) {
		kind = f->mile[f->mi].kind;
		type = mile_type[kind];
	} else {
		type = "drone.position";
	}
	p = PUT_LIT(p, "{\"specversion\":\"1.0\",");
	p = put_mem(p, fr, f->id_n);
	p = put_u64(p, f->seq++);
	*p++ = '"';
	p = put_mem(p, fr + f->src_o, f->src_n);
	p = PUT_LIT(p, ",\"type\":\"");
	p = put_mem(p, type, strlen(type));
	p = PUT_LIT(p, "\",\"time\":");
	p = put_time(p, t);
	p = put_mem(p, fr + f->subj_o, f->subj_n);
	p = put_mem(p, fr + f->drone_o, f->drone_n);
	p = PUT_LIT(p, ",\"location\":");
	p = put_loc(p, loc);
	switch (kind) {
	case -1:
		speed += uniform(&f->rng, -0.4, 0.4);
		if (speed < 0)
			speed = 0;
		p = PUT_LIT(p, ",\"speedMps\":");
		p = put_fixed(p, speed, 1);
		/* FALLTHROUGH */
	case M_DISPATCHED:
	case M_RETURNED:
		p = PUT_LIT(p, ",\"battery\":");
		p = put_fixed(p, battery, 3);
		break;
	case M_DELIVERED:
		p = PUT_LIT(p, ",\"confirmation\":\"");
		p = put_mem(p, f->confirm, strlen(f->confirm));
		*p++ = '"';
		break;
	case M_FAILED:
		p = PUT_LIT(p, ",\"reason\":\"");
		p = put_mem(p, f->fail_reason, strlen(f->fail_reason));
		*p++ = '"';
		break;
	}
	p = PUT_LIT(p, "}}\n");
	if (f->next_mile)
		f->mi++;
	else
		f->pos_k++;
	flight_next(f);
	return p;
}

/* ---- a min-heap of flights by (next event time, creation order) ---- */

struct heap {
	struct flight **a;
	size_t n, cap;
};

static int
hless(const struct flight *x, const struct flight *y)
{
	return x->next_t < y->next_t || (x->next_t == y->next_t && x->order < y->order);
}

static void
hset(struct heap *h, size_t i, struct flight *f)
{
	h->a[i] = f;
	f->hidx = i;
}

static void
hup(struct heap *h, size_t i)
{
	struct flight *f = h->a[i];
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!hless(f, h->a[p]))
			break;
		hset(h, i, h->a[p]);
		i = p;
	}
	hset(h, i, f);
}

static void
hdown(struct heap *h, size_t i)
{
	struct flight *f = h->a[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && hless(h->a[c + 1], h->a[c]))
			c++;
		if (!hless(h->a[c], f))
			break;
		hset(h, i, h->a[c]);
		i = c;
	}
	hset(h, i, f);
}

static void
hpush(struct heap *h, struct flight *f)
{
	if (h->n == h->cap) {
		h->cap = h->cap ? 2 * h->cap : 64;
		h->a = dd_realloc(h->a, h->cap * sizeof *h->a);
	}
	h->a[h->n] = f;
	f->hidx = h->n++;
	hup(h, f->hidx);
}

static void
hremove(struct heap *h, struct flight *f)
{
	size_t i = f->hidx;
	struct flight *last = h->a[--h->n];
	if (i < h->n) {
		hset(h, i, last);
		hup(h, i);
		hdown(h, last->hidx);
	}
}

/* The flight at the top has advanced: restore the order. */
static void
hfix(struct heap *h, struct flight *f)
{
	hup(h, f->hidx);
	hdown(h, f->hidx);
}

/* ---- malformed lines (--bad) ---- */

/*
 * One kind of malformed line; `expect` names the class of rejection a
 * consumer must report (the manifest says so, for the tests): json,
 * not-object, empty, utf8, too-long, depth, missing, duplicate, time,
 * specversion, id, data (events), schema (requests).
 */
struct badkind {
	const char *kind, *expect;
};

/* A base line to corrupt, as pieces: fields of one JSON object, each
 * "\"key\":value", that the kinds drop, replace or break. */
struct fields {
	struct dd_buf text;
	size_t off[24], len[24];
	const char *key[24];
	int n;
};

static void
fields_add(struct fields *fs, const char *key, const char *json, size_t n)
{
	struct dd_buf *b = &fs->text;
	fs->key[fs->n] = key;
	fs->off[fs->n] = b->len;
	dd_buf_addc(b, '"');
	dd_buf_adds(b, key);
	dd_buf_adds(b, "\":");
	dd_buf_add(b, json, n);
	fs->len[fs->n] = b->len - fs->off[fs->n];
	fs->n++;
}

/* Join the fields into an object, leaving out `omit` and giving `repl`
 * the raw value `val` (a key path "pickup.lat" replaces inside). */
static void
fields_join(const struct fields *fs, struct dd_buf *out, const char *omit,
    const char *repl, const char *val, size_t valn)
{
	dd_buf_addc(out, '{');
	int first = 1;
	for (int i = 0; i < fs->n; i++) {
		const char *k = fs->key[i];
		if (omit && strcmp(k, omit) == 0)
			continue;
		if (!first)
			dd_buf_addc(out, ',');
		first = 0;
		const char *text = fs->text.p + fs->off[i];
		size_t kl = strlen(k);
		if (repl && strncmp(repl, k, kl) == 0 && (repl[kl] == '\0' || repl[kl] == '.')) {
			dd_buf_add(out, text, kl + 3);
			if (repl[kl] == '\0') {
				dd_buf_add(out, val, valn);
			} else {
				/* Replace the member repl+kl+1 of the object value. */
				const char *sub = repl + kl + 1;
				const char *v = text + kl + 3;
				size_t vn = fs->len[i] - kl - 3;
				char pat[64];
				snprintf(pat, sizeof pat, "\"%s\":", sub);
				const char *at = strstr(v, pat);
				if (at == NULL || at >= v + vn) {
					dd_buf_add(out, v, vn);
					continue;
				}
				at += strlen(pat);
				const char *end = at;
				if (*end == '"') {
					end = strchr(end + 1, '"') + 1;
				} else {
					while (*end != ',' && *end != '}')
						end++;
				}
				dd_buf_add(out, v, (size_t)(at - v));
				dd_buf_add(out, val, valn);
				dd_buf_add(out, end, (size_t)(v + vn - end));
			}
		} else {
			dd_buf_add(out, text, fs->len[i]);
		}
	}
	dd_buf_addc(out, '}');
}

/* The kinds both requests and events can have: broken syntax and bytes. */
enum { BK_BROKEN, BK_TRUNCATED, BK_NOTOBJ, BK_TRAILING, BK_NUL, BK_CTRL, BK_ESCAPE,
	BK_DEEP, BK_EMPTY, BK_UTF8, BK_HUGE, BK_NAN, BK_COMMON };

static const struct badkind common_kinds[BK_COMMON] = {
	{ "broken-json", "json" }, { "truncated-json", "json" },
	{ "not-object", "not-object" }, { "trailing-garbage", "json" },
	{ "nul-byte", "json" }, { "control-character", "json" },
	{ "bad-escape", "json" }, { "deep-nesting", "depth" }, { "empty-line", "empty" },
	{ "invalid-utf8", "utf8" }, { "huge-line", "too-long" }, { "nan", "json" },
};

#define HUGE_LINE (3 * 1024 * 1024 / 2)	/* 1.5 MiB: over the default --max-line */
#define DEEP 10000			/* deeper than any consumer allows */

/* Corrupt the object `good` (a whole valid line without newline) as kind
 * k of common_kinds; detail says how. Writes the line to out. */
static void
bad_common(int k, struct dd_rng *r, const struct fields *fs, struct dd_buf *out,
    const char **detail)
{
	struct dd_buf good = { 0 };
	fields_join(fs, &good, NULL, NULL, NULL, 0);
	const char *g = good.p;
	size_t gn = good.len;
	switch (k) {
	case BK_BROKEN: {
		/* Drop the colon after the second key. */
		const char *c = strstr(g, "\":");
		c = c ? strstr(c + 2, "\":") : NULL;
		size_t at = c ? (size_t)(c - g) + 1 : gn / 2;
		dd_buf_add(out, g, at);
		dd_buf_add(out, g + at + 1, gn - at - 1);
		*detail = "a colon missing";
		break;
	}
	case BK_TRUNCATED: {
		size_t at = 1 + (size_t)dd_rng_below(r, gn - 2);
		dd_buf_add(out, g, at);
		*detail = "cut short";
		break;
	}
	case BK_NOTOBJ: {
		static const char *const v[] = { "[\"drone.position\",47.61,-122.33]", "42",
			"\"a string\"", "null", "true", "[]" };
		size_t i = (size_t)dd_rng_below(r, NELEM(v));
		dd_buf_adds(out, v[i]);
		*detail = i == 0 || i == 5 ? "an array" : i == 1 ? "a number" :
		    i == 2 ? "a string" : "a literal";
		break;
	}
	case BK_TRAILING:
		dd_buf_add(out, g, gn);
		if (dd_rng_below(r, 2)) {
			dd_buf_add(out, g, gn);
			*detail = "two objects on one line";
		} else {
			dd_buf_adds(out, " x");
			*detail = "text after the object";
		}
		break;
	case BK_NUL:
	case BK_CTRL: {
		/* Inside the first string value. */
		const char *q = strstr(g, "\":\"");
		size_t at = q ? (size_t)(q - g) + 3 : 1;
		dd_buf_add(out, g, at);
		dd_buf_addc(out, k == BK_NUL ? '\0' : '\t');
		dd_buf_add(out, g + at, gn - at);
		*detail = k == BK_NUL ? "a NUL byte in a string" : "a raw tab in a string";
		break;
	}
	case BK_ESCAPE: {
		const char *q = strstr(g, "\":\"");
		size_t at = q ? (size_t)(q - g) + 3 : 1;
		dd_buf_add(out, g, at);
		dd_buf_adds(out, dd_rng_below(r, 2) ? "\\x41" : "\\u12G4");
		dd_buf_add(out, g + at, gn - at);
		*detail = "a bad escape in a string";
		break;
	}
	case BK_DEEP:
		dd_buf_add(out, g, gn - 1);
		dd_buf_adds(out, ",\"nested\":");
		for (int i = 0; i < DEEP; i++)
			dd_buf_addc(out, '[');
		for (int i = 0; i < DEEP; i++)
			dd_buf_addc(out, ']');
		dd_buf_addc(out, '}');
		*detail = "arrays nested 10000 deep";
		break;
	case BK_EMPTY:
		*detail = "nothing";
		break;
	case BK_UTF8: {
		static const char *const seq[] = { "\xff\xfe", "\xc0\xaf", "\xed\xa0\x80", "\xe2\x82" };
		size_t i = (size_t)dd_rng_below(r, NELEM(seq));
		const char *q = strstr(g, "\":\"");
		size_t at = q ? (size_t)(q - g) + 3 : 1;
		dd_buf_add(out, g, at);
		dd_buf_adds(out, seq[i]);
		dd_buf_add(out, g + at, gn - at);
		*detail = i == 0 ? "bytes FF FE" : i == 1 ? "an overlong encoding" :
		    i == 2 ? "an encoded surrogate" : "a cut sequence";
		break;
	}
	case BK_HUGE:
		dd_buf_add(out, g, gn - 1);
		dd_buf_adds(out, ",\"padding\":\"");
		dd_buf_grow(out, HUGE_LINE);
		memset(out->p + out->len, 'x', HUGE_LINE);
		out->len += HUGE_LINE;
		out->p[out->len] = '\0';
		dd_buf_adds(out, "\"}");
		*detail = "1.5 MiB";
		break;
	case BK_NAN: {
		/* A number that JSON does not have, as the first number value. */
		static const char *const v[] = { "NaN", "Infinity", "-Infinity", "01", "1.", ".5", "+1" };
		const char *q = g;
		while ((q = strstr(q, "\":")) != NULL) {
			char c = q[2];
			if ((c >= '0' && c <= '9') || c == '-')
				break;
			q += 2;
		}
		size_t at = q ? (size_t)(q - g) + 2 : gn - 1;
		const char *e = g + at;
		while (e < g + gn && *e != ',' && *e != '}')
			e++;
		dd_buf_add(out, g, at);
		dd_buf_adds(out, v[dd_rng_below(r, NELEM(v))]);
		dd_buf_add(out, e, (size_t)(g + gn - e));
		*detail = "a number JSON does not allow";
		break;
	}
	}
	dd_buf_free(&good);
}

struct manifest {
	FILE *f;
	uint64_t count;
};

static int
manifest_open(struct manifest *m, const char *path)
{
	m->f = NULL;
	m->count = 0;
	if (path == NULL)
		return 0;
	m->f = fopen(path, "w");
	if (m->f == NULL) {
		dd_seterr("%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static void
manifest_add(struct manifest *m, uint64_t line, const char *kind, const char *expect,
    const char *detail)
{
	m->count++;
	if (m->f == NULL)
		return;
	fprintf(m->f, "{\"line\":%" PRIu64 ",\"kind\":\"%s\",\"expect\":\"%s\",\"detail\":\"%s\"}\n",
	    line, kind, expect, detail);
}

static int
manifest_close(struct manifest *m, const char *path)
{
	if (m->f == NULL)
		return 0;
	int bad = ferror(m->f);
	if (fclose(m->f) || bad) {
		dd_seterr("%s: write error", path);
		return -1;
	}
	return 0;
}

/* ---- requests ---- */

#define OWNERS 500

struct owners {
	double cdf[OWNERS];
};

/* A Zipf-like spread (s = 1.1): a few owners send most requests. */
static void
owners_init(struct owners *o)
{
	double sum = 0;
	for (int i = 0; i < OWNERS; i++)
		o->cdf[i] = (sum += 1.0 / pow(i + 1, 1.1));
	for (int i = 0; i < OWNERS; i++)
		o->cdf[i] /= sum;
}

static int
owners_pick(const struct owners *o, struct dd_rng *r)
{
	double u = dd_rng_unit(r);
	int lo = 0, hi = OWNERS - 1;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (o->cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo + 1;
}

struct request {
	uint64_t i;
	int owner;
	struct pt pick, drop;
	int64_t pickup, deadline;
	int expedited;
	const char *confirm, *size, *tag;
	double weight;
};

static void
request_make(struct request *q, uint64_t i, struct dd_rng *r, const struct owners *ow,
    const struct dd_sim_area *area, int64_t pickup)
{
	q->i = i;
	q->owner = owners_pick(ow, r);
	q->pick = in_area(r, area);
	do
		q->drop = in_area(r, area);
	while (dist_m(q->pick, q->drop) < 300);
	/* Most addresses are on the ground; some are rooftops. */
	q->pick.alt = dd_rng_below(r, 10) ? 0 : (double)(5 + dd_rng_below(r, 40));
	q->drop.alt = dd_rng_below(r, 10) ? 0 : (double)(5 + dd_rng_below(r, 40));
	q->pickup = pickup;
	q->expedited = dd_rng_below(r, 10) == 0;
	int64_t minutes = q->expedited ? 60 + (int64_t)dd_rng_below(r, 61) :
	    60 + (int64_t)dd_rng_below(r, 301);
	q->deadline = pickup + (minutes / 5 * 5) * 60000;
	uint64_t c = dd_rng_below(r, 100);
	q->confirm = confirmations[c < 60 ? 0 : c < 75 ? 1 : c < 90 ? 2 : 3];
	uint64_t s = dd_rng_below(r, 100);
	if (s < 70) {
		q->size = "small";
		q->weight = uniform(r, 0.1, 2.5);
	} else if (s < 92) {
		q->size = "medium";
		q->weight = uniform(r, 2.0, 8.0);
	} else {
		q->size = "large";
		q->weight = uniform(r, 6.0, 20.0);
	}
	q->tag = tags[dd_rng_below(r, NELEM(tags))];
}

static void
loc_json(struct dd_buf *b, struct pt p, int altdec)
{
	char tmp[96];
	dd_buf_reset(b);
	char *e = PUT_LIT(tmp, "{\"lat\":");
	e = put_fixed(e, p.lat, 6);
	e = PUT_LIT(e, ",\"lon\":");
	e = put_fixed(e, p.lon, 6);
	e = PUT_LIT(e, ",\"alt\":");
	e = put_fixed(e, p.alt, altdec);
	*e++ = '}';
	dd_buf_add(b, tmp, (size_t)(e - tmp));
}

/* The request as fields (for the good line and the corruptions alike). */
static void
request_fields(const struct request *q, uint64_t seed, struct fields *fs)
{
	struct dd_buf v = { 0 };
	fs->n = 0;
	dd_buf_reset(&fs->text);
#define FV(key) fields_add(fs, key, v.p, v.len)
	dd_buf_reset(&v);
	dd_buf_adds(&v, "\"r-");
	buf_u64(&v, seed);
	dd_buf_addc(&v, '-');
	buf_u64(&v, q->i);
	dd_buf_addc(&v, '"');
	FV("requestId");
	dd_buf_reset(&v);
	dd_buf_adds(&v, "\"o-");
	buf_u64(&v, (uint64_t)q->owner);
	dd_buf_addc(&v, '"');
	FV("ownerId");
	loc_json(&v, q->pick, 0);
	FV("pickup");
	loc_json(&v, q->drop, 0);
	FV("dropoff");
	dd_buf_reset(&v);
	buf_time(&v, q->pickup);
	FV("pickupTime");
	dd_buf_reset(&v);
	buf_time(&v, q->deadline);
	FV("deadline");
	fields_add(fs, "expedited", q->expedited ? "true" : "false", q->expedited ? 4 : 5);
	dd_buf_reset(&v);
	dd_buf_printf(&v, "\"%s\"", q->confirm);
	FV("confirmationRequired");
	dd_buf_reset(&v);
	dd_buf_adds(&v, "{\"packageId\":\"p-");
	buf_u64(&v, seed);
	dd_buf_addc(&v, '-');
	buf_u64(&v, q->i);
	dd_buf_printf(&v, "\",\"size\":\"%s\",\"weightKg\":", q->size);
	buf_fixed(&v, q->weight, 2);
	dd_buf_printf(&v, ",\"tag\":\"%s\"}", q->tag);
	FV("package");
#undef FV
	dd_buf_free(&v);
}

/* Request-only kinds: valid JSON objects that break the request schema. */
enum { RK_WRONGTYPE = BK_COMMON, RK_MISSING, RK_BADTIME, RK_BADENUM, RK_RANGE, RK_BADOP,
	RK_END };
static const struct badkind request_kinds[RK_END - BK_COMMON] = {
	{ "wrong-type", "schema" }, { "missing-field", "schema" }, { "bad-time", "schema" },
	{ "bad-enum", "schema" }, { "out-of-range", "schema" }, { "bad-op", "schema" },
};

static const char *
kind_name(int k, const struct badkind *extra, const char **expect)
{
	const struct badkind *b = k < BK_COMMON ? &common_kinds[k] : &extra[k - BK_COMMON];
	*expect = b->expect;
	return b->kind;
}

static void
bad_request(int k, struct dd_rng *r, const struct fields *fs, struct dd_buf *out,
    const char **detail)
{
	if (k < BK_COMMON) {
		bad_common(k, r, fs, out, detail);
		return;
	}
	static const struct {
		const char *path, *val;
	} wrong[] = {
		{ "pickup.lat", "\"47.61\"" }, { "package.weightKg", "\"14\"" },
		{ "expedited", "\"yes\"" }, { "requestId", "1234567890123456789" },
		{ "dropoff", "\"0,47.6,-122.3\"" }, { "package", "[]" },
	}, badtime[] = {
		{ "pickupTime", "\"2026-13-45T99:00:00Z\"" }, { "deadline", "\"yesterday\"" },
		{ "pickupTime", "\"2026-02-30T10:00:00Z\"" }, { "deadline", "\"26/11/2026 12:00\"" },
		{ "pickupTime", "\"2026-11-26T10:00:00\"" },
	}, badenum[] = {
		{ "package.size", "\"gigantic\"" }, { "confirmationRequired", "\"Retina\"" },
		{ "package.size", "\"Small \"" },
	}, range[] = {
		{ "pickup.lat", "123.4" }, { "dropoff.lon", "-200.5" },
		{ "package.weightKg", "-2.5" }, { "package.weightKg", "0" },
	};
	static const char *const missing[] = { "requestId", "ownerId", "pickup", "dropoff",
		"pickupTime", "deadline", "package" };
	static char det[96];
	size_t i;
	switch (k) {
	case RK_WRONGTYPE:
		i = (size_t)dd_rng_below(r, NELEM(wrong));
		fields_join(fs, out, NULL, wrong[i].path, wrong[i].val, strlen(wrong[i].val));
		snprintf(det, sizeof det, "%s is %s", wrong[i].path, wrong[i].val);
		break;
	case RK_MISSING:
		i = (size_t)dd_rng_below(r, NELEM(missing));
		fields_join(fs, out, missing[i], NULL, NULL, 0);
		snprintf(det, sizeof det, "no %s", missing[i]);
		break;
	case RK_BADTIME:
		i = (size_t)dd_rng_below(r, NELEM(badtime));
		fields_join(fs, out, NULL, badtime[i].path, badtime[i].val, strlen(badtime[i].val));
		snprintf(det, sizeof det, "%s is %s", badtime[i].path, badtime[i].val);
		break;
	case RK_BADENUM:
		i = (size_t)dd_rng_below(r, NELEM(badenum));
		fields_join(fs, out, NULL, badenum[i].path, badenum[i].val, strlen(badenum[i].val));
		snprintf(det, sizeof det, "%s is %s", badenum[i].path, badenum[i].val);
		break;
	case RK_RANGE:
		i = (size_t)dd_rng_below(r, NELEM(range));
		fields_join(fs, out, NULL, range[i].path, range[i].val, strlen(range[i].val));
		snprintf(det, sizeof det, "%s is %s", range[i].path, range[i].val);
		break;
	case RK_BADOP:
		if (dd_rng_below(r, 2)) {
			dd_buf_adds(out, "{\"op\":\"delete\",\"deliveryId\":\"d-1\"}");
			snprintf(det, sizeof det, "op is \"delete\"");
		} else {
			dd_buf_adds(out, "{\"op\":\"cancel\",\"reason\":\"customer-request\"}");
			snprintf(det, sizeof det, "a cancel naming no delivery");
		}
		break;
	}
	/* The detail quotes JSON; keep the manifest line valid JSON. */
	for (char *c = det; *c; c++)
		if (*c == '"')
			*c = '\'';
	*detail = det;
}

/* Choose the next bad kind: in turn from a seeded start, so that a run
 * with enough bad lines has every kind, and in a seeded order. */
static int
next_kind(struct dd_rng *r, uint64_t nbad, int nkinds, int *perm)
{
	if (nbad % (uint64_t)nkinds == 0) {
		for (int i = 0; i < nkinds; i++)
			perm[i] = i;
		for (int i = nkinds - 1; i > 0; i--) {
			int j = (int)dd_rng_below(r, (uint64_t)i + 1);
			int t = perm[i];
			perm[i] = perm[j];
			perm[j] = t;
		}
	}
	return perm[nbad % (uint64_t)nkinds];
}

static const char *const cancel_reasons[] = { "customer-request", "changed-mind",
	"duplicate-order", "address-wrong" };

int
dd_sim_requests(const struct dd_sim_opts *o, FILE *out)
{
	struct owners *ow = dd_malloc(sizeof *ow);
	owners_init(ow);
	struct manifest man;
	if (manifest_open(&man, o->manifest)) {
		free(ow);
		return -1;
	}
	struct obuf ob;
	obuf_init(&ob, out);
	struct dd_rng rbad, rcancel, rq;
	rng_for(&rbad, o->seed, 2, 0);
	rng_for(&rcancel, o->seed, 3, 0);
	struct fields fs = { 0 };
	struct dd_buf line = { 0 };
	/* The last requests, for cancellations of recent ones. */
	enum { RECENT = 256 };
	struct {
		uint64_t i;
		int owner;
	} recent[RECENT];
	uint64_t lineno = 0, nbad = 0;
	int perm[RK_END];
	double gap_ms = 3600000.0 / o->rate;
	double t = (double)o->start_ms;
	for (uint64_t i = 1; i <= o->n && !ob.err; i++) {
		rng_for(&rq, o->seed, 1, i);
		/* Pickups arrive as a Poisson process of the given rate, on
		 * whole minutes as people ask for them. */
		if (i > 1)
			t += -log(1.0 - dd_rng_unit(&rq)) * gap_ms;
		int64_t pickup = (int64_t)t / 60000 * 60000;
		struct request q;
		request_make(&q, i, &rq, ow, &o->area, pickup);
		request_fields(&q, o->seed, &fs);
		while (o->bad > 0 && dd_rng_unit(&rbad) < o->bad) {
			const char *expect, *detail = "";
			int k = next_kind(&rbad, nbad++, RK_END, perm);
			const char *kind = kind_name(k, request_kinds, &expect);
			dd_buf_reset(&line);
			bad_request(k, &rbad, &fs, &line, &detail);
			dd_buf_addc(&line, '\n');
			obuf_add(&ob, line.p, line.len);
			manifest_add(&man, ++lineno, kind, expect, detail);
		}
		dd_buf_reset(&line);
		fields_join(&fs, &line, NULL, NULL, NULL, 0);
		dd_buf_addc(&line, '\n');
		obuf_add(&ob, line.p, line.len);
		lineno++;
		recent[i % RECENT].i = i;
		recent[i % RECENT].owner = q.owner;
		if (o->cancel > 0 && dd_rng_unit(&rcancel) < o->cancel) {
			uint64_t back = dd_rng_below(&rcancel, i < RECENT ? i : RECENT);
			uint64_t j = i - back;
			dd_buf_reset(&line);
			dd_buf_adds(&line, "{\"op\":\"cancel\",\"requestId\":\"r-");
			buf_u64(&line, o->seed);
			dd_buf_addc(&line, '-');
			buf_u64(&line, j);
			dd_buf_adds(&line, "\",\"ownerId\":\"o-");
			buf_u64(&line, (uint64_t)recent[j % RECENT].owner);
			dd_buf_printf(&line, "\",\"reason\":\"%s\"}\n",
			    cancel_reasons[dd_rng_below(&rcancel, NELEM(cancel_reasons))]);
			obuf_add(&ob, line.p, line.len);
			lineno++;
		}
	}
	int rc = obuf_flush(&ob);
	if (manifest_close(&man, o->manifest))
		rc = -1;
	obuf_free(&ob);
	dd_buf_free(&fs.text);
	dd_buf_free(&line);
	free(ow);
	return rc;
}

/* ---- telemetry ---- */

/* Share of deliveries per hour of the day (UTC, as the stream is): quiet
 * nights, busy days. */
static const double hour_weight[24] = { 1, 1, 1, 1, 1, 2, 4, 6, 8, 9, 10, 10,
	10, 10, 10, 10, 10, 9, 8, 6, 4, 3, 2, 1 };

/* Map u in [0, days) to a time: whole days, then the hour profile. Monotone,
 * so increasing u gives increasing times. */
static int64_t
day_profile(double u)
{
	static double cum[25];
	if (cum[24] == 0)
		for (int h = 0; h < 24; h++)
			cum[h + 1] = cum[h] + hour_weight[h];
	double day = floor(u);
	double target = (u - day) * cum[24];
	int h = 0;
	while (h < 23 && cum[h + 1] <= target)
		h++;
	double frac = (target - cum[h]) / hour_weight[h];
	if (frac >= 1)
		frac = 0.999999;
	return (int64_t)day * 86400000 + (int64_t)((h + frac) * 3600000.0);
}

struct drone {
	struct pt base;
	int64_t busy_until;
};

struct telemetry {
	const struct dd_sim_opts *o;
	uint64_t k, K;		/* next delivery to start, deliveries */
	int64_t next_start;
	struct dd_rng rstart, rbudget;
	uint64_t budget_pair;	/* the shift of budget within the current pair */
	struct drone *fleet;
	size_t nfleet;
	struct flight *spare;	/* a freed flight, reused */
	uint64_t order;
};

static void
telemetry_next_start(struct telemetry *tm)
{
	if (tm->k >= tm->K) {
		tm->next_start = INT64_MAX;
		return;
	}
	double u = ((double)tm->k + dd_rng_unit(&tm->rstart)) / (double)tm->K *
	    (double)tm->o->days;
	tm->next_start = tm->o->start_ms + day_profile(u);
}

/* Events of delivery k: an even share of n, shifted within pairs so
 * that flights differ in length while the total stays exactly n. */
static uint64_t
telemetry_budget(struct telemetry *tm, uint64_t k)
{
	uint64_t n = tm->o->n, K = tm->K;
	uint64_t b = n / K + (k < n % K ? 1 : 0);
	if (k % 2 == 0) {
		uint64_t lo = n / K;
		tm->budget_pair = lo > 5 && k + 1 < K ? dd_rng_below(&tm->rbudget, (lo - 4) / 2 + 1) : 0;
		return b + tm->budget_pair;
	}
	return b - tm->budget_pair;
}

static struct flight *
telemetry_flight(struct telemetry *tm)
{
	const struct dd_sim_opts *o = tm->o;
	uint64_t k = tm->k;
	struct flight *f = tm->spare ? tm->spare : dd_calloc(1, sizeof *f);
	tm->spare = NULL;
	f->order = tm->order++;
	rng_for(&f->rng, o->seed, 5, k);
	struct dd_rng *r = &f->rng;
	int64_t t0 = tm->next_start;
	/* A free drone, looked for from a random one on. */
	size_t d = (size_t)dd_rng_below(r, tm->nfleet), best = d;
	for (size_t j = 0; j < tm->nfleet; j++) {
		size_t c = (d + j) % tm->nfleet;
		if (tm->fleet[c].busy_until <= t0) {
			best = c;
			break;
		}
		if (tm->fleet[c].busy_until < tm->fleet[best].busy_until)
			best = c;
	}
	char did[64], drone[32];
	int didn = snprintf(did, sizeof did, "d-%" PRIu64 "-%" PRIu64, o->seed, k + 1);
	int dronen = snprintf(drone, sizeof drone, "D-%04zu", best + 1);
	flight_names(f, did, (size_t)didn, drone, (size_t)dronen);
	f->seq = 0;
	f->pos_k = 1;
	f->base = tm->fleet[best].base;
	f->speed = uniform(r, 13, 17);
	struct pt pick = in_area(r, &o->area), drop;
	do
		drop = in_area(r, &o->area);
	while (dist_m(pick, drop) < 300);
	double weight = uniform(r, 0.1, 12);
	f->drain = (0.00015 + 0.000005 * weight) / 1000;
	f->confirm = confirmations[dd_rng_below(r, NELEM(confirmations))];
	int fails = dd_rng_unit(r) < o->fail;
	flight_plan(f, pick, drop, t0, fails);
	uint64_t b = telemetry_budget(tm, k);
	if (b < 4) {
		/* Too few events for a whole flight: it is cut short. */
		f->nmile = (int)b;
		f->pos_max = 0;
	} else {
		/* b - 4 positions spread evenly over the flight. */
		uint64_t p = b - 4;
		int64_t span = flight_end(f) - t0;
		if (span < (int64_t)p + 1) {
			struct seg *s = &f->seg[f->nseg - 1];
			s->t1 = t0 + (int64_t)p + 1;
			f->mile[f->nmile - 1].t = s->t1;
			span = (int64_t)p + 1;
		}
		f->pos_num = span;
		f->pos_den = (int64_t)p + 1;
		f->pos_max = p;
	}
	tm->fleet[best].busy_until = flight_end(f);
	flight_next(f);
	return f;
}

/* The event kinds only events can have. */
enum { EK_MISSING = BK_COMMON, EK_DUP, EK_BADTIME, EK_SPEC, EK_IDNUM, EK_IDLONG,
	EK_DATA, EK_DATAFIELD, EK_END };
static const struct badkind event_kinds[EK_END - BK_COMMON] = {
	{ "missing-attribute", "missing" }, { "duplicate-attribute", "duplicate" },
	{ "bad-time", "time" }, { "bad-specversion", "specversion" },
	{ "id-not-string", "id" }, { "id-too-long", "id" },
	{ "data-not-object", "data" }, { "data-field-missing", "data" },
};

/* An event to corrupt: a drone.position at time t, id bad-SEED-N, or for
 * data-field-missing a delivery.scheduled (a type consumers check). */
static void
event_fields(struct fields *fs, uint64_t seed, uint64_t n, int64_t t, int scheduled)
{
	struct dd_buf v = { 0 };
	fs->n = 0;
	dd_buf_reset(&fs->text);
#define FV(key) fields_add(fs, key, v.p, v.len)
#define FS(key, lit) fields_add(fs, key, lit, sizeof(lit) - 1)
	FS("specversion", "\"1.0\"");
	dd_buf_reset(&v);
	dd_buf_adds(&v, "\"bad-");
	buf_u64(&v, seed);
	dd_buf_addc(&v, '-');
	buf_u64(&v, n);
	dd_buf_addc(&v, '"');
	FV("id");
	if (scheduled) {
		FS("source", "\"/dd-schedule\"");
		FS("type", "\"delivery.scheduled\"");
	} else {
		FS("source", "\"/drones/D-0000\"");
		FS("type", "\"drone.position\"");
	}
	dd_buf_reset(&v);
	buf_time(&v, t);
	FV("time");
	FS("subject", "\"d-bad\"");
	FS("datacontenttype", "\"application/json\"");
	dd_buf_reset(&v);
	if (scheduled) {
		/* Everything but the drone. */
		dd_buf_adds(&v, "{\"deliveryId\":\"d-bad\",\"requestId\":\"r-bad\",\"ownerId\":\"o-1\","
		    "\"pickup\":{\"lat\":47.61,\"lon\":-122.33,\"alt\":0},"
		    "\"dropoff\":{\"lat\":47.66,\"lon\":-122.3,\"alt\":0},\"pickupTime\":");
		buf_time(&v, t);
		dd_buf_adds(&v, ",\"deadline\":");
		buf_time(&v, t + 3600000);
		dd_buf_adds(&v, ",\"expedited\":false,\"confirmationRequired\":\"None\","
		    "\"package\":{\"packageId\":\"p-bad\",\"size\":\"small\",\"weightKg\":1.5,"
		    "\"tag\":\"books\"},\"pickupEta\":");
		buf_time(&v, t);
		dd_buf_adds(&v, ",\"dropoffEta\":");
		buf_time(&v, t + 1800000);
		dd_buf_addc(&v, '}');
	} else {
		dd_buf_adds(&v, "{\"droneId\":\"D-0000\",\"location\":{\"lat\":47.61,\"lon\":-122.33,"
		    "\"alt\":120.0},\"speedMps\":15.0,\"battery\":0.5}");
	}
	FV("data");
#undef FV
#undef FS
	dd_buf_free(&v);
}

static void
bad_event(int k, struct dd_rng *r, const struct fields *fs, struct dd_buf *out,
    const char **detail)
{
	if (k < BK_COMMON) {
		bad_common(k, r, fs, out, detail);
		return;
	}
	static const char *const required[] = { "specversion", "id", "source", "type",
		"time", "data" };
	static const char *const badtimes[] = { "\"2026-13-45T99:00:00Z\"", "\"yesterday\"",
		"\"2026-11-26 25:00\"", "\"2026-02-30T10:00:00Z\"", "1795672800000", "\"\"" };
	static const char *const specs[] = { "\"0.3\"", "1.0", "\"2.0\"" };
	static const char *const datas[] = { "\"x\"", "[]", "null", "42" };
	static char det[96];
	size_t i;
	switch (k) {
	case EK_MISSING:
		i = (size_t)dd_rng_below(r, NELEM(required));
		fields_join(fs, out, required[i], NULL, NULL, 0);
		snprintf(det, sizeof det, "no %s", required[i]);
		break;
	case EK_DUP: {
		/* The id twice, with different values. */
		struct dd_buf g = { 0 };
		fields_join(fs, &g, NULL, NULL, NULL, 0);
		dd_buf_add(out, g.p, g.len - 1);
		dd_buf_adds(out, ",\"id\":\"another-id\"}");
		dd_buf_free(&g);
		snprintf(det, sizeof det, "id twice");
		break;
	}
	case EK_BADTIME:
		i = (size_t)dd_rng_below(r, NELEM(badtimes));
		fields_join(fs, out, NULL, "time", badtimes[i], strlen(badtimes[i]));
		snprintf(det, sizeof det, "time is %s", badtimes[i]);
		break;
	case EK_SPEC:
		i = (size_t)dd_rng_below(r, NELEM(specs));
		fields_join(fs, out, NULL, "specversion", specs[i], strlen(specs[i]));
		snprintf(det, sizeof det, "specversion is %s", specs[i]);
		break;
	case EK_IDNUM:
		fields_join(fs, out, NULL, "id", "12345678901234567890", 20);
		snprintf(det, sizeof det, "id is a number");
		break;
	case EK_IDLONG: {
		char longid[160];
		memset(longid, 'i', sizeof longid);
		longid[0] = '"';
		longid[sizeof longid - 1] = '"';
		fields_join(fs, out, NULL, "id", longid, sizeof longid);
		snprintf(det, sizeof det, "id of 158 bytes");
		break;
	}
	case EK_DATA:
		i = (size_t)dd_rng_below(r, NELEM(datas));
		fields_join(fs, out, NULL, "data", datas[i], strlen(datas[i]));
		snprintf(det, sizeof det, "data is %s", datas[i]);
		break;
	case EK_DATAFIELD:
		/* fs was built as a delivery.scheduled without droneId. */
		fields_join(fs, out, NULL, NULL, NULL, 0);
		snprintf(det, sizeof det, "delivery.scheduled without data.droneId");
		break;
	}
	for (char *c = det; *c; c++)
		if (*c == '"')
			*c = '\'';
	*detail = det;
}

int
dd_sim_telemetry(const struct dd_sim_opts *o, FILE *out)
{
	struct manifest man;
	if (manifest_open(&man, o->manifest))
		return -1;
	struct telemetry tm;
	memset(&tm, 0, sizeof tm);
	tm.o = o;
	tm.K = o->deliveries ? o->deliveries : (o->n / 10 ? o->n / 10 : 1);
	if (tm.K > o->n)
		tm.K = o->n;
	rng_for(&tm.rstart, o->seed, 6, 0);
	rng_for(&tm.rbudget, o->seed, 7, 0);
	/* Enough drones that most flights find one free (about three times
	 * the average number in the air, as days have peaks). */
	double airborne = (double)tm.K * 3000.0 / ((double)o->days * 86400.0);
	tm.nfleet = 8 + (size_t)(3 * airborne);
	if (tm.nfleet > 9999)
		tm.nfleet = 9999;
	tm.fleet = dd_calloc(tm.nfleet, sizeof *tm.fleet);
	struct dd_rng rfleet;
	rng_for(&rfleet, o->seed, 8, 0);
	for (size_t i = 0; i < tm.nfleet; i++) {
		tm.fleet[i].base = in_area(&rfleet, &o->area);
		tm.fleet[i].busy_until = INT64_MIN;
	}
	struct dd_rng rbad;
	rng_for(&rbad, o->seed, 9, 0);
	struct fields fs = { 0 };
	struct dd_buf line = { 0 };
	int perm[EK_END];
	uint64_t lineno = 0, nbad = 0, emitted = 0;

	struct obuf ob;
	obuf_init(&ob, out);
	struct heap h = { 0 };
	telemetry_next_start(&tm);
	while (emitted < o->n && !ob.err) {
		if (tm.next_start != INT64_MAX &&
		    (h.n == 0 || tm.next_start <= h.a[0]->next_t)) {
			struct flight *f = telemetry_flight(&tm);
			tm.k++;
			telemetry_next_start(&tm);
			if (flight_done(f)) {
				tm.spare = f;	/* an empty budget: nothing to fly */
				continue;
			}
			hpush(&h, f);
			continue;
		}
		struct flight *f = h.a[0];
		while (o->bad > 0 && dd_rng_unit(&rbad) < o->bad) {
			const char *expect, *detail = "";
			int k = next_kind(&rbad, nbad, EK_END, perm);
			const char *kind = kind_name(k, event_kinds, &expect);
			event_fields(&fs, o->seed, ++nbad, f->next_t, k == EK_DATAFIELD);
			dd_buf_reset(&line);
			bad_event(k, &rbad, &fs, &line, &detail);
			dd_buf_addc(&line, '\n');
			obuf_add(&ob, line.p, line.len);
			manifest_add(&man, ++lineno, kind, expect, detail);
		}
		char *p = obuf_room(&ob, OBUF_ROOM);
		ob.len += (size_t)(flight_emit(f, p) - p);
		emitted++;
		lineno++;
		if (flight_done(f)) {
			hremove(&h, f);
			flight_free(tm.spare);
			tm.spare = f;
		} else {
			hdown(&h, 0);
		}
	}
	int rc = obuf_flush(&ob);
	if (rc == 0 && emitted < o->n) {
		dd_seterr("internal error: %" PRIu64 " of %" PRIu64 " events", emitted, o->n);
		rc = -1;
	}
	if (manifest_close(&man, o->manifest))
		rc = -1;
	for (size_t i = 0; i < h.n; i++)
		flight_free(h.a[i]);
	free(h.a);
	flight_free(tm.spare);
	free(tm.fleet);
	obuf_free(&ob);
	dd_buf_free(&fs.text);
	dd_buf_free(&line);
	return rc;
}

/* ---- fly ---- */

/* A generated event held back (--dup, --reorder), released when the
 * stream's time reaches rel. */
struct held {
	int64_t rel;
	uint64_t order;
	char *p;
	size_t n;
};

struct fly {
	const struct dd_sim_fly_opts *o;
	struct dd_sim_fly_stats *st;
	struct obuf ob;
	struct heap h;
	/* Flights by delivery id: chained hash table. */
	struct flight **map;
	size_t mapcap, mapn;
	uint64_t order;
	struct dd_rng rmix;	/* --dup and --reorder choices */
	struct held *held;
	size_t nheld, capheld;
	uint64_t heldorder;
	int64_t clock;		/* time of the stream so far */
};

static struct flight **
map_slot(struct fly *fl, const char *did, size_t n, uint64_t h)
{
	struct flight **s = &fl->map[h & (fl->mapcap - 1)];
	while (*s && !((*s)->didhash == h && (*s)->didlen == n && memcmp((*s)->did, did, n) == 0))
		s = &(*s)->hnext;
	return s;
}

static void
map_put(struct fly *fl, struct flight *f)
{
	if (fl->mapn + 1 > fl->mapcap) {
		size_t cap = fl->mapcap ? fl->mapcap * 2 : 256;
		struct flight **m = dd_calloc(cap, sizeof *m);
		for (size_t i = 0; i < fl->mapcap; i++) {
			for (struct flight *g = fl->map[i], *next; g; g = next) {
				next = g->hnext;
				g->hnext = m[g->didhash & (cap - 1)];
				m[g->didhash & (cap - 1)] = g;
			}
		}
		free(fl->map);
		fl->map = m;
		fl->mapcap = cap;
	}
	struct flight **s = map_slot(fl, f->did, f->didlen, f->didhash);
	f->hnext = NULL;
	*s = f;
	f->mapped = 1;
	fl->mapn++;
}

static struct flight *
map_get(struct fly *fl, const char *did, size_t n)
{
	if (fl->mapn == 0)
		return NULL;
	return *map_slot(fl, did, n, dd_hash64(did, n));
}

static void
map_del(struct fly *fl, struct flight *f)
{
	if (!f->mapped)
		return;
	struct flight **s = map_slot(fl, f->did, f->didlen, f->didhash);
	if (*s == f) {
		*s = f->hnext;
		fl->mapn--;
	}
	f->mapped = 0;
}

/* The held-back lines, a min-heap by (rel, order). */
static int
held_less(const struct held *a, const struct held *b)
{
	return a->rel < b->rel || (a->rel == b->rel && a->order < b->order);
}

static void
held_push(struct fly *fl, int64_t rel, const char *p, size_t n)
{
	if (fl->nheld == fl->capheld) {
		fl->capheld = fl->capheld ? 2 * fl->capheld : 64;
		fl->held = dd_realloc(fl->held, fl->capheld * sizeof *fl->held);
	}
	struct held x = { rel, fl->heldorder++, dd_malloc(n), n };
	memcpy(x.p, p, n);
	size_t i = fl->nheld++;
	while (i > 0 && held_less(&x, &fl->held[(i - 1) / 2])) {
		fl->held[i] = fl->held[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	fl->held[i] = x;
}

static void
held_pop(struct fly *fl)
{
	struct held *a = fl->held;
	free(a[0].p);
	struct held x = a[--fl->nheld];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= fl->nheld)
			break;
		if (c + 1 < fl->nheld && held_less(&a[c + 1], &a[c]))
			c++;
		if (!held_less(&a[c], &x))
			break;
		a[i] = a[c];
		i = c;
	}
	if (fl->nheld)
		a[i] = x;
}

static void
release_held(struct fly *fl, int64_t t)
{
	while (fl->nheld && fl->held[0].rel <= t) {
		obuf_add(&fl->ob, fl->held[0].p, fl->held[0].n);
		held_pop(fl);
	}
}

/* Emit generated events up to time t (inclusive), merged with the
 * held-back ones. */
static void
generate_until(struct fly *fl, int64_t t)
{
	while (fl->h.n && fl->h.a[0]->next_t <= t && !fl->ob.err) {
		struct flight *f = fl->h.a[0];
		int64_t et = f->next_t;
		release_held(fl, et);
		if (et > fl->clock)
			fl->clock = et;
		char *p = obuf_room(&fl->ob, OBUF_ROOM);
		size_t n = (size_t)(flight_emit(f, p) - p);
		fl->st->generated++;
		if (fl->o->reorder > 0 && dd_rng_unit(&fl->rmix) < fl->o->reorder) {
			/* Late by 5 s to 5 min of stream time. */
			held_push(fl, et + 5000 + (int64_t)dd_rng_below(&fl->rmix, 295000), p, n);
		} else {
			fl->ob.len += n;
			if (fl->o->dup > 0 && dd_rng_unit(&fl->rmix) < fl->o->dup)
				held_push(fl, et + (int64_t)dd_rng_below(&fl->rmix, 60000), p, n);
		}
		if (flight_done(f)) {
			hremove(&fl->h, f);
			map_del(fl, f);
			flight_free(f);
		} else {
			hdown(&fl->h, 0);
		}
	}
	if (t > fl->clock && t != INT64_MAX)
		fl->clock = t;
	release_held(fl, t);
}

/* A location member of data; 0 ok. */
static int
get_loc(const struct dd_jval *data, const char *key, struct pt *p)
{
	struct dd_jval v, c;
	double lat, lon, alt = 0;
	if (!dd_json_get(data, key, strlen(key), &v) || v.type != DD_JOBJ)
		return -1;
	if (!dd_json_get(&v, "lat", 3, &c) || dd_jnum_double(&c, &lat) || lat < -90 || lat > 90)
		return -1;
	if (!dd_json_get(&v, "lon", 3, &c) || dd_jnum_double(&c, &lon) || lon < -180 || lon > 180)
		return -1;
	if (dd_json_get(&v, "alt", 3, &c) && (dd_jnum_double(&c, &alt) || !isfinite(alt)))
		return -1;
	p->lat = lat;
	p->lon = lon;
	p->alt = alt;
	return 0;
}

/* A time member of data; 1 found, 0 absent, -1 bad. */
static int
get_time(const struct dd_jval *data, const char *key, int64_t *ms)
{
	struct dd_jval v;
	if (!dd_json_get(data, key, strlen(key), &v))
		return 0;
	if (v.type != DD_JSTR || v.esc || dd_time_parse(v.p, v.n, ms))
		return -1;
	return 1;
}

/* What a flight needs to know about its delivery. */
struct plan {
	char did[DD_ID_MAX + 1], drone[DD_ID_MAX + 1];
	int didn, dronen;
	struct pt pick, drop;
	int64_t eta;		/* arrival at the pickup */
	const char *confirm;
	double weight;
};

/* The drone's base: a stable spot 1-4 km from the pickup, chosen by the
 * drone's id (the stream does not say where drones live). */
static struct pt
drone_base(const struct plan *pl)
{
	uint64_t h = dd_hash64(pl->drone, (size_t)pl->dronen);
	double r = 1000 + (double)(h % 3000);
	double th = (double)((h >> 16) % 3600) / 3600.0 * 2 * M_PI;
	struct pt b = offset(pl->pick, r, th);
	b.alt = 0;
	return b;
}

/* Start the flight of a delivery; dispatched no earlier than `notbefore`. */
static struct flight *
fly_start(struct fly *fl, const struct plan *pl, int64_t notbefore, uint64_t seq)
{
	struct flight *f = dd_calloc(1, sizeof *f);
	f->order = fl->order++;
	f->did = dd_strndup(pl->did, (size_t)pl->didn);
	f->didlen = (size_t)pl->didn;
	f->didhash = dd_hash64(pl->did, f->didlen);
	rng_for(&f->rng, fl->o->seed, 10 + seq, f->didhash);
	struct dd_rng *r = &f->rng;
	flight_names(f, pl->did, (size_t)pl->didn, pl->drone, (size_t)pl->dronen);
	f->seq = seq;
	f->pos_k = 1;
	f->base = drone_base(pl);
	f->speed = uniform(r, 13, 17);
	f->drain = (0.00015 + 0.000005 * pl->weight) / 1000;
	f->confirm = pl->confirm;
	f->pick = pl->pick;
	f->drop = pl->drop;
	f->eta = pl->eta;
	f->weight = pl->weight;
	/* Leave so as to arrive at the pickup ETA, a little late at times. */
	int64_t dispatch = pl->eta - travel_ms(f->base, pl->pick, f->speed) +
	    (int64_t)dd_rng_below(r, 60000);
	if (dispatch < notbefore)
		dispatch = notbefore;
	int fails = dd_rng_unit(r) < fl->o->fail;
	flight_plan(f, pl->pick, pl->drop, dispatch, fails);
	flight_grid(f, fl->o->position_every_ms);
	flight_next(f);
	hpush(&fl->h, f);
	map_put(fl, f);
	return f;
}

/*
 * Cut a flight short at t: one that has not started vanishes; one in the
 * air flies home from where it is (drone.returned follows). Returns the
 * flight's events still to come, or -1 when it is past its outcome (too
 * late to change anything).
 */
static int64_t
fly_abort(struct fly *fl, struct flight *f, int64_t t)
{
	for (int i = 0; i < f->mi; i++)
		if (f->mile[i].kind == M_DELIVERED || f->mile[i].kind == M_FAILED)
			return -1;
	map_del(fl, f);
	if (f->mi == 0 && f->pos_k == 1) {
		hremove(&fl->h, f);
		flight_free(f);
		return 0;
	}
	double speed, ground;
	struct pt here = flight_where(f, t, &speed, &ground);
	here.alt = ground;
	int i = 0;
	while (i < f->nseg - 1 && f->seg[i].t1 < t)
		i++;
	struct seg *cut = &f->seg[i];
	cut->t1 = t;
	cut->b = here;
	cut->air1 = cut->move;
	f->nseg = i + 1;
	int64_t tr = t + travel_ms(here, f->base, f->speed);
	add_seg(f, t, tr, here, f->base, 1)->air0 = cut->move;
	f->nmile = f->mi;
	add_mile(f, tr, M_RETURNED);
	flight_grid(f, fl->o->position_every_ms);
	flight_next(f);
	hfix(&fl->h, f);
	return (int64_t)flight_remaining(f);
}

static enum dd_verdict
bad_data(const char *what)
{
	dd_seterr("%s", what);
	return DD_REJECT;
}

static enum dd_verdict
fly_scheduled(struct fly *fl, const struct dd_env *e)
{
	struct plan pl;
	const struct dd_jval *d = &e->data;
	struct dd_jval v;
	memset(&pl, 0, sizeof pl);
	if (!dd_json_get(d, "deliveryId", 10, &v) ||
	    (pl.didn = dd_env_str(&v, pl.did, sizeof pl.did)) <= 0)
		return bad_data("\"data.deliveryId\" is not an id of 1-128 bytes");
	if (!dd_json_get(d, "droneId", 7, &v) ||
	    (pl.dronen = dd_env_str(&v, pl.drone, sizeof pl.drone)) <= 0)
		return bad_data("\"data.droneId\" is not an id of 1-128 bytes");
	if (get_loc(d, "pickup", &pl.pick) || get_loc(d, "dropoff", &pl.drop))
		return bad_data("\"data.pickup\" or \"data.dropoff\" is not a location");
	if (get_time(d, "pickupEta", &pl.eta) != 1)
		return bad_data("\"data.pickupEta\" is not an RFC 3339 time");
	pl.confirm = "None";
	if (dd_json_get(d, "confirmationRequired", 20, &v))
		for (size_t i = 0; i < NELEM(confirmations); i++)
			if (dd_jstr_eq(&v, confirmations[i], strlen(confirmations[i])))
				pl.confirm = confirmations[i];
	pl.weight = 2;
	struct dd_jval pk, w;
	if (dd_json_get(d, "package", 7, &pk) && pk.type == DD_JOBJ &&
	    dd_json_get(&pk, "weightKg", 8, &w))
		dd_jnum_double(&w, &pl.weight);
	if (!(pl.weight >= 0 && pl.weight < 1000))
		pl.weight = 2;
	/* A replayed delivery.scheduled of a flight under way changes nothing. */
	if (map_get(fl, pl.did, (size_t)pl.didn))
		return DD_ACCEPT;
	fl->st->scheduled++;
	fly_start(fl, &pl, e->time_ms, 0);
	return DD_ACCEPT;
}

static enum dd_verdict
fly_cancelled(struct fly *fl, const struct dd_env *e)
{
	struct dd_jval v;
	char did[DD_ID_MAX + 1];
	int n;
	if (!dd_json_get(&e->data, "deliveryId", 10, &v) ||
	    (n = dd_env_str(&v, did, sizeof did)) <= 0)
		return bad_data("\"data.deliveryId\" is not an id of 1-128 bytes");
	struct flight *f = map_get(fl, did, (size_t)n);
	if (f && fly_abort(fl, f, e->time_ms) >= 0)
		fl->st->cancelled++;
	return DD_ACCEPT;
}

static enum dd_verdict
fly_rescheduled(struct fly *fl, const struct dd_env *e)
{
	const struct dd_jval *d = &e->data;
	struct dd_jval v;
	struct plan pl;
	memset(&pl, 0, sizeof pl);
	if (!dd_json_get(d, "deliveryId", 10, &v) ||
	    (pl.didn = dd_env_str(&v, pl.did, sizeof pl.did)) <= 0)
		return bad_data("\"data.deliveryId\" is not an id of 1-128 bytes");
	struct flight *f = map_get(fl, pl.did, (size_t)pl.didn);
	if (f == NULL)
		return DD_ACCEPT;	/* flown already, or never seen */
	/* The old plan, changed by what the event carries. */
	memcpy(pl.drone, f->drone, strlen(f->drone) + 1);
	pl.dronen = (int)strlen(f->drone);
	pl.pick = f->pick;
	pl.drop = f->drop;
	pl.eta = f->eta;
	pl.confirm = f->confirm;
	pl.weight = f->weight;
	if (dd_json_get(d, "droneId", 7, &v) &&
	    (pl.dronen = dd_env_str(&v, pl.drone, sizeof pl.drone)) <= 0)
		return bad_data("\"data.droneId\" is not an id of 1-128 bytes");
	if (dd_json_get(d, "pickup", 6, &v) && get_loc(d, "pickup", &pl.pick))
		return bad_data("\"data.pickup\" is not a location");
	if (dd_json_get(d, "dropoff", 7, &v) && get_loc(d, "dropoff", &pl.drop))
		return bad_data("\"data.dropoff\" is not a location");
	int64_t ms;
	int r1 = get_time(d, "pickupEta", &ms);
	if (r1 < 0)
		return bad_data("\"data.pickupEta\" is not an RFC 3339 time");
	if (r1 == 1) {
		pl.eta = ms;
	} else {
		int r2 = get_time(d, "pickupTime", &ms);
		if (r2 < 0)
			return bad_data("\"data.pickupTime\" is not an RFC 3339 time");
		if (r2 == 1)
			pl.eta = ms;
	}
	int same_drone = strcmp(pl.drone, f->drone) == 0;
	uint64_t seq = f->seq;
	int64_t left = fly_abort(fl, f, e->time_ms);
	if (left < 0)
		return DD_ACCEPT;	/* delivered or failed already */
	/* The same drone must come home before it sets out again; the old
	 * flight's remaining events keep their sequence numbers. */
	int64_t notbefore = e->time_ms;
	if (left > 0 && same_drone)
		notbefore = flight_end(f);
	fl->st->rescheduled++;
	fly_start(fl, &pl, notbefore, seq + (uint64_t)left);
	return DD_ACCEPT;
}

static void
fly_pass(struct fly *fl, const struct dd_line *l)
{
	/* The line as it came, its \r included (fulllen counts it). */
	size_t n = l->toolong ? l->n : (size_t)l->fulllen;
	obuf_add(&fl->ob, l->p, n);
	obuf_add(&fl->ob, "\n", 1);
}

static enum dd_verdict
fly_line(void *ctx, const struct dd_line *l)
{
	struct fly *fl = ctx;
	struct dd_env e;
	enum dd_verdict v;
	fl->st->read++;
	if (l->n > fl->o->max_line) {
		fly_pass(fl, l);
		dd_seterr("line longer than %zu bytes (--max-line)", fl->o->max_line);
		v = DD_REJECT;
	} else if (dd_env_scan(l->p, l->n, &e)) {
		/* Not an event: passed on at once, it has no time to wait for. */
		char why[256];
		snprintf(why, sizeof why, "%s", dd_errmsg());
		fly_pass(fl, l);
		dd_seterr("%s", why);
		v = DD_REJECT;
	} else {
		int sched = dd_env_type_is(&e, "delivery.scheduled");
		int canc = dd_env_type_is(&e, "delivery.cancelled");
		int resch = dd_env_type_is(&e, "delivery.rescheduled");
		if ((sched || canc || resch) && dd_event_check_data(&e)) {
			/* Rejected: passed on at once, and its time moves nothing,
			 * so the rest of the output is that of a clean stream. */
			char why[256];
			snprintf(why, sizeof why, "%s", dd_errmsg());
			fly_pass(fl, l);
			dd_seterr("%s", why);
			v = DD_REJECT;
		} else {
			generate_until(fl, e.time_ms);
			fly_pass(fl, l);
			if (!sched && !canc && !resch)
				v = DD_SKIP;
			else
				v = sched ? fly_scheduled(fl, &e) : canc ? fly_cancelled(fl, &e) :
				    fly_rescheduled(fl, &e);
		}
	}
	if (v == DD_REJECT)
		fl->st->rejected++;
	if (fl->ob.err) {
		dd_seterr("stdout: %s", strerror(fl->ob.err));
		return DD_FAIL;
	}
	return v;
}

static int
fly_commit(void *ctx)
{
	struct fly *fl = ctx;
	if (obuf_flush(&fl->ob) || fflush(fl->ob.f) || ferror(fl->ob.f)) {
		dd_seterr("stdout: %s", strerror(fl->ob.err ? fl->ob.err : errno ? errno : EIO));
		return -1;
	}
	return 0;
}

int
dd_sim_fly(const struct dd_sim_fly_opts *o, FILE *out, struct dd_sim_fly_stats *st)
{
	struct fly fl;
	memset(&fl, 0, sizeof fl);
	memset(st, 0, sizeof *st);
	fl.o = o;
	fl.st = st;
	fl.clock = INT64_MIN;
	obuf_init(&fl.ob, out);
	rng_for(&fl.rmix, o->seed, 4, 0);

	struct dd_filter_opts fo;
	dd_filter_defaults(&fo);
	fo.fd = o->fd;
	fo.input = o->input;
	fo.rejects = o->rejects;
	fo.raw = 1;
	/* The summary is ours (it counts what was generated after the input
	 * ended), and lines longer than --max-line are still passed on whole:
	 * the reader's own limit is far above it. */
	fo.quiet = 1;
	fo.progress = 0;
	fo.max_line = (size_t)1 << 30;
	if (fo.max_line < o->max_line)
		fo.max_line = o->max_line;
	struct dd_filter_ops ops = { .line = fly_line, .commit = fly_commit };
	struct dd_filter_stats fst;
	int code = dd_filter_run(&fo, &ops, &fl, &fst);
	if (code == DD_EXIT_OK || code == DD_EXIT_REJECTED) {
		/* End of input: the flights still in the air land. */
		generate_until(&fl, INT64_MAX);
		if (fly_commit(&fl)) {
			dd_warn("%s", dd_errmsg());
			code = DD_EXIT_IO;
		}
	}
	if (!o->quiet)
		dd_warn("read %" PRIu64 ", flights %" PRIu64 ", cancelled %" PRIu64
		    ", rescheduled %" PRIu64 ", ignored %" PRIu64 ", rejected %" PRIu64
		    ", generated %" PRIu64, st->read, st->scheduled, st->cancelled,
		    st->rescheduled, fst.skipped, st->rejected, st->generated);
	for (size_t i = 0; i < fl.h.n; i++)
		flight_free(fl.h.a[i]);
	free(fl.h.a);
	free(fl.map);
	for (size_t i = 0; i < fl.nheld; i++)
		free(fl.held[i].p);
	free(fl.held);
	obuf_free(&fl.ob);
	return code;
}
