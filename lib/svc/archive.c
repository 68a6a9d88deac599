#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "ddtime.h"
#include "event.h"
#include "exitcodes.h"
#include "filter.h"
#include "history.h"
#include "lake.h"
#include "util.h"
#include "view.h"

/* ---------------------------------------------------- a multiset of hashes */

/* The line hashes a chunk added to the lake, to tick off when its parts
 * are read back. Open addressing; 0 marks an empty slot. */
struct hset {
	uint64_t *k;
	uint32_t *c;
	size_t cap, n;
};

static uint64_t
hkey(uint64_t h)
{
	return h ? h : 1;
}

static void
hset_add(struct hset *s, uint64_t h)
{
	h = hkey(h);
	if ((s->n + 1) * 2 > s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 1024;
		uint64_t *k = dd_calloc(ncap, sizeof *k);
		uint32_t *c = dd_calloc(ncap, sizeof *c);
		for (size_t i = 0; i < s->cap; i++) {
			if (!s->k[i])
				continue;
			size_t j = s->k[i] & (ncap - 1);
			while (k[j])
				j = (j + 1) & (ncap - 1);
			k[j] = s->k[i];
			c[j] = s->c[i];
		}
		free(s->k);
		free(s->c);
		s->k = k;
		s->c = c;
		s->cap = ncap;
	}
	size_t j = h & (s->cap - 1);
	while (s->k[j] && s->k[j] != h)
		j = (j + 1) & (s->cap - 1);
	if (!s->k[j]) {
		s->k[j] = h;
		s->n++;
	}
	s->c[j]++;
}

/* Tick one occurrence off; 1 when it was there. */
static int
hset_take(struct hset *s, uint64_t h)
{
	h = hkey(h);
	if (s->cap == 0)
		return 0;
	size_t j = h & (s->cap - 1);
	while (s->k[j]) {
		if (s->k[j] == h) {
			if (s->c[j] == 0)
				return 0;
			s->c[j]--;
			return 1;
		}
		j = (j + 1) & (s->cap - 1);
	}
	return 0;
}

static void
hset_clear(struct hset *s)
{
	if (s->cap) {
		memset(s->k, 0, s->cap * sizeof *s->k);
		memset(s->c, 0, s->cap * sizeof *s->c);
	}
	s->n = 0;
}

static void
hset_free(struct hset *s)
{
	free(s->k);
	free(s->c);
	memset(s, 0, sizeof *s);
}

/* Keep dd_errmsg() across a cleanup that may overwrite it. */
static int
keep_err(int rc, void (*cleanup)(void *), void *arg)
{
	char *msg = dd_strdup(dd_errmsg());
	cleanup(arg);
	dd_seterr("%s", msg);
	free(msg);
	return rc;
}

/* --------------------------------------------------------------- archiving */

struct chunk {
	const struct dd_archive_opts *o;
	struct dd_lake_writer *w;
	struct dd_lake_writer *vw;	/* the deliveries view */
	struct dd_view *view;
	struct dd_buf vline;
	struct dd_history_cand *cur;
	struct dd_buf eids;	/* the event ids read, NUL-terminated, in order */
	size_t *eoff;		/* per delivery: its first id in eids */
	struct hset expect;	/* hashes of the lines added to the lake */
	uint64_t nexpect, events, raw;
	struct dd_buf bid, bsub, btype;
};

