/*
 * Lake maintenance (lake.h): removing what crashed writers left behind,
 * and compacting a partition's parts into few, each event once. Both go
 * through the public writer and reader, so they follow the same format
 * and durability rules as ingestion.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ddtime.h"
#include "event.h"
#include "exitcodes.h"
#include "json.h"
#include "lake.h"
#include "lake-int.h"
#include "store.h"
#include "util.h"

#define STALE_TMP_SECS (24 * 3600)
#define STALE_META_SECS 3600
/* Raw bytes of a partition compaction sorts in memory; the rest waits
 * in sorted runs in temporary files. */
#define COMPACT_SORT_BUDGET ((uint64_t)64 << 20)

/* ---------------------------------------------------------- maintenance */

/* Is a temporary (".….PID-HOST.tmp") stale? */
static int
tmp_stale(const char *name, time_t mtime, time_t now)
{
	if (now - mtime > STALE_TMP_SECS)
		return 1;
	size_t n = strlen(name);
	if (n < 4 + 1 + 8 + 1 || strcmp(name + n - 4, ".tmp"))
		return 0;
	const char *host = name + n - 4 - 8;
	if (host[-1] != '-')
		return 0;
	char hx[9];
	memcpy(hx, host, 8);
	hx[8] = '\0';
	char *end;
	unsigned long h = strtoul(hx, &end, 16);
	if (*end || (uint32_t)h != lake_host_id())
		return 0;
	const char *dot = host - 1;
	const char *s = dot;
	while (s > name && s[-1] >= '0' && s[-1] <= '9')
		s--;
	if (s == dot || s == name || s[-1] != '.')
		return 0;
	long pid = strtol(s, NULL, 10);
	if (pid <= 0 || pid == (long)getpid())
		return 0;
	return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

int
dd_lake_clean_partition(const char *partition)
{
	DIR *d;
	if (lake_opendir(partition, &d))
		return -1;
	if (d == NULL)
		return 0;
	int removed = 0;
	time_t now = time(NULL);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *nm = de->d_name;
		size_t n = strlen(nm);
		int tmp = nm[0] == '.' && n > 4 && !strcmp(nm + n - 4, ".tmp");
		int meta = nm[0] == '_' && n > 5 && !strcmp(nm + n - 5, ".meta");
		if (!tmp && !meta)
			continue;
		char *p = lake_path_join(partition, nm);
		struct stat sb;
		int stale = 0;
		if (lstat(p, &sb) == 0 && S_ISREG(sb.st_mode)) {
			if (tmp) {
				stale = tmp_stale(nm, sb.st_mtime, now);
			} else if (now - sb.st_mtime > STALE_META_SECS) {
				/* _BASE.meta without BASE.ndjson.zst */
				struct dd_buf part = { 0 };
				dd_buf_printf(&part, "%s/%.*s" PART_SUFFIX, partition, (int)(n - 6),
				    nm + 1);
				stale = access(part.p, F_OK) < 0 && errno == ENOENT;
				dd_buf_free(&part);
			}
		}
		if (stale && unlink(p) == 0)
			removed++;
		free(p);
	}
	closedir(d);
	return removed;
}

int
dd_lake_clean(const char *lake, const char *dataset)
{
	struct dd_lake_partition *ps;
	size_t n;
	if (dd_lake_partitions(lake, dataset, DD_LAKE_MIN_MS, DD_LAKE_MAX_MS, &ps, &n))
		return -1;
	int total = 0;
	for (size_t i = 0; i < n; i++) {
		int k = dd_lake_clean_partition(ps[i].path);
		if (k < 0) {
			dd_lake_partitions_free(ps, n);
			return -1;
		}
		total += k;
	}
	dd_lake_partitions_free(ps, n);
	return total;
}

/* ----------------------------------------------------------- compaction */

int
dd_lake_compact_lock(const char *lake, const char *dataset)
{
	if (!dd_lake_dataset_ok(dataset))
		return -DD_EXIT_USAGE;
	struct dd_buf p = { 0 };
	dd_buf_printf(&p, "%s/%s/_compact.lock", lake, dataset);
	/* Two compactions reading the same old parts would each write all
	 * their events again: one lock per dataset, in the lake itself, so
	 * jobs given different stores still meet. */
	int fd = dd_lock(p.p);
	if (fd == -DD_EXIT_BUSY)
		dd_seterr("%s: another compaction of this dataset holds the lock", p.p);
	dd_buf_free(&p);
	return fd;
}

