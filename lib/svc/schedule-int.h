/*
 * Inside the scheduler (schedule.h): what its files share and nothing
 * else includes. One concern a file:
 *   schedule.c            the handle: store, names, ids, the clock, what
 *                         memory holds (fleet, bookings, waiting items),
 *                         transactions, the fleet file
 *   schedule-items.c      work-item rows: to and from SQLite, the log
 *   schedule-steps.c      the steps of a work item and the events each
 *                         emits: assignment and compensation
 *   schedule-parse.c      the members of a request and their faults
 *   schedule-requests.c   the filter: requests, operations and
 *                         delivery.status feedback
 *   schedule-window.c     placing an item; the scheduling window:
 *                         expedited first, moving normal bookings
 *   schedule-supervise.c  the supervisor
 *   schedule-query.c      get, list, stats, fleet list
 */
#ifndef DD_SCHEDULE_INT_H
#define DD_SCHEDULE_INT_H

#include <stdint.h>
#include <string.h>

#include "csvfeed.h"
#include "fleet.h"
#include "json.h"
#include "schedule.h"
#include "store.h"
#include "util.h"

#define IDMAX 128
/* A delivery id: "d-" and 32 hex digits (older stores: 16). */
#define DIDMAX 40

/* ---- work items ---- */

enum state {
	ST_WAITING, ST_SCHEDULED, ST_INPROGRESS, ST_COMPLETED, ST_CANCELLED,
	ST_REJECTED, ST_FAILED, ST_N
};
extern const char *const sched_state_names[ST_N];
extern const char *const sched_confirm_names[4];

struct item {
	char did[DIDMAX];
	char rid[IDMAX + 1], owner[IDMAX + 1];
	int attempt;		/* 1, 2, ...: the deliveries of one request */
	/* A cancel the scheduler could not decide (the package may be on
	 * board): its reason and its operation's key, until a status decides. */
	char held[IDMAX + 1], held_op[DIDMAX];
	int64_t seq;
	int state;
	int ever;		/* has had a drone: counts as scheduled */
	int valid;		/* the request passed validation (its fields are set) */
	char reason[IDMAX + 1], field[48];
	double pk_lat, pk_lon, pk_alt, dr_lat, dr_lon, dr_alt;
	int64_t pickup_time, deadline;
	int expedited, confirm;
	char package_id[IDMAX + 1];
	int size;
	double kg;
	char *tag;		/* NULL: none */
	char drone[IDMAX + 1];	/* "": none */
	int version;		/* assignments so far: names the steps */
	int64_t depart, pickup_eta, dropoff_eta, return_eta, busy_until;
	char stage[24], prev_stage[24];
	int64_t stage_time;
	int64_t received, updated;
	int nlog;
};

static inline int
is_final(int st)
{
	return st == ST_COMPLETED || st == ST_CANCELLED || st == ST_REJECTED;
}

/* The booking key of a delivery in the fleet. */
static inline uint64_t
item_key(const struct item *it)
{
	return dd_hash64(it->did, strlen(it->did));
}

#define ITEM_COLS "delivery_id, request_id, owner_id, seq, state, ever, valid, reason, field," \
	" pk_lat, pk_lon, pk_alt, dr_lat, dr_lon, dr_alt, pickup_time, deadline, expedited," \
	" confirmation, package_id, size, weight_kg, tag, drone_id, version, depart," \
	" pickup_eta, dropoff_eta, return_eta, busy_until, stage, prev_stage, stage_time," \
	" received, updated, nlog, attempt, held_reason, held_op"
#define ITEM_NCOLS 39

/* ---- the handle ---- */

