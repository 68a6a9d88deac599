# An independent check of dd-schedule's output (jq -s -f THIS events...):
# replays the emitted events in order, keeps each drone's active
# bookings (delivery.scheduled / delivery.rescheduled with a droneId book
# [departureEta, returnEta); drone.released, delivery.cancelled and a
# rescheduled without a drone end one), and lists every booking that
# overlaps another of the same drone, or whose times are out of order.
# Prints [] when all is well. It shares nothing with the C code.

def ms: sub("\\.[0-9]+Z$"; "Z") | fromdateiso8601;

def unbook($d):
  if .owner[$d] then
    .owner[$d] as $o | del(.bydrone[$o][$d]) | del(.owner[$d])
  else . end;

def book($e):
  $e.data as $x
  | ($x.departureEta | ms) as $from
  | ($x.returnEta | ms) as $to
  | unbook($x.deliveryId)
  | (if ($x.departureEta > $x.pickupEta) or ($x.pickupEta >= $x.dropoffEta)
        or ($x.dropoffEta > $x.returnEta)
     then .errors += [{delivery: $x.deliveryId, error: "times out of order"}] else . end)
  | (if $x.pickupTime and ($x.pickupEta < $x.pickupTime)
     then .errors += [{delivery: $x.deliveryId, error: "pickup before pickupTime"}] else . end)
  | (if $x.deadline and ($x.dropoffEta > $x.deadline)
     then .errors += [{delivery: $x.deliveryId, error: "dropoff after deadline"}] else . end)
  | reduce ((.bydrone[$x.droneId] // {}) | to_entries[]) as $b (.;
      if $b.value[0] < $to and $from < $b.value[1]
      then .errors += [{drone: $x.droneId, delivery: $x.deliveryId, overlaps: $b.key}]
      else . end)
  | .bydrone[$x.droneId][$x.deliveryId] = [$from, $to]
  | .owner[$x.deliveryId] = $x.droneId;

reduce .[] as $e ({bydrone: {}, owner: {}, errors: []};
  if $e.type == "delivery.scheduled" then book($e)
  elif $e.type == "delivery.rescheduled" then
    (if $e.data.droneId then book($e) else unbook($e.data.deliveryId) end)
  elif $e.type == "drone.released" or $e.type == "delivery.cancelled" then
    unbook($e.data.deliveryId)
  else . end)
| .errors
