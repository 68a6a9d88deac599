/*
 * Reading parts: one partition at a time is turned into a stream of frames
 * (records, a count, counts by key, errors), either consumed at once (one
 * process) or sent by a worker process through a pipe to the parent,
 * which consumes the frames of partition i before those of partition i+1:
 * the output is in date order whatever -j. Workers are processes, not
 * threads, because libjq is not thread-safe.
 *
 * Inside a part a line that contains none of the wanted strings (and no
 * backslash, which could hide one behind an escape) is dropped before any
 * JSON scan; duplicates are dropped by id within a partition.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "ddtime.h"
#include "exitcodes.h"
#include "jqf.h"
#include "json.h"
#include "query-int.h"

/* Worker output buffered before a write to the pipe. */
#define PIPE_CHUNK (256u << 10)
/* Frames of later partitions the parent keeps before it reads only the
 * worker of the partition it is writing (bounded memory). */
#define PENDING_MAX ((size_t)32 << 20)

/* ------------------------------------------------------ ids seen */

static void
idset_free(struct idset *s)
{
	free(s->v);
	dd_buf_free(&s->arena);
	memset(s, 0, sizeof *s);
}

/* 1 when id was not there (and is now), 0 when it was. */
static int
idset_add(struct idset *s, const char *id, size_t len)
{
	uint64_t h = dd_hash64(id, len);
	if ((s->n + 1) * 4 > s->cap * 3) {
		struct idset old = *s;
		s->cap = old.cap ? old.cap * 2 : 4096;
		s->v = dd_calloc(s->cap, sizeof *s->v);
		for (size_t i = 0; i < old.cap; i++) {
			if (!old.v[i].off)
				continue;
			size_t j = (size_t)dd_slot(old.v[i].h) & (s->cap - 1);
			while (s->v[j].off)
				j = (j + 1) & (s->cap - 1);
			s->v[j] = old.v[i];
		}
		free(old.v);
		if (s->arena.len == 0)
			dd_buf_addc(&s->arena, 0);
	}
	size_t mask = s->cap - 1, i = (size_t)dd_slot(h) & mask;
	for (; s->v[i].off; i = (i + 1) & mask) {
		const unsigned char *k = (const unsigned char *)s->arena.p + s->v[i].off;
		if (s->v[i].h == h && k[0] == len && memcmp(k + 1, id, len) == 0)
			return 0;
	}
	s->v[i].h = h;
	s->v[i].off = s->arena.len;
	dd_buf_addc(&s->arena, (char)len);
	dd_buf_add(&s->arena, id, len);
	s->n++;
	return 1;
}

/* ------------------------------------------------------- frames */

/* Write the buffered frames to the parent; a worker whose parent has gone
 * (--limit reached, stdout closed) just stops. */
static void
eng_flush(struct eng *e)
{
	const char *p = e->out.p;
	size_t n = e->out.len;
	while (n > 0) {
		ssize_t w = write(e->fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			e->stop = 1;
			break;
		}
		p += w;
		n -= (size_t)w;
	}
	dd_buf_reset(&e->out);
}

void
eng_frame(struct eng *e, uint32_t type, const void *p, size_t n)
{
	if (e->fd < 0) {
		if (type != F_BEGIN && type != F_END)
			out_consume(e->q, type, p, n);
		if (e->q->stop)
			e->stop = 1;
		return;
	}
	put32(&e->out, type);
	put32(&e->out, e->part);
	put32(&e->out, (uint32_t)n);
	dd_buf_add(&e->out, p, n);
	if (e->out.len >= PIPE_CHUNK || type == F_END)
		eng_flush(e);
}

/* One record of a partition being sorted: its time and its bytes in rec. */
struct srec {
	int64_t t;
	size_t off, len;
};

static int
cmp_srec(const void *a, const void *b)
{
	const struct srec *x = a, *y = b;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return (x->off > y->off) - (x->off < y->off);	/* stable: as read */
}

/* The records of a sorted partition in time order, as frames of whole
 * records. */
