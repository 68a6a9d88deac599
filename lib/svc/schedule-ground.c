/*
 * Failed drones (dd-schedule(1), "A failed drone stays grounded"): a
 * drone that reported a failure is out of service until it has returned
 * and --inspection has passed, or an operator puts it back (fleet
 * return). In memory the fleet keeps the drone's time out of service,
 * which no flight may overlap (bookings it had keep their place); in the
 * store it is the drone's failed_at and returned_at.
 */
#include <stdlib.h>
#include <string.h>

#include "ddtime.h"
#include "exitcodes.h"
#include "schedule-int.h"

void
sched_ground_book(struct dd_sched *s, int i, int64_t failed, int64_t returned)
{
	int64_t until = returned == DD_NOTIME ? DD_FLEET_FOREVER : returned + s->o.inspection_ms;
	dd_fleet_ground(s->fleet, i, failed, until > failed ? until : failed);
}

static int
set_drone(struct dd_sched *s, const char *drone, int64_t failed, int64_t returned)
{
	sqlite3_stmt *q = dd_store_prepare(&s->st, "UPDATE drones SET failed_at = ?,"
	    " returned_at = ? WHERE id = ?");
	if (q == NULL)
		return -1;
	dd_bind_time(q, 0, failed);
	dd_bind_time(q, 1, returned);
	dd_bind_text(q, 2, drone, (size_t)-1);
	int rc = sched_step_sql(s, q, "recording a drone's failure");
	sqlite3_finalize(q);
	return rc;
}

int
sched_ground(struct dd_sched *s, int i, int64_t failed, int64_t t)
{
	/* The deliveries already booked on it keep their booking: the
	 * delivery service may be flying them already by the time the
	 * failure is heard (the supervisor moves one that never starts); the
	 * drone takes no new one. */
	if (set_drone(s, dd_fleet_spec(s->fleet, i)->id, failed, DD_NOTIME))
		return -1;
	sched_ground_book(s, i, failed, DD_NOTIME);
	return 0;
}

/* The failure of a drone in the store: 1 grounded (*failed, *returned),
 * 0 in service, -1 error. */
static int
drone_failure(struct dd_sched *s, const char *drone, int64_t *failed, int64_t *returned)
{
	sqlite3_stmt *q = dd_store_prepare(&s->st, "SELECT failed_at, returned_at FROM drones"
	    " WHERE id = ? AND failed_at IS NOT NULL");
	if (q == NULL)
		return -1;
	dd_bind_text(q, 0, drone, (size_t)-1);
	int rc = sqlite3_step(q), r = 0;
	if (rc == SQLITE_ROW) {
		*failed = sqlite3_column_int64(q, 0);
		*returned = dd_col_time(q, 1);
		r = 1;
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return dd_store_err(&s->st, "reading a drone");
	return r;
}

int
sched_drone_returned(struct dd_sched *s, const char *drone, int64_t at, int64_t t)
{
	int i = dd_fleet_find(s->fleet, drone);
	int64_t failed = 0, returned = DD_NOTIME;
	if (i < 0)
		return 0;
	int r = drone_failure(s, drone, &failed, &returned);
	/* Only the first return after the failure starts the inspection. */
	if (r <= 0 || returned != DD_NOTIME || at < failed)
		return r < 0 ? -1 : 0;
	if (set_drone(s, drone, failed, at))
		return -1;
	sched_ground_book(s, i, failed, at);
	return sched_retry_waiting(s, drone, t);
}

int
dd_sched_fleet_return(struct dd_sched *s, const char *drone)
{
	if (sched_ensure_tx(s))
		return DD_EXIT_IO;
	int i = dd_fleet_find(s->fleet, drone);
	if (i < 0) {
		dd_store_rollback(&s->st);
		dd_seterr("%s: no such drone in the fleet", drone);
		return DD_EXIT_REJECTED;
	}
	int64_t t = sched_advance(s, INT64_MIN);
	sqlite3_stmt *q = dd_store_prepare(&s->st, "UPDATE drones SET failed_at = NULL,"
	    " returned_at = NULL WHERE id = ?");
	if (q == NULL)
		return DD_EXIT_IO;
	dd_bind_text(q, 0, drone, (size_t)-1);
	int rc = sched_step_sql(s, q, "putting a drone back");
	sqlite3_finalize(q);
	dd_fleet_ground(s->fleet, i, INT64_MIN, INT64_MIN);
	if (rc || sched_retry_waiting(s, drone, t) || fflush(s->out) || sched_commit(s))
		return DD_EXIT_IO;
	return DD_EXIT_OK;
}