static int
on_event(void *ctx, const char *line, size_t len, int64_t time_ms, const char *eid,
    size_t eidlen)
{
	struct chunk *c = ctx;
	struct dd_env e;
	if (dd_env_scan(line, len, &e)) {
		dd_seterr("%s: delivery \"%s\": stored event \"%s\" is not an event: %s",
		    c->o->db, c->cur->id, eid, dd_errmsg());
		return -1;
	}
	if (c->w) {
		size_t idn, subn, typen;
		const char *id = dd_jstr_text(&e.id, &c->bid, &idn);
		const char *sub = dd_jstr_text(&e.subject, &c->bsub, &subn);
		const char *type = dd_jstr_text(&e.type, &c->btype, &typen);
		/* The time of the line itself decides the partition (it is the
		 * stored time_ms, unless the store was edited by hand). */
		struct dd_lake_ev ev = { .time_ms = e.time_ms, .id = id, .idlen = idn,
		    .subject = sub, .sublen = subn, .type = type, .typelen = typen };
		int r = dd_lake_add(c->w, line, len, &ev);
		if (r < 0)
			return -1;
		if (r == 0) {
			hset_add(&c->expect, dd_hash64(line, len));
			c->nexpect++;
		}
		/* r == 1: an event of the same id and time is already in the
		 * part, which is what readers would keep anyway. */
		dd_view_add(c->view, &e);
	}
	(void)time_ms;
	dd_buf_add(&c->eids, eid, eidlen);
	dd_buf_addc(&c->eids, '\0');
	c->cur->events++;
	c->events++;
	c->raw += len + 1;
	return 0;
}

/* The summary of the delivery whose events were just read, to the view. */
static int
add_summary(struct chunk *c)
{
	int64_t t;
	const char *id, *sub;
	size_t idn, subn;
	if (!dd_view_summary(c->view, &c->vline, &t, &id, &idn, &sub, &subn))
		return 0;
	struct dd_lake_ev ev = { .time_ms = t, .id = id, .idlen = idn, .subject = sub,
	    .sublen = subn, .type = "delivery.summary", .typelen = 16 };
	int r = dd_lake_add(c->vw, c->vline.p, c->vline.len, &ev);
	if (r < 0)
		return -1;
	if (r == 0) {
		hset_add(&c->expect, dd_hash64(c->vline.p, c->vline.len));
		c->nexpect++;
	}
	return 0;
}

/* Read the new parts of writer w back and tick off every line this chunk
 * added. 0, or -1 on a read error (dd_errmsg()). */
static int
read_back_one(struct chunk *c, struct dd_lake_writer *w)
{
	char **paths;
	size_t n = dd_lake_take_visible(w, &paths);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct dd_lake_reader *r = dd_lake_reader_open(paths[i]);
		if (r == NULL) {
			rc = -1;
			break;
		}
		const char *l;
		size_t len;
		uint64_t no;
		int k;
		while ((k = dd_lake_reader_next(r, &l, &len, &no)) == 1)
			if (hset_take(&c->expect, dd_hash64(l, len)))
				c->nexpect--;
		if (k < 0)
			rc = -1;
		dd_lake_reader_close(r);
	}
	dd_lake_paths_free(paths, n);
	return rc;
}

/* Read both writers' new parts back: 0 when every line is there, -1
 * otherwise (dd_errmsg()). */
static int
read_back(struct chunk *c)
{
	int rc = read_back_one(c, c->w);
	if (rc == 0)
		rc = read_back_one(c, c->vw);
	if (rc == 0 && c->nexpect) {
		dd_seterr("%s/%s: the parts just written lack %" PRIu64 " of the events"
		    " archived; nothing deleted from %s", c->o->lake, c->o->dataset, c->nexpect,
		    c->o->db);
		rc = -1;
	}
	return rc;
}

static void
rollback_read(void *s)
{
	sqlite3_exec(((struct dd_store *)s)->db, "ROLLBACK", NULL, NULL, NULL);
}

