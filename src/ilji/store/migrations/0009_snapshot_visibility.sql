-- Snapshots remember which events they were folded from.
--
-- Lifecycle rules (truncate-before, soft delete, retention) hide a prefix of a stream, and
-- hiding or showing it again changes what a replay folds. A snapshot folded from versions
-- first_version..version is the same as a replay only while first_version is still the
-- stream's first visible version; the loader compares the two and replays from the events
-- when they differ (docs/en/concepts.md#snapshots).
--
-- Rows stored before this migration do not say what was hidden when they were folded, so
-- they are dropped: a snapshot is a cache, and loading rebuilds it from the events.

DELETE FROM ilji.snapshots;

ALTER TABLE ilji.snapshots
    ADD COLUMN first_version bigint NOT NULL CHECK (first_version > 0),
    ADD CONSTRAINT snapshots_first_version_covered CHECK (first_version <= version);
