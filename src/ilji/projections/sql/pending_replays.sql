SELECT event_id, position, attempts
FROM ilji.parked_events
WHERE projection = %(name)s AND version = %(version)s AND partition = %(partition)s
  AND replay_requested_at IS NOT NULL AND replayed_at IS NULL
ORDER BY position
