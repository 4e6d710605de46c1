-- The global log. Only positions below ilji.visible_bound() are read: every transaction
-- that could still add a smaller position has ended, so nothing below the bound can
-- appear later and a reader paging by position never skips an event.
-- Hidden events (ilji.visible_events: soft-deleted or truncated streams, retention) and
-- Ilji's own streams (names starting with $, read them by category or stream) are filtered
-- out on top of that; the bound stays the same. The prefix test is a LIKE (the doubled
-- wildcard is psycopg's escape), which costs less per row than starts_with().
-- The id and the time come as bytes (uuid_send, timestamptz_send), and RecordedEvent makes
-- the UUID and the datetime on first access, as it parses data and metadata: a page then
-- holds one tracked object per event for Python's garbage collector to walk, not two, and a
-- reader pays nothing for the fields it skips (docs/en/performance.md, "Reading the log").
SELECT uuid_send(id), stream, version, position, type, data::text, metadata::text,
       timestamptz_send(recorded_at)
FROM ilji.visible_events
WHERE position > %(after)s
  AND position < ilji.visible_bound()
  AND stream NOT LIKE '$%%'
  AND (%(types)s::text[] IS NULL OR type = ANY(%(types)s::text[]))
ORDER BY position
LIMIT %(limit)s
