-- Projections: checkpoints, leases and parked (dead-letter) events.
--
-- A projection reads the global log (or a category, or some event types) and keeps read-model
-- tables up to date. Its progress is a checkpoint row per (projection, version, partition),
-- written in the SAME transaction as the read-model changes, so a crash anywhere leaves the
-- two consistent. The read-model tables themselves belong to the application.
--
-- Ownership is a lease stored in that row, not an advisory lock: session advisory locks are
-- lost or shared between clients behind a pooler in transaction mode (PgBouncer), while a row
-- with an owner, an expiry and a fencing token works through any pooler. Expiry is compared
-- with the database clock only (clock_timestamp()), so the workers' clocks never matter.

-- One row per projection: which version readers use, and the admin switches.
CREATE TABLE ilji.projections (
    name              text        PRIMARY KEY,
    -- The version whose tables readers must use; a rebuild flips it in one transaction.
    active_version    integer     NOT NULL CHECK (active_version > 0),
    -- A version an operator asked to build (ilji projections rebuild); NULL when none.
    requested_version integer     CHECK (requested_version > 0),
    -- What the projection reads: NULL category = the global log; NULL types = every type.
    -- Stored so that lag and read-your-writes can be answered without the projection's code.
    category          text,
    types             text[],
    paused            boolean     NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ilji.projection_checkpoints (
    projection       text        NOT NULL REFERENCES ilji.projections (name) ON DELETE CASCADE,
    version          integer     NOT NULL CHECK (version > 0),
    partition        integer     NOT NULL CHECK (partition >= 0),
    partitions       integer     NOT NULL CHECK (partitions > 0 AND partition < partitions),
    -- The position of the last event this partition has dealt with (applied, skipped as
    -- another partition's, or parked). 0 = nothing yet.
    position         bigint      NOT NULL DEFAULT 0 CHECK (position >= 0),
    -- The lease: who may advance this row, until when, and the fencing token that every
    -- checkpoint write compares. Each acquisition increments the token, so a writer that
    -- still holds an older token can never commit again.
    owner            text,
    fencing_token    bigint      NOT NULL DEFAULT 0,
    lease_expires_at timestamptz,
    -- running | catching_up | stopped | failed | retired (paused lives in ilji.projections).
    status           text        NOT NULL DEFAULT 'stopped'
                     CHECK (status IN ('running', 'catching_up', 'stopped', 'failed', 'retired')),
    error            text,
    -- Events this row's owners applied (a counter) and the last owner's recent rate.
    events_applied   bigint      NOT NULL DEFAULT 0,
    events_per_second double precision NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, version, partition)
);

-- Events a projection gave up on (after its retries), so that the others keep flowing.
CREATE TABLE ilji.parked_events (
    projection       text        NOT NULL,
    version          integer     NOT NULL,
    partition        integer     NOT NULL,
    position         bigint      NOT NULL,
    event_id         uuid        NOT NULL,
    stream           text        NOT NULL,
    type             text        NOT NULL,
    error            text        NOT NULL,
    attempts         integer     NOT NULL,
    parked_at        timestamptz NOT NULL DEFAULT now(),
    -- An operator asked for a replay; the owning worker applies the event once, then sets
    -- replayed_at (in the same transaction as the handler's writes) and clears the request.
    replay_requested_at timestamptz,
    replayed_at      timestamptz,
    PRIMARY KEY (projection, version, event_id),
    FOREIGN KEY (projection, version, partition)
        REFERENCES ilji.projection_checkpoints (projection, version, partition) ON DELETE CASCADE
);

-- The owning worker looks for replay requests of its partition on every lease renewal.
CREATE INDEX parked_events_replay ON ilji.parked_events (projection, version, partition)
    WHERE replay_requested_at IS NOT NULL AND replayed_at IS NULL;

-- Workers running each projection, with a heartbeat: how many are alive decides each one's
-- fair share of a partitioned projection's partitions (ceil(partitions / live workers)), so
-- that a worker started later gets partitions instead of the first worker keeping them all.
-- Only balancing depends on it; ownership and exactly-once rest on the leases alone.
CREATE TABLE ilji.projection_workers (
    projection   text        NOT NULL,
    worker_id    text        NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    PRIMARY KEY (projection, worker_id)
);
