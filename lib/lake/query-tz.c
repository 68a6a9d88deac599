/*
 * Time zones and time buckets (--tz, --by @day...). The zone is the
 * process's: TZ is set to it and the C library reads the system's zone
 * database (tzdata), so DST and every historical rule come from there and
 * nowhere else. Workers are forked after tz_set() and inherit it.
 *
 * An offset is asked of localtime_r() once per UTC minute seen in a row
 * (events of a part come in time order, so nearly always the cached one):
 * every zone's transitions fall on whole minutes since 1970.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ddtime.h"
#include "query-int.h"

static int utc = 1;
static __thread int64_t cached_min = INT64_MIN;
static __thread long cached_off;

/* The bucket last made of each kind: its text, the offset it was made
 * under and its local bounds [lo, hi). Events of a part come in time
 * order, so nearly every event falls in the bucket of the one before and
 * takes its text from here, without formatting it again. */
static __thread struct bcache {
	long off;
	int64_t lo, hi;
	size_t n;
	char text[48];
} bcache[B_WEEKDAY + 1];

/* A zone name as the database spells it: no absolute path, no "..". */
static int
zone_file(const char *zone, struct dd_buf *path)
{
	if (zone[0] == '\0' || zone[0] == '/' || zone[0] == ':' || strstr(zone, "..") ||
	    strlen(zone) > 200)
		return -1;
	const char *dir = getenv("TZDIR");
	dd_buf_printf(path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", zone);
	FILE *f = fopen(path->p, "rb");
	if (f == NULL)
		return -1;
	char magic[4];
	int ok = fread(magic, 1, 4, f) == 4 && memcmp(magic, "TZif", 4) == 0;
	fclose(f);
	return ok ? 0 : -1;
}

int
tz_set(const char *zone)
{
	if (zone == NULL || strcmp(zone, "UTC") == 0 || strcmp(zone, "Etc/UTC") == 0) {
		utc = 1;
		return 0;
	}
	struct dd_buf path = { 0 };
	int bad = zone_file(zone, &path);
	dd_buf_free(&path);
	if (bad) {
		/* The C library would silently take an unknown name for UTC. */
		dd_seterr("--tz: unknown time zone \"%s\" (an IANA name such as "
		    "America/Los_Angeles, from /usr/share/zoneinfo)", zone);
		return -1;
	}
	if (setenv("TZ", zone, 1)) {
		dd_seterr("--tz: %s", strerror(errno));
		return -1;
	}
	tzset();
	utc = 0;
	cached_min = INT64_MIN;
	memset(bcache, 0, sizeof bcache);
	return 0;
}

int
tz_is_utc(void)
{
	return utc;
}

long
tz_offset(int64_t ms)
{
	if (utc)
		return 0;
	int64_t min = ms >= 0 ? ms / 60000 : -((-ms + 59999) / 60000);
	if (min == cached_min)
		return cached_off;
	time_t t = (time_t)(min * 60);
	struct tm tm;
	long off = 0;
	if (localtime_r(&t, &tm))
		off = tm.tm_gmtoff;
	cached_min = min;
	cached_off = off;
	return off;
}

int64_t
tz_midnight(int y, unsigned m, unsigned d)
{
	int64_t day = dd_days_from_civil(y, m, d) * DAY_MS;
	if (utc)
		return day;
	/* The offset before midnight, then the one at the instant found: two
	 * steps settle any change; where midnight falls in a DST gap, the
	 * day starts at the first instant of it that exists. */
	int64_t t = day - tz_offset(day) * 1000;
	t = day - tz_offset(t) * 1000;
	int64_t local = t + tz_offset(t) * 1000;
	if (dd_ms_to_days(local) < dd_ms_to_days(day))
		t += DAY_MS - (local - dd_ms_to_days(local) * DAY_MS);
	return t;
}

int
bucket_kind(const char *k)
{
	static const char *const names[] = { "@hour", "@day", "@week", "@month",
	    "@hourofday", "@weekday" };
	for (int i = 0; i < 6; i++)
		if (strcmp(k, names[i]) == 0)
			return i + 1;
	return 0;
}

/* Days since the epoch -> ISO 8601 weekday, 1 (Monday) to 7. */
static int
weekday(int64_t z)
{
	return (int)(((z + 3) % 7 + 7) % 7) + 1;	/* 1970-01-01 was a Thursday */
}

void
time_bucket(int kind, int64_t ms, struct dd_buf *b)
{
	long off = tz_offset(ms);
	int64_t local = ms + (int64_t)off * 1000;
	struct bcache *c = &bcache[kind];
	if (c->n && c->off == off && local >= c->lo && local < c->hi) {
		dd_buf_add(b, c->text, c->n);
		return;
	}
	int64_t z = dd_ms_to_days(local);
	int64_t sec = (local - z * DAY_MS) / 1000;
	int64_t hour = z * DAY_MS + sec / 3600 * 3600000;
	int y;
	unsigned m, d;
	dd_civil_from_days(z, &y, &m, &d);
	char *t = c->text;
	size_t cap = sizeof c->text;
	int n = 0;
	/* The text depends on the local time alone (and, for an hour, on
	 * the offset too, which the cache compares). */
	c->lo = z * DAY_MS;
	c->hi = c->lo + DAY_MS;
	switch (kind) {
	case B_HOUR:
		c->lo = hour;
		c->hi = hour + 3600000;
		n = snprintf(t, cap, "%04d-%02u-%02uT%02d:00:00", y, m, d, (int)(sec / 3600));
		if (utc) {
			n += snprintf(t + n, cap - (size_t)n, "Z");
		} else {
			long a = off < 0 ? -off : off;
			n += snprintf(t + n, cap - (size_t)n, "%c%02ld:%02ld", off < 0 ? '-' : '+',
			    a / 3600, a / 60 % 60);
		}
		break;
	case B_DAY:
		n = snprintf(t, cap, "%04d-%02u-%02u", y, m, d);
		break;
	case B_WEEK: {
		/* The ISO year is that of the week's Thursday. */
		int64_t mon = z - (weekday(z) - 1), th = mon + 3;
		int ty;
		unsigned tm, td;
		dd_civil_from_days(th, &ty, &tm, &td);
		int64_t week = (th - dd_days_from_civil(ty, 1, 1)) / 7 + 1;
		n = snprintf(t, cap, "%04d-W%02d", ty, (int)week);
		c->lo = mon * DAY_MS;
		c->hi = c->lo + 7 * DAY_MS;
		break;
	}
	case B_MONTH:
		n = snprintf(t, cap, "%04d-%02u", y, m);
		c->lo = dd_days_from_civil(y, m, 1) * DAY_MS;
		c->hi = (m == 12 ? dd_days_from_civil(y + 1, 1, 1) :
		    dd_days_from_civil(y, m + 1, 1)) * DAY_MS;
		break;
	case B_HOUROFDAY:
		n = snprintf(t, cap, "%d", (int)(sec / 3600));
		c->lo = hour;
		c->hi = hour + 3600000;
		break;
	case B_WEEKDAY:
		n = snprintf(t, cap, "%d", weekday(z));
		break;
	}
	c->n = n > 0 && (size_t)n < cap ? (size_t)n : 0;
	c->off = off;
	dd_buf_add(b, t, c->n);
}

/* A bucket is a JSON string but for the numbers of the cyclic ones. */
int
bucket_is_number(int kind)
{
	return kind == B_HOUROFDAY || kind == B_WEEKDAY;
}

/* Could a part spanning lo..hi hold more than one bucket? */
int
bucket_spans(int kind, int64_t lo, int64_t hi)
{
	struct dd_buf a = { 0 }, b = { 0 };
	/* A cyclic bucket is one value only within one hour or one day. */
	int k = kind == B_HOUROFDAY ? B_HOUR : kind == B_WEEKDAY ? B_DAY : kind;
	time_bucket(k, lo, &a);
	time_bucket(k, hi, &b);
	int many = strcmp(a.p, b.p) != 0;
	dd_buf_free(&a);
	dd_buf_free(&b);
	return many;
}
