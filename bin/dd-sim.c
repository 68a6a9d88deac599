/*
 * dd-sim: the workload of the dd toolkit. `requests` writes delivery
 * requests for dd-schedule, `fly` adds the telemetry of each scheduled
 * delivery to a stream of events, `telemetry` writes a plain telemetry
 * stream for benchmarks. Output is a function of the arguments (and, for
 * fly, the input): the same seed gives the same bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ddtime.h"
#include "exitcodes.h"
#include "filter.h"
#include "sim.h"
#include "util.h"

enum {
	K_N = 1, K_SEED, K_START, K_RATE, K_AREA, K_BAD, K_MANIFEST, K_CANCEL, K_EVERY,
	K_FAIL, K_DUP, K_REORDER, K_DELIVERIES, K_DAYS, K_REJECTS, K_MAXLINE, K_QUIET,
};

#define O_SEED { "seed", 0, "S", "the seed: the same seed, the same bytes (default 1)", K_SEED, 0 }
#define O_START { "start", 0, "TIME", "the first request's time (requests: now, telemetry: " \
	"2026-10-27)", K_START, 0 }
#define O_AREA { "area", 0, "LAT,LON,RADIUS_KM", "where deliveries go (default the reference " \
	"city)", K_AREA, 0 }
#define O_FAIL { "fail", 0, "FRACTION", "deliveries that fail in flight (default 0)", K_FAIL, 0 }
#define O_BAD { "bad", 0, "FRACTION", "lines made bad on purpose, at most 0.5 (default 0)", \
	K_BAD, 0 }
#define O_MANIFEST { "bad-manifest", 0, "FILE", "write what each bad line is to FILE", \
	K_MANIFEST, 0 }
#define O_N { NULL, 'n', "N", "how many requests or events (required)", K_N, \
	DD_CLI_REQUIRED }

#define O_QUIET { "quiet", 'q', NULL, "errors only (requests and telemetry say nothing else)", \
	K_QUIET, 0 }

static const struct dd_opt req_opts[] = {
	O_N, O_QUIET, O_SEED, O_START,
	{ "rate", 0, "PER_HOUR", "requests per hour (default 120)", K_RATE, 0 },
	O_AREA,
	{ "cancel", 0, "FRACTION", "requests later cancelled by their client (default 0)",
		K_CANCEL, 0 },
	O_BAD, O_MANIFEST,
	DD_OPT_END,
};
static const struct dd_opt fly_opts[] = {
	O_QUIET,
	O_SEED,
	{ "position-every", 0, "SECONDS", "a drone.position this often (default 30)", K_EVERY, 0 },
	O_FAIL,
	{ "dup", 0, "FRACTION", "events sent twice (default 0)", K_DUP, 0 },
	{ "reorder", 0, "FRACTION", "events sent late, out of order (default 0)", K_REORDER, 0 },
	{ "rejects", 0, "FILE", "append a record of each rejected line to FILE", K_REJECTS, 0 },
	{ "max-line", 0, "SIZE", "report longer lines (default 1M)", K_MAXLINE, 0 },
	{ "batch", 0, "N", "with --kafka: send the output and commit the place after N lines "
		"(default 5000)", DD_OPT_BATCH, 0 },
	{ "flush-interval", 0, "DUR", "with --kafka: do so at most DUR after a line (default 1s)",
		DD_OPT_FLUSH, 0 },
	DD_KAFKA_OPTIONS,
	DD_OPT_END,
};
static const struct dd_opt tel_opts[] = {
	O_N, O_QUIET, O_SEED,
	{ "deliveries", 0, "K", "how many deliveries the events are about (default n/10)",
		K_DELIVERIES, 0 },
	{ "days", 0, "D", "spread over this many days (default 30)", K_DAYS, 0 },
	O_START, O_AREA, O_FAIL, O_BAD, O_MANIFEST,
	DD_OPT_END,
};

struct ctx {
	struct dd_sim_opts o;
	struct dd_sim_fly_opts fo;
	struct dd_filter_opts ffo;	/* fly's filter options (--kafka...), parsed
					 * as every filter parses them */
	int have_start;
};

/* A fraction in [0, max]. */
static int
fraction(const char *s, double max, double *out)
{
	char *e;
	double v = strtod(s, &e);
	if (e == s || *e != '\0' || !(v >= 0 && v <= max)) {
		dd_seterr("\"%s\" is not a number from 0 to %g", s, max);
		return -1;
	}
	*out = v;
	return 0;
}

