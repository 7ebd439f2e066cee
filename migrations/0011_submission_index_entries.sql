-- Fewer index entries per submission (the submission benchmark, issue 12).
--
-- A submission inserted 10 index entries (threads 5, outbox 4, submission_keys 1) where the bare
-- baseline inserts one; PostgreSQL's share of a submission was 1.8-1.9 times the baseline's.
-- Two of them were never read:
-- * threads_team_received: no query orders or filters threads by (team, received_at); the
--   inbox walks threads_team_activity (pg_stat_user_indexes showed no scan of it in any run).
-- * outbox's unique dedupe_key index held a NULL entry for every row, though only digests and
--   overdue alerts have a key. A partial unique index keeps the same guarantee for them.
DROP INDEX IF EXISTS threads_team_received;
ALTER TABLE outbox DROP CONSTRAINT outbox_dedupe_key_key;
CREATE UNIQUE INDEX outbox_dedupe_key ON outbox (dedupe_key) WHERE dedupe_key IS NOT NULL;
