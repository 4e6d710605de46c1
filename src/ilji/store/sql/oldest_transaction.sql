-- Age in seconds of the oldest open transaction holding a transaction id anywhere in the
-- cluster: while it stays open, the global log's visible bound cannot move past it.
-- A prepared (two-phase) transaction holds the bound too, though no session shows it in
-- pg_stat_activity: it stays until someone commits or rolls it back, even across restarts.
-- Its age counts from when it was prepared (PostgreSQL keeps no start time for it).
SELECT greatest(
    (SELECT coalesce(extract(epoch FROM max(clock_timestamp() - xact_start)), 0)
     FROM pg_stat_activity
     WHERE backend_xid IS NOT NULL
       AND xact_start IS NOT NULL),
    (SELECT coalesce(extract(epoch FROM max(clock_timestamp() - prepared)), 0)
     FROM pg_prepared_xacts)
)::float8
