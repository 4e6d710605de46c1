-- Owners see the flag on their next renewal (within a third of the lease TTL), release their
-- leases, and acquire.sql takes no paused projection.
UPDATE ilji.projections SET paused = %(paused)s, updated_at = now() WHERE name = %(name)s
