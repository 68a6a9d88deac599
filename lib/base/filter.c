#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ddtime.h"
#include "exitcodes.h"
#include "filter.h"
#include "reject.h"
#include "store.h"

volatile sig_atomic_t dd_signalled;

static void
on_signal(int sig)
{
	dd_signalled = sig;
}

void
dd_signals_init(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* SA_RESTART: a write blocked on a full pipe goes on (an interrupted
	 * write is no I/O error). Reads notice the signal all the same: the
	 * line reader waits in poll(2), which a signal always interrupts. */
	sa.sa_flags = SA_RESTART;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

void
dd_filter_defaults(struct dd_filter_opts *o)
{
	memset(o, 0, sizeof *o);
	o->input = "stdin";
	o->fd = 0;
	o->max_line = DD_MAX_LINE_DEFAULT;
	o->batch = 5000;
	o->flush_ms = 1000;
	o->progress = isatty(2);
	o->kafka.timeout_ms = 10000;
}

static int
positive_duration(const char *arg, int64_t *out)
{
	int64_t ms;
	if (dd_duration_parse(arg, &ms))
		return -1;
	if (ms <= 0) {
		dd_seterr("must be positive");
		return -1;
	}
	*out = ms;
	return 0;
}

int
dd_filter_setopt(struct dd_filter_opts *o, int code, const char *arg)
{
	uint64_t v;
	switch (code) {
	case DD_OPT_REJECTS:
		o->rejects = arg;
		return 0;
	case DD_OPT_STRICT:
		o->strict = 1;
		return 0;
	case DD_OPT_PROGRESS:
		o->progress = 2;	/* forced, even when stderr is no terminal */
		return 0;
	case DD_OPT_QUIET:
		o->quiet = 1;
		return 0;
	case DD_OPT_MAXLINE:
		if (dd_parse_size(arg, 16, (uint64_t)1 << 30, &v))
			return -1;
		o->max_line = (size_t)v;
		return 0;
	case DD_OPT_BATCH:
		if (dd_parse_u64(arg, 1, 10000000, &v))
			return -1;
		o->batch = v;
		return 0;
	case DD_OPT_FLUSH:
		return positive_duration(arg, &o->flush_ms);
	case DD_OPT_KAFKA:
		o->kafka.brokers = arg;
		return 0;
	case DD_OPT_TOPIC:
		if (dd_kafka_check_topics(arg))
			return -1;
		o->kafka.topic = arg;
		return 0;
	case DD_OPT_PARTITIONS: {
		int32_t *ps;
		size_t n;
		if (dd_kafka_parse_partitions(arg, &ps, &n))
			return -1;
		free(ps);
		o->kafka.partitions = arg;
		return 0;
	}
	case DD_OPT_GROUP:
		o->kafka.group = arg;
		return 0;
	case DD_OPT_KEOF:
		o->kafka.eof = 1;
		return 0;
	case DD_OPT_KTIMEOUT:
		return positive_duration(arg, &o->kafka.timeout_ms);
	case DD_OPT_KOUT:
		o->kafka.out_topic = arg;
		return 0;
	case DD_OPT_KOUTBROKERS:
		o->kafka.out_brokers = arg;
		return 0;
	}
	return 1;
}

/* The Kafka options that go together; 0, or -1 (dd_errmsg()): a usage
 * error, nothing read. */
static int
kafka_usage(const struct dd_filter_opts *o)
{
	const struct dd_kafka_opts *k = &o->kafka;
	if (k->topic && k->brokers == NULL)
		dd_seterr("--topic needs --kafka BROKERS");
	else if (k->brokers && k->topic == NULL && k->out_topic == NULL)
		dd_seterr("--kafka needs --topic TOPIC (or --kafka-out TOPIC)");
	else if ((k->partitions || k->group || k->eof) && k->topic == NULL)
		dd_seterr("--partitions, --group and --kafka-eof need --kafka and --topic");
	else if (k->partitions && k->group)
		dd_seterr("--partitions (static) and --group (assigned by the group) exclude each other");
	else if (k->topic && o->nfiles)
		dd_seterr("--kafka --topic reads the topic: no FILE operands");
	else if (k->out_brokers && k->out_topic == NULL)
		dd_seterr("--kafka-out-brokers needs --kafka-out TOPIC");
	else if (k->out_topic && k->brokers == NULL && k->out_brokers == NULL)
		dd_seterr("--kafka-out needs --kafka BROKERS or --kafka-out-brokers BROKERS");
	else
		return 0;
	return -1;
}

/* Flush output, then commit: output first, because a status event the
 * store has recorded but nobody received would never be emitted again.
 * A reader that went away (| head) is no reason to lose what was read:
 * the store is committed all the same, and the run ends quietly. */
struct kafka {
	struct dd_kin *in;
	struct dd_kout *out;
};

/* With Kafka, between the two: every event the batch caused is
 * acknowledged by the broker before the store commits, and the offsets
 * read go into the store's own transaction (or the lake's parts). */
static int
commit(const struct dd_filter_ops *ops, void *ctx, int *gone, struct kafka *k)
{
	/* A program whose place is the group's offsets (no store, no
	 * kresume: dd-sim fly) has nothing to make durable but its output,
	 * which its commit writes: that goes first, to be sent with the
	 * rest. */
	int stateless = !ops->store && !ops->kresume;
	int rc = 0;
	if (stateless && ops->commit && (rc = ops->commit(ctx)) != 0)
		return rc;
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (!dd_stdout_gone()) {
			dd_seterr("stdout: %s", strerror(errno ? errno : EIO));
			return -1;
		}
		*gone = 1;
	}
	if (k->out && dd_kout_flush(k->out))
		return -1;
	struct dd_koffsets ko;
	if (k->in) {
		ko = dd_kin_positions(k->in);
		if (ops->store)
			ops->store->koff = &ko;
		else if (ops->koffsets && ops->koffsets(ctx, &ko))
			return -1;
	}
	if (!stateless && ops->commit)
		rc = ops->commit(ctx);
	if (k->in && ops->store) {
		/* A program whose commit had nothing of its own to write
		 * still records where it is. */
		if (rc == 0 && ops->store->koff)
			rc = dd_store_commit(ops->store);
		ops->store->koff = NULL;
	}
	/* The stateless program's place: committed (and waited for) before
	 * the run goes on; a failure only means a restart re-reads more. */
	if (rc == 0 && k->in)
		dd_kin_committed(k->in, &ko, stateless);
	return rc;
}

