-- Park a poison event, in the same transaction as the checkpoint moving past it (advance.sql):
-- either both happen or neither. Parking an event that was parked and replayed before (it
-- failed again in a new version of the handler) starts its record over.
INSERT INTO ilji.parked_events AS e
    (projection, version, partition, position, event_id, stream, type, error, attempts)
VALUES (%(name)s, %(version)s, %(partition)s, %(position)s, %(event_id)s, %(stream)s, %(type)s,
        %(error)s, %(attempts)s)
ON CONFLICT (projection, version, event_id) DO UPDATE
    SET error = EXCLUDED.error, attempts = e.attempts + EXCLUDED.attempts, parked_at = now(),
        replayed_at = NULL, replay_requested_at = NULL
