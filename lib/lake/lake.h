/*
 * The event lake (SPEC.md "The lake"): the one writer, the reader
 * primitives and compaction. dd-lake-ingest, dd-archive and dd-lake-query
 * all go through this interface, so the format has one definition
 * (lake-writer.c, lake-reader.c and lake-compact.c share lake.c).
 *
 * Layout
 *   LAKE/DATASET/year=YYYY/month=MM/day=DD/part-NAME.ndjson.zst   a part
 *   LAKE/DATASET/year=YYYY/month=MM/day=DD/_part-NAME.meta        its metadata
 *   .../.part-NAME.ndjson.zst.PID-HOST.tmp, ._part-NAME.meta.PID-HOST.tmp
 *                                                  temporaries being written
 * The date is the event's time in UTC. NAME is the wall-clock time the part
 * became visible, to the nanosecond and strictly increasing within a
 * process, and 64 random bits from getrandom(2), "20261126T034113.
 * 123456789Z-9f3a0c1b2d4e5f60", so within a partition names sort in write
 * order (even between writers started in the same second) and are never
 * reused. A compaction names its parts after the last part they replace,
 * NAME~GGGGGG (a generation past that part's), so they sort where the
 * parts they replace were, before any part written meanwhile. (Names of
 * whole seconds, "20261126T034113Z-9f3a0c1b2d4e5f60", are older parts.)
 * DATASET is 1-64 bytes of [A-Za-z0-9._-] not starting with '.', '_' or
 * '-' (dd_lake_dataset_ok), so no input can name a path outside the lake.
 * Files starting with '.' or '_' are temporaries or metadata: DuckDB, Spark
 * and Trino (and dd_lake_parts) ignore them. In temporaries, PID is the
 * writer's process id and HOST 8 hex digits of dd_hash64(hostname).
 *
 * Part file
 *   The original event lines, each ending in '\n', byte for byte, as one
 *   or more concatenated zstd frames with content checksums
 *   (ZSTD_c_checksumFlag). Every frame ends on a line boundary and holds
 *   at most about DD_LAKE_FRAME raw bytes (more only when one line is
 *   longer; less at the end of a part or under memory pressure), so
 *   a reader can verify each frame's checksum before it hands out any of
 *   its lines: a corrupt part never mixes garbage into output. zstdcat
 *   and DuckDB's read_ndjson read it as it is.
 *
 * Metadata (_part-NAME.meta)
 *   Line 1: one JSON object (jq-readable):
 *     {"format":"dd-lake-meta/1","part":"part-NAME.ndjson.zst",
 *      "partBytes":N,"contentChecksum":"89abcdef","frames":F,
 *      "events":N,"rawBytes":N,"minTimeMs":N,"maxTimeMs":N,
 *      "minTime":"RFC 3339","maxTime":"RFC 3339","types":{"TYPE":N,...},
 *      "ids":{"keys":N,"bits":M,"hashes":K,"offset":O,"bytes":B},
 *      "subjects":{...same...},"timeOrdered":BOOL,"unique":true,
 *      "checked":["part-...",...],"written":"RFC 3339"}
 *   timeOrdered says whether the part's lines are in nondecreasing time
 *   order (absent in older metadata: not known). Then, after its '\n',
 *   binary Bloom filters: the id filter at byte O of
 *   this binary section (B bytes), then the subject filter. partBytes is the
 *   size of the part file and contentChecksum its last 4 bytes (the
 *   checksum of its last zstd frame, hex, file order): a reader checks both
 *   and ignores metadata that does not describe the part beside it.
 *   Bloom filter: M bits (bit i is bit i%8 of byte i/8), K probes; for a key
 *   of bytes s, h = dd_hash64(s), a = h & 0xffffffff, b = h >> 32, the
 *   probes are bits (a + i*b) mod M for i in 0..K-1 (64-bit arithmetic).
 *   M is about 10 bits per distinct key (K = 7, about 1% false positives),
 *   at least 64. Ids and subjects are hashed as their decoded strings.
 *   (dd_hash64 reads 8-byte words in host order: little-endian is the
 *   format.) Measured on dd-sim telemetry: 1.4 bytes of metadata per event
 *   (about 0.1 % of the raw lines).
 *   "unique" (with "checked") is there only when the writer found that no
 *   id repeats within the part and none of its ids is in the parts
 *   "checked" names, those of the partition visible when it closed
 *   (lake-unique.c). A partition whose every pair of parts is covered so,
 *   one of the two having checked the other, holds no id twice
 *   (dd_lake_partition_unique): its counts come from the metadata alone.
 *   Compaction checks its new parts against each other only, since the
 *   parts they replace are removed.
 *   Any other visible BASE.ndjson.zst (Spark, zstd) is a part too; its
 *   metadata, if any, is _BASE.meta.
 *
 * Durability: a part is compressed into its temporary, fsynced; the
 * metadata is written to its temporary, fsynced and renamed first; then the
 * part is renamed to its visible name and the directory fsynced. So a
 * visible part is always whole, and a visible meta without its part is
 * garbage of a crash (readers ignore it, dd_lake_clean removes it). A part
 * without metadata is still valid: readers scan it fully.
 *
 * Duplicates: within one part the writer drops an event whose id it
 * already stored there (ids compared in full; a hash only says "maybe"). Across parts of a partition duplicates
 * can exist (replays, dd-archive of events the ingest already stored)
 * until dd_lake_compact_partition(); readers de-duplicate by id within a
 * partition (duplicates of one event share its time, hence its partition).
 *
 * Every function returns a status and leaves the reason in dd_errmsg(),
 * naming the file concerned; none prints or exits.
 */
