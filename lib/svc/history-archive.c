#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "order.h"
#include "util.h"

struct dd_history_arch {
	struct dd_store *s;
	sqlite3_stmt *cand, *events, *del_event, *del_delivery, *recount, *tomb;
	struct dd_olist ol;	/* one delivery's events, in order */
};

struct dd_history_arch *
dd_history_arch_new(struct dd_store *s)
{
	struct dd_history_arch *a = dd_calloc(1, sizeof *a);
	a->s = s;
	/* Row values walk the ended index: (ended, dkey) after the cursor. */
	if (!(a->cand = dd_store_prepare(s, "SELECT dkey, ended_ms, id FROM deliveries"
	    " WHERE ended_ms IS NOT NULL AND ended_ms < ?1 AND (ended_ms, dkey) > (?2, ?3)"
	    " ORDER BY ended_ms, dkey LIMIT ?4")) ||
	    !(a->events = dd_store_prepare(s, "SELECT line, time_ms, eid FROM events"
	    " WHERE dkey = ?1 ORDER BY time_ms, eid")) ||
	    !(a->del_event = dd_store_prepare(s, "DELETE FROM events WHERE dkey = ?1 AND eid = ?2")) ||
	    !(a->del_delivery = dd_store_prepare(s, "DELETE FROM deliveries WHERE dkey = ?1"
	    " AND NOT EXISTS (SELECT 1 FROM events WHERE dkey = ?1)"
	    " RETURNING id, stage, stage_ms, stage_eid")) ||
	    !(a->recount = dd_store_prepare(s, "UPDATE deliveries SET events ="
	    " (SELECT count(*) FROM events WHERE dkey = ?1) WHERE dkey = ?1"))) {
		dd_history_arch_free(a);
		return NULL;
	}
	return a;
}

void
dd_history_arch_free(struct dd_history_arch *a)
{
	if (a == NULL)
		return;
	sqlite3_finalize(a->cand);
	sqlite3_finalize(a->events);
	sqlite3_finalize(a->del_event);
	sqlite3_finalize(a->del_delivery);
	sqlite3_finalize(a->recount);
	sqlite3_finalize(a->tomb);
	dd_olist_free(&a->ol);
	free(a);
}

int
dd_history_candidates(struct dd_history_arch *a, int64_t cutoff_ms, int64_t *after_ms,
    int64_t *after_dkey, size_t limit, struct dd_history_cand **out, size_t *n)
{
	sqlite3_stmt *st = a->cand;
	*out = NULL;
	*n = 0;
	/* Plain integers: the cursor starts at INT64_MIN, which is no NULL. */
	dd_bind_int(st, 0, cutoff_ms);
	dd_bind_int(st, 1, *after_ms);
	dd_bind_int(st, 2, *after_dkey);
	dd_bind_int(st, 3, (int64_t)limit);
	struct dd_history_cand *c = dd_calloc(limit ? limit : 1, sizeof *c);
	size_t k = 0;
	int r = SQLITE_DONE;
	while (k < limit && (r = sqlite3_step(st)) == SQLITE_ROW) {
		c[k].dkey = dd_col_int(st, 0);
		c[k].ended_ms = dd_col_int(st, 1);
		c[k].id = dd_col_strdup(st, 2);
		k++;
	}
	if (k < limit && r != SQLITE_DONE) {
		dd_store_err(a->s, "select deliveries to archive");
		sqlite3_reset(st);
		dd_history_cands_free(c, k);
		return -1;
	}
	sqlite3_reset(st);
	if (k) {
		*after_ms = c[k - 1].ended_ms;
		*after_dkey = c[k - 1].dkey;
	}
	*out = c;
	*n = k;
	return 0;
}

void
dd_history_cands_free(struct dd_history_cand *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(c[i].id);
	free(c);
}

