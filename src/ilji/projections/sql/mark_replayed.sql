-- Part of the replay transaction: `replayed_at IS NULL` makes a second replay of the same
-- request match nothing, so the handler's writes of a duplicate replay are rolled back.
UPDATE ilji.parked_events
SET replayed_at = now(), replay_requested_at = NULL
WHERE projection = %(name)s AND version = %(version)s AND event_id = %(event_id)s
  AND replayed_at IS NULL
