#include <errno.h>
#include <getopt.h>
#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "exitcodes.h"
#include "filter.h"
#include "util.h"

/* -h and -V belong to every command. */
enum { KEY_HELP = -1, KEY_VERSION = -2 };
static const struct dd_opt common[] = {
	{ "help", 'h', NULL, "print this help and exit", KEY_HELP, 0 },
	{ "version", 'V', NULL, "print the version and exit", KEY_VERSION, 0 },
	DD_OPT_END,
};

int
dd_cli_usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", dd_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return DD_EXIT_USAGE;
}

int
dd_cli_bad_choice(const char *v, const char *kind, const char *const *names, int n)
{
	struct dd_buf b = { 0 };
	for (int i = 0; i < n; i++)
		dd_buf_printf(&b, "%s%s", i ? ", " : "", names[i]);
	dd_seterr("\"%s\" is not %s (%s)", v, kind, b.p ? b.p : "");
	dd_buf_free(&b);
	return -1;
}

/* Call fn on every option of cmd, common ones last; stops when fn is nonzero. */
static const struct dd_opt *
each_opt(const struct dd_cmd *cmd, int (*fn)(const struct dd_opt *, const void *),
    const void *arg)
{
	for (const struct dd_opt *const *t = cmd->opts; t && *t; t++)
		for (const struct dd_opt *o = *t; o->name || o->sname; o++)
			if (fn(o, arg))
				return o;
	for (const struct dd_opt *o = common; o->name; o++)
		if (fn(o, arg))
			return o;
	return NULL;
}

/* An option as the user wrote it: "--db", or "-l" for a short-only one. */
static void
opt_label(const struct dd_opt *o, char *buf, size_t n)
{
	if (o->name)
		snprintf(buf, n, "--%s", o->name);
	else
		snprintf(buf, n, "-%c", o->sname);
}

/* What an argument names: "--db=x" and "--db" are "db"; "-lX" is 'l'. */
struct spell {
	const char *name;
	size_t len;
	char sname;
};

static int
matches(const struct dd_opt *o, const void *arg)
{
	const struct spell *s = arg;
	if (s->name)
		return o->name && strlen(o->name) == s->len && strncmp(o->name, s->name, s->len) == 0;
	return o->sname && o->sname == s->sname;
}

static struct spell
spell_of(const char *a)
{
	struct spell s = { NULL, 0, 0 };
	if (a[1] == '-') {
		s.name = a + 2;
		const char *eq = strchr(s.name, '=');
		s.len = eq ? (size_t)(eq - s.name) : strlen(s.name);
	} else {
		s.sname = a[1];
	}
	return s;
}

/* The option spelled a in any command of p, or NULL. */
static const struct dd_opt *
find_any(const struct dd_prog *p, const char *a)
{
	struct spell s = spell_of(a);
	for (const struct dd_cmd *c = p->cmds; c->run; c++) {
		const struct dd_opt *o = each_opt(c, matches, &s);
		if (o)
			return o;
	}
	return NULL;
}

/* How many of the words after argument a it consumes as its values. */
static int
values_after(const struct dd_prog *p, const char *a)
{
	const struct dd_opt *o = find_any(p, a);
	if (o == NULL || o->arg == NULL)
		return 0;
	int attached = a[1] == '-' ? strchr(a, '=') != NULL : a[2] != '\0';
	int n = attached ? 0 : 1;
	return o->flags & DD_CLI_TWO ? n + 1 : n;
}

/* The first word of a command's name, its length. */
static size_t
word1(const char *name)
{
	const char *sp = strchr(name, ' ');
	return sp ? (size_t)(sp - name) : strlen(name);
}

/*
 * Find the command: the first word that is not an option or an option's
 * value. *at is its index in argv (0: none, the program's default), and
 * *words how many words name it (2 for "fleet import").
 */
