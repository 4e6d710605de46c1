SELECT projection, version, partition, position, event_id, stream, type, error, attempts,
       parked_at, replay_requested_at, replayed_at
FROM ilji.parked_events
WHERE (%(name)s::text IS NULL OR projection = %(name)s)
  AND (replayed_at IS NULL OR %(include_replayed)s)
ORDER BY projection, version, position
LIMIT %(limit)s
