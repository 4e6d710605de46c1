-- Cutover, step 4: the atomic switch readers see. The old version's runners notice on their
-- next lease renewal and retire; its tables stay until the application drops them.
UPDATE ilji.projections
SET active_version = %(version)s,
    requested_version = CASE WHEN requested_version <= %(version)s THEN NULL ELSE requested_version END,
    updated_at = now()
WHERE name = %(name)s AND active_version = %(from_version)s
