#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "ddtime.h"
#include "event.h"
#include "exitcodes.h"
#include "filter.h"
#include "lake.h"
#include "util.h"

/* An event more than this far ahead of the wall clock is rejected: a
 * wrong clock or a wrong year would otherwise open partitions no one
 * looks at. */
#define FUTURE_MS (24 * 3600 * 1000LL)

enum { K_LAKE = 1, K_DATASET, K_LEVEL, K_PARTSIZE };

struct ingest {
	struct dd_lake_writer *w;
	const char *lake, *dataset;	/* where --kafka resumes from */
	struct dd_kpos *resume;		/* as the parts said, read once per assignment */
	size_t nresume;
	int have_resume;
	int64_t max_day;	/* latest UTC day seen in this run */
	uint64_t late;		/* events of a day before max_day */
	int failed;		/* the writer failed and that was reported */
	struct dd_buf id, subject, type;
};

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
	/* Schema-on-read: a version this build does not know is stored as
	 * it is; the data of one it knows must be valid. */
	if (dd_event_check_version(e) == 0 && dd_event_check_data(e))
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
	    .typelen = typen, .kafka = l->kpart >= 0, .kpart = l->kpart,
	    .koff = (int64_t)l->off }) < 0) {
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

/* --kafka: the offsets travel with the parts (lake.h): where to resume
 * is read from the parts' metadata, and the positions read are given to
 * the writer for the parts the commit closes. */
static int64_t
on_kresume(void *ctx, const char *topic, int32_t partition)
{
	struct ingest *c = ctx;
	if (!c->have_resume) {
		if (dd_lake_kafka_resume(c->lake, c->dataset, topic, &c->resume, &c->nresume))
			return -2;
		c->have_resume = 1;
	}
	for (size_t i = 0; i < c->nresume; i++)
		if (c->resume[i].partition == partition)
			return c->resume[i].next;
	return -1;
}

static int
on_koffsets(void *ctx, struct dd_koffsets *ko)
{
	struct ingest *c = ctx;
	dd_lake_kafka_through(c->w, ko);
	/* The lake changes with this commit (and other members' before a
	 * rebalance): the next assignment reads the parts again. */
	free(c->resume);
	c->resume = NULL;
	c->nresume = 0;
	c->have_resume = 0;
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

static const struct dd_opt opts[] = {
	{ "lake", 'l', "LAKE", "the lake (default $DD_HOME/lake)", K_LAKE, 0 },
	{ "dataset", 0, "NAME", "the dataset (default events)", K_DATASET, 0 },
	DD_OPT_QUIET_ENTRY,
	{ "level", 0, "N", "zstd level, 1 to 19 (default 3)", K_LEVEL, 0 },
	{ "part-size", 0, "BYTES", "close a part at this much input (default 32M)", K_PARTSIZE, 0 },
	DD_FILTER_OPTIONS("unlimited: idle time, part size and end of input commit"),
	DD_OPT_END,
};

struct ctx {
	const char *lake, *dataset;
	struct dd_lake_wopts wo;
	struct dd_filter_opts fo;
};

static int
set(void *vc, int key, const char *arg, const char *arg2)
{
	struct ctx *c = vc;
	uint64_t v;
	switch (key) {
	case K_LAKE:
		c->lake = arg;
		return 0;
	case K_DATASET:
		if (!dd_lake_dataset_ok(arg))
			return -1;
		c->dataset = arg;
		return 0;
	case K_LEVEL:
		if (dd_parse_u64(arg, 1, 19, &v))
			return -1;
		c->wo.level = (int)v;
		return 0;
	case K_PARTSIZE:
		if (dd_parse_size(arg, 1024, (uint64_t)1 << 40, &v))
			return -1;
		c->wo.part_size = v;
		return 0;
	case DD_OPT_TOPIC:
		/* A part's metadata holds the offsets of one topic. */
		if (strchr(arg, ',') || arg[0] == '^') {
			dd_seterr("the lake's parts record the offsets of one topic: "
			    "one dd-lake-ingest a topic");
			return -1;
		}
		break;
	}
	return dd_filter_setopt(&c->fo, key, arg) == 0 ? 0 : -1;
}

/*
 * dd-lake-ingest: store each event read from the FILEs (or stdin), byte
 * for byte, in the lake partition of its UTC date, as zstd parts that
 * become visible atomically (lake.h has the format).
 */
static int
run(void *vc, int argc, char **argv)
{
	struct ctx *x = vc;
	char *deflake = NULL;
	const char *lake = x->lake ? x->lake : (deflake = dd_default_path("lake"));
	struct ingest c = { .max_day = INT64_MIN, .lake = lake, .dataset = x->dataset };
	c.w = dd_lake_writer_open(lake, x->dataset, &x->wo);
	if (c.w == NULL) {
		free(deflake);
		return DD_EXIT_IO;
	}
	if (x->fo.kafka.topic)
		dd_lake_kafka_topic(c.w, x->fo.kafka.topic);
	struct dd_filter_ops ops = {
		.event = on_event,
		.commit = on_commit,
		.summary = on_summary,
		.kresume = on_kresume,
		.koffsets = on_koffsets,
	};
	x->fo.files = argv;
	x->fo.nfiles = argc;
	int code = dd_filter_run(&x->fo, &ops, &c, NULL);
	if (c.failed || code == DD_EXIT_IO)
		dd_lake_writer_abort(c.w);
	else if (dd_lake_writer_close(c.w))
		code = DD_EXIT_IO;
	dd_buf_free(&c.id);
	dd_buf_free(&c.subject);
	dd_buf_free(&c.type);
	free(c.resume);
	free(deflake);
	return code;
}

static const struct dd_opt *const tables[] = { opts, NULL };
static const struct dd_cmd cmds[] = {
	{ NULL, "[FILE...]", 0, -1, tables, run, 1 },
	{ NULL, NULL, 0, 0, NULL, NULL },
};

int
main(int argc, char *argv[])
{
	struct ctx c = { .dataset = DD_LAKE_DATASET_DEFAULT };
	dd_filter_defaults(&c.fo);
	dd_lake_wopts_defaults(&c.wo);
	/* A commit closes every open part, so by default only idle time, the
	 * part size and the end of input close parts, not a line count. */
	c.fo.batch = UINT64_MAX;
	struct dd_prog p = {
		.name = "dd-lake-ingest",
		.about = "Store each event of the FILEs (or stdin), byte for byte, in the lake\n"
		    "partition of its UTC date (LAKE/DATASET/year=/month=/day=/part-*.ndjson.zst).\n"
		    "See dd-lake-ingest(1).\n",
		.cmds = cmds,
		.set = set,
		.commits = 1,
		.ctx = &c,
	};
	return dd_cli_main(&p, argc, argv);
}