static void
sort_flush(struct eng *e)
{
	struct srec *v = (struct srec *)(void *)e->order.p;
	size_t n = e->order.len / sizeof *v;
	if (n)
		qsort(v, n, sizeof *v, cmp_srec);
	struct dd_buf out = { 0 };
	for (size_t i = 0; i < n; i++) {
		dd_buf_add(&out, e->rec.p + v[i].off, v[i].len);
		if (out.len >= REC_FRAME || i + 1 == n) {
			eng_frame(e, F_REC, out.p, out.len);
			dd_buf_reset(&out);
		}
	}
	dd_buf_free(&out);
	dd_buf_reset(&e->rec);
	dd_buf_reset(&e->order);
}

void
eng_flush_rec(struct eng *e)
{
	if (e->sorting)
		return;		/* the whole partition, at its end */
	if (e->rec.len) {
		eng_frame(e, F_REC, e->rec.p, e->rec.len);
		dd_buf_reset(&e->rec);
	}
}

static void
eng_report(struct eng *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A diagnostic, in order with the records around it. */
static void
eng_report(struct eng *e, int code, const char *fmt, ...)
{
	struct dd_buf b = { 0 };
	va_list ap;
	eng_flush_rec(e);
	dd_buf_addc(&b, (char)code);
	va_start(ap, fmt);
	char tmp[2048];
	vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	dd_buf_adds(&b, tmp);
	eng_frame(e, F_ERR, b.p, b.len);
	dd_buf_free(&b);
}

static void
eng_cell(struct eng *e, const char *p, size_t n)
{
	put32(&e->rec, (uint32_t)n);
	dd_buf_add(&e->rec, p, n);
}

/* ------------------------------------------------------ results */

/* Look a field up in a result: "" is the result itself. */
static int
field(const struct dd_jval *res, const char *path, struct dd_jval *out)
{
	if (*path == '\0') {
		*out = *res;
		return 1;
	}
	return dd_json_path(res, path, out);
}

/* A field of a result that is the event itself: an envelope attribute
 * (and the paths under data) straight from the scan, anything else by a
 * walk over the line. */
int
event_field(const struct eng *e, const struct dd_jval *res, int same, const char *path,
    struct dd_jval *out)
{
	if (same && e->env && *path) {
		int r = dd_env_path(e->env, path, out);
		if (r >= 0)
			return r;
	}
	return field(res, path, out);
}

/* The JSON text of a value as found (strings with their quotes). */
static void
raw_json(const struct dd_jval *v, struct dd_buf *b)
{
	if (v->type == DD_JSTR) {
		dd_buf_addc(b, '"');
		dd_buf_add(b, v->p, v->n);
		dd_buf_addc(b, '"');
	} else {
		dd_buf_add(b, v->p, v->n);
	}
}

/* One result (an event, or an output of the jq program). */
static int
result(void *ctx, const char *text, size_t n, int same)
{
	struct eng *e = ctx;
	struct dd_query *q = e->q;
	if (q->mode == M_COUNT) {
		e->count++;
		return 0;
	}
	struct dd_jval res = same && e->env ? e->env->whole : dd_json_value(text, n), v;
	if (q->mode == M_AGG) {
		agg_result(e, &res, same);
		return 0;
	}
	size_t start = e->rec.len;
	if (q->npaths == 0) {
		eng_cell(e, text, n);
	} else if (q->o.fmt == DD_FMT_NDJSON) {
		/* --fields in NDJSON: an object of the paths asked for. */
		dd_buf_reset(&e->cells);
		dd_buf_addc(&e->cells, '{');
		for (int i = 0; i < q->npaths; i++) {
			if (i)
				dd_buf_addc(&e->cells, ',');
			dd_buf_json_str(&e->cells, q->colnames[i], strlen(q->colnames[i]));
			dd_buf_addc(&e->cells, ':');
			if (q->kkind[i]) {
				dd_buf_reset(&e->tmp);
				time_bucket(q->kkind[i], e->time_ms, &e->tmp);
				if (bucket_is_number(q->kkind[i]))
					dd_buf_add(&e->cells, e->tmp.p, e->tmp.len);
				else
					dd_buf_json_str(&e->cells, e->tmp.p, e->tmp.len);
			} else if (event_field(e, &res, same, q->paths[i], &v)) {
				raw_json(&v, &e->cells);
			} else {
				dd_buf_adds(&e->cells, "null");
			}
		}
		dd_buf_addc(&e->cells, '}');
		eng_cell(e, e->cells.p, e->cells.len);
	} else {
		for (int i = 0; i < q->npaths; i++) {
			dd_buf_reset(&e->cells);
			if (q->kkind[i])
				time_bucket(q->kkind[i], e->time_ms, &e->cells);
			else if (event_field(e, &res, same, q->paths[i], &v))
				dd_jval_text(&v, &e->cells);
			eng_cell(e, e->cells.p ? e->cells.p : "", e->cells.len);
		}
	}
	if (e->sorting) {
		/* Kept to the end of the partition, which may hold earlier
		 * events still: --limit cuts after the sort, in the parent. */
		struct srec r = { e->time_ms, start, e->rec.len - start };
		dd_buf_add(&e->order, &r, sizeof r);
		return e->stop;
	}
	if (e->rec.len >= REC_FRAME)
		eng_flush_rec(e);
	if (++e->produced == q->o.limit || e->stop) {
		e->stop = 1;
		return 1;
	}
	return 0;
}

/* Does h[0..n) contain nd[0..m)? The candidates are where both its first
 * and its last byte are, sixteen positions a step (SSE2), each then
 * compared whole: on lines of a few hundred bytes this costs a third of
 * glibc's memmem, whose general algorithm has more to set up. */
static int
has_str(const char *h, size_t n, const char *nd, size_t m)
{
	if (m == 0)
		return 1;
	if (m > n)
		return 0;
	if (m == 1)
		return memchr(h, nd[0], n) != NULL;
	size_t i = 0;
#ifdef __SSE2__
	const __m128i first = _mm_set1_epi8(nd[0]), last = _mm_set1_epi8(nd[m - 1]);
	for (; i + m - 1 + 16 <= n; i += 16) {
		__m128i a = _mm_loadu_si128((const __m128i *)(const void *)(h + i));
		__m128i b = _mm_loadu_si128((const __m128i *)(const void *)(h + i + m - 1));
		unsigned mask = (unsigned)_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, first),
		    _mm_cmpeq_epi8(b, last)));
		for (; mask; mask &= mask - 1)
			if (memcmp(h + i + __builtin_ctz(mask) + 1, nd + 1, m - 2) == 0)
				return 1;
	}
