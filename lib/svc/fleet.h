/*
 * The drone fleet of dd-schedule: drone capabilities, the bookings of
 * each drone, and the search for the drone that gives a delivery its
 * earliest pickup. The search is a best-first branch and bound over a
 * k-d tree of the drones' bases whose nodes carry the best capabilities
 * below them and the earliest instant any of their drones is free, so
 * one assignment looks at a handful of drones near the pickup rather
 * than at the whole fleet.
 *
 * Times are UTC epoch milliseconds, distances great-circle kilometres.
 */
#ifndef DD_FLEET_H
#define DD_FLEET_H

#include <stddef.h>
#include <stdint.h>

#include "csvin.h"

/* Package sizes, ordered: a drone carrying large carries medium too. */
enum dd_size { DD_SIZE_NONE = 0, DD_SIZE_SMALL, DD_SIZE_MEDIUM, DD_SIZE_LARGE };
/* "small", "medium", "large" (also "Small"... when ci); DD_SIZE_NONE if not. */
int dd_size_parse(const char *s, size_t n, int ci);
const char *dd_size_name(int size);

#define DD_EARTH_KM 6371.0088
/* Great-circle distance between two points, in kilometres. */
double dd_geo_km(double lat1, double lon1, double lat2, double lon2);

/*
 * The flight model: the drone leaves its base, flies to the pickup,
 * loads (DD_HANDLING_MS), flies to the dropoff, unloads, flies home and
 * needs DD_TURNAROUND_MS (battery swap) before its next departure. Each
 * leg takes distance/speed, rounded up to a whole second.
 */
#define DD_HANDLING_MS 60000
#define DD_TURNAROUND_MS 300000

/* One drone as the fleet CSV and the store describe it. */
struct dd_drone_spec {
	const char *id;
	double lat, lon;	/* base */
	double max_kg;		/* payload */
	int max_size;		/* enum dd_size: the largest package it takes */
	double range_km;	/* per flight, base to base */
	double speed_mps;	/* cruise */
};

/* The columns of a fleet CSV file, found by name in its header:
 * id, base.lat, base.lon, maxPayloadKg, maxSize, rangeKm, speedMps. */
struct dd_fleet_cols {
	int id, lat, lon, kg, size, range, speed;
};
extern const char *const dd_fleet_colnames[7];
/* Find the columns; -1 (dd_errmsg()) when one is missing. */
int dd_fleet_header(const struct dd_csv_row *r, struct dd_fleet_cols *c);
/* Parse and check one row (d->id points into the row); -1 (dd_errmsg()). */
int dd_fleet_row(const struct dd_fleet_cols *c, const struct dd_csv_row *r,
    struct dd_drone_spec *d);

struct dd_fleet;

struct dd_fleet *dd_fleet_new(void);
void dd_fleet_free(struct dd_fleet *f);
/* Add a drone (copied); then dd_fleet_build() once, before any booking.
 * Indexes are those of the drones sorted by id. */
void dd_fleet_add(struct dd_fleet *f, const struct dd_drone_spec *d);
/* Sort, index by id and build the search tree. -1 on a duplicate id. */
int dd_fleet_build(struct dd_fleet *f);
int dd_fleet_count(const struct dd_fleet *f);
int dd_fleet_find(const struct dd_fleet *f, const char *id);
const struct dd_drone_spec *dd_fleet_spec(const struct dd_fleet *f, int i);
/* The best capabilities in the fleet (validation of requests). */
double dd_fleet_max_kg(const struct dd_fleet *f);
int dd_fleet_max_size(const struct dd_fleet *f);

/*
 * The time floor: no search will ever ask for a departure before it (the
 * scheduler's clock only moves forward), so bookings that end before it
 * are forgotten and free times are computed from it. It only rises.
 */
void dd_fleet_set_floor(struct dd_fleet *f, int64_t floor_ms);

/* "Until put back": far beyond any time, with room for flight legs. */
#define DD_FLEET_FOREVER (INT64_MAX / 4)

