/*
 * Internals of the tracker shared by its files: track.c (the tracker:
 * its cache of live deliveries, their rows, commit, the filter),
 * track-event.c (what one event does to a delivery, and the status
 * events) and track-query.c (get, list, stats). See track.h.
 */
#ifndef DD_TRACK_INT_H
#define DD_TRACK_INT_H

#include <stdint.h>

#include "json.h"
#include "store.h"
#include "track.h"
#include "util.h"

struct seen {
	uint64_t h;		/* hash of an applied event's id */
	int64_t t;		/* its time: pruned once it is too old to recur */
};

struct loc {
	char *json;		/* the location object as received */
	double lat, lon;
};

/* One delivery. Times are epoch ms, DD_NOTIME when not set (NULL in the
 * store), as the row helpers of store.h read and write them. */
struct dlv {
	struct dlv *next;	/* hash chain */
	struct dlv *dnext;	/* list of changed deliveries */
	uint64_t hash;
	char *id;
	size_t idlen;
	int dirty, in_db;
	/* The aggregates the stage is computed from. */
	int64_t t_sched, t_disp, t_pick, t_resched;
	int fstage;		/* earliest final event, or 0 */
	int64_t t_final;
	int64_t updated;	/* newest event applied */
	char *drone;
	int64_t drone_time;
	int drone_rank;		/* its event's rank (order.h); 0 once reloaded */
	struct loc loc, pickup, dropoff;
	int64_t loc_time, pickup_time, dropoff_time;
	double speed, battery;	/* NAN: not reported */
	int64_t pickup_eta, dropoff_eta, eta_time;
	int64_t pos_ms;		/* bucket of the last position status */
	struct seen *seen;
	size_t nseen, capseen;
};

struct dd_track {
	struct dd_track_opts o;
	struct dd_store s;
	char *lockpath;
	int lockfd;
	struct dlv **tab;
	size_t nb, n;
	struct dlv *dirty;
	int authoritative;	/* every delivery of the store is in memory */
	int64_t max_time;	/* newest event time seen (the stream's clock) */
	uint64_t removed;	/* deliveries removed, ever (stored) */
	uint64_t emitted, dups, late, late_ends, removed_run, after_removal;
	int64_t ntomb;		/* rows in ended: none, no lookups */
	sqlite3_stmt *ins, *upd, *sel, *del, *del_expired, *meta_put;
	sqlite3_stmt *tomb_one, *tomb_expired, *tomb_get, *tomb_prune;
	struct dd_buf out, tmp, str;
};

/* track.c */
/* The stage as a function of the aggregates (see track.h). */
int dd_trk_stage(const struct dlv *d);
int dd_trk_seen(const struct dlv *d, uint64_t h);
void dd_trk_seen_add(struct dlv *d, uint64_t h, int64_t t);
/* Queue d for the next commit. */
void dd_trk_dirty(struct dd_track *t, struct dlv *d);
/* The oldest event time that still counts (DD_NOTIME: all do). */
int64_t dd_trk_horizon(const struct dd_track *t);
/*
 * The delivery an event is about, from memory, the store, or new: 0 with
 * *dp; 1 when it is over (removed after --retain, or due to be: the
 * event changes nothing); -1 on a store error (dd_errmsg()).
 */
int dd_trk_lookup(struct dd_track *t, const char *id, size_t n, struct dlv **dp);
/* A location object {lat, lon[, alt]}: 0 with the coordinates, or -1. */
int dd_trk_loc_parse(const struct dd_jval *v, double *lat, double *lon);
/* An integer of the meta table into *v (left alone when NULL or absent). */
int dd_trk_meta_get(struct dd_store *s, const char *key, int64_t *v);

/* track-event.c */
/* A time as a JSON string, or null for DD_NOTIME. */
void dd_trk_add_time(struct dd_buf *b, int64_t ms);

#endif
