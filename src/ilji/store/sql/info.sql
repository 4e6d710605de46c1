SELECT
    (SELECT count(*) FROM ilji.streams)                        AS streams,
    (SELECT coalesce(sum(version), 0) FROM ilji.streams)::bigint AS events,
    (SELECT coalesce(max(position), 0) FROM ilji.events)       AS last_position,
    ilji.visible_bound()                                        AS visible_bound,
    current_setting('server_version')                           AS server_version,
    current_database()                                          AS database
