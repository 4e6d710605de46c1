-- The next transaction id PostgreSQL will assign, with its epoch (64 bits, never wraps).
-- Positions are transaction ids << 12, so appends stop when this reaches 2^41. Read from
-- the snapshot, so asking does not use up a transaction id.
SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint
