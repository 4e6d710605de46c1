-- Ask for the next version: one above the active one and above every version ever created.
-- Workers running the serving version's code build it from position 0 into that version's
-- tables (the code that creates its row decides its partition count).
UPDATE ilji.projections AS p
SET requested_version = greatest(
        p.active_version,
        (SELECT max(version) FROM ilji.projection_versions v WHERE v.projection = p.name),
        (SELECT max(version) FROM ilji.projection_checkpoints c WHERE c.projection = p.name)) + 1,
    updated_at = now()
WHERE p.name = %(name)s
RETURNING requested_version
