/*
 * Work-item rows: an item to and from its row in items (ITEM_COLS), the
 * log of its steps. Empty text fields (no drone, no stage, no reason) are
 * NULL in the store, as the schema has always had them.
 */
#include <stdlib.h>
#include <string.h>

#include "schedule-int.h"

struct item *
sched_item_new(void)
{
	struct item *it = dd_calloc(1, sizeof *it);
	it->pickup_time = it->deadline = it->stage_time = DD_NOTIME;
	it->attempt = 1;
	sched_drop_drone(it);
	return it;
}

void
sched_item_free(struct item *it)
{
	if (it) {
		free(it->tag);
		free(it);
	}
}

void
sched_drop_drone(struct item *it)
{
	it->drone[0] = '\0';
	it->depart = it->pickup_eta = it->dropoff_eta = it->return_eta = it->busy_until = DD_NOTIME;
}

/* An empty field is stored as NULL. */
static const char *
nz(const char *s)
{
	return s && *s ? s : NULL;
}

/* Column i's text into a fixed field ("" for NULL). */
static void
col_copy(sqlite3_stmt *q, int i, char *buf, size_t cap)
{
	const char *t = dd_col_text(q, i, NULL);
	snprintf(buf, cap, "%s", t ? t : "");
}

/* The 14 columns of a valid request's terms, pk_lat to tag, from i. */
static void
bind_terms(sqlite3_stmt *q, int i, const struct item *it)
{
	dd_bind_real(q, i++, it->pk_lat);
	dd_bind_real(q, i++, it->pk_lon);
	dd_bind_real(q, i++, it->pk_alt);
	dd_bind_real(q, i++, it->dr_lat);
	dd_bind_real(q, i++, it->dr_lon);
	dd_bind_real(q, i++, it->dr_alt);
	dd_bind_time(q, i++, it->pickup_time);
	dd_bind_time(q, i++, it->deadline);
	dd_bind_int(q, i++, it->expedited);
	dd_bind_text(q, i++, sched_confirm_names[it->confirm], (size_t)-1);
	dd_bind_text(q, i++, nz(it->package_id), (size_t)-1);
	dd_bind_text(q, i++, dd_size_name(it->size), (size_t)-1);
	dd_bind_real(q, i++, it->kg);
	dd_bind_text(q, i++, it->tag, (size_t)-1);
}

static void
item_bind(sqlite3_stmt *q, const struct item *it)
{
	int i = 0;
	dd_bind_text(q, i++, nz(it->did), (size_t)-1);
	dd_bind_text(q, i++, it->rid, (size_t)-1);
	dd_bind_text(q, i++, it->owner, (size_t)-1);
	dd_bind_int(q, i++, it->seq);
	dd_bind_text(q, i++, sched_state_names[it->state], (size_t)-1);
	dd_bind_int(q, i++, it->ever);
	dd_bind_int(q, i++, it->valid);
	dd_bind_text(q, i++, nz(it->reason), (size_t)-1);
	dd_bind_text(q, i++, nz(it->field), (size_t)-1);
	/* An invalid request's terms are unknown: NULL. */
	if (it->valid)
		bind_terms(q, i, it);
	else
		for (int k = 0; k < 14; k++)
			dd_bind_text(q, i + k, NULL, 0);
	i += 14;
	dd_bind_text(q, i++, nz(it->drone), (size_t)-1);
	dd_bind_int(q, i++, it->version);
	dd_bind_time(q, i++, it->depart);
	dd_bind_time(q, i++, it->pickup_eta);
	dd_bind_time(q, i++, it->dropoff_eta);
	dd_bind_time(q, i++, it->return_eta);
	dd_bind_time(q, i++, it->busy_until);
	dd_bind_text(q, i++, nz(it->stage), (size_t)-1);
	dd_bind_text(q, i++, nz(it->prev_stage), (size_t)-1);
	dd_bind_time(q, i++, it->stage_time);
	dd_bind_int(q, i++, it->received);
	dd_bind_int(q, i++, it->updated);
	dd_bind_int(q, i++, it->nlog);
	dd_bind_int(q, i++, it->attempt);
	dd_bind_text(q, i++, nz(it->held), (size_t)-1);
	dd_bind_text(q, i++, nz(it->held_op), (size_t)-1);
}

/* The terms bind_terms() wrote, from column i. */
static void
read_terms(sqlite3_stmt *q, int i, struct item *it)
{
	it->pk_lat = dd_col_real(q, i++);
	it->pk_lon = dd_col_real(q, i++);
	it->pk_alt = dd_col_real(q, i++);
	it->dr_lat = dd_col_real(q, i++);
	it->dr_lon = dd_col_real(q, i++);
	it->dr_alt = dd_col_real(q, i++);
	it->pickup_time = dd_col_time(q, i++);
	it->deadline = dd_col_time(q, i++);
	it->expedited = (int)dd_col_int(q, i++);
	const char *c = dd_col_text(q, i++, NULL);
	for (int k = 0; k < 4; k++)
		if (c && strcmp(c, sched_confirm_names[k]) == 0)
			it->confirm = k;
	col_copy(q, i++, it->package_id, sizeof it->package_id);
	size_t n;
	const char *sz = dd_col_text(q, i++, &n);
	it->size = sz ? dd_size_parse(sz, n, 0) : DD_SIZE_NONE;
	it->kg = dd_col_real(q, i++);
	it->tag = dd_col_strdup(q, i++);
}

