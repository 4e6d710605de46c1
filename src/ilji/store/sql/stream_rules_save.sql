-- Store a stream's rule (a soft delete, a truncation). A soft delete keeps the time it was
-- first made while its version stays the same.
INSERT INTO ilji.stream_rules AS r (stream, truncate_before, deleted_version, deleted_at)
VALUES (%(stream)s, %(truncate_before)s, %(deleted_version)s::bigint,
        CASE WHEN %(deleted_version)s::bigint IS NULL THEN NULL ELSE statement_timestamp() END)
ON CONFLICT (stream) DO UPDATE
SET truncate_before = EXCLUDED.truncate_before,
    deleted_version = EXCLUDED.deleted_version,
    deleted_at = CASE WHEN EXCLUDED.deleted_version IS NOT DISTINCT FROM r.deleted_version
                      THEN r.deleted_at ELSE EXCLUDED.deleted_at END,
    changed_at = statement_timestamp()
