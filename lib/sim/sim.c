/*
 * dd-sim's engine (see sim.h), in one file per generator: sim-requests.c,
 * sim-telemetry.c, sim-fly.c (the flight model and fly) and sim-bad.c
 * (the malformed lines). This file holds what they share: the random
 * streams, the options, the output buffer and the geometry.
 *
 * Determinism: every random choice comes from xoshiro256** streams seeded
 * from the seed and a stable key (the request number, the delivery id),
 * never from rand() or the clock, and floating point is only formatted
 * with fixed decimals, so output is byte-identical across runs.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "line.h"
#include "sim-int.h"

/* ---- random numbers ---- */

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
	o->kafka.timeout_ms = 10000;
	o->batch = 5000;
	o->flush_ms = 1000;
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
/* ---- the output buffer ---- */

void
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

int
obuf_flush(struct obuf *o)
{
	if (o->len && !o->err && fwrite(o->p, 1, o->len, o->f) != o->len) {
		o->err = errno ? errno : EIO;
		dd_seterr("%s: %s", obuf_name(o), strerror(o->err));
	}
	o->len = 0;
	return o->err ? -1 : 0;
}

char *
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

void
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

void
obuf_free(struct obuf *o)
{
	free(o->p);
	o->p = NULL;
}
/* ---- formatting into a dd_buf ---- */

void
buf_fixed(struct dd_buf *b, double v, int dec)
{
	char tmp[48];
	dd_buf_add(b, tmp, (size_t)(put_fixed(tmp, v, dec) - tmp));
}

void
buf_time(struct dd_buf *b, int64_t ms)
{
	char tmp[DD_TIMEBUF + 2];
	dd_buf_add(b, tmp, (size_t)(put_time(tmp, ms) - tmp));
}

void
buf_u64(struct dd_buf *b, uint64_t v)
{
	char tmp[24];
	dd_buf_add(b, tmp, (size_t)(put_u64(tmp, v) - tmp));
}
/* ---- geometry ---- */

struct pt
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

struct pt
in_area(struct dd_rng *r, const struct dd_sim_area *a)
{
	struct pt c = { a->lat, a->lon, 0 };
	double rad = a->radius_km * 1000 * sqrt(dd_rng_unit(r));
	return offset(c, rad, uniform(r, 0, 2 * M_PI));
}

/* ---- the vocabulary ---- */

const char *const confirmations[4] = { "None", "FingerPrint", "Picture", "Voice" };
