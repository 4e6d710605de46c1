-- A replay failed again: keep the event parked with the new error, and drop the request so the
-- worker does not loop on it (the operator may ask again).
UPDATE ilji.parked_events
SET replay_requested_at = NULL, error = %(error)s, attempts = attempts + 1
WHERE projection = %(name)s AND version = %(version)s AND event_id = %(event_id)s
