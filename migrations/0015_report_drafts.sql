-- Reporters' drafts (issue 14, docs/security.md "Drafts"): the answers of a report not sent yet,
-- and after it is sent, for a short while, the confirmation's code.
--
-- `id` is the SHA-256 of a random draft id that lives, with the key, only in a cookie of the
-- reporter's browser. `ciphertext` is AES-256-GCM under that browser-held key, which the server
-- never stores or logs: nothing on the server can open it. Nothing else that identifies anyone
-- is kept (no IP, no user agent, no thread). Expired rows are deleted on load and by the
-- periodic purge (confide/services/housekeeping.py).
--
-- `code_ciphertext` is the one exception of CONTRACTS §2: after submission, the confirmation's
-- code, under the same browser-held key, so that a reload shows the same code. It is wiped at
-- `code_expires_at` (10 minutes after submission) or sooner ("I have saved my code", a login).
CREATE TABLE report_drafts (
    id bytea PRIMARY KEY CHECK (octet_length(id) = 32),
    ciphertext bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    code_ciphertext bytea,
    code_expires_at timestamptz,
    CHECK ((code_ciphertext IS NULL) = (code_expires_at IS NULL))
);
CREATE INDEX report_drafts_expires_at ON report_drafts (expires_at);
CREATE INDEX report_drafts_code_expires_at ON report_drafts (code_expires_at)
    WHERE code_expires_at IS NOT NULL;
