/*
 * The supervisor (dd-schedule supervise, from cron): every stuck work
 * item (failed, scheduled with no progress past its pickup ETA, waiting)
 * is retried on another drone or compensated, one item per transaction,
 * its events written before the commit.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ddtime.h"
#include "exitcodes.h"
#include "filter.h"
#include "schedule-int.h"

struct supstats {
	uint64_t examined, scheduled, rescheduled, cancelled, rejected, retried;
};

/* Reassign an item to another drone at t, or compensate. */
static int
reassign(struct dd_sched *s, struct item *it, int64_t t, const char *reason, int exclude_old,
    struct supstats *ss)
{
	char old[IDMAX + 1];
	int oldv = it->version;
	snprintf(old, sizeof old, "%s", it->drone);
	int ex = exclude_old && *old ? dd_fleet_find(s->fleet, old) : -1;
	sched_unbook(s, it);
	struct dd_trip tr;
	struct dd_plan p;
	sched_trip_of(it, t, ex, &tr);
	if (it->deadline > t && dd_fleet_search(s->fleet, &tr, &p) == DD_FIT_OK) {
		if (*old && sched_emit_released(s, it, t, old, oldv, reason, 1))
			return -1;
		ss->rescheduled++;
		return sched_assign(s, it, &p, t, 0, reason);
	}
	if (it->ever)
		ss->cancelled++;
	else
		ss->rejected++;
	return sched_compensate(s, it, t, reason, 1, it->ever);
}

/*
 * A failed delivery's request gets another flight: a new delivery (its
 * own id, attempt + 1) of the same request and package, registered again
 * under the new id and scheduled, waiting or compensated as a new request
 * would be. The failed delivery stays failed (final), its drone released;
 * reason "retried" marks it handled.
 */
static int
retry_attempt(struct dd_sched *s, struct item *it, int64_t t, struct supstats *ss)
{
	struct item *n = sched_item_new();
	snprintf(n->rid, sizeof n->rid, "%s", it->rid);
	snprintf(n->owner, sizeof n->owner, "%s", it->owner);
	n->attempt = it->attempt + 1;
	n->valid = 1;
	n->pk_lat = it->pk_lat, n->pk_lon = it->pk_lon, n->pk_alt = it->pk_alt;
	n->dr_lat = it->dr_lat, n->dr_lon = it->dr_lon, n->dr_alt = it->dr_alt;
	n->pickup_time = it->pickup_time;
	n->deadline = it->deadline;
	n->expedited = it->expedited;
	n->confirm = it->confirm;
	snprintf(n->package_id, sizeof n->package_id, "%s", it->package_id);
	n->size = it->size;
	n->kg = it->kg;
	n->tag = it->tag ? dd_strdup(it->tag) : NULL;
	n->seq = ++s->seq;
	n->received = n->updated = t;
	n->state = ST_WAITING;
	if (sched_name_item(s, n))
		goto fail;
	/* The old delivery first: its drone released, then the hand-over. */
	if (*it->drone && sched_emit_released(s, it, t, it->drone, it->version, "drone-failed", 1))
		goto fail;
	snprintf(it->reason, sizeof it->reason, "retried");
	it->updated = t;
	if (sched_log_row(s, it, t, "retried", n->did, NULL) || sched_item_put(s, it))
		goto fail;
	if (sched_emit_registered(s, n, t))
		goto fail;
	struct dd_trip tr;
	struct dd_plan p;
	sched_trip_of(n, t, -1, &tr);
	int fit = n->deadline > t ? dd_fleet_search(s->fleet, &tr, &p) : DD_FIT_LATE;
	ss->retried++;
	if (fit == DD_FIT_OK) {
		ss->scheduled++;
		if (sched_assign(s, n, &p, t, 0, NULL) || sched_item_put(s, n))
			goto fail;
	} else if (fit == DD_FIT_BUSY) {
		if (sched_log_row(s, n, t, "waiting", "no drone free before the deadline", NULL) ||
		    sched_item_put(s, n))
			goto fail;
		sched_wait_add(s, n);
		return 0;
	} else {
		ss->rejected++;
		if (sched_compensate(s, n, t, fit == DD_FIT_NONE ? "no-drone" : "deadline", 1, 0) ||
		    sched_item_put(s, n))
			goto fail;
	}
	sched_item_free(n);
	return 0;
fail:
	sched_item_free(n);
	return -1;
}

