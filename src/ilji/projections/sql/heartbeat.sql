-- A worker says it is alive (database clock), what code it has and which versions of the
-- projection it runs, and whether it stands idle or refuses something (status shows it).
-- Rows of workers gone for an hour are cleaned up on the way.
WITH gone AS (
    DELETE FROM ilji.projection_workers
    WHERE projection = %(name)s AND heartbeat_at < clock_timestamp() - interval '1 hour'
)
INSERT INTO ilji.projection_workers
    (projection, worker_id, heartbeat_at, code_version, versions, state, error)
VALUES (%(name)s, %(worker)s, clock_timestamp(), %(code_version)s, %(versions)s, %(state)s, %(error)s)
ON CONFLICT (projection, worker_id) DO UPDATE
    SET heartbeat_at = EXCLUDED.heartbeat_at, code_version = EXCLUDED.code_version,
        versions = EXCLUDED.versions, state = EXCLUDED.state, error = EXCLUDED.error
