/*
 * The deliveries view (SPEC.md "The lake"): one delivery.summary event per
 * ended delivery, built from that delivery's delivery.* events (those
 * dd-history keeps), for the lake's dataset "deliveries". dd-archive
 * builds it when it moves a delivery into the lake, and rebuilds it from
 * the lake's events (--rebuild-view); both feed the same events in the
 * one order of order.h, so both write the same line.
 *
 * The summary's data (data/schemas/delivery.summary.json):
 *   deliveryId, requestId, ownerId   from delivery.scheduled (or rejected)
 *   droneId      the latest drone named up to the end
 *   attempt      data.attempt of the schedule, 1 when it has none
 *   outcome      completed, cancelled, failed or rejected: the first end
 *   reason       the end's reason (delivery.cancelled, delivery.rejected,
 *                a final delivery.status that carries one), or null
 *   created      the time of the first event
 *   dispatched, pickedUp   the stage changes to headed-to-pickup and to
 *                headed-to-dropoff of the last flight (a reschedule starts
 *                a new one), or null
 *   ended        the time of the end
 *   deadline     the schedule's, or the latest reschedule's
 *   onTime       ended <= deadline for a completed delivery, else null
 *   durationS    dispatched -> ended in seconds, or null
 *   events       the number of events the summary was built from
 *   package      {packageId, size, weightKg} of the schedule (or null)
 *   lastBattery, lastLocation   the last reported up to the end (the
 *                delivery.status events carry them), or null
 * Envelope: id "summary:" + the delivery's key (its hash when that is too
 * long), so a re-archive or a rebuild writes the same event again and the
 * lake de-duplicates it; source /dd-archive; time the end; subject the
 * key (the delivery id, or the request id of a rejection without one).
 */
#ifndef DD_VIEW_H
#define DD_VIEW_H

#include <stdint.h>

#include "event.h"
#include "util.h"

struct dd_view;

struct dd_view *dd_view_new(void);
void dd_view_free(struct dd_view *v);
/* Start a delivery, keyed as dd-history keys it. */
void dd_view_begin(struct dd_view *v, const char *key, size_t keylen);
/* One of its events, in the one order of order.h; other types count as
 * events but change nothing else. */
void dd_view_add(struct dd_view *v, const struct dd_env *e);
/*
 * The summary event line (no newline) into out (reset first), with its
 * time, id and subject for the lake writer (pointing into v, valid until
 * the next dd_view_begin). 1 when the delivery has ended, 0 when it has
 * not (nothing written).
 */
int dd_view_summary(struct dd_view *v, struct dd_buf *out, int64_t *time_ms,
    const char **id, size_t *idlen, const char **subject, size_t *sublen);

#endif
