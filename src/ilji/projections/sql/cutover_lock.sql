-- Cutover, step 1: lock the projection's row, so concurrent cutovers (every worker tries)
-- serialise, and read the active version again under that lock.
SELECT active_version FROM ilji.projections WHERE name = %(name)s FOR UPDATE
