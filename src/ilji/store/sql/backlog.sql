-- How far a reader of the global log (or of one category) that is at position `after` is
-- behind: the events it would still read, their age, and the newest position. Used for the
-- lag of projections. Counted like read_all.sql and read_category.sql read: below the visible
-- bound, without hidden events (ilji.visible_events) and, for the whole log, without Ilji's
-- own $ streams, so that an admin action recorded in $audit is not a backlog.
-- Positions are sparse (they come from transaction ids), so "positions behind" says little:
-- count the events instead, but at most `cap` of them so that a far-behind reader costs a
-- bounded index range scan.
SELECT
    (SELECT count(*) FROM (
        SELECT 1 FROM ilji.visible_events AS e
        WHERE e.position > %(after)s AND e.position < ilji.visible_bound()
          AND (%(category)s::text IS NULL OR e.category = %(category)s)
          AND (%(category)s::text IS NOT NULL OR e.stream NOT LIKE '$%%')
          AND (%(types)s::text[] IS NULL OR e.type = ANY(%(types)s::text[]))
        ORDER BY e.position
        LIMIT %(cap)s) AS behind) AS events_behind,
    (SELECT extract(epoch FROM clock_timestamp() - e.recorded_at)::float8 FROM ilji.visible_events AS e
        WHERE e.position > %(after)s AND e.position < ilji.visible_bound()
          AND (%(category)s::text IS NULL OR e.category = %(category)s)
          AND (%(category)s::text IS NOT NULL OR e.stream NOT LIKE '$%%')
          AND (%(types)s::text[] IS NULL OR e.type = ANY(%(types)s::text[]))
        ORDER BY e.position
        LIMIT 1) AS lag_seconds,
    (SELECT coalesce(max(e.position), 0) FROM ilji.visible_events AS e
        WHERE e.position < ilji.visible_bound()
          AND (%(category)s::text IS NULL OR e.category = %(category)s)
          AND (%(category)s::text IS NOT NULL OR e.stream NOT LIKE '$%%')
          AND (%(types)s::text[] IS NULL OR e.type = ANY(%(types)s::text[]))) AS head
