-- The newest snapshot of a stream for one state type and schema version, at or below a
-- stream version. Snapshots of other schema versions are never returned: an old state shape
-- is rebuilt from events rather than misread.
SELECT stream, state_type, schema_version, version, event_id, state::text, taken_at, first_version
FROM ilji.snapshots
WHERE stream = %(stream)s
  AND state_type = %(state_type)s
  AND schema_version = %(schema_version)s
  AND version <= %(max_version)s
ORDER BY version DESC
LIMIT 1
