-- How many workers run each version of the projection: those whose heartbeat (sent every
-- TTL/3) is younger than %(window)s seconds, a little less than a lease TTL, so a dead worker
-- stops counting just before its leases expire and the survivors' shares have grown by the
-- time they can take its partitions. Per version: a worker with older code that stands idle
-- must not shrink the share of those that run the version.
SELECT v.version, count(*)
FROM ilji.projection_workers AS w, unnest(w.versions) AS v (version)
WHERE w.projection = %(name)s
  AND w.heartbeat_at > clock_timestamp() - make_interval(secs => %(window)s)
GROUP BY v.version
