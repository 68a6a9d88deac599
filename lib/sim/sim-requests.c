/*
 * Delivery requests (SPEC.md "Delivery requests"): pickups as a Poisson
 * process of the given rate over the area, owners with a Zipf-like spread,
 * cancellations of recent requests, and malformed lines mixed in.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim-int.h"

static const char *const tags[] = { "books", "electronics", "groceries", "clothing",
	"medicine", "documents", "toys", "tools", "flowers", "food", "cosmetics", "spare-parts" };

#define OWNERS 500

struct owners {
	double cdf[OWNERS];
};

/* A Zipf-like spread (s = 1.1): a few owners send most requests. */
static void
owners_init(struct owners *o)
{
	double sum = 0;
	for (int i = 0; i < OWNERS; i++)
		o->cdf[i] = (sum += 1.0 / pow(i + 1, 1.1));
	for (int i = 0; i < OWNERS; i++)
		o->cdf[i] /= sum;
}

static int
owners_pick(const struct owners *o, struct dd_rng *r)
{
	double u = dd_rng_unit(r);
	int lo = 0, hi = OWNERS - 1;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (o->cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo + 1;
}

struct request {
	uint64_t i;
	int owner;
	struct pt pick, drop;
	int64_t pickup, deadline;
	int expedited;
	const char *confirm, *size, *tag;
	double weight;
};

static void
request_make(struct request *q, uint64_t i, struct dd_rng *r, const struct owners *ow,
    const struct dd_sim_area *area, int64_t pickup)
{
	q->i = i;
	q->owner = owners_pick(ow, r);
	q->pick = in_area(r, area);
	do
		q->drop = in_area(r, area);
	while (dist_m(q->pick, q->drop) < 300);
	/* Most addresses are on the ground; some are rooftops. */
	q->pick.alt = dd_rng_below(r, 10) ? 0 : (double)(5 + dd_rng_below(r, 40));
	q->drop.alt = dd_rng_below(r, 10) ? 0 : (double)(5 + dd_rng_below(r, 40));
	q->pickup = pickup;
	q->expedited = dd_rng_below(r, 10) == 0;
	int64_t minutes = q->expedited ? 60 + (int64_t)dd_rng_below(r, 61) :
	    60 + (int64_t)dd_rng_below(r, 301);
	q->deadline = pickup + (minutes / 5 * 5) * 60000;
	uint64_t c = dd_rng_below(r, 100);
	q->confirm = confirmations[c < 60 ? 0 : c < 75 ? 1 : c < 90 ? 2 : 3];
	uint64_t s = dd_rng_below(r, 100);
	if (s < 70) {
		q->size = "small";
		q->weight = uniform(r, 0.1, 2.5);
	} else if (s < 92) {
		q->size = "medium";
		q->weight = uniform(r, 2.0, 8.0);
	} else {
		q->size = "large";
		q->weight = uniform(r, 6.0, 20.0);
	}
	q->tag = tags[dd_rng_below(r, NELEM(tags))];
}

static void
loc_json(struct dd_buf *b, struct pt p, int altdec)
{
	char tmp[96];
	dd_buf_reset(b);
	char *e = PUT_LIT(tmp, "{\"lat\":");
	e = put_fixed(e, p.lat, 6);
	e = PUT_LIT(e, ",\"lon\":");
	e = put_fixed(e, p.lon, 6);
	e = PUT_LIT(e, ",\"alt\":");
	e = put_fixed(e, p.alt, altdec);
	*e++ = '}';
	dd_buf_add(b, tmp, (size_t)(e - tmp));
}

/* The request as fields (for the good line and the corruptions alike). */
static void
request_fields(const struct request *q, uint64_t seed, struct fields *fs)
{
	struct dd_buf v = { 0 };
	fs->n = 0;
	dd_buf_reset(&fs->text);
#define FV(key) fields_add(fs, key, v.p, v.len)
	dd_buf_reset(&v);
	dd_buf_adds(&v, "\"r-");
	buf_u64(&v, seed);
	dd_buf_addc(&v, '-');
	buf_u64(&v, q->i);
	dd_buf_addc(&v, '"');
	FV("requestId");
	dd_buf_reset(&v);
	dd_buf_adds(&v, "\"o-");
	buf_u64(&v, (uint64_t)q->owner);
	dd_buf_addc(&v, '"');
	FV("ownerId");
	loc_json(&v, q->pick, 0);
	FV("pickup");
	loc_json(&v, q->drop, 0);
	FV("dropoff");
	dd_buf_reset(&v);
	buf_time(&v, q->pickup);
	FV("pickupTime");
	dd_buf_reset(&v);
	buf_time(&v, q->deadline);
	FV("deadline");
	fields_add(fs, "expedited", q->expedited ? "true" : "false", q->expedited ? 4 : 5);
	dd_buf_reset(&v);
	dd_buf_printf(&v, "\"%s\"", q->confirm);
	FV("confirmationRequired");
	dd_buf_reset(&v);
	dd_buf_adds(&v, "{\"packageId\":\"p-");
	buf_u64(&v, seed);
	dd_buf_addc(&v, '-');
	buf_u64(&v, q->i);
	dd_buf_printf(&v, "\",\"size\":\"%s\",\"weightKg\":", q->size);
	buf_fixed(&v, q->weight, 2);
	dd_buf_printf(&v, ",\"tag\":\"%s\"}", q->tag);
	FV("package");
#undef FV
	dd_buf_free(&v);
}

static const char *const cancel_reasons[] = { "customer-request", "changed-mind",
	"duplicate-order", "address-wrong" };

int
dd_sim_requests(const struct dd_sim_opts *o, FILE *out)
{
	struct owners *ow = dd_malloc(sizeof *ow);
	owners_init(ow);
	struct manifest man;
	if (manifest_open(&man, o->manifest)) {
		free(ow);
		return -1;
	}
	struct obuf ob;
	obuf_init(&ob, out);
	struct dd_rng rbad, rcancel, rq;
	rng_for(&rbad, o->seed, 2, 0);
	rng_for(&rcancel, o->seed, 3, 0);
	struct fields fs = { 0 };
	struct dd_buf line = { 0 };
	/* The last requests, for cancellations of recent ones. */
	enum { RECENT = 256 };
	struct {
		uint64_t i;
		int owner;
	} recent[RECENT];
	uint64_t lineno = 0, nbad = 0;
	int perm[RK_END];
	double gap_ms = 3600000.0 / o->rate;
	double t = (double)o->start_ms;
	for (uint64_t i = 1; i <= o->n && !ob.err; i++) {
		rng_for(&rq, o->seed, 1, i);
		/* Pickups arrive as a Poisson process of the given rate, on
		 * whole minutes as people ask for them. */
		if (i > 1)
			t += -log(1.0 - dd_rng_unit(&rq)) * gap_ms;
		int64_t pickup = (int64_t)t / 60000 * 60000;
		struct request q;
		request_make(&q, i, &rq, ow, &o->area, pickup);
		request_fields(&q, o->seed, &fs);
		while (o->bad > 0 && dd_rng_unit(&rbad) < o->bad) {
			const char *expect, *detail = "";
			int k = next_kind(&rbad, nbad++, RK_END, perm);
			const char *kind = kind_name(k, request_kinds, &expect);
			dd_buf_reset(&line);
			bad_request(k, &rbad, &fs, &line, &detail);
			dd_buf_addc(&line, '\n');
			obuf_add(&ob, line.p, line.len);
			manifest_add(&man, ++lineno, kind, expect, detail);
		}
		dd_buf_reset(&line);
		fields_join(&fs, &line, NULL, NULL, NULL, 0);
		dd_buf_addc(&line, '\n');
		obuf_add(&ob, line.p, line.len);
		lineno++;
		recent[i % RECENT].i = i;
		recent[i % RECENT].owner = q.owner;
		if (o->cancel > 0 && dd_rng_unit(&rcancel) < o->cancel) {
			uint64_t back = dd_rng_below(&rcancel, i < RECENT ? i : RECENT);
			uint64_t j = i - back;
			dd_buf_reset(&line);
			dd_buf_adds(&line, "{\"op\":\"cancel\",\"requestId\":\"r-");
			buf_u64(&line, o->seed);
			dd_buf_addc(&line, '-');
			buf_u64(&line, j);
			dd_buf_adds(&line, "\",\"ownerId\":\"o-");
			buf_u64(&line, (uint64_t)recent[j % RECENT].owner);
			dd_buf_printf(&line, "\",\"reason\":\"%s\"}\n",
			    cancel_reasons[dd_rng_below(&rcancel, NELEM(cancel_reasons))]);
			obuf_add(&ob, line.p, line.len);
			lineno++;
		}
	}
	int rc = obuf_flush(&ob);
	if (manifest_close(&man, o->manifest))
		rc = -1;
	obuf_free(&ob);
	dd_buf_free(&fs.text);
	dd_buf_free(&line);
	free(ow);
	return rc;
}
