SELECT coalesce(max(version), 0) FROM ilji.events WHERE stream = %(stream)s
