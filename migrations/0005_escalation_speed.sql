-- The escalation pass updates threads.escalation in bulk. Keep that column out of every index
-- (key and predicate) and leave room on each page, so those updates can be HOT updates that
-- touch no index at all.
DROP INDEX IF EXISTS threads_escalated;
DROP INDEX IF EXISTS threads_nearing;
CREATE INDEX threads_nearing ON threads (nearing_at) WHERE reply_due_at IS NOT NULL;
ALTER TABLE threads SET (fillfactor = 85);
