-- Shred a subject's key: the key bytes are set to NULL and the row becomes a tombstone that
-- records when, by whom and why. Only a live key matches, so forgetting twice changes nothing
-- (the second call finds the tombstone with subject_key_get.sql).
UPDATE ilji.subject_keys
SET key = NULL,
    forgotten_at = statement_timestamp(),
    forgotten_by = %(by)s,
    reason = %(reason)s
WHERE subject = %(subject)s AND key IS NOT NULL
RETURNING subject, key_id, key, created_at, forgotten_at, forgotten_by, reason