/* The program's start op, its note said; 1 when the run may go on (else
 * the reason is in dd_errmsg()). */
static int
begin(const struct dd_filter_opts *o, const struct dd_filter_ops *ops, void *ctx)
{
	struct dd_buf note = { 0 };
	int rc = ops->start ? ops->start(ctx, &note) : 0;
	if (rc == 0 && note.len && !o->quiet)
		dd_warn("%s", note.p);
	dd_buf_free(&note);
	return rc == 0;
}

static void
progress(const struct dd_filter_opts *o, const struct dd_filter_stats *st,
    int64_t start, int64_t now)
{
	double secs = (double)(now - start) / 1000.0;
	fprintf(stderr, "\r%s: %" PRIu64 " lines read, %.0f/s, %" PRIu64 " rejected\033[K",
	    dd_prog, st->read, secs > 0 ? (double)st->read / secs : 0.0, st->rejected);
}

/* The inputs in order: FILE operands ("-" is stdin), else o->fd; or a
 * Kafka topic. */
struct input {
	const struct dd_filter_opts *o;
	int next;		/* index of the next file to open */
	int fd;
	const char *name;
	struct dd_lines *lines;
	struct kafka k;
	struct dd_kmsg km;	/* the message read last */
};

/* The next Kafka message as a line (dd_lines_next_until's codes). */
static int
kafka_next(struct input *in, struct dd_line *l, int64_t until)
{
	int rc = dd_kin_next(in->k.in, &in->km, until);
	if (rc != 1)
		return rc == 0 ? DD_LINES_EOF : rc == -1 ? DD_LINES_ERR : DD_LINES_TIMEOUT;
	const char *p = in->km.p;
	size_t n = in->km.n;
	/* A producer that sent the line with its newline. */
	while (n && (p[n - 1] == '\n' || p[n - 1] == '\r'))
		n--;
	memset(l, 0, sizeof *l);
	l->p = (char *)p;
	l->n = n;
	l->fulllen = n;
	l->lineno = (uint64_t)in->km.offset;
	l->off = (uint64_t)in->km.offset;
	l->kpart = in->km.partition;
	l->ktopic = in->km.topic;
	if (n > in->o->max_line) {
		l->toolong = 1;
		l->n = DD_LINE_KEEP;
	}
	return DD_LINES_OK;
}

