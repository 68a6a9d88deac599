/*
 * The delivery tracker behind dd-track(1): the latest status of each live
 * delivery (stage, drone, last known location, ETAs), kept in track.db
 * and driven by delivery.* and drone.* events, with one delivery.status
 * event written after each event that changes a delivery's stage.
 *
 * The stage is a function of the set of events seen, not of their order,
 * so late and duplicated telemetry cannot move it backwards: per delivery
 * the engine keeps the newest time of each of scheduled, dispatched,
 * picked-up and rescheduled, and the earliest final event. A reschedule
 * starts a new flight: only events after it count for the non-final
 * stages. A final stage (completed, cancelled, failed) is only replaced by
 * an earlier final event (a late report that the delivery ended before).
 *
 * Live deliveries are held in memory (a write-back cache, bounded) and
 * written to the store once per batch, in the commit.
 */
#ifndef DD_TRACK_H
#define DD_TRACK_H

#include <stdint.h>
#include <stdio.h>
#include "event.h"
#include "filter.h"
#include "line.h"
#include "out.h"
#include "store.h"
#include "stage.h"

/* The stages are those of stage.h that DD_STAGE_TRACK knows: SPEC.md's and
 * DD_STAGE_UNKNOWN, a delivery known only from telemetry that set no stage
 * (its schedule may come); dd_stage_parse(s, DD_STAGE_TRACK) names them. */

/* --cache's default: room for a million live deliveries (about 300 bytes
 * each in memory, with a few ids of recent events). */
#define DD_TRACK_CACHE_DEFAULT ((size_t)512 << 20)

struct dd_track_opts {
	int64_t retain_ms;		/* --retain: keep ended deliveries this long */
	int64_t position_every_ms;	/* --position-every, 0 for none */
	int only_status;		/* --only-status */
	size_t cache_bytes;		/* --cache: memory for the deliveries held;
					 * past it, clean ones are evicted after a
					 * commit and read back from the store when
					 * needed */
	FILE *out;			/* where lines and status events go */
};
void dd_track_defaults(struct dd_track_opts *o);

struct dd_track;

/*
 * Open (creating or migrating) the store at path and take its lock (one
 * tracker per store). Returns 0 or an exit code (DD_EXIT_IO, DD_EXIT_BUSY)
 * with dd_errmsg().
 */
int dd_track_open(struct dd_track **tp, const char *path, const struct dd_track_opts *o);
/* One event from the filter loop: passes the line on, updates the
 * delivery, writes a status event when the stage changed. */
enum dd_verdict dd_track_event(struct dd_track *t, const struct dd_line *l,
    const struct dd_env *e);
/* Write every changed delivery and remove the expired ones in one
 * transaction; 0 or -1 (dd_errmsg()). */
int dd_track_commit(struct dd_track *t);
/* Figures for the summary line. */
void dd_track_summary(struct dd_track *t, struct dd_buf *b);
void dd_track_close(struct dd_track *t);

/* The filter loop over t (opened by the caller, who reports an open
 * failure); returns the exit code, the loop having reported its errors. */
int dd_track_filter(struct dd_track *t, const struct dd_filter_opts *fo);

/*
 * Questions to the store (opened read-only). Each returns an exit code:
 * 0, 1 (get: no such delivery), 4 (store or write error, dd_errmsg()).
 */
/* get ID... / get -: see dd_store_get(). */
int dd_track_get(struct dd_store *s, char **ids, FILE *out);
/* stage < 0 or drone NULL: no filter on it. */
int dd_track_list(struct dd_store *s, int stage, const char *drone, enum dd_fmt fmt,
    FILE *out);
int dd_track_stats(struct dd_store *s, FILE *out);

#endif
