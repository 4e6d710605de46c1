-- Hidden events (ilji.visible_events) are left out; versions keep their numbers.
SELECT id, stream, version, position, type, data::text, metadata::text, recorded_at
FROM ilji.visible_events
WHERE stream = %(stream)s AND version <= %(from_version)s
ORDER BY version DESC
LIMIT %(limit)s
