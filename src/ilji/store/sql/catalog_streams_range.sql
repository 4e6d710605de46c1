-- Streams whose names lie in [lower, upper) and come after `after`, one row each with its
-- newest event. A loose index scan ("skip scan"): the recursive step asks the unique index on
-- (stream, version) for the first name greater than the previous one, so a page costs one
-- index descent per stream listed, however many events each stream holds, and no pass over
-- the table. The walk stops at `upper` (NULL: no end) or once the outer LIMIT is met, since
-- PostgreSQL computes a recursive CTE only as far as its reader asks.
--
-- Used when names sort by code point (C, POSIX, C.UTF-8, builtin collations): then every
-- name that starts with a prefix lies in one range, whose bounds catalog.py computes.
--
-- A stream without a visible event (soft-deleted, truncated or aged out entirely: see
-- ilji.visible_events) has no newest event below, so it is not listed.
WITH RECURSIVE names(stream) AS (
    (
        SELECT e.stream FROM ilji.events e
        WHERE e.stream >= %(lower)s AND e.stream > %(after)s
        ORDER BY e.stream
        LIMIT 1
    )
    UNION ALL
    SELECT (
        SELECT e.stream FROM ilji.events e
        WHERE e.stream > n.stream
        ORDER BY e.stream
        LIMIT 1
    )
    FROM names n
    WHERE n.stream IS NOT NULL
      AND (%(upper)s::text IS NULL OR n.stream < %(upper)s::text)
)
SELECT n.stream, newest.version, newest.position, newest.recorded_at
FROM names n
CROSS JOIN LATERAL (
    SELECT e.version, e.position, e.recorded_at FROM ilji.visible_events e
    WHERE e.stream = n.stream
    ORDER BY e.version DESC
    LIMIT 1
) newest
WHERE n.stream IS NOT NULL
  AND (%(upper)s::text IS NULL OR n.stream < %(upper)s::text)
  AND starts_with(n.stream, %(prefix)s)
  AND (%(system)s OR NOT starts_with(n.stream, '$'))
  AND (%(category)s::text IS NULL OR split_part(n.stream, '-', 1) = %(category)s::text)
LIMIT %(limit)s
