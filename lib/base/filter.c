#include <errno.h>
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
	/* No SA_RESTART: a blocked read returns EINTR, so the loop notices. */
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
	case 'q':
		o->quiet = 1;
		return 0;
	case DD_OPT_MAXLINE:
		if (dd_parse_size(arg, 16, (uint64_t)1 << 30, &v)) {
			dd_warn("--max-line: %s", dd_errmsg());
			return -1;
		}
		o->max_line = (size_t)v;
		return 0;
	case DD_OPT_BATCH:
		if (dd_parse_u64(arg, 1, 10000000, &v)) {
			dd_warn("--batch: %s", dd_errmsg());
			return -1;
		}
		o->batch = v;
		return 0;
	case DD_OPT_FLUSH:
		if (dd_duration_parse(arg, &ms) || ms <= 0) {
			dd_warn("--flush-interval: %s", ms <= 0 ? "must be positive" : dd_errmsg());
			return -1;
		}
		o->flush_ms = ms;
		return 0;
	}
	return 1;
}

/* Flush output, then commit: output first, because a status event the
 * store has recorded but nobody received would never be emitted again. */
static int
commit(const struct dd_filter_ops *ops, void *ctx)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		dd_seterr("stdout: %s", strerror(errno ? errno : EIO));
		return -1;
	}
	return ops->commit ? ops->commit(ctx) : 0;
}

/* Report the failure in dd_errmsg(), unless it is the one just reported:
 * a write error on stdout fails the line and then the final commit. */
static void
say_failure(char *last, size_t lastsz)
{
	if (strcmp(last, dd_errmsg()) == 0)
		return;
	snprintf(last, lastsz, "%s", dd_errmsg());
	dd_warn("%s", last);
}

static void
progress(const struct dd_filter_opts *o, const struct dd_filter_stats *st,
    int64_t start, int64_t now)
{
	double secs = (double)(now - start) / 1000.0;
	fprintf(stderr, "\r%s: %" PRIu64 " lines read, %.0f/s, %" PRIu64 " rejected\033[K",
	    dd_prog, st->read, secs > 0 ? (double)st->read / secs : 0.0, st->rejected);
}

int
dd_filter_run(const struct dd_filter_opts *o, const struct dd_filter_ops *ops, void *ctx,
    struct dd_filter_stats *st)
{
	struct dd_filter_stats dummy;
	if (st == NULL)
		st = &dummy;
	memset(st, 0, sizeof *st);
	struct dd_rejects *rj = dd_rejects_open(o->rejects);
	if (rj == NULL) {
		dd_warn("--rejects: %s", dd_errmsg());
		return DD_EXIT_IO;
	}
	struct dd_lines *in = dd_lines_open(o->fd, o->input, o->max_line);
	int code = -1, committed_ok = 1, shown = 0;
	int show_progress = o->progress == 2 || (o->progress && !o->quiet);
	uint64_t pending = 0;
	int64_t deadline = 0, start = dd_now_ms(), last_progress = start;
	char why[160], said[1024] = "";

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
		int rc = dd_lines_next_until(in, &l, until);
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
				if (commit(ops, ctx)) {
					committed_ok = 0;
					code = DD_EXIT_IO;
					break;
				}
				pending = 0;
			}
			continue;
		}
		if (rc == DD_LINES_INTR)
			continue;
		if (rc == DD_LINES_ERR) {
			say_failure(said, sizeof said);
			code = DD_EXIT_IO;
			break;
		}
		if (rc == DD_LINES_EOF) {
			if (ops->end)
				ops->end(ctx);
			break;
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
			if (dd_reject(rj, o->input, ops->origin ? ops->origin(ctx, &l) : &l,
			    dd_errmsg())) {
				say_failure(said, sizeof said);
				code = DD_EXIT_IO;
			} else if (o->strict) {
				code = DD_EXIT_STRICT;
			}
			break;
		case DD_FAIL:
			say_failure(said, sizeof said);
			code = DD_EXIT_IO;
			break;
		}
		if (pending++ == 0)
			deadline = dd_now_ms() + o->flush_ms;
		if (code < 0 && pending >= o->batch) {
			if (commit(ops, ctx)) {
				committed_ok = 0;
				code = DD_EXIT_IO;
				break;
			}
			pending = 0;
		}
	}
	if (shown)
		fputs("\n", stderr);
	/* Whatever stopped us, what was read and accepted is committed now
	 * (unless committing is what failed). */
	if (committed_ok && commit(ops, ctx)) {
		committed_ok = 0;
		if (code < 0 || code == DD_EXIT_OK || code == DD_EXIT_REJECTED ||
		    code == DD_EXIT_STRICT || code > 128)
			code = DD_EXIT_IO;
	}
	if (!committed_ok)
		say_failure(said, sizeof said);
	if (code < 0)
		code = st->rejected ? DD_EXIT_REJECTED : DD_EXIT_OK;
	if (code == DD_EXIT_STRICT)
		dd_warn("stopped at the first bad line (--strict)");
	if (!o->quiet) {
		struct dd_buf b = { 0 };
		dd_buf_printf(&b, "read %" PRIu64 ", accepted %" PRIu64 ", ignored %" PRIu64
		    ", rejected %" PRIu64, st->read, st->accepted, st->skipped, st->rejected);
		if (ops->summary)
			ops->summary(ctx, &b);
		dd_warn("%s", b.p);
		dd_buf_free(&b);
	}
	if (dd_rejects_close(rj)) {
		say_failure(said, sizeof said);
		code = DD_EXIT_IO;
	}
	dd_lines_free(in);
	return code;
}
