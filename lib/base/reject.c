#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reject.h"
#include "util.h"

struct dd_rejects {
	int fd;			/* -1: stderr only */
	char *path;
	struct dd_buf rec;
};

struct dd_rejects *
dd_rejects_open(const char *path)
{
	struct dd_rejects *r = dd_calloc(1, sizeof *r);
	r->fd = -1;
	if (path) {
		/* Appended, one write per record: records of concurrent
		 * writers never interleave, and a crash loses none written. */
		r->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
		if (r->fd < 0) {
			dd_seterr("%s: %s", path, strerror(errno));
			free(r);
			return NULL;
		}
		r->path = dd_strdup(path);
	}
	return r;
}

static void
base64(struct dd_buf *b, const unsigned char *p, size_t n)
{
	static const char t[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	dd_buf_grow(b, (n + 2) / 3 * 4);
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		dd_buf_addc(b, t[v >> 18 & 63]);
		dd_buf_addc(b, t[v >> 12 & 63]);
		dd_buf_addc(b, i + 1 < n ? t[v >> 6 & 63] : '=');
		dd_buf_addc(b, i + 2 < n ? t[v & 63] : '=');
	}
}

/* The record's end, after where the line came from: error, raw, and
 * its exact bytes where they are not UTF-8. */
static int record(struct dd_rejects *r, const char *raw, size_t rawlen, int truncated,
    const char *what);

int
dd_reject_raw(struct dd_rejects *r, const char *source, uint64_t lineno, uint64_t off,
    const char *raw, size_t rawlen, int truncated, const char *what)
{
	fprintf(stderr, "%s: %s:%" PRIu64 ": %s\n", dd_prog, source, lineno, what);
	if (r->fd < 0)
		return 0;
	struct dd_buf *b = &r->rec;
	dd_buf_reset(b);
	dd_buf_adds(b, "{\"source\":");
	dd_buf_json_str(b, source, strlen(source));
	dd_buf_printf(b, ",\"line\":%" PRIu64 ",\"offset\":%" PRIu64, lineno, off);
	return record(r, raw, rawlen, truncated, what);
}

int
dd_reject_kafka(struct dd_rejects *r, const char *topic, int32_t partition, int64_t offset,
    const char *raw, size_t rawlen, int truncated, const char *what)
{
	fprintf(stderr, "%s: kafka:%s/%" PRId32 ":%" PRId64 ": %s\n", dd_prog, topic,
	    partition, offset, what);
	if (r->fd < 0)
		return 0;
	struct dd_buf *b = &r->rec;
	dd_buf_reset(b);
	dd_buf_adds(b, "{\"source\":\"kafka\",\"topic\":");
	dd_buf_json_str(b, topic, strlen(topic));
	dd_buf_printf(b, ",\"partition\":%" PRId32 ",\"offset\":%" PRId64, partition, offset);
	return record(r, raw, rawlen, truncated, what);
}

static int
record(struct dd_rejects *r, const char *raw, size_t rawlen, int truncated, const char *what)
{
	struct dd_buf *b = &r->rec;
	dd_buf_adds(b, ",\"error\":");
	dd_buf_json_str(b, what, strlen(what));
	dd_buf_adds(b, ",\"raw\":");
	dd_buf_json_str(b, raw, rawlen);
	if (!dd_utf8_valid(raw, rawlen)) {
		dd_buf_adds(b, ",\"rawBase64\":\"");
		base64(b, (const unsigned char *)raw, rawlen);
		dd_buf_addc(b, '"');
	}
	if (truncated)
		dd_buf_adds(b, ",\"truncated\":true");
	dd_buf_adds(b, "}\n");
	for (size_t done = 0; done < b->len; ) {
		ssize_t n = write(r->fd, b->p + done, b->len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			dd_seterr("%s: %s", r->path, strerror(errno));
			return -1;
		}
		done += (size_t)n;
	}
	return 0;
}

int
dd_reject(struct dd_rejects *r, const char *source, const struct dd_line *l, const char *what)
{
	return dd_reject_raw(r, source, l->lineno, l->off, l->p, l->n, l->toolong, what);
}

int
dd_rejects_close(struct dd_rejects *r)
{
	int rc = 0;
	if (r == NULL)
		return 0;
	if (r->fd >= 0 && close(r->fd) < 0) {
		dd_seterr("%s: %s", r->path, strerror(errno));
		rc = -1;
	}
	dd_buf_free(&r->rec);
	free(r->path);
	free(r);
	return rc;
}
