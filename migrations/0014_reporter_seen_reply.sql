-- Which case-worker reply the reporter has seen, for the messaging page's "New reply" notice
-- (issue 14, docs/reporters.md).
--
-- It holds a copy of `last_caseworker_message_at` as it was when the reporter's messaging page
-- last showed the messages: the time a case worker wrote, never the time the reporter looked.
-- The page shows the notice while the thread's last case-worker message is newer than it.
-- Nothing about the reporter's visits (when, how often, from where) is kept, and staff pages
-- and the API never show it. Nullable and without a default: adding it rewrites no row.
ALTER TABLE threads ADD COLUMN reporter_seen_reply_at timestamptz;
