-- Idempotency keys bound to their request, and more than one code per report (issue 12).
--
-- A retried submission used to replace the report's code: the first code stopped working and
-- whoever held the idempotency key (or the HTML form token) could mint a working code for 24 h.
-- Now a key is stored with an HMAC of its canonical request, so a repeat with a different
-- request is refused, and a retry may add a code beside the earlier ones (CONTRACTS §2
-- "Issuing") but never replaces one.

ALTER TABLE submission_keys
    -- HMAC of the canonical request (method, path, body). NULL for keys stored before this
    -- migration: they answer repeats as before, for at most the 24 h a key is kept.
    ADD COLUMN request_hmac   bytea,
    -- Set while the first submission is still issuing its code: an API repeat gets 409 and an
    -- HTML repeat waits. NULL once the first answer is complete (always, without a code).
    ADD COLUMN pending_until  timestamptz;
-- No index on created_at: the purge's scan every 10 minutes of a day's keys costs less than an
-- index entry on every submission (the submission benchmark).

-- Each issued code is its own row: a retry adds one, never replaces one.
ALTER TABLE reporter_codes DROP CONSTRAINT reporter_codes_pkey;
ALTER TABLE reporter_codes ADD PRIMARY KEY (issue_id);
CREATE INDEX reporter_codes_thread ON reporter_codes (thread_id);
-- Set at the first login with this code: after any login, a retry gets no additional code.
ALTER TABLE reporter_codes ADD COLUMN logged_in_at timestamptz;

ALTER TABLE messages ADD COLUMN request_hmac bytea;
-- Keys are kept 24 h; the purge finds the old ones through this index.
CREATE INDEX messages_keyed_sent ON messages (sent_at) WHERE key_hmac IS NOT NULL;