#ifndef DD_LAKE_H
#define DD_LAKE_H

#include <stddef.h>
#include <stdint.h>
#include "kafka.h"

#include "json.h"

#define DD_LAKE_DATASET_DEFAULT "events"
#define DD_LAKE_DATASET_MAX 64
/* Raw bytes per zstd frame in a part (see above). */
#define DD_LAKE_FRAME (1u << 20)
/* Unbounded ends of a time range. */
#define DD_LAKE_MIN_MS INT64_MIN
#define DD_LAKE_MAX_MS INT64_MAX

/* 1 when name is a valid dataset name, else 0 with dd_errmsg(). */
int dd_lake_dataset_ok(const char *name);

/* LAKE/DATASET/year=YYYY/month=MM/day=DD for day (days since 1970-01-01);
 * malloc'd. */
char *dd_lake_partition_path(const char *lake, const char *dataset, int64_t day);

/* ------------------------------------------------------------------ writer */

struct dd_lake_wopts {
	int level;		/* zstd level, default 3 */
	uint64_t part_size;	/* close a part at this many raw bytes (default 32 MiB) */
	int max_open;		/* open parts (files) at once (default 64); to
				 * open another, the least recently used is
				 * closed (made visible) */
	uint64_t max_buffered;	/* raw bytes waiting in the open parts' frames
				 * (default 16 MiB); beyond, the fullest frame
				 * is compressed early (a part is made of
				 * independent frames, so it stays open) */
	uint64_t max_held;	/* events in the open parts' id sets, 28 bytes
				 * and the id each (default 500000); beyond, the
				 * least recently used part is closed. With the frames
				 * queued for compression, these bound the
				 * writer's memory, about 60 MiB by default,
				 * whatever the input */
	int64_t max_age_ms;	/* close a part open longer than this (default
				 * 10 min; 0 = never), so a steady slow stream
				 * becomes visible too */
	int dedupe;		/* drop an id already in the same part (default 1) */
	int replace;		/* compaction: what this writer writes replaces the
				 * partition's other parts, so its parts are
				 * checked for "unique" against each other only
				 * (default 0) */
	int spill;		/* 1 (default): with max_open parts open, the
				 * events of another partition wait in a
				 * run-local sort (memory up to max_buffered,
				 * then unnamed temporary files) and become one
				 * part per partition at the next commit, so a
				 * shuffled stream of many days makes few parts;
				 * their duplicates are counted then (and
				 * dd_lake_add returned 0). 0: the least
				 * recently used part is closed instead, and
				 * dd_lake_add's answer is final */
	const char *compact_after;	/* compaction only: the NAME of the last
				 * part it replaces, so the new parts are named
				 * to sort right after it (NULL: new names) */
	int threads;		/* N (1 to 8): compress frames on N threads
				 * side by side, and close parts (metadata,
				 * fsync, rename) on one more, overlapping the
				 * caller's parsing (default: one per core, 4
				 * at most); 0: all in the caller's thread */
};

