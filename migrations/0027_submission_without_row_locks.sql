-- Each submission inserted an outbox row and an idempotency key whose foreign keys to the new
-- thread each took a FOR KEY SHARE lock on its row: one check at once, the other at commit (it
-- was deferred so that a taken reference undid the whole statement). EXPLAIN ANALYZE showed the
-- outbox check alone at 0.09-0.15 ms of the statement's 0.45-0.60 ms (bench/submit.py,
-- docs/benchmarks.md). The hot path keeps no such check now:
-- - a taken reference fails the unique index threads_reference_key, which undoes the statement
--   just as well (confide/sql/reports.py retries with another reference);
-- - what ON DELETE CASCADE did, a statement trigger does: deleting threads (the erasure pass,
--   in batches) deletes their outbox rows and idempotency keys in one statement each.
-- Nothing else inserts outbox rows for a thread without holding the thread's row first
-- (confide/services/threads.py locks it), and the relay drops a row whose thread is gone.
ALTER TABLE outbox DROP CONSTRAINT outbox_thread_id_fkey;
ALTER TABLE submission_keys DROP CONSTRAINT submission_keys_thread_id_fkey;

CREATE FUNCTION threads_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM outbox o USING gone g WHERE o.thread_id = g.id;
    DELETE FROM submission_keys k USING gone g WHERE k.thread_id = g.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER threads_forget AFTER DELETE ON threads
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION threads_forget();
