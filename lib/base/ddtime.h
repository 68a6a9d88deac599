/*
 * Times and durations as SPEC.md writes them. The toolkit works in UTC
 * epoch milliseconds (int64) everywhere.
 */
#ifndef DD_TIME_H
#define DD_TIME_H

#include <stddef.h>
#include <stdint.h>

/* "2026-11-26T03:41:13.123Z" plus NUL */
#define DD_TIMEBUF 32

/* RFC 3339 with any offset and any fraction (truncated to ms); 0 or -1. */
int dd_time_parse(const char *s, size_t n, int64_t *ms);
/* Format as UTC with milliseconds; returns the length (24 for 0000-9999). */
size_t dd_time_format(int64_t ms, char out[DD_TIMEBUF]);
/* Durations: 500ms, 90s, 15m, 12h, 30d, 2w; 0 or -1 (dd_errmsg()). */
int dd_duration_parse(const char *s, int64_t *ms);
/*
 * A time argument: RFC 3339, YYYY-MM-DD (UTC midnight), "now", or a
 * duration relative to now ("-7d", "+12h"). 0 or -1 (dd_errmsg()).
 */
int dd_time_arg(const char *s, int64_t now_ms, int64_t *ms);
/* The wall clock, in epoch milliseconds. */
int64_t dd_now_ms(void);

/* Civil calendar <-> days since 1970-01-01 (proleptic Gregorian). */
int64_t dd_days_from_civil(int y, unsigned m, unsigned d);
void dd_civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d);
/* Floor division of ms into days since the epoch. */
int64_t dd_ms_to_days(int64_t ms);

#endif