struct dd_lake_wstats {
	uint64_t events;	/* lines handed to the writer and kept */
	uint64_t durable;	/* lines in parts made visible (durable) */
	uint64_t duplicates;	/* lines dropped as duplicates within a part */
	uint64_t parts;		/* parts made visible */
	uint64_t partitions;	/* distinct partitions written to */
	uint64_t raw_bytes;	/* bytes stored, newlines included */
	uint64_t out_bytes;	/* compressed bytes of the visible parts */
};

struct dd_lake_writer;

void dd_lake_wopts_defaults(struct dd_lake_wopts *o);

/*
 * Open a writer into LAKE/DATASET (created when missing). o may be NULL
 * for the defaults. Nothing is written until dd_lake_add(). Stale
 * temporaries (see dd_lake_clean_partition) are removed from each
 * partition the first time this writer opens a part in it.
 * NULL with dd_errmsg() on error (bad dataset name, unwritable lake).
 */
struct dd_lake_writer *dd_lake_writer_open(const char *lake, const char *dataset,
    const struct dd_lake_wopts *o);

/* What the writer needs to know of an event besides its line. */
struct dd_lake_ev {
	int64_t time_ms;	/* decides the partition */
	const char *id;		/* required: the part's id index, dedupe */
	size_t idlen;
	const char *subject;	/* may be NULL: the part's subject index */
	size_t sublen;
	const char *type;	/* may be NULL: counted per part */
	size_t typelen;
	int kafka;		/* read from Kafka (dd_lake_kafka_topic): */
	int32_t kpart;		/* its partition */
	int64_t koff;		/* and offset */
};

/*
 * Add one event line (without its '\n'; it must not contain one), stored
 * in the partition of ev->time_ms. The line must be one dd_env_scan
 * accepts (readers rely on it, dd_lake_part_stored). The id and subject are the decoded
 * strings that feed the part's membership index. Returns 0 when stored,
 * 1 when dropped as a duplicate, -1 on an I/O error: the writer is then
 * broken (every open part's temporaries removed; parts already visible
 * stay) and every later call fails. A line holding '\n' or a time outside
 * years 0000-9999 is refused with -1 too, but the writer goes on
 * (dd_lake_writer_broken() tells the two apart).
 */
int dd_lake_add(struct dd_lake_writer *w, const char *line, size_t len,
    const struct dd_lake_ev *ev);

/*
 * Kafka offsets in the parts (lake-kafka.c). A writer fed from a topic
 * records in each part's metadata
 *   "kafka":{"topic":T,"epoch":"E","from":{"P":N,...},"ranges":{"P":[LO,HI],...}
 *            [,"through":{"P":N,...},"parts":K]}
 * ranges: the offsets of the first and last event of each partition the
 * part holds. An epoch is what one dd_lake_commit makes durable: from,
 * the next offsets of the partitions as of the commit before it (durable
 * then), through those as of its own commit, in the parts that commit
 * closed, with K the number of parts of the epoch (those closed early,
 * by size, age or eviction, included). So where to resume a partition is
 * the largest through of an epoch whose K parts are all visible, or else
 * the largest from: never after an event that is not in a visible part.
 * (After a crash the events of an epoch cut short come again, and are
 * dropped as duplicates by readers and compaction.) Compaction's merged
 * parts carry, as their from, where an ingest of the topic resumed before
 * the merge, so merging never sends an ingest back.
 */