/* The state of one compaction's copy: the ids seen in every part so far,
 * and buffers for the decoded strings the writer indexes. */
struct copy {
	struct dd_lake_writer *w;
	int64_t day;
	struct lake_sort *sort;	/* the kept lines, by time */
	struct idset seen;
	struct dd_buf bid, bsub, btype;
	struct dd_lake_cstats *st;
};

/* Copy one event line of part path into the new parts, unless an earlier
 * one has its id. */
static int
copy_event(struct copy *c, const char *path, const char *l, size_t len, uint64_t no)
{
	struct dd_env e;
	if (dd_env_scan(l, len, &e)) {
		/* Not written by a dd writer: leave the partition as it is
		 * rather than drop or move anything. */
		dd_seterr("%s:%" PRIu64 ": %s; partition not compacted", path, no,
		    dd_errmsg());
		return -1;
	}
	if (dd_ms_to_days(e.time_ms) != c->day) {
		dd_seterr("%s:%" PRIu64 ": an event of another day; partition not"
		    " compacted", path, no);
		return -1;
	}
	struct dd_lake_ev ev = { .time_ms = e.time_ms };
	ev.id = dd_jstr_text(&e.id, &c->bid, &ev.idlen);
	ev.subject = dd_jstr_text(&e.subject, &c->bsub, &ev.sublen);
	ev.type = dd_jstr_text(&e.type, &c->btype, &ev.typelen);
	/* An id appears once per partition, whatever its time (SPEC): the
	 * first written is kept. A later copy with other bytes is a
	 * conflict, counted apart; its bytes are told by a fingerprint (a
	 * collision of it would only count a conflict as a duplicate). */
	uint64_t fp = dd_hash64(l, len), first;
	if (lake_idset_check_add(&c->seen, dd_hash64(ev.id, ev.idlen), ev.id, ev.idlen, fp,
	    &first)) {
		if (first == fp)
			c->st->duplicates++;
		else
			c->st->conflicts++;
		return 0;
	}
	/* Written once all are read, in time order (ties in write order). */
	if (lake_sort_add(c->sort, e.time_ms, l, len))
		return -1;
	c->st->events_out++;
	return 0;
}

/* Write the kept lines into the new parts, ordered by event time. */
static int
write_sorted(struct copy *c)
{
	int64_t t;
	const char *l;
	size_t len;
	int k;
	while ((k = lake_sort_next(c->sort, &t, &l, &len)) == 1) {
		struct dd_env e;
		if (dd_env_scan(l, len, &e))	/* scanned once already */
			return -1;
		struct dd_lake_ev ev = { .time_ms = e.time_ms };
		ev.id = dd_jstr_text(&e.id, &c->bid, &ev.idlen);
		ev.subject = dd_jstr_text(&e.subject, &c->bsub, &ev.sublen);
		ev.type = dd_jstr_text(&e.type, &c->btype, &ev.typelen);
		if (dd_lake_add(c->w, l, len, &ev) < 0)
			return -1;
	}
	return k;
}

/* Copy every part of ps, in order, into the writer. 0 or -1. */
static int
copy_parts(struct copy *c, const struct dd_lake_part *ps, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct dd_lake_reader *r = dd_lake_reader_open_part(&ps[i]);
		if (r == NULL)
			return -1;
		const char *l;
		size_t len;
		uint64_t no;
		int k;
		while ((k = dd_lake_reader_next(r, &l, &len, &no)) == 1) {
			c->st->events_in++;
			if (copy_event(c, ps[i].path, l, len, no)) {
				k = -1;
				break;
			}
		}
		dd_lake_reader_close(r);
		if (k < 0)
			return -1;
	}
	return 0;
}

/* Remove the old parts and their metadata, once the new ones are durable. */
static int
remove_parts(const char *dir, const struct dd_lake_part *ps, size_t n)
{
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		char *mp = lake_meta_path(ps[i].path);
		if (unlink(ps[i].path) < 0 && errno != ENOENT) {
			dd_seterr("%s: %s", ps[i].path, strerror(errno));
			rc = -1;
		}
		if (mp && unlink(mp) < 0 && errno != ENOENT) {
			dd_seterr("%s: %s", mp, strerror(errno));
			rc = -1;
		}
		free(mp);
	}
	if (dd_fsync_dir(dir))
		rc = -1;
	return rc;
}

