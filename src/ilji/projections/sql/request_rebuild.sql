-- Ask for the next version: one above the active one and above every version ever started.
-- Workers build it from position 0 with the same code, into that version's tables.
UPDATE ilji.projections AS p
SET requested_version = greatest(
        p.active_version,
        (SELECT max(version) FROM ilji.projection_checkpoints c WHERE c.projection = p.name)) + 1,
    updated_at = now()
WHERE p.name = %(name)s
RETURNING requested_version
