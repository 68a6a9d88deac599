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

struct loc {
	char *json;		/* the location object as received */
	double lat, lon;
};

/* One delivery. Times are epoch ms, DD_NOTIME when not set (NULL in the
 * store), as the row helpers of store.h read and write them. */
struct dlv {
	struct dlv *next;	/* hash chain */
	struct dlv *dnext;	/* list of changed deliveries */
	/* Its row in the store (the table's rowid), 0 before its first
	 * commit: rows are updated and deleted by rowid, without a lookup
	 * of the id in the index. (Its id's hash is not kept: dd_trk_hash
	 * computes it when needed, which is seldom, and memory holds a
	 * million of these.) */
	int64_t rowid;
	uint32_t idlen;
	uint32_t cost;		/* bytes of memory it holds (track-cache.c) */
	uint32_t dronelen;
	unsigned char dirty, drone_on_heap, has_drone;
	unsigned char fstage;	/* earliest final event, or 0 */
	unsigned char drone_rank; /* its event's rank (order.h); 0 once reloaded */
	uint32_t eidx;		/* ended: its place in t->ended, plus one; else 0 */
	/* The aggregates the stage is computed from. */
	int64_t t_sched, t_disp, t_pick, t_resched;
	int64_t t_final;
	int64_t updated;	/* newest event applied */
	/* The drone id: most fit in the struct (no block, no cache miss of
	 * its own); a longer one has a block. dd_trk_drone() reads it. */
	union {
		char in[16];
		char *heap;
	} drone;
	int64_t drone_time;
	struct loc loc, pickup, dropoff;
	int64_t loc_time, pickup_time, dropoff_time;
	double speed, battery;	/* NAN: not reported */
	int64_t pickup_eta, dropoff_eta, eta_time;
	int64_t pos_ms;		/* bucket of the last position status */
	/* The ids of the events applied (those not yet too old to recur),
	 * packed as the store's seen column holds them: per id its time (8
	 * bytes, little-endian), its length (one byte: ids are 1-128 bytes)
	 * and its bytes. One block, not one per id: a million deliveries
	 * hold several million ids. */
	unsigned char *seen;
	uint32_t seenlen, seencap;
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
	/* The ended deliveries in memory, the only ones that expire: a
	 * sweep walks these, not all (track-cache.c). */
	struct dlv **ended;
	size_t nended, endedcap;
	int64_t next_rowid;	/* the rowid of the next new row */
	int authoritative;	/* every delivery of the store is in memory */
	int64_t max_time;	/* newest event time seen (the stream's clock) */
	uint64_t removed;	/* deliveries removed, ever (stored) */
	uint64_t emitted, dups, late, late_ends, removed_run, after_removal;
	int64_t ntomb;		/* rows in ended: none, no lookups */
	uint64_t *tomb;		/* their ids' hashes (track-tomb.c) */
	size_t tombcap, tombn;
	long kill_at, commits;	/* DD_TRACK_FAULT (see dd_track_open) */
	sqlite3_stmt *ins, *upd, *sel, *del, *del_expired, *meta_put;
	sqlite3_stmt *tomb_one, *tomb_expired, *tomb_get, *tomb_prune;
	struct dd_trk_job *job;	/* the commit in flight (track-commit.c) */
	int failed;		/* a commit failed: the run is over */
	struct dd_buf out, tmp, str;
};

#define COLS "id, stage, drone_id, location, location_time, speed, battery, pickup, " \
	"dropoff, pickup_eta, dropoff_eta, updated, ended, t_scheduled, t_dispatched, " \
	"t_picked_up, t_rescheduled, drone_time, pickup_time, dropoff_time, eta_time, " \
	"position_time, seen"
