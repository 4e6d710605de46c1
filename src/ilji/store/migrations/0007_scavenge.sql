-- Scavenging: physically removing the rows that the lifecycle rules hide (0005).
--
-- ilji.events stays append-only for everything a reader can see. The guard trigger now lets
-- one kind of DELETE through: a row that ilji.visible_events hides, that is not its stream's
-- newest row, in a transaction that asked for it (set_config('ilji.scavenge', 'on', true),
-- done by `ilji streams scavenge`). Anything else is still refused, and TRUNCATE and UPDATE
-- always are.
--
-- The newest row of each stream is kept, hidden or not: a stream's version is the highest
-- version stored, and removing its last row would let the next append reuse versions (and
-- expected versions, ETags and retries would then mean something else).
--
-- The application role has no DELETE privilege on ilji.events (0006): a scavenge runs as the
-- schema owner.

CREATE OR REPLACE FUNCTION ilji.refuse_event_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND current_setting('ilji.scavenge', true) = 'on'
       AND NOT EXISTS (SELECT FROM ilji.visible_events AS v WHERE v.position = OLD.position)
       AND OLD.version < (SELECT max(h.version) FROM ilji.events AS h WHERE h.stream = OLD.stream)
    THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'ilji.events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'IJ001';
END;
$$;
