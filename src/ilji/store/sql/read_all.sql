-- The global log. Only positions below ilji.visible_bound() are read: every transaction
-- that could still add a smaller position has ended, so nothing below the bound can
-- appear later and a reader paging by position never skips an event.
SELECT id, stream, version, position, type, data::text, metadata::text, recorded_at
FROM ilji.events
WHERE position > %(after)s
  AND position < ilji.visible_bound()
  AND (%(types)s::text[] IS NULL OR type = ANY(%(types)s::text[]))
ORDER BY position
LIMIT %(limit)s