struct dd_sched {
	struct dd_store st;
	struct dd_sched_opts o;
	FILE *out;
	sqlite3_stmt *q_get, *q_getreq, *q_put, *q_log, *q_step, *q_op, *q_opseen, *q_meta, *q_dv,
	    *q_seen, *q_seenadd, *q_opset;
	struct dd_fleet *fleet;
	struct item **wait;	/* waiting items, most urgent first */
	size_t nwait, capwait;
	struct item **pend;	/* the open window's items, in arrival order */
	size_t npend, cappend;
	int64_t win_start;	/* the open window's start (DD_NOTIME: none) */
	int64_t closed_seq;	/* items up to this seq were placed */
	int end_failed;		/* closing the window at the end of input failed */
	int64_t clock;		/* the input's time, never going back */
	int64_t seq;
	int loaded;
	int64_t dv;
	int did_bits;		/* test aid: derived ids keep only this many bits (0: all) */
	struct dd_buf ev, data, tmp, opname;
	/* The filter's run: the CSV feed (--csv), or why it could not start
	 * (said by the filter loop before it reads). */
	struct dd_csvfeed *feed;
	char *feed_err;
	const char *input;
	/* figures of the run */
	uint64_t n_new, n_dup, n_opdup, n_invalid, n_sched, n_wait, n_nodrone, n_status, n_ops,
	    n_emitted, n_retried, n_held, n_refused, n_late, n_moved, n_preempt;
};

/* schedule.c */
int sched_state_parse(const char *name);
/* Step a statement without results and reset it; 0 or -1 (dd_errmsg()). */
int sched_step_sql(struct dd_sched *s, sqlite3_stmt *q, const char *what);
/* JSON text: members appended to an object being written in b. */
void sched_jnum(struct dd_buf *b, double d);
void sched_jkey(struct dd_buf *b, const char *k);
void sched_jstr(struct dd_buf *b, const char *k, const char *v);
void sched_jtime(struct dd_buf *b, const char *k, int64_t ms);
void sched_jdbl(struct dd_buf *b, const char *k, double v);
void sched_jloc(struct dd_buf *b, const char *k, double lat, double lon, double alt);
void sched_hex_id(char *out, size_t cap, const char *prefix, uint64_t h);
/* 128 bits of SHA-256 of p, as 32 hex digits. */
void sched_key_hex(const void *p, size_t n, char out[DIDMAX]);
void sched_derive_did(const char *owner, const char *rid, int attempt, unsigned probe,
    int bits, char out[DIDMAX]);
int sched_name_item(struct dd_sched *s, struct item *it);
void sched_derive_eid(const char *did, const char *step, char out[24]);
int64_t sched_advance(struct dd_sched *s, int64_t t);
void sched_wait_add(struct dd_sched *s, struct item *it);
struct item *sched_wait_take(struct dd_sched *s, const char *did);
int sched_ensure_tx(struct dd_sched *s);
int sched_commit(struct dd_sched *s);
long sched_fault_at(const char *what);

/* schedule-items.c */
struct item *sched_item_new(void);
void sched_item_free(struct item *it);
void sched_drop_drone(struct item *it);
struct item *sched_item_read(sqlite3_stmt *q);
int sched_item_get(struct dd_sched *s, const char *did, struct item **out);
int sched_item_get_request(struct dd_sched *s, const char *owner, const char *rid,
    struct item **out);
int sched_item_put(struct dd_sched *s, struct item *it);
int sched_log_row(struct dd_sched *s, struct item *it, int64_t t, const char *step,
    const char *detail, const char *received);
int sched_step_done(struct dd_sched *s, const struct item *it, const char *step);

/* schedule-steps.c */
/* What a reschedule changed, for delivery.rescheduled. */
enum {
	CH_PICKUP = 1, CH_DROPOFF = 2, CH_PTIME = 4, CH_DEADLINE = 8, CH_EXPEDITED = 16,
	CH_CONFIRM = 32,
};
void sched_terms_json(struct dd_buf *b, const struct item *it);
void sched_etas_json(struct dd_buf *b, const struct item *it);
int sched_emit_registered(struct dd_sched *s, struct item *it, int64_t t);
int sched_emit_released(struct dd_sched *s, struct item *it, int64_t t, const char *drone,
    int version, const char *reason, int check);
