-- A worker says it is alive (database clock) and learns how many workers run the projection:
-- those whose heartbeat (sent every TTL/3) is younger than %(window)s seconds, a little less
-- than a lease TTL, so a dead worker stops counting just before its leases expire and the
-- survivors' shares have grown by the time they can take its partitions. (The INSERT's row is not visible to the SELECT of the same statement, hence
-- "others + 1".) Rows of workers gone for an hour are cleaned up on the way.
WITH beat AS (
    INSERT INTO ilji.projection_workers (projection, worker_id, heartbeat_at)
    VALUES (%(name)s, %(worker)s, clock_timestamp())
    ON CONFLICT (projection, worker_id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at
), gone AS (
    DELETE FROM ilji.projection_workers
    WHERE projection = %(name)s AND heartbeat_at < clock_timestamp() - interval '1 hour'
)
SELECT count(*) + 1
FROM ilji.projection_workers
WHERE projection = %(name)s AND worker_id <> %(worker)s
  AND heartbeat_at > clock_timestamp() - make_interval(secs => %(window)s)
