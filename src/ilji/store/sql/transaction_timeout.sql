-- Behind a transaction pooler, the per-session idle_in_transaction_session_timeout set at
-- connect time is lost: an admin transaction sets it for itself.
SELECT set_config('idle_in_transaction_session_timeout', %(timeout_ms)s, true)
