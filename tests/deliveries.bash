# Shared by tests/dd-history.bats and tests/dd-archive.bats.

# gen_deliveries N [T0_EPOCH_S] [STEP_S] [PREFIX]: delivery.* events of N
# deliveries in event-time order, shaped as dd-schedule and dd-track write
# them. Delivery j is scheduled at T0 + j*STEP, heads to pickup 5 min
# later, to dropoff at 15 min, and ends at 30 min: completed, except every
# 20th is cancelled at 5 min, every 50th fails, and every 100th request is
# rejected without a delivery id (keyed by its request id r-PREFIXjjjjjjj).
gen_deliveries() {
	awk -v n="$1" -v t0="${2:-1793577600}" -v step="${3:-60}" -v pfx="${4:-d}" '
	function ts(t) { return strftime("%Y-%m-%dT%H:%M:%S", t, 1) ".000Z" }
	function head(id, src, type, t, subj) {
		return "{\"specversion\":\"1.0\",\"id\":\"" id "\",\"source\":\"" src \
		    "\",\"type\":\"" type "\",\"time\":\"" ts(t) "\",\"subject\":\"" subj \
		    "\",\"datacontenttype\":\"application/json\",\"data\":{"
	}
	function status(j, t, stage, prev) {
		d = sprintf("%s-%07d", pfx, j)
		print head("st-" d "-" stage, "/dd-track", "delivery.status", t, d) \
		    "\"deliveryId\":\"" d "\",\"stage\":\"" stage "\",\"previousStage\":\"" prev \
		    "\",\"droneId\":\"D-" sprintf("%04d", j % 500) "\",\"location\":{\"lat\":47.61,\"lon\":-122.33,\"alt\":0}," \
		    "\"pickupEta\":\"" ts(t0 + j * step + 300) "\",\"dropoffEta\":\"" ts(t0 + j * step + 1800) "\"}}"
	}
	BEGIN {
		lag1 = int(300 / step); lag2 = int(900 / step); lag3 = int(1800 / step)
		for (s = 1; s <= n + lag3; s++) {
			t = t0 + s * step
			j = s
			if (j <= n) {
				d = sprintf("%s-%07d", pfx, j); r = sprintf("r-%s%07d", pfx, j)
				if (j % 100 == 0) {
					print head("rej-" r, "/dd-schedule", "delivery.rejected", t, r) \
					    "\"requestId\":\"" r "\",\"reason\":\"no-drone\",\"ownerId\":\"o-" j % 17 "\"}}"
				} else {
					print head("sch-" d, "/dd-schedule", "delivery.scheduled", t, d) \
					    "\"deliveryId\":\"" d "\",\"requestId\":\"" r "\",\"ownerId\":\"o-" j % 17 \
					    "\",\"pickup\":{\"lat\":47.61,\"lon\":-122.33,\"alt\":0},\"dropoff\":{\"lat\":47.66,\"lon\":-122.3,\"alt\":0}," \
					    "\"pickupTime\":\"" ts(t + 300) "\",\"deadline\":\"" ts(t + 7200) "\",\"expedited\":false," \
					    "\"confirmationRequired\":\"None\",\"package\":{\"packageId\":\"p-" j "\",\"size\":\"small\",\"weightKg\":2.5,\"tag\":\"books\"}," \
					    "\"droneId\":\"D-" sprintf("%04d", j % 500) "\",\"pickupEta\":\"" ts(t + 300) "\",\"dropoffEta\":\"" ts(t + 1800) "\"}}"
				}
			}
			j = s - lag1
			if (j >= 1 && j <= n && j % 100) {
				if (j % 20 == 7) {
					d = sprintf("%s-%07d", pfx, j)
					print head("can-" d, "/dd-schedule", "delivery.cancelled", t, d) \
					    "\"deliveryId\":\"" d "\",\"reason\":\"owner\"}}"
				} else
					status(j, t, "headed-to-pickup", "created")
			}
			j = s - lag2
			if (j >= 1 && j <= n && j % 100 && j % 20 != 7)
				status(j, t, "headed-to-dropoff", "headed-to-pickup")
			j = s - lag3
			if (j >= 1 && j <= n && j % 100 && j % 20 != 7)
				status(j, t, j % 50 == 13 ? "failed" : "completed", "headed-to-dropoff")
		}
	}'
}