#endif
	for (; i + m <= n; i++)
		if (h[i] == nd[0] && h[i + m - 1] == nd[m - 1] && memcmp(h + i + 1, nd + 1, m - 2) == 0)
			return 1;
	return 0;
}

/* Could the line hold one of the wanted strings? Without a backslash,
 * JSON writes a string's bytes as they are, so a line that does not
 * contain them cannot match. */
static int
may_match(const char *line, size_t n, const char *const *want, int nwant, int *bs)
{
	if (nwant == 0)
		return 1;
	for (int i = 0; i < nwant; i++)
		if (has_str(line, n, want[i], strlen(want[i])))
			return 1;
	if (*bs < 0)
		*bs = memchr(line, '\\', n) != NULL;
	return *bs;
}

static int
str_in(const struct dd_jval *v, const char *const *want, int nwant)
{
	for (int i = 0; i < nwant; i++)
		if (dd_jstr_eq(v, want[i], strlen(want[i])))
			return 1;
	return 0;
}

static void
scan_part(struct eng *e, const struct dd_lake_part *pt, int64_t day)
{
	struct dd_query *q = e->q;
	const struct dd_query_opts *o = &q->o;
	struct dd_lake_reader *r = dd_lake_reader_open_part(pt);
	if (r == NULL) {
		eng_report(e, DD_EXIT_REJECTED, "%s", dd_errmsg());
		return;
	}
	/* Results need no envelope when nothing is selected inside the part
	 * and its metadata (or the absence of bounds) vouches for the time. */
	int covered = (o->since_ms == DD_LAKE_MIN_MS && o->until_ms == DD_LAKE_MAX_MS) ||
	    (pt->has_meta && pt->meta.min_ms >= o->since_ms && pt->meta.max_ms < o->until_ms);
	int raw = q->raw_ok && !e->dedupe && covered;
	/* Lines checked as events when stored: their structure is enough. */
	int stored = dd_lake_part_stored(pt);
	const char *line;
	size_t len;
	uint64_t lineno;
	int rc = 0;
	struct dd_env env;
	e->time_ms = day * DAY_MS;
	while (!e->stop && (rc = dd_lake_reader_next(r, &line, &len, &lineno)) == 1) {
		int bs = -1;
		if (!may_match(line, len, o->types, o->ntypes, &bs) ||
		    !may_match(line, len, o->subjects, o->nsubjects, &bs) ||
		    !may_match(line, len, o->ids, o->nids, &bs))
			continue;
		e->env = NULL;
		if (!raw) {
			if (stored ? dd_env_scan_stored(line, len, &env) : dd_env_scan(line, len, &env)) {
				eng_report(e, DD_EXIT_REJECTED, "%s:%" PRIu64 ": bad event: %s",
				    pt->path, lineno, dd_errmsg());
				continue;
			}
			if (env.time_ms < o->since_ms || env.time_ms >= o->until_ms)
				continue;
			if (o->ntypes && !str_in(&env.type, o->types, o->ntypes))
				continue;
			if (o->nsubjects && !str_in(&env.subject, o->subjects, o->nsubjects))
				continue;
			if (o->nids && !str_in(&env.id, o->ids, o->nids))
				continue;
			e->time_ms = env.time_ms;
			if (e->dedupe) {
				const char *id = env.id.p;
				size_t idn = env.id.n;
				if (env.id.esc) {
					dd_buf_reset(&e->tmp);
					dd_jstr_decode(&env.id, &e->tmp);
					id = e->tmp.p;
					idn = e->tmp.len;
				}
				if (idn > 255)
					idn = 255;	/* cannot be: dd_env_scan caps ids */
				if (!idset_add(&e->seen, id, idn))
					continue;
			}
			/* A key written with an escape could repeat an attribute
			 * (jq keeps the last), which the scan does not see: such
			 * a line is looked up by a walk over it. */
			if (bs < 0)
				bs = memchr(line, '\\', len) != NULL;
			if (!bs)
				e->env = &env;
		}
		if (q->jq == NULL) {
			result(e, line, len, 1);
			continue;
		}
		if (dd_jqf_run_event(q->jq, e->env, line, len, result, e) < 0)
			eng_report(e, DD_EXIT_REJECTED, "%s:%" PRIu64 ": %s", pt->path, lineno,
			    dd_errmsg());
	}
	e->env = NULL;
	if (!e->stop && rc < 0)
		eng_report(e, DD_EXIT_REJECTED, "%s", dd_errmsg());
	dd_lake_reader_close(r);
}

