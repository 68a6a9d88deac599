/*
 * The delivery stages (SPEC.md "Delivery stages"), one table for the
 * services that name them. Two services add a stage of their own, so each
 * row says who knows it:
 *   unknown   dd-track only: a delivery known from telemetry that set no
 *             stage yet (its schedule may come); never in an event
 *   rejected  dd-history only: a request that never became a delivery
 *             (delivery.rejected); dd-track does not consume that event
 * The stages of SPEC.md in between are known to both and are the ones a
 * delivery.status event may carry.
 */
#ifndef DD_STAGE_H
#define DD_STAGE_H

#include <stddef.h>

/* The order is dd-track's (its stats list stages in it). */
enum dd_stage {
	DD_STAGE_UNKNOWN = 0,
	DD_STAGE_CREATED,
	DD_STAGE_RESCHEDULED,
	DD_STAGE_HEADED_TO_PICKUP,
	DD_STAGE_HEADED_TO_DROPOFF,
	DD_STAGE_COMPLETED,
	DD_STAGE_CANCELLED,
	DD_STAGE_FAILED,
	DD_STAGE_REJECTED,
	DD_NSTAGES
};

/* Who knows a stage: a set of these bits. */
#define DD_STAGE_SPEC		1u	/* SPEC.md's stages, those of delivery.status */
#define DD_STAGE_TRACK		2u	/* dd-track: SPEC's and unknown */
#define DD_STAGE_HISTORY	4u	/* dd-history: SPEC's and rejected */

/* The name of s ("unknown" for a value outside the table). */
const char *dd_stage_name(enum dd_stage s);
/* The stage named by the n bytes at p that one of the services in who
 * knows, or -1. */
int dd_stage_lookup(const char *p, size_t n, unsigned who);
/* The same for a string (NULL: -1). */
int dd_stage_parse(const char *s, unsigned who);
/* Does one of the services in who know stage s? */
int dd_stage_known(int s, unsigned who);
/* A final stage: nothing later moves a delivery out of it. */
int dd_stage_final(int s);

#endif
