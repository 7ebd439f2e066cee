-- Staff sign-in is no longer limited per account (issue 12, finding 7): one wrong password every
-- 15 minutes kept a chosen account locked. The limits now live in each web process's memory,
-- keyed per (client, account) and per client (docs/security.md "Staff sign-in limits").
ALTER TABLE staff DROP COLUMN IF EXISTS failed_logins;
ALTER TABLE staff DROP COLUMN IF EXISTS last_failed_at;
