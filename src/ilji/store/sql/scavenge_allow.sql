-- Opens this transaction's door in the append-only guard (migration 0007): only rows the
-- lifecycle rules hide, never a stream's newest row.
SELECT set_config('ilji.scavenge', 'on', true)
