/*
 * The Delivery History lookup store (history.db), shared by dd-history
 * (which fills and queries it) and dd-archive (which moves old
 * deliveries out of it into the lake). SPEC.md: "dd-archive and
 * dd-history are one service and share history.db".
 *
 * Schema (user_version 1)
 *   deliveries  one row per delivery: dkey (a local integer key in
 *               first-seen order), id, and the summary derived from its
 *               events (request, owner, stage, drone, created, ended,
 *               updated, event count), with the (time, event id) that
 *               each derived field came from, so that the summary is a
 *               function of the set of events, whatever their order of
 *               arrival.
 *   events      (dkey, event id) -> time and the original line, clustered
 *               by delivery: a lookup reads one or two pages.
 *
 * Keys: a delivery is keyed by data.deliveryId; a delivery.rejected event
 * that carries none (the request never got one) is keyed by its
 * data.requestId, so `dd-history get REQUEST-ID` finds the rejection.
 * An event is stored once per key and event id (idempotent by event id).
 *
 * Summary rules (order-independent: each is a min or max over the events):
 *   created   the earliest event time; updated the latest
 *   stage     the stage of the latest event (time, then id), except that
 *             once a final stage exists (completed, cancelled, failed,
 *             rejected) the earliest final event decides, and ended is
 *             its time
 *   owner, request   from the earliest scheduled/rejected event
 *   drone     from the latest event carrying a data.droneId string
 */
#ifndef DD_HISTORY_H
#define DD_HISTORY_H

#include <stdint.h>
#include <stdio.h>
#include "event.h"
#include "filter.h"
#include "line.h"
#include "out.h"
#include "store.h"

/* Open (create, migrate) history.db for writing; an exit code (0, 4, 5). */
int dd_history_open(struct dd_store *s, const char *path);

/* ------------------------------------------------------------- ingestion */

struct dd_history_ingest;
struct dd_history_istats {
	uint64_t events;	/* events newly stored */
	uint64_t duplicates;	/* events already stored (by key and id) */
	uint64_t deliveries;	/* deliveries newly created */
	uint64_t archived;	/* events about archived deliveries, sent to the lake */
};

/* NULL with dd_errmsg() when the statements cannot be prepared. */
struct dd_history_ingest *dd_history_ingest_new(struct dd_store *s);
/*
 * Where events about deliveries already archived go: appended to their
 * history in LAKE/DATASET (the dataset dd-archive moved them to), never a
 * new partial record here. Both strings are copied. Without this call,
 * $DD_HOME/lake and "events".
 */
void dd_history_ingest_lake(struct dd_history_ingest *h, const char *lake,
    const char *dataset);
/* One event from the filter loop: DD_SKIP for types not consumed,
 * DD_REJECT for bad data, DD_FAIL on a store error (dd_errmsg()). */
enum dd_verdict dd_history_ingest_event(struct dd_history_ingest *h,
    const struct dd_env *e, const char *line, size_t len);
/* Commit the open transaction; 0 or -1 (dd_errmsg()). */
int dd_history_ingest_commit(struct dd_history_ingest *h);
void dd_history_ingest_stats(const struct dd_history_ingest *h,
    struct dd_history_istats *st);
/* Roll back whatever is uncommitted and free. */
void dd_history_ingest_free(struct dd_history_ingest *h);

/* ---------------------------------------------------------------- queries */

/* Is s a stage name (the stages of SPEC.md plus "rejected")? */
int dd_history_stage_ok(const char *s);

/* get ID... / get - (dd_store_get()): each delivery with its events (the
 * original lines, embedded as they are, in event-time order) as one JSON
 * line to out. An exit code. */
int dd_history_get(struct dd_store *s, char **ids, FILE *out);

struct dd_history_query {
	const char *owner;	/* NULL: any */
	const char *stage;	/* NULL: any */
	int64_t since_ms, until_ms;	/* on the created time; INT64_MIN/MAX for none */
};
/* The matching deliveries' summaries, by created time, in fmt. 0 or -1. */
int dd_history_list(struct dd_store *s, const struct dd_history_query *q,
    enum dd_fmt fmt, FILE *out);
/* Counts (deliveries, events, per stage) as one JSON line. 0 or -1. */
int dd_history_stats(struct dd_store *s, FILE *out);

/* ------------------------------------------------- archiving (dd-archive) */

/* The statements of archiving, prepared once. NULL with dd_errmsg(). */
struct dd_history_arch;
struct dd_history_arch *dd_history_arch_new(struct dd_store *s);
void dd_history_arch_free(struct dd_history_arch *a);

/* A delivery that may be archived. */
struct dd_history_cand {
	int64_t dkey, ended_ms;
	char *id;
	int64_t events;		/* events read for it (filled by the caller) */
};

/*
 * Up to limit deliveries that ended before cutoff_ms, in (ended, dkey)
 * order strictly after (*after_ms, *after_dkey) (start with INT64_MIN, 0);
 * the cursor is advanced past the last one returned. *out is malloc'd
 * (dd_history_cands_free). 0 or -1.
 */
int dd_history_candidates(struct dd_history_arch *a, int64_t cutoff_ms,
    int64_t *after_ms, int64_t *after_dkey, size_t limit,
    struct dd_history_cand **out, size_t *n);
void dd_history_cands_free(struct dd_history_cand *c, size_t n);

/* Call fn for every event of delivery dkey in event-time order: the
 * original line (valid until the next call), its time and event id.
 * fn returns 0 to go on, anything else stops the walk and is returned.
 * 0, the fn's value, or -1 on a store error. */
int dd_history_events(struct dd_history_arch *a, int64_t dkey,
    int (*fn)(void *ctx, const char *line, size_t len, int64_t time_ms,
        const char *eid, size_t eidlen), void *ctx);

/*
 * Delete what dd-archive moved to the lake, in one transaction: the
 * events (dkey, eid) listed, then every delivery of c[] left without
 * events. A delivery that received an event meanwhile (a live writer)
 * keeps its row and that event, with its count corrected, for the next
 * run. eids[i] holds the event ids of c[i], each NUL-terminated, one
 * after the other, c[i].events of them. *deleted gets how many delivery
 * rows went. 0 or -1 (rolled back, dd_errmsg()).
 */
int dd_history_forget(struct dd_history_arch *a, const struct dd_history_cand *c,
    size_t n, const char *const *eids, uint64_t *deleted);

#endif
