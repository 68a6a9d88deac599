/*
 * Tabular output of get/list/query results: CSV (libcsv's quoting), TSV
 * (\t \n \r \\ escaped), or an aligned table for a terminal. NDJSON is
 * written by the callers themselves (they hold the JSON).
 */
#ifndef DD_OUT_H
#define DD_OUT_H

#include <stdio.h>
#include <stddef.h>

enum dd_fmt { DD_FMT_NDJSON, DD_FMT_CSV, DD_FMT_TSV, DD_FMT_TABLE, DD_FMT_CHART };

/* Parse a --format value; allowed is a mask of (1 << DD_FMT_x). 0 or -1. */
int dd_fmt_parse(const char *s, unsigned allowed, enum dd_fmt *f);

struct dd_out;
/* Start output of the columns named (a header row is written). */
struct dd_out *dd_out_new(FILE *f, enum dd_fmt fmt, const char *const *cols, int ncols);
/* Add one cell to the current row; a row ends with dd_out_endrow(). */
void dd_out_cell(struct dd_out *o, const char *s, size_t n);
void dd_out_endrow(struct dd_out *o);
/* Finish (a table is printed now, aligned) and free; 0, or -1 on a write error. */
int dd_out_finish(struct dd_out *o);

#endif
