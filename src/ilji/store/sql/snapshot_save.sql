-- Store a snapshot; a second snapshot of the same stream, state type, schema and version
-- replaces the first (the newer one was folded under the stream's newer visibility rules,
-- so it is the better guess).
INSERT INTO ilji.snapshots (stream, state_type, schema_version, version, event_id, state, first_version)
VALUES (%(stream)s, %(state_type)s, %(schema_version)s, %(version)s, %(event_id)s, %(state)s::jsonb,
        %(first_version)s)
ON CONFLICT (stream, state_type, schema_version, version)
DO UPDATE SET event_id = EXCLUDED.event_id, state = EXCLUDED.state, taken_at = EXCLUDED.taken_at,
              first_version = EXCLUDED.first_version
