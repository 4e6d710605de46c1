-- Hidden events (ilji.visible_events) are left out; versions keep their numbers.
-- A stream's rule hides the versions below its hide_below: the read starts there, so reading
-- a truncated or soft-deleted stream from version 1 (every full load, and the check of a
-- snapshot against the first visible version) does not walk its hidden prefix row by row.
-- The subquery names no column of the outer query, so it runs once, as a bound of the index
-- scan; greatest() ignores its NULL when the stream has no rule.
-- The id and the time come as bytes, decoded on first access (see read_all.sql).
SELECT uuid_send(id), stream, version, position, type, data::text, metadata::text,
       timestamptz_send(recorded_at)
FROM ilji.visible_events
WHERE stream = %(stream)s
  AND version >= greatest(%(from_version)s,
                          (SELECT r.hide_below FROM ilji.stream_rules AS r WHERE r.stream = %(stream)s))
ORDER BY version
LIMIT %(limit)s