/* One chunk of deliveries: to the lake, read back, deleted. An exit code. */
static int
do_chunk(struct dd_store *s, struct dd_history_arch *a, struct chunk *c,
    struct dd_history_cand *cands, size_t n, struct dd_archive_stats *st)
{
	dd_buf_reset(&c->eids);
	hset_clear(&c->expect);
	c->nexpect = c->events = c->raw = 0;
	c->eoff = dd_realloc(c->eoff, n * sizeof *c->eoff);
	/* One read transaction: a consistent view of the chunk, and no
	 * write lock (the live dd-history goes on). */
	if (dd_store_exec(s, "BEGIN"))
		return DD_EXIT_IO;
	for (size_t i = 0; i < n; i++) {
		if (dd_signalled) {
			rollback_read(s);
			return 128 + dd_signalled;
		}
		c->cur = &cands[i];
		cands[i].events = 0;
		c->eoff[i] = c->eids.len;
		dd_view_begin(c->view, cands[i].id, strlen(cands[i].id));
		if (dd_history_events(a, cands[i].dkey, on_event, c) || (c->w && add_summary(c)))
			return keep_err(DD_EXIT_IO, rollback_read, s);
	}
	if (dd_store_exec(s, "COMMIT"))
		return keep_err(DD_EXIT_IO, rollback_read, s);
	if (c->w == NULL) {
		/* Dry run: what would go. */
		st->deliveries += n;
		st->events += c->events;
		st->raw_bytes += c->raw;
		return 0;
	}
	/* Durable in the lake (the summaries, then the events) and read
	 * back, or nothing is deleted. The small view first: a lake that
	 * fills up then stops before any event of the chunk is visible, and
	 * a summary ahead of its events is only written again by the rerun. */
	if (dd_lake_commit(c->vw) || dd_lake_commit(c->w) || read_back(c))
		return DD_EXIT_IO;
	if (dd_signalled)
		return 128 + dd_signalled;
	const char **ids = dd_malloc(n * sizeof *ids);
	for (size_t i = 0; i < n; i++)
		ids[i] = c->eids.p + c->eoff[i];
	uint64_t deleted;
	int rc = dd_history_forget(a, cands, n, ids, &deleted);
	free(ids);
	if (rc)
		return DD_EXIT_IO;
	st->deliveries += deleted;
	st->kept += n - deleted;
	st->events += c->events;
	st->raw_bytes += c->raw;
	return 0;
}

static void
close_store(void *s)
{
	dd_store_close(s);
}

int
dd_archive_run(const struct dd_archive_opts *o, struct dd_archive_stats *st)
{
	struct stat sb;
	if (stat(o->db, &sb) < 0) {
		if (errno == ENOENT)
			return 0;	/* no history yet: nothing to archive */
		dd_seterr("%s: %s", o->db, strerror(errno));
		return DD_EXIT_IO;
	}
	struct dd_store s;
	int rc = o->dry_run ? dd_store_open_ro(&s, o->db) : dd_history_open(&s, o->db);
	if (rc)
		return rc;
	struct dd_history_arch *a = dd_history_arch_new(&s);
	if (a == NULL)
		return keep_err(DD_EXIT_IO, close_store, &s);
	struct chunk c = { .o = o, .view = dd_view_new() };
	if (!o->dry_run) {
		/* No spill: read_back counts on dd_lake_add's answer being
		 * final (a chunk spans few days anyway). */
		struct dd_lake_wopts wo;
		dd_lake_wopts_defaults(&wo);
		wo.spill = 0;
		c.w = dd_lake_writer_open(o->lake, o->dataset, &wo);
		if (c.w)
			c.vw = dd_lake_writer_open(o->lake, DD_VIEW_DATASET, &wo);
		if (c.vw == NULL) {
			if (c.w)
				dd_lake_writer_abort(c.w);
			dd_view_free(c.view);
			dd_history_arch_free(a);
			return keep_err(DD_EXIT_IO, close_store, &s);
		}
	}
	int64_t after_ms = INT64_MIN, after_dkey = 0;
	size_t chunk = o->chunk ? o->chunk : DD_ARCHIVE_CHUNK;
	for (;;) {
		struct dd_history_cand *cands;
		size_t n;
		if (dd_signalled) {
			rc = 128 + dd_signalled;
			break;
		}
		if (dd_history_candidates(a, o->cutoff_ms, &after_ms, &after_dkey, chunk,
		    &cands, &n)) {
			rc = DD_EXIT_IO;
			break;
		}
		if (n == 0) {
			dd_history_cands_free(cands, n);
			break;
		}
		rc = do_chunk(&s, a, &c, cands, n, st);
		dd_history_cands_free(cands, n);
		if (c.w) {
			struct dd_lake_wstats ws, vs;
			dd_lake_wstats(c.w, &ws);
			dd_lake_wstats(c.vw, &vs);
			st->parts = ws.parts + vs.parts;
			st->bytes = ws.out_bytes + vs.out_bytes;
			st->summaries = vs.events;
		}
		if (rc)
			break;
		if (o->progress)
			o->progress(o->ctx, st);
	}
	char *msg = dd_strdup(dd_errmsg());
	if (c.w) {
		/* After a failure, open parts are abandoned (their temporaries
		 * removed): their events are still in history.db. */
		if (rc) {
			dd_lake_writer_abort(c.w);
			dd_lake_writer_abort(c.vw);
		} else if (dd_lake_writer_close(c.w) | dd_lake_writer_close(c.vw)) {
			rc = DD_EXIT_IO;	/* nothing open: cannot happen */
		}
	}
	dd_view_free(c.view);
	dd_buf_free(&c.vline);
	dd_history_arch_free(a);
	dd_store_close(&s);
	if (rc)
		dd_seterr("%s", msg);
	free(msg);
	free(c.eoff);
	dd_buf_free(&c.eids);
	dd_buf_free(&c.bid);
	dd_buf_free(&c.bsub);
	dd_buf_free(&c.btype);
	hset_free(&c.expect);
	return rc;
}

