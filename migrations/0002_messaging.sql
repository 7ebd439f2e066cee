-- Issue 4: staff, sessions, messages, notes, assignment, restriction and the audit log.

CREATE TABLE staff (
    id                  serial PRIMARY KEY,
    email               text NOT NULL,
    name                text NOT NULL,
    role                text NOT NULL DEFAULT 'caseworker'
                        CHECK (role IN ('caseworker', 'manager', 'admin', 'ops')),
    password_hash       text,
    active              boolean NOT NULL DEFAULT true,
    failed_logins       integer NOT NULL DEFAULT 0,
    last_failed_at      timestamptz,
    reset_token_hmac    bytea,
    reset_expires_at    timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX staff_email ON staff (lower(email));

CREATE TABLE staff_teams (
    staff_id    integer NOT NULL REFERENCES staff (id) ON DELETE CASCADE,
    team_id     integer NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    PRIMARY KEY (staff_id, team_id)
);
CREATE INDEX staff_teams_team ON staff_teams (team_id);

-- Server-side sessions, for cookies and bearer tokens alike. Only an HMAC of the token is kept.
-- They live in PostgreSQL, not Redis, so a Redis outage never stops a reporter sending a message.
CREATE TABLE sessions (
    token_hmac          bytea PRIMARY KEY,
    kind                text NOT NULL CHECK (kind IN ('reporter', 'staff')),
    thread_id           uuid REFERENCES threads (id) ON DELETE CASCADE,
    staff_id            integer REFERENCES staff (id) ON DELETE CASCADE,
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_seen_at        timestamptz NOT NULL DEFAULT now(),
    idle_seconds        integer NOT NULL,
    expires_at          timestamptz NOT NULL,
    CHECK ((kind = 'reporter') = (thread_id IS NOT NULL)),
    CHECK ((kind = 'staff') = (staff_id IS NOT NULL))
);
CREATE INDEX sessions_expires ON sessions (expires_at);

ALTER TABLE threads
    ADD COLUMN assignee_id       integer REFERENCES staff (id) ON DELETE SET NULL,
    ADD COLUMN restricted        boolean NOT NULL DEFAULT false,
    ADD COLUMN last_activity_at  timestamptz NOT NULL DEFAULT now();
UPDATE threads SET last_activity_at = received_at;
CREATE INDEX threads_team_activity ON threads (team_id, last_activity_at DESC);
CREATE INDEX threads_assignee ON threads (assignee_id, last_activity_at DESC)
    WHERE assignee_id IS NOT NULL;

-- Messages and notes are AES-GCM ciphertext, like the report itself.
CREATE TABLE messages (
    id          uuid PRIMARY KEY,
    thread_id   uuid NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    author      text NOT NULL CHECK (author IN ('reporter', 'caseworker')),
    staff_id    integer REFERENCES staff (id) ON DELETE SET NULL,
    body        bytea NOT NULL,
    sent_at     timestamptz NOT NULL DEFAULT now(),
    key_hmac    bytea UNIQUE  -- idempotency: a retried POST finds its message
);
CREATE INDEX messages_thread ON messages (thread_id, sent_at);

CREATE TABLE notes (
    id          uuid PRIMARY KEY,
    thread_id   uuid NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    staff_id    integer REFERENCES staff (id) ON DELETE SET NULL,
    body        bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notes_thread ON notes (thread_id, created_at);

-- Who did what to which thread, and when. Never report text.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    staff_id    integer REFERENCES staff (id) ON DELETE SET NULL,
    thread_id   uuid REFERENCES threads (id) ON DELETE SET NULL,
    action      text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}',
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_at ON audit_log (at DESC);
CREATE INDEX audit_log_thread ON audit_log (thread_id, at DESC);