/* Decide about one item at t; 0 also when there was nothing to do. */
static int
supervise_item(struct dd_sched *s, struct item *it, int64_t t, struct supstats *ss)
{
	switch (it->state) {
	case ST_FAILED:
		/* Failed is a final stage (SPEC.md): dd-track and dd-history
		 * ignore whatever follows it, so a new drone for this delivery
		 * would fly unseen. Another flight is another delivery, up to
		 * --max-attempts; a held cancel or a passed deadline, and the last
		 * attempt, are compensated. */
		if (!strcmp(it->reason, "retried"))
			return 0;
		if (!*it->held && it->attempt < s->o.max_attempts && it->deadline > t)
			return retry_attempt(s, it, t, ss);
		ss->cancelled++;
		return sched_compensate(s, it, t, *it->held ? it->held : "drone-failed", 1, 1);
	case ST_SCHEDULED:
		if (it->pickup_eta == INT64_MIN || it->pickup_eta + s->o.timeout_ms > t)
			return 0;
		if (*it->held) {
			/* A held cancel, and no word from the delivery service long
			 * after the pickup: the drone never left; the cancel holds. */
			ss->cancelled++;
			return sched_compensate(s, it, t, it->held, 1, 1);
		}
		return reassign(s, it, t, "no-progress", 1, ss);
	case ST_WAITING: {
		int late = 0;
		struct dd_trip tr;
		struct dd_plan p;
		sched_trip_of(it, t, -1, &tr);
		if (it->deadline > t) {
			int fit = dd_fleet_search(s->fleet, &tr, &p);
			if (fit == DD_FIT_OK) {
				sched_item_free(sched_wait_take(s, it->did));
				ss->scheduled++;
				return sched_assign(s, it, &p, t, 0, "drone-freed");
			}
			if (fit == DD_FIT_BUSY)
				return 0;
			if (fit == DD_FIT_LATE)
				late = 1;
		}
		sched_item_free(sched_wait_take(s, it->did));
		if (it->ever)
			ss->cancelled++;
		else
			ss->rejected++;
		return sched_compensate(s, it, t, it->deadline > t && !late ? "no-drone" : "deadline", 1,
		    it->ever);
	}
	default:
		return 0;
	}
}

static char *
lock_path(const char *db)
{
	char *p = dd_malloc(strlen(db) + 32);
	sprintf(p, "%s.supervise.lock", db);
	return p;
}

/* The candidates: deliveries already promised first (replacing their
 * drone may free time for the others), then the waiting ones, most urgent
 * first, as NUL-separated ids in ids. 0, or -1 (dd_errmsg()). */
static int
stuck_items(struct dd_sched *s, int64_t t, struct dd_buf *ids, size_t *nids)
{
	sqlite3_stmt *q = dd_store_prepare(&s->st, "SELECT delivery_id FROM items WHERE"
	    " (state = 'failed' AND (reason IS NULL OR reason != 'retried')) OR (state = 'scheduled' AND pickup_eta <= ?) OR state = 'waiting'"
	    " ORDER BY state = 'waiting', expedited DESC, deadline, seq");
	if (q == NULL)
		return -1;
	dd_bind_int(q, 0, t - s->o.timeout_ms);
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		dd_buf_adds(ids, dd_col_text(q, 0, NULL));
		dd_buf_addc(ids, '\0');
		(*nids)++;
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : dd_store_err(&s->st, "finding stuck items");
}

/* Re-read one candidate and handle it in its own transaction; *acted
 * counts the items that took a step. DD_EXIT_OK to go on, or the code
 * to stop with. */
static int
supervise_one(struct dd_sched *s, const char *id, int64_t t, struct supstats *ss, long *acted)
{
	struct item *it;
	if (sched_ensure_tx(s))
		return DD_EXIT_IO;
	int found = sched_item_get(s, id, &it);
	if (found <= 0)
		return found < 0 ? DD_EXIT_IO : DD_EXIT_OK;
	ss->examined++;
	int before = it->nlog;
	int rc = supervise_item(s, it, t, ss) || (it->nlog != before && sched_item_put(s, it));
	if (it->nlog != before)
		(*acted)++;
	sched_item_free(it);
	if (rc)
		return DD_EXIT_IO;
	/* Output first, then the commit: a crash in between repeats this
	 * item's events with the same ids, never loses them. */
	if (fflush(s->out) != 0 || ferror(s->out)) {
		dd_seterr("stdout: %s", strerror(errno));
		return DD_EXIT_IO;
	}
	long kill_at = sched_fault_at("supervise-kill:");
	if (kill_at > 0 && *acted == kill_at)
		raise(SIGKILL);
	if (sched_commit(s))
		return DD_EXIT_IO;
	return dd_signalled ? 128 + dd_signalled : DD_EXIT_OK;
}

int
dd_sched_supervise(struct dd_sched *s, struct dd_buf *summary)
{
	char *lp = lock_path(s->o.db);
	int lock = dd_lock(lp);
	free(lp);
	if (lock < 0)
		return -lock;
	int64_t t = s->o.has_now ? s->o.now : dd_now_ms();
	/* The supervisor's clock is t: its floor too. */
	s->o.has_now = 1;
	s->o.now = t;
	long acted = 0;
	struct supstats ss = { 0 };
	struct dd_buf ids = { 0 };
	size_t nids = 0;
	int code = stuck_items(s, t, &ids, &nids) ? DD_EXIT_IO : DD_EXIT_OK;
	const char *id = ids.p;
	for (size_t k = 0; k < nids && code == DD_EXIT_OK; k++, id += strlen(id) + 1)
		code = supervise_one(s, id, t, &ss, &acted);
	if (s->st.in_tx)
		dd_store_rollback(&s->st);
	dd_buf_free(&ids);
	dd_buf_printf(summary, "supervised %" PRIu64 " items: %" PRIu64 " scheduled, %" PRIu64
	    " rescheduled, %" PRIu64 " cancelled, %" PRIu64 " rejected, %" PRIu64 " given another"
	    " attempt; %zu still waiting", ss.examined, ss.scheduled, ss.rescheduled, ss.cancelled,
	    ss.rejected, ss.retried, s->nwait);
	close(lock);
	return code;
}
