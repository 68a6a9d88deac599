/*
 * The scheduler of dd-schedule(1): the Scheduler Agent Supervisor and
 * Compensating Transaction patterns over one SQLite store.
 *
 * Each delivery request becomes a work item, recorded durably before
 * anything is emitted about it, that walks through
 *   waiting -> scheduled -> in-progress -> completed
 * or ends cancelled, rejected or failed. Every step emits one CloudEvent
 * whose id is derived from the delivery id and the step, and is logged
 * with the item in the same transaction, so a replay, a crash or a second
 * supervisor never produces a step twice under two ids.
 *
 * The functions return exit codes of lib/exitcodes.h (0 ok) with the
 * reason in dd_errmsg(); events go to the FILE given in the options.
 */
#ifndef DD_SCHEDULE_H
#define DD_SCHEDULE_H

#include <stdint.h>
#include <stdio.h>

#include "filter.h"
#include "out.h"
#include "util.h"

struct dd_sched;

struct dd_sched_opts {
	const char *db;		/* the store */
	int has_now;		/* --now given: the clock is fixed at now */
	int64_t now;
	int64_t lead_ms;	/* a request is taken to arrive this long before its pickup */
	int64_t timeout_ms;	/* supervise: a scheduled delivery may show no progress this long after its pickup ETA */
	FILE *out;		/* where events go (stdout) */
	int readonly;		/* get, list, stats, fleet list */
	int64_t inspection_ms;	/* a failed drone is out of service this long after it returned */
	int max_attempts;	/* supervise: deliveries (flights) a request may have */
	int64_t window_ms;	/* new requests this close in request time compete: most urgent first */
};

#define DD_SCHED_LEAD_MS (60 * 60 * 1000)
#define DD_SCHED_TIMEOUT_MS (15 * 60 * 1000)
#define DD_SCHED_INSPECTION_MS (60 * 60 * 1000)
#define DD_SCHED_MAX_ATTEMPTS 3
#define DD_SCHED_WINDOW_MS (5 * 60 * 1000)

void dd_sched_defaults(struct dd_sched_opts *o);
/* Open (creating and migrating) the store. */
int dd_sched_open(struct dd_sched **sp, const struct dd_sched_opts *o);
void dd_sched_close(struct dd_sched *s);
/* Drop what memory holds (fleet, waiting items, clock): the next run
 * loads it all from the store, as after a fresh open. For a caller that
 * changed the store behind the scheduler (the fuzz target puts it back
 * to a template between inputs, which is faster than reopening). */
void dd_sched_forget(struct dd_sched *s);

/*
 * Import a fleet CSV file ("-" for stdin): drones are added or updated
 * by id. Bad rows are reported as rejects (file:line) and skipped.
 * Returns 0, 1 when rows were rejected, 4 on I/O or store failure.
 */
int dd_sched_fleet_import(struct dd_sched *s, const char *path, const char *rejects,
    uint64_t *imported, uint64_t *rejected);

/*
 * The filter: requests (NDJSON, or CSV with a header when csv is set)
 * and delivery.status events on fo->fd, events out. Returns the exit
 * code of the filter loop.
 */
int dd_sched_filter(struct dd_sched *s, const struct dd_filter_opts *fo, int csv);

/*
 * The supervisor: retry or compensate every stuck work item, one item per
 * transaction. Takes the lock DB.supervise.lock (5 when another holds it).
 * Once it has run (stopped by a failure or not), a one-line summary of
 * its figures is appended to summary, for the program to show.
 */
int dd_sched_supervise(struct dd_sched *s, struct dd_buf *summary);

/* get: one work item with its log, as one JSON line; 1 when unknown. */
int dd_sched_get(struct dd_sched *s, const char *id, FILE *out);
/* get ID... / get -: dd_sched_get for each, as dd_store_get() does. */
int dd_sched_get_many(struct dd_sched *s, char **ids, FILE *out);
/* list: work items in arrival order, all or those in one state. */
int dd_sched_list(struct dd_sched *s, const char *state, enum dd_fmt fmt, FILE *out);
/* stats: one JSON line; requests = scheduled + rejected + waiting. */
int dd_sched_stats(struct dd_sched *s, FILE *out);
/* utilization: per owner and month of departure, dispatched flights, the
 * km of their planned routes and the hours booked; owner, month NULL: all. */
int dd_sched_utilization(struct dd_sched *s, const char *owner, const char *month,
    enum dd_fmt fmt, FILE *out);
/* fleet return: put a failed drone back in service now (an operator's
 * word: inspected); 1 when it is not in the fleet. */
int dd_sched_fleet_return(struct dd_sched *s, const char *drone);
/* fleet list: the drones, in the columns of the fleet CSV. */
int dd_sched_fleet_list(struct dd_sched *s, enum dd_fmt fmt, FILE *out);

/* Is name one of the states of a work item? */
int dd_sched_state_valid(const char *name);

#endif
