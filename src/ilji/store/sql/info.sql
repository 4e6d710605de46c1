SELECT
    (SELECT count(DISTINCT stream) FROM ilji.events)      AS streams,
    (SELECT count(*) FROM ilji.events)                    AS events,
    (SELECT coalesce(max(position), 0) FROM ilji.events)  AS last_position,
    ilji.visible_bound()                                  AS visible_bound,
    current_setting('server_version')                     AS server_version,
    current_database()                                    AS database,
    (SELECT count(*) FROM pg_prepared_xacts)              AS prepared_transactions
