-- Least privilege: the application's database role appends and reads events but can never
-- change or remove them, nor alter the schema.
--
-- Two roles (docs/en/security.md): the OWNER runs migrations (ILJI_MIGRATION_DATABASE_URL)
-- and owns every object in schema ilji; the APP role (ILJI_DATABASE_URL of the servers and
-- workers) gets only what the code's statements need. The owner registers an app role once
-- (`ilji db grant --role NAME`); ilji.grant_app_roles() then gives each registered role exactly
-- the privileges listed below, after revoking everything else in the schema. `ilji migrate`
-- calls it again after every migration it applies, so tables added later are covered too.
--
-- Without registered roles (the embedded default, one role for everything) nothing changes.

CREATE TABLE ilji.app_roles (
    role          name        PRIMARY KEY,
    -- A schema the app role may create tables in: the read models of its projections.
    read_models   name,
    registered_at timestamptz NOT NULL DEFAULT now()
);

-- --8<-- [start:policy]
-- The privileges an app role gets on a table of schema ilji, by table name.
-- ilji.events is append-only: SELECT and INSERT, never UPDATE, DELETE or TRUNCATE (its
-- triggers refuse those too, but a role without the privilege cannot even try). A table
-- that should be append-only for the application MUST be listed here; an unlisted table
-- gets the plain read/write set that working tables (leases, checkpoints) need.
-- Views only ever get SELECT: a simple view such as ilji.visible_events is updatable, and
-- writes through it use the view owner's privileges on ilji.events.
CREATE FUNCTION ilji.app_table_privileges(table_name name, kind "char") RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN kind IN ('v', 'm')       THEN 'SELECT'
        ELSE CASE table_name
        WHEN 'events'                 THEN 'SELECT, INSERT'
        WHEN 'schema_migrations'      THEN 'SELECT'
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
-- --8<-- [end:policy]

-- Re-apply the privileges of every registered app role; returns how many roles it covered.
CREATE FUNCTION ilji.grant_app_roles() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    app   record;
    rel   record;
    privs text;
    done  integer := 0;
BEGIN
    FOR app IN SELECT r.role, r.read_models FROM ilji.app_roles AS r ORDER BY r.role LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = app.role) THEN
            RAISE WARNING 'app role % is registered but does not exist; skipped', app.role;
            CONTINUE;
        END IF;
        -- Start from nothing, so that a privilege granted by hand (or by an older version of
        -- this policy) does not linger.
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA ilji FROM %I', app.role);
        EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA ilji FROM %I', app.role);
        EXECUTE format('REVOKE ALL ON SCHEMA ilji FROM %I', app.role);
        EXECUTE format('GRANT USAGE ON SCHEMA ilji TO %I', app.role);
        FOR rel IN
            SELECT c.relname, c.relkind FROM pg_class AS c
            WHERE c.relnamespace = 'ilji'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
            ORDER BY c.relname
        LOOP
            privs := ilji.app_table_privileges(rel.relname, rel.relkind);
            IF privs <> '' THEN
                EXECUTE format('GRANT %s ON ilji.%I TO %I', privs, rel.relname, app.role);
            END IF;
        END LOOP;
        EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ilji TO %I', app.role);
        -- Between a later migration creating a table and this function running again (in
        -- the same `ilji migrate`), the app role may read it and nothing more.
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA ilji GRANT SELECT ON TABLES TO %I', app.role);
        IF app.read_models IS NOT NULL THEN
            -- Owned by the owner, so the app role cannot drop it; the app role creates (and
            -- owns) its read-model tables inside it.
            EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', app.read_models);
            EXECUTE format('GRANT USAGE, CREATE ON SCHEMA %I TO %I', app.read_models, app.role);
        END IF;
        done := done + 1;
    END LOOP;
    RETURN done;
END;
$$;

-- Register an app role (idempotent) and grant it its privileges now.
CREATE FUNCTION ilji.add_app_role(app name, read_models name) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    owner_oid oid := (SELECT relowner FROM pg_class WHERE oid = 'ilji.events'::regclass);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = app) THEN
        RAISE EXCEPTION 'role % does not exist: create it first (CREATE ROLE % LOGIN PASSWORD ...)',
            app, app USING ERRCODE = 'IJ010';
    END IF;
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = app) THEN
        RAISE EXCEPTION 'role % is a superuser: privileges cannot restrict it', app
            USING ERRCODE = 'IJ010';
    END IF;
    IF read_models = 'ilji' THEN
        RAISE EXCEPTION 'read models cannot live in schema ilji: choose another schema'
            USING ERRCODE = 'IJ010';
    END IF;
    IF pg_has_role(app, owner_oid, 'USAGE') THEN
        RAISE EXCEPTION 'role % owns the Ilji schema (or is a member of its owner): use a separate role',
            app USING ERRCODE = 'IJ010';
    END IF;
    INSERT INTO ilji.app_roles (role, read_models) VALUES (app, read_models)
    ON CONFLICT (role) DO UPDATE SET read_models = EXCLUDED.read_models;
    RETURN ilji.grant_app_roles();
END;
$$;

-- Only the owner (and superusers) may hand out privileges.
REVOKE ALL ON FUNCTION ilji.grant_app_roles() FROM PUBLIC;
REVOKE ALL ON FUNCTION ilji.add_app_role(name, name) FROM PUBLIC;
