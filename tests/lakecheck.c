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
 *   sort DIR BUDGET                 stdin lines "KEY TEXT" through the
 *                                   spilling sort of lake-sort.c, then
 *                                   "KEY TEXT" in order and the run count
 *   write LAKE DATASET [THREADS]    events on stdin through the writer
 *                                   (THREADS compressors, default one
 *                                   per core), then the paths it made
 *                                   visible
 *   held LAKE DATASET PARTSIZE      the same, with every fsync held back
 *                                   until the last event is added: the
 *                                   caller must not wait for the disk,
 *                                   and the commit must wait for it
 *   failsync LAKE DATASET PARTSIZE K   "write" with the K-th fsync failing
 *                                   (EIO): the error, and the events
 *                                   stored as durable
 *   probes N BITS                   N ids crafted so that dd_hash64 agrees
 *                                   in its low BITS bits, into an id set
 *                                   and a hash set: the longest probe
 *                                   sequence of each ("idset L hset L")
 *   slot ID                         dd_slot of the id's hash (per process)
 * Exit 0, 4 on an error (message on stderr), 2 on bad usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ddtime.h"
#include "event.h"
#include "exitcodes.h"
#include "lake.h"
#include "lake-int.h"
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
	    ", duplicates %" PRIu64 ", conflicts %" PRIu64 "\n", st.parts_in, st.parts_out,
	    st.events_in, st.events_out, st.duplicates, st.conflicts);
	return 0;
}

static int
cmd_sort(char **argv)
{
	uint64_t budget;
	if (dd_parse_u64(argv[1], 1, UINT64_MAX, &budget))
		dd_die(DD_EXIT_USAGE, "%s", dd_errmsg());
	struct lake_sort *s = lake_sort_new(argv[0], budget);
	char buf[4096];
	while (fgets(buf, sizeof buf, stdin)) {
		char *sp = strchr(buf, ' ');
		size_t n = strlen(buf);
		if (n && buf[n - 1] == '\n')
			buf[--n] = '\0';
		if (sp == NULL || lake_sort_add(s, strtoll(buf, NULL, 10), sp + 1,
		    n - (size_t)(sp + 1 - buf))) {
			lake_sort_free(s);
			return fail();
		}
	}
	int64_t k;
	const char *l;
	size_t len;
	int rc;
	while ((rc = lake_sort_next(s, &k, &l, &len)) == 1)
		printf("%" PRId64 " %.*s\n", k, (int)len, l);
	lake_sort_free(s);
	return rc < 0 ? fail() : 0;
}

/*
 * fsync(2) of this program, in place of libc's for the library linked
 * into it: held back while sync_held is set, failing with EIO at call
 * number sync_fail, else the real one. Counts the calls.
 */
static pthread_mutex_t sync_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sync_cv = PTHREAD_COND_INITIALIZER;
static int sync_held, sync_waiting;
static long sync_calls, sync_fail;

int
fsync(int fd)
{
	pthread_mutex_lock(&sync_mu);
	long call = ++sync_calls;
	sync_waiting += sync_held;
	while (sync_held)
		pthread_cond_wait(&sync_cv, &sync_mu);
	pthread_mutex_unlock(&sync_mu);
	if (call == sync_fail) {
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_fsync, fd);
}

static void
sync_release(void)
{
	pthread_mutex_lock(&sync_mu);
	sync_held = 0;
	pthread_cond_broadcast(&sync_cv);
	pthread_mutex_unlock(&sync_mu);
}

static void *
release_later(void *arg)
{
	(void)arg;
	usleep(200 * 1000);
	sync_release();
	return NULL;
}

static void
stuck(int sig)
{
	(void)sig;
	static const char m[] = "dd-lakecheck: the caller waited for fsync\n";
	if (write(2, m, sizeof m - 1) < 0)
		_exit(5);
	_exit(5);
}

