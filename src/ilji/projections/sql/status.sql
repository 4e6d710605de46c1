SELECT c.projection, c.version, c.partition, c.partitions, p.active_version, c.position,
       c.owner, c.fencing_token, c.lease_expires_at,
       coalesce(c.lease_expires_at > clock_timestamp(), false) AS lease_live,
       c.status, p.paused, c.error, c.events_applied, c.events_per_second, c.updated_at,
       (SELECT count(*) FROM ilji.parked_events AS e
        WHERE e.projection = c.projection AND e.version = c.version AND e.partition = c.partition
          AND e.replayed_at IS NULL) AS parked,
       p.category, p.types, p.requested_version
FROM ilji.projection_checkpoints AS c
JOIN ilji.projections AS p ON p.name = c.projection
WHERE (%(name)s::text IS NULL OR c.projection = %(name)s)
  AND (c.version >= p.active_version OR %(all_versions)s)
ORDER BY c.projection, c.version, c.partition