/* --partitions: one row, every part decoded to find the damaged ones. */
static void
list_partition(struct eng *e, const struct dd_lake_partition *p,
    struct dd_lake_part *pts, size_t n)
{
	struct dd_query *q = e->q;
	uint64_t events = 0, bytes = 0;
	int64_t lo = INT64_MAX, hi = INT64_MIN;
	struct dd_buf damaged = { 0 }, row = { 0 };
	for (size_t i = 0; i < n; i++) {
		const struct dd_lake_part *pt = &pts[i];
		bytes += pt->bytes;
		struct dd_lake_reader *r = dd_lake_reader_open_part(pt);
		uint64_t lines = 0, lineno;
		int rc = -1;
		if (r) {
			const char *line;
			size_t len;
			struct dd_env env;
			while ((rc = dd_lake_reader_next(r, &line, &len, &lineno)) == 1) {
				lines++;
				/* Without metadata the times come from the events. */
				if (!pt->has_meta && dd_env_scan(line, len, &env) == 0) {
					if (env.time_ms < lo)
						lo = env.time_ms;
					if (env.time_ms > hi)
						hi = env.time_ms;
				}
			}
			dd_lake_reader_close(r);
		}
		if (rc == 0 && pt->has_meta && lines != pt->meta.events) {
			dd_seterr("%s: %" PRIu64 " lines, but its metadata says %" PRIu64,
			    pt->path, lines, pt->meta.events);
			rc = -1;
		}
		if (rc < 0) {
			eng_report(e, DD_EXIT_REJECTED, "%s", dd_errmsg());
			if (damaged.len)
				dd_buf_addc(&damaged, ' ');
			dd_buf_adds(&damaged, pt->name);
		}
		if (pt->has_meta && pt->meta.events) {
			if (pt->meta.min_ms < lo)
				lo = pt->meta.min_ms;
			if (pt->meta.max_ms > hi)
				hi = pt->meta.max_ms;
		}
		events += lines;
	}
	char date[DD_TIMEBUF], tlo[DD_TIMEBUF] = "", thi[DD_TIMEBUF] = "";
	dd_time_format(p->day * DAY_MS, date);
	date[10] = '\0';
	if (lo <= hi) {
		dd_time_format(lo, tlo);
		dd_time_format(hi, thi);
	}
	if (q->o.fmt == DD_FMT_NDJSON) {
		dd_buf_adds(&row, "{\"dataset\":");
		dd_buf_json_str(&row, q->o.dataset, strlen(q->o.dataset));
		dd_buf_printf(&row, ",\"date\":\"%s\",\"parts\":%zu,\"events\":%" PRIu64
		    ",\"bytes\":%" PRIu64 ",\"minTime\":", date, n, events, bytes);
		if (*tlo)
			dd_buf_printf(&row, "\"%s\",\"maxTime\":\"%s\"", tlo, thi);
		else
			dd_buf_adds(&row, "null,\"maxTime\":null");
		dd_buf_adds(&row, ",\"damaged\":[");
		const char *s = damaged.p;
		for (size_t k = 0; s && *s; k++) {
			const char *sp = strchr(s, ' ');
			size_t m = sp ? (size_t)(sp - s) : strlen(s);
			if (k)
				dd_buf_addc(&row, ',');
			dd_buf_json_str(&row, s, m);
			s += m + (sp != NULL);
		}
		dd_buf_adds(&row, "]}");
		eng_cell(e, row.p, row.len);
	} else {
		char num[3][32];
		snprintf(num[0], sizeof num[0], "%zu", n);
		snprintf(num[1], sizeof num[1], "%" PRIu64, events);
		snprintf(num[2], sizeof num[2], "%" PRIu64, bytes);
		eng_cell(e, q->o.dataset, strlen(q->o.dataset));
		eng_cell(e, date, strlen(date));
		for (int k = 0; k < 3; k++)
			eng_cell(e, num[k], strlen(num[k]));
		eng_cell(e, tlo, strlen(tlo));
		eng_cell(e, thi, strlen(thi));
		eng_cell(e, damaged.p ? damaged.p : "", damaged.len);
	}
	dd_buf_free(&damaged);
	dd_buf_free(&row);
}

