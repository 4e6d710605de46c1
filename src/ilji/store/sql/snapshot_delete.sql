-- Delete snapshots; a NULL filter matches everything. Always safe: loading replays the stream.
DELETE FROM ilji.snapshots
WHERE (%(stream)s::text IS NULL OR stream = %(stream)s::text)
  AND (%(state_type)s::text IS NULL OR state_type = %(state_type)s::text)
