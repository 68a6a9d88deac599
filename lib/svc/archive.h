/*
 * dd-archive's engine: move deliveries that ended long enough ago from
 * history.db into the lake, compact the lake's partitions, verify its
 * parts. The lake is written and read only through lib/lake.h.
 *
 * Archiving works in chunks of deliveries (bounded memory whatever the
 * backlog). For each chunk: read the deliveries' events (one read
 * transaction: WAL readers block no writer), add them to the lake, make
 * the parts visible and durable (dd_lake_commit), read every new part
 * back and check that it holds each event line added, byte for byte, and
 * only then delete those events (and the deliveries left empty) from
 * history.db in one short write transaction. A crash at any point leaves
 * each delivery in history.db, in the lake, or in both (a rerun archives
 * it again; --compact removes the duplicate), never in neither.
 */
#ifndef DD_ARCHIVE_H
#define DD_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#define DD_ARCHIVE_CHUNK 10000
/* The lake's dataset of the deliveries view (view.h). */
#define DD_VIEW_DATASET "deliveries"

struct dd_archive_stats {
	uint64_t deliveries;	/* archived (deleted from history.db) */
	uint64_t events;	/* archived events */
	uint64_t kept;		/* archived, but kept: new events arrived meanwhile */
	uint64_t parts;		/* parts written */
	uint64_t summaries;	/* delivery.summary events written to the view */
	uint64_t raw_bytes;	/* event bytes archived */
	uint64_t bytes;		/* compressed bytes written (archive and compaction) */
	uint64_t partitions_compacted, parts_compacted, parts_after, duplicates;
	uint64_t conflicts_dropped;	/* compaction: later copies of an id with other bytes */
	uint64_t parts_verified, events_verified, parts_damaged;
	uint64_t conflicts_found;	/* verify: copies of an id in a partition whose
					 * bytes differ from the first's */
};

struct dd_archive_opts {
	const char *db;		/* history.db */
	const char *lake;
	const char *dataset;
	int64_t cutoff_ms;	/* archive deliveries that ended before this */
	size_t chunk;		/* deliveries per chunk */
	int dry_run;		/* count what would be done, change nothing */
	/* Called after each chunk (may be NULL). */
	void (*progress)(void *ctx, const struct dd_archive_stats *st);
	/* Called for each damaged part found by verify, with "PATH: what". */
	void (*damage)(void *ctx, const char *msg);
	/* Called for each conflicting copy verify finds, "PATH:LINE: what". */
	void (*conflict)(void *ctx, const char *msg);
	void *ctx;
};

/*
 * Archive. Returns 0, DD_EXIT_IO (dd_errmsg(); what was deleted from
 * history.db is durable in the lake, nothing else was deleted), or
 * 128+signal when dd_signalled stopped it between deliveries.
 */
int dd_archive_run(const struct dd_archive_opts *o, struct dd_archive_stats *st);

/*
 * Rebuild the deliveries view (dataset DD_VIEW_DATASET, view.h) for the
 * whole UTC days that [since_ms, until_ms) touches, from the delivery.*
 * events of o->dataset: a summary for each delivery that ended in them,
 * built from all its events; then the view's parts of those days as they
 * were before are removed. Dry run: count the deliveries. 0, DD_EXIT_IO
 * (dd_errmsg(); the old view stays) or 128+signal.
 */
int dd_archive_rebuild_view(const struct dd_archive_opts *o, int64_t since_ms,
    int64_t until_ms, struct dd_archive_stats *st);

/* Compact every partition of the dataset (dry run: count those with
 * more than one part). 0, DD_EXIT_IO or 128+signal. */
int dd_archive_compact(const struct dd_archive_opts *o, struct dd_archive_stats *st);

/*
 * Decode every part of the dataset and check it against its metadata:
 * frame checksums, event count, raw bytes, min and max time, types, each
 * event in the part's partition and found by the id and subject Bloom
 * filters. Each damaged part is reported through o->damage. Returns 0
 * (damage is counted in st->parts_damaged), DD_EXIT_IO or 128+signal.
 */
int dd_archive_verify(const struct dd_archive_opts *o, struct dd_archive_stats *st);

#endif
