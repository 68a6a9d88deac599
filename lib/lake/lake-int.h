/*
 * What the lake's writer (lake-writer.c), reader (lake-reader.c) and
 * maintenance (lake-compact.c) share, defined once in lake.c: the names
 * of parts and their files, the sets a part's metadata is made of, and
 * the encoding of that metadata (its decoding is the reader's). Private
 * to lib/lake/; the format itself is described in lake.h.
 */
#ifndef DD_LAKE_INT_H
#define DD_LAKE_INT_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "util.h"

#define META_FORMAT "dd-lake-meta/1"
#define BLOOM_BITS_PER_KEY 10
#define BLOOM_HASHES 7
#define PART_SUFFIX ".ndjson.zst"

/* ----------------------------------------------------------------- names */

/* "a/b", malloc'd. */
char *lake_path_join(const char *a, const char *b);
/* 8 hex digits naming this host in temporaries. */
uint32_t lake_host_id(void);
/* Room for a part NAME and its NUL. */
#define LAKE_NAME_MAX 64
/* A new part NAME (lake.h), NUL-terminated, greater than every earlier
 * one of this process. */
void lake_new_name(char out[LAKE_NAME_MAX]);
/* The NAME of the k-th part (from 1) a compaction writes in place of parts
 * whose last NAME is after (lake.h). */
void lake_compact_name(const char *after, unsigned k, char out[LAKE_NAME_MAX]);
/* Append "year=YYYY/month=MM/day=DD" for day. */
void lake_day_dirs(struct dd_buf *b, int64_t day);
/* DIR/BASE.ndjson.zst -> DIR/_BASE.meta (malloc'd); NULL when not a part. */
char *lake_meta_path(const char *part);
/* Open a partition directory to list it: 0 with *d NULL when it does not
 * exist (an empty partition), -1 with dd_errmsg() on any other error. */
int lake_opendir(const char *dir, DIR **d);
/* Open path to read it, without blocking (a FIFO), and check that it is a
 * regular file: the fd, or -1 with errno (EFTYPE-like cases are ENODEV,
 * dd_errmsg() saying what it is; the odd file is told to the hook). */
int lake_open_regular(const char *path, struct stat *sb);
/* Tell the hook (dd_lake_set_odd_hook) of an odd entry. */
void lake_odd(const char *path, mode_t mode);
/* A visible part's file name (any writer's). */
int lake_is_part_name(const char *name);
/* A name lake_new_name() made, "part-NAME.ndjson.zst". */
int lake_own_part_name(const char *base);

/* ------------------------------------------------------ hash sets, Bloom */

/* A set of event ids, judged the same only when their bytes are (the
 * 64-bit hash, unkeyed and in the source, only says "maybe": ids can be
 * crafted to collide). Slot hash 0 means empty; an id whose hash is 0 is
 * stored as 1 and remembered in zero for the Bloom filter. off[i] - 1 is
 * where the slot's entry starts in arena: a 64-bit value the caller
 * chose (compaction: a fingerprint of the line), the id's length (32
 * bits), its bytes; off[i] 0 means only the hash is kept (an index that
 * is never asked, dedupe off). */
struct idset {
	uint64_t *h;
	uint64_t *off;
	struct dd_buf arena;
	size_t cap, n;
	int zero;
};

void lake_idset_free(struct idset *s);
/* Add the hash of an id for the Bloom filter only, without looking for it. */
void lake_idset_put_hash(struct idset *s, uint64_t h);
/* 1 when the id (n bytes, hash h) is present, its value in *old (may be
 * NULL); else adds it with val and returns 0. */
int lake_idset_check_add(struct idset *s, uint64_t h, const char *id, size_t n,
    uint64_t val, uint64_t *old);

/* A plain set of 64-bit hashes (subjects, days). */
struct hset {
	uint64_t *h;
	size_t cap, n;
	int zero;
};

