/*
 * The questions a store answers (dd-schedule get, list, stats, fleet
 * list, utilization), on a store opened read-only.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ddtime.h"
#include "exitcodes.h"
#include "out.h"
#include "schedule-int.h"

static void
item_json(struct dd_buf *b, const struct item *it)
{
	dd_buf_addc(b, '{');
	sched_jstr(b, "deliveryId", it->did);
	sched_jstr(b, "requestId", it->rid);
	sched_jstr(b, "ownerId", it->owner);
	sched_jstr(b, "state", sched_state_names[it->state]);
	if (*it->reason)
		sched_jstr(b, "reason", it->reason);
	if (*it->field)
		sched_jstr(b, "field", it->field);
	if (it->valid)
		sched_terms_json(b, it);
	if (*it->drone)
		sched_etas_json(b, it);
	if (*it->stage) {
		sched_jstr(b, "stage", it->stage);
		sched_jtime(b, "stageTime", it->stage_time);
	}
	if (*it->held)
		sched_jstr(b, "cancelHeld", it->held);
	sched_jkey(b, "attempt");
	dd_buf_printf(b, "%d", it->attempt);
	sched_jkey(b, "version");
	dd_buf_printf(b, "%d", it->version);
	sched_jtime(b, "received", it->received);
	sched_jtime(b, "updated", it->updated);
}

static int
ro_query(struct dd_sched *s, sqlite3_stmt **q, const char *sql)
{
	*q = dd_store_prepare(&s->st, sql);
	return *q ? 0 : DD_EXIT_IO;
}

static int
put_out(struct dd_buf *b, FILE *out)
{
	if (fwrite(b->p, 1, b->len, out) != b->len) {
		dd_seterr("stdout: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* The event type of a logged step (NULL: a step without one). */
static const char *
step_type(const char *step)
{
	static const char *const map[][2] = {
		{ "registered", "package.registered" }, { "scheduled", "delivery.scheduled" },
		{ "rejected", "delivery.rejected" }, { "removed", "package.removed" },
		{ "cancelled", "delivery.cancelled" }, { "released.", "drone.released" },
		{ "rescheduled.", "delivery.rescheduled" }, { "status", "delivery.status" },
		{ "refused.", "delivery.refused" },
	};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
		size_t n = strlen(map[i][0]);
		if (strncmp(step, map[i][0], n) == 0 && (map[i][0][n - 1] == '.' || step[n] == '\0'))
			return map[i][1];
	}
	return NULL;
}

int
dd_sched_get(struct dd_sched *s, const char *id, FILE *out)
{
	sqlite3_stmt *q;
	if (ro_query(s, &q, "SELECT " ITEM_COLS " FROM items WHERE delivery_id = ?1 OR"
	    " (request_id = ?1 AND NOT EXISTS (SELECT 1 FROM items WHERE delivery_id = ?1))"
	    " ORDER BY seq"))
		return DD_EXIT_IO;
	dd_bind_text(q, 0, id, (size_t)-1);
	sqlite3_stmt *lq;
	if (ro_query(s, &lq, "SELECT n, time, step, state, detail, event_id FROM log"
	    " WHERE delivery_id = ? ORDER BY n")) {
		sqlite3_finalize(q);
		return DD_EXIT_IO;
	}
	int rc, n = 0, code = 0;
	struct dd_buf b = { 0 };
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct item *it = sched_item_read(q);
		dd_buf_reset(&b);
		item_json(&b, it);
		sched_jkey(&b, "log");
		dd_buf_addc(&b, '[');
		dd_bind_text(lq, 0, it->did, (size_t)-1);
		int lrc;
		while ((lrc = sqlite3_step(lq)) == SQLITE_ROW) {
			if (b.p[b.len - 1] != '[')
				dd_buf_addc(&b, ',');
			dd_buf_addc(&b, '{');
			sched_jkey(&b, "n");
			dd_buf_printf(&b, "%d", sqlite3_column_int(lq, 0));
			sched_jtime(&b, "time", sqlite3_column_int64(lq, 1));
			const char *step = (const char *)sqlite3_column_text(lq, 2);
			sched_jstr(&b, "step", step);
			const char *type = step_type(step);
			if (type) {
				char eid[24];	/* e- and 16 hex digits */
				sched_jstr(&b, "type", type);
				if (sqlite3_column_type(lq, 5) != SQLITE_NULL) {
					sched_jstr(&b, "eventId", (const char *)sqlite3_column_text(lq, 5));
				} else {
					sched_derive_eid(it->did, step, eid);
					sched_jstr(&b, "eventId", eid);
				}
			}
			sched_jstr(&b, "state", (const char *)sqlite3_column_text(lq, 3));
			if (sqlite3_column_type(lq, 4) != SQLITE_NULL)
				sched_jstr(&b, "detail", (const char *)sqlite3_column_text(lq, 4));
			dd_buf_addc(&b, '}');
		}
		sqlite3_reset(lq);
		sched_item_free(it);
		dd_buf_adds(&b, "]}\n");
		if (lrc != SQLITE_DONE) {
			dd_store_err(&s->st, "reading the log");
			code = DD_EXIT_IO;
			break;
		}
		if (put_out(&b, out)) {
			code = DD_EXIT_IO;
			break;
		}
		n++;
	}
	if (code == 0 && rc != SQLITE_DONE) {
		dd_store_err(&s->st, "reading a work item");
		code = DD_EXIT_IO;
	}
	sqlite3_finalize(q);
	sqlite3_finalize(lq);
	dd_buf_free(&b);
	if (code == 0 && n == 0) {
		dd_seterr("no such delivery or request: %s", id);
		code = 1;
	}
	return code;
}

