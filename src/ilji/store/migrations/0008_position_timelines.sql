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
-- Writers compute the offset from the timeline they write on (ilji.xact_position()). Readers
-- must use the offset of the newest timeline whose events they can see, never one ahead of
-- what they have replayed (a hot standby), so the timelines are recorded in a table, replicated
-- like the events: a statement trigger records the writer's timeline in the same transaction
-- as its events, before any of them can be seen.

CREATE TABLE ilji.position_timelines (
    timeline    bigint      PRIMARY KEY CHECK (timeline > 0),
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- The timeline this (primary) server writes WAL on: the first 8 hex digits of a WAL file name.
CREATE FUNCTION ilji.current_timeline() RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint
$$;

-- The position of this transaction's first event (index 0). Replaces the bare
-- pg_current_xact_id()::text::bigint << 12 of the append statements.
CREATE FUNCTION ilji.xact_position() RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT (pg_current_xact_id()::text::bigint
            + ((ilji.current_timeline() - (SELECT min(timeline) FROM ilji.position_timelines)) << 30)) << 12
$$;

-- The offset readers add to a snapshot's xmin: that of the newest timeline recorded (and so
-- replayed, on a standby).
CREATE FUNCTION ilji.read_offset() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (max(timeline) - min(timeline)) << 30 FROM ilji.position_timelines
$$;

CREATE OR REPLACE FUNCTION ilji.visible_bound() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::bigint + ilji.read_offset()) << 12
$$;

-- Runs once per INSERT statement on ilji.events, whoever writes: the timeline row commits with
-- the first events written on it, or before them. SECURITY DEFINER: app roles may only read
-- the table. ON CONFLICT: concurrent first writers on a new timeline wait for each other.
CREATE FUNCTION ilji.record_timeline() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tl bigint := ilji.current_timeline();
BEGIN
    IF NOT EXISTS (SELECT FROM ilji.position_timelines WHERE timeline = tl) THEN
        INSERT INTO ilji.position_timelines (timeline) VALUES (tl) ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;
REVOKE ALL ON FUNCTION ilji.record_timeline() FROM PUBLIC;

CREATE TRIGGER events_record_timeline
    BEFORE INSERT ON ilji.events
    FOR EACH STATEMENT EXECUTE FUNCTION ilji.record_timeline();

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

-- The timeline the database is on now, so readers use its offset from the start.
INSERT INTO ilji.position_timelines (timeline) SELECT ilji.current_timeline();
