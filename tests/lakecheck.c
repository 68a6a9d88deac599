/*
 * dd-lakecheck: drives the lake primitives of lib/lake.h for
 * tests/lake.bats (the writer is driven by dd-lake-ingest).
 *   partitions LAKE DATASET [SINCE [UNTIL]]   YYYY-MM-DD PATH per partition
 *   parts PARTITION                 NAME META EVENTS MIN MAX TYPE=N...
 *   may PART id|subject KEY         "maybe" or "no"
 *   cat PART                        the part's lines, via the reader
 *   verify PART                     the number of lines, or the fault
 *   clean PARTITION                 the number of stale files removed
 *   compact LAKE DATASET DAY [PARTSIZE]   the compaction's figures
 *   write LAKE DATASET              events on stdin through the writer,
 *                                   then the paths it made visible
 * Exit 0, 4 on an error (message on stderr), 2 on bad usage.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ddtime.h"
#include "event.h"
#include "exitcodes.h"
#include "lake.h"
#include "line.h"
#include "util.h"

static int
fail(void)
{
	dd_warn("%s", dd_errmsg());
	return DD_EXIT_IO;
}

static int64_t
timearg(const char *s)
{
	int64_t ms;
	if (dd_time_arg(s, dd_now_ms(), &ms))
		dd_die(DD_EXIT_USAGE, "%s", dd_errmsg());
	return ms;
}

static int
cmd_partitions(int argc, char **argv)
{
	int64_t since = argc > 2 ? timearg(argv[2]) : DD_LAKE_MIN_MS;
	int64_t until = argc > 3 ? timearg(argv[3]) : DD_LAKE_MAX_MS;
	struct dd_lake_partition *p;
	size_t n;
	if (dd_lake_partitions(argv[0], argv[1], since, until, &p, &n))
		return fail();
	for (size_t i = 0; i < n; i++) {
		char t[DD_TIMEBUF];
		dd_time_format(p[i].day * 86400000LL, t);
		printf("%.10s %s\n", t, p[i].path);
	}
	dd_lake_partitions_free(p, n);
	return 0;
}

static int
cmd_parts(char **argv)
{
	struct dd_lake_part *p;
	size_t n;
	if (dd_lake_parts(argv[0], &p, &n))
		return fail();
	for (size_t i = 0; i < n; i++) {
		printf("%s %d", p[i].name, p[i].has_meta);
		if (p[i].has_meta) {
			char a[DD_TIMEBUF], b[DD_TIMEBUF];
			dd_time_format(p[i].meta.min_ms, a);
			dd_time_format(p[i].meta.max_ms, b);
			printf(" %" PRIu64 " %s %s", p[i].meta.events, a, b);
			for (size_t j = 0; j < p[i].meta.ntypes; j++)
				printf(" %s=%" PRIu64, p[i].meta.types[j].type, p[i].meta.types[j].n);
		}
		putchar('\n');
	}
	dd_lake_parts_free(p, n);
	return 0;
}

static int
cmd_may(char **argv)
{
	struct dd_lake_meta m;
	int rc = dd_lake_meta_load(argv[0], &m);
	if (rc < 0)
		return fail();
	const struct dd_lake_meta *mp = rc ? &m : NULL;
	int may;
	if (strcmp(argv[1], "id") == 0)
		may = dd_lake_may_have_id(mp, argv[2], strlen(argv[2]));
	else if (strcmp(argv[1], "subject") == 0)
		may = dd_lake_may_have_subject(mp, argv[2], strlen(argv[2]));
	else
		dd_die(DD_EXIT_USAGE, "may: id or subject");
	puts(may ? "maybe" : "no");
	dd_lake_meta_free(&m);
	return 0;
}

static int
cmd_cat(char **argv)
{
	struct dd_lake_reader *r = dd_lake_reader_open(argv[0]);
	if (r == NULL)
		return fail();
	const char *l;
	size_t n;
	uint64_t no, expect = 0;
	int rc;
	while ((rc = dd_lake_reader_next(r, &l, &n, &no)) == 1) {
		if (no != ++expect)
			dd_die(DD_EXIT_IO, "line number %" PRIu64 ", expected %" PRIu64, no, expect);
		fwrite(l, 1, n, stdout);
		putchar('\n');
	}
	dd_lake_reader_close(r);
	if (fflush(stdout))
		return DD_EXIT_IO;
	return rc < 0 ? fail() : 0;
}

static int
cmd_verify(char **argv)
{
	uint64_t lines;
	if (dd_lake_part_verify(argv[0], &lines))
		return fail();
	printf("%" PRIu64 "\n", lines);
	return 0;
}

static int
cmd_clean(char **argv)
{
	int k = dd_lake_clean_partition(argv[0]);
	if (k < 0)
		return fail();
	printf("%d\n", k);
	return 0;
}

static int
cmd_compact(int argc, char **argv)
{
	struct dd_lake_wopts o;
	struct dd_lake_cstats st;
	dd_lake_wopts_defaults(&o);
	if (argc > 3 && dd_parse_size(argv[3], 1024, UINT64_MAX, &o.part_size))
		dd_die(DD_EXIT_USAGE, "%s", dd_errmsg());
	int64_t ms = timearg(argv[2]);
	int lock = dd_lake_compact_lock(argv[0], argv[1]);
	if (lock < 0)
		dd_die(-lock, "%s", dd_errmsg());
	if (dd_lake_compact_partition(argv[0], argv[1], dd_ms_to_days(ms), &o, &st))
		return fail();
	close(lock);
	printf("parts %" PRIu64 " -> %" PRIu64 ", events %" PRIu64 " -> %" PRIu64
	    ", duplicates %" PRIu64 "\n", st.parts_in, st.parts_out, st.events_in,
	    st.events_out, st.duplicates);
	return 0;
}

static int
cmd_write(char **argv)
{
	struct dd_lake_writer *w = dd_lake_writer_open(argv[0], argv[1], NULL);
	if (w == NULL)
		return fail();
	struct dd_lines *in = dd_lines_open(0, "stdin", 0);
	struct dd_line l;
	int rc;
	while ((rc = dd_lines_next(in, &l, -1)) == DD_LINES_OK) {
		struct dd_env e;
		char id[DD_ID_MAX + 1];
		if (dd_env_scan(l.p, l.n, &e) || dd_env_str(&e.id, id, sizeof id) < 0)
			dd_die(DD_EXIT_IO, "stdin:%" PRIu64 ": %s", l.lineno, dd_errmsg());
		struct dd_lake_ev ev = { .time_ms = e.time_ms, .id = id, .idlen = strlen(id) };
		if (dd_lake_add(w, l.p, l.n, &ev) < 0) {
			dd_lake_writer_abort(w);
			dd_lines_free(in);
			return fail();
		}
	}
	dd_lines_free(in);
	if (dd_lake_commit(w)) {
		dd_lake_writer_abort(w);
		return fail();
	}
	char **paths;
	size_t n = dd_lake_take_visible(w, &paths);
	for (size_t i = 0; i < n; i++)
		puts(paths[i]);
	dd_lake_paths_free(paths, n);
	return dd_lake_writer_close(w) ? fail() : 0;
}

int
main(int argc, char **argv)
{
	dd_prog = "dd-lakecheck";
	if (argc < 3)
		dd_die(DD_EXIT_USAGE, "usage: dd-lakecheck CMD ARGS (see tests/lakecheck.c)");
	const char *cmd = argv[1];
	argc -= 2;
	argv += 2;
	int rc;
	if (strcmp(cmd, "partitions") == 0 && argc >= 2)
		rc = cmd_partitions(argc, argv);
	else if (strcmp(cmd, "parts") == 0)
		rc = cmd_parts(argv);
	else if (strcmp(cmd, "may") == 0 && argc == 3)
		rc = cmd_may(argv);
	else if (strcmp(cmd, "cat") == 0)
		rc = cmd_cat(argv);
	else if (strcmp(cmd, "verify") == 0)
		rc = cmd_verify(argv);
	else if (strcmp(cmd, "clean") == 0)
		rc = cmd_clean(argv);
	else if (strcmp(cmd, "compact") == 0 && argc >= 3)
		rc = cmd_compact(argc, argv);
	else if (strcmp(cmd, "write") == 0 && argc == 2)
		rc = cmd_write(argv);
	else
		dd_die(DD_EXIT_USAGE, "unknown command or arguments: %s", cmd);
	if (dd_close_stdout())
		rc = fail();
	return rc;
}
