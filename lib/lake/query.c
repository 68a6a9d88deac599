/*
 * The engine of dd-lake-query(1). One partition at a time is turned into
 * a stream of frames (records, a count, counts by key, errors), either
 * consumed at once (one process) or sent by a worker process through a
 * pipe to the parent, which consumes the frames of partition i before
 * those of partition i+1: the output is in date order whatever -j.
 *
 * Pruning, cheapest first: partitions outside the time range are never
 * listed (dd_lake_partitions); parts whose metadata excludes the time,
 * a --type, every --id or every --subject are never opened; inside a part
 * a line that contains none of the wanted strings (and no backslash, which
 * could hide one behind an escape) is dropped before any JSON scan.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ddtime.h"
#include "event.h"
#include "exitcodes.h"
#include "jqf.h"
#include "json.h"
#include "lake.h"
#include "query.h"
#include "util.h"

#define DAY_MS 86400000LL
/* A REC frame is sent when its records reach this size. */
#define REC_FRAME (64u << 10)
/* Worker output buffered before a write to the pipe. */
#define PIPE_CHUNK (256u << 10)
/* Frames of later partitions the parent keeps before it reads only the
 * worker of the partition it is writing (bounded memory). */
#define PENDING_MAX ((size_t)32 << 20)

enum mode { M_RECORDS, M_COUNT, M_COUNTBY, M_PARTITIONS };
enum { F_BEGIN = 1, F_REC, F_ERR, F_COUNT, F_KEYS, F_END };
#define HDR 12		/* type, partition, length: three u32 */

/* ------------------------------------------------------ hashed sets */

/* Strings kept in an arena, found by hash: the ids seen in a partition
 * (de-duplication) and the keys of --count-by. */
struct sent {
	uint64_t h, n;		/* n: the count of a key */
	size_t off, len;
	int used;
};

struct sset {
	struct sent *v;
	size_t cap, n;
	struct dd_buf arena;
};

static void
sset_free(struct sset *s)
{
	free(s->v);
	dd_buf_free(&s->arena);
	memset(s, 0, sizeof *s);
}

static struct sent *
sset_find(struct sset *s, const char *p, size_t len, uint64_t h, int *added)
{
	if ((s->n + 1) * 4 > s->cap * 3) {
		struct sset old = *s;
		s->cap = old.cap ? old.cap * 2 : 1024;
		s->v = dd_calloc(s->cap, sizeof *s->v);
		for (size_t i = 0; i < old.cap; i++) {
			if (!old.v[i].used)
				continue;
			size_t j = (size_t)old.v[i].h & (s->cap - 1);
			while (s->v[j].used)
				j = (j + 1) & (s->cap - 1);
			s->v[j] = old.v[i];
		}
		free(old.v);
	}
	size_t mask = s->cap - 1, i = (size_t)h & mask;
	for (; s->v[i].used; i = (i + 1) & mask) {
		struct sent *e = &s->v[i];
		if (e->h == h && e->len == len && memcmp(s->arena.p + e->off, p, len) == 0) {
			*added = 0;
			return e;
		}
	}
	struct sent *e = &s->v[i];
	e->used = 1;
	e->h = h;
	e->off = s->arena.len;
	e->len = len;
	e->n = 0;
	dd_buf_add(&s->arena, p, len);
	s->n++;
	*added = 1;
	return e;
}

/* The ids seen in a partition: 16 bytes a slot, the id bytes in an
 * arena behind a length byte (dd_env_scan allows ids of 1-128 bytes);
 * offset 0 marks an empty slot. */
struct idslot {
	uint64_t h;
	size_t off;
};

struct idset {
	struct idslot *v;
	size_t cap, n;
	struct dd_buf arena;
};

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
			size_t j = (size_t)old.v[i].h & (s->cap - 1);
			while (s->v[j].off)
				j = (j + 1) & (s->cap - 1);
			s->v[j] = old.v[i];
		}
		free(old.v);
		if (s->arena.len == 0)
			dd_buf_addc(&s->arena, 0);
	}
	size_t mask = s->cap - 1, i = (size_t)h & mask;
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

/* --------------------------------------------------------- the query */

struct dd_query {
	struct dd_query_opts o;
	enum mode mode;
	struct dd_jqf *jq;
	int raw_ok;		/* results need nothing from the envelope */
	int meta_counts;	/* counts may come from part metadata */
	int ncells;		/* cells per record */
	char **colnames;	/* record columns (tabular formats) */
	char **paths;		/* --fields or --count-by, leading '.' removed */
	int npaths;
	struct dd_lake_partition *parts;
	size_t nparts;

