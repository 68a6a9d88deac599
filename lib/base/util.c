#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "exitcodes.h"
#include "util.h"

const char *dd_prog = "dd";

static void
oom(void)
{
	/* Nothing sensible can go on; committed data is safe in the stores. */
	fprintf(stderr, "%s: out of memory\n", dd_prog);
	exit(DD_EXIT_IO);
}

void *
dd_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		oom();
	return p;
}

void *
dd_calloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);
	if (p == NULL)
		oom();
	return p;
}

void *
dd_realloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (p == NULL)
		oom();
	return p;
}

char *
dd_strdup(const char *s)
{
	return dd_strndup(s, strlen(s));
}

char *
dd_strndup(const char *s, size_t n)
{
	char *p = dd_malloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void
dd_buf_grow(struct dd_buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	b->p = dd_realloc(b->p, cap);
	b->cap = cap;
}

void
dd_buf_add(struct dd_buf *b, const void *p, size_t n)
{
	dd_buf_grow(b, n);
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
dd_buf_adds(struct dd_buf *b, const char *s)
{
	dd_buf_add(b, s, strlen(s));
}

void
dd_buf_addc(struct dd_buf *b, char c)
{
	dd_buf_grow(b, 1);
	b->p[b->len++] = c;
	b->p[b->len] = '\0';
}

void
dd_buf_printf(struct dd_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	dd_buf_grow(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at p (max n bytes), 0 if invalid. */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return (n >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF) {
		if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
			return 0;
		if (c == 0xE0 && p[1] < 0xA0)
			return 0;	/* overlong */
		if (c == 0xED && p[1] >= 0xA0)
			return 0;	/* surrogates */
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 ||
		    (p[3] & 0xC0) != 0x80)
			return 0;
		if (c == 0xF0 && p[1] < 0x90)
			return 0;
		if (c == 0xF4 && p[1] >= 0x90)
			return 0;
		return 4;
	}
	return 0;
}

int
dd_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *e = p + n;
	while (p < e) {
		if (*p < 0x80) {
			p++;
			continue;
		}
		size_t k = utf8_seq(p, (size_t)(e - p));
		if (k == 0)
			return 0;
		p += k;
	}
	return 1;
}

void
dd_buf_json_str(struct dd_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s, *e = p + n;
	dd_buf_grow(b, n + 2);
	dd_buf_addc(b, '"');
	while (p < e) {
		const unsigned char *run = p;
		while (p < e && *p >= 0x20 && *p != '"' && *p != '\\' && *p < 0x80)
			p++;
		if (p > run)
			dd_buf_add(b, run, (size_t)(p - run));
		if (p >= e)
			break;
		unsigned c = *p;
		if (c >= 0x80) {
			size_t k = utf8_seq(p, (size_t)(e - p));
			if (k == 0) {
				dd_buf_add(b, "\xEF\xBF\xBD", 3);	/* U+FFFD */
				p++;
			} else {
				dd_buf_add(b, p, k);
				p += k;
			}
			continue;
		}
		p++;
		switch (c) {
		case '"': dd_buf_add(b, "\\\"", 2); break;
		case '\\': dd_buf_add(b, "\\\\", 2); break;
		case '\n': dd_buf_add(b, "\\n", 2); break;
		case '\r': dd_buf_add(b, "\\r", 2); break;
		case '\t': dd_buf_add(b, "\\t", 2); break;
		case '\b': dd_buf_add(b, "\\b", 2); break;
		case '\f': dd_buf_add(b, "\\f", 2); break;
		default: {
			char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			dd_buf_add(b, u, 6);
		}
		}
	}
	dd_buf_addc(b, '"');
}

void
dd_buf_reset(struct dd_buf *b)
{
	b->len = 0;
	if (b->cap)
		b->p[0] = '\0';
}

void
dd_buf_free(struct dd_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* One per thread: the history writer, the CSV feeder and the query
 * workers fail on their own threads without clobbering the caller's. */
static _Thread_local char errbuf[1024];

void
dd_seterr(const char *fmt, ...)
{
	/* Formatted aside first: callers often prefix the current message
	 * (dd_seterr("%s: %s", path, dd_errmsg())). */
	char tmp[sizeof errbuf];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	memcpy(errbuf, tmp, sizeof errbuf);
}

const char *
dd_errmsg(void)
{
	return errbuf[0] ? errbuf : "unknown error";
}

static void
vwarn(const char *fmt, va_list ap)
{
	int saved = errno;
	fprintf(stderr, "%s: ", dd_prog);
	vfprintf(stderr, fmt, ap);
	size_t n = strlen(fmt);
	if (n && fmt[n - 1] == ':')
		fprintf(stderr, " %s", strerror(saved));
	fputc('\n', stderr);
}

void
dd_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vwarn(fmt, ap);
	va_end(ap);
}

void
dd_die(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vwarn(fmt, ap);
	va_end(ap);
	exit(code);
}

static uint64_t slot_key[2];
static pthread_once_t slot_once = PTHREAD_ONCE_INIT;

static void
slot_init(void)
{
	if (getrandom(slot_key, sizeof slot_key, 0) != (ssize_t)sizeof slot_key) {
		/* No entropy to be had: still a key of this process. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		slot_key[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
		slot_key[1] = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&ts;
	}
}

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do { \
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
} while (0)

uint64_t
dd_slot(uint64_t h)
{
	pthread_once(&slot_once, slot_init);
	/* SipHash-1-3 of the 8 bytes of h (one message block, then the
	 * block holding the length). */
	uint64_t v0 = slot_key[0] ^ 0x736f6d6570736575ULL, v1 = slot_key[1] ^ 0x646f72616e646f6dULL;
	uint64_t v2 = slot_key[0] ^ 0x6c7967656e657261ULL, v3 = slot_key[1] ^ 0x7465646279746573ULL;
	uint64_t b = (uint64_t)8 << 56;
	v3 ^= h;
	SIPROUND;
	v0 ^= h;
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t
dd_hash64(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i = 0;
	/* FNV-1a over 8-byte words (fast), then the bytes left, then a
	 * murmur-style finaliser so every output bit depends on every input. */
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, s + i, 8);
		h = (h ^ w) * 0x100000001b3ULL;
		h ^= h >> 29;
	}
	for (; i < n; i++)
		h = (h ^ s[i]) * 0x100000001b3ULL;
	h ^= (uint64_t)n;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

int
dd_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	if (s == NULL || *s < '0' || *s > '9') {
		dd_seterr("not a number: \"%s\"", s ? s : "");
		return -1;
	}
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end) {
		dd_seterr("not a number: \"%s\"", s);
		return -1;
	}
	if (v < min || v > max) {
		dd_seterr("%s is out of range (%llu to %llu)", s,
		    (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

int
dd_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	if (s == NULL || *s < '0' || *s > '9') {
		dd_seterr("not a size: \"%s\"", s ? s : "");
		return -1;
	}
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	unsigned shift = 0;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: end = NULL;
	}
	if (errno || end == NULL || (*end && strcmp(end, "iB") && strcmp(end, "B")) ||
	    (shift && v > (UINT64_MAX >> shift))) {
		dd_seterr("not a size: \"%s\"", s);
		return -1;
	}
	v <<= shift;
	if (v < min || v > max) {
		dd_seterr("%s is out of range (%llu to %llu bytes)", s,
		    (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

int
dd_mkdirs(const char *path)
{
	char *p = dd_strdup(path);
	for (char *s = p + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			if (mkdir(p, 0777) < 0 && errno != EEXIST) {
				dd_seterr("%s: %s", p, strerror(errno));
				free(p);
				return -1;
			}
			*s = c;
			if (c == '\0')
				break;
		}
	}
	free(p);
	return 0;
}

int
dd_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		dd_seterr("%s: %s", dir, strerror(errno));
		return -1;
	}
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	if (rc < 0) {
		dd_seterr("%s: fsync: %s", dir, strerror(e));
		return -1;
	}
	return 0;
}

const char *
dd_home(void)
{
	static char *home;
	if (home)
		return home;
	const char *h = getenv("DD_HOME");
	if (h && *h)
		return home = dd_strdup(h);
	struct dd_buf b = { 0 };
	const char *x = getenv("XDG_DATA_HOME");
	if (x && *x)
		dd_buf_printf(&b, "%s/dd", x);
	else
		dd_buf_printf(&b, "%s/.local/share/dd", getenv("HOME") ? getenv("HOME") : ".");
	return home = b.p;
}

char *
dd_default_path(const char *name)
{
	struct dd_buf b = { 0 };
	dd_buf_printf(&b, "%s/%s", dd_home(), name);
	return b.p;
}

int
dd_stdout_gone(void)
{
	/* poll(2) reports POLLERR on a pipe with no reader left, POLLHUP on
	 * a socket whose peer closed: no errno to remember from the write. */
	struct pollfd p = { 1, POLLOUT, 0 };
	return poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP)) != 0;
}

int
dd_close_stdout(void)
{
	int bad = fflush(stdout) != 0 || ferror(stdout);
	int e = errno;
	if (fclose(stdout) != 0 && !bad) {
		bad = 1;
		e = errno;
	}
	if (bad) {
		dd_seterr("stdout: %s", strerror(e ? e : EIO));
		return -1;
	}
	return 0;
}
