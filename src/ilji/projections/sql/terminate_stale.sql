-- Run by a new owner right after acquiring: end the transactions still open under an OLDER
-- lease of the same partition (a frozen or partitioned previous owner). They could never
-- commit (the fence rejects them), but while open they hold row locks the new owner's writes
-- wait for, and their transaction id holds back the global log's visible bound for everyone.
-- Allowed for members of the sessions' role (or pg_signal_backend); if not permitted, the
-- idle-in-transaction timeout still ends most of them.
SELECT count(pg_terminate_backend(pid))
FROM pg_stat_activity
WHERE application_name LIKE %(pattern)s
  AND application_name <> %(tag)s
  AND pid <> pg_backend_pid()
