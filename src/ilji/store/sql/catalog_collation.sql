-- How ilji.events.stream sorts: its own collation, or the database's default. Stream listings
-- walk the (stream, version) index in this order, and a prefix is one contiguous range of it
-- only when the order is by code point (see ilji/store/catalog.py).
SELECT coalesce(c.collprovider::text, d.datlocprovider::text) AS provider,
       coalesce(nullif(c.collcollate, ''), nullif(c.collname, 'default'), d.datcollate) AS collate
FROM pg_attribute a
JOIN pg_database d ON d.datname = current_database()
LEFT JOIN pg_collation c ON c.oid = a.attcollation AND c.collname <> 'default'
WHERE a.attrelid = 'ilji.events'::regclass AND a.attname = 'stream'
