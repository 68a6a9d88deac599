/*
 * The insides of the query engine (query.h), private to lib/lake:
 * query-plan.c checks the options, finds the partitions and prunes parts
 * by their metadata; query-read.c turns partitions into frames (records,
 * counts, diagnostics), in this process or in worker processes;
 * query-agg.c aggregates (--count, --by/--agg) and query-tz.c makes the
 * time buckets of --tz; query-out.c consumes the frames in partition order
 * and writes the answer, query-rows.c the rows of an aggregate.
 *
 * A frame is three u32 (type, partition, length) and its bytes; a worker
 * writes them to a pipe, the parent routes them (query-read.c), and in one
 * process they go straight to out_consume().
 */
#ifndef DD_QUERY_INT_H
#define DD_QUERY_INT_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "event.h"
#include "json.h"
#include "lake.h"
#include "query.h"
#include "util.h"

#define DAY_MS 86400000LL
/* A REC frame is sent when its records reach this size. */
#define REC_FRAME (64u << 10)

enum mode { M_RECORDS, M_COUNT, M_AGG, M_PARTITIONS };
/* F_TYPES: the types part metadata holds (--type, see dd_query_run). */
enum { F_BEGIN = 1, F_REC, F_ERR, F_COUNT, F_AGG, F_TYPES, F_END };
#define HDR 12		/* type, partition, length: three u32 */

/* Strings kept in an arena, found by hash: the keys of groups, distinct
 * values and the types of --type. */
struct sent {
	uint64_t h, n;		/* n: the count of a key */
	size_t off, len;
	int used;
};

struct sset {
	struct sent *v;
	size_t cap, n;
	struct dd_buf arena;
};

void sset_free(struct sset *s);
/* The entry of p (hash h), added with n = 0 when missing (*added = 1). */
struct sent *sset_find(struct sset *s, const char *p, size_t len, uint64_t h, int *added);
/* The entries with their counts as bytes of a frame, and back (added up). */
void sset_encode(const struct sset *s, struct dd_buf *b);
void sset_merge(struct sset *s, const char *p, size_t n);

/* Time buckets (query-tz.c). */
enum { B_HOUR = 1, B_DAY, B_WEEK, B_MONTH, B_HOUROFDAY, B_WEEKDAY };

/* An aggregate of --agg. */
enum afn { A_COUNT, A_COUNTV, A_SUM, A_AVG, A_MIN, A_MAX, A_DISTINCT, A_PCT, A_FIRST, A_LAST };
struct aspec {
	enum afn fn;
	int pct;		/* A_PCT: 1..99 */
	char *path;		/* NULL for count */
};

/* The state of one aggregate of one group: the values taken (n), their
 * compensated sum (s + c), min and max; the time and JSON text of first or
 * last, or the doubles of a percentile (v); the values of distinct (set). */
struct acc {
	uint64_t n;
	double s, c, mn, mx;
	int64_t t;
	struct dd_buf v;
	struct sset *set;
};

/* Groups by key (the JSON array of the key's parts): idx maps a key to
 * its number g, whose accumulators are acc[g * naggs ...]. */
struct groups {
	struct sset idx;
	struct acc *acc;
	size_t n, cap;
	int naggs;
};

/* The ids seen in a partition: 16 bytes a slot, the id bytes in an
 * arena behind a length byte (dd_env_scan allows ids of 1-128 bytes);
 * offset 0 marks an empty slot. */
struct idslot {
	uint64_t h;
	size_t off;
};

struct idset {
	struct idslot *v;
	size_t cap, n;
	struct dd_buf arena;
};

struct dd_query {
	struct dd_query_opts o;
	enum mode mode;
	struct dd_jqf *jq;
	int raw_ok;		/* results need nothing from the envelope */
	int meta_counts;	/* counts may come from part metadata */
	int ncells;		/* cells per record */
	char **colnames;	/* record columns, or the keys then the aggregates */
	char **paths;		/* --fields or --by, leading '.' removed */
	int *kkind;		/* per path: its bucket (B_x), 0 for a path */
	int npaths;
	struct aspec *aggs;	/* --agg */
	int naggs;
	int *sortcol, *sortdesc;	/* --sort: column numbers, descending */
	int nsort;
	struct dd_lake_partition *parts;
	size_t nparts;

	/* The output side. */
	FILE *out;
	struct dd_out *tab;
	uint64_t emitted, total;
	struct groups groups;
	uint64_t skipped;	/* values a numeric aggregate could not take */
	struct sset types;	/* in the metadata of the range (--type) */
	int untyped;		/* a part in the range has no metadata */
	int rc;
	int stop;		/* --limit reached, or a write error */
	int ioerr;
};