void
do_partition(struct eng *e, size_t idx)
{
	struct dd_query *q = e->q;
	const struct dd_lake_partition *p = &q->parts[idx];
	struct dd_lake_part *pts = NULL;
	size_t n = 0;
	e->part = (uint32_t)idx;
	eng_frame(e, F_BEGIN, NULL, 0);
	if (dd_lake_parts(p->path, &pts, &n)) {
		e->untyped = 1;
		eng_report(e, DD_EXIT_IO, "%s", dd_errmsg());
		goto end;
	}
	if (q->mode == M_PARTITIONS) {
		if (n > 0)
			list_partition(e, p, pts, n);
		goto end;
	}
	/* Where the writers vouch that no id is twice in the partition,
	 * de-duplication has nothing to do: counts may come from metadata
	 * and the events go without an id set. */
	e->dedupe = q->o.dedupe && !dd_lake_partition_unique(pts, n);
	/* The events of a subject or an id: few, so sorted by time here
	 * whatever order the parts hold them in. */
	e->sorting = q->mode == M_RECORDS && (q->o.nsubjects || q->o.nids);
	for (size_t i = 0; i < n && !e->stop; i++) {
		const struct dd_lake_part *pt = &pts[i];
		if (q->o.ntypes)
			note_types(e, pt);
		if (pt->has_meta) {
			if (meta_excludes(q, &pt->meta))
				continue;
			if (q->meta_counts && !e->dedupe && meta_count(e, &pt->meta))
				continue;
		}
		scan_part(e, pt, p->day);
	}
end:
	if (e->sorting)
		sort_flush(e);
	e->sorting = 0;
	idset_free(&e->seen);	/* duplicates are looked for within a partition */
	send_counts(e);
	if (q->o.ntypes)
		send_types(e);
	eng_flush_rec(e);
	eng_frame(e, F_END, NULL, 0);
	dd_lake_parts_free(pts, n);
}

