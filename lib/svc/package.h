/*
 * The package store behind dd-package(1): package documents by id in
 * package.db, kept from package.registered (create or replace, the
 * original JSON text of data kept as the document) and package.removed
 * (delete: a compensating action, kept as a tombstone).
 *
 * Each package records the time and id of the newest event applied; an
 * event is applied only when it is newer (time, then id, compared), so a
 * duplicate or a late older event changes nothing, and a package removed
 * stays removed when an older registration is replayed.
 */
#ifndef DD_PACKAGE_H
#define DD_PACKAGE_H

#include <stdint.h>
#include <stdio.h>
#include "event.h"
#include "filter.h"
#include "line.h"
#include "out.h"
#include "store.h"

struct dd_package;

/* Open (creating or migrating) the store; 0 or an exit code with dd_errmsg(). */
int dd_package_open(struct dd_package **pp, const char *path);
/* One event: package.registered or package.removed (others: DD_SKIP). */
enum dd_verdict dd_package_event(struct dd_package *p, const struct dd_line *l,
    const struct dd_env *e);
/* Commit what was applied; 0 or -1 (dd_errmsg()). */
int dd_package_commit(struct dd_package *p);
void dd_package_summary(struct dd_package *p, struct dd_buf *b);
void dd_package_close(struct dd_package *p);

/* The filter loop into p (opened by the caller, who reports an open
 * failure); returns the exit code, the loop having reported its errors. */
int dd_package_filter(struct dd_package *p, const struct dd_filter_opts *fo);

/*
 * Bulk load of package documents from CSV with a header row naming the
 * columns packageId, ownerId, size, weightKg (required) and deliveryId,
 * tag (optional). Each row is applied as a registration at now_ms, later
 * rows of the file winning over earlier ones. A malformed row is
 * rejected as FILE:LINE through the reject reporter (fo: --rejects,
 * --strict, --batch); what was accepted is committed whatever stopped
 * the run. Returns the exit code: 0, 1 (rows rejected), 3 (--strict
 * stopped at a bad row), 2 (a bad header), 4 or 5 with the reason in
 * dd_errmsg(), or 128+signal. The figures for the caller's summary line
 * go to *st.
 */
struct dd_package_import_stats {
	int read;		/* the file was read: the figures below mean something */
	uint64_t rows, stored, unchanged, rejected;
};
int dd_package_import(const char *path, const char *csvfile, int64_t now_ms,
    const struct dd_filter_opts *fo, struct dd_package_import_stats *st);

/* Questions (store opened read-only); each returns an exit code: 0, 1
 * (get: no such package), 4 (dd_errmsg()). */
/* get ID... / get -: see dd_store_get(). */
int dd_package_get(struct dd_store *s, char **ids, FILE *out);
int dd_package_list(struct dd_store *s, const char *owner, enum dd_fmt fmt, FILE *out);
/* month: "YYYY-MM" or NULL for all time. */
int dd_package_owner_summary(struct dd_store *s, const char *owner, const char *month,
    enum dd_fmt fmt, FILE *out);
int dd_package_stats(struct dd_store *s, FILE *out);

#endif
