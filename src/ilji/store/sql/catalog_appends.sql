-- Events recorded per time bucket over the last `buckets` × `bucket` (the overview's chart).
-- recorded_at has no index, but positions grow with time (a position starts with the id of the
-- transaction that wrote it), so the newest `scan_cap` events by position, read backwards from
-- the primary key, are the most recent ones: the query never reads more rows than that. When
-- the cap is reached inside the window, `complete_since` says from when the counts are whole
-- (older buckets are partial); otherwise it is the window's start. Hidden events are not counted.
WITH
now_bin AS (
    SELECT date_bin(%(bucket)s::interval, statement_timestamp(), TIMESTAMPTZ '2000-01-01 00:00:00+00') AS last
),
window_start AS (
    SELECT last - (%(buckets)s - 1) * %(bucket)s::interval AS first FROM now_bin
),
recent AS (
    SELECT recorded_at FROM ilji.visible_events ORDER BY position DESC LIMIT %(scan_cap)s
),
scanned AS (
    SELECT count(*) AS n, min(recorded_at) AS oldest FROM recent
),
counted AS (
    SELECT date_bin(%(bucket)s::interval, r.recorded_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS start,
           count(*) AS n
    FROM recent r, window_start w
    WHERE r.recorded_at >= w.first
    GROUP BY 1
),
slots AS (
    SELECT generate_series(w.first, b.last, %(bucket)s::interval) AS start FROM window_start w, now_bin b
)
SELECT s.start,
       coalesce(c.n, 0) AS events,
       (SELECT CASE WHEN sc.n >= %(scan_cap)s THEN greatest(sc.oldest, w.first) ELSE w.first END
        FROM scanned sc, window_start w) AS complete_since,
       (SELECT count(*) FROM recent
        WHERE recorded_at > statement_timestamp() - interval '60 seconds') AS last_minute
FROM slots s
LEFT JOIN counted c ON c.start = s.start
ORDER BY s.start