int
dd_history_events(struct dd_history_arch *a, int64_t dkey,
    int (*fn)(void *ctx, const char *line, size_t len, int64_t time_ms,
        const char *eid, size_t eidlen), void *ctx)
{
	sqlite3_stmt *st = a->events;
	dd_bind_int(st, 0, dkey);
	int r, rc = 0;
	/* In the one order of order.h (equal times by stage, then id). */
	dd_olist_reset(&a->ol);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		size_t len;
		const char *line = dd_col_text(st, 0, &len);
		if (dd_olist_add(&a->ol, line, len)) {
			size_t eidlen;
			const char *eid = dd_col_text(st, 2, &eidlen);
			dd_seterr("%s: stored event \"%.*s\" is not an event: %s", a->s->path,
			    (int)eidlen, eid, dd_errmsg());
			rc = -1;
			break;
		}
	}
	if (rc == 0 && r != SQLITE_DONE)
		rc = dd_store_err(a->s, "read events");
	sqlite3_reset(st);
	if (rc)
		return rc;
	dd_olist_sort(&a->ol);
	for (size_t i = 0; i < a->ol.n && rc == 0; i++) {
		size_t len;
		const char *line = dd_olist_line(&a->ol, i, &len);
		const struct dd_oev *v = &a->ol.v[i];
		rc = fn(ctx, line, len, v->t, a->ol.arena.p + v->idoff, v->idlen);
	}
	return rc;
}

static int
run(struct dd_history_arch *a, sqlite3_stmt *st)
{
	int r = sqlite3_step(st);
	sqlite3_reset(st);
	return r == SQLITE_DONE ? 0 : dd_store_err(a->s, "delete archived deliveries");
}

int
dd_history_forget(struct dd_history_arch *a, const struct dd_history_cand *c, size_t n,
    const char *const *eids, uint64_t *deleted)
{
	struct dd_store *s = a->s;
	*deleted = 0;
	/* Prepared here, not with the others: a dry run reads a store that
	 * may not have been migrated to the tombstones yet. */
	if (a->tomb == NULL && !(a->tomb = dd_store_prepare(s, "INSERT OR REPLACE INTO"
	    " archived (id, stage, stage_ms, stage_eid) VALUES (?1, ?2, ?3, ?4)")))
		return -1;
	if (dd_store_begin(s))
		return -1;
	for (size_t i = 0; i < n; i++) {
		const char *e = eids[i];
		dd_bind_int(a->del_event, 0, c[i].dkey);
		for (int64_t k = 0; k < c[i].events; k++) {
			size_t len = strlen(e);
			dd_bind_text(a->del_event, 1, e, len);
			if (run(a, a->del_event))
				goto fail;
			e += len + 1;
		}
		/* The row goes unless events arrived for it meanwhile; its
		 * tombstone keeps the final stage for late events. */
		sqlite3_stmt *d = a->del_delivery;
		dd_bind_int(d, 0, c[i].dkey);
		int r = sqlite3_step(d), gone = r == SQLITE_ROW;
		if (gone) {
			sqlite3_stmt *t = a->tomb;
			for (int k = 0; k < 4; k++)
				sqlite3_bind_value(t, k + 1, sqlite3_column_value(d, k));
			int tr = run(a, t);
			sqlite3_clear_bindings(t);
			r = tr ? SQLITE_ERROR : sqlite3_step(d);
		}
		sqlite3_reset(d);
		if (r != SQLITE_DONE) {
			if (r != SQLITE_ERROR)
				dd_store_err(s, "delete archived deliveries");
			goto fail;
		}
		if (gone) {
			(*deleted)++;
			continue;
		}
		/* Events arrived for it meanwhile: they stay, for the next run. */
		dd_bind_int(a->recount, 0, c[i].dkey);
		if (run(a, a->recount))
			goto fail;
	}
	if (dd_store_commit(s))
		return -1;
	return 0;
fail:
	/* The rollback's own failure would hide why we roll back. */
	{
		char *msg = dd_strdup(dd_errmsg());
		dd_store_rollback(s);
		dd_seterr("%s", msg);
		free(msg);
	}
	*deleted = 0;
	return -1;
}
