-- Issue 6: what each worker reports with its heartbeat, and dismissed dead letters.
ALTER TABLE heartbeats ADD COLUMN detail jsonb NOT NULL DEFAULT '{}';
ALTER TABLE outbox ADD COLUMN dismissed_at timestamptz;
CREATE INDEX outbox_dead ON outbox (failed_at DESC) WHERE failed_at IS NOT NULL AND dismissed_at IS NULL;
