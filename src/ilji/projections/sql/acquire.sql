-- Take the lease of one partition if nobody holds a live one.
--
-- One UPDATE, not SELECT-then-UPDATE: two workers that race here serialise on the row lock,
-- and under READ COMMITTED the second re-evaluates the WHERE clause against the row the first
-- one wrote (new owner, new expiry), so it matches nothing: at most one acquirer wins.
-- Incrementing fencing_token on every acquisition is what fences off earlier owners: every
-- checkpoint write compares the token, so a worker frozen with an old token can never commit.
-- Expiry uses clock_timestamp(), the database's clock, never a worker's.
-- The same owner may take its row back at once (a restarted process with a stable worker id,
-- like a Kubernetes pod name): the new token fences off its previous incarnation just as it
-- fences off another worker, so nobody has to wait for the old lease to expire.
-- Paused projections, failed partitions (stop policy) and versions older than the active one
-- (retired by a rebuild) are not taken.
UPDATE ilji.projection_checkpoints AS c
SET owner = %(owner)s,
    fencing_token = c.fencing_token + 1,
    lease_expires_at = clock_timestamp() + make_interval(secs => %(ttl)s),
    status = 'catching_up',
    updated_at = clock_timestamp()
FROM ilji.projections AS p
WHERE c.projection = %(name)s AND c.version = %(version)s AND c.partition = %(partition)s
  AND p.name = c.projection
  AND NOT p.paused
  AND c.status NOT IN ('failed', 'retired')
  AND c.version >= p.active_version
  AND (c.owner IS NULL OR c.owner = %(owner)s OR c.lease_expires_at < clock_timestamp())
RETURNING c.fencing_token, c.position, c.partitions