static const struct dd_cmd *
find_cmd(const struct dd_prog *p, int argc, char **argv, int *at, int *words)
{
	const struct dd_cmd *dflt = NULL;
	int named = 0;
	for (const struct dd_cmd *c = p->cmds; c->run; c++) {
		if (c->name == NULL)
			dflt = c;
		else
			named = 1;
	}
	*at = 0;
	*words = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0)
			break;
		if (a[0] == '-' && a[1] != '\0') {
			i += values_after(p, a);
			continue;
		}
		for (const struct dd_cmd *c = p->cmds; c->run; c++) {
			if (c->name == NULL)
				continue;
			size_t n = word1(c->name);
			if (strlen(a) != n || strncmp(a, c->name, n) != 0)
				continue;
			if (c->name[n] == '\0') {
				*at = i;
				*words = 1;
				return c;
			}
			/* Two words: the second follows at once. */
			if (i + 1 < argc && strcmp(argv[i + 1], c->name + n + 1) == 0) {
				*at = i;
				*words = 2;
				return c;
			}
		}
		/* Not a command: an operand of the default command (a FILE), if
		 * any; but a bare word that names no file is a mistyped command. */
		if (dflt && (!named || strcmp(a, "-") == 0 || strpbrk(a, "/.") ||
		    access(a, F_OK) == 0))
			return dflt;
		struct dd_buf b = { 0 };
		for (const struct dd_cmd *c = p->cmds; c->run; c++)
			if (c->name)
				dd_buf_printf(&b, "%s%s", b.len ? ", " : "", c->name);
		dd_cli_usage_error("unknown command \"%s\" (commands: %s)", a, b.p);
		dd_buf_free(&b);
		*at = -1;	/* said */
		return NULL;
	}
	return dflt;	/* NULL: no command, said by the caller unless -h or -V */
}

/* --help: the synopsis of every command, then one line per option. */
static void
synopsis(FILE *f, const struct dd_prog *p, const struct dd_cmd *c, int first)
{
	char buf[96];
	const char *lead = first ? "usage: " : "       ";
	int indent = (int)strlen("usage: ") + (int)strlen(p->name) + 1;
	int col = fprintf(f, "%s%s", lead, p->name);
	if (c->name)
		col += fprintf(f, " %s", c->name);
	for (const struct dd_opt *const *t = c->opts; t && *t; t++) {
		for (const struct dd_opt *o = *t; o->name || o->sname; o++) {
			char lab[48];
			/* The short form where there is one, as man pages write it. */
			if (o->sname)
				snprintf(lab, sizeof lab, "-%c", o->sname);
			else
				opt_label(o, lab, sizeof lab);
			int req = (o->flags & DD_CLI_REQUIRED) != 0;
			if (o->arg)
				snprintf(buf, sizeof buf, "%s%s %s%s%s", req ? "" : "[", lab, o->arg,
				    o->flags & DD_CLI_TWO ? " VALUE" : "", req ? "" : "]");
			else
				snprintf(buf, sizeof buf, "%s%s%s", req ? "" : "[", lab, req ? "" : "]");
			if (col + 1 + (int)strlen(buf) > 79)
				col = fprintf(f, "\n%*s", indent - 1, "") - 1;
			col += fprintf(f, " %s", buf);
		}
	}
	if (c->operands) {
		if (col + 1 + (int)strlen(c->operands) > 79)
			fprintf(f, "\n%*s", indent - 1, "");
		fprintf(f, " %s", c->operands);
	}
	fputc('\n', f);
}

struct seen {
	const struct dd_opt **v;
	int n;
};

static void
help(const struct dd_prog *p)
{
	int first = 1;
	for (const struct dd_cmd *c = p->cmds; c->run; c++, first = 0)
		synopsis(stdout, p, c, first);
	printf("       %s -h | -V\n", p->name);
	if (p->about)
		printf("\n%s", p->about);
	printf("\nOptions:\n");
	/* Each option once, in the order the commands list them. */
	struct seen s = { 0 };
	for (const struct dd_cmd *c = p->cmds; c->run; c++) {
		for (const struct dd_opt *const *t = c->opts; t && *t; t++) {
			for (const struct dd_opt *o = *t; o->name || o->sname; o++) {
				int dup = 0;
				for (int i = 0; i < s.n && !dup; i++)
					dup = (o->name && s.v[i]->name && strcmp(o->name, s.v[i]->name) == 0) ||
					    (!o->name && o->sname == s.v[i]->sname);
				if (!dup) {
					s.v = dd_realloc(s.v, (size_t)(s.n + 1) * sizeof *s.v);
					s.v[s.n++] = o;
				}
			}
		}
	}
	for (const struct dd_opt *o = common; o->name; o++) {
		s.v = dd_realloc(s.v, (size_t)(s.n + 1) * sizeof *s.v);
		s.v[s.n++] = o;
	}
	for (int i = 0; i < s.n; i++) {
		const struct dd_opt *o = s.v[i];
		char spec[80];
		int k = 0;
		if (o->sname && o->name)
			k = snprintf(spec, sizeof spec, "-%c, --%s", o->sname, o->name);
		else if (o->name)
			k = snprintf(spec, sizeof spec, "--%s", o->name);
		else
			k = snprintf(spec, sizeof spec, "-%c", o->sname);
		if (o->arg)
			snprintf(spec + k, sizeof spec - (size_t)k, " %s%s", o->arg,
			    o->flags & DD_CLI_TWO ? " VALUE" : "");
		if (strlen(spec) > 22)
			printf("  %s\n  %22s  %s\n", spec, "", o->help);
		else
			printf("  %-22s  %s\n", spec, o->help);
	}
	free(s.v);
}