/* What one process needs to turn partitions into frames. */
struct eng {
	struct dd_query *q;
	int fd;			/* pipe to the parent, -1 when in-process */
	struct dd_buf out;	/* frames not yet written to fd */
	struct dd_buf rec;	/* records of the REC frame being filled */
	int sorting;		/* the partition's records sorted by time at its end */
	struct dd_buf order;	/* then: (time, offset, length) of each in rec */
	uint32_t part;
	uint64_t produced;	/* records made (for --limit) */
	int stop;
	uint64_t count;		/* of the current partition */
	struct groups groups;	/* of the current partition */
	uint64_t skipped;
	struct idset seen;	/* ids of the current partition */
	int dedupe;		/* the current partition may hold an id twice */
	struct sset types;	/* in its parts' metadata (--type) */
	int untyped;		/* one of its parts has no metadata */
	/* the event being handled */
	const struct dd_env *env;	/* its scan, when its attributes can be
					 * taken from it (see scan_part) */
	int64_t time_ms;
	struct dd_buf tmp, key, cells;
};

static inline uint32_t
get32(const char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static inline uint64_t
get64(const char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static inline void
put32(struct dd_buf *b, uint32_t v)
{
	dd_buf_add(b, &v, 4);
}

static inline void
put64(struct dd_buf *b, uint64_t v)
{
	dd_buf_add(b, &v, 8);
}

/* query-plan.c */
int meta_excludes(const struct dd_query *q, const struct dd_lake_meta *m);
/* 1 when no --type is given or t is one of them. */
int wanted_type(const struct dd_query *q, const char *t);
/* --type: gather the types of a part's metadata, send and merge them. */
void note_types(struct eng *e, const struct dd_lake_part *pt);
void send_types(struct eng *e);
void merge_types(struct dd_query *q, const char *p, size_t n);

/* query-read.c: the engine side */
void eng_frame(struct eng *e, uint32_t type, const void *p, size_t n);
void eng_flush_rec(struct eng *e);
void eng_free(struct eng *e);
/* The frames of partition idx, from F_BEGIN to F_END. */
void do_partition(struct eng *e, size_t idx);
/* Partitions spread over nw worker processes; an exit code. */
int run_workers(struct dd_query *q, int nw);
/* A field of a result (see query-read.c); 0 when it has none. */
int event_field(const struct eng *e, const struct dd_jval *res, int same, const char *path,
    struct dd_jval *out);

/* query-plan.c */
int path_ok(const char *p);

/* query-agg.c */
/* "FUNC" or "FUNC(PATH)" of --agg, with its default column name. */
int agg_parse(const char *s, struct aspec *a, char **name);
/* Aggregate one result under its key. */
void agg_result(struct eng *e, const struct dd_jval *res, int same);
/* Answer from the part's metadata: 1 when done, 0 when it must be read. */
int meta_count(struct eng *e, const struct dd_lake_meta *m);
/* The count or groups of the current partition as a frame. */
void send_counts(struct eng *e);
/* Merge a frame of groups (in partition order). */
void merge_groups(struct dd_query *q, const char *p, size_t n);
void groups_free(struct groups *g);
void acc_value(const struct aspec *sp, struct acc *a, struct dd_buf *b);
struct acc *empty_group(struct dd_query *q);
/* The shortest text of a double that reads back the same. */
void num_text(double d, struct dd_buf *b);

/* query-tz.c */
/* Take the zone for buckets and dates (NULL: UTC); -1 for an unknown. */
int tz_set(const char *zone);
int tz_is_utc(void);
/* Seconds east of UTC at ms. */
long tz_offset(int64_t ms);
/* The first instant of a local date, in UTC ms. */
int64_t tz_midnight(int y, unsigned m, unsigned d);
/* B_x of a key ("@day"), 0 when it is not a bucket. */
int bucket_kind(const char *k);
/* The bucket of a time, appended to b (local to the zone). */
void time_bucket(int kind, int64_t ms, struct dd_buf *b);
int bucket_is_number(int kind);
/* 1 when times lo..hi may fall in more than one bucket. */
int bucket_spans(int kind, int64_t lo, int64_t hi);

/* query-rows.c */
/* The rows of an aggregate, sorted, cut and written. */
void write_rows(struct dd_query *q);

/* query-out.c */
void start_output(struct dd_query *q);
/* One frame of the partition being written, in order. */
void out_consume(struct dd_query *q, uint32_t type, const char *p, size_t n);
/* A diagnostic: the callback of the options, else dropped (dd_errmsg()). */
void out_diag(struct dd_query *q, const char *msg);
/* The count, the rows of an aggregate, the end of a table; an exit code. */
int out_finish(struct dd_query *q, int rc);

#endif
