-- A projection as registered, for its status before any worker has set up its partitions.
SELECT active_version, requested_version, paused, category, types
FROM ilji.projections
WHERE name = %(name)s
