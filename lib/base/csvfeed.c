/*
 * CSV input as lines for the filter loop (csvfeed.h): the reader thread
 * writes one JSON line per row into a pipe, and queues each line's origin
 * for the loop's thread, which takes them in line order.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "csvfeed.h"
#include "csvin.h"
#include "json.h"
#include "util.h"

struct origin {
	uint64_t lineno, off;
	char *raw;
	size_t rawlen;
	char *error;
	struct origin *next;
};

/* The header as a tree: dotted names nest ("pickup.lat" is lat inside
 * pickup); a leaf holds its column. */
struct cnode {
	char *key;
	int col;		/* leaf: the column; -1: an object */
	struct cnode *kids;
	int nkids;
};

struct dd_csvfeed {
	pthread_t th;
	struct dd_csvfeed_types types;
	FILE *in;
	int rfd, wfd;
	pthread_mutex_t mu;
	struct origin *head, *tail, *cur;
	uint64_t popped;	/* origins taken: cur is that line's */
	struct dd_line line;
	int ncols;
	int header_done;
	struct cnode root;
	int rc;
	char err[256];
};

static void
cnode_free(struct cnode *n)
{
	for (int i = 0; i < n->nkids; i++)
		cnode_free(&n->kids[i]);
	free(n->kids);
	free(n->key);
}

/* Add column col named name under n; -1 (dd_errmsg()) when a name is
 * both a value and an object, or given twice. */
static int
cnode_add(struct cnode *n, const char *name, int col, const char *full)
{
	const char *dot = strchr(name, '.');
	size_t len = dot ? (size_t)(dot - name) : strlen(name);
	if (len == 0) {
		dd_seterr("bad column name \"%s\"", full);
		return -1;
	}
	struct cnode *k = NULL;
	for (int i = 0; i < n->nkids; i++)
		if (strlen(n->kids[i].key) == len && memcmp(n->kids[i].key, name, len) == 0)
			k = &n->kids[i];
	if (k == NULL) {
		n->kids = dd_realloc(n->kids, (size_t)(n->nkids + 1) * sizeof *n->kids);
		k = &n->kids[n->nkids++];
		memset(k, 0, sizeof *k);
		k->key = dd_strndup(name, len);
		k->col = dot ? -1 : col;
		if (!dot)
			return 0;
	} else if (!dot || k->col >= 0) {
		dd_seterr("column \"%s\" clashes with another", full);
		return -1;
	}
	return cnode_add(k, dot + 1, col, full);
}

static int
among(const char *const *names, const char *key)
{
	for (; names && *names; names++)
		if (strcmp(*names, key) == 0)
			return 1;
	return 0;
}

/* One cell as a JSON value (struct dd_csvfeed_types). */
static void
csv_value(const struct dd_csvfeed_types *t, struct dd_buf *b, const char *key, const char *v,
    size_t n)
{
	if (among(t->numbers, key) && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9')) &&
	    dd_json_validate(v, n, NULL) == 0) {
		dd_buf_add(b, v, n);
		return;
	}
	if (among(t->booleans, key) && (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)) {
		dd_buf_adds(b, v);
		return;
	}
	dd_buf_json_str(b, v, n);
}

/* The object of node n for row r; empty cells are absent members, and
 * an object with no member is absent too. Returns the members written. */
