/*
 * The command line of every dd program, in the manner of git's builtin/:
 * a program is a table of commands (the filter is the command with no
 * name), each with its own option table, operands and function. One
 * parser reads argv for all of them, one printer writes --help from the
 * same tables (so the usage cannot drift from what is parsed), and one
 * finish step closes stdout and turns what happened into the exit status
 * of SPEC.md: a signal is 128+N, a reader gone away is 141, both silent;
 * any other failure is said once, here.
 *
 * Options go before or after the command alike (`dd-track --db X stats`
 * and `dd-track stats --db X`). A bad value is one line:
 * `dd-track: --stage: "complete" is not a stage (created, ...)`, exit 2.
 */
#ifndef DD_CLI_H
#define DD_CLI_H

#include <stdio.h>

enum {
	DD_CLI_TWO = 1 << 0,	/* takes two words (--arg NAME VALUE) */
	DD_CLI_REQUIRED = 1 << 1,	/* the command needs it (no brackets in the usage) */
};

struct dd_opt {
	const char *name;	/* long name without "--", or NULL */
	char sname;		/* short letter, or 0 */
	const char *arg;	/* the value's placeholder ("FILE"); NULL: a flag */
	const char *help;	/* one line: what it does, and its default */
	int key;		/* handed to the program's set() */
	unsigned flags;		/* DD_CLI_* */
};
#define DD_OPT_END { NULL, 0, NULL, NULL, 0, 0 }

struct dd_cmd {
	const char *name;	/* "get", "fleet import"; NULL: no command (the filter) */
	const char *operands;	/* in the synopsis ("ID...", "[FILE...]"), or NULL */
	int min, max;		/* how many operands (max < 0: any number) */
	const struct dd_opt *const *opts;	/* option tables, NULL-terminated */
	/* Run with the operands; returns the exit code (enum dd_exit). */
	int (*run)(void *ctx, int argc, char **argv);
	/* 1: the operands are input FILEs ("-" is stdin), each checked to be
	 * readable before run(), so a typo touches no store. */
	int files;
};

struct dd_prog {
	const char *name;	/* "dd-track" */
	const char *about;	/* printed by --help after the usage, or NULL */
	const struct dd_cmd *cmds;	/* ends with an entry whose run is NULL */
	/* Take option key's value (arg2: the second word of DD_CLI_TWO);
	 * 0, or -1 with the reason in dd_errmsg(). */
	int (*set)(void *ctx, int key, const char *arg, const char *arg2);
	/* Optional: checks across options once all are set; 0 or -1. */
	int (*check)(void *ctx, const struct dd_cmd *cmd);
	/* 1: SIGINT and SIGTERM set dd_signalled, for a program that commits
	 * before it stops (its loops look); 0: they end it at once. */
	int commits;
	void *ctx;
};

/* Parse argv, run the command, finish; returns main()'s status. */
int dd_cli_main(const struct dd_prog *p, int argc, char **argv);

/* A usage error from set(), check() or run(): one line, "PROG: msg". */
int dd_cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The exit status of a command that returned code: flush and close
 * stdout; a signal received wins (128+N, nothing said), then a reader
 * gone away (141, nothing said); else a failure of stdout or code ==
 * DD_EXIT_IO/DD_EXIT_BUSY says dd_errmsg() once.
 */
int dd_cli_finish(int code);

/* For set(): "V is not a KIND (a, b, c)" into dd_errmsg(); returns -1. */
int dd_cli_bad_choice(const char *v, const char *kind, const char *const *names, int n);

#endif