/* An item from a row of ITEM_COLS. */
struct item *
sched_item_read(sqlite3_stmt *q)
{
	struct item *it = dd_calloc(1, sizeof *it);
	int i = 0;
	col_copy(q, i++, it->did, sizeof it->did);
	col_copy(q, i++, it->rid, sizeof it->rid);
	col_copy(q, i++, it->owner, sizeof it->owner);
	it->seq = dd_col_int(q, i++);
	it->state = sched_state_parse(dd_col_text(q, i++, NULL));
	if (it->state < 0)
		it->state = ST_REJECTED;
	it->ever = (int)dd_col_int(q, i++);
	it->valid = (int)dd_col_int(q, i++);
	col_copy(q, i++, it->reason, sizeof it->reason);
	col_copy(q, i++, it->field, sizeof it->field);
	/* Zero terms for an invalid request, as calloc left them. */
	if (it->valid)
		read_terms(q, i, it);
	else
		it->pickup_time = it->deadline = DD_NOTIME;
	i += 14;
	col_copy(q, i++, it->drone, sizeof it->drone);
	it->version = (int)dd_col_int(q, i++);
	it->depart = dd_col_time(q, i++);
	it->pickup_eta = dd_col_time(q, i++);
	it->dropoff_eta = dd_col_time(q, i++);
	it->return_eta = dd_col_time(q, i++);
	it->busy_until = dd_col_time(q, i++);
	col_copy(q, i++, it->stage, sizeof it->stage);
	col_copy(q, i++, it->prev_stage, sizeof it->prev_stage);
	it->stage_time = dd_col_time(q, i++);
	it->received = dd_col_int(q, i++);
	it->updated = dd_col_int(q, i++);
	it->nlog = (int)dd_col_int(q, i++);
	it->attempt = (int)dd_col_int(q, i++);
	col_copy(q, i++, it->held, sizeof it->held);
	col_copy(q, i++, it->held_op, sizeof it->held_op);
	return it;
}

/* Load an item by delivery id: 1 found, 0 not, -1 error. */
int
sched_item_get(struct dd_sched *s, const char *did, struct item **out)
{
	dd_bind_text(s->q_get, 0, did, (size_t)-1);
	int rc = sqlite3_step(s->q_get);
	*out = NULL;
	if (rc == SQLITE_ROW)
		*out = sched_item_read(s->q_get);
	sqlite3_reset(s->q_get);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return dd_store_err(&s->st, "reading a work item");
	return rc == SQLITE_ROW;
}

/* The latest delivery of a request, by its full key: 1 found, 0 not, -1. */
int
sched_item_get_request(struct dd_sched *s, const char *owner, const char *rid,
    struct item **out)
{
	dd_bind_text(s->q_getreq, 0, owner, (size_t)-1);
	dd_bind_text(s->q_getreq, 1, rid, (size_t)-1);
	int rc = sqlite3_step(s->q_getreq);
	*out = NULL;
	if (rc == SQLITE_ROW)
		*out = sched_item_read(s->q_getreq);
	sqlite3_reset(s->q_getreq);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return dd_store_err(&s->st, "reading a work item");
	return rc == SQLITE_ROW;
}

int
sched_item_put(struct dd_sched *s, struct item *it)
{
	item_bind(s->q_put, it);
	return sched_step_sql(s, s->q_put, "recording a work item");
}

/* Log a step of the item; received: the id of the event received. */
int
sched_log_row(struct dd_sched *s, struct item *it, int64_t t, const char *step,
    const char *detail, const char *received)
{
	sqlite3_stmt *q = s->q_log;
	dd_bind_text(q, 0, it->did, (size_t)-1);
	dd_bind_int(q, 1, ++it->nlog);
	dd_bind_int(q, 2, t);
	dd_bind_text(q, 3, step, (size_t)-1);
	dd_bind_text(q, 4, sched_state_names[it->state], (size_t)-1);
	dd_bind_text(q, 5, nz(detail), (size_t)-1);
	dd_bind_text(q, 6, nz(received), (size_t)-1);
	return sched_step_sql(s, q, "logging a step");
}

/* Has this step of the item been done (and committed) already? */
int
sched_step_done(struct dd_sched *s, const struct item *it, const char *step)
{
	dd_bind_text(s->q_step, 0, it->did, (size_t)-1);
	dd_bind_text(s->q_step, 1, step, (size_t)-1);
	int rc = sqlite3_step(s->q_step);
	sqlite3_reset(s->q_step);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return dd_store_err(&s->st, "reading the log");
	return rc == SQLITE_ROW;
}
