-- One category of the global log, with the same visibility bound as read_all.sql, without
-- hidden events.
-- The id and the time come as bytes, decoded on first access (see read_all.sql).
SELECT uuid_send(id), stream, version, position, type, data::text, metadata::text,
       timestamptz_send(recorded_at)
FROM ilji.visible_events
WHERE category = %(category)s
  AND position > %(after)s
  AND position < ilji.visible_bound()
  AND (%(types)s::text[] IS NULL OR type = ANY(%(types)s::text[]))
ORDER BY position
LIMIT %(limit)s
