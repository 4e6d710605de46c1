-- Extend a lease we still hold. Matching owner AND token means nobody acquired the row since
-- we did: any acquisition increments the token. So renewing a lease that expired a moment ago
-- but that nobody took is safe, and allowed (see lease.py). Also reports the admin switches
-- and pending replays, so an owner learns about them without another query.
UPDATE ilji.projection_checkpoints AS c
SET lease_expires_at = clock_timestamp() + make_interval(secs => %(ttl)s),
    updated_at = clock_timestamp()
FROM ilji.projections AS p
WHERE c.projection = %(name)s AND c.version = %(version)s AND c.partition = %(partition)s
  AND c.owner = %(owner)s AND c.fencing_token = %(token)s
  AND p.name = c.projection
RETURNING p.paused, p.active_version,
    EXISTS (
        SELECT 1 FROM ilji.parked_events AS e
        WHERE e.projection = c.projection AND e.version = c.version AND e.partition = c.partition
          AND e.replay_requested_at IS NOT NULL AND e.replayed_at IS NULL
    ) AS replay_pending
