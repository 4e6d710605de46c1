-- Subject keys for crypto-shredding: one AES-256 key per data subject (a customer, a person).
--
-- Events are append-only, so personal data cannot be deleted from them. Instead the app layer
-- encrypts personal fields with the subject's key before they are stored, and forgetting a
-- subject deletes the key: every copy of the ciphertext, in every event and every backup of
-- ilji.events, becomes unreadable at once. This table is deliberately separate from the events
-- so that it can live under its own privileges, its own (short) backup retention, or be
-- replaced by an external KMS behind the same interface.
--
-- A forgotten subject keeps its row as a tombstone (key NULL, forgotten_at set): it is the
-- audit record of the erasure, and it stops a new key being created for the same subject,
-- which would quietly start collecting data about someone who asked to be forgotten.
--
-- Note: PostgreSQL's MVCC keeps the old row version (with the key) on disk until VACUUM, and
-- WAL archives and base backups keep it until they expire; see docs/en/personal-data.md.

CREATE TABLE ilji.subject_keys (
    subject      text        PRIMARY KEY CHECK (subject <> ''),
    -- Written into every envelope, so a ciphertext names the exact key it needs.
    key_id       uuid        NOT NULL UNIQUE,
    key          bytea       CHECK (octet_length(key) = 32),
    created_at   timestamptz NOT NULL DEFAULT statement_timestamp(),
    forgotten_at timestamptz,
    forgotten_by text,
    reason       text,
    -- Exactly one of: a live key, or a tombstone.
    CONSTRAINT subject_keys_key_or_tombstone CHECK ((key IS NULL) = (forgotten_at IS NOT NULL))
);
