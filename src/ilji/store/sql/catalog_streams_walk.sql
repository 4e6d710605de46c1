-- Like catalog_streams_range.sql, for collations that do not sort by code point (en_US,
-- ICU...): there the names that start with a prefix are not one range ('a-c' sorts between
-- 'ab' and 'ad'), so the walk cannot stop at an upper bound. It visits at most `budget`
-- names after `after` (one index descent each) and returns every one of them, matching or
-- not, with the newest event of those that match: catalog.py keeps the matches and, when the
-- budget ran out, the last visited name as the cursor of the next page.
--
-- A stream without a visible event (soft-deleted, truncated or aged out entirely: see
-- ilji.visible_events) has no newest event below, so it is not listed.
WITH RECURSIVE names(stream, step) AS (
    (
        SELECT e.stream, 1 FROM ilji.events e
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
    ), n.step + 1
    FROM names n
    WHERE n.stream IS NOT NULL AND n.step < %(budget)s
)
SELECT n.stream, n.step, newest.version, newest.position, newest.recorded_at
FROM names n
LEFT JOIN LATERAL (
    SELECT e.version, e.position, e.recorded_at FROM ilji.visible_events e
    WHERE e.stream = n.stream
    ORDER BY e.version DESC
    LIMIT 1
) newest ON starts_with(n.stream, %(prefix)s)
        AND (%(system)s OR NOT starts_with(n.stream, '$'))
        AND (%(category)s::text IS NULL OR split_part(n.stream, '-', 1) = %(category)s::text)
WHERE n.stream IS NOT NULL
ORDER BY n.step
