-- Cutover, step 5: the versions the cutover retires keep no error texts. Handler errors are
-- stored redacted, but may still quote data (an exception message a handler wrote), and a
-- rebuild is what the personal-data guide prescribes after forgetting a subject: the old
-- version's parked events stay listed (what, where, when), without their text.
WITH parked AS (
    UPDATE ilji.parked_events
    SET error = 'cleared: version retired by a rebuild'
    WHERE projection = %(name)s AND version < %(version)s
      AND error <> 'cleared: version retired by a rebuild'
)
UPDATE ilji.projection_checkpoints
SET error = NULL
WHERE projection = %(name)s AND version < %(version)s AND error IS NOT NULL
