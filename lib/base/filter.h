/*
 * The filter loop every store-owning program runs (SPEC.md "Bad input,
 * errors and exit codes"): read lines, scan each as an event (or hand the
 * raw line over), reject bad ones with file:line, commit in batches and
 * after an idle interval, stop cleanly on SIGINT/SIGTERM, and return the
 * exit code. It is the one place that owns that contract, so every
 * program behaves alike.
 */
#ifndef DD_FILTER_H
#define DD_FILTER_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include "event.h"
#include "line.h"
#include "util.h"

/* What a program's callback says about one line. */
enum dd_verdict {
	DD_ACCEPT = 0,	/* consumed (stored/used) */
	DD_SKIP,	/* a type this program does not consume */
	DD_REJECT,	/* bad input: the reason is in dd_errmsg() */
	DD_FAIL,	/* I/O or store failure: stop with exit 4 (dd_errmsg()) */
};

struct dd_filter_opts {
	const char *input;	/* name in messages, "stdin" by default */
	int fd;			/* input fd, 0 by default */
	const char *rejects;	/* --rejects FILE or NULL */
	int strict;		/* --strict */
	int quiet;		/* -q */
	int progress;		/* --progress (or stderr is a terminal) */
	size_t max_line;	/* --max-line */
	uint64_t batch;		/* --batch: commit after this many lines */
	int64_t flush_ms;	/* --flush-interval */
	int raw;		/* hand lines to ops->line instead of scanning events */
};

struct dd_filter_stats {
	uint64_t read, accepted, skipped, rejected;
};

struct dd_filter_ops {
	/* One valid event (opts.raw == 0). */
	enum dd_verdict (*event)(void *ctx, const struct dd_line *l,
	    const struct dd_env *e);
	/* One raw line (opts.raw != 0); requests are not all events. */
	enum dd_verdict (*line)(void *ctx, const struct dd_line *l);
	/* Make everything accepted so far durable, and flush output.
	 * 0, or -1 (dd_errmsg()): the run stops with exit 4. */
	int (*commit)(void *ctx);
	/* Optional: the input has ended (not a signal, not a failure); the
	 * last output before the final commit (dd-sim fly lands the flights
	 * still in the air). */
	void (*end)(void *ctx);
	/* Append program-specific figures to the summary line (optional). */
	void (*summary)(void *ctx, struct dd_buf *b);
	/* Optional: for input converted from another format (CSV rows made
	 * into lines), the original record a rejected line stands for, so the
	 * reject names its line, offset and raw text. */
	const struct dd_line *(*origin)(void *ctx, const struct dd_line *l);
};

/* Defaults for the options above. */
void dd_filter_defaults(struct dd_filter_opts *o);
/* Run the loop; returns the exit code (enum dd_exit or 128+signal). */
int dd_filter_run(const struct dd_filter_opts *o, const struct dd_filter_ops *ops,
    void *ctx, struct dd_filter_stats *st);

/*
 * Signals: SIGINT and SIGTERM set dd_signalled (and interrupt reads), so
 * loops can commit and stop; SIGPIPE is ignored so a closed stdout is a
 * write error (EPIPE) reported with exit 4, not a silent death.
 */
extern volatile sig_atomic_t dd_signalled;
void dd_signals_init(void);

/*
 * The common options of filters, so every program spells them alike.
 * Put DD_FILTER_LONGOPTS in the getopt_long table and "q" in the short
 * options; in the switch, hand unknown codes to dd_filter_setopt(), which
 * returns 0 when it took the option, -1 on a bad value (message printed)
 * and 1 when the code is not one of its own.
 */
enum {
	DD_OPT_REJECTS = 0x1000, DD_OPT_STRICT, DD_OPT_PROGRESS, DD_OPT_MAXLINE,
	DD_OPT_BATCH, DD_OPT_FLUSH,
};
#define DD_FILTER_LONGOPTS \
	{ "rejects", required_argument, NULL, DD_OPT_REJECTS }, \
	{ "strict", no_argument, NULL, DD_OPT_STRICT }, \
	{ "progress", no_argument, NULL, DD_OPT_PROGRESS }, \
	{ "max-line", required_argument, NULL, DD_OPT_MAXLINE }, \
	{ "batch", required_argument, NULL, DD_OPT_BATCH }, \
	{ "flush-interval", required_argument, NULL, DD_OPT_FLUSH }, \
	{ "quiet", no_argument, NULL, 'q' }
int dd_filter_setopt(struct dd_filter_opts *o, int code, const char *arg);

#endif