static int
get_one(void *s, const char *id, FILE *out)
{
	return dd_sched_get(s, id, out);
}

int
dd_sched_get_many(struct dd_sched *s, char **ids, FILE *out)
{
	return dd_store_get(&s->st, ids, get_one, s, out);
}

int
dd_sched_list(struct dd_sched *s, const char *state, enum dd_fmt fmt, FILE *out)
{
	static const char *const cols[] = {
		"deliveryId", "requestId", "ownerId", "state", "reason", "droneId",
		"pickupTime", "deadline", "pickupEta", "dropoffEta",
	};
	sqlite3_stmt *q;
	if (ro_query(s, &q, state ? "SELECT " ITEM_COLS " FROM items WHERE state = ? ORDER BY seq"
	    : "SELECT " ITEM_COLS " FROM items ORDER BY seq"))
		return DD_EXIT_IO;
	if (state)
		dd_bind_text(q, 0, state, (size_t)-1);
	struct dd_out *o = fmt == DD_FMT_NDJSON ? NULL : dd_out_new(out, fmt, cols, 10);
	struct dd_buf b = { 0 };
	int rc, code = 0;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct item *it = sched_item_read(q);
		char t[4][DD_TIMEBUF];
		int64_t tv[4] = { it->pickup_time, it->deadline, it->pickup_eta, it->dropoff_eta };
		for (int k = 0; k < 4; k++)
			if (tv[k] == INT64_MIN)
				t[k][0] = '\0';
			else
				dd_time_format(tv[k], t[k]);
		const char *v[10] = { it->did, it->rid, it->owner, sched_state_names[it->state],
			it->reason, it->drone, t[0], t[1], t[2], t[3] };
		if (o) {
			for (int k = 0; k < 10; k++)
				dd_out_cell(o, v[k], strlen(v[k]));
			dd_out_endrow(o);
		} else {
			dd_buf_reset(&b);
			dd_buf_addc(&b, '{');
			for (int k = 0; k < 10; k++) {
				sched_jkey(&b, cols[k]);
				if (*v[k])
					dd_buf_json_str(&b, v[k], strlen(v[k]));
				else
					dd_buf_adds(&b, "null");
			}
			dd_buf_adds(&b, "}\n");
			if (put_out(&b, out))
				code = DD_EXIT_IO;
		}
		sched_item_free(it);
		if (code)
			break;
	}
	if (code == 0 && rc != SQLITE_DONE) {
		dd_store_err(&s->st, "listing work items");
		code = DD_EXIT_IO;
	}
	sqlite3_finalize(q);
	dd_buf_free(&b);
	if (o && dd_out_finish(o) && code == 0) {
		dd_seterr("stdout: %s", strerror(errno));
		code = DD_EXIT_IO;
	}
	return code;
}

