/*
 * dd-sim: the workload of the dd toolkit. `requests` writes delivery
 * requests for dd-schedule, `fly` adds the telemetry of each scheduled
 * delivery to a stream of events, `telemetry` writes a plain telemetry
 * stream for benchmarks. Output is a function of the arguments (and, for
 * fly, the input): the same seed gives the same bytes.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddtime.h"
#include "exitcodes.h"
#include "filter.h"
#include "sim.h"
#include "util.h"

#define USAGE \
	"usage: dd-sim requests -n N [--seed S] [--start TIME] [--rate PER_HOUR]\n" \
	"              [--area LAT,LON,RADIUS_KM] [--cancel FRACTION] [--bad FRACTION]\n" \
	"              [--bad-manifest FILE]\n" \
	"       dd-sim fly [-q] [--seed S] [--position-every SECONDS] [--fail FRACTION]\n" \
	"              [--dup FRACTION] [--reorder FRACTION] [--rejects FILE]\n" \
	"              [--max-line SIZE]\n" \
	"       dd-sim telemetry -n N [--seed S] [--deliveries K] [--days D]\n" \
	"              [--start TIME] [--area LAT,LON,RADIUS_KM] [--fail FRACTION]\n" \
	"              [--bad FRACTION] [--bad-manifest FILE]\n" \
	"       dd-sim -h | -V\n"

static void
usage(int code)
{
	fputs(USAGE, code ? stderr : stdout);
	exit(code);
}

enum {
	O_SEED = 0x100, O_START, O_RATE, O_AREA, O_BAD, O_MANIFEST, O_CANCEL,
	O_EVERY, O_FAIL, O_DUP, O_REORDER, O_DELIVERIES, O_DAYS, O_REJECTS, O_MAXLINE,
};

static const struct option longopts[] = {
	{ "seed", required_argument, NULL, O_SEED },
	{ "start", required_argument, NULL, O_START },
	{ "rate", required_argument, NULL, O_RATE },
	{ "area", required_argument, NULL, O_AREA },
	{ "bad", required_argument, NULL, O_BAD },
	{ "bad-manifest", required_argument, NULL, O_MANIFEST },
	{ "cancel", required_argument, NULL, O_CANCEL },
	{ "position-every", required_argument, NULL, O_EVERY },
	{ "fail", required_argument, NULL, O_FAIL },
	{ "dup", required_argument, NULL, O_DUP },
	{ "reorder", required_argument, NULL, O_REORDER },
	{ "deliveries", required_argument, NULL, O_DELIVERIES },
	{ "days", required_argument, NULL, O_DAYS },
	{ "rejects", required_argument, NULL, O_REJECTS },
	{ "max-line", required_argument, NULL, O_MAXLINE },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* A fraction in [0, max]. */
static double
fraction(const char *opt, const char *s, double max)
{
	char *e;
	double v = strtod(s, &e);
	if (e == s || *e != '\0' || !(v >= 0 && v <= max)) {
		dd_warn("%s: \"%s\" is not a number from 0 to %g", opt, s, max);
		usage(DD_EXIT_USAGE);
	}
	return v;
}

static uint64_t
number(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	uint64_t v;
	if (dd_parse_u64(s, min, max, &v)) {
		dd_warn("%s: %s", opt, dd_errmsg());
		usage(DD_EXIT_USAGE);
	}
	return v;
}