static int
set(void *vc, int key, const char *arg, const char *arg2)
{
	struct ctx *c = vc;
	uint64_t v;
	char *e;
	switch (key) {
	case K_N:
		return dd_parse_u64(arg, 0, (uint64_t)1 << 40, &c->o.n);
	case K_QUIET:
		c->fo.quiet = 1;
		return 0;
	case K_SEED:
		if (dd_parse_u64(arg, 0, UINT64_MAX, &v))
			return -1;
		c->o.seed = c->fo.seed = v;
		return 0;
	case K_START:
		c->have_start = 1;
		return dd_time_arg(arg, dd_now_ms(), &c->o.start_ms);
	case K_RATE:
		c->o.rate = strtod(arg, &e);
		if (e == arg || *e || !(c->o.rate > 0 && c->o.rate <= 1e7)) {
			dd_seterr("\"%s\" is not a number of requests per hour", arg);
			return -1;
		}
		return 0;
	case K_AREA:
		return dd_sim_area_parse(arg, &c->o.area);
	case K_BAD:
		return fraction(arg, 0.5, &c->o.bad);
	case K_MANIFEST:
		c->o.manifest = arg;
		return 0;
	case K_CANCEL:
		return fraction(arg, 1, &c->o.cancel);
	case K_EVERY:
		if (dd_parse_u64(arg, 1, 86400, &v))
			return -1;
		c->fo.position_every_ms = (int64_t)v * 1000;
		return 0;
	case K_FAIL:
		if (fraction(arg, 1, &c->o.fail))
			return -1;
		c->fo.fail = c->o.fail;
		return 0;
	case K_DUP:
		return fraction(arg, 1, &c->fo.dup);
	case K_REORDER:
		return fraction(arg, 1, &c->fo.reorder);
	case K_DELIVERIES:
		return dd_parse_u64(arg, 1, (uint64_t)1 << 40, &c->o.deliveries);
	case K_DAYS:
		return dd_parse_u64(arg, 1, 3650, &c->o.days);
	case K_REJECTS:
		c->fo.rejects = arg;
		return 0;
	case K_MAXLINE:
		if (dd_parse_size(arg, 16, (uint64_t)1 << 30, &v))
			return -1;
		c->fo.max_line = (size_t)v;
		return 0;
	}
	return dd_filter_setopt(&c->ffo, key, arg) == 0 ? 0 : -1;
}

static int
check(void *vc, const struct dd_cmd *cmd)
{
	struct ctx *c = vc;
	if (c->o.manifest && c->o.bad == 0) {
		dd_seterr("%s: --bad-manifest without --bad", cmd->name);
		return -1;
	}
	return 0;
}

static int
run_requests(void *vc, int argc, char **argv)
{
	struct ctx *c = vc;
	return dd_sim_requests(&c->o, stdout) ? DD_EXIT_IO : DD_EXIT_OK;
}

static int
run_telemetry(void *vc, int argc, char **argv)
{
	struct ctx *c = vc;
	if (!c->have_start)
		c->o.start_ms = DD_SIM_TELEMETRY_START_MS;
	return dd_sim_telemetry(&c->o, stdout) ? DD_EXIT_IO : DD_EXIT_OK;
}

static int
run_fly(void *vc, int argc, char **argv)
{
	struct ctx *c = vc;
	int fd = -1;
	if (argc == 1 && strcmp(argv[0], "-") != 0) {
		if ((fd = open(argv[0], O_RDONLY | O_CLOEXEC)) < 0) {
			dd_seterr("%s: %s", argv[0], strerror(errno));
			return DD_EXIT_IO;
		}
		c->fo.fd = fd;
		c->fo.input = argv[0];
	}
	c->fo.kafka = c->ffo.kafka;
	c->fo.batch = c->ffo.batch;
	c->fo.flush_ms = c->ffo.flush_ms;
	struct dd_sim_fly_stats st;
	int code = dd_sim_fly(&c->fo, stdout, &st);
	if (fd >= 0)
		close(fd);
	return code;
}

static const struct dd_opt *const req_tables[] = { req_opts, NULL };
static const struct dd_opt *const fly_tables[] = { fly_opts, NULL };
static const struct dd_opt *const tel_tables[] = { tel_opts, NULL };

static const struct dd_cmd cmds[] = {
	{ "requests", NULL, 0, 0, req_tables, run_requests },
	{ "fly", "[FILE]", 0, 1, fly_tables, run_fly, 1 },
	{ "telemetry", NULL, 0, 0, tel_tables, run_telemetry },
	{ NULL, NULL, 0, 0, NULL, NULL },
};

int
main(int argc, char *argv[])
{
	struct ctx c = { 0 };
	dd_sim_defaults(&c.o);
	dd_sim_fly_defaults(&c.fo);
	dd_filter_defaults(&c.ffo);
	struct dd_prog p = {
		.name = "dd-sim",
		.about = "requests writes delivery requests for dd-schedule; fly passes events\n"
		    "through and adds the telemetry of each delivery.scheduled; telemetry\n"
		    "writes a plain telemetry stream. See dd-sim(1).\n",
		.cmds = cmds,
		.set = set,
		.check = check,
		/* In a pipeline on Ctrl-C, every stage ends as 130 alike. */
		.commits = 1,
		.ctx = &c,
	};
	return dd_cli_main(&p, argc, argv);
}
