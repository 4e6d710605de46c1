SELECT outcome, version_before, first_position
FROM ilji.append(%(stream)s, %(expected)s, %(ids)s, %(types)s, %(data)s::jsonb[], %(metadata)s::jsonb[])
