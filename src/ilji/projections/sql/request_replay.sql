-- The owning worker (not this caller, which may not have the projection's code) applies the
-- event; it finds the request on its next lease renewal.
UPDATE ilji.parked_events AS e
SET replay_requested_at = now()
FROM ilji.projections AS p
WHERE e.projection = %(name)s AND p.name = e.projection AND e.version >= p.active_version
  AND e.replayed_at IS NULL
  AND (%(event_ids)s::uuid[] IS NULL OR e.event_id = ANY(%(event_ids)s::uuid[]))