enum {
	C_ID, C_STAGE, C_DRONE, C_LOC, C_LOCTIME, C_SPEED, C_BATTERY, C_PICKUP,
	C_DROPOFF, C_PETA, C_DETA, C_UPDATED, C_ENDED, C_TSCHED, C_TDISP, C_TPICK,
	C_TRESCHED, C_DRONETIME, C_PTIME, C_DTIME, C_ETATIME, C_POSTIME, C_SEEN, C_N
};

struct dd_trk_job;

/* The hash of an id, and of a delivery's. */
uint64_t dd_trk_hash(const char *id, size_t n);
#define dd_trk_dlv_hash(d) dd_trk_hash((d)->id, (d)->idlen)

/* track-cache.c: the deliveries in memory, by id (hash h of the id). */
void dd_trk_cache_init(struct dd_track *t);
struct dlv *dd_trk_cache_find(struct dd_track *t, const char *id, size_t n, uint64_t h);
/* A new, empty delivery in memory. */
struct dlv *dd_trk_cache_add(struct dd_track *t, const char *id, size_t n, uint64_t h);
/* Measure d again after it changed (or was loaded). */
void dd_trk_cache_account(struct dd_track *t, struct dlv *d);
/* Take d out of memory and free it. */
void dd_trk_cache_remove(struct dd_track *t, struct dlv *d);
/* Remove every ended delivery for which gone() says so. */
void dd_trk_cache_sweep(struct dd_track *t, int (*gone)(struct dd_track *,
    const struct dlv *));
/* Over --cache, evict clean deliveries (after a commit, all are clean);
 * the store then answers for them, so memory no longer holds them all. */
void dd_trk_cache_trim(struct dd_track *t);
void dd_trk_cache_free(struct dd_track *t);
/* Queue d for the next commit. */
void dd_trk_dirty(struct dd_track *t, struct dlv *d);
/* The queue in the store's order: the rows written before by rowid,
 * then the new ones by id (the order of the index on id, where they
 * go). The writes then go through each B-tree in order, each page
 * touched once. */
void dd_trk_dirty_sort(struct dd_track *t);

/* track-tomb.c: the removed deliveries' ids (hash h), a set in memory
 * that may hold more than the table (a candidate is looked up there). */
void dd_trk_tomb_add(struct dd_track *t, uint64_t h);
int dd_trk_tomb_maybe(const struct dd_track *t, uint64_t h);
/* The set as the table holds it now (at open, and after pruning). */
int dd_trk_tomb_load(struct dd_track *t);
void dd_trk_tomb_free(struct dd_track *t);

/* track.c */
void dd_trk_dlv_clear(struct dlv *d);
void dd_trk_dlv_free(struct dlv *d);
/* The stage as a function of the aggregates (see track.h). */
int dd_trk_stage(const struct dlv *d);
/* Was the event id (n bytes, hash h) applied to d? Ids are compared in
 * full: two ids with one hash are two events. */
int dd_trk_seen(const struct dlv *d, const char *id, size_t n);
void dd_trk_seen_add(struct dlv *d, int64_t t, const char *id, size_t n);
/* The drone id (NULL: none) and its length, or set it (s NULL: none). */
const char *dd_trk_drone(const struct dlv *d, size_t *n);
void dd_trk_drone_set(struct dlv *d, const char *s, size_t n);
/* Forget the ids of events older than horizon. */
void dd_trk_seen_prune(struct dlv *d, int64_t horizon);
/* Ended and past --retain: removed at the next commit. */
int dd_trk_expired(const struct dd_track *t, const struct dlv *d);
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

/* track-commit.c: dd_track_commit hands the batch's rows to a writer
 * thread; dd_trk_join waits for it and takes its outcome (0, or -1 with
 * dd_errmsg()): before any read of the store, and at the end. */
int dd_trk_join(struct dd_track *t);
void dd_trk_job_free(struct dd_track *t);

/* track-event.c */
/* A time as a JSON string, or null for DD_NOTIME. */
void dd_trk_add_time(struct dd_buf *b, int64_t ms);

#endif
