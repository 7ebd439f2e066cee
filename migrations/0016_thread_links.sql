-- Safe re-link of a lost code (issue 14 item 7, docs/security.md "A report about an earlier one").
--
-- A reporter who lost their code makes a new report and may say it is about one they made
-- before: `made_before`, and in their own words the earlier reference (as typed, never looked
-- up on their side) and anything that would help the team recognise it, both sealed with the
-- keyring like the other report fields (AAD `threads.<column>:<thread id>`). Nullable, or with a
-- constant default: adding them rewrites no row.
ALTER TABLE threads
    ADD COLUMN made_before boolean NOT NULL DEFAULT false,
    ADD COLUMN earlier_reference bytea,
    ADD COLUMN earlier_details bytea;

-- A link is a staff decision, visible to staff only: the reporter's session never changes. One
-- row per pair, the smaller id first, so a pair is linked once whichever page it was linked from.
CREATE TABLE thread_links (
    id          uuid PRIMARY KEY,
    thread_a    uuid NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    thread_b    uuid NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    linked_by   integer REFERENCES staff (id) ON DELETE SET NULL,
    linked_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (thread_a < thread_b),
    UNIQUE (thread_a, thread_b)
);
CREATE INDEX thread_links_b ON thread_links (thread_b);