/* -------------------------------------------------------------- compaction */

int
dd_archive_compact(const struct dd_archive_opts *o, struct dd_archive_stats *st)
{
	struct dd_lake_partition *ps;
	size_t n;
	if (dd_lake_partitions(o->lake, o->dataset, DD_LAKE_MIN_MS, DD_LAKE_MAX_MS, &ps, &n))
		return DD_EXIT_IO;
	int rc = 0, lock = -1;
	/* One compaction of the dataset at a time, whatever --db this job has
	 * (a dry run writes nothing, not even the lock). */
	if (n > 0 && !o->dry_run) {
		lock = dd_lake_compact_lock(o->lake, o->dataset);
		if (lock < 0) {
			dd_lake_partitions_free(ps, n);
			return -lock;
		}
	}
	/* Stale temporaries and orphaned metadata of crashed writers first. */
	for (size_t i = 0; i < n && !o->dry_run; i++)
		if (dd_lake_clean_partition(ps[i].path) < 0) {
			rc = DD_EXIT_IO;
			break;
		}
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (dd_signalled) {
			rc = 128 + dd_signalled;
			break;
		}
		if (o->dry_run) {
			struct dd_lake_part *parts;
			size_t np;
			if (dd_lake_parts(ps[i].path, &parts, &np)) {
				rc = DD_EXIT_IO;
				break;
			}
			if (np > 1 || (np == 1 && !(parts[0].has_meta &&
			    parts[0].meta.time_ordered))) {
				st->partitions_compacted++;
				st->parts_compacted += np;
			}
			dd_lake_parts_free(parts, np);
			continue;
		}
		struct dd_lake_cstats cs;
		if (dd_lake_compact_partition(o->lake, o->dataset, ps[i].day, NULL, &cs)) {
			rc = DD_EXIT_IO;
			break;
		}
		if (cs.rewritten) {
			st->partitions_compacted++;
			st->parts_compacted += cs.parts_in;
			st->parts_after += cs.parts_out;
			st->duplicates += cs.duplicates;
			st->conflicts_dropped += cs.conflicts;
			st->bytes += cs.bytes_out;
		}
	}
	dd_lake_partitions_free(ps, n);
	if (lock >= 0)
		close(lock);
	return rc;
}

