-- Snapshots: a cache of folded state, beside the streams it was folded from.
--
-- Unlike ilji.events this table is NOT append-only: a snapshot is only ever an optimisation,
-- so rows may be replaced or deleted at any time (a new state schema, disk space, doubt) and
-- loading falls back to replaying the stream. A row names the stream, the state type and the
-- state's schema version it was written with, the stream version it covers and the id of the
-- event at that version, which the loader checks before trusting the row.

CREATE TABLE ilji.snapshots (
    stream          text        NOT NULL,
    state_type      text        NOT NULL,
    schema_version  integer     NOT NULL CHECK (schema_version > 0),
    version         bigint      NOT NULL CHECK (version > 0),
    event_id        uuid        NOT NULL,
    state           jsonb       NOT NULL CHECK (jsonb_typeof(state) = 'object'),
    taken_at        timestamptz NOT NULL DEFAULT statement_timestamp(),
    -- The key's order serves the one hot query: the newest snapshot of a stream and state
    -- schema at or below a version (an index-only descent, no sort).
    PRIMARY KEY (stream, state_type, schema_version, version)
);
