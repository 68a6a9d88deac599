#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ddtime.h"
#include "line.h"
#include "util.h"

/*
 * One buffer holds [start, end) of unread input. Lines are handed out in
 * place; the buffer grows only up to the line limit, so a long line costs
 * one growth, not one allocation per line.
 */
struct dd_lines {
	int fd;
	char *name;
	size_t maxline;
	char *buf;
	size_t cap, start, end;
	uint64_t lineno, off;	/* of the next line */
	int eof;
	/* An over-long line being skipped: its kept start and length so far. */
	char keep[DD_LINE_KEEP];
	size_t keepn;
	int skipping;
	uint64_t skiplen, skipoff;
};

#define CHUNK (256 * 1024)

struct dd_lines *
dd_lines_open(int fd, const char *name, size_t maxline)
{
	struct dd_lines *r = dd_calloc(1, sizeof *r);
	r->fd = fd;
	r->name = dd_strdup(name);
	r->maxline = maxline ? maxline : DD_MAX_LINE_DEFAULT;
	r->cap = 2 * CHUNK;
	r->buf = dd_malloc(r->cap);
	return r;
}

void
dd_lines_free(struct dd_lines *r)
{
	if (r == NULL)
		return;
	free(r->buf);
	free(r->name);
	free(r);
}

/* Read more input; 1 got some, 0 EOF, or a DD_LINES_ error. */
static int
fill(struct dd_lines *r, int64_t deadline)
{
	if (r->eof)
		return 0;
	/* Wait in poll(2) even with no deadline: a signal interrupts poll
	 * whatever SA_RESTART says, so SIGINT on a quiet pipe is noticed. */
	int timeout_ms = -1;
	if (deadline != INT64_MAX) {
		int64_t left = deadline - dd_now_ms();
		timeout_ms = left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
	}
	struct pollfd pfd = { r->fd, POLLIN, 0 };
	int polled = poll(&pfd, 1, timeout_ms);
	if (polled == 0)
		return DD_LINES_TIMEOUT;
	if (polled < 0)
		return errno == EINTR ? DD_LINES_INTR : DD_LINES_ERR;
	/* Make room: slide unread bytes to the front, grow up to the limit. */
	if (r->start > 0 && (r->cap - r->end < CHUNK)) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	if (r->cap - r->end < CHUNK) {
		r->cap *= 2;
		r->buf = dd_realloc(r->buf, r->cap);
	}
	ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end);
	if (n < 0) {
		if (errno == EINTR)
			return DD_LINES_INTR;
		dd_seterr("%s: read: %s", r->name, strerror(errno));
		return DD_LINES_ERR;
	}
	if (n == 0) {
		r->eof = 1;
		return 0;
	}
	r->end += (size_t)n;
	return 1;
}

static void
hand_out(struct dd_lines *r, struct dd_line *l, char *p, size_t n, size_t consumed)
{
	l->lineno = ++r->lineno;
	l->kpart = -1;
	l->ktopic = NULL;
	l->off = r->off;
	l->fulllen = n;
	r->off += consumed;
	if (n && p[n - 1] == '\r')
		n--;
	l->p = p;
	l->n = n;
	l->toolong = 0;
}

int
dd_lines_next(struct dd_lines *r, struct dd_line *l, int timeout_ms)
{
	return dd_lines_next_until(r, l, timeout_ms < 0 ? INT64_MAX : dd_now_ms() + timeout_ms);
}

int
dd_lines_next_until(struct dd_lines *r, struct dd_line *l, int64_t deadline)
{
	for (;;) {
		char *s = r->buf + r->start;
		size_t avail = r->end - r->start;
		char *nl = memchr(s, '\n', avail);
		if (r->skipping) {
			/* Discard the rest of an over-long line, keeping its start. */
			size_t take = nl ? (size_t)(nl - s) + 1 : avail;
			r->skiplen += take;
			r->start += take;
			if (nl) {
				r->skipping = 0;
				l->lineno = ++r->lineno;
				l->kpart = -1;
				l->ktopic = NULL;
	l->ktopic = NULL;
				l->off = r->skipoff;
				l->fulllen = r->skiplen - 1;
				r->off = r->skipoff + r->skiplen;
				l->p = r->keep;
				l->n = r->keepn;
				l->toolong = 1;
				return DD_LINES_OK;
			}
		} else if (nl) {
			size_t n = (size_t)(nl - s);
			if (n > r->maxline + 1 || (n == r->maxline + 1 && s[n - 1] != '\r'))
				goto toolong;
			r->start += n + 1;
			hand_out(r, l, s, n, n + 1);
			return DD_LINES_OK;
		} else if (avail > r->maxline + 1) {
			goto toolong;
		} else if (r->eof) {
			if (avail == 0)
				return DD_LINES_EOF;
			/* A last line without its newline is still a line. */
			r->start += avail;
			hand_out(r, l, s, avail, avail);
			return DD_LINES_OK;
		}
		int rc = fill(r, deadline);
		if (rc < 0)
			return rc;
		if (rc == 0 && r->skipping) {
			/* EOF inside an over-long line: hand out what was kept. */
			r->skipping = 0;
			l->lineno = ++r->lineno;
			l->off = r->skipoff;
			l->fulllen = r->skiplen;
			r->off = r->skipoff + r->skiplen;
			l->p = r->keep;
			l->n = r->keepn;
			l->toolong = 1;
			return DD_LINES_OK;
		}
		continue;
toolong:
		{
			size_t len = nl ? (size_t)(nl - s) : avail;
			r->keepn = len < DD_LINE_KEEP ? len : DD_LINE_KEEP;
		}
		memcpy(r->keep, s, r->keepn);
		r->skipping = 1;
		r->skipoff = r->off;
		r->skiplen = 0;
	}
}