void
eng_free(struct eng *e)
{
	dd_buf_free(&e->out);
	dd_buf_free(&e->rec);
	dd_buf_free(&e->order);
	dd_buf_free(&e->tmp);
	dd_buf_free(&e->key);
	dd_buf_free(&e->cells);
	groups_free(&e->groups);
	sset_free(&e->types);
	idset_free(&e->seen);
}

/* ------------------------------------------------------ workers */

struct worker {
	pid_t pid;
	int fd;
	int alive;
	int64_t last;		/* the partition it last began, -1 none */
	struct dd_buf in;	/* bytes read, not yet a whole frame */
};

static void
worker_main(struct dd_query *q, int fd, uint64_t *next)
{
	struct eng e = { .q = q, .fd = fd, .groups.naggs = q->naggs };
	signal(SIGPIPE, SIG_IGN);
	while (!e.stop) {
		uint64_t i = __atomic_fetch_add(next, 1, __ATOMIC_SEQ_CST);
		if (i >= q->nparts)
			break;
		do_partition(&e, (size_t)i);
	}
	eng_flush(&e);
	eng_free(&e);
	close(fd);
	/* Everything the parent owns is freed too, so leak checkers see a
	 * clean exit in the worker. */
	dd_query_free(q);
	fflush(stderr);
	exit(0);
}

struct pend {
	struct dd_buf buf;	/* whole frames, in order */
	int done;
};

/* A frame of partition part arrived. */
static void
route(struct dd_query *q, struct pend *pend, size_t *cur, size_t *pending,
    uint32_t type, uint32_t part, const char *p, size_t n)
{
	if (part == *cur) {
		if (type == F_END)
			pend[part].done = 1;
		else if (type != F_BEGIN)
			out_consume(q, type, p, n);
	} else if (part > *cur && part < q->nparts) {
		struct dd_buf *b = &pend[part].buf;
		/* Whole: every frame of it is in b, replayed when its turn comes. */
		if (type == F_END)
			pend[part].done = 1;
		put32(b, type);
		put32(b, part);
		put32(b, (uint32_t)n);
		dd_buf_add(b, p, n);
		*pending += HDR + n;
	}
	/* Move on past finished partitions, replaying what they left. */
	while (*cur < q->nparts && pend[*cur].done && !q->stop) {
		(*cur)++;
		if (*cur >= q->nparts)
			break;
		struct pend *np = &pend[*cur];
		const char *s = np->buf.p, *e = s + np->buf.len;
		while (s < e && !q->stop) {
			uint32_t t = get32(s), len = get32(s + 8);
			if (t == F_END)
				np->done = 1;
			else if (t != F_BEGIN)
				out_consume(q, t, s + HDR, len);
			s += HDR + len;
		}
		*pending -= np->buf.len;
		dd_buf_free(&np->buf);
	}
}

