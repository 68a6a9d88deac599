/*
 * A program's SQLite store (SPEC.md "Stores"): WAL, a busy timeout,
 * schema migrated forward by PRAGMA user_version, writes batched in one
 * transaction that the filter loop commits by count and by idle time,
 * and an advisory lock for jobs that must not overlap.
 */
#ifndef DD_STORE_H
#define DD_STORE_H

#include <sqlite3.h>

struct dd_store {
	sqlite3 *db;
	char *path;
	int in_tx;
};

/*
 * Open (creating it and its directory) the database at path, and apply
 * migrations[v..n) to a store at user_version v, each in its own
 * transaction: migrations[i] takes the schema from version i to i+1.
 * Returns 0, DD_EXIT_IO (not a database, unreadable, newer schema) or
 * DD_EXIT_BUSY; the reason in dd_errmsg().
 */
int dd_store_open(struct dd_store *s, const char *path,
    const char *const *migrations, int n);
/* Open an existing store read-only for get/list/stats (no migration; a
 * missing store is DD_EXIT_IO with "no such store"). */
int dd_store_open_ro(struct dd_store *s, const char *path);
void dd_store_close(struct dd_store *s);

/* BEGIN IMMEDIATE unless a transaction is open; 0 or -1. */
int dd_store_begin(struct dd_store *s);
/* COMMIT if a transaction is open; 0 or -1. */
int dd_store_commit(struct dd_store *s);
int dd_store_rollback(struct dd_store *s);
/* Run SQL without results; 0 or -1 (dd_errmsg()). */
int dd_store_exec(struct dd_store *s, const char *sql);
/* Prepare a statement; NULL with dd_errmsg() on error. */
sqlite3_stmt *dd_store_prepare(struct dd_store *s, const char *sql);
/* Record the SQLite error of s in dd_errmsg() with a prefix; returns -1. */
int dd_store_err(struct dd_store *s, const char *what);

/*
 * An advisory lock (flock on path, created if missing) for jobs that must
 * not overlap (cron). Returns the fd (>= 0), -DD_EXIT_BUSY when another
 * process holds it, -DD_EXIT_IO on error (dd_errmsg()).
 */
int dd_lock(const char *path);

#endif
