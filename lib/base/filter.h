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
#include "kafka.h"
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
	char *const *files;	/* FILE operands, read in order ("-": stdin) */
	int nfiles;		/* 0: read fd instead */
	const char *input;	/* name of fd in messages, "stdin" by default */
	int fd;			/* input fd, 0 by default */
	const char *rejects;	/* --rejects FILE or NULL */
	int strict;		/* --strict */
	int quiet;		/* -q */
	int progress;		/* --progress (or stderr is a terminal) */
	size_t max_line;	/* --max-line */
	uint64_t batch;		/* --batch: commit after this many lines */
	int64_t flush_ms;	/* --flush-interval */
	int flush_busy;		/* --flush-interval also while lines keep coming
				 * (a store that coalesces a batch's writes);
				 * else only after input has paused */
	int raw;		/* hand lines to ops->line instead of scanning events */
	struct dd_kafka_opts kafka;	/* --kafka and the rest (kafka.h) */
};

struct dd_store;

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
	/* Optional: the families of types the program consumes ("delivery.",
	 * "drone.", NULL-terminated); skipped events of a family that are of
	 * none of the toolkit's types are named in the summary. */
	const char *const *families;
	/* Append program-specific figures to the summary line (optional). */
	void (*summary)(void *ctx, struct dd_buf *b);
	/* Optional: for input converted from another format (CSV rows made
	 * into lines), the original record a rejected line stands for, so the
	 * reject names its line, offset and raw text. */
	const struct dd_line *(*origin)(void *ctx, const struct dd_line *l);
	/* Optional: called once before the first line is read, to get ready
	 * (load a store) and to append to note what the user should know
	 * before the run (shown unless -q). 0, or -1 (dd_errmsg()): nothing
	 * is read, committed or summed up, and the run ends with exit 4. */
	int (*start)(void *ctx, struct dd_buf *note);
	/* Optional: called once when the run is over (code: its exit code so
	 * far), also after a failed start. 0, or -1 (dd_errmsg()): exit 4. */
	int (*finish)(void *ctx, int code);
	/* With --kafka: the store whose commit records the offsets read
	 * (kafka_offsets, in the same transaction as the data) and where
	 * reading resumes. A program without a SQLite store gives kresume
	 * and koffsets instead (the lake keeps them in its parts); one with
	 * neither resumes from the broker's committed offsets. */
	struct dd_store *store;
	/* The next offset of topic/partition, -1 for the beginning, -2 on
	 * error (dd_errmsg()). */
	int64_t (*kresume)(void *ctx, const char *topic, int32_t partition);
	/* The positions the next commit makes durable (called just before
	 * ops->commit). 0 or -1 (dd_errmsg()). A program without kresume
	 * (its place is the group's committed offsets) may point ko->pos at
	 * earlier positions of its own, valid until the next call: where a
	 * restart must begin to rebuild what it holds in memory. */
	int (*koffsets)(void *ctx, struct dd_koffsets *ko);
};

/* Defaults for the options above. */
void dd_filter_defaults(struct dd_filter_opts *o);
/* Run the loop; returns the exit code (enum dd_exit or 128+signal). A
 * failure (exit 4) is left in dd_errmsg() for the program to report once;
 * a reader of stdout gone away ends the run quietly (dd_cli_finish()
 * makes it 141): every batch whose output was written is committed; a
 * line whose own write failed is not, nor the rest of its batch. */
int dd_filter_run(const struct dd_filter_opts *o, const struct dd_filter_ops *ops,
    void *ctx, struct dd_filter_stats *st);

/*
 * Signals: SIGINT and SIGTERM set dd_signalled (and interrupt the line
 * reader's wait), so loops can commit and stop; SIGPIPE is ignored so a
 * closed stdout is a write error (EPIPE) the program sees, commits after
 * and turns into exit 141 (dd_stdout_gone()).
 */
extern volatile sig_atomic_t dd_signalled;
void dd_signals_init(void);

/*
 * The common options of filters (lib/base/cli.h tables), so every program
 * spells and documents them alike. BATCH is the program's default --batch,
 * as text. In the program's set(), hand keys it does not know to
 * dd_filter_setopt(): 0 taken, -1 bad value (dd_errmsg()), 1 not its own.
 */
enum {
	DD_OPT_REJECTS = 0x1000, DD_OPT_STRICT, DD_OPT_PROGRESS, DD_OPT_MAXLINE,
	DD_OPT_BATCH, DD_OPT_FLUSH, DD_OPT_QUIET,
	DD_OPT_KAFKA, DD_OPT_TOPIC, DD_OPT_PARTITIONS, DD_OPT_GROUP, DD_OPT_KEOF,
	DD_OPT_KTIMEOUT, DD_OPT_KOUT, DD_OPT_KOUTBROKERS,
};
#define DD_FILTER_OPTIONS(BATCH) \
	{ "rejects", 0, "FILE", "append a record of each rejected line to FILE", DD_OPT_REJECTS, 0 }, \
	{ "strict", 0, NULL, "stop at the first bad line (exit 3)", DD_OPT_STRICT, 0 }, \
	{ "batch", 0, "N", "commit after N lines (default " BATCH ")", DD_OPT_BATCH, 0 }, \
	{ "flush-interval", 0, "DUR", "commit at most DUR after a line (default 1s)", DD_OPT_FLUSH, 0 }, \
	{ "max-line", 0, "BYTES", "reject longer lines (default 1M)", DD_OPT_MAXLINE, 0 }, \
	{ "progress", 0, NULL, "progress on stderr even when it is no terminal", DD_OPT_PROGRESS, 0 }, \
	DD_KAFKA_OPTIONS
/* Kafka instead of FILEs and stdout (kafka.h), alike in every filter. */
#define DD_KAFKA_OPTIONS \
	{ "kafka", 0, "BROKERS", "read from Kafka (host:port,...) instead of FILEs", DD_OPT_KAFKA, 0 }, \
	{ "topic", 0, "TOPIC", "the topics --kafka reads: NAME,NAME... or ^REGEX", DD_OPT_TOPIC, 0 }, \
	{ "partitions", 0, "LIST", "read these partitions (0,2,4-7; default all)", DD_OPT_PARTITIONS, 0 }, \
	{ "group", 0, "G", "let consumer group G assign the partitions", DD_OPT_GROUP, 0 }, \
	{ "kafka-eof", 0, NULL, "stop at the end of every partition read", DD_OPT_KEOF, 0 }, \
	{ "kafka-timeout", 0, "DUR", "give up at start when no broker answers (default 10s)", DD_OPT_KTIMEOUT, 0 }, \
	{ "kafka-out", 0, "TOPIC", "produce the output to TOPIC instead of stdout", DD_OPT_KOUT, 0 }, \
	{ "kafka-out-brokers", 0, "BROKERS", "the brokers of --kafka-out (default --kafka)", DD_OPT_KOUTBROKERS, 0 }
/* -q: every command takes it (SPEC: before or after the command). */
#define DD_OPT_QUIET_ENTRY \
	{ "quiet", 'q', NULL, "no summary or progress: errors only", DD_OPT_QUIET, 0 }
int dd_filter_setopt(struct dd_filter_opts *o, int code, const char *arg);

#endif
