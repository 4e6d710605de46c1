-- Declare a projection (idempotent). Its first version becomes the active one; a later call
-- only refreshes what it reads (category, types), which lag and read-your-writes consult, and
-- only from the code that builds the serving version: during a rolling deploy the newer code
-- (building the next version) and the older code (idle after the cutover) must not make the
-- serving version's lag and read-your-writes use what they read.
INSERT INTO ilji.projections AS p (name, active_version, category, types)
VALUES (%(name)s, %(version)s, %(category)s, %(types)s)
ON CONFLICT (name) DO UPDATE
    SET category = EXCLUDED.category, types = EXCLUDED.types, updated_at = now()
    WHERE (p.category, p.types) IS DISTINCT FROM (EXCLUDED.category, EXCLUDED.types)
      AND NOT EXISTS (
          SELECT 1 FROM ilji.projection_versions AS v
          WHERE v.projection = p.name AND v.version = p.active_version
            AND CASE WHEN v.code_version IS NULL THEN %(version)s > v.version
                     ELSE v.code_version <> %(version)s END)
