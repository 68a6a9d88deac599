/*
 * The query engine of dd-lake-query(1): select events of a lake by time,
 * type, subject and id, pruning what the metadata excludes, de-duplicate
 * by id within a partition, run a jq program, and write records (NDJSON,
 * CSV, TSV, table), a count, or aggregates by key (count, sum, avg, min,
 * max, distinct, percentiles, first, last; also as a bar chart), sorted
 * and cut; or list the partitions with their damaged parts.
 *
 * Partitions are processed in parallel by forked worker processes (libjq
 * is not thread-safe); results reach the output in partition (date)
 * order whatever the number of workers, so the output is deterministic.
 */
#ifndef DD_QUERY_H
#define DD_QUERY_H

#include <stdint.h>
#include <stdio.h>
#include "out.h"

struct dd_query_opts {
	const char *lake, *dataset;
	int64_t since_ms, until_ms;	/* since <= time < until */
	const char *const *types;	/* OR within each list, AND across */
	int ntypes;
	const char *const *subjects;
	int nsubjects;
	const char *const *ids;
	int nids;
	const char *filter;		/* jq program or NULL */
	const char *const *argnames, *const *argvalues;
	int nargs;
	const char *const *fields;	/* dotted paths: CSV/TSV/table columns */
	int nfields;
	enum dd_fmt fmt;
	int count;			/* one number */
	const char *const *count_by;	/* --count-by: --by these, --agg count */
	int ncount_by;
	const char *const *by;		/* KEY[:NAME]: dotted paths, @hour ... @weekday */
	int nby;
	const char *const *aggs;	/* FUNC[:NAME]: count, sum(PATH), p90(PATH)... */
	int naggs;
	const char *const *sort;	/* [-]COLUMN of an aggregate's rows */
	int nsort;
	uint64_t limit;			/* records or rows; 0 = all */
	int dedupe;			/* 1 unless --no-dedupe */
	int jobs;			/* worker processes; 1 = none */
	int partitions;			/* list partitions instead */
	int chart_width;		/* bar length; 0: from the terminal, or 60 */
	int jq_fast;			/* allow the jq-free select path */
	int quiet;			/* -q: no warnings (an unknown --type) */
	/* Diagnostics (damaged parts, jq runtime errors, a --type that no
	 * metadata of the range holds): one message each, "where: what",
	 * without the program name. With no callback the last one is left
	 * in dd_errmsg(); the library never writes stderr. */
	void (*diag)(void *ctx, const char *msg);
	void *diag_ctx;
};

void dd_query_defaults(struct dd_query_opts *o);

/*
 * The time zone of buckets and of dates alone (--tz): an IANA name from the
 * system's zone database, NULL for UTC. Process-wide (it sets TZ); call it
 * before dd_query_time_arg and dd_query_new. 0, or -1 with dd_errmsg().
 */
int dd_query_tz(const char *zone);
/* A time argument as dd_time_arg takes it, but a date alone is midnight
 * in the zone of dd_query_tz. */
int dd_query_time_arg(const char *s, int64_t now_ms, int64_t *ms);

struct dd_query;

/*
 * Check the options and compile the jq program. NULL with dd_errmsg() on
 * a usage error (a bad program gives jq's messages): exit 2.
 */
struct dd_query *dd_query_new(const struct dd_query_opts *o);

/*
 * Run the query, writing to out. Returns an exit code of lib/exitcodes.h:
 * 0; 1 when a part was damaged, an event unreadable or the jq program
 * failed on an event (each reported through diag, the rest still read);
 * 4 on an I/O error (the lake unreadable, a write error on out: dd_errmsg()),
 * and when the lake or the dataset does not exist: "LAKE: no such lake",
 * "LAKE: no dataset "NAME" (datasets: A, B)". A dataset without partitions
 * is an empty answer, 0.
 */
int dd_query_run(struct dd_query *q, FILE *out);

void dd_query_free(struct dd_query *q);

#endif
