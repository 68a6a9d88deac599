/*
 * The insides of the simulator, shared by its generators and private to
 * lib/sim: sim.c holds the random streams, the options, the output buffer
 * and the geometry; sim-fly.c the model of a flight and the heap that
 * merges flights (used by telemetry and fly); sim-bad.c the malformed
 * lines of --bad. The formatting of numbers, times and locations is inline
 * here because every generated event goes through it.
 */
#ifndef DD_SIM_INT_H
#define DD_SIM_INT_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ddtime.h"
#include "sim.h"
#include "util.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- random numbers ---- */

static inline uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline double
uniform(struct dd_rng *r, double a, double b)
{
	return a + (b - a) * dd_rng_unit(r);
}

/* A stream of its own for each keyed thing, so that choices made for one
 * request or flight do not shift those of the others. */
static inline void
rng_for(struct dd_rng *r, uint64_t seed, uint64_t salt, uint64_t key)
{
	uint64_t x = seed ^ (salt * 0x9e3779b97f4a7c15ULL);
	uint64_t a = splitmix64(&x) ^ key;
	dd_rng_seed(r, splitmix64(&a));
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

void obuf_init(struct obuf *o, FILE *f);
/* 0, or -1 with dd_errmsg() (the first write error, kept in err). */
int obuf_flush(struct obuf *o);
/* Make room for n bytes; returns where to write them. */
char *obuf_room(struct obuf *o, size_t n);
void obuf_add(struct obuf *o, const void *p, size_t n);
void obuf_free(struct obuf *o);

/* ---- hand formatting (fast, and the same on every libc) ---- */

static inline char *
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

static inline char *
put_mem(char *p, const void *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

#define PUT_LIT(p, s) put_mem((p), (s), sizeof(s) - 1)

/* v with dec (0-7) decimals, rounded half away from zero. */
static inline char *
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

static inline char *
put_time(char *p, int64_t ms)
{
	char tb[DD_TIMEBUF];
	size_t n = dd_time_format(ms, tb);
	*p++ = '"';
	p = put_mem(p, tb, n);
	*p++ = '"';
	return p;
}

void buf_fixed(struct dd_buf *b, double v, int dec);
void buf_time(struct dd_buf *b, int64_t ms);
void buf_u64(struct dd_buf *b, uint64_t v);

/* ---- geometry: short distances, so a flat earth around each point ---- */

#define EARTH_M 6371008.8
#define DEG (M_PI / 180.0)

struct pt {
	double lat, lon, alt;
};

static inline double
dist_m(struct pt a, struct pt b)
{
	double x = (b.lon - a.lon) * DEG * cos((a.lat + b.lat) / 2 * DEG);
	double y = (b.lat - a.lat) * DEG;
	return sqrt(x * x + y * y) * EARTH_M;
}

/* The point r metres from c in direction theta (radians from north). */
struct pt offset(struct pt c, double r, double theta);
/* Uniform in the disc of the area. */
struct pt in_area(struct dd_rng *r, const struct dd_sim_area *a);

static inline struct pt
lerp(struct pt a, struct pt b, double s)
{
	struct pt p = { a.lat + (b.lat - a.lat) * s, a.lon + (b.lon - a.lon) * s,
		a.alt + (b.alt - a.alt) * s };
	return p;
}

static inline char *
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

extern const char *const confirmations[4];

/* ---- flights (sim-fly.c) ---- */

#define MAXSEG 8
#define MAXMILE 6

enum mile_kind { M_DISPATCHED, M_PICKEDUP, M_DELIVERED, M_FAILED, M_RETURNED };

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
	/* Read from Kafka (fly): the message that started it (kept across a
	 * reschedule), where a restart must read from to fly it again. */
	const char *ktopic;	/* NULL when not from Kafka */
	int32_t kpart;
	int64_t koff;
};

void flight_free(struct flight *f);
/* Set the pre-escaped pieces of the flight's events for a delivery and a
 * drone. */
void flight_names(struct flight *f, const char *did, size_t didlen, const char *drone,
    size_t dronelen);
/* Plan the route and milestones; uses f->rng, f->speed, f->base. */
void flight_plan(struct flight *f, struct pt pick, struct pt drop, int64_t dispatch,
    int fails);
int64_t flight_end(const struct flight *f);
/* Find the time of the flight's next event (after a change of its plan). */
void flight_next(struct flight *f);
int flight_done(const struct flight *f);
/* Write the flight's next event at p (OBUF_ROOM bytes available), advance;
 * returns the end of what was written. */
char *flight_emit(struct flight *f, char *p);

/* A min-heap of flights by (next event time, creation order). */
struct heap {
	struct flight **a;
	size_t n, cap;
};

void hpush(struct heap *h, struct flight *f);
void hremove(struct heap *h, struct flight *f);
/* The flight at index i has moved later: restore the order. */
void hdown(struct heap *h, size_t i);

/* ---- malformed lines (sim-bad.c) ---- */

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

void fields_add(struct fields *fs, const char *key, const char *json, size_t n);
/* Join the fields into an object, leaving out `omit` and giving `repl`
 * the raw value `val` (a key path "pickup.lat" replaces inside). */
void fields_join(const struct fields *fs, struct dd_buf *out, const char *omit,
    const char *repl, const char *val, size_t valn);

/* The kinds both requests and events can have: broken syntax and bytes. */
enum { BK_BROKEN, BK_TRUNCATED, BK_NOTOBJ, BK_TRAILING, BK_NUL, BK_CTRL, BK_ESCAPE,
	BK_DEEP, BK_EMPTY, BK_UTF8, BK_HUGE, BK_NAN, BK_COMMON };

/* Request-only kinds: valid JSON objects that break the request schema. */
enum { RK_WRONGTYPE = BK_COMMON, RK_MISSING, RK_BADTIME, RK_BADENUM, RK_RANGE, RK_BADOP,
	RK_END };
/* The event kinds only events can have. */
enum { EK_MISSING = BK_COMMON, EK_DUP, EK_BADTIME, EK_SPEC, EK_IDNUM, EK_IDLONG,
	EK_DATA, EK_DATAFIELD, EK_END };
extern const struct badkind request_kinds[RK_END - BK_COMMON];
extern const struct badkind event_kinds[EK_END - BK_COMMON];

/* The name of kind k (common, else of extra), and its class in *expect. */
const char *kind_name(int k, const struct badkind *extra, const char **expect);
/* Choose the next bad kind: in turn from a seeded start, so that a run
 * with enough bad lines has every kind, and in a seeded order. */
int next_kind(struct dd_rng *r, uint64_t nbad, int nkinds, int *perm);
/* Write the fields corrupted as kind k to out; *detail says how. */
void bad_request(int k, struct dd_rng *r, const struct fields *fs, struct dd_buf *out,
    const char **detail);
void bad_event(int k, struct dd_rng *r, const struct fields *fs, struct dd_buf *out,
    const char **detail);
/* An event to corrupt: a drone.position at time t, id bad-SEED-N, or for
 * data-field-missing a delivery.scheduled (a type consumers check). */
void event_fields(struct fields *fs, uint64_t seed, uint64_t n, int64_t t, int scheduled);

/* --bad-manifest: one record per malformed line. */
struct manifest {
	FILE *f;
	uint64_t count;
};

int manifest_open(struct manifest *m, const char *path);
void manifest_add(struct manifest *m, uint64_t line, const char *kind, const char *expect,
    const char *detail);
int manifest_close(struct manifest *m, const char *path);

#endif