/* The getopt_long tables of one command. */
struct table {
	struct option *lo;		/* the long ones, zero-terminated */
	int nlo;
	const struct dd_opt **opt;	/* all, by getopt's val - 0x100 */
	unsigned char *seen;		/* given on the command line, by the same index */
	int n;
	char shorts[128];
};

static int
add_opt(const struct dd_opt *o, const void *arg)
{
	struct table *t = (struct table *)arg;
	t->opt = dd_realloc(t->opt, (size_t)(t->n + 1) * sizeof *t->opt);
	t->opt[t->n] = o;
	t->seen = dd_realloc(t->seen, (size_t)(t->n + 1));
	t->seen[t->n] = 0;
	t->lo = dd_realloc(t->lo, (size_t)(t->nlo + 2) * sizeof *t->lo);
	if (o->name)
		t->lo[t->nlo++] = (struct option){ o->name,
			o->arg ? required_argument : no_argument, NULL, 0x100 + t->n };
	memset(&t->lo[t->nlo], 0, sizeof *t->lo);
	if (o->sname) {
		size_t k = strlen(t->shorts);
		if (k + 3 < sizeof t->shorts) {
			t->shorts[k++] = o->sname;
			if (o->arg)
				t->shorts[k++] = ':';
			t->shorts[k] = '\0';
		}
	}
	t->n++;
	return 0;
}

static const struct dd_opt *
by_short(const struct table *t, int ch)
{
	for (int i = 0; i < t->n; i++)
		if (t->opt[i]->sname == ch)
			return t->opt[i];
	return NULL;
}

/* Parse cmd's options in args (the command's words removed); the operands
 * are left at args[*first..argc). Returns -1 to go on, else an exit code. */
static int
parse(const struct dd_prog *p, const struct dd_cmd *cmd, int argc, char **args, int *first)
{
	struct table t = { .shorts = ":" };
	each_opt(cmd, add_opt, &t);
	int code = -1, ch, idx;
	optind = 1;
	opterr = 0;
	while (code < 0 && (ch = getopt_long(argc, args, t.shorts, t.lo, &idx)) != -1) {
		const struct dd_opt *o = NULL;
		char lab[64];
		if (ch == '?' || ch == ':') {
			const char *a = args[optind - 1];
			/* A short option's letter is optopt; a long one's, the word. */
			if (optopt && a[1] != '-')
				snprintf(lab, sizeof lab, "-%c", optopt);
			else
				snprintf(lab, sizeof lab, "%.*s", (int)strcspn(a, "="), a);
			if (ch == ':') {
				o = find_any(p, lab);
				code = dd_cli_usage_error("%s needs a value%s%s", lab, o ? ": " : "",
				    o ? o->arg : "");
			} else if (find_any(p, lab)) {
				code = dd_cli_usage_error("%s is not an option of %s%s%s", lab,
				    cmd->name ? "the command " : "the filter", cmd->name ? cmd->name : "",
				    cmd->name ? "" : " (no command)");
			} else {
				code = dd_cli_usage_error("unknown option %s (see %s --help)", lab, dd_prog);
			}
			break;
		}
		o = ch >= 0x100 ? t.opt[ch - 0x100] : by_short(&t, ch);
		if (o == NULL) {
			code = dd_cli_usage_error("unknown option -%c", ch);
			break;
		}
		if (o->key == KEY_HELP) {
			help(p);
			code = DD_EXIT_OK;
			break;
		}
		if (o->key == KEY_VERSION) {
			printf("%s %s\n", p->name, DD_VERSION);
			code = DD_EXIT_OK;
			break;
		}
		const char *arg2 = NULL;
		opt_label(o, lab, sizeof lab);
		if (o->flags & DD_CLI_TWO) {
			if (optind >= argc) {
				code = dd_cli_usage_error("%s takes two words: %s %s VALUE", lab, lab,
				    o->arg);
				break;
			}
			arg2 = args[optind++];
		}
		if (p->set(p->ctx, o->key, optarg, arg2))
			code = dd_cli_usage_error("%s: %s", lab, dd_errmsg());
		for (int i = 0; i < t.n; i++)
			if (t.opt[i] == o)
				t.seen[i] = 1;
	}
	for (int i = 0; code < 0 && i < t.n; i++)
		if ((t.opt[i]->flags & DD_CLI_REQUIRED) && !t.seen[i]) {
			char lab[64];
			opt_label(t.opt[i], lab, sizeof lab);
			code = dd_cli_usage_error("%s: %s %s is required",
			    cmd->name ? cmd->name : p->name, lab, t.opt[i]->arg ? t.opt[i]->arg : "");
		}
	free(t.lo);
	free(t.opt);
	free(t.seen);
	*first = optind;
	return code;
}

