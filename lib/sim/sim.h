/*
 * The workload generator behind dd-sim(1): delivery requests, the flights
 * of scheduled deliveries, and plain telemetry streams for benchmarks.
 * Everything is deterministic: the same options and seed (and, for fly,
 * the same input) give byte-identical output, on any machine.
 */
#ifndef DD_SIM_H
#define DD_SIM_H

#include <stdint.h>
#include <stdio.h>

#include "kafka.h"

/* The area requests and flights are placed in. */
struct dd_sim_area {
	double lat, lon;	/* centre, degrees */
	double radius_km;
};

/* Defaults of the options below. */
#define DD_SIM_START_MS 1795672800000LL	/* 2026-11-26T06:00:00Z */
/* Telemetry covers the days before that by default, so a lake ingesting it
 * takes it all (dd-lake-ingest refuses events over a day in the future). */
#define DD_SIM_TELEMETRY_START_MS 1793059200000LL	/* 2026-10-27T00:00:00Z */
#define DD_SIM_LAT 47.61
#define DD_SIM_LON (-122.33)
#define DD_SIM_RADIUS_KM 15.0
#define DD_SIM_RATE 120.0		/* requests per hour */
#define DD_SIM_POSITION_EVERY_MS 30000
#define DD_SIM_FAIL 0.02
#define DD_SIM_DAYS 30

/* A deterministic pseudo-random generator (xoshiro256**, seeded through
 * splitmix64), exposed so the parts of the simulator share one. */
struct dd_rng {
	uint64_t s[4];
};
void dd_rng_seed(struct dd_rng *r, uint64_t seed);
uint64_t dd_rng_next(struct dd_rng *r);
/* Uniform in [0,1). */
double dd_rng_unit(struct dd_rng *r);
/* Uniform integer in [0,n); n > 0. */
uint64_t dd_rng_below(struct dd_rng *r, uint64_t n);

/* Parse "LAT,LON,RADIUS_KM"; 0, or -1 with dd_errmsg(). */
int dd_sim_area_parse(const char *s, struct dd_sim_area *a);

/* Options common to the generators. */
struct dd_sim_opts {
	uint64_t n;		/* requests or events to write */
	uint64_t seed;
	int64_t start_ms;	/* first pickup (requests), first dispatch (telemetry) */
	struct dd_sim_area area;
	double rate;		/* requests: pickups per hour */
	double cancel;		/* requests: share of cancel operations added */
	double bad;		/* share of malformed lines mixed in */
	const char *manifest;	/* --bad-manifest FILE: one record per bad line */
	uint64_t deliveries;	/* telemetry: flights (0: n/10, at least 1) */
	uint64_t days;		/* telemetry: span of the dispatches */
	double fail;		/* share of failed deliveries */
};
void dd_sim_defaults(struct dd_sim_opts *o);

/*
 * Write o->n delivery requests (SPEC.md "Delivery requests") to out, with
 * o->bad of the lines malformed in one of many ways and described in the
 * manifest. Returns 0, or -1 with dd_errmsg() (a write error).
 */
int dd_sim_requests(const struct dd_sim_opts *o, FILE *out);

/*
 * Write exactly o->n telemetry events of o->deliveries flights whose
 * dispatches spread over o->days, in time order (plus the malformed lines
 * of o->bad). Returns 0, or -1 with dd_errmsg().
 */
int dd_sim_telemetry(const struct dd_sim_opts *o, FILE *out);

/* Options of fly. */
struct dd_sim_fly_opts {
	uint64_t seed;
	int64_t position_every_ms;
	double fail, dup, reorder;
	int fd;			/* input, 0 by default */
	const char *input;	/* its name in messages, "stdin" */
	const char *rejects;	/* --rejects FILE or NULL */
	size_t max_line;	/* longer lines are reported (and passed on whole) */
	int quiet;		/* no summary line (the filter loop's, with the
				 * counts of flights added) */
	/* --kafka and the rest (kafka.h), --batch, --flush-interval: the
	 * input from a topic, the output to one. Without a store, the place
	 * to resume from is the group's committed offsets, and fly commits
	 * there the earliest message a flight still in the air came from,
	 * so a restart flies it again (the same events, the same ids). */
	struct dd_kafka_opts kafka;
	uint64_t batch;
	int64_t flush_ms;
};
void dd_sim_fly_defaults(struct dd_sim_fly_opts *o);

struct dd_sim_fly_stats {
	uint64_t read, scheduled, cancelled, rescheduled, rejected, generated;
};

/*
 * Read events from o->fd, pass every line through to out unchanged and
 * add the telemetry of each delivery.scheduled (cut short by
 * delivery.cancelled, flown again after delivery.rescheduled), merged in
 * event-time order. Lines that are not valid events are passed on and
 * reported as rejects. Returns an exit code of lib/exitcodes.h (1 when
 * something was rejected, 4 on an I/O error with dd_errmsg(), 128+signal
 * when interrupted); st gets the counts.
 */
int dd_sim_fly(const struct dd_sim_fly_opts *o, FILE *out, struct dd_sim_fly_stats *st);

#endif
