-- The lifecycle pass's rewrap step (confide/sql/lifecycle.py `drifted`) looks for threads whose
-- data key is wrapped for another quarter than their erasure date's, such as those a set-based
-- close just closed. Without an index it walked the whole primary key, reading every thread,
-- on every pass (3 s of a 20 s pass at 1,000,000 threads: bench/erasure.py). This partial index
-- holds only the threads that drifted, which are none between passes; its predicate is the
-- query's condition, word for word. Open threads (no erasure date) never enter it, so a new
-- report pays only the predicate's check.
CREATE INDEX threads_drifted_wrap ON threads (id)
    WHERE erasure_due_at IS NOT NULL AND data_key IS NOT NULL
      AND legal_hold_at IS NULL
      AND data_key_quarter IS DISTINCT FROM
          (extract(year FROM erasure_due_at AT TIME ZONE 'UTC')::int || 'q'
           || extract(quarter FROM erasure_due_at AT TIME ZONE 'UTC')::int);