int sched_emit_rejected(struct dd_sched *s, struct item *it, int64_t t, const char *reason,
    const char *message, int check);
int sched_emit_refused(struct dd_sched *s, struct item *it, int64_t t, const char *op,
    const char *reason, const char *hash);
int sched_emit_rescheduled(struct dd_sched *s, struct item *it, int64_t t, unsigned changed,
    const char *reason);
void sched_trip_of(const struct item *it, int64_t now, int exclude, struct dd_trip *t);
void sched_unbook(struct dd_sched *s, struct item *it);
int sched_assign(struct dd_sched *s, struct item *it, const struct dd_plan *p, int64_t t,
    unsigned changed, const char *reason);
int sched_compensate(struct dd_sched *s, struct item *it, int64_t t, const char *reason,
    int check, int cancel);
int sched_retry_waiting(struct dd_sched *s, const char *drone, int64_t t);

/* schedule-window.c */
void sched_pend_add(struct dd_sched *s, struct item *it);
struct item *sched_pend_take(struct dd_sched *s, const char *did);
/* Find the item a drone at t (an expedited one may move normal ones):
 * scheduled, waiting or compensated, and put; takes it (freed, or the
 * wait list's). 0 or -1. */
int sched_place(struct dd_sched *s, struct item *it, int64_t t);
/* The same with the search's answer already known (fit, *p when OK). */
int sched_place_fit(struct dd_sched *s, struct item *it, int64_t t, int fit,
    const struct dd_plan *p);
/* Place the open window's items, most urgent first. */
int sched_window_close(struct dd_sched *s, int64_t t);
/* A line of time t (DD_NOTIME: none) comes, before the clock moves to
 * it: close the window, as of its end, if t is past that. */
int sched_window_tick(struct dd_sched *s, int64_t t);

/* schedule-ground.c: failed drones out of service */
/* In memory: drone i out of service from failed on, until returned plus
 * the inspection (returned DD_NOTIME: until put back). */
void sched_ground_book(struct dd_sched *s, int i, int64_t failed, int64_t returned);
/* Drone i failed: grounded in the store and in memory (after the
 * bookings it already has). */
int sched_ground(struct dd_sched *s, int i, int64_t failed, int64_t t);
/* A drone.returned event: a grounded drone's inspection starts. */
int sched_drone_returned(struct dd_sched *s, const char *drone, int64_t at, int64_t t);


/* schedule-parse.c */
/* The top-level members a request or an event may have. */
enum {
	K_SPECVERSION, K_OP, K_REQUESTID, K_OWNERID, K_DELIVERYID, K_PICKUP, K_DROPOFF,
	K_PICKUPTIME, K_DEADLINE, K_EXPEDITED, K_CONFIRM, K_PACKAGE, K_PICKUPLOC,
	K_DROPOFFLOC, K_PACKAGEINFO, K_REASON, K_N
};
struct keys {
	struct dd_jval v[K_N];
};
/* The first field at fault in a request. */
struct fault {
	char field[48];
	char msg[200];
};
/* A dd_json_scan_object() callback filling a struct keys. */
int sched_key_member(void *ctx, const struct dd_jval *k, const struct dd_jval *v);
int sched_get_id(const struct dd_jval *v, char out[IDMAX + 1], const char **why);
void sched_loc_obj(const struct dd_jval *v, const char *name, double *lat, double *lon,
    double *alt, struct fault *ft);
void sched_get_time(const struct dd_jval *v, const char *name, int64_t *ms, struct fault *ft);
void sched_get_bool(const struct dd_jval *v, const char *name, int *b, struct fault *ft);
void sched_get_confirm(const struct dd_jval *v, int *c, struct fault *ft);
int sched_parse_request(struct dd_sched *s, const struct keys *k, struct item *it,
    struct fault *ft);

#endif
