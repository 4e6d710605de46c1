-- A stream without any rule left: remove its row, so that readers of a store without rules
-- keep their cheap path (see ilji.visible_events).
DELETE FROM ilji.stream_rules WHERE stream = %(stream)s
