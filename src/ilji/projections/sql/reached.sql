-- Read your writes: has the projection's serving version dealt with everything up to
-- %(position)s? Yes when every partition's checkpoint is at or past it, or when nothing the
-- projection reads lies between a checkpoint and the position (a filtered projection's
-- checkpoint only stops at events it reads) AND the position is below the visible bound, so
-- no event at or before it can still appear. Only what the projection can read counts: events
-- the lifecycle rules hide, and Ilji's own `$` streams for a whole-log projection, never arrive.
SELECT count(*) AS partitions,
       coalesce(bool_and(
           c.position >= %(position)s
           OR (%(position)s < ilji.visible_bound()
               AND NOT EXISTS (
                   SELECT 1 FROM ilji.visible_events AS e
                   WHERE e.position > c.position AND e.position <= %(position)s
                     AND (p.category IS NOT NULL OR e.stream NOT LIKE '$%%')
                     AND (p.category IS NULL OR e.category = p.category)
                     AND (p.types IS NULL OR e.type = ANY(p.types))))
       ), false) AS reached
FROM ilji.projections AS p
JOIN ilji.projection_checkpoints AS c ON c.projection = p.name AND c.version = p.active_version
WHERE p.name = %(name)s
