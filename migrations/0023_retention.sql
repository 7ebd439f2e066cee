-- Retention (issue 16, docs/lifecycle.md): a closed thread is erased once its category's period
-- after closure has passed, unless a manager extended it (once) or holds it (legal hold).
--
-- `categories.retention` and `lifecycle_rules.retention` are synced from the organisation file
-- ([lifecycle] retention, and a category's own `retention`). A trigger keeps `closed_at` and
-- `erasure_due_at` right whoever closes or reopens a thread (staff, the lifecycle pass, the
-- auto-close pass): closing sets the due date, reopening clears both, so retention starts again
-- from the next closure.
ALTER TABLE categories ADD COLUMN retention interval;
CREATE TABLE lifecycle_rules (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    retention   interval NOT NULL DEFAULT interval '12 months'
);
INSERT INTO lifecycle_rules DEFAULT VALUES;

ALTER TABLE threads
    ADD COLUMN closed_at timestamptz,
    ADD COLUMN erasure_due_at timestamptz,
    -- A warning (thread page, inbox, digest) was counted for the coming erasure or inactivity
    -- close; cleared when the date moves.
    ADD COLUMN erasure_warned_at timestamptz,
    -- The manager's one extension: its length, when, by whom, and its reason sealed under the
    -- thread key (erased with the thread; the audit entry keeps only the fact and the length).
    ADD COLUMN retention_extension interval,
    ADD COLUMN retention_extended_at timestamptz,
    ADD COLUMN retention_extended_by integer REFERENCES staff (id) ON DELETE SET NULL,
    ADD COLUMN retention_extension_reason bytea,
    ADD COLUMN legal_hold_at timestamptz,
    ADD COLUMN legal_hold_by integer REFERENCES staff (id) ON DELETE SET NULL;
-- Threads already closed: their period runs from their last activity (the best closure time
-- known), so nothing closed before this migration is erased without warning on the first pass.
UPDATE threads SET closed_at = last_activity_at WHERE status = 'closed';
UPDATE threads t SET erasure_due_at = t.closed_at
    + coalesce((SELECT c.retention FROM categories c WHERE c.slug = t.category_slug),
               interval '12 months')
WHERE t.status = 'closed';
-- Only closed threads have a due date: a new report adds no entry to this index.
CREATE INDEX threads_erasure_due ON threads (erasure_due_at) WHERE erasure_due_at IS NOT NULL;

CREATE FUNCTION thread_retention() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'closed' THEN
        IF NEW.closed_at IS NULL OR NEW.closed_at IS NOT DISTINCT FROM OLD.closed_at THEN
            NEW.closed_at := now();
        END IF;
        NEW.erasure_due_at := NEW.closed_at
            + coalesce((SELECT c.retention FROM categories c WHERE c.slug = NEW.category_slug),
                       (SELECT r.retention FROM lifecycle_rules r), interval '12 months')
            + coalesce(NEW.retention_extension, interval '0');
    ELSE
        NEW.closed_at := NULL;
        NEW.erasure_due_at := NULL;
    END IF;
    NEW.erasure_warned_at := NULL;
    RETURN NEW;
END $$;
CREATE TRIGGER threads_retention BEFORE UPDATE OF status ON threads
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                       AND (OLD.status = 'closed' OR NEW.status = 'closed'))
    EXECUTE FUNCTION thread_retention();

-- Erasure keeps "who looked at what": audit rows of an erased thread lose the thread and keep a
-- random erasure id (`E-` and 8 Crockford characters) that names no case.
ALTER TABLE audit_log ADD COLUMN erasure_id text;
CREATE INDEX audit_log_erasure ON audit_log (erasure_id) WHERE erasure_id IS NOT NULL;
-- One row per erasure: when, and the team, so managers see their teams' erasure audit. No
-- reference, no category, no text.
CREATE TABLE erasures (
    id          text PRIMARY KEY,
    team_id     integer,
    erased_at   timestamptz NOT NULL
);

-- Deleting a thread cascades to these by thread_id: without an index each erased thread would
-- cost a scan of the whole table (the outbox keeps every mail ever sent). Partial, so the
-- team digests and staff sessions add no entry.
CREATE INDEX outbox_thread ON outbox (thread_id) WHERE thread_id IS NOT NULL;
CREATE INDEX sessions_thread ON sessions (thread_id) WHERE thread_id IS NOT NULL;
CREATE INDEX reminder_tokens_thread ON reminder_tokens (thread_id);
