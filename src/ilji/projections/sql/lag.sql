-- How far a checkpoint is behind the head of what it reads. Positions are sparse (they come
-- from transaction ids), so "positions behind" says little: count the events instead, but at
-- most %(cap)s of them so that a far-behind projection costs a bounded index range scan.
-- Only events below the visible bound count: those are the ones a reader can get.
SELECT
    (SELECT count(*) FROM (
        SELECT 1 FROM ilji.events AS e
        WHERE e.position > %(after)s AND e.position < ilji.visible_bound()
          AND (%(category)s::text IS NULL OR e.category = %(category)s)
          AND (%(types)s::text[] IS NULL OR e.type = ANY(%(types)s::text[]))
        ORDER BY e.position
        LIMIT %(cap)s) AS behind) AS events_behind,
    (SELECT extract(epoch FROM clock_timestamp() - e.recorded_at)::float8 FROM ilji.events AS e
        WHERE e.position > %(after)s AND e.position < ilji.visible_bound()
          AND (%(category)s::text IS NULL OR e.category = %(category)s)
          AND (%(types)s::text[] IS NULL OR e.type = ANY(%(types)s::text[]))
        ORDER BY e.position
        LIMIT 1) AS lag_seconds,
    (SELECT coalesce(max(e.position), 0) FROM ilji.events AS e
        WHERE e.position < ilji.visible_bound()
          AND (%(category)s::text IS NULL OR e.category = %(category)s)
          AND (%(types)s::text[] IS NULL OR e.type = ANY(%(types)s::text[]))) AS head
