-- Record the timeline this server writes on, if new (migration 0010): on every new connection,
-- so readers see events written after a promotion without waiting for a notification.
SELECT ilji.note_timeline()
