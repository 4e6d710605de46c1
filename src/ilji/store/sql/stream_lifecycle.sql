-- A stream's version (every event, hidden or not) and its lifecycle rule, if any.
SELECT (SELECT coalesce(max(e.version), 0) FROM ilji.events AS e WHERE e.stream = %(stream)s),
       coalesce(r.truncate_before, 0), r.deleted_version, r.deleted_at
FROM (SELECT 1) AS one
LEFT JOIN ilji.stream_rules AS r ON r.stream = %(stream)s