void dd_lake_kafka_topic(struct dd_lake_writer *w, const char *topic);
/* The positions the next dd_lake_commit makes durable. */
void dd_lake_kafka_through(struct dd_lake_writer *w, const struct dd_koffsets *ko);
/* Where to resume each partition of topic in LAKE/DATASET that a part
 * names: the next offsets, in a malloc'd array (a partition absent starts
 * from the beginning). One pass over every part's metadata. 0 or -1. */
int dd_lake_kafka_resume(const char *lake, const char *dataset, const char *topic,
    struct dd_kpos **out, size_t *n);

/* 1 when an I/O error stopped the writer. */
int dd_lake_writer_broken(const struct dd_lake_writer *w);

/* Close every open part and make it visible durably. 0 or -1 (broken, as
 * above). With no open part it does nothing. */
int dd_lake_commit(struct dd_lake_writer *w);

/*
 * The parts made visible since the last call (by dd_lake_commit, or
 * earlier by part size, age or eviction), as malloc'd full paths in a
 * malloc'd array the caller frees (dd_lake_paths_free). dd-archive reads
 * them back before it deletes what they hold from its store.
 */
size_t dd_lake_take_visible(struct dd_lake_writer *w, char ***paths);
void dd_lake_paths_free(char **paths, size_t n);

void dd_lake_wstats(const struct dd_lake_writer *w, struct dd_lake_wstats *st);

/* Commit, then free. 0 or -1 (the writer is freed either way). */
int dd_lake_writer_close(struct dd_lake_writer *w);
/* Free without making anything more visible: open parts' temporaries are
 * removed (for a caller that failed elsewhere). */
void dd_lake_writer_abort(struct dd_lake_writer *w);

/* ----------------------------------------------------------------- readers */

/*
 * Only regular files are read: anything else named like a part (a FIFO, a
 * directory, a socket, a device) or like a partition (a file named day=DD)
 * is skipped by every reader and by compaction, and told to this hook,
 * "PATH: not a regular file (KIND), skipped", when a program set one (the
 * library itself never prints). Files are opened with O_NONBLOCK and
 * checked with fstat(2) before use, so a FIFO put in place of a part
 * between the listing and the open never blocks a reader either.
 */
void dd_lake_set_odd_hook(void (*fn)(const char *msg));

struct dd_lake_partition {
	int64_t day;		/* days since 1970-01-01 */
	char *path;		/* LAKE/DATASET/year=.../month=.../day=... */
};

/*
 * The partitions of LAKE/DATASET whose day overlaps [since_ms, until_ms)
 * (DD_LAKE_MIN_MS / DD_LAKE_MAX_MS for no bound), in date order. Year and
 * month directories outside the range are not even listed. A missing
 * dataset is an empty list. Directories not named like partitions are
 * ignored. 0 or -1; free with dd_lake_partitions_free.
 */
int dd_lake_partitions(const char *lake, const char *dataset, int64_t since_ms,
    int64_t until_ms, struct dd_lake_partition **out, size_t *n);
void dd_lake_partitions_free(struct dd_lake_partition *p, size_t n);

struct dd_lake_bloom {
	uint64_t keys, bits;
	unsigned hashes;
	const unsigned char *p;	/* bits/8 bytes, into the meta's buffer */
};

struct dd_lake_type_count {
	char *type;
	uint64_t n;
};

