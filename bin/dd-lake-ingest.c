#include <getopt.h>
#include <inttypes.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ddtime.h"
#include "event.h"
#include "exitcodes.h"
#include "filter.h"
#include "lake.h"
#include "util.h"

#define USAGE \
	"usage: dd-lake-ingest [-l LAKE] [--dataset NAME] [--rejects FILE] [--strict]\n" \
	"                      [--level N] [--part-size BYTES] [--flush-interval DUR]\n" \
	"                      [--max-line BYTES] [--batch N] [-q] [--progress]\n"

/* An event more than this far ahead of the wall clock is rejected: a
 * wrong clock or a wrong year would otherwise open partitions no one
 * looks at. */
#define FUTURE_MS (24 * 3600 * 1000LL)

enum { OPT_DATASET = 0x2000, OPT_LEVEL, OPT_PARTSIZE };

struct ingest {
	struct dd_lake_writer *w;
	int64_t max_day;	/* latest UTC day seen in this run */
	uint64_t late;		/* events of a day before max_day */
	int failed;		/* the writer failed and that was reported */
	struct dd_buf id, subject, type;
};

static void
usage(void)
{
	fputs(USAGE, stderr);
	exit(DD_EXIT_USAGE);
}

static enum dd_verdict
on_event(void *ctx, const struct dd_line *l, const struct dd_env *e)
{
	struct ingest *c = ctx;
	/* A day of tolerance needs no finer clock than time(2), which is
	 * cheaper per event than a precise one. */
	if (e->time_ms > (int64_t)time(NULL) * 1000 + FUTURE_MS) {
		dd_seterr("\"time\" is more than a day in the future");
		return DD_REJECT;
	}
	if (dd_event_check_data(e))
		return DD_REJECT;
	int64_t day = dd_ms_to_days(e->time_ms);
	if (day < c->max_day)
		c->late++;
	else
		c->max_day = day;
	size_t idn, subn, typen;
	const char *id = dd_jstr_text(&e->id, &c->id, &idn);
	const char *sub = dd_jstr_text(&e->subject, &c->subject, &subn);
	const char *type = dd_jstr_text(&e->type, &c->type, &typen);
	if (dd_lake_add(c->w, l->p, l->n, &(struct dd_lake_ev){ .time_ms = e->time_ms,
	    .id = id, .idlen = idn, .subject = sub, .sublen = subn, .type = type,
	    .typelen = typen }) < 0) {
		if (!dd_lake_writer_broken(c->w))
			return DD_REJECT;	/* refused, e.g. a time no partition holds */
		c->failed = 1;
		return DD_FAIL;
	}
	return DD_ACCEPT;
}

static int
on_commit(void *ctx)
{
	struct ingest *c = ctx;
	/* After a failure already reported (exit 4), there is nothing left to
	 * commit: the writer removed its temporaries. */
	if (c->failed)
		return 0;
	if (dd_lake_commit(c->w))
		return -1;
	/* Nobody here reads the list of new parts back; do not let it grow. */
	char **paths;
	size_t n = dd_lake_take_visible(c->w, &paths);
	dd_lake_paths_free(paths, n);
	return 0;
}

static void
on_summary(void *ctx, struct dd_buf *b)
{
	struct ingest *c = ctx;
	struct dd_lake_wstats st;
	dd_lake_wstats(c->w, &st);
	/* stored: what is durable in visible parts, so a run stopped by a
	 * full disk does not claim what it lost. */
	dd_buf_printf(b, "; stored %" PRIu64 ", duplicates %" PRIu64 ", late %" PRIu64
	    ", parts %" PRIu64 ", partitions %" PRIu64 ", bytes in %" PRIu64
	    ", out %" PRIu64, st.durable, st.duplicates, c->late, st.parts, st.partitions,
	    st.raw_bytes, st.out_bytes);
}

/*
 * dd-lake-ingest: store each event read on stdin, byte for byte, in the
 * lake partition of its UTC date, as zstd parts that become visible
 * atomically (lake.h has the format).
 */
int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "lake", required_argument, NULL, 'l' },
		{ "dataset", required_argument, NULL, OPT_DATASET },
		{ "level", required_argument, NULL, OPT_LEVEL },
		{ "part-size", required_argument, NULL, OPT_PARTSIZE },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		DD_FILTER_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct dd_filter_opts fo;
	struct dd_lake_wopts wo;
	const char *lake = NULL, *dataset = DD_LAKE_DATASET_DEFAULT;
	uint64_t v;
	int ch;

	setlocale(LC_ALL, "");
	dd_prog = "dd-lake-ingest";
	dd_signals_init();
	dd_filter_defaults(&fo);
	dd_lake_wopts_defaults(&wo);
	/* A commit closes every open part, so by default only idle time, the
	 * part size and the end of input close parts, not a line count. */
	fo.batch = UINT64_MAX;
	while ((ch = getopt_long(argc, argv, "hl:qV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			fputs(USAGE, stdout);
			return dd_close_stdout() ? DD_EXIT_IO : DD_EXIT_OK;
		case 'V':
			printf("dd-lake-ingest %s\n", DD_VERSION);
			return dd_close_stdout() ? DD_EXIT_IO : DD_EXIT_OK;
		case 'l':
			lake = optarg;
			break;
		case OPT_DATASET:
			if (!dd_lake_dataset_ok(optarg)) {
				dd_warn("--dataset: %s", dd_errmsg());
				usage();
			}
			dataset = optarg;
			break;
		case OPT_LEVEL:
			if (dd_parse_u64(optarg, 1, 19, &v)) {
				dd_warn("--level: %s", dd_errmsg());
				usage();
			}
			wo.level = (int)v;
			break;
		case OPT_PARTSIZE:
			if (dd_parse_size(optarg, 1024, (uint64_t)1 << 40, &v)) {
				dd_warn("--part-size: %s", dd_errmsg());
				usage();
			}
			wo.part_size = v;
			break;
		default:
			/* 0: taken; -1: bad value (said); 1: not an option. */
			if (dd_filter_setopt(&fo, ch, optarg) != 0)
				usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc > 0) {
		dd_warn("unexpected argument \"%s\"", argv[0]);
		usage();
	}

	char *deflake = NULL;
	if (lake == NULL)
		lake = deflake = dd_default_path("lake");
	struct ingest c = { .max_day = INT64_MIN };
	c.w = dd_lake_writer_open(lake, dataset, &wo);
	if (c.w == NULL) {
		dd_warn("%s", dd_errmsg());
		free(deflake);
		return DD_EXIT_IO;
	}
	struct dd_filter_ops ops = {
		.event = on_event,
		.commit = on_commit,
		.summary = on_summary,
	};
	int code = dd_filter_run(&fo, &ops, &c, NULL);
	if (c.failed || code == DD_EXIT_IO) {
		dd_lake_writer_abort(c.w);
	} else if (dd_lake_writer_close(c.w)) {
		dd_warn("%s", dd_errmsg());
		code = DD_EXIT_IO;
	}
	dd_buf_free(&c.id);
	dd_buf_free(&c.subject);
	dd_buf_free(&c.type);
	free(deflake);
	if (dd_close_stdout()) {
		if (code != DD_EXIT_IO)	/* else already said */
			dd_warn("%s", dd_errmsg());
		code = DD_EXIT_IO;
	}
	return code;
}
