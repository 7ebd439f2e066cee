-- Attachments (issue 17, docs/attachments.md "Storage"). Three tables:
--
-- `uploads`: a file sent to POST /api/v1/uploads and not attached yet. The upload id the caller
-- holds is random (128 bits) and never stored: `lookup` is its HMAC. The file's own random key,
-- its SHA-256 as uploaded and (sealed, optional) its original name are in `sealed`, under a key
-- derived from the upload id itself, so nothing on the server opens a pending upload without
-- the id. `owner` binds it to its caller: 'anonymous' (the id alone, usable once), 'reporter'
-- (that thread's reporter) or 'staff' (that member). `complete` is false while its chunks are
-- still streaming in (such a row cannot be attached). It expires at `expires_at` (while it
-- streams: the largest file allowed at the slowest body rate, plus 10 minutes; then 60 minutes);
-- one held in a reporter's draft (`draft_id`, report_drafts.id) lives as long as the draft does.
--
-- `attachments`: a file attached to a report (`message_id` NULL) or a message, in the same
-- transaction. Its key (and SHA-256) is sealed under the thread key, so erasing the thread
-- erases the file; the rows go with the thread (ON DELETE CASCADE) and erasure deletes the
-- chunks. `position` is N of the neutral name `attachment-N.ext`, per thread. The row is also
-- the stripping job's outbox row: `state` 'preparing' with a lease, attempts and next attempt.
-- A manager's release keeps its reason sealed under the thread key (`release_reason`).
--
-- `attachment_chunks`: the PostgreSQL store (confide/files/store.py). Each chunk is AES-256-GCM
-- under the file key, bound to its file, copy, index and whether it is the last one. No foreign
-- key: a chunk belongs to an upload, then to the attachment of the same id, and another store
-- keeps it elsewhere. Ciphertext does not compress: EXTERNAL skips TOAST's attempt.
CREATE TABLE uploads (
    id          uuid PRIMARY KEY,
    lookup      bytea NOT NULL UNIQUE CHECK (octet_length(lookup) = 32),
    owner       text NOT NULL CHECK (owner IN ('anonymous', 'reporter', 'staff')),
    thread_id   uuid REFERENCES threads (id) ON DELETE CASCADE,
    staff_id    integer REFERENCES staff (id) ON DELETE CASCADE,
    complete    boolean NOT NULL DEFAULT false,
    file_type   text,
    size        bigint,
    sealed      bytea,
    draft_id    bytea CHECK (draft_id IS NULL OR octet_length(draft_id) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    CHECK ((owner = 'reporter') = (thread_id IS NOT NULL)),
    CHECK ((owner = 'staff') = (staff_id IS NOT NULL)),
    CHECK (NOT complete OR (file_type IS NOT NULL AND size IS NOT NULL AND sealed IS NOT NULL))
);
CREATE INDEX uploads_expires_at ON uploads (expires_at);
CREATE INDEX uploads_draft ON uploads (draft_id) WHERE draft_id IS NOT NULL;

CREATE TABLE attachments (
    id              uuid PRIMARY KEY,
    thread_id       uuid NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    message_id      uuid REFERENCES messages (id) ON DELETE CASCADE,
    position        integer NOT NULL CHECK (position >= 1),
    uploaded_by     text NOT NULL CHECK (uploaded_by IN ('reporter', 'staff')),
    staff_id        integer REFERENCES staff (id) ON DELETE SET NULL,
    file_type       text NOT NULL,
    size            bigint NOT NULL,
    file_key        bytea NOT NULL,
    name            bytea,
    state           text NOT NULL DEFAULT 'preparing'
                    CHECK (state IN ('preparing', 'ready', 'quarantined', 'released')),
    stripped_size   bigint,
    preview_size    bigint,
    strip_failure   text,
    attempts        integer NOT NULL DEFAULT 0,
    leased_until    timestamptz,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    released_by     integer REFERENCES staff (id) ON DELETE SET NULL,
    released_at     timestamptz,
    release_reason  bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    prepared_at     timestamptz,
    UNIQUE (thread_id, position)
);
CREATE INDEX attachments_message ON attachments (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX attachments_preparing ON attachments (next_attempt_at) WHERE state = 'preparing';

CREATE TABLE attachment_chunks (
    file_id uuid NOT NULL,
    copy    text NOT NULL CHECK (copy IN ('original', 'stripped', 'preview')),
    idx     integer NOT NULL CHECK (idx >= 0),
    data    bytea NOT NULL,
    PRIMARY KEY (file_id, copy, idx)
);
ALTER TABLE attachment_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
