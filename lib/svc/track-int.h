/*
 * Internals of the tracker shared by its files: track.c (the tracker:
 * its deliveries' rows, commit, the filter), track-cache.c (the live
 * deliveries in memory, within --cache),
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
	uint64_t h;		/* hash of an applied event's id: a candidate only */
	int64_t t;		/* its time: pruned once it is too old to recur */
	char *id;		/* the id itself, which decides (malloc'd) */
	size_t len;
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
	uint32_t idlen;
	uint32_t cost;		/* bytes of memory it holds (track-cache.c) */
	unsigned char dirty, in_db;
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
	char id[];		/* in the same block: a million of them */
};

struct dd_track {
	struct dd_track_opts o;
	struct dd_store s;
	char *lockpath;
	int lockfd;
	struct dlv **tab;
	size_t nb, n;
	size_t mem;		/* bytes the deliveries in memory hold */
	struct dlv *dirty;
	int authoritative;	/* every delivery of the store is in memory */
	int64_t max_time;	/* newest event time seen (the stream's clock) */
	uint64_t removed;	/* deliveries removed, ever (stored) */
	uint64_t emitted, dups, late, late_ends, removed_run, after_removal;
	int64_t ntomb;		/* rows in ended: none, no lookups */
	long kill_at, commits;	/* DD_TRACK_FAULT (see dd_track_open) */
	sqlite3_stmt *ins, *upd, *sel, *del, *del_expired, *meta_put;
	sqlite3_stmt *tomb_one, *tomb_expired, *tomb_get, *tomb_prune;
	struct dd_buf out, tmp, str;
};

/* track-cache.c: the deliveries in memory, by id (hash h of the id). */
void dd_trk_cache_init(struct dd_track *t);
struct dlv *dd_trk_cache_find(struct dd_track *t, const char *id, size_t n, uint64_t h);
/* A new, empty delivery in memory. */
struct dlv *dd_trk_cache_add(struct dd_track *t, const char *id, size_t n, uint64_t h);
/* Measure d again after it changed (or was loaded). */
void dd_trk_cache_account(struct dd_track *t, struct dlv *d);
/* Take d out of memory and free it. */
void dd_trk_cache_remove(struct dd_track *t, struct dlv *d);
/* Remove every delivery for which gone() says so. */
void dd_trk_cache_sweep(struct dd_track *t, int (*gone)(const struct dd_track *,
    const struct dlv *));
/* Over --cache, evict clean deliveries (after a commit, all are clean);
 * the store then answers for them, so memory no longer holds them all. */
void dd_trk_cache_trim(struct dd_track *t);
void dd_trk_cache_free(struct dd_track *t);
/* Queue d for the next commit. */
void dd_trk_dirty(struct dd_track *t, struct dlv *d);
/* The queue in the order of the ids, which is the store's: the writes
 * then go through the B-tree in order, each page touched once. */
void dd_trk_dirty_sort(struct dd_track *t);

/* track.c */
void dd_trk_dlv_clear(struct dlv *d);
void dd_trk_dlv_free(struct dlv *d);
/* The stage as a function of the aggregates (see track.h). */
int dd_trk_stage(const struct dlv *d);
/* Was the event id (n bytes, hash h) applied to d? Ids are compared in
 * full: two ids with one hash are two events. */
int dd_trk_seen(const struct dlv *d, uint64_t h, const char *id, size_t n);
void dd_trk_seen_add(struct dlv *d, uint64_t h, int64_t t, const char *id, size_t n);
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
