-- Hidden events (ilji.visible_events) are left out; versions keep their numbers.
-- The id and the time come as bytes, decoded on first access (see read_all.sql).
SELECT uuid_send(id), stream, version, position, type, data::text, metadata::text,
       timestamptz_send(recorded_at)
FROM ilji.visible_events
WHERE stream = %(stream)s AND version <= %(from_version)s
ORDER BY version DESC
LIMIT %(limit)s