/* ------------------------------------------------------------ verification */

/* The metadata file beside a part: DIR/_part-NAME.meta. */
static char *
meta_of(const char *part)
{
	const char *slash = strrchr(part, '/');
	size_t dir = slash ? (size_t)(slash - part) + 1 : 0;
	size_t base = strlen(part + dir) - (sizeof ".ndjson.zst" - 1);
	struct dd_buf b = { 0 };
	dd_buf_printf(&b, "%.*s_%.*s.meta", (int)dir, part, (int)base, part + dir);
	return b.p;
}

struct tcount {
	char *type;
	uint64_t n;
};

/* A later copy of an id in the partition whose bytes differ from the
 * first's (in part-name order, the order compaction keeps): counted and
 * told, not damage. */
static void
verify_conflict(const struct dd_archive_opts *o, struct dd_lake_idset *seen,
    const char *path, uint64_t no, const char *id, size_t idn, const char *l, size_t len,
    struct dd_archive_stats *st)
{
	uint64_t fp = dd_hash64(l, len), first;
	if (!dd_lake_idset_add(seen, id, idn, fp, &first) || first == fp)
		return;
	st->conflicts_found++;
	if (o->conflict) {
		struct dd_buf m = { 0 };
		dd_buf_printf(&m, "%s:%" PRIu64 ": id ", path, no);
		dd_buf_json_str(&m, id, idn);
		dd_buf_adds(&m, " has an earlier copy with other bytes");
		o->conflict(o->ctx, m.p);
		dd_buf_free(&m);
	}
}