int
run_workers(struct dd_query *q, int nw)
{
	uint64_t *next = mmap(NULL, sizeof *next, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (next == MAP_FAILED) {
		dd_seterr("mmap: %s", strerror(errno));
		return DD_EXIT_IO;
	}
	*next = 0;
	struct worker *w = dd_calloc((size_t)nw, sizeof *w);
	struct pend *pend = dd_calloc(q->nparts, sizeof *pend);
	int rc = DD_EXIT_OK, started = 0;
	fflush(q->out);
	fflush(stderr);
	for (int i = 0; i < nw; i++) {
		int fds[2];
		if (pipe2(fds, O_CLOEXEC)) {
			dd_seterr("pipe: %s", strerror(errno));
			rc = DD_EXIT_IO;
			break;
		}
		pid_t pid = fork();
		if (pid < 0) {
			dd_seterr("fork: %s", strerror(errno));
			close(fds[0]);
			close(fds[1]);
			rc = DD_EXIT_IO;
			break;
		}
		if (pid == 0) {
			close(fds[0]);
			for (int k = 0; k < i; k++)
				close(w[k].fd);
			free(w);
			free(pend);
			worker_main(q, fds[1], next);
		}
		close(fds[1]);
		/* Bigger pipes: fewer wake-ups (best effort). */
		fcntl(fds[0], F_SETPIPE_SZ, 1 << 20);
		w[i] = (struct worker){ .pid = pid, .fd = fds[0], .alive = 1, .last = -1 };
		started++;
	}
	start_output(q);
	size_t cur = 0, pending = 0;
	struct pollfd *pfd = dd_calloc((size_t)started, sizeof *pfd);
	int *who = dd_calloc((size_t)started, sizeof *who);
	char *buf = dd_malloc(PIPE_CHUNK);
	while (rc == DD_EXIT_OK && cur < q->nparts && !q->stop) {
		int np = 0;
		for (int i = 0; i < started; i++) {
			if (!w[i].alive)
				continue;
			/* Past the memory bound, read only the worker that may
			 * hold the partition being written. */
			if (pending > PENDING_MAX && w[i].last > (int64_t)cur)
				continue;
			pfd[np] = (struct pollfd){ .fd = w[i].fd, .events = POLLIN };
			who[np++] = i;
		}
		if (np == 0) {
			dd_seterr("workers ended before partition %zu", cur);
			rc = DD_EXIT_IO;
			break;
		}
		if (poll(pfd, (nfds_t)np, -1) < 0) {
			if (errno == EINTR)
				continue;
			dd_seterr("poll: %s", strerror(errno));
			rc = DD_EXIT_IO;
			break;
		}
		for (int k = 0; k < np && !q->stop; k++) {
			if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			struct worker *wk = &w[who[k]];
			ssize_t got = read(wk->fd, buf, PIPE_CHUNK);
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				wk->alive = 0;
				if (wk->in.len || (wk->last >= (int64_t)cur && wk->last >= 0 &&
				    !pend[wk->last].done)) {
					dd_seterr("a worker process died while reading %s",
					    q->parts[wk->last < 0 ? 0 : wk->last].path);
					rc = DD_EXIT_IO;
				}
				continue;
			}
			dd_buf_add(&wk->in, buf, (size_t)got);
			const char *s = wk->in.p, *e = s + wk->in.len;
			while (e - s >= HDR && !q->stop) {
				uint32_t t = get32(s), part = get32(s + 4), len = get32(s + 8);
				if ((size_t)(e - s) < HDR + (size_t)len)
					break;
				if (t == F_BEGIN)
					wk->last = part;
				route(q, pend, &cur, &pending, t, part, s + HDR, len);
				s += HDR + len;
			}
			size_t left = (size_t)(e - s);
			memmove(wk->in.p, s, left);
			wk->in.len = left;
		}
	}
	/* Stop the workers still busy (--limit, a write error), then reap. */
	for (int i = 0; i < started; i++) {
		if (q->stop || rc != DD_EXIT_OK)
			kill(w[i].pid, SIGTERM);
		close(w[i].fd);
	}
	for (int i = 0; i < started; i++) {
		int st;
		while (waitpid(w[i].pid, &st, 0) < 0 && errno == EINTR)
			;
		int killed = WIFSIGNALED(st) && (WTERMSIG(st) == SIGTERM || WTERMSIG(st) == SIGPIPE);
		if ((WIFEXITED(st) && WEXITSTATUS(st) != 0) ||
		    (WIFSIGNALED(st) && !(killed && (q->stop || rc != DD_EXIT_OK)))) {
			if (rc == DD_EXIT_OK) {
				dd_seterr("worker %d %s %d", (int)w[i].pid,
				    WIFEXITED(st) ? "exited with status" : "killed by signal",
				    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
				rc = DD_EXIT_IO;
			}
		}
		dd_buf_free(&w[i].in);
	}
	for (size_t i = 0; i < q->nparts; i++)
		dd_buf_free(&pend[i].buf);
	free(pend);
	free(pfd);
	free(who);
	free(buf);
	free(w);
	munmap(next, sizeof *next);
	return rc;
}