	/* The output side. */
	FILE *out;
	struct dd_out *tab;
	uint64_t emitted, total;
	struct sset keys;
	int rc;
	int stop;		/* --limit reached, or a write error */
	int ioerr;
};

/* What one process needs to turn partitions into frames. */
struct eng {
	struct dd_query *q;
	int fd;			/* pipe to the parent, -1 when in-process */
	struct dd_buf out;	/* frames not yet written to fd */
	struct dd_buf rec;	/* records of the REC frame being filled */
	uint32_t part;
	uint64_t produced;	/* records made (for --limit) */
	int stop;
	uint64_t count;		/* of the current partition */
	struct sset keys;	/* of the current partition */
	struct idset seen;	/* ids of the current partition */
	/* the event being handled */
	const struct dd_env *env;	/* its scan, when its attributes can be
					 * taken from it (see scan_part) */
	int64_t time_ms;
	struct dd_buf tmp, key, cells;
};

void
dd_query_defaults(struct dd_query_opts *o)
{
	memset(o, 0, sizeof *o);
	o->dataset = DD_LAKE_DATASET_DEFAULT;
	o->since_ms = DD_LAKE_MIN_MS;
	o->until_ms = DD_LAKE_MAX_MS;
	o->fmt = DD_FMT_NDJSON;
	o->dedupe = 1;
	o->jobs = 1;
	o->jq_fast = 1;
}

static int
is_bucket(const char *k)
{
	return strcmp(k, "@hour") == 0 || strcmp(k, "@day") == 0 || strcmp(k, "@month") == 0;
}

static int
path_ok(const char *p)
{
	if (p[0] == '@')
		return is_bucket(p);
	if (p[0] == '.')
		p++;
	if (*p == '\0')
		return 1;	/* "." : the result itself */
	/* No empty component: "a..b" and "a." name nothing. */
	for (const char *s = p; ; s++) {
		const char *dot = strchr(s, '.');
		if (dot == s || (dot == NULL && *s == '\0'))
			return 0;
		if (dot == NULL)
			return 1;
		s = dot;
	}
}

struct dd_query *
dd_query_new(const struct dd_query_opts *o)
{
	if (!dd_lake_dataset_ok(o->dataset))
		return NULL;
	if (o->since_ms >= o->until_ms) {
		dd_seterr("--since must be before --until");
		return NULL;
	}
	enum mode mode = o->partitions ? M_PARTITIONS : o->count ? M_COUNT :
	    o->ncount_by ? M_COUNTBY : M_RECORDS;
	if (o->count && o->ncount_by) {
		dd_seterr("--count and --count-by exclude each other");
		return NULL;
	}
	if (o->partitions && (o->count || o->ncount_by || o->filter || o->nfields ||
	    o->ntypes || o->nsubjects || o->nids || o->limit)) {
		dd_seterr("--partitions takes only --since, --until, --dataset and --format");
		return NULL;
	}
	if (o->fmt == DD_FMT_CHART && mode != M_COUNTBY) {
		dd_seterr("--format chart needs --count-by");
		return NULL;
	}
	if (mode == M_COUNT && o->fmt != DD_FMT_NDJSON) {
		dd_seterr("--count writes one number: --format does not apply");
		return NULL;
	}
	if ((mode == M_COUNT || mode == M_COUNTBY) && (o->nfields || o->limit)) {
		dd_seterr("--fields and --limit do not apply to --count or --count-by");
		return NULL;
	}
	const char *const *paths = mode == M_COUNTBY ? o->count_by : o->fields;
	int npaths = mode == M_COUNTBY ? o->ncount_by : o->nfields;
	for (int i = 0; i < npaths; i++)
		if (!path_ok(paths[i])) {
			dd_seterr("bad field \"%s\" (a dotted path such as data.battery, or "
			    "@hour, @day, @month)", paths[i]);
			return NULL;
		}

	struct dd_query *q = dd_calloc(1, sizeof *q);
	q->o = *o;
	q->mode = mode;
	if (o->filter) {
		q->jq = dd_jqf_new(o->filter, o->argnames, o->argvalues, o->nargs);
		if (q->jq == NULL) {
			free(q);
			return NULL;
		}
		dd_jqf_set_fast(q->jq, o->jq_fast);
	}
	static const char *const defcols[] = { "time", "type", "subject", "id" };
	if (mode == M_RECORDS && o->fmt != DD_FMT_NDJSON && npaths == 0) {
		paths = defcols;
		npaths = 4;
	}
	q->npaths = npaths;
	q->paths = dd_calloc((size_t)npaths + 1, sizeof *q->paths);
	q->colnames = dd_calloc((size_t)npaths + 9, sizeof *q->colnames);
	for (int i = 0; i < npaths; i++) {
		const char *p = paths[i];
		q->paths[i] = dd_strdup(p[0] == '.' ? p + 1 : p);
		q->colnames[i] = dd_strdup(p);
	}
	if (mode == M_PARTITIONS) {
		static const char *const pcols[] = { "dataset", "date", "parts", "events",
		    "bytes", "minTime", "maxTime", "damaged" };
		for (int i = 0; i < 8; i++)
			q->colnames[i] = dd_strdup(pcols[i]);
		q->ncells = o->fmt == DD_FMT_NDJSON ? 1 : 8;
	} else {
		q->ncells = o->fmt == DD_FMT_NDJSON ? 1 : npaths;
	}
	int buckets = 0;
	for (int i = 0; i < npaths; i++)
		buckets |= q->paths[i][0] == '@';
	q->raw_ok = !o->dedupe && !o->ntypes && !o->nsubjects && !o->nids && !buckets;
	/* Metadata counts are exact only without de-duplication: a part may
	 * hold an id twice (at two times) and two parts the same event, which
	 * no metadata rules out; so with de-duplication every event is read. */
	q->meta_counts = (mode == M_COUNT || mode == M_COUNTBY) && !o->dedupe &&
	    !o->nsubjects && !o->nids && (q->jq == NULL || dd_jqf_identity(q->jq));
	for (int i = 0; i < npaths && q->meta_counts; i++)
		q->meta_counts = strcmp(q->paths[i], "type") == 0 ||
		    strcmp(q->paths[i], "@day") == 0 || strcmp(q->paths[i], "@month") == 0;
	return q;
}

