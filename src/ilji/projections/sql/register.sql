-- Declare a projection (idempotent). Its first version becomes the active one; a later call
-- only refreshes what it reads (category, types), which lag and read-your-writes consult.
INSERT INTO ilji.projections AS p (name, active_version, category, types)
VALUES (%(name)s, %(version)s, %(category)s, %(types)s)
ON CONFLICT (name) DO UPDATE
    SET category = EXCLUDED.category, types = EXCLUDED.types, updated_at = now()
    WHERE (p.category, p.types) IS DISTINCT FROM (EXCLUDED.category, EXCLUDED.types)