int
dd_cli_finish(int code)
{
	/* The command's own failure is the one to say, not what closing a
	 * stdout that already failed says after it. */
	char why[1024];
	snprintf(why, sizeof why, "%s", dd_errmsg());
	/* Whether the reader went away is asked while stdout is still open. */
	fflush(stdout);
	int gone = dd_stdout_gone();
	int bad = dd_close_stdout();
	if (dd_signalled)
		return 128 + dd_signalled;
	if (gone)
		return 128 + SIGPIPE;
	if (code == DD_EXIT_IO || code == DD_EXIT_BUSY) {
		dd_warn("%s", why);
		return code;
	}
	if (bad) {
		dd_warn("%s", dd_errmsg());
		return DD_EXIT_IO;
	}
	return code;
}

/* The first of the FILE operands that cannot be read, said in dd_errmsg(). */
static int
unreadable(char **files, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(files[i], "-") != 0 && access(files[i], R_OK) != 0) {
			dd_seterr("%s: %s", files[i], strerror(errno));
			return 1;
		}
	return 0;
}

int
dd_cli_main(const struct dd_prog *p, int argc, char **argv)
{
	setlocale(LC_ALL, "");
	dd_prog = p->name;
	if (p->commits)
		dd_signals_init();
	else
		signal(SIGPIPE, SIG_IGN);	/* a reader gone is seen as EPIPE: exit 141 */
	int at, words;
	const struct dd_cmd *cmd = find_cmd(p, argc, argv, &at, &words);
	if (cmd == NULL) {
		/* -h and -V still answer without a command. */
		for (int i = 1; i < argc; i++) {
			if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
				help(p);
				return dd_cli_finish(DD_EXIT_OK);
			}
			if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
				printf("%s %s\n", p->name, DD_VERSION);
				return dd_cli_finish(DD_EXIT_OK);
			}
		}
		if (at == 0)
			dd_cli_usage_error("no command given (see %s --help)", dd_prog);
		return DD_EXIT_USAGE;
	}
	/* The command's words out of argv; getopt's messages name the program. */
	char **args = dd_malloc((size_t)(argc + 1) * sizeof *args);
	int n = 0;
	for (int i = 0; i < argc; i++)
		if (at == 0 || i < at || i >= at + words)
			args[n++] = argv[i];
	args[n] = NULL;
	int first, code = parse(p, cmd, n, args, &first);
	if (code < 0) {
		int nops = n - first;
		const char *what = cmd->name ? cmd->name : p->name;
		if (nops < cmd->min)
			code = dd_cli_usage_error("%s: missing %s", what, cmd->operands);
		else if (cmd->max >= 0 && nops > cmd->max)
			code = dd_cli_usage_error("%s: unexpected argument \"%s\"", what,
			    args[first + cmd->max]);
		else if (p->check && p->check(p->ctx, cmd))
			code = dd_cli_usage_error("%s", dd_errmsg());
		else if (cmd->files && unreadable(args + first, nops))
			code = DD_EXIT_IO;
		else
			code = cmd->run(p->ctx, nops, args + first);
	}
	free(args);
	return dd_cli_finish(code);
}
