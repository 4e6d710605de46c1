-- The event store: one append-only table of events and one row per stream.
--
-- Global ordering (see docs/en/architecture.md): an event's position is
--   (id of the transaction that wrote it) << 12  +  its index in the append batch.
-- Readers of the global log only read positions below
--   pg_snapshot_xmin(pg_current_snapshot()) << 12,
-- that is, events of transactions that can no longer commit or abort. No position below
-- that bound can appear later, so a reader that pages by position never skips an event,
-- even though concurrent writers commit in any order. Writers take no table or advisory lock.

CREATE TABLE ilji.streams (
    name     text PRIMARY KEY,
    -- the stream's number of events, which is also the version of its newest event
    version  bigint NOT NULL CHECK (version >= 0),
    -- the transaction that last appended to the stream: the next appender must have a
    -- larger one, so that positions grow with versions inside a stream
    last_xid xid8 NOT NULL
);

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

-- Append a batch to one stream in one statement (so one round trip, one transaction).
--
-- p_expected: -1 any, -2 exists, >= 0 the exact version (0: the stream must have no events).
-- Returns outcome 'ok' with the version before the batch and the first position;
-- 'conflict' with the stream's actual version; or 'retry' when another transaction with
-- a newer transaction id appended to this stream first (the caller retries in a new
-- transaction, which gets a newer id). A reused event id raises unique_violation on
-- events_id_key, which the client resolves (idempotent retry or conflict).
CREATE FUNCTION ilji.append(
    p_stream text,
    p_expected bigint,
    p_ids uuid[],
    p_types text[],
    p_data jsonb[],
    p_metadata jsonb[],
    OUT outcome text,
    OUT version_before bigint,
    OUT first_position bigint
)
LANGUAGE plpgsql AS $$
DECLARE
    n bigint := cardinality(p_ids);
    v_version bigint;
BEGIN
    IF n IS NULL OR n < 1 OR n > 4096 THEN
        RAISE EXCEPTION 'ilji.append: a batch holds 1 to 4096 events, got %', coalesce(n, 0)
            USING ERRCODE = 'IJ002';
    END IF;

    -- Lock the stream's row. The guard `last_xid < pg_current_xact_id()` keeps positions
    -- increasing with versions: a transaction whose id was assigned before the previous
    -- appender's may only have reached the row lock after it, and must not write here.
    IF p_expected = -1 OR p_expected = 0 THEN
        INSERT INTO ilji.streams AS s (name, version, last_xid)
        VALUES (p_stream, n, pg_current_xact_id())
        ON CONFLICT (name) DO UPDATE
            SET version = s.version + n, last_xid = excluded.last_xid
            WHERE s.last_xid < excluded.last_xid AND (p_expected = -1 OR s.version = 0)
        RETURNING s.version - n INTO version_before;
    ELSE
        UPDATE ilji.streams AS s
            SET version = s.version + n, last_xid = pg_current_xact_id()
            WHERE s.name = p_stream
              AND s.last_xid < pg_current_xact_id()
              AND ((p_expected = -2 AND s.version > 0) OR s.version = p_expected)
        RETURNING s.version - n INTO version_before;
    END IF;

    IF version_before IS NULL THEN
        -- Tell a version conflict from a lost race for the transaction-id order.
        SELECT s.version INTO v_version FROM ilji.streams AS s WHERE s.name = p_stream;
        v_version := coalesce(v_version, 0);
        IF p_expected = -1
           OR (p_expected = -2 AND v_version > 0)
           OR v_version = p_expected THEN
            outcome := 'retry';
        ELSE
            outcome := 'conflict';
        END IF;
        version_before := v_version;
        RETURN;
    END IF;

    first_position := (pg_current_xact_id()::text::bigint) << 12;
    INSERT INTO ilji.events (position, id, stream, version, type, data, metadata)
    SELECT first_position + u.ord - 1, u.id, p_stream, version_before + u.ord,
           u.type, u.data, u.metadata
    FROM unnest(p_ids, p_types, p_data, p_metadata) WITH ORDINALITY AS u(id, type, data, metadata, ord);
    outcome := 'ok';
END;
$$;