void lake_hset_free(struct hset *s);
/* 1 when present; else adds it and returns 0. */
int lake_hset_add(struct hset *s, uint64_t h);

/* Per-type counts of one part. */
struct tcount {
	uint64_t h, n;
	char *name;
	size_t len;
};

struct tmap {
	struct tcount *v;
	size_t cap, n;
};

void lake_tmap_inc(struct tmap *m, const char *s, size_t len);
void lake_tmap_free(struct tmap *m);

/* ------------------------------------------------------- sorting (lake-sort.c) */

/* Lines sorted by key, ties in the order added, in bounded memory: up
 * to budget bytes in memory, the rest in sorted runs in unnamed
 * temporary files of dir. */
struct lake_sort;
struct lake_sort *lake_sort_new(const char *dir, uint64_t budget);
/* 0, or -1 with dd_errmsg() (a temporary file could not be written). */
int lake_sort_add(struct lake_sort *s, int64_t key, const char *line, size_t len);
/* Lines added so far. */
uint64_t lake_sort_count(const struct lake_sort *s);
/* After the last add: 1 with the next line (valid until the next call),
 * 0 at the end, -1 on a read error. */
int lake_sort_next(struct lake_sort *s, int64_t *key, const char **line, size_t *len);
void lake_sort_free(struct lake_sort *s);

/* ------------------------------------------------------------- metadata */

/* What the metadata of a finished part is made from (lake.h). */
struct meta_src {
	const char *name;		/* NAME */
	uint64_t part_bytes, frames, events, raw_bytes;
	const unsigned char *lastsum;	/* the part file's last 4 bytes */
	int64_t min_ms, max_ms;
	int time_ordered;
	const struct idset *ids;
	const struct hset *subjects;
	const struct tmap *types;
	const char *unique;	/* NULL, or the JSON array of the parts checked */
	const char *extra;	/* NULL, or members appended (",\"kafka\":{...}") */
};

/*
 * lake-unique.c: may the part (file name self, in dir, with these ids) be
 * marked unique? 1 when no id repeats within it and none is in the other
 * parts of dir (with use_only, only in those of the full paths only[]),
 * whose names go into checked as a JSON array; else 0.
 */
int lake_part_unique(const char *dir, const char *self, const struct idset *ids,
    char *const *only, size_t nonly, int use_only, struct dd_buf *checked);

/* -------------------------------------------- Kafka offsets (lake-kafka.c) */

struct dd_lake_writer;
struct lake_kw;		/* a writer's topic, epoch and positions */
struct lake_kranges;	/* a part's offset ranges, by partition */
struct lake_kw *lake_kafka_new(const char *topic);
void lake_kafka_free(struct lake_kw *kw);
struct lake_kw *lake_writer_kw(struct dd_lake_writer *w);
/* The event at offset off of partition p went into the part of *kr. */
void lake_kafka_range(struct lake_kranges **kr, int32_t p, int64_t off);
void lake_kranges_free(struct lake_kranges *kr);
/* Append the part's "kafka" member; epoch_parts: the epoch's number of
 * parts when its commit closes this one, 0 for a part closed early. */
void lake_kafka_meta(struct lake_kw *kw, struct lake_kranges *kr, uint64_t epoch_parts,
    struct dd_buf *b);
/* Parts of the current epoch closed early so far. */
uint64_t lake_kafka_closed(const struct lake_kw *kw);
/* The commit succeeded: its positions are durable, a new epoch begins. */
void lake_kafka_committed(struct lake_kw *kw);
/* Compaction: the merged parts of ps carry, as their "from", where an
 * ingest of the topic they name resumes now, so merging loses no
 * position. 0 or -1. */
struct dd_lake_part;
int lake_kafka_carry(struct dd_lake_writer *w, const char *lake, const char *dataset,
    const struct dd_lake_part *ps, size_t n);

/* Append the whole metadata file: its JSON line, then the Bloom filters. */
void lake_meta_build(const struct meta_src *p, struct dd_buf *b);

#endif
