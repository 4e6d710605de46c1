-- Store a snapshot; a second snapshot of the same stream, state type, schema and version
-- replaces the first (both describe the same state, the newer one is the better guess).
INSERT INTO ilji.snapshots (stream, state_type, schema_version, version, event_id, state)
VALUES (%(stream)s, %(state_type)s, %(schema_version)s, %(version)s, %(event_id)s, %(state)s::jsonb)
ON CONFLICT (stream, state_type, schema_version, version)
DO UPDATE SET event_id = EXCLUDED.event_id, state = EXCLUDED.state, taken_at = EXCLUDED.taken_at