int
dd_sched_stats(struct dd_sched *s, FILE *out)
{
	sqlite3_stmt *q;
	/* A request is counted by its first delivery; the later ones (new
	 * attempts after a failure) are counted apart. */
	if (ro_query(s, &q, "SELECT total(attempt = 1), total(ever AND attempt = 1),"
	    " total(NOT ever AND state = 'waiting' AND attempt = 1),"
	    " total(NOT ever AND state IN ('rejected', 'cancelled') AND attempt = 1),"
	    " (SELECT count(*) FROM drones), count(*) FROM items"))
		return DD_EXIT_IO;
	struct dd_buf b = { 0 };
	int code = 0;
	if (sqlite3_step(q) != SQLITE_ROW) {
		dd_store_err(&s->st, "counting");
		sqlite3_finalize(q);
		return DD_EXIT_IO;
	}
	dd_buf_printf(&b, "{\"requests\":%lld,\"scheduled\":%lld,\"rejected\":%lld,"
	    "\"waiting\":%lld,\"deliveries\":%lld,\"drones\":%lld",
	    (long long)sqlite3_column_double(q, 0), (long long)sqlite3_column_double(q, 1),
	    (long long)sqlite3_column_double(q, 3), (long long)sqlite3_column_double(q, 2),
	    sqlite3_column_int64(q, 5), sqlite3_column_int64(q, 4));
	sqlite3_finalize(q);
	static const char *const groups[][2] = {
		{ "states", "SELECT state, count(*) FROM items GROUP BY state ORDER BY state" },
		{ "reasons", "SELECT reason, count(*) FROM items WHERE reason IS NOT NULL"
		    " GROUP BY reason ORDER BY reason" },
	};
	for (int g = 0; g < 2 && code == 0; g++) {
		if (ro_query(s, &q, groups[g][1])) {
			code = DD_EXIT_IO;
			break;
		}
		sched_jkey(&b, groups[g][0]);
		dd_buf_addc(&b, '{');
		int rc;
		while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
			sched_jkey(&b, (const char *)sqlite3_column_text(q, 0));
			dd_buf_printf(&b, "%lld", sqlite3_column_int64(q, 1));
		}
		dd_buf_addc(&b, '}');
		if (rc != SQLITE_DONE)
			code = dd_store_err(&s->st, "counting") ? DD_EXIT_IO : 0;
		sqlite3_finalize(q);
	}
	dd_buf_adds(&b, "}\n");
	if (code == 0 && put_out(&b, out))
		code = DD_EXIT_IO;
	dd_buf_free(&b);
	return code;
}

int
dd_sched_fleet_list(struct dd_sched *s, enum dd_fmt fmt, FILE *out)
{
	sqlite3_stmt *q;
	if (ro_query(s, &q, "SELECT id, lat, lon, max_kg, max_size, range_km, speed_mps"
	    " FROM drones ORDER BY id"))
		return DD_EXIT_IO;
	struct dd_out *o = fmt == DD_FMT_NDJSON ? NULL : dd_out_new(out, fmt, dd_fleet_colnames, 7);
	struct dd_buf b = { 0 }, cell = { 0 };
	int rc, code = 0;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(q, 0);
		const char *size = (const char *)sqlite3_column_text(q, 4);
		if (o) {
			dd_out_cell(o, id, strlen(id));
			for (int k = 1; k < 7; k++) {
				if (k == 4) {
					dd_out_cell(o, size, strlen(size));
					continue;
				}
				dd_buf_reset(&cell);
				sched_jnum(&cell, sqlite3_column_double(q, k));
				dd_out_cell(o, cell.p, cell.len);
			}
			dd_out_endrow(o);
			continue;
		}
		dd_buf_reset(&b);
		dd_buf_addc(&b, '{');
		sched_jstr(&b, "id", id);
		sched_jkey(&b, "base");
		dd_buf_adds(&b, "{\"lat\":");
		sched_jnum(&b, sqlite3_column_double(q, 1));
		dd_buf_adds(&b, ",\"lon\":");
		sched_jnum(&b, sqlite3_column_double(q, 2));
		dd_buf_addc(&b, '}');
		sched_jdbl(&b, "maxPayloadKg", sqlite3_column_double(q, 3));
		sched_jstr(&b, "maxSize", size);
		sched_jdbl(&b, "rangeKm", sqlite3_column_double(q, 5));
		sched_jdbl(&b, "speedMps", sqlite3_column_double(q, 6));
		dd_buf_adds(&b, "}\n");
		if (put_out(&b, out)) {
			code = DD_EXIT_IO;
			break;
		}
	}
	if (code == 0 && rc != SQLITE_DONE) {
		dd_store_err(&s->st, "listing the fleet");
		code = DD_EXIT_IO;
	}
	sqlite3_finalize(q);
	dd_buf_free(&b);
	dd_buf_free(&cell);
	if (o && dd_out_finish(o) && code == 0) {
		dd_seterr("stdout: %s", strerror(errno));
		code = DD_EXIT_IO;
	}
	return code;
}

/*
 * utilization: per owner and month of departure (UTC), the flights the
 * delivery service dispatched (a status of headed-to-pickup or later
 * came back), the km of their planned routes (base, pickup, dropoff,
 * base: great-circle) and the hours they were booked (departure to
 * return). owner or month NULL: all.
 */
