-- A stopping worker stops counting at once, so the others take a bigger share right away.
DELETE FROM ilji.projection_workers WHERE worker_id = %(worker)s