/* For the rebalance of a group: the run's commit, reached from inside
 * the consumer's poll. */
struct krun {
	const struct dd_filter_ops *ops;
	void *ctx;
	struct kafka *k;
	uint64_t *pending;
	int *gone;
};

static int64_t
kafka_resume(void *vr, const char *topic, int32_t partition)
{
	struct krun *r = vr;
	if (r->ops->store)
		return dd_store_koff_get(r->ops->store, topic, partition);
	if (r->ops->kresume)
		return r->ops->kresume(r->ctx, topic, partition);
	return -3;	/* no store: where the group committed */
}

static int
kafka_revoke(void *vr)
{
	struct krun *r = vr;
	if (commit(r->ops, r->ctx, r->gone, r->k))
		return -1;
	*r->pending = 0;
	return 0;
}

static void
kafka_notices(const struct dd_filter_opts *o, struct kafka *k)
{
	const char *m;
	if (k->in && (m = dd_kin_notice(k->in)) && !o->quiet)
		dd_warn("%s", m);
	if (k->out && (m = dd_kout_notice(k->out)) && !o->quiet)
		dd_warn("%s", m);
}

/* Open the next input; 1 opened, 0 none left, -1 failed (dd_errmsg()). */
static int
input_next(struct input *in)
{
	const struct dd_filter_opts *o = in->o;
	if (in->lines) {
		dd_lines_free(in->lines);
		in->lines = NULL;
		if (in->fd > 0)
			close(in->fd);
	}
	if (in->k.in)
		return in->next++ == 0;
	if (o->nfiles == 0) {
		if (in->next++ > 0)
			return 0;
		in->fd = o->fd;
		in->name = o->input;
	} else {
		if (in->next >= o->nfiles)
			return 0;
		const char *f = o->files[in->next++];
		if (strcmp(f, "-") == 0) {
			in->fd = 0;
			in->name = "stdin";
		} else {
			in->fd = open(f, O_RDONLY | O_CLOEXEC);
			if (in->fd < 0) {
				dd_seterr("%s: %s", f, strerror(errno));
				return -1;
			}
			in->name = f;
		}
	}
	in->lines = dd_lines_open(in->fd, in->name, o->max_line);
	return 1;
}

/* Types skipped from a family the program consumes that are none of
 * the toolkit's (a new major version named as a type, a typo): named in
 * the summary, so a producer's change is never lost without a word. */
#define UNKNOWN_MAX 8
struct unknown {
	struct {
		char *name;
		uint64_t n;
	} t[UNKNOWN_MAX];
	size_t n;
	uint64_t more;		/* events of further types */
};

static void
unknown_note(struct unknown *u, const char *const *families, const struct dd_env *e)
{
	const char *const *f;
	for (f = families; *f; f++)
		if (dd_env_type_has_prefix(e, *f))
			break;
	if (*f == NULL || dd_event_type_known(e))
		return;
	for (size_t i = 0; i < u->n; i++)
		if (strlen(u->t[i].name) == e->type.n &&
		    memcmp(u->t[i].name, e->type.p, e->type.n) == 0) {
			u->t[i].n++;
			return;
		}
	if (u->n == UNKNOWN_MAX) {
		u->more++;
		return;
	}
	struct dd_buf b = { 0 };
	dd_jstr_decode(&e->type, &b);
	u->t[u->n].name = b.p ? b.p : dd_strdup("");
	u->t[u->n++].n = 1;
}

static void
unknown_summary(const struct unknown *u, struct dd_buf *b)
{
	if (u->n == 0)
		return;
	dd_buf_adds(b, "; unknown types skipped: ");
	for (size_t i = 0; i < u->n; i++)
		dd_buf_printf(b, "%s%s (%" PRIu64 ")", i ? ", " : "", u->t[i].name, u->t[i].n);
	if (u->more)
		dd_buf_printf(b, " and %" PRIu64 " events of other types", u->more);
}

