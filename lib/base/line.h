/*
 * A line reader for NDJSON: one buffer reused for every line (no per-line
 * allocation), lines of any length up to a limit, CRLF tolerated, and the
 * number and byte offset of each line kept for error messages and rejects.
 */
#ifndef DD_LINE_H
#define DD_LINE_H

#include <stddef.h>
#include <stdint.h>

#define DD_MAX_LINE_DEFAULT (1024 * 1024)
/* How much of an over-long line is kept for the reject record. */
#define DD_LINE_KEEP 4096

struct dd_line {
	char *p;		/* the line without its '\n' (and '\r'); valid until the next call */
	size_t n;		/* its length (at most DD_LINE_KEEP when toolong) */
	uint64_t lineno;	/* 1-based */
	uint64_t off;		/* byte offset of its first byte in the input */
	int toolong;		/* the line exceeded the limit: p holds its start */
	uint64_t fulllen;	/* the whole length, also when toolong */
	int32_t kpart;		/* a Kafka message (filter.c): its partition, and
				 * lineno and off its offset; else -1 */
	const char *ktopic;	/* and its topic (valid for the run); else NULL */
};

enum {
	DD_LINES_EOF = 0,
	DD_LINES_OK = 1,
	DD_LINES_ERR = -1,	/* read error: errno and dd_errmsg() */
	DD_LINES_TIMEOUT = -2,	/* no complete line within the timeout */
	DD_LINES_INTR = -3,	/* interrupted by a signal */
};

struct dd_lines;

/* Read from fd (not closed by dd_lines_free); name is used in messages. */
struct dd_lines *dd_lines_open(int fd, const char *name, size_t maxline);
/* Next line. timeout_ms < 0 waits as long as it takes. */
int dd_lines_next(struct dd_lines *r, struct dd_line *l, int timeout_ms);
/* The same with a deadline in epoch ms (INT64_MAX: none). The clock is
 * read only when the buffer holds no complete line, so a busy stream
 * costs no clock reads per line. */
int dd_lines_next_until(struct dd_lines *r, struct dd_line *l, int64_t deadline_ms);
void dd_lines_free(struct dd_lines *r);

#endif
