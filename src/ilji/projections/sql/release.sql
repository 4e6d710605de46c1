-- Give the lease back (clean shutdown, pause, retirement), so another worker takes over at
-- once instead of waiting for the expiry. Fenced like every write. The token is kept: the
-- next acquisition increments it again. A version older than the active one retires.
UPDATE ilji.projection_checkpoints AS c
SET owner = NULL,
    lease_expires_at = NULL,
    status = CASE
        WHEN c.status IN ('failed', 'retired') THEN c.status
        WHEN c.version < (SELECT p.active_version FROM ilji.projections AS p WHERE p.name = c.projection)
            THEN 'retired'
        ELSE %(status)s
    END,
    updated_at = clock_timestamp()
WHERE c.projection = %(name)s AND c.version = %(version)s AND c.partition = %(partition)s
  AND c.owner = %(owner)s AND c.fencing_token = %(token)s