int
main(int argc, char **argv)
{
	dd_prog = "dd-sim";
	dd_signals_init();
	if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0))
		usage(DD_EXIT_OK);
	if (argc > 1 && (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0)) {
		printf("dd-sim %s\n", DD_VERSION);
		return dd_close_stdout() ? DD_EXIT_IO : DD_EXIT_OK;
	}
	if (argc < 2) {
		dd_warn("no command: requests, fly or telemetry");
		usage(DD_EXIT_USAGE);
	}
	const char *cmd = argv[1];
	int requests = strcmp(cmd, "requests") == 0, fly = strcmp(cmd, "fly") == 0;
	int telemetry = strcmp(cmd, "telemetry") == 0;
	if (!requests && !fly && !telemetry) {
		dd_warn("unknown command \"%s\"", cmd);
		usage(DD_EXIT_USAGE);
	}

	struct dd_sim_opts o;
	struct dd_sim_fly_opts fo;
	dd_sim_defaults(&o);
	dd_sim_fly_defaults(&fo);
	int have_n = 0, have_start = 0;
	uint64_t v;
	argc--;
	argv++;
	optind = 1;
	/* Which options each command takes. */
	const char *allowed = requests ? "n seed start rate area cancel bad bad-manifest" :
	    fly ? "q seed position-every fail dup reorder rejects max-line" :
	    "n seed start deliveries days area fail bad bad-manifest";
	int c, idx;
	opterr = 0;	/* our own messages, in the PROG: where: what form */
	while ((c = getopt_long(argc, argv, ":hn:qV", longopts, &idx)) != -1) {
		if (c == '?' || c == ':') {
			const char *arg = argv[optind - 1];
			if (optopt && optopt < 0x100 && (c == '?' || strncmp(arg, "--", 2)))
				dd_warn("%s: %s -%c", cmd, c == ':' ? "missing argument to" :
				    "unknown option", optopt);
			else
				dd_warn("%s: %s %s", cmd, c == ':' ? "missing argument to" :
				    "unknown option", arg);
			usage(DD_EXIT_USAGE);
		}
		const char *name = c == 'n' ? "n" : c == 'q' ? "q" :
		    c >= O_SEED ? longopts[idx].name : NULL;
		if (name) {
			size_t len = strlen(name);
			const char *a = allowed, *hit = NULL;
			while ((a = strstr(a, name)) != NULL) {
				if ((a == allowed || a[-1] == ' ') && (a[len] == ' ' || a[len] == '\0')) {
					hit = a;
					break;
				}
				a += len;
			}
			if (hit == NULL) {
				dd_warn("%s: %s%s is not an option of this command", cmd,
				    len == 1 ? "-" : "--", name);
				usage(DD_EXIT_USAGE);
			}
		}
		switch (c) {
		case 'h':
			usage(DD_EXIT_OK);
			break;
		case 'V':
			printf("dd-sim %s\n", DD_VERSION);
			return dd_close_stdout() ? DD_EXIT_IO : DD_EXIT_OK;
		case 'n':
			o.n = number("-n", optarg, 0, (uint64_t)1 << 40);
			have_n = 1;
			break;
		case 'q':
			fo.quiet = 1;
			break;
		case O_SEED:
			o.seed = fo.seed = number("--seed", optarg, 0, UINT64_MAX);
			break;
		case O_START:
			if (dd_time_arg(optarg, dd_now_ms(), &o.start_ms)) {
				dd_warn("--start: %s", dd_errmsg());
				usage(DD_EXIT_USAGE);
			}
			have_start = 1;
			break;
		case O_RATE: {
			char *e;
			o.rate = strtod(optarg, &e);
			if (e == optarg || *e || !(o.rate > 0 && o.rate <= 1e7)) {
				dd_warn("--rate: \"%s\" is not a number of requests per hour", optarg);
				usage(DD_EXIT_USAGE);
			}
			break;
		}
		case O_AREA:
			if (dd_sim_area_parse(optarg, &o.area)) {
				dd_warn("--area: %s", dd_errmsg());
				usage(DD_EXIT_USAGE);
			}
			break;
		case O_BAD:
			o.bad = fraction("--bad", optarg, 0.5);
			break;
		case O_MANIFEST:
			o.manifest = optarg;
			break;
		case O_CANCEL:
			o.cancel = fraction("--cancel", optarg, 1);
			break;
		case O_EVERY:
			v = number("--position-every", optarg, 1, 86400);
			fo.position_every_ms = (int64_t)v * 1000;
			break;
		case O_FAIL:
			o.fail = fo.fail = fraction("--fail", optarg, 1);
			break;
		case O_DUP:
			fo.dup = fraction("--dup", optarg, 1);
			break;
		case O_REORDER:
			fo.reorder = fraction("--reorder", optarg, 1);
			break;
		case O_DELIVERIES:
			o.deliveries = number("--deliveries", optarg, 1, (uint64_t)1 << 40);
			break;
		case O_DAYS:
			o.days = number("--days", optarg, 1, 3650);
			break;
		case O_REJECTS:
			fo.rejects = optarg;
			break;
		case O_MAXLINE:
			if (dd_parse_size(optarg, 16, (uint64_t)1 << 30, &v)) {
				dd_warn("--max-line: %s", dd_errmsg());
				usage(DD_EXIT_USAGE);
			}
			fo.max_line = (size_t)v;
			break;
		default:
			usage(DD_EXIT_USAGE);
		}
	}
	if (optind < argc) {
		dd_warn("%s: unexpected argument \"%s\"", cmd, argv[optind]);
		usage(DD_EXIT_USAGE);
	}
	if (!fly && !have_n) {
		dd_warn("%s: -n N is required", cmd);
		usage(DD_EXIT_USAGE);
	}
	if (o.manifest && o.bad == 0) {
		dd_warn("%s: --bad-manifest without --bad", cmd);
		usage(DD_EXIT_USAGE);
	}

	if (telemetry && !have_start)
		o.start_ms = DD_SIM_TELEMETRY_START_MS;

	int code = DD_EXIT_OK;
	if (fly) {
		struct dd_sim_fly_stats st;
		code = dd_sim_fly(&fo, stdout, &st);
	} else if ((requests ? dd_sim_requests(&o, stdout) : dd_sim_telemetry(&o, stdout))) {
		dd_warn("%s", dd_errmsg());
		code = DD_EXIT_IO;
	}
	if (dd_close_stdout()) {
		if (code != DD_EXIT_IO)
			dd_warn("%s", dd_errmsg());
		code = DD_EXIT_IO;
	}
	return code;
}
