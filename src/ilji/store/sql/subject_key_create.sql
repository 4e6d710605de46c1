-- Create a subject's key unless the subject already has a row (a key or a tombstone).
-- Two writers may race to create the first key of a subject: both generate one, the first
-- insert wins, the other does nothing and returns no row, and both then read the winner
-- with subject_key_get.sql (a new statement, so it sees the committed row).
INSERT INTO ilji.subject_keys (subject, key_id, key)
VALUES (%(subject)s, %(key_id)s, %(key)s)
ON CONFLICT (subject) DO NOTHING
RETURNING subject, key_id, key, created_at, forgotten_at, forgotten_by, reason
