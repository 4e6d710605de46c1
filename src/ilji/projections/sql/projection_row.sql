SELECT active_version, requested_version, paused, category, types
FROM ilji.projections
WHERE name = %(name)s