struct dd_lake_meta {
	uint64_t events, raw_bytes, part_bytes, frames;
	uint32_t checksum;	/* last 4 bytes of the part */
	int64_t min_ms, max_ms;
	int time_ordered;	/* "timeOrdered": its lines are in time order */
	struct dd_lake_type_count *types;
	size_t ntypes;
	struct dd_lake_bloom ids, subjects;
	int unique;		/* no id twice in the part, nor in the parts checked */
	struct dd_jval checked;	/* the names of those parts, a JSON array in buf */
	char *buf;		/* the file's bytes (the Bloom filters point here) */
	size_t buflen;
};

struct dd_lake_part {
	char *path;		/* full path of part-NAME.ndjson.zst */
	const char *name;	/* its last component, into path */
	uint64_t bytes;		/* file size */
	int has_meta;		/* meta present and describes this very part */
	struct dd_lake_meta meta;	/* valid when has_meta */
	int fd;			/* the part, open since the listing (-1: not) */
};

/*
 * The parts of one partition directory as it was at one moment, sorted by
 * name (write order), each open (fd) and with its metadata when present
 * and consistent (size and checksum match the part file). Read them with
 * dd_lake_reader_open_part: a compaction that removes them meanwhile takes
 * nothing from this reader. A listing that a compaction changed before
 * every part was open is taken again. A part whose metadata is missing,
 * unreadable, malformed or not matching has has_meta 0: it must be
 * scanned. Temporaries, metadata files and anything else are skipped (odd
 * files told to the hook). A missing directory is an empty list.
 * 0 or -1; free with dd_lake_parts_free (which closes them).
 */
int dd_lake_parts(const char *partition, struct dd_lake_part **out, size_t *n);
void dd_lake_parts_free(struct dd_lake_part *p, size_t n);

/*
 * Load the metadata of one part (path of the part file). 1 loaded and
 * consistent, 0 absent or not describing this part (*m zeroed), -1 on a
 * read error or malformed metadata.
 */
int dd_lake_meta_load(const char *part_path, struct dd_lake_meta *m);
void dd_lake_meta_free(struct dd_lake_meta *m);

/*
 * May the part hold this id / subject? 0 means certainly not, 1 maybe
 * (also when the part has no metadata: pass NULL). Also the time test:
 * may it hold an event in [since_ms, until_ms)?
 */
int dd_lake_may_have_id(const struct dd_lake_meta *m, const char *id, size_t n);
int dd_lake_may_have_subject(const struct dd_lake_meta *m, const char *s, size_t n);
int dd_lake_may_have_time(const struct dd_lake_meta *m, int64_t since_ms,
    int64_t until_ms);
/*
 * 1 when p is a part of this library's writer whose metadata describes it
 * (has_meta): its lines were scanned as events before they were stored
 * (dd_lake_add takes only such lines: every caller has scanned them for
 * their time and id), and its checksums (every frame's, the last one in
 * the metadata) prove them unchanged since, so a reader may follow their
 * structure without validating them again (dd_env_scan_stored).
 */
int dd_lake_part_stored(const struct dd_lake_part *p);
/* 1 when no id can be twice in the partition of these parts (each part's
 * metadata "unique", and of each pair one checked the other), else 0. */
int dd_lake_partition_unique(const struct dd_lake_part *ps, size_t n);
/* The Bloom test itself, for callers holding a hash already. */
int dd_lake_bloom_test(const struct dd_lake_bloom *b, uint64_t h);

/*
 * Read one part's lines in order. Each zstd frame is decompressed whole
 * and its checksum verified before any of its lines is handed out, so a
 * corrupt or truncated part yields its good frames' lines, then -1 with
 * "PATH: ..." in dd_errmsg(): never bytes that did not go in. In a part
 * named as the writer names them, a frame without a checksum is damage
 * too (other writers' parts may lack them). Memory is bounded by the
 * largest frame (about DD_LAKE_FRAME).
 */
