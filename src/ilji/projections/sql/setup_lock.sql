-- Serialise `Projection.setup` across partitions and workers: concurrent
-- CREATE TABLE IF NOT EXISTS of the same table can still fail on a catalog unique index.
-- A transaction-level advisory lock (released at COMMIT) is safe behind PgBouncer in
-- transaction mode, unlike a session-level one.
SELECT pg_advisory_xact_lock(hashtext('ilji.projection.setup:' || %(name)s))
