/*
 * Rejected input, as SPEC.md asks: one line on stderr
 *   PROG: SOURCE:LINE: WHAT
 * and, with --rejects FILE, one NDJSON record appended there:
 *   {"source":…,"line":…,"offset":…,"error":…,"raw":…[,"rawBase64":…]}
 */
#ifndef DD_REJECT_H
#define DD_REJECT_H

#include <stdint.h>
#include "line.h"

struct dd_rejects;

/* path may be NULL (stderr only). NULL on failure (dd_errmsg()). */
struct dd_rejects *dd_rejects_open(const char *path);
/* Report one rejected line. 0, or -1 when the rejects file cannot be written. */
int dd_reject(struct dd_rejects *r, const char *source, const struct dd_line *l,
    const char *what);
/* Report a rejected record given by its parts (CSV rows and the like). */
int dd_reject_raw(struct dd_rejects *r, const char *source, uint64_t lineno,
    uint64_t off, const char *raw, size_t rawlen, int truncated, const char *what);
/* A rejected Kafka message: stderr names it kafka:TOPIC/PARTITION:OFFSET,
 * the record {"source":"kafka","topic":T,"partition":P,"offset":O,...}. */
int dd_reject_kafka(struct dd_rejects *r, const char *topic, int32_t partition, int64_t offset,
    const char *raw, size_t rawlen, int truncated, const char *what);
/* Flush and close; 0 or -1. */
int dd_rejects_close(struct dd_rejects *r);

#endif
