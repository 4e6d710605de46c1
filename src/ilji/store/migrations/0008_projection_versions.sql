-- Projection versions are fixed when they are created (issue 13).
--
-- A version's partition count decides which partition owns which stream; changing it under
-- existing checkpoints applies events twice. And the code that builds a version's tables is
-- the only code that may write them: a rolling deploy runs two codes side by side. So each
-- version gets one row, created once (INSERT ... ON CONFLICT DO NOTHING decides between
-- workers racing to create it), holding the partition count its checkpoint rows are made
-- from and the `version` of the code that builds it. A worker runs only versions whose
-- code_version equals its code's `version`, with exactly that partition count.
CREATE TABLE ilji.projection_versions (
    projection   text        NOT NULL REFERENCES ilji.projections (name) ON DELETE CASCADE,
    version      integer     NOT NULL CHECK (version > 0),
    partitions   integer     NOT NULL CHECK (partitions > 0),
    -- The code's `version` (a rebuild requested with `ilji projections rebuild` is built by the
    -- serving version's code). NULL: created before this migration, when it was not recorded;
    -- such a version is run by any code whose `version` is not above it.
    code_version integer     CHECK (code_version > 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, version)
);

-- Versions that exist already keep the count their partition 0 was created with (rows that a
-- later count added beside it are the bug this migration ends; they keep working as before).
INSERT INTO ilji.projection_versions (projection, version, partitions)
SELECT projection, version, partitions
FROM ilji.projection_checkpoints
WHERE partition = 0;

-- What each worker runs, so `ilji projections status` can say which workers serve, build,
-- stand idle (code older than the serving version) or refuse (see worker.py).
ALTER TABLE ilji.projection_workers
    ADD COLUMN code_version integer,
    ADD COLUMN versions     integer[] NOT NULL DEFAULT '{}',
    ADD COLUMN state        text,
    ADD COLUMN error        text;

-- Error texts of handlers used to keep PostgreSQL's DETAIL lines, which quote row data
-- (personal data included): keep the first line only (see runner.describe_error).
UPDATE ilji.parked_events SET error = split_part(error, E'\n', 1) WHERE error LIKE E'%\n%';
UPDATE ilji.projection_checkpoints SET error = split_part(error, E'\n', 1) WHERE error LIKE E'%\n%';