static int
cmd_write(char **argv, uint64_t part_size, int held, int threads)
{
	struct dd_lake_wopts o;
	dd_lake_wopts_defaults(&o);
	if (part_size)
		o.part_size = part_size;
	if (threads >= 0)
		o.threads = threads;
	struct dd_lake_writer *w = dd_lake_writer_open(argv[0], argv[1], &o);
	if (w == NULL)
		return fail();
	if (held) {
		sync_held = 1;
		/* Whatever the machine's load, adding a few thousand events
		 * takes far less; only a caller stuck in fsync takes this long. */
		signal(SIGALRM, stuck);
		alarm(60);
	}
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
			struct dd_lake_wstats st;
			dd_lake_wstats(w, &st);
			dd_warn("durable %" PRIu64, st.durable);
			dd_lake_writer_abort(w);
			dd_lines_free(in);
			return fail();
		}
	}
	dd_lines_free(in);
	if (held) {
		alarm(0);
		struct dd_lake_wstats st;
		dd_lake_wstats(w, &st);
		pthread_mutex_lock(&sync_mu);
		int waiting = sync_waiting;
		pthread_mutex_unlock(&sync_mu);
		/* Parts were closing all along, none of them visible yet. */
		printf("added %" PRIu64 ", durable %" PRIu64 ", %s\n", st.events, st.durable,
		    waiting ? "fsync waiting" : "no fsync waiting");
		pthread_t t;
		if (pthread_create(&t, NULL, release_later, NULL))
			dd_die(DD_EXIT_IO, "pthread_create");
		pthread_detach(t);
	}
	if (dd_lake_commit(w)) {
		struct dd_lake_wstats st;
		dd_lake_wstats(w, &st);
		dd_warn("durable %" PRIu64, st.durable);
		dd_lake_writer_abort(w);
		return fail();
	}
	if (held) {
		/* The commit returns only once everything is durable. */
		pthread_mutex_lock(&sync_mu);
		int still = sync_held;
		pthread_mutex_unlock(&sync_mu);
		struct dd_lake_wstats st;
		dd_lake_wstats(w, &st);
		printf("committed %s the fsyncs, durable %" PRIu64 "\n", still ? "before" : "after",
		    st.durable);
	}
	char **paths;
	size_t n = dd_lake_take_visible(w, &paths);
	for (size_t i = 0; i < n; i++)
		puts(paths[i]);
	dd_lake_paths_free(paths, n);
	return dd_lake_writer_close(w) ? fail() : 0;
}

/* The longest run from a slot's home (where dd_slot puts it) to where it
 * sits, over the filled slots of a table of cap slots. */
static size_t
longest(const uint64_t *h, size_t cap)
{
	size_t worst = 0;
	for (size_t i = 0; i < cap; i++) {
		if (!h[i])
			continue;
		size_t d = (i - ((size_t)dd_slot(h[i]) & (cap - 1))) & (cap - 1);
		if (d > worst)
			worst = d;
	}
	return worst;
}

static int
cmd_probes(char **argv)
{
	uint64_t n, bits;
	if (dd_parse_u64(argv[0], 1, 1000000, &n) || dd_parse_u64(argv[1], 1, 24, &bits))
		dd_die(DD_EXIT_USAGE, "%s", dd_errmsg());
	uint64_t mask = ((uint64_t)1 << bits) - 1, want = 0;
	struct idset ids = { 0 };
	struct hset hs = { 0 };
	char id[32];
	int first = 1;
	for (uint64_t k = 0, made = 0; made < n; k++) {
		/* "c" and k in hex, without printf (millions of tries). */
		int len = 0;
		id[len++] = 'c';
		for (uint64_t x = k; len == 1 || x; x >>= 4)
			id[len++] = "0123456789abcdef"[x & 15];
		uint64_t h = dd_hash64(id, (size_t)len);
		if (first) {
			want = h & mask;
			first = 0;
		} else if ((h & mask) != want) {
			continue;
		}
		lake_idset_check_add(&ids, h, id, (size_t)len, 0, NULL);
		lake_hset_add(&hs, h);
		made++;
	}
	printf("idset %zu hset %zu\n", longest(ids.h, ids.cap), longest(hs.h, hs.cap));
	lake_idset_free(&ids);
	lake_hset_free(&hs);
	return 0;
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
	else if (strcmp(cmd, "probes") == 0 && argc == 2)
		rc = cmd_probes(argv);
	else if (strcmp(cmd, "slot") == 0 && argc == 1)
		rc = printf("%016" PRIx64 "\n", dd_slot(dd_hash64(argv[0], strlen(argv[0])))) < 0;
	else if (strcmp(cmd, "sort") == 0 && argc == 2)
		rc = cmd_sort(argv);
	else if (strcmp(cmd, "write") == 0 && (argc == 2 || argc == 3)) {
		uint64_t t = 0;
		if (argc == 3 && dd_parse_u64(argv[2], 0, 8, &t))
			dd_die(DD_EXIT_USAGE, "%s", dd_errmsg());
		rc = cmd_write(argv, 0, 0, argc == 3 ? (int)t : -1);
	}
	else if ((strcmp(cmd, "held") == 0 && argc == 3) ||
	    (strcmp(cmd, "failsync") == 0 && argc == 4)) {
		uint64_t ps, k = 0;
		if (dd_parse_size(argv[2], 1024, UINT64_MAX, &ps) ||
		    (argc == 4 && dd_parse_u64(argv[3], 1, 1000000, &k)))
			dd_die(DD_EXIT_USAGE, "%s", dd_errmsg());
		sync_fail = (long)k;
		rc = cmd_write(argv, ps, cmd[0] == 'h', -1);
	}
	else
		dd_die(DD_EXIT_USAGE, "unknown command or arguments: %s", cmd);
	if (dd_close_stdout())
		rc = fail();
	return rc;
}
