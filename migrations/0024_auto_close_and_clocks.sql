-- Auto-close after silence and the statutory clocks (issue 16, items 3 and 4; docs/lifecycle.md).
--
-- Auto-close needs no new column: an open anonymous thread where the case worker spoke last is
-- closed `auto_close_after` (organisation file) after that message. This partial index holds just
-- those threads, so the set-based pass (confide.sql.autoclose) reads only the ones that can close.
-- The predicate is the pass's condition word for word, so the planner matches it.
CREATE INDEX threads_auto_close ON threads (last_caseworker_message_at)
    WHERE status <> 'closed' AND anonymous
      AND last_caseworker_message_at > coalesce(last_reporter_message_at, '-infinity');

-- A case-worker message sent with "This is our feedback" ticked, and a message Confide sent by
-- itself (the automatic acknowledgement: it acknowledges, but is nobody's reply, so it stops no
-- reply clock and starts no auto-close). Both default false: adding them rewrites no row.
ALTER TABLE messages ADD COLUMN feedback boolean NOT NULL DEFAULT false,
                     ADD COLUMN automatic boolean NOT NULL DEFAULT false;

-- The statutory clocks (`clocks = ["eu-directive"]`, Directive 2019/1937 Art. 9): one row per
-- report with a channel back that was received while the option was on. Narrow, like
-- thread_clocks: the escalation pass reads and marks only this table.
--   acknowledge_by   received + 7 calendar days
--   acknowledged_at  the first case-worker message, the acknowledgement e-mail sent, "contacted"
--   feedback_due_by  3 months after the acknowledgement, or after acknowledge_by if none was sent
--   feedback_at      the first case-worker message sent with "This is our feedback" ticked
--   running          false while the thread is closed (closing stops the clocks; reopening
--                    restarts whichever is still unmet)
--   due_at, nearing_at  the running clock's deadline and the start of its nearing window
--   statutory        the escalation pass's mark: none, nearing or overdue
-- The trigger below derives feedback_due_by, due_at and nearing_at from the facts, so every
-- writer only records what happened. Months are added in UTC, so the result never depends on a
-- session's time zone.
CREATE TABLE statutory_clocks (
    thread_id        uuid PRIMARY KEY REFERENCES threads (id) ON DELETE CASCADE,
    team_id          integer NOT NULL,  -- kept equal to the thread's (sql.threads.set_team)
    acknowledge_by   timestamptz NOT NULL,
    acknowledged_at  timestamptz,
    feedback_due_by  timestamptz NOT NULL,
    feedback_at      timestamptz,
    running          boolean NOT NULL DEFAULT true,
    due_at           timestamptz,
    nearing_at       timestamptz,
    statutory        text NOT NULL DEFAULT 'none'
                     CHECK (statutory IN ('none', 'nearing', 'overdue')),
    marked_at        timestamptz
) WITH (fillfactor = 85);

CREATE FUNCTION statutory_clocks_derive() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.feedback_due_by := (coalesce(NEW.acknowledged_at, NEW.acknowledge_by) AT TIME ZONE 'UTC'
                            + interval '3 months') AT TIME ZONE 'UTC';
    NEW.due_at := CASE
        WHEN NOT NEW.running THEN NULL
        WHEN NEW.acknowledged_at IS NULL THEN NEW.acknowledge_by
        WHEN NEW.feedback_at IS NULL THEN NEW.feedback_due_by
    END;
    -- Nearing: 2 days before the acknowledgement is due, 14 days before the feedback.
    NEW.nearing_at := NEW.due_at - CASE WHEN NEW.acknowledged_at IS NULL THEN interval '2 days'
                                        ELSE interval '14 days' END;
    IF TG_OP = 'INSERT' OR NEW.due_at IS DISTINCT FROM OLD.due_at THEN
        NEW.statutory := 'none';
        NEW.marked_at := NULL;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER statutory_clocks_derive BEFORE INSERT OR UPDATE ON statutory_clocks
    FOR EACH ROW EXECUTE FUNCTION statutory_clocks_derive();

-- The pass marks from nearing_at; neither index holds `statutory`, so a mark touches no index.
CREATE INDEX statutory_clocks_nearing ON statutory_clocks (nearing_at) WHERE due_at IS NOT NULL;
CREATE INDEX statutory_clocks_team ON statutory_clocks (team_id);

-- The reporter's .ics gains a second event: the day the thread closes for silence. Like
-- `due_at`/`generated_for` for the first: the last auto-close time it described (kept, so a
-- cancelled event keeps its time) and the one the stored files were built for (NULL: none).
ALTER TABLE reminders ADD COLUMN closes_at timestamptz, ADD COLUMN closes_for timestamptz;
