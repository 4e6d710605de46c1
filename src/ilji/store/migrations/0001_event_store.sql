-- The event store: one append-only table of events, streams and categories within it.
--
-- Global ordering (see docs/en/architecture.md): an event's position is
--   (id of the transaction that wrote it) << 12  +  its index in the append batch.
-- Readers of the global log only read positions below
--   pg_snapshot_xmin(pg_current_snapshot()) << 12,
-- that is, events of transactions that can no longer commit or abort. No position below
-- that bound can appear later, so a reader that pages by position never skips an event,
-- even though concurrent writers commit in any order. Writers take no table or advisory lock.
--
-- Optimistic concurrency rests on the unique index on (stream, version): an append reads
-- the stream's version and inserts the next versions in one statement, and of two appends
-- that read the same version, the second to insert fails on that index. An append that
-- succeeds saw the stream's previous event committed before its transaction id was
-- assigned, so inside a stream positions grow with versions.

CREATE TABLE ilji.events (
    position    bigint      PRIMARY KEY CHECK (position > 0 AND position < 9007199254740992),
    id          uuid        NOT NULL,
    stream      text        NOT NULL,
    version     bigint      NOT NULL CHECK (version > 0),
    category    text        NOT NULL GENERATED ALWAYS AS (split_part(stream, '-', 1)) STORED,
    type        text        NOT NULL,
    data        jsonb       NOT NULL CHECK (jsonb_typeof(data) = 'object'),
    metadata    jsonb       NOT NULL CHECK (jsonb_typeof(metadata) = 'object'),
    recorded_at timestamptz NOT NULL DEFAULT statement_timestamp(),
    CONSTRAINT events_id_key UNIQUE (id),
    CONSTRAINT events_stream_version_key UNIQUE (stream, version)
);

CREATE INDEX events_category_position ON ilji.events (category, position);

-- Events are facts: the database itself refuses to change or remove them.
CREATE FUNCTION ilji.refuse_event_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ilji.events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'IJ001';
END;
$$;

CREATE TRIGGER events_append_only_rows
    BEFORE UPDATE OR DELETE ON ilji.events
    FOR EACH ROW EXECUTE FUNCTION ilji.refuse_event_change();

CREATE TRIGGER events_append_only_truncate
    BEFORE TRUNCATE ON ilji.events
    FOR EACH STATEMENT EXECUTE FUNCTION ilji.refuse_event_change();

-- The position below which the global log is final for this statement's snapshot.
CREATE FUNCTION ilji.visible_bound() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::bigint) << 12
$$;
