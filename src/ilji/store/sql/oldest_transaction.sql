-- Age in seconds of the oldest open transaction holding a transaction id anywhere in the
-- cluster: while it stays open, the global log's visible bound cannot move past it.
SELECT coalesce(extract(epoch FROM max(clock_timestamp() - xact_start)), 0)::float8
FROM pg_stat_activity
WHERE backend_xid IS NOT NULL
  AND xact_start IS NOT NULL
