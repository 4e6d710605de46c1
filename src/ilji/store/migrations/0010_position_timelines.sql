-- Positions that keep growing across a promotion or a point-in-time restore.
--
-- A position is made of the id of the transaction that wrote it (docs/en/architecture.md).
-- A standby promoted while behind (asynchronous replication), or a cluster restored to an
-- earlier point, continues the transaction counter from the last transaction *it* has: the
-- ids of the transactions it lost are handed out again, and events stored under them would
-- get positions that a follower which read the lost events has already passed. Both start a
-- new PostgreSQL timeline, and timeline ids only grow (a restore takes one above every
-- timeline in the WAL archive's history). So a position also carries its timeline, counted
-- from the one this migration found (so that positions written before it, and by processes
-- still running the previous version during a rolling upgrade, keep their meaning):
--
--     position = ((transaction id + (timeline - first timeline) * 2^30) << 12) + batch index
--
-- 2^30 transactions per timeline is the margin: a standby would have to be promoted more
-- than a billion transactions behind its primary for new positions to fall below lost ones.
-- With positions below 2^53 this leaves room for about 2,000 promotions and restores.
--
-- Writers compute the offset from the timeline they write on (ilji.xact_position(), no table
-- read: the append path pays a WAL file name per statement, nothing more). Readers add to
-- their snapshot's xmin the offset of the newest timeline *recorded* in ilji.position_timelines,
-- a table replicated like the events, so a hot standby never uses a timeline it has not
-- replayed. That offset is never ahead of a writer's (rows are only added for the timeline the
-- primary writes on), so the bound never passes an event still being written: safe. Until a
-- new timeline is recorded, readers see nothing written on it: ilji.note_timeline() records
-- it, called by every Ilji process on each new connection, with each coalesced NOTIFY after
-- appends, and at startup (migrate), so that takes milliseconds after a promotion.

CREATE TABLE ilji.position_timelines (
    timeline    bigint      PRIMARY KEY CHECK (timeline > 0),
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- The timeline this (primary) server writes WAL on: the first 8 hex digits of a WAL file name.
CREATE FUNCTION ilji.current_timeline() RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint
$$;

-- The timeline the positions count from, recorded below; ilji.xact_position() gets it as a
-- constant (written into its body here), so an append reads no table for it.
INSERT INTO ilji.position_timelines (timeline) SELECT ilji.current_timeline();

-- The position of this transaction's first event (index 0). Replaces the bare
-- pg_current_xact_id()::text::bigint << 12 of the append statements.
DO $$
BEGIN
    EXECUTE format(
        'CREATE FUNCTION ilji.xact_position() RETURNS bigint LANGUAGE sql VOLATILE AS %L',
        format('SELECT (pg_current_xact_id()::text::bigint + ((ilji.current_timeline() - %s) << 30)) << 12',
               (SELECT min(timeline) FROM ilji.position_timelines)));
END;
$$;

-- The newest timeline recorded (and so replayed, on a standby).
CREATE FUNCTION ilji.last_timeline() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT max(timeline) FROM ilji.position_timelines
$$;

-- The offset readers add to a snapshot's xmin: that of the newest timeline recorded.
CREATE FUNCTION ilji.read_offset() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (max(timeline) - min(timeline)) << 30 FROM ilji.position_timelines
$$;

CREATE OR REPLACE FUNCTION ilji.visible_bound() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::bigint + ilji.read_offset()) << 12
$$;

-- Record the timeline this server writes on, if it is new (a no-op on a standby and, after
-- the first call, on an unchanged primary). SECURITY DEFINER: app roles may only read the
-- table. A timeline older than the newest recorded means a restore that did not see the WAL
-- archive's timeline history, whose positions could fall below ones already handed out: that
-- is refused, loudly (Ilji processes fail to connect, and `ilji migrate` fails, saying so).
CREATE FUNCTION ilji.note_timeline() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tl bigint;
    newest bigint := ilji.last_timeline();
BEGIN
    IF pg_is_in_recovery() THEN
        RETURN newest;
    END IF;
    tl := ilji.current_timeline();
    IF tl = newest THEN
        RETURN tl;
    END IF;
    IF tl < newest THEN
        RAISE EXCEPTION 'this server writes on timeline % but positions were already handed out on timeline %', tl, newest
            USING HINT = 'the cluster was restored without the WAL archive''s timeline history; see docs/en/scaling.md';
    END IF;
    INSERT INTO ilji.position_timelines (timeline) VALUES (tl) ON CONFLICT DO NOTHING;
    RETURN tl;
END;
$$;

-- App roles (0006) read the timelines; only the trigger above writes them.
CREATE OR REPLACE FUNCTION ilji.app_table_privileges(table_name name, kind "char") RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN kind IN ('v', 'm')       THEN 'SELECT'
        ELSE CASE table_name
        WHEN 'events'                 THEN 'SELECT, INSERT'
        WHEN 'schema_migrations'      THEN 'SELECT'
        WHEN 'position_timelines'     THEN 'SELECT'
        WHEN 'app_roles'              THEN ''
        WHEN 'snapshots'              THEN 'SELECT, INSERT, UPDATE, DELETE'
        WHEN 'subject_keys'           THEN 'SELECT, INSERT, UPDATE'
        WHEN 'projections'            THEN 'SELECT, INSERT, UPDATE'
        WHEN 'projection_checkpoints' THEN 'SELECT, INSERT, UPDATE'
        WHEN 'parked_events'          THEN 'SELECT, INSERT, UPDATE'
        WHEN 'projection_workers'     THEN 'SELECT, INSERT, UPDATE, DELETE'
        WHEN 'stream_rules'           THEN 'SELECT, INSERT, UPDATE, DELETE'
        WHEN 'category_retention'     THEN 'SELECT, INSERT, UPDATE, DELETE'
        ELSE 'SELECT, INSERT, UPDATE, DELETE'
    END END
$$;