/* Write the events of ps into new parts of the same partition, visible
 * and durable when it returns 0. */
static int
merge(const char *lake, const char *dataset, int64_t day, const struct dd_lake_wopts *o,
    const struct dd_lake_part *ps, size_t n, struct dd_lake_cstats *st)
{
	struct dd_lake_wopts wo;
	if (o)
		wo = *o;
	else
		dd_lake_wopts_defaults(&wo);
	wo.max_open = 1;	/* one partition */
	wo.spill = 0;
	wo.max_age_ms = 0;
	wo.dedupe = 0;		/* done here, across all the parts */
	wo.replace = 1;		/* its parts replace the old ones ("unique") */
	/* The new parts sort where the old ones were: after the last one
	 * they replace, before any written meanwhile (names of other
	 * writers than this library's say nothing of order: new names). */
	char after[LAKE_NAME_MAX];
	const char *last = ps[n - 1].name;
	size_t ln = strlen(last), pre = strlen("part-"), sl = strlen(PART_SUFFIX);
	wo.compact_after = NULL;
	if (lake_own_part_name(last) && ln - pre - sl < sizeof after) {
		memcpy(after, last + pre, ln - pre - sl);
		after[ln - pre - sl] = '\0';
		wo.compact_after = after;
	}
	struct copy c = { .day = day, .st = st };
	c.w = dd_lake_writer_open(lake, dataset, &wo);
	if (c.w == NULL)
		return -1;
	char *dir = dd_lake_partition_path(lake, dataset, day);
	c.sort = lake_sort_new(dir, COMPACT_SORT_BUDGET);
	free(dir);
	int rc = lake_kafka_carry(c.w, lake, dataset, ps, n);
	if (rc == 0)
		rc = copy_parts(&c, ps, n);
	lake_idset_free(&c.seen);	/* duplicates are known: memory for the sort */
	if (rc == 0)
		rc = write_sorted(&c);
	lake_sort_free(c.sort);
	dd_buf_free(&c.bid);
	dd_buf_free(&c.bsub);
	dd_buf_free(&c.btype);
	if (rc || dd_lake_commit(c.w)) {
		dd_lake_writer_abort(c.w);
		return -1;
	}
	struct dd_lake_wstats ws;
	dd_lake_wstats(c.w, &ws);
	st->parts_out = ws.parts;
	st->bytes_out = ws.out_bytes;
	dd_lake_writer_close(c.w);
	return 0;
}

int
dd_lake_remove_parts(const char *partition, const struct dd_lake_part *ps, size_t n)
{
	return remove_parts(partition, ps, n);
}

int
dd_lake_compact_partition(const char *lake, const char *dataset, int64_t day,
    const struct dd_lake_wopts *o, struct dd_lake_cstats *st)
{
	struct dd_lake_cstats dummy;
	if (st == NULL)
		st = &dummy;
	memset(st, 0, sizeof *st);
	if (!dd_lake_dataset_ok(dataset))
		return -1;
	char *dir = dd_lake_partition_path(lake, dataset, day);
	struct dd_lake_part *ps;
	size_t n;
	if (dd_lake_parts(dir, &ps, &n)) {
		free(dir);
		return -1;
	}
	st->parts_in = n;
	for (size_t i = 0; i < n; i++)
		st->bytes_in += ps[i].bytes;
	int rc = 0;
	if (n == 0 || (n == 1 && ps[0].has_meta && ps[0].meta.time_ordered)) {
		/* Nothing to merge: one part written by this library holds no
		 * duplicate (its writer dropped them), and its metadata says its
		 * events came in time order. */
		if (n == 1) {
			st->parts_out = 1;
			st->events_in = st->events_out = ps[0].meta.events;
			st->bytes_out = ps[0].bytes;
		}
	} else if (merge(lake, dataset, day, o, ps, n, st) == 0) {
		/* The new parts are visible and durable before any old one goes. */
		st->rewritten = 1;
		rc = remove_parts(dir, ps, n);
	} else {
		rc = -1;
	}
	dd_lake_parts_free(ps, n);
	free(dir);
	return rc;
}
