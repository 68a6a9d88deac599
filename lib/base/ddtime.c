#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ddtime.h"
#include "util.h"

/* Howard Hinnant's algorithms: exact for the proleptic Gregorian calendar. */
int64_t
dd_days_from_civil(int y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

void
dd_civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t yy = (int64_t)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)(yy + (*m <= 2));
}

int64_t
dd_ms_to_days(int64_t ms)
{
	int64_t d = ms / 86400000;
	if (ms % 86400000 < 0)
		d--;
	return d;
}

static int
digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

static int
days_in_month(int y, int m)
{
	static const int dm[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return dm[m - 1];
}

int
dd_time_parse(const char *s, size_t n, int64_t *ms)
{
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	int64_t frac = 0;
	/* full-date "T" partial-time time-offset: at least 20 bytes. */
	if (n < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
	    s[7] != '-' || digits(s + 8, 2, &d) ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) ||
	    s[16] != ':' || digits(s + 17, 2, &sec))
		return -1;
	size_t i = 19;
	if (i < n && s[i] == '.') {
		size_t start = ++i;
		int kept = 0;
		while (i < n && s[i] >= '0' && s[i] <= '9') {
			if (kept < 3) {
				frac = frac * 10 + (s[i] - '0');
				kept++;
			}
			i++;
		}
		if (i == start)
			return -1;
		while (kept++ < 3)
			frac *= 10;
	}
	if (i >= n)
		return -1;
	if (s[i] == 'Z' || s[i] == 'z') {
		i++;
	} else if (s[i] == '+' || s[i] == '-') {
		sign = s[i] == '-' ? -1 : 1;
		if (n - i < 6 || digits(s + i + 1, 2, &oh) || s[i + 3] != ':' ||
		    digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
			return -1;
		i += 6;
	} else {
		return -1;
	}
	if (i != n)
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
	    mi > 59 || sec > 60)
		return -1;
	/* A leap second (:60) is taken as the first ms past :59, like POSIX. */
	int64_t t = dd_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
	    h * 3600 + mi * 60 + sec;
	t -= sign * (oh * 3600 + om * 60);
	/* An offset or leap second can carry a time past the years 0000-9999
	 * that RFC 3339 can write; such a time could not be written back. */
	if (t < -62167219200 || t > 253402300799)
		return -1;
	*ms = t * 1000 + frac;
	return 0;
}

size_t
dd_time_format(int64_t ms, char out[DD_TIMEBUF])
{
	int64_t days = dd_ms_to_days(ms);
	int64_t rem = ms - days * 86400000;
	int y;
	unsigned m, d;
	dd_civil_from_days(days, &y, &m, &d);
	unsigned secs = (unsigned)(rem / 1000), milli = (unsigned)(rem % 1000);
	if (y < 0 || y > 9999)
		return (size_t)snprintf(out, DD_TIMEBUF, "%d-%02u-%02uT%02u:%02u:%02u.%03uZ",
		    y, m, d, secs / 3600, secs / 60 % 60, secs % 60, milli);
	/* Hand-formatted: this runs once per generated or emitted event. */
	char *p = out;
	p[0] = '0' + y / 1000; p[1] = '0' + y / 100 % 10;
	p[2] = '0' + y / 10 % 10; p[3] = '0' + y % 10; p[4] = '-';
	p[5] = '0' + m / 10; p[6] = '0' + m % 10; p[7] = '-';
	p[8] = '0' + d / 10; p[9] = '0' + d % 10; p[10] = 'T';
	unsigned hh = secs / 3600, mm = secs / 60 % 60, ss = secs % 60;
	p[11] = '0' + hh / 10; p[12] = '0' + hh % 10; p[13] = ':';
	p[14] = '0' + mm / 10; p[15] = '0' + mm % 10; p[16] = ':';
	p[17] = '0' + ss / 10; p[18] = '0' + ss % 10; p[19] = '.';
	p[20] = '0' + milli / 100; p[21] = '0' + milli / 10 % 10;
	p[22] = '0' + milli % 10; p[23] = 'Z'; p[24] = '\0';
	return 24;
}

int
dd_duration_parse(const char *s, int64_t *ms)
{
	const char *p = s;
	if (*p < '0' || *p > '9')
		goto bad;
	int64_t v = 0;
	while (*p >= '0' && *p <= '9') {
		if (v > (INT64_MAX / 1000 - 9) / 10 / 604800)
			goto bad;
		v = v * 10 + (*p++ - '0');
	}
	int64_t unit;
	if (strcmp(p, "ms") == 0)
		unit = 1;
	else if (strcmp(p, "s") == 0)
		unit = 1000;
	else if (strcmp(p, "m") == 0)
		unit = 60000;
	else if (strcmp(p, "h") == 0)
		unit = 3600000;
	else if (strcmp(p, "d") == 0)
		unit = 86400000;
	else if (strcmp(p, "w") == 0)
		unit = 604800000;
	else
		goto bad;
	*ms = v * unit;
	return 0;
bad:
	dd_seterr("bad duration \"%s\" (e.g. 500ms, 90s, 15m, 12h, 30d)", s);
	return -1;
}

int
dd_time_arg(const char *s, int64_t now_ms, int64_t *ms)
{
	size_t n = strlen(s);
	int y, m, d;
	if (strcmp(s, "now") == 0) {
		*ms = now_ms;
		return 0;
	}
	if (s[0] == '-' || s[0] == '+') {
		int64_t dur;
		if (dd_duration_parse(s + 1, &dur) < 0)
			goto bad;
		*ms = s[0] == '-' ? now_ms - dur : now_ms + dur;
		return 0;
	}
	if (n == 10 && !digits(s, 4, &y) && s[4] == '-' && !digits(s + 5, 2, &m) &&
	    s[7] == '-' && !digits(s + 8, 2, &d) && m >= 1 && m <= 12 && d >= 1 &&
	    d <= days_in_month(y, m)) {
		*ms = dd_days_from_civil(y, (unsigned)m, (unsigned)d) * 86400000;
		return 0;
	}
	if (dd_time_parse(s, n, ms) == 0)
		return 0;
bad:
	dd_seterr("bad time \"%s\" (RFC 3339, YYYY-MM-DD, now, -7d, -12h)", s);
	return -1;
}

int64_t
dd_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