int
dd_filter_run(const struct dd_filter_opts *o, const struct dd_filter_ops *ops, void *ctx,
    struct dd_filter_stats *st)
{
	struct unknown unk = { .n = 0 };
	struct dd_filter_stats dummy;
	if (st == NULL)
		st = &dummy;
	memset(st, 0, sizeof *st);
	struct dd_rejects *rj = dd_rejects_open(o->rejects);
	if (rj == NULL) {
		dd_seterr("--rejects: %s", dd_errmsg());
		if (ops->finish)
			ops->finish(ctx, DD_EXIT_IO);
		return DD_EXIT_IO;
	}
	struct input in = { .o = o };
	char why[160], failure[1024] = "";
	int code = -1, committed_ok = 1, shown = 0, gone = 0;
	uint64_t pending = 0;
	struct krun kr = { ops, ctx, &in.k, &pending, &gone };
	if (kafka_usage(o)) {
		dd_rejects_close(rj);
		if (ops->finish)
			ops->finish(ctx, DD_EXIT_USAGE);
		return DD_EXIT_USAGE;
	}
	/* stdout is the producer's before anything is written to it. */
	int started = 1;
	if (o->kafka.out_topic) {
		in.k.out = dd_kout_open(o->kafka.out_brokers ? o->kafka.out_brokers :
		    o->kafka.brokers, o->kafka.out_topic, o->kafka.timeout_ms);
		started = in.k.out != NULL;
	}
	started = started && begin(o, ops, ctx);
	if (started && o->kafka.topic) {
		struct dd_kin_hooks h = { kafka_resume, kafka_revoke, &kr };
		in.k.in = dd_kin_open(&o->kafka, &h);
		started = in.k.in != NULL;
	}
	if (!started) {
		snprintf(failure, sizeof failure, "%s", dd_errmsg());
		code = DD_EXIT_IO;
	}
	int show_progress = o->progress == 2 || (o->progress && !o->quiet);
	int64_t deadline = 0, start = dd_now_ms(), last_progress = start;