void
dd_query_free(struct dd_query *q)
{
	if (q == NULL)
		return;
	dd_jqf_free(q->jq);
	for (int i = 0; q->paths && q->paths[i]; i++)
		free(q->paths[i]);
	for (int i = 0; q->colnames && q->colnames[i]; i++)
		free(q->colnames[i]);
	free(q->paths);
	free(q->colnames);
	dd_lake_partitions_free(q->parts, q->nparts);
	sset_free(&q->keys);
	free(q);
}

/* ---------------------------------------------------- output side */

static uint32_t
get32(const char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t
get64(const char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static void
diag(struct dd_query *q, const char *msg)
{
	if (q->o.diag)
		q->o.diag(q->o.diag_ctx, msg);
	else
		dd_warn("%s", msg);
}

static void
check_out(struct dd_query *q)
{
	if (!q->ioerr && ferror(q->out)) {
		dd_seterr("stdout: %s", strerror(errno ? errno : EIO));
		q->ioerr = 1;
		q->stop = 1;
	}
}

/* The header row of tabular records, once the workers are forked (they
 * must not inherit it). */
static void
start_output(struct dd_query *q)
{
	if ((q->mode == M_RECORDS || q->mode == M_PARTITIONS) && q->o.fmt != DD_FMT_NDJSON)
		q->tab = dd_out_new(q->out, q->o.fmt, (const char *const *)q->colnames,
		    q->mode == M_PARTITIONS ? 8 : q->npaths);
}

/* One frame of the current partition, in order. */
static void
consume(struct dd_query *q, uint32_t type, const char *p, size_t n)
{
	const char *e = p + n;
	switch (type) {
	case F_REC:
		while (p < e && !q->stop) {
			for (int c = 0; c < q->ncells; c++) {
				uint32_t len = get32(p);
				p += 4;
				if (q->tab)
					dd_out_cell(q->tab, p, len);
				else
					fwrite(p, 1, len, q->out);
				p += len;
			}
			if (q->tab)
				dd_out_endrow(q->tab);
			else
				putc('\n', q->out);
			if (++q->emitted == q->o.limit)
				q->stop = 1;
		}
		check_out(q);
		break;
	case F_ERR:
		if (n > 0) {
			if (p[0] > q->rc)
				q->rc = p[0];
			char *msg = dd_strndup(p + 1, n - 1);
			/* Results before the message reach the output first, so
			 * 2>&1 shows each error where it happened. */
			fflush(q->out);
			diag(q, msg);
			free(msg);
		}
		break;
	case F_COUNT:
		q->total += get64(p);
		break;
	case F_KEYS:
		while (p < e) {
			uint32_t len = get32(p);
			const char *k = p + 4;
			uint64_t cnt = get64(k + len);
			int added;
			sset_find(&q->keys, k, len, dd_hash64(k, len), &added)->n += cnt;
			p = k + len + 8;
		}
		break;
	}
}

/* ----------------------------------------------------- engine side */

static void
put32(struct dd_buf *b, uint32_t v)
{
	dd_buf_add(b, &v, 4);
}

static void
put64(struct dd_buf *b, uint64_t v)
{
	dd_buf_add(b, &v, 8);
}

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

static void
frame(struct eng *e, uint32_t type, const void *p, size_t n)
{
	if (e->fd < 0) {
		if (type != F_BEGIN && type != F_END)
			consume(e->q, type, p, n);
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

static void
flush_rec(struct eng *e)
{
	if (e->rec.len) {
		frame(e, F_REC, e->rec.p, e->rec.len);
		dd_buf_reset(&e->rec);
	}
}

static void
report(struct eng *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A diagnostic, in order with the records around it. */
static void
report(struct eng *e, int code, const char *fmt, ...)
{
	struct dd_buf b = { 0 };
	va_list ap;
	flush_rec(e);
	dd_buf_addc(&b, (char)code);
	va_start(ap, fmt);
	char tmp[2048];
	vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	dd_buf_adds(&b, tmp);
	frame(e, F_ERR, b.p, b.len);
	dd_buf_free(&b);
}

static void
add_cell(struct eng *e, const char *p, size_t n)
{
	put32(&e->rec, (uint32_t)n);
	dd_buf_add(&e->rec, p, n);
}

/* The bucket of the event time: @hour 2026-11-26T03:00:00Z, @day 2026-11-26,
 * @month 2026-11. */
static void
bucket(const char *k, int64_t ms, struct dd_buf *b)
{
	char t[DD_TIMEBUF];
	dd_time_format(ms, t);
	if (strcmp(k, "@hour") == 0)
		dd_buf_printf(b, "%.13s:00:00Z", t);
	else if (strcmp(k, "@day") == 0)
		dd_buf_printf(b, "%.10s", t);
	else
		dd_buf_printf(b, "%.7s", t);
}

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
static int
event_field(const struct eng *e, const struct dd_jval *res, int same, const char *path,
    struct dd_jval *out)
{
	if (same && e->env && *path) {
		const char *dot = strchr(path, '.');
		size_t n = dot ? (size_t)(dot - path) : strlen(path);
		const struct dd_jval *a = dd_jqf_env_attr(e->env, path, n);
		if (a) {
			if (a->type == DD_JNONE)
				return 0;
			if (!dot) {
				*out = *a;
				return 1;
			}
			return dd_json_path(a, dot + 1, out);
		}
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

/* A count-by key part, as canonical JSON (strings re-encoded, so the same
 * string written with or without escapes is one key). */
static void
key_json(const struct dd_jval *v, struct dd_buf *b, struct dd_buf *tmp)
{
	if (v->type == DD_JSTR) {
		dd_buf_reset(tmp);
		dd_jstr_decode(v, tmp);
		dd_buf_json_str(b, tmp->p ? tmp->p : "", tmp->len);
	} else if (v->type == DD_JNONE) {
		dd_buf_adds(b, "null");
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
	if (q->mode == M_COUNTBY) {
		dd_buf_reset(&e->key);
		dd_buf_addc(&e->key, '[');
		for (int i = 0; i < q->npaths; i++) {
			if (i)
				dd_buf_addc(&e->key, ',');
			if (q->paths[i][0] == '@') {
				dd_buf_reset(&e->cells);
				bucket(q->paths[i], e->time_ms, &e->cells);
				dd_buf_json_str(&e->key, e->cells.p, e->cells.len);
			} else {
				if (!event_field(e, &res, same, q->paths[i], &v))
					v.type = DD_JNONE;
				key_json(&v, &e->key, &e->tmp);
			}
		}
		dd_buf_addc(&e->key, ']');
		int added;
		sset_find(&e->keys, e->key.p, e->key.len, dd_hash64(e->key.p, e->key.len),
		    &added)->n++;
		return 0;
	}
	if (q->npaths == 0) {
		add_cell(e, text, n);
	} else if (q->o.fmt == DD_FMT_NDJSON) {
		/* --fields in NDJSON: an object of the paths asked for. */
		dd_buf_reset(&e->cells);
		dd_buf_addc(&e->cells, '{');
		for (int i = 0; i < q->npaths; i++) {
			if (i)
				dd_buf_addc(&e->cells, ',');
			dd_buf_json_str(&e->cells, q->colnames[i], strlen(q->colnames[i]));
			dd_buf_addc(&e->cells, ':');
			if (q->paths[i][0] == '@') {
				dd_buf_reset(&e->tmp);
				bucket(q->paths[i], e->time_ms, &e->tmp);
				dd_buf_json_str(&e->cells, e->tmp.p, e->tmp.len);
			} else if (event_field(e, &res, same, q->paths[i], &v)) {
				raw_json(&v, &e->cells);
			} else {
				dd_buf_adds(&e->cells, "null");
			}
		}
		dd_buf_addc(&e->cells, '}');
		add_cell(e, e->cells.p, e->cells.len);
	} else {
		for (int i = 0; i < q->npaths; i++) {
			dd_buf_reset(&e->cells);
			if (q->paths[i][0] == '@')
				bucket(q->paths[i], e->time_ms, &e->cells);
			else if (event_field(e, &res, same, q->paths[i], &v))
				dd_jval_text(&v, &e->cells);
			add_cell(e, e->cells.p ? e->cells.p : "", e->cells.len);
		}
	}
	if (e->rec.len >= REC_FRAME)
		flush_rec(e);
	if (++e->produced == q->o.limit || e->stop) {
		e->stop = 1;
		return 1;
	}
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
		if (memmem(line, n, want[i], strlen(want[i])))
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

/* Does the metadata rule the part out? */
static int
meta_excludes(const struct dd_query *q, const struct dd_lake_meta *m)
{
	const struct dd_query_opts *o = &q->o;
	if (!dd_lake_may_have_time(m, o->since_ms, o->until_ms))
		return 1;
	if (o->ntypes) {
		int any = 0;
		for (size_t i = 0; i < m->ntypes && !any; i++)
			for (int j = 0; j < o->ntypes && !any; j++)
				any = m->types[i].n > 0 && strcmp(m->types[i].type, o->types[j]) == 0;
		if (!any)
			return 1;
	}
	if (o->nids) {
		int any = 0;
		for (int j = 0; j < o->nids && !any; j++)
			any = dd_lake_may_have_id(m, o->ids[j], strlen(o->ids[j]));
		if (!any)
			return 1;
	}
	if (o->nsubjects) {
		int any = 0;
		for (int j = 0; j < o->nsubjects && !any; j++)
			any = dd_lake_may_have_subject(m, o->subjects[j], strlen(o->subjects[j]));
		if (!any)
			return 1;
	}
	return 0;
}

static int
wanted_type(const struct dd_query *q, const char *t)
{
	if (q->o.ntypes == 0)
		return 1;
	for (int j = 0; j < q->o.ntypes; j++)
		if (strcmp(t, q->o.types[j]) == 0)
			return 1;
	return 0;
}

/* Answer a count from the part's metadata (no de-duplication asked, the
 * part wholly inside the range). 1 when done, 0 when it must be read. */
static int
meta_count(struct eng *e, const struct dd_lake_meta *m)
{
	struct dd_query *q = e->q;
	if (m->min_ms < q->o.since_ms || m->max_ms >= q->o.until_ms)
		return 0;
	for (int i = 0; i < q->npaths; i++) {
		/* A bucket must be one value for the whole part. */
		struct dd_buf a = { 0 }, b = { 0 };
		if (q->paths[i][0] != '@')
			continue;
		bucket(q->paths[i], m->min_ms, &a);
		bucket(q->paths[i], m->max_ms, &b);
		int one = strcmp(a.p, b.p) == 0;
		dd_buf_free(&a);
		dd_buf_free(&b);
		if (!one)
			return 0;
	}
	uint64_t sum = 0;
	if (q->o.ntypes == 0) {
		sum = m->events;
	} else {
		/* Each type once, even when asked twice. */
		for (size_t i = 0; i < m->ntypes; i++)
			if (wanted_type(q, m->types[i].type))
				sum += m->types[i].n;
	}
	if (q->mode == M_COUNT) {
		e->count += sum;
		return 1;
	}
	int bytype = 0;
	for (int i = 0; i < q->npaths; i++)
		bytype |= q->paths[i][0] != '@';
	if (bytype && m->ntypes == 0 && m->events > 0)
		return 0;	/* no per-type counts: read it */
	size_t rows = bytype ? m->ntypes : 1;
	for (size_t r = 0; r < rows; r++) {
		uint64_t n = sum;
		if (bytype) {
			if (!wanted_type(q, m->types[r].type))
				continue;
			n = m->types[r].n;
		}
		if (n == 0)
			continue;
		dd_buf_reset(&e->key);
		dd_buf_addc(&e->key, '[');
		for (int i = 0; i < q->npaths; i++) {
			if (i)
				dd_buf_addc(&e->key, ',');
			dd_buf_reset(&e->tmp);
			if (q->paths[i][0] == '@')
				bucket(q->paths[i], m->min_ms, &e->tmp);
			else
				dd_buf_adds(&e->tmp, m->types[r].type);
			dd_buf_json_str(&e->key, e->tmp.p, e->tmp.len);
		}
		dd_buf_addc(&e->key, ']');
		int added;
		sset_find(&e->keys, e->key.p, e->key.len, dd_hash64(e->key.p, e->key.len),
		    &added)->n += n;
	}
	return 1;
}

static void
scan_part(struct eng *e, const struct dd_lake_part *pt, int64_t day)
{
	struct dd_query *q = e->q;
	const struct dd_query_opts *o = &q->o;
	struct dd_lake_reader *r = dd_lake_reader_open(pt->path);
	if (r == NULL) {
		report(e, DD_EXIT_REJECTED, "%s", dd_errmsg());
		return;
	}
	/* Results need no envelope when nothing is selected inside the part
	 * and its metadata (or the absence of bounds) vouches for the time. */
	int covered = (o->since_ms == DD_LAKE_MIN_MS && o->until_ms == DD_LAKE_MAX_MS) ||
	    (pt->has_meta && pt->meta.min_ms >= o->since_ms && pt->meta.max_ms < o->until_ms);
	int raw = q->raw_ok && covered;
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
			if (dd_env_scan(line, len, &env)) {
				report(e, DD_EXIT_REJECTED, "%s:%" PRIu64 ": bad event: %s",
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
			if (o->dedupe) {
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
			report(e, DD_EXIT_REJECTED, "%s:%" PRIu64 ": %s", pt->path, lineno,
			    dd_errmsg());
	}
	e->env = NULL;
	if (!e->stop && rc < 0)
		report(e, DD_EXIT_REJECTED, "%s", dd_errmsg());
	dd_lake_reader_close(r);
}

static void
send_counts(struct eng *e)
{
	struct dd_query *q = e->q;
	flush_rec(e);
	if (q->mode == M_COUNT) {
		frame(e, F_COUNT, &e->count, 8);
		e->count = 0;
	} else if (q->mode == M_COUNTBY && e->keys.n) {
		struct dd_buf b = { 0 };
		for (size_t i = 0; i < e->keys.cap; i++) {
			const struct sent *k = &e->keys.v[i];
			if (!k->used)
				continue;
			put32(&b, (uint32_t)k->len);
			dd_buf_add(&b, e->keys.arena.p + k->off, k->len);
			put64(&b, k->n);
		}
		frame(e, F_KEYS, b.p, b.len);
		dd_buf_free(&b);
	}
	sset_free(&e->keys);
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
		struct dd_lake_reader *r = dd_lake_reader_open(pt->path);
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
			report(e, DD_EXIT_REJECTED, "%s", dd_errmsg());
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
		add_cell(e, row.p, row.len);
	} else {
		char num[3][32];
		snprintf(num[0], sizeof num[0], "%zu", n);
		snprintf(num[1], sizeof num[1], "%" PRIu64, events);
		snprintf(num[2], sizeof num[2], "%" PRIu64, bytes);
		add_cell(e, q->o.dataset, strlen(q->o.dataset));
		add_cell(e, date, strlen(date));
		for (int k = 0; k < 3; k++)
			add_cell(e, num[k], strlen(num[k]));
		add_cell(e, tlo, strlen(tlo));
		add_cell(e, thi, strlen(thi));
		add_cell(e, damaged.p ? damaged.p : "", damaged.len);
	}
	dd_buf_free(&damaged);
	dd_buf_free(&row);
}

static void
do_partition(struct eng *e, size_t idx)
{
	struct dd_query *q = e->q;
	const struct dd_lake_partition *p = &q->parts[idx];
	struct dd_lake_part *pts = NULL;
	size_t n = 0;
	e->part = (uint32_t)idx;
	frame(e, F_BEGIN, NULL, 0);
	if (dd_lake_parts(p->path, &pts, &n)) {
		report(e, DD_EXIT_IO, "%s", dd_errmsg());
		goto end;
	}
	if (q->mode == M_PARTITIONS) {
		if (n > 0)
			list_partition(e, p, pts, n);
		goto end;
	}
	for (size_t i = 0; i < n && !e->stop; i++) {
		const struct dd_lake_part *pt = &pts[i];
		if (pt->has_meta) {
			if (meta_excludes(q, &pt->meta))
				continue;
			if (q->meta_counts && meta_count(e, &pt->meta))
				continue;
		}
		scan_part(e, pt, p->day);
	}
end:
	idset_free(&e->seen);	/* duplicates are looked for within a partition */
	send_counts(e);
	flush_rec(e);
	frame(e, F_END, NULL, 0);
	dd_lake_parts_free(pts, n);
}

static void
eng_free(struct eng *e)
{
	dd_buf_free(&e->out);
	dd_buf_free(&e->rec);
	dd_buf_free(&e->tmp);
	dd_buf_free(&e->key);
	dd_buf_free(&e->cells);
	sset_free(&e->keys);
	idset_free(&e->seen);
}

/* --------------------------------------------------------- workers */

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
	struct eng e = { .q = q, .fd = fd };
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
			consume(q, type, p, n);
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
				consume(q, t, s + HDR, len);
			s += HDR + len;
		}
		*pending -= np->buf.len;
		dd_buf_free(&np->buf);
	}
}

static int
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

/* ---------------------------------------------------------- results */

/* jq's order of values (null < false < true < numbers < strings <
 * arrays < objects), for the rows of --count-by. */
static int
rank(const struct dd_jval *v)
{
	switch (v->type) {
	case DD_JNULL: case DD_JNONE: return 1;
	case DD_JFALSE: return 2;
	case DD_JTRUE: return 3;
	case DD_JNUM: return 4;
	case DD_JSTR: return 5;
	case DD_JARR: return 6;
	default: return 7;
	}
}

static int
cmp_val(const struct dd_jval *a, const struct dd_jval *b)
{
	int ra = rank(a), rb = rank(b);
	if (ra != rb)
		return ra - rb;
	if (ra == 4) {
		double x = 0, y = 0;
		dd_jnum_double(a, &x);
		dd_jnum_double(b, &y);
		return (x > y) - (x < y);
	}
	if (ra == 5) {
		struct dd_buf x = { 0 }, y = { 0 };
		dd_jstr_decode(a, &x);
		dd_jstr_decode(b, &y);
		size_t m = x.len < y.len ? x.len : y.len;
		int c = m ? memcmp(x.p, y.p, m) : 0;
		if (c == 0)
			c = (x.len > y.len) - (x.len < y.len);
		dd_buf_free(&x);
		dd_buf_free(&y);
		return c;
	}
	if (ra == 6) {
		size_t pa = 0, pb = 0;
		struct dd_jval ea, eb;
		for (;;) {
			int ha = dd_json_next(a, &pa, NULL, &ea), hb = dd_json_next(b, &pb, NULL, &eb);
			if (!ha || !hb)
				return ha - hb;
			int c = cmp_val(&ea, &eb);
			if (c)
				return c;
		}
	}
	if (ra == 7) {
		size_t m = a->n < b->n ? a->n : b->n;
		int c = memcmp(a->p, b->p, m);
		return c ? c : (a->n > b->n) - (a->n < b->n);
	}
	return 0;
}

struct row {
	struct dd_jval key;	/* the JSON array of the key's parts */
	uint64_t n;
};

static int
cmp_row(const void *x, const void *y)
{
	return cmp_val(&((const struct row *)x)->key, &((const struct row *)y)->key);
}

/* Display width in code points. */
static size_t
width(const char *s, size_t n)
{
	size_t w = 0;
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			w++;
	return w;
}

static int
chart_width(const struct dd_query *q, size_t lw, size_t cw)
{
	if (q->o.chart_width > 0)
		return q->o.chart_width;
	struct winsize ws;
	if (isatty(fileno(q->out)) && ioctl(fileno(q->out), TIOCGWINSZ, &ws) == 0 &&
	    ws.ws_col > 0) {
		long w = (long)ws.ws_col - (long)lw - (long)cw - 4;
		return w < 10 ? 10 : (int)w;
	}
	return 60;
}

static void
write_chart(struct dd_query *q, struct row *rows, size_t n)
{
	static const char *const eighths[] = { "", "\u258F", "\u258E", "\u258D", "\u258C",
	    "\u258B", "\u258A", "\u2589" };
	struct dd_buf *labels = dd_calloc(n ? n : 1, sizeof *labels);
	size_t lw = 0, cw = 1;
	uint64_t max = 0;
	for (size_t i = 0; i < n; i++) {
		size_t pos = 0;
		struct dd_jval v;
		for (int k = 0; dd_json_next(&rows[i].key, &pos, NULL, &v); k++) {
			if (k)
				dd_buf_addc(&labels[i], ' ');
			if (v.type == DD_JNULL)
				dd_buf_adds(&labels[i], "null");
			else
				dd_jval_text(&v, &labels[i]);
		}
		if (labels[i].p == NULL)
			dd_buf_adds(&labels[i], "");
		/* Controls would break the layout. */
		for (size_t k = 0; k < labels[i].len; k++)
			if ((unsigned char)labels[i].p[k] < 0x20)
				labels[i].p[k] = ' ';
		size_t w = width(labels[i].p, labels[i].len);
		if (w > lw)
			lw = w;
		char num[32];
		size_t c = (size_t)snprintf(num, sizeof num, "%" PRIu64, rows[i].n);
		if (c > cw)
			cw = c;
		if (rows[i].n > max)
			max = rows[i].n;
	}
	int bar = chart_width(q, lw, cw);
	for (size_t i = 0; i < n; i++) {
		fputs(labels[i].p, q->out);
		for (size_t k = width(labels[i].p, labels[i].len); k < lw + 2; k++)
			putc(' ', q->out);
		fprintf(q->out, "%*" PRIu64 " ", (int)cw, rows[i].n);
		/* In eighths of a column, so small differences still show. */
		uint64_t units = max ? (uint64_t)((long double)rows[i].n * bar * 8 / max + 0.5) : 0;
		if (units == 0 && rows[i].n > 0)
			units = 1;
		for (uint64_t k = 0; k < units / 8; k++)
			fputs("\u2588", q->out);
		fputs(eighths[units % 8], q->out);
		putc('\n', q->out);
		dd_buf_free(&labels[i]);
	}
	free(labels);
}

static void
write_counts(struct dd_query *q)
{
	size_t n = 0;
	struct row *rows = dd_calloc(q->keys.n ? q->keys.n : 1, sizeof *rows);
	for (size_t i = 0; i < q->keys.cap; i++) {
		const struct sent *k = &q->keys.v[i];
		if (!k->used)
			continue;
		rows[n].key = dd_json_value(q->keys.arena.p + k->off, k->len);
		rows[n++].n = k->n;
	}
	qsort(rows, n, sizeof *rows, cmp_row);
	if (q->o.fmt == DD_FMT_CHART) {
		write_chart(q, rows, n);
	} else if (q->o.fmt == DD_FMT_NDJSON) {
		for (size_t i = 0; i < n; i++) {
			size_t pos = 0;
			struct dd_jval v;
			putc('{', q->out);
			for (int k = 0; dd_json_next(&rows[i].key, &pos, NULL, &v); k++) {
				struct dd_buf b = { 0 };
				dd_buf_json_str(&b, q->colnames[k], strlen(q->colnames[k]));
				fprintf(q->out, "%s:%.*s,", b.p, (int)v.n + (v.type == DD_JSTR ? 2 : 0),
				    v.type == DD_JSTR ? v.p - 1 : v.p);
				dd_buf_free(&b);
			}
			fprintf(q->out, "\"count\":%" PRIu64 "}\n", rows[i].n);
		}
	} else {
		q->colnames[q->npaths] = dd_strdup("count");
		struct dd_out *t = dd_out_new(q->out, q->o.fmt, (const char *const *)q->colnames,
		    q->npaths + 1);
		for (size_t i = 0; i < n; i++) {
			size_t pos = 0;
			struct dd_jval v;
			while (dd_json_next(&rows[i].key, &pos, NULL, &v)) {
				struct dd_buf b = { 0 };
				dd_jval_text(&v, &b);
				dd_out_cell(t, b.p ? b.p : "", b.len);
				dd_buf_free(&b);
			}
			char num[32];
			int c = snprintf(num, sizeof num, "%" PRIu64, rows[i].n);
			dd_out_cell(t, num, (size_t)c);
			dd_out_endrow(t);
		}
		if (dd_out_finish(t))
			q->ioerr = 1;
	}
	free(rows);
}

int
dd_query_run(struct dd_query *q, FILE *out)
{
	const struct dd_query_opts *o = &q->o;
	q->out = out;
	if (dd_lake_partitions(o->lake, o->dataset, o->since_ms, o->until_ms, &q->parts,
	    &q->nparts))
		return DD_EXIT_IO;
	/* A worker per core, but not more than there are partitions. */
	int nw = o->jobs;
	if ((size_t)nw > q->nparts)
		nw = (int)q->nparts;
	int rc = DD_EXIT_OK;
	if (nw > 1) {
		rc = run_workers(q, nw);
	} else {
		struct eng e = { .q = q, .fd = -1 };
		start_output(q);
		for (size_t i = 0; i < q->nparts && !e.stop; i++)
			do_partition(&e, i);
		eng_free(&e);
	}
	if (rc == DD_EXIT_OK && !q->ioerr) {
		if (q->mode == M_COUNT)
			fprintf(out, "%" PRIu64 "\n", q->total);
		else if (q->mode == M_COUNTBY)
			write_counts(q);
	}
	if (q->tab && dd_out_finish(q->tab) && !q->ioerr)
		q->ioerr = 1;
	q->tab = NULL;
	check_out(q);
	if (q->ioerr)
		return DD_EXIT_IO;
	return rc != DD_EXIT_OK ? rc : q->rc;
}
