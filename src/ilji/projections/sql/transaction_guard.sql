-- First statement of every runner transaction; both settings last until its end only
-- (is_local = true), so they never leak into the pool and work behind a transaction pooler.
--
-- idle_in_transaction_session_timeout: if the worker freezes (SIGSTOP, a long GC pause, a
-- partitioned network) in the middle of a transaction, PostgreSQL ends the session after
-- this long idle, which releases the row locks it holds and ends its transaction id, which
-- otherwise holds back the global log's visible bound for every reader.
--
-- application_name tags the transaction with the lease it works under
-- (ilji-lease:<partition key>:<token>), so that the next owner can find and terminate it
-- (terminate_stale.sql): the timeout above does not fire while a frozen client is in the
-- middle of a pipeline (the server is then not "idle", it waits for the rest of the batch).
SELECT set_config('idle_in_transaction_session_timeout', %(timeout_ms)s, true),
       set_config('application_name', %(tag)s, true)
