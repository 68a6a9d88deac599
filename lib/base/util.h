/*
 * Small helpers every part of the toolkit uses: a growable byte buffer,
 * allocation that dies on exhaustion, the last-error message of the library,
 * hashing, and the diagnostics of the programs (PROG: where: what).
 */
#ifndef DD_UTIL_H
#define DD_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>

#define DD_VERSION "0.1.0"

/* The program name used in messages; set once by main(). */
extern const char *dd_prog;

/* Allocation: out of memory is not recoverable for these tools. */
void *dd_malloc(size_t n);
void *dd_calloc(size_t n, size_t m);
void *dd_realloc(void *p, size_t n);
char *dd_strdup(const char *s);
char *dd_strndup(const char *s, size_t n);

/* A growable buffer; p is always NUL-terminated when cap > 0. */
struct dd_buf {
	char *p;
	size_t len, cap;
};
void dd_buf_grow(struct dd_buf *b, size_t extra);
void dd_buf_add(struct dd_buf *b, const void *p, size_t n);
void dd_buf_adds(struct dd_buf *b, const char *s);
void dd_buf_addc(struct dd_buf *b, char c);
void dd_buf_printf(struct dd_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Append s as a JSON string literal (quotes included); invalid UTF-8
 * bytes become U+FFFD so the output is always valid JSON. */
void dd_buf_json_str(struct dd_buf *b, const char *s, size_t n);
void dd_buf_reset(struct dd_buf *b);
void dd_buf_free(struct dd_buf *b);

/*
 * The library's last error, in the manner of sqlite3_errmsg(): a function
 * that fails returns its status and leaves the reason here.
 */
void dd_seterr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *dd_errmsg(void);

/* Program diagnostics on stderr: "PROG: message". A format ending in ':'
 * gets ": strerror(errno)" appended (the sbase convention). */
void dd_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dd_die(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

/* 64-bit hash of bytes (FNV-1a folded through a 64-bit mixer): stable
 * across runs and machines, since it is stored in lake metadata. */
uint64_t dd_hash64(const void *p, size_t n);
/* Where hash h goes in a hash table of this process: SipHash-1-3 of h
 * under a key drawn at random once per process, so values crafted to
 * share slots (dd_hash64 is in the source, its low bits easy to aim)
 * cannot pile up in one probe sequence. Tables place by this and keep h;
 * nothing stored may depend on it. */
uint64_t dd_slot(uint64_t h);

/* Parse an unsigned decimal in [min,max]; 0 ok, -1 with dd_errmsg(). */
int dd_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Parse a size with an optional K/M/G suffix (powers of 1024). */
int dd_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Validate UTF-8; returns 1 if valid. */
int dd_utf8_valid(const char *p, size_t n);

/* Create every missing directory of path (mkdir -p), mode 0777 & ~umask. */
int dd_mkdirs(const char *path);
/* fsync a directory, so a rename or creation inside it is durable. */
int dd_fsync_dir(const char *dir);

/* $DD_HOME, defaulting to ${XDG_DATA_HOME:-$HOME/.local/share}/dd. */
const char *dd_home(void);
/* Default path of a store, DD_HOME/NAME; malloc'd. */
char *dd_default_path(const char *name);

/* 1 when the reader of stdout went away (| head): a write there fails
 * with EPIPE, and the program is to end quietly (exit 141). */
int dd_stdout_gone(void);
/* Flush and close stdout; 0, or -1 with dd_errmsg() (a full disk or a
 * closed pipe must never pass as success). */
int dd_close_stdout(void);

#endif
