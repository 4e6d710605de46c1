-- Stream lifecycle: soft delete, truncate-before and per-category retention (docs/en/lifecycle.md).
--
-- Events stay append-only: none of this changes or removes a row of ilji.events. Each rule
-- is a small row here that HIDES events from readers, and every change of a rule is recorded
-- as events of Ilji's own streams ($lifecycle says what changed, $audit who did it) in the
-- same transaction, so there is no silent change.
--
-- Readers (stream reads, the global log, categories, and so projections) select from the
-- view ilji.visible_events instead of ilji.events. The view is a filter on top of the table:
-- the global log keeps its visible bound and its ordered index scan, positions stay
-- increasing, and a reader paging by position never skips an event that is visible.
--
-- A stream's hidden versions: below truncate_before, and up to deleted_version while the
-- soft delete stands. An append to a deleted stream is not refused (the append statement does
-- not look at these tables): the stream comes back with the new events only, the older ones
-- stay hidden until a restore.

CREATE TABLE ilji.stream_rules (
    stream          text        PRIMARY KEY,
    -- Versions below this one are hidden (0 or 1: nothing is truncated).
    truncate_before bigint      NOT NULL DEFAULT 0 CHECK (truncate_before >= 0),
    -- Set by a soft delete: the stream's version then. Versions up to it are hidden.
    deleted_version bigint      CHECK (deleted_version > 0),
    deleted_at      timestamptz,
    changed_at      timestamptz NOT NULL DEFAULT statement_timestamp(),
    -- What readers compare with: the first version they may see.
    hide_below      bigint      NOT NULL
        GENERATED ALWAYS AS (greatest(truncate_before, coalesce(deleted_version, 0) + 1)) STORED,
    CONSTRAINT stream_rules_deleted_pair CHECK ((deleted_version IS NULL) = (deleted_at IS NULL))
);

CREATE TABLE ilji.category_retention (
    category   text        PRIMARY KEY,
    -- Events recorded longer ago than this are hidden.
    max_age    interval    CHECK (max_age > interval '0 seconds'),
    -- Only the newest max_count events of each stream of the category are visible.
    max_count  bigint      CHECK (max_count > 0),
    changed_at timestamptz NOT NULL DEFAULT statement_timestamp(),
    CONSTRAINT category_retention_some_rule CHECK (max_age IS NOT NULL OR max_count IS NOT NULL)
);

-- The events readers may see. Each rule table is first asked whether it has any row at all
-- (an uncorrelated EXISTS: PostgreSQL computes it once per statement, as an InitPlan), and
-- the OR stops there when it is empty: a store without rules pays two scans of an empty
-- table per statement, not a lookup per event. With rules, each event costs one primary-key
-- probe per table; the max_count rule also looks up its stream's head, only for events of a
-- category that has that rule.
CREATE VIEW ilji.visible_events AS
SELECT e.*
FROM ilji.events AS e
WHERE (NOT EXISTS (SELECT FROM ilji.stream_rules)
       OR NOT EXISTS (SELECT FROM ilji.stream_rules AS r
                      WHERE r.stream = e.stream AND e.version < r.hide_below))
  AND (NOT EXISTS (SELECT FROM ilji.category_retention)
       OR NOT EXISTS (SELECT FROM ilji.category_retention AS c
                      WHERE c.category = e.category
                        AND (e.recorded_at < statement_timestamp() - c.max_age
                             OR e.version <= (SELECT max(h.version) FROM ilji.events AS h
                                              WHERE h.stream = e.stream) - c.max_count)));
