/*
 * A program's SQLite store (SPEC.md "Stores"): WAL, a busy timeout,
 * schema migrated forward by PRAGMA user_version, writes batched in one
 * transaction that the filter loop commits by count and by idle time,
 * and an advisory lock for jobs that must not overlap.
 */
#ifndef DD_STORE_H
#define DD_STORE_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "kafka.h"

struct dd_store {
	sqlite3 *db;
	char *path;
	int in_tx;
	/* Kafka offsets to record in the next commit (the filter loop sets
	 * them just before the program's commit; dd_store_commit writes and
	 * clears them), so the offsets and the data they stand for are
	 * durable together. */
	const struct dd_koffsets *koff;
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
/* Open the store at path read-only, run fn on it, close it: the questions
 * (get, list, stats) every program asks alike. fn's exit code, or the
 * open's (a missing store is DD_EXIT_IO). */
int dd_store_read(const char *path, int (*fn)(void *ctx, struct dd_store *s, char **argv),
    void *ctx, char **argv);

/*
 * get ID... and get - (SPEC.md "Stores"), the same for every store: one
 * read transaction (so the answers agree, as of the last commit, while a
 * filter writes), and for each id in order, ids being the operands and
 * "-" standing for the lines of stdin (one id a line, empty ones
 * skipped), one(q, id, out): 0 when it wrote its NDJSON line to out,
 * DD_EXIT_REJECTED when there is no such thing (dd_errmsg() naming it,
 * which goes to stderr and on to the next id), any other exit code to
 * stop. Returns 0, DD_EXIT_REJECTED when some id was unknown, or the
 * stopping code (DD_EXIT_IO on a write error: a reader gone is the CLI's
 * 141) with dd_errmsg().
 */
int dd_store_get(struct dd_store *s, char **ids, int (*one)(void *q, const char *id, FILE *out),
    void *q, FILE *out);

/* BEGIN IMMEDIATE unless a transaction is open; 0 or -1. */
int dd_store_begin(struct dd_store *s);
/* COMMIT if a transaction is open (with s->koff written first, in it;
 * with s->koff set and no transaction, one is made for them); 0 or -1. */
int dd_store_commit(struct dd_store *s);
/*
 * The Kafka offsets of the store (table kafka_offsets: topic, partition,
 * next offset to read). dd_store_koff_write writes s->koff into the open
 * transaction and clears it, for a program that commits with its own
 * COMMIT; dd_store_koff_get: the next offset of topic/partition, -1 when
 * the store has none, -2 on error (dd_errmsg()).
 */
int dd_store_koff_write(struct dd_store *s);
int64_t dd_store_koff_get(struct dd_store *s, const char *topic, int32_t partition);
int dd_store_rollback(struct dd_store *s);
/* Run SQL without results; 0 or -1 (dd_errmsg()). */
int dd_store_exec(struct dd_store *s, const char *sql);
/* Prepare a statement; NULL with dd_errmsg() on error. */
sqlite3_stmt *dd_store_prepare(struct dd_store *s, const char *sql);
/* Record the SQLite error of s in dd_errmsg() with a prefix; returns -1. */
int dd_store_err(struct dd_store *s, const char *what);

/*
 * Row helpers, so every store binds and reads columns alike. One index
 * base for both: i counts from 0, as sqlite3_column_*() does (the bind
 * helpers add the 1 SQLite's parameters start from). Absent values are
 * SQL NULL both ways: a NULL string, DD_NOTIME for a time (epoch ms) and
 * NaN for a real.
 */
#define DD_NOTIME INT64_MIN
/* Bind n bytes of s (n == (size_t)-1: strlen), copied by SQLite. */
int dd_bind_text(sqlite3_stmt *st, int i, const char *s, size_t n);
int dd_bind_int(sqlite3_stmt *st, int i, int64_t v);
int dd_bind_time(sqlite3_stmt *st, int i, int64_t ms);
int dd_bind_real(sqlite3_stmt *st, int i, double v);
/* The text of column i and its length in *n (n may be NULL); NULL for SQL NULL. */
const char *dd_col_text(sqlite3_stmt *st, int i, size_t *n);
/* A malloc'd copy of column i's text, or NULL for SQL NULL. */
char *dd_col_strdup(sqlite3_stmt *st, int i);
int64_t dd_col_int(sqlite3_stmt *st, int i);	/* 0 for NULL */
int64_t dd_col_time(sqlite3_stmt *st, int i);	/* DD_NOTIME for NULL */
double dd_col_real(sqlite3_stmt *st, int i);	/* NaN for NULL */

/*
 * An advisory lock (flock on path, created if missing) for jobs that must
 * not overlap (cron). Returns the fd (>= 0), -DD_EXIT_BUSY when another
 * process holds it, -DD_EXIT_IO on error (dd_errmsg()).
 */
int dd_lock(const char *path);

#endif
