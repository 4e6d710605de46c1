-- The rows (live keys and tombstones) of some subjects, for readers and after a lost create.
SELECT subject, key_id, key, created_at, forgotten_at, forgotten_by, reason
FROM ilji.subject_keys
WHERE subject = ANY(%(subjects)s::text[])