	switch (started ? input_next(&in) : 1) {
	case 0:
		code = DD_EXIT_OK;
		break;
	case -1:
		snprintf(failure, sizeof failure, "%s", dd_errmsg());
		code = DD_EXIT_IO;
		break;
	}
	while (code < 0) {
		if (dd_signalled) {
			code = 128 + dd_signalled;
			break;
		}
		/* Wake up to commit an idle batch, and to show progress. */
		int64_t until = pending ? deadline : INT64_MAX;
		if (show_progress && until > last_progress + 1000)
			until = last_progress + 1000;
		struct dd_line l;
		int rc = in.k.in ? kafka_next(&in, &l, until) : dd_lines_next_until(in.lines, &l, until);
		if (in.k.in || in.k.out)
			kafka_notices(o, &in.k);
		if (show_progress) {
			int64_t now = dd_now_ms();
			if (now - last_progress >= 1000) {
				progress(o, st, start, now);
				last_progress = now;
				shown = 1;
			}
		}
		if (rc == DD_LINES_TIMEOUT) {
			if (pending && dd_now_ms() >= deadline) {
				if (commit(ops, ctx, &gone, &in.k)) {
					committed_ok = 0;
					code = DD_EXIT_IO;
					break;
				}
				pending = 0;
				if (gone)
					break;
			}
			continue;
		}
		if (rc == DD_LINES_INTR)
			continue;
		if (rc == DD_LINES_ERR) {
			snprintf(failure, sizeof failure, "%s", dd_errmsg());
			code = DD_EXIT_IO;
			break;
		}
		if (rc == DD_LINES_EOF) {
			int r = input_next(&in);
			if (r < 0) {
				snprintf(failure, sizeof failure, "%s", dd_errmsg());
				code = DD_EXIT_IO;
			}
			if (r == 0 && ops->end)
				ops->end(ctx);	/* the end of the last input */
			if (r <= 0)
				break;
			continue;
		}
		st->read++;
		enum dd_verdict v;
		if (l.toolong) {
			snprintf(why, sizeof why, "line longer than %zu bytes (--max-line)",
			    o->max_line);
			dd_seterr("%s", why);
			v = DD_REJECT;
		} else if (o->raw) {
			v = ops->line(ctx, &l);
		} else {
			struct dd_env e;
			v = dd_env_scan(l.p, l.n, &e) ? DD_REJECT : ops->event(ctx, &l, &e);
			if (v == DD_SKIP && ops->families)
				unknown_note(&unk, ops->families, &e);
		}
		switch (v) {
		case DD_ACCEPT:
			st->accepted++;
			break;
		case DD_SKIP:
			st->skipped++;
			break;
		case DD_REJECT:
			st->rejected++;
			if (in.k.in ? dd_reject_kafka(rj, in.km.topic, in.km.partition, in.km.offset, l.p, l.n,
			    l.toolong, dd_errmsg()) :
			    dd_reject(rj, in.name, ops->origin ? ops->origin(ctx, &l) : &l,
			    dd_errmsg())) {
				snprintf(failure, sizeof failure, "%s", dd_errmsg());
				code = DD_EXIT_IO;
			} else if (o->strict) {
				code = DD_EXIT_STRICT;
			}
			break;
		case DD_FAIL:
			/* A write to a stdout whose reader left failed this line
			 * half done: that ends the run quietly, without committing
			 * the half line (and its batch), so a replay stays exact. */
			if (dd_stdout_gone()) {
				gone = 1;
				committed_ok = 0;
				code = DD_EXIT_OK;
				break;
			}
			snprintf(failure, sizeof failure, "%s", dd_errmsg());
			code = DD_EXIT_IO;
			break;
		}
		if (pending++ == 0)
			deadline = dd_now_ms() + o->flush_ms;
		/* What is written goes to the broker while the batch goes on:
		 * its acknowledgements come in meanwhile (looked at every 64
		 * lines; stdio's buffer holds the newest). */
		if (in.k.out && (pending & 63) == 0 && code < 0 && dd_kout_pump(in.k.out)) {
			snprintf(failure, sizeof failure, "%s", dd_errmsg());
			committed_ok = 0;
			code = DD_EXIT_IO;
			break;
		}
		/* With flush_busy, a stream that never pauses is committed by
		 * --flush-interval too, not only by --batch: what was read is
		 * durable within it. (The clock is read every 64 lines: 64
		 * lines take far less than a millisecond.) */
		if (code < 0 && (pending >= o->batch || (o->flush_busy &&
		    (pending & 63) == 0 && dd_now_ms() >= deadline))) {
			if (commit(ops, ctx, &gone, &in.k)) {
				committed_ok = 0;
				code = DD_EXIT_IO;
				break;
			}
			pending = 0;
			if (gone)
				break;
		}
	}
	if (shown)
		fputs("\n", stderr);
	/* Whatever stopped us, what was read and accepted is committed now
	 * (unless committing is what failed, or the run never started). */
	if (started && committed_ok && commit(ops, ctx, &gone, &in.k)) {
		committed_ok = 0;
		if (code < 0 || code == DD_EXIT_OK || code == DD_EXIT_REJECTED ||
		    code == DD_EXIT_STRICT || code > 128)
			code = DD_EXIT_IO;
	}
	if (!committed_ok && !gone && failure[0] == '\0')
		snprintf(failure, sizeof failure, "%s", dd_errmsg());
	/* Leaving the group now: its revocation finds everything committed. */
	dd_kin_close(in.k.in);
	in.k.in = NULL;
	dd_kout_close(in.k.out);
	in.k.out = NULL;
	if (code < 0)
		code = st->rejected ? DD_EXIT_REJECTED : DD_EXIT_OK;
	if (ops->finish && ops->finish(ctx, code)) {
		if (failure[0] == '\0')
			snprintf(failure, sizeof failure, "%s", dd_errmsg());
		code = DD_EXIT_IO;
	}
	if (code == DD_EXIT_STRICT)
		dd_warn("stopped at the first bad line (--strict)");
	/* A reader gone away (| head) ends the run without a word. */
	if (!o->quiet && started && !gone) {
		struct dd_buf b = { 0 };
		dd_buf_printf(&b, "read %" PRIu64 ", accepted %" PRIu64 ", ignored %" PRIu64
		    ", rejected %" PRIu64, st->read, st->accepted, st->skipped, st->rejected);
		if (ops->summary)
			ops->summary(ctx, &b);
		unknown_summary(&unk, &b);
		dd_warn("%s", b.p);
		dd_buf_free(&b);
	}
	if (dd_rejects_close(rj) && failure[0] == '\0') {
		snprintf(failure, sizeof failure, "%s", dd_errmsg());
		code = DD_EXIT_IO;
	}
	for (size_t i = 0; i < unk.n; i++)
		free(unk.t[i].name);
	if (in.lines) {
		dd_lines_free(in.lines);
		if (in.fd > 0)
			close(in.fd);
	}
	/* The first failure is the one the program reports (dd_cli_finish). */
	if (failure[0])
		dd_seterr("%s", failure);
	return code;
}