int
dd_sched_utilization(struct dd_sched *s, const char *owner, const char *month, enum dd_fmt fmt,
    FILE *out)
{
	static const char *const cols[] = { "ownerId", "month", "flights", "km", "hours" };
	sqlite3_stmt *q;
	if (ro_query(s, &q, "SELECT i.owner_id, strftime('%Y-%m', i.depart / 1000, 'unixepoch') AS m,"
	    " d.lat, d.lon, i.pk_lat, i.pk_lon, i.dr_lat, i.dr_lon, i.depart, i.return_eta"
	    " FROM items i JOIN drones d ON d.id = i.drone_id"
	    " WHERE i.stage IN ('headed-to-pickup', 'headed-to-dropoff', 'completed', 'failed')"
	    " AND i.depart IS NOT NULL AND i.return_eta IS NOT NULL"
	    " AND (?1 IS NULL OR i.owner_id = ?1) AND (?2 IS NULL OR m = ?2)"
	    " ORDER BY i.owner_id, m"))
		return DD_EXIT_IO;
	dd_bind_text(q, 0, owner, (size_t)-1);
	dd_bind_text(q, 1, month, (size_t)-1);
	struct dd_out *o = fmt == DD_FMT_NDJSON ? NULL : dd_out_new(out, fmt, cols, 5);
	struct dd_buf b = { 0 }, cell = { 0 };
	char cur_owner[IDMAX + 1] = "", cur_month[16] = "";
	long long flights = 0;
	double km = 0, hours = 0;
	int rc, code = 0, have = 0;
	for (;;) {
		rc = sqlite3_step(q);
		const char *ow = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(q, 0) : NULL;
		const char *mo = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(q, 1) : NULL;
		if (have && (rc != SQLITE_ROW || strcmp(ow, cur_owner) || strcmp(mo ? mo : "", cur_month))) {
			/* One row done: km to 0.1, hours to 0.01. */
			double rk = round(km * 10) / 10, rh = round(hours * 100) / 100;
			if (o) {
				dd_out_cell(o, cur_owner, strlen(cur_owner));
				dd_out_cell(o, cur_month, strlen(cur_month));
				dd_buf_reset(&cell);
				dd_buf_printf(&cell, "%lld", flights);
				dd_out_cell(o, cell.p, cell.len);
				dd_buf_reset(&cell);
				sched_jnum(&cell, rk);
				dd_out_cell(o, cell.p, cell.len);
				dd_buf_reset(&cell);
				sched_jnum(&cell, rh);
				dd_out_cell(o, cell.p, cell.len);
				dd_out_endrow(o);
			} else {
				dd_buf_reset(&b);
				dd_buf_addc(&b, '{');
				sched_jstr(&b, "ownerId", cur_owner);
				sched_jstr(&b, "month", cur_month);
				sched_jkey(&b, "flights");
				dd_buf_printf(&b, "%lld", flights);
				sched_jdbl(&b, "km", rk);
				sched_jdbl(&b, "hours", rh);
				dd_buf_adds(&b, "}\n");
				if (put_out(&b, out)) {
					code = DD_EXIT_IO;
					break;
				}
			}
			have = 0;
		}
		if (rc != SQLITE_ROW)
			break;
		if (!have) {
			snprintf(cur_owner, sizeof cur_owner, "%s", ow);
			snprintf(cur_month, sizeof cur_month, "%s", mo ? mo : "");
			flights = 0;
			km = hours = 0;
			have = 1;
		}
		double blat = sqlite3_column_double(q, 2), blon = sqlite3_column_double(q, 3);
		double plat = sqlite3_column_double(q, 4), plon = sqlite3_column_double(q, 5);
		double dlat = sqlite3_column_double(q, 6), dlon = sqlite3_column_double(q, 7);
		flights++;
		km += dd_geo_km(blat, blon, plat, plon) + dd_geo_km(plat, plon, dlat, dlon) +
		    dd_geo_km(dlat, dlon, blat, blon);
		hours += (double)(sqlite3_column_int64(q, 9) - sqlite3_column_int64(q, 8)) / 3.6e6;
	}
	if (code == 0 && rc != SQLITE_DONE) {
		dd_store_err(&s->st, "reading the flights");
		code = DD_EXIT_IO;
	}
	sqlite3_finalize(q);
	dd_buf_free(&b);
	dd_buf_free(&cell);
	if (o && dd_out_finish(o) && code == 0) {
		dd_seterr("stdout: %s", strerror(errno));
		code = DD_EXIT_IO;
	}
	return code;
}