/* Check one part; "what" gets the first fault, empty when sound. */
static void
verify_part(const struct dd_archive_opts *o, const char *path, int64_t day,
    struct dd_lake_idset *seen, struct dd_archive_stats *st, struct dd_buf *what)
{
	struct dd_lake_meta m;
	int hm = dd_lake_meta_load(path, &m);
	if (hm < 0) {
		dd_buf_printf(what, "%s", dd_errmsg());
		hm = 0;
	} else if (hm == 0) {
		char *mp = meta_of(path);
		if (access(mp, F_OK) == 0)
			dd_buf_printf(what, "%s: metadata does not describe its part"
			    " (size or checksum)", mp);
		free(mp);
	}
	/* Damage to the part itself is what to report: a metadata mismatch is
	 * only its symptom. */
	struct dd_lake_reader *r = dd_lake_reader_open(path);
	if (r == NULL) {
		dd_buf_reset(what);
		dd_buf_printf(what, "%s", dd_errmsg());
		dd_lake_meta_free(&m);
		return;
	}
	struct tcount *tc = NULL;
	size_t ntc = 0;
	struct dd_buf bid = { 0 }, bsub = { 0 }, btype = { 0 };
	uint64_t count = 0, raw = 0, no;
	int64_t mn = INT64_MAX, mx = INT64_MIN;
	const char *l;
	size_t len;
	int k;
	while ((k = dd_lake_reader_next(r, &l, &len, &no)) == 1) {
		count++;
		raw += len + 1;
		struct dd_env e;
		if (dd_env_scan(l, len, &e)) {
			if (!what->len)
				dd_buf_printf(what, "%s:%" PRIu64 ": not an event: %s", path, no,
				    dd_errmsg());
			continue;
		}
		if (dd_ms_to_days(e.time_ms) != day && !what->len)
			dd_buf_printf(what, "%s:%" PRIu64 ": an event of another day", path, no);
		if (e.time_ms < mn)
			mn = e.time_ms;
		if (e.time_ms > mx)
			mx = e.time_ms;
		size_t idn, subn;
		const char *id = dd_jstr_text(&e.id, &bid, &idn);
		verify_conflict(o, seen, path, no, id, idn, l, len, st);
		if (!hm)
			continue;
		if (!dd_lake_may_have_id(&m, id, idn) && !what->len)
			dd_buf_printf(what, "%s:%" PRIu64 ": id not in the metadata's id filter",
			    path, no);
		const char *sub = dd_jstr_text(&e.subject, &bsub, &subn);
		if (sub && !dd_lake_may_have_subject(&m, sub, subn) && !what->len)
			dd_buf_printf(what, "%s:%" PRIu64 ": subject not in the metadata's subject"
			    " filter", path, no);
		size_t t, typen;
		const char *type = dd_jstr_text(&e.type, &btype, &typen);
		for (t = 0; t < ntc; t++)
			if (strlen(tc[t].type) == typen && !memcmp(tc[t].type, type, typen))
				break;
		if (t == ntc) {
			tc = dd_realloc(tc, (ntc + 1) * sizeof *tc);
			tc[ntc].type = dd_strndup(type, typen);
			tc[ntc++].n = 0;
		}
		tc[t].n++;
	}
	if (k < 0) {
		dd_buf_reset(what);
		dd_buf_printf(what, "%s", dd_errmsg());
	}
	dd_lake_reader_close(r);
	if (k == 0 && hm && !what->len) {
		if (count != m.events || raw != m.raw_bytes)
			dd_buf_printf(what, "%s: holds %" PRIu64 " events (%" PRIu64 " bytes), its"
			    " metadata says %" PRIu64 " (%" PRIu64 " bytes)", path, count, raw,
			    m.events, m.raw_bytes);
		else if (count && (mn != m.min_ms || mx != m.max_ms))
			dd_buf_printf(what, "%s: times span %" PRId64 "..%" PRId64 " ms, its metadata"
			    " says %" PRId64 "..%" PRId64, path, mn, mx, m.min_ms, m.max_ms);
		else {
			/* Type counts: every type of the part in the metadata with
			 * its count, and no other. */
			int bad = ntc != m.ntypes;
			for (size_t t = 0; t < ntc && !bad; t++) {
				size_t j;
				for (j = 0; j < m.ntypes; j++)
					if (!strcmp(m.types[j].type, tc[t].type))
						break;
				bad = j == m.ntypes || m.types[j].n != tc[t].n;
			}
			if (bad)
				dd_buf_printf(what, "%s: event types differ from its metadata's", path);
		}
	}
	st->events_verified += count;
	for (size_t t = 0; t < ntc; t++)
		free(tc[t].type);
	free(tc);
	dd_buf_free(&bid);
	dd_buf_free(&bsub);
	dd_buf_free(&btype);
	dd_lake_meta_free(&m);
}

int
dd_archive_verify(const struct dd_archive_opts *o, struct dd_archive_stats *st)
{
	struct dd_lake_partition *ps;
	size_t n;
	if (dd_lake_partitions(o->lake, o->dataset, DD_LAKE_MIN_MS, DD_LAKE_MAX_MS, &ps, &n))
		return DD_EXIT_IO;
	int rc = 0;
	struct dd_buf what = { 0 };
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct dd_lake_part *parts;
		size_t np;
		if (dd_lake_parts(ps[i].path, &parts, &np)) {
			rc = DD_EXIT_IO;
			break;
		}
		struct dd_lake_idset *seen = dd_lake_idset_new();
		for (size_t j = 0; j < np; j++) {
			if (dd_signalled) {
				rc = 128 + dd_signalled;
				break;
			}
			struct stat sb;
			if (stat(parts[j].path, &sb) < 0 && errno == ENOENT)
				continue;	/* compacted away meanwhile */
			dd_buf_reset(&what);
			verify_part(o, parts[j].path, ps[i].day, seen, st, &what);
			st->parts_verified++;
			if (what.len) {
				st->parts_damaged++;
				if (o->damage)
					o->damage(o->ctx, what.p);
			}
		}
		dd_lake_idset_free(seen);
		dd_lake_parts_free(parts, np);
	}
	dd_buf_free(&what);
	dd_lake_partitions_free(ps, n);
	return rc;
}
