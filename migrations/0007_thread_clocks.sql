-- A running reply clock's escalation state moves out of `threads` into a narrow table.
--
-- The escalation pass marked nearing and overdue threads in `threads` itself. At 1,000,000
-- threads a pass that marks 80,000 of them rewrote rows spread over every page of a wide table:
-- 23,000 pages dirtied, 25,000 full-page images, 180 MB of WAL, 2-3 times the bare scan and mark
-- (docs/benchmarks.md). `thread_clocks` holds one row per thread whose clock runs (a reply is
-- due and the thread is not closed): the due time, when it nears, the team, and the pass's
-- marks. The pass and the per-team recount now read and write only this table; every other
-- reader joins it by primary key. `threads` keeps `awaiting_since` and `reply_due_at`, which
-- change only when a message starts or stops the clock, for the inbox and the reminders.
CREATE TABLE thread_clocks (
    thread_id     uuid PRIMARY KEY REFERENCES threads (id) ON DELETE CASCADE,
    -- The thread's team (kept equal by sql.threads.set_team), for the per-team recount.
    team_id       integer NOT NULL,
    reply_due_at  timestamptz NOT NULL,
    nearing_at    timestamptz NOT NULL,
    escalation    text NOT NULL DEFAULT 'none'
                  CHECK (escalation IN ('none', 'nearing', 'overdue')),
    escalated_at  timestamptz
) WITH (fillfactor = 85);  -- room on each page, so the pass's marks are HOT updates

INSERT INTO thread_clocks (thread_id, team_id, reply_due_at, nearing_at, escalation, escalated_at)
SELECT id, team_id, reply_due_at, nearing_at, escalation, escalated_at
FROM threads WHERE reply_due_at IS NOT NULL AND status <> 'closed';

-- Neither index holds `escalation` (key or predicate), so marking a thread touches no index.
CREATE INDEX thread_clocks_nearing ON thread_clocks (nearing_at);
CREATE INDEX thread_clocks_team ON thread_clocks (team_id);

DROP INDEX threads_nearing;
ALTER TABLE threads DROP COLUMN escalation, DROP COLUMN escalated_at, DROP COLUMN nearing_at;
-- A closed thread's clock never runs.
UPDATE threads SET awaiting_since = NULL, reply_due_at = NULL
WHERE status = 'closed' AND reply_due_at IS NOT NULL;
