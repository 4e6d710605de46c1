SELECT active_version, requested_version, paused
FROM ilji.projections
WHERE name = %(name)s