struct dd_lake_reader;
struct dd_lake_reader *dd_lake_reader_open(const char *part_path);
/* The same for a part of dd_lake_parts(), through its open file. */
struct dd_lake_reader *dd_lake_reader_open_part(const struct dd_lake_part *p);
/* 1 with the next line (without '\n', valid until the next call) and its
 * 1-based line number within the part; 0 at the end; -1 on corruption or
 * a read error. */
int dd_lake_reader_next(struct dd_lake_reader *r, const char **line, size_t *len,
    uint64_t *lineno);
void dd_lake_reader_close(struct dd_lake_reader *r);

/*
 * Decode a whole part (every frame checksum) and compare with its
 * metadata when present (event count, raw bytes). 0 when sound, -1 with
 * the fault in dd_errmsg(). *lines gets the number of lines (may be NULL).
 */
int dd_lake_part_verify(const char *part_path, uint64_t *lines);

/*
 * A set of event ids compared in full (a hash only finds candidates), each
 * with a 64-bit value of the caller's (dd-archive --verify: a fingerprint
 * of the line, to tell a conflicting copy from a duplicate).
 */
struct dd_lake_idset;
struct dd_lake_idset *dd_lake_idset_new(void);
/* 1 when id is present (its value in *old, which may be NULL); else adds
 * it with val and returns 0. */
int dd_lake_idset_add(struct dd_lake_idset *s, const char *id, size_t n, uint64_t val,
    uint64_t *old);
void dd_lake_idset_free(struct dd_lake_idset *s);

/* ------------------------------------------------------------ maintenance */

/*
 * Remove stale files from one partition directory: temporaries of this
 * host whose writer process is gone, temporaries of any writer older than
 * 24 hours, and metadata older than 1 hour whose part does not exist (a
 * crash between the two renames). Returns the number removed, or -1.
 */
int dd_lake_clean_partition(const char *partition);
/* The same over every partition of LAKE/DATASET. */
int dd_lake_clean(const char *lake, const char *dataset);

struct dd_lake_cstats {
	uint64_t parts_in, parts_out, events_in, events_out;
	uint64_t duplicates;	/* later copies of an id, byte for byte the first */
	uint64_t conflicts;	/* later copies of an id with other bytes (dropped too) */
	uint64_t bytes_in, bytes_out;
	int rewritten;		/* the partition was rewritten (else left as it was) */
};

/*
 * Compaction of a dataset is exclusive, whatever store or program asked
 * for it: the lock is LAKE/DATASET/_compact.lock (flock(2), ignored by
 * readers as every '_' name is). Returns the lock's fd (close it to
 * release), or -(exit code): -DD_EXIT_BUSY when another compaction holds
 * it, -DD_EXIT_IO on error, dd_errmsg() saying which. A missing dataset is
 * not created: -DD_EXIT_IO with ENOENT in errno.
 */
int dd_lake_compact_lock(const char *lake, const char *dataset);

/*
 * Rewrite the parts of one partition into as few parts as part_size
 * allows, each id once whatever its time (the first seen in part-name
 * order wins; a later copy with other bytes counts as a conflict). The new
 * parts are visible (committed, directory fsynced) before the old ones and
 * their metadata are removed, so a reader at any moment sees every event
 * (maybe twice, which it de-duplicates). Parts that appear during the run
 * are left alone. A partition of one part with metadata is left as it is.
 * A corrupt part stops the compaction (-1) with nothing removed.
 * The caller holds dd_lake_compact_lock(). o may be NULL. 0 or -1.
 */
int dd_lake_compact_partition(const char *lake, const char *dataset, int64_t day,
    const struct dd_lake_wopts *o, struct dd_lake_cstats *st);

/*
 * Remove parts (of dd_lake_parts(partition)) and their metadata, then
 * fsync the directory: for a derived dataset rebuilt whole, once the new
 * parts are visible and durable (a reader meanwhile sees both, and
 * de-duplicates by id). 0 or -1.
 */
int dd_lake_remove_parts(const char *partition, const struct dd_lake_part *ps, size_t n);

#endif
