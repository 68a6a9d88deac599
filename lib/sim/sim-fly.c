/*
 * Flights: the model of one flight (a route, the times of its milestones,
 * positions on a grid), which produces its next event on demand, and the
 * min-heap that merges the flights in the air by the time of each one's
 * next event, so memory stays bounded however many are flown; then fly,
 * which flies the deliveries of a stream of scheduling events (see
 * dd_sim_fly in sim.h). dd_sim_telemetry flies its own.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "exitcodes.h"
#include "filter.h"
#include "json.h"
#include "sim-int.h"

/* ---- flights ---- */

#define CRUISE_ALT 120.0	/* metres above the ground at the route's ends */
#define CLIMB_MS 20000		/* time to climb to (or descend from) cruise */

static const char *const fail_reasons[] = { "battery-low", "motor-fault", "weather",
	"obstacle", "gps-lost", "recipient-absent" };
static const char *const mile_type[] = { "drone.dispatched", "drone.picked-up",
	"drone.delivered", "drone.failed", "drone.returned" };

void
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
void
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
void
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

int64_t
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

void
flight_next(struct flight *f)
{
	int64_t tm = f->mi < f->nmile ? f->mile[f->mi].t : INT64_MAX;
	int64_t tp = INT64_MAX;
	if (f->pos_k <= f->pos_max)
		tp = f->t0 + (int64_t)((__int128)f->pos_k * f->pos_num / f->pos_den);
	f->next_mile = tm <= tp;
	f->next_t = tm <= tp ? tm : tp;
}

int
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
char *
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
	/* The schema and major version of the data (SPEC.md). */
	p = PUT_LIT(p, "\",\"dataschema\":\"urn:dd:schema:");
	p = put_mem(p, type, strlen(type));
	p = PUT_LIT(p, ":1\",\"time\":");
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

void
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

void
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

void
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
/* ---- fly ---- */

/* A generated event held back (--dup, --reorder), released when the
 * stream's time reaches rel. */
struct held {
	int64_t rel;
	uint64_t order;
	char *p;
	size_t n;
	const char *ktopic;	/* the Kafka origin of its flight (fly_koffsets) */
	int32_t kpart;
	int64_t koff;
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
	const struct dd_line *line;	/* the line being read */
	struct dd_kpos *kpos;	/* fly_koffsets() */
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
held_push(struct fly *fl, const struct flight *f, int64_t rel, const char *p, size_t n)
{
	if (fl->nheld == fl->capheld) {
		fl->capheld = fl->capheld ? 2 * fl->capheld : 64;
		fl->held = dd_realloc(fl->held, fl->capheld * sizeof *fl->held);
	}
	struct held x = { rel, fl->heldorder++, dd_malloc(n), n, f->ktopic, f->kpart, f->koff };
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
			held_push(fl, f, et + 5000 + (int64_t)dd_rng_below(&fl->rmix, 295000), p, n);
		} else {
			fl->ob.len += n;
			if (fl->o->dup > 0 && dd_rng_unit(&fl->rmix) < fl->o->dup)
				held_push(fl, f, et + (int64_t)dd_rng_below(&fl->rmix, 60000), p, n);
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
	if (fl->line && fl->line->ktopic) {
		f->ktopic = fl->line->ktopic;
		f->kpart = fl->line->kpart;
		f->koff = (int64_t)fl->line->off;
	}
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
	/* The new flight needs the old one's start to be flown again. */
	const char *ktopic = f->ktopic;
	int32_t kpart = f->kpart;
	int64_t koff = f->koff;
	int64_t left = fly_abort(fl, f, e->time_ms);
	if (left < 0)
		return DD_ACCEPT;	/* delivered or failed already */
	/* The same drone must come home before it sets out again; the old
	 * flight's remaining events keep their sequence numbers. */
	int64_t notbefore = e->time_ms;
	if (left > 0 && same_drone)
		notbefore = flight_end(f);
	fl->st->rescheduled++;
	struct flight *nf = fly_start(fl, &pl, notbefore, seq + (uint64_t)left);
	if (ktopic) {
		nf->ktopic = ktopic;
		nf->kpart = kpart;
		nf->koff = koff;
	}
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
	fl->line = l;
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

/* End of input: the flights still in the air land, before the final
 * commit writes them (and the filter loop reports a failure to). */
static void
fly_end(void *ctx)
{
	generate_until(ctx, INT64_MAX);
}

/* What a restart must read again (kafka.h): per partition, the message
 * that started the earliest flight still in the air (or held back), else
 * the position read to. */
static void
lower(struct dd_kpos *pos, size_t n, const char *topic, int32_t part, int64_t off)
{
	if (topic == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		if (pos[i].partition == part && strcmp(pos[i].topic, topic) == 0) {
			if (off < pos[i].next)
				pos[i].next = off;
			return;
		}
}

static int
fly_koffsets(void *ctx, struct dd_koffsets *ko)
{
	struct fly *fl = ctx;
	free(fl->kpos);
	fl->kpos = dd_calloc(ko->n + 1, sizeof *fl->kpos);
	memcpy(fl->kpos, ko->pos, ko->n * sizeof *fl->kpos);
	for (size_t i = 0; i < fl->h.n; i++)
		lower(fl->kpos, ko->n, fl->h.a[i]->ktopic, fl->h.a[i]->kpart, fl->h.a[i]->koff);
	for (size_t i = 0; i < fl->nheld; i++)
		lower(fl->kpos, ko->n, fl->held[i].ktopic, fl->held[i].kpart, fl->held[i].koff);
	ko->pos = fl->kpos;
	return 0;
}

static void
fly_summary(void *ctx, struct dd_buf *b)
{
	const struct dd_sim_fly_stats *st = ((struct fly *)ctx)->st;
	dd_buf_printf(b, ", flights %" PRIu64 ", cancelled %" PRIu64 ", rescheduled %" PRIu64
	    ", generated %" PRIu64, st->scheduled, st->cancelled, st->rescheduled,
	    st->generated);
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
	fo.quiet = o->quiet;
	fo.progress = 0;
	/* Lines longer than --max-line are still passed on whole: the
	 * reader's own limit is far above it. */
	fo.max_line = (size_t)1 << 30;
	if (fo.max_line < o->max_line)
		fo.max_line = o->max_line;
	fo.kafka = o->kafka;
	/* Flights move with stream time: partitions in one event-time order. */
	fo.kafka.ordered = 1;
	fo.batch = o->batch;
	fo.flush_ms = o->flush_ms;
	struct dd_filter_ops ops = { .line = fly_line, .commit = fly_commit, .end = fly_end,
		.summary = fly_summary, .koffsets = fly_koffsets };
	int code = dd_filter_run(&fo, &ops, &fl, NULL);
	for (size_t i = 0; i < fl.h.n; i++)
		flight_free(fl.h.a[i]);
	free(fl.h.a);
	free(fl.map);
	for (size_t i = 0; i < fl.nheld; i++)
		free(fl.held[i].p);
	free(fl.held);
	free(fl.kpos);
	obuf_free(&fl.ob);
	return code;
}
