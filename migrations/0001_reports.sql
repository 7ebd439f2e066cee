-- Teams and categories come from the organisation file (synced on start) and the admin page.
CREATE TABLE teams (
    id          serial PRIMARY KEY,
    slug        text NOT NULL UNIQUE,
    name        text NOT NULL,
    email       text NOT NULL DEFAULT '',
    active      boolean NOT NULL DEFAULT true
);

CREATE TABLE categories (
    slug        text PRIMARY KEY,
    name        text NOT NULL,
    team_id     integer NOT NULL REFERENCES teams (id),
    position    integer NOT NULL DEFAULT 0,
    active      boolean NOT NULL DEFAULT true
);

-- A report and its conversation. Report text and contact details are AES-GCM ciphertext (bytea):
-- a pg_dump shows none of them. No IP address or user agent is ever stored.
CREATE TABLE threads (
    id                          uuid PRIMARY KEY,
    reference                   text NOT NULL UNIQUE,
    category_slug               text NOT NULL REFERENCES categories (slug),
    team_id                     integer NOT NULL REFERENCES teams (id),
    anonymous                   boolean NOT NULL,
    follow_up                   boolean NOT NULL,
    status                      text NOT NULL DEFAULT 'open'
                                CHECK (status IN ('open', 'closed', 'contacted')),
    received_at                 timestamptz NOT NULL DEFAULT now(),
    description                 bytea NOT NULL,
    occurred                    bytea,
    location                    bytea,
    contact                     bytea,
    last_reporter_message_at    timestamptz,
    last_caseworker_message_at  timestamptz,
    CHECK (NOT (anonymous AND contact IS NOT NULL)),
    CHECK (NOT (NOT anonymous AND follow_up))
);
CREATE INDEX threads_team_received ON threads (team_id, received_at DESC);

-- The reporter's code: an HMAC of the lookup id and an argon2id verifier. Never the code.
-- issue_id changes whenever a fresh code replaces the earlier one; a late hashing task for an
-- older issue cannot overwrite the current verifier.
CREATE TABLE reporter_codes (
    thread_id     uuid PRIMARY KEY REFERENCES threads (id) ON DELETE CASCADE,
    lookup_hmac   bytea NOT NULL UNIQUE,
    issue_id      uuid NOT NULL,
    verifier      text,
    issued_at     timestamptz NOT NULL DEFAULT now()
);

-- Idempotency: an HMAC of the form token or Idempotency-Key, so a retry finds its report.
CREATE TABLE submission_keys (
    key_hmac      bytea PRIMARY KEY,
    -- deferred: the key is claimed first, so a concurrent retry waits for the first to commit
    thread_id     uuid NOT NULL REFERENCES threads (id) ON DELETE CASCADE
                  DEFERRABLE INITIALLY DEFERRED,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Beat writes a heartbeat every 30 s (CONTRACTS §6); workers could write theirs here too.
CREATE TABLE heartbeats (
    name          text PRIMARY KEY,
    last_tick     timestamptz NOT NULL
);
