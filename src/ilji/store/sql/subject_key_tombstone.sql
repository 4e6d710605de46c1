-- Forget a subject that has no key yet (no personal data was ever written): store the
-- tombstone anyway, so the erasure is on record and no key is ever created for the subject.
-- Does nothing when a row exists (a key created meanwhile: the caller shreds it and retries).
INSERT INTO ilji.subject_keys (subject, key_id, key, forgotten_at, forgotten_by, reason)
VALUES (%(subject)s, %(key_id)s, NULL, statement_timestamp(), %(by)s, %(reason)s)
ON CONFLICT (subject) DO NOTHING
RETURNING subject, key_id, key, created_at, forgotten_at, forgotten_by, reason
