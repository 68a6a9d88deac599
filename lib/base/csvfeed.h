/*
 * CSV input as lines for the filter loop: a thread reads CSV (csvin.h;
 * rows may span lines) and writes each row as one JSON object line into a
 * pipe the loop reads, so CSV input goes through exactly the code NDJSON
 * does. The header names the members; dotted names nest ("pickup.lat" is
 * lat inside pickup); an empty cell is an absent member, and an object
 * with no member is absent too. Each line's origin (the CSV line, offset
 * and raw row, or why the row is unusable) is kept, so a rejected line
 * names the CSV line.
 */
#ifndef DD_CSVFEED_H
#define DD_CSVFEED_H

#include <stdint.h>

#include "line.h"

struct dd_csvfeed;

/*
 * Cells are JSON strings, except where the column's last name part is
 * in numbers (and the text is a JSON number) or in booleans (and the text
 * is true or false), so a bad cell is judged like the same bad value in
 * NDJSON. Both lists end with NULL; either may be NULL.
 */
struct dd_csvfeed_types {
	const char *const *numbers;
	const char *const *booleans;
};

/* Start reading fd (not closed: the feed reads a dup). NULL with
 * dd_errmsg() when the pipe or the thread cannot be made. */
struct dd_csvfeed *dd_csvfeed_start(int fd, const struct dd_csvfeed_types *t);
/* The pipe's read end, for the filter loop. */
int dd_csvfeed_fd(const struct dd_csvfeed *c);
/*
 * Line lineno (1-based; asked for in order) of the pipe: 0 when its row
 * is usable, 1 when not (why in dd_errmsg(): bad quoting, a wrong number
 * of fields, a bad header), -1 when the lines are out of step with the
 * rows (a bug; dd_errmsg()).
 */
int dd_csvfeed_line(struct dd_csvfeed *c, uint64_t lineno);
/* The CSV row line lineno stands for, for rejects; NULL if unknown. */
const struct dd_line *dd_csvfeed_origin(struct dd_csvfeed *c, uint64_t lineno);
/*
 * Close the pipe and end the reader; finished: the loop read all of it.
 * Stopped early, a reader still waiting for input is given 200 ms and
 * then left to the process exit. Returns 0, or -1 with the reader's
 * error (a read or parse error) in dd_errmsg(). Frees c.
 */
int dd_csvfeed_stop(struct dd_csvfeed *c, int finished);

#endif
