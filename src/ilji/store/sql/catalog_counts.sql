-- How many events and streams the store holds, for the console's overview. Both counts are
-- bounded so the query costs about the same on a store of any size: events are counted up to
-- `event_cap` rows, streams up to `stream_cap` names (a loose index scan over the unique index
-- on (stream, version), one descent per stream). Past a cap, the planner's statistics give an
-- estimate (never below the cap) and the `*_exact` column says so. Hidden events (soft-deleted
-- or truncated streams, retention) are not counted, nor streams with no visible event; past
-- the caps the estimates cover the whole table.
WITH RECURSIVE names(stream, n) AS (
    (SELECT e.stream, 1 FROM ilji.events e ORDER BY e.stream LIMIT 1)
    UNION ALL
    SELECT (
        SELECT e.stream FROM ilji.events e WHERE e.stream > names.stream ORDER BY e.stream LIMIT 1
    ), names.n + 1
    FROM names
    WHERE names.stream IS NOT NULL AND names.n < %(stream_cap)s
),
-- Exact only when the walk saw every name: hidden streams count toward the cap as well, so
-- the visible count alone cannot tell whether names were left unwalked.
streams AS (
    SELECT count(*) FILTER (
               WHERE EXISTS (SELECT FROM ilji.visible_events v WHERE v.stream = names.stream)
           ) AS n,
           count(*) < %(stream_cap)s AS complete
    FROM names
    WHERE stream IS NOT NULL
),
events AS (SELECT count(*) AS n FROM (SELECT 1 FROM ilji.visible_events LIMIT %(event_cap)s) e),
estimate AS (
    SELECT greatest(c.reltuples, 0)::bigint AS rows,
           (SELECT CASE WHEN s.n_distinct < 0 THEN -s.n_distinct * greatest(c.reltuples, 0)
                        ELSE s.n_distinct END
            FROM pg_stats s
            WHERE s.schemaname = 'ilji' AND s.tablename = 'events' AND s.attname = 'stream')::bigint
               AS streams
    FROM pg_class c
    WHERE c.oid = 'ilji.events'::regclass
)
SELECT
    CASE WHEN events.n < %(event_cap)s THEN events.n
         ELSE greatest(events.n, coalesce(estimate.rows, 0)) END        AS events,
    events.n < %(event_cap)s                                             AS events_exact,
    CASE WHEN streams.complete THEN streams.n
         ELSE greatest(streams.n, coalesce(estimate.streams, 0)) END    AS streams,
    streams.complete                                                     AS streams_exact,
    (SELECT coalesce(max(position), 0) FROM ilji.events)                 AS last_position,
    (SELECT max(recorded_at) FROM ilji.events
     WHERE position = (SELECT max(position) FROM ilji.events))           AS last_recorded_at,
    -- Where a live view of the log starts: every position at or below it is final (below the
    -- visible bound), so following from it misses nothing and repeats at most a few events.
    greatest(0, least((SELECT coalesce(max(position), 0) FROM ilji.events),
                      ilji.visible_bound() - 1))                         AS follow_from
FROM events, streams, estimate
