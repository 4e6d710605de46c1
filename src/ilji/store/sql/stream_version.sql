SELECT version FROM ilji.streams WHERE name = %(stream)s
