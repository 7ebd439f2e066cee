-- Reporters' drafts (issue 14, docs/security.md "Drafts"): the answers of a report not sent yet,
-- and after it is sent, for a short while, the confirmation's code.
--
-- `id` is the SHA-256 of a random draft id that lives, with the key, only in a cookie of the
-- reporter's browser. `ciphertext` is AES-256-GCM under that browser-held key, which the server
-- never stores or logs: nothing on the server can open it. Nothing else that identifies anyone
-- is kept (no IP, no user agent, no thread). Expired rows are deleted on load and by the
-- periodic purge (confide/services/housekeeping.py).
CREATE TABLE report_drafts (
    id bytea PRIMARY KEY CHECK (octet_length(id) = 32),
    ciphertext bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX report_drafts_expires_at ON report_drafts (expires_at);
