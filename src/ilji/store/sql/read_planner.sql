-- Behind a transaction pooler the connection's startup options never reach the server, so a
-- global-log or category page sets what it needs for its own transaction only (see
-- PostgresEventStore.open on why bitmap scans are off).
SET LOCAL enable_bitmapscan = off
