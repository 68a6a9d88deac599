/*
 * Reading CSV with libcsv (RFC 4180 quoting, fields may hold newlines),
 * one row at a time with the line number where the row starts, so a bad
 * row is reported as file:line like any bad input.
 */
#ifndef DD_CSVIN_H
#define DD_CSVIN_H

#include <stdio.h>
#include <stdint.h>

struct dd_csv_row {
	int n;			/* number of fields */
	char **f;		/* NUL-terminated fields */
	size_t *len;		/* their lengths */
	uint64_t lineno;	/* line where the row starts, 1-based */
	uint64_t off;		/* byte offset where it starts */
	const char *raw;	/* the row's raw text (for rejects) */
	size_t rawlen;
	const char *error;	/* non-NULL: the row is malformed (bad quoting);
				 * the fields are not usable, reading goes on */
};

/* Called once per row, the header included; return 0 to go on, non-zero
 * to stop (that value is returned by dd_csv_read). */
typedef int (*dd_csv_cb)(void *ctx, const struct dd_csv_row *row);

/* Read all of f; returns 0, the callback's stop value, or -1 on a read or
 * parse error (dd_errmsg() with the line). */
int dd_csv_read(FILE *f, dd_csv_cb cb, void *ctx);

#endif