static int
csv_object(const struct dd_csvfeed_types *t, const struct cnode *n, const struct dd_csv_row *r,
    struct dd_buf *b)
{
	int written = 0;
	dd_buf_addc(b, '{');
	for (int i = 0; i < n->nkids; i++) {
		const struct cnode *k = &n->kids[i];
		size_t mark = b->len;
		if (written)
			dd_buf_addc(b, ',');
		dd_buf_json_str(b, k->key, strlen(k->key));
		dd_buf_addc(b, ':');
		if (k->col >= 0) {
			if (k->col >= r->n || r->len[k->col] == 0) {
				b->len = mark;
				continue;
			}
			csv_value(t, b, k->key, r->f[k->col], r->len[k->col]);
		} else if (csv_object(t, k, r, b) == 0) {
			b->len = mark;
			continue;
		}
		written++;
	}
	dd_buf_addc(b, '}');
	return written;
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
csv_row(void *ctx, const struct dd_csv_row *r)
{
	struct dd_csvfeed *c = ctx;
	struct dd_buf b = { 0 };
	char why[200] = "";
	int stop = 0;
	if (r->error) {
		snprintf(why, sizeof why, "bad CSV: %s", r->error);
		stop = !c->header_done;
	} else if (!c->header_done) {
		c->header_done = 1;
		c->ncols = r->n;
		c->root.col = -1;
		for (int i = 0; i < r->n && !stop; i++)
			if (r->len[i] && cnode_add(&c->root, r->f[i], i, r->f[i])) {
				snprintf(why, sizeof why, "header: %s", dd_errmsg());
				stop = 1;
			}
		if (!stop)
			return 0;
	} else if (r->n != c->ncols) {
		snprintf(why, sizeof why, "%d fields, the header has %d", r->n, c->ncols);
	} else {
		csv_object(&c->types, &c->root, r, &b);
		dd_buf_addc(&b, '\n');
	}
	struct origin *o = dd_calloc(1, sizeof *o);
	o->lineno = r->lineno;
	o->off = r->off;
	o->raw = dd_strndup(r->raw ? r->raw : "", r->rawlen);
	o->rawlen = r->rawlen;
	if (why[0]) {
		o->error = dd_strdup(why);
		dd_buf_reset(&b);
		dd_buf_adds(&b, "-\n");	/* a placeholder line, rejected with the reason */
	}
	pthread_mutex_lock(&c->mu);
	if (c->tail)
		c->tail->next = o;
	else
		c->head = o;
	c->tail = o;
	pthread_mutex_unlock(&c->mu);
	int rc = write_all(c->wfd, b.p, b.len);
	dd_buf_free(&b);
	/* Stop when the reader went away, or without a usable header. */
	return rc || stop ? 1 : 0;
}

static void *
csv_thread(void *arg)
{
	struct dd_csvfeed *c = arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	int rc = dd_csv_read(c->in, csv_row, c);
	if (rc < 0) {
		c->rc = -1;
		snprintf(c->err, sizeof c->err, "%s", dd_errmsg());
	}
	close(c->wfd);
	return NULL;
}

static void
origin_free(struct origin *o)
{
	if (o) {
		free(o->raw);
		free(o->error);
		free(o);
	}
}

/* Take the origin of the next line; NULL when out of step (a bug). */
static struct origin *
csv_next(struct dd_csvfeed *c)
{
	c->popped++;
	pthread_mutex_lock(&c->mu);
	struct origin *o = c->head;
	if (o) {
		c->head = o->next;
		if (c->head == NULL)
			c->tail = NULL;
	}
	pthread_mutex_unlock(&c->mu);
	origin_free(c->cur);
	c->cur = o;
	return o;
}

/* The origin of line lineno of the pipe: line k is the kth row after the
 * header. (The loop rejects an over-long line without showing it to us.) */
static struct origin *
csv_origin(struct dd_csvfeed *c, uint64_t lineno)
{
	while (c->popped < lineno)
		if (csv_next(c) == NULL)
			return NULL;
	return c->popped == lineno ? c->cur : NULL;
}

int
dd_csvfeed_line(struct dd_csvfeed *c, uint64_t lineno)
{
	struct origin *o = csv_origin(c, lineno);
	if (o == NULL) {
		dd_seterr("internal error: CSV rows out of step");
		return -1;
	}
	if (o->error) {
		dd_seterr("%s", o->error);
		return 1;
	}
	return 0;
}

const struct dd_line *
dd_csvfeed_origin(struct dd_csvfeed *c, uint64_t lineno)
{
	struct origin *or = csv_origin(c, lineno);
	if (or == NULL)
		return NULL;
	struct dd_line *o = &c->line;
	memset(o, 0, sizeof *o);
	o->p = or->raw;
	o->n = or->rawlen;
	o->fulllen = o->n;
	o->lineno = or->lineno;
	o->off = or->off;
	if (o->n > DD_LINE_KEEP) {
		o->n = DD_LINE_KEEP;
		o->toolong = 1;
	}
	return o;
}

struct dd_csvfeed *
dd_csvfeed_start(int fd, const struct dd_csvfeed_types *t)
{
	int p[2];
	if (pipe(p) < 0) {
		dd_seterr("pipe: %s", strerror(errno));
		return NULL;
	}
	struct dd_csvfeed *c = dd_calloc(1, sizeof *c);
	if (t)
		c->types = *t;
	c->in = fdopen(dup(fd), "r");
	c->rfd = p[0];
	c->wfd = p[1];
	pthread_mutex_init(&c->mu, NULL);
	if (c->in == NULL || pthread_create(&c->th, NULL, csv_thread, c) != 0) {
		dd_seterr("cannot start the CSV reader: %s", strerror(errno));
		if (c->in)
			fclose(c->in);
		close(p[0]);
		close(p[1]);
		pthread_mutex_destroy(&c->mu);
		free(c);
		return NULL;
	}
	return c;
}

int
dd_csvfeed_fd(const struct dd_csvfeed *c)
{
	return c->rfd;
}

/* A reader left waiting for input when the loop stopped early: kept
 * reachable, the process exit ends it. */
static struct dd_csvfeed *abandoned;

/* Wait at most 200 ms for the reader; 0 when it ended. */
static int
join_soon(struct dd_csvfeed *c)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 200 * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return pthread_timedjoin_np(c->th, NULL, &ts);
}

int
dd_csvfeed_stop(struct dd_csvfeed *c, int finished)
{
	int rc = 0;
	close(c->rfd);	/* a writer still busy gets EPIPE and stops */
	if (finished) {
		pthread_join(c->th, NULL);
	} else if (join_soon(c) != 0) {
		/* Stopped early (--strict, a signal) while the reader waits
		 * for input that may never come. */
		pthread_detach(c->th);
		abandoned = c;
		return 0;
	}
	if (c->rc < 0) {
		dd_seterr("%s", c->err);
		rc = -1;
	}
	origin_free(c->cur);
	while (c->head) {
		struct origin *o = c->head;
		c->head = o->next;
		origin_free(o);
	}
	cnode_free(&c->root);
	fclose(c->in);
	pthread_mutex_destroy(&c->mu);
	free(c);
	return rc;
}
