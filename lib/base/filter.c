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
}

int
dd_filter_setopt(struct dd_filter_opts *o, int code, const char *arg)
{
	uint64_t v;
	int64_t ms;
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
		if (dd_duration_parse(arg, &ms))
			return -1;
		if (ms <= 0) {
			dd_seterr("must be positive");
			return -1;
		}
		o->flush_ms = ms;
		return 0;
	}
	return 1;
}

/* Flush output, then commit: output first, because a status event the
 * store has recorded but nobody received would never be emitted again.
 * A reader that went away (| head) is no reason to lose what was read:
 * the store is committed all the same, and the run ends quietly. */
static int
commit(const struct dd_filter_ops *ops, void *ctx, int *gone)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (!dd_stdout_gone()) {
			dd_seterr("stdout: %s", strerror(errno ? errno : EIO));
			return -1;
		}
		*gone = 1;
	}
	return ops->commit ? ops->commit(ctx) : 0;
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

/* The inputs in order: FILE operands ("-" is stdin), else o->fd. */
struct input {
	const struct dd_filter_opts *o;
	int next;		/* index of the next file to open */
	int fd;
	const char *name;
	struct dd_lines *lines;
};

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
	int started = begin(o, ops, ctx);
	if (!started)
		snprintf(failure, sizeof failure, "%s", dd_errmsg());
	int code = started ? -1 : DD_EXIT_IO, committed_ok = 1, shown = 0, gone = 0;
	int show_progress = o->progress == 2 || (o->progress && !o->quiet);
	uint64_t pending = 0;
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
		int rc = dd_lines_next_until(in.lines, &l, until);
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
				if (commit(ops, ctx, &gone)) {
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
			if (dd_reject(rj, in.name, ops->origin ? ops->origin(ctx, &l) : &l,
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
		if (code < 0 && pending >= o->batch) {
			if (commit(ops, ctx, &gone)) {
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
	if (started && committed_ok && commit(ops, ctx, &gone)) {
		committed_ok = 0;
		if (code < 0 || code == DD_EXIT_OK || code == DD_EXIT_REJECTED ||
		    code == DD_EXIT_STRICT || code > 128)
			code = DD_EXIT_IO;
	}
	if (!committed_ok && !gone && failure[0] == '\0')
		snprintf(failure, sizeof failure, "%s", dd_errmsg());
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