/* Book drone i for [start, end) under key (the delivery). 0, or -1 when
 * it overlaps a booking (a bug in the caller, or a corrupt store). */
int dd_fleet_book(struct dd_fleet *f, int i, int64_t start, int64_t end, uint64_t key);
/* The same for a booking that may be moved to make room for a more
 * urgent one (a normal delivery), named ref, until it departs or is
 * pinned. */
int dd_fleet_book_movable(struct dd_fleet *f, int i, int64_t start, int64_t end, uint64_t key,
    const char *ref);
/* The booking of key may no longer be moved (its drone is on its way). */
void dd_fleet_pin(struct dd_fleet *f, int i, uint64_t key);
/* The names (strdup'ed, up to max) of drone i's movable bookings that
 * start after now and overlap [start, end); their count. */
int dd_fleet_movable_in(const struct dd_fleet *f, int i, int64_t start, int64_t end, int64_t now,
    char **refs, int max);
/* Drone i is out of service in [from, until): no flight of it overlaps
 * that (bookings it has keep their place); from = until: in service. */
void dd_fleet_ground(struct dd_fleet *f, int i, int64_t from, int64_t until);
/* Remove the booking of key; 0, or -1 when there is none. */
int dd_fleet_unbook(struct dd_fleet *f, int i, uint64_t key);
/* End the booking of key earlier (never later; at or before its start:
 * removed); 0 or -1. */
int dd_fleet_shorten(struct dd_fleet *f, int i, uint64_t key, int64_t end);

/* What one delivery asks of a drone. */
struct dd_trip {
	double pk_lat, pk_lon, dr_lat, dr_lon;
	int64_t pickup_time;	/* no pickup before it */
	int64_t deadline;	/* dropoff no later */
	int64_t now;		/* no departure before it (>= the floor) */
	int size;
	double kg;
	int exclude;		/* a drone not to use, or -1 */
};

/* A drone's flight for one delivery. */
struct dd_plan {
	int drone;
	int64_t depart, pickup, dropoff, ret, busy_end;
	double approach_km, trip_km;
};

enum { DD_FIT_OK = 0, DD_FIT_BUSY = 1, DD_FIT_NONE = 2, DD_FIT_LATE = 3 };

/*
 * The best fit: of the drones that can carry the package, have the range
 * for base-pickup-dropoff-base, are free for the whole flight and meet the
 * deadline, those of the smallest class (maxSize, then maxPayloadKg), and
 * of these the one with the earliest pickup (then the shortest approach,
 * then the smallest id). DD_FIT_OK with *p filled; DD_FIT_BUSY when a
 * capable drone could make the deadline were it free; DD_FIT_LATE when
 * capable drones exist but none could make the deadline even idle;
 * DD_FIT_NONE when no drone of the fleet could ever fly it.
 */
int dd_fleet_search(struct dd_fleet *f, const struct dd_trip *t, struct dd_plan *p);
/* Whether any drone could fly it were it idle: DD_FIT_BUSY (it could),
 * DD_FIT_LATE or DD_FIT_NONE, as dd_fleet_search says them. */
int dd_fleet_check(struct dd_fleet *f, const struct dd_trip *t);
/* As dd_fleet_search, as if the movable bookings that have not left yet
 * were not there (DD_FIT_OK, or DD_FIT_BUSY); the caller moves those the
 * plan overlaps (dd_fleet_movable_in). */
int dd_fleet_search_preempt(struct dd_fleet *f, const struct dd_trip *t, struct dd_plan *p);
/* The same for drone i alone. */
int dd_fleet_fit(struct dd_fleet *f, int i, const struct dd_trip *t, struct dd_plan *p);
/* Return-leg time of drone i from a point (for an early completion). */
int64_t dd_fleet_return_ms(const struct dd_fleet *f, int i, double lat, double lon);

/* Drones examined exactly and tree nodes visited, since creation. */
void dd_fleet_counters(const struct dd_fleet *f, uint64_t *drones, uint64_t *nodes,
    uint64_t *searches);

#endif
