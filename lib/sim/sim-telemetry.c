/*
 * Plain telemetry for benchmarks: exactly n events of k flights whose
 * dispatches follow a day profile over the days asked for, flown by a
 * fleet big enough that most find a drone free, merged in time order.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim-int.h"

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
