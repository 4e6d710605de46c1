-- The workers of projections (heartbeat in the last minute), for status: which code each runs,
-- which versions, and whether it stands idle or refuses something.
SELECT projection, worker_id, code_version, versions, state, error, heartbeat_at
FROM ilji.projection_workers
WHERE (%(name)s::text IS NULL OR projection = %(name)s)
  AND heartbeat_at > clock_timestamp() - interval '1 minute'
ORDER BY projection, worker_id
