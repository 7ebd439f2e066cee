-- A data key per thread (issue 16, docs/lifecycle.md "Thread keys"). The thread's report,
-- messages, notes and contact details are sealed under it (format 0x02, AAD naming the row and
-- the thread); the key itself is kept only wrapped by the keyring key of the quarter in which the
-- thread's erasure is due. Erasure deletes the row, and with it the only wrap of the key.
--
-- `data_key_id`: the keyring key that wraps it (what `confide keys` lists and `retire` checks).
-- `data_key_quarter`: the quarter (`2027q3`) the wrap was chosen for; NULL for a thread under
-- legal hold (no due date: the keyring's first key). Threads made before this migration have no
-- data key until `confide keys migrate-threads` gives them one (resumable, a thread at a time);
-- until then their content stays sealed by the keyring and still opens.
ALTER TABLE threads
    ADD COLUMN data_key bytea,
    ADD COLUMN data_key_id text,
    ADD COLUMN data_key_quarter text;
-- Only the threads still to migrate: a new report adds no entry to it.
CREATE INDEX threads_without_data_key ON threads (id) WHERE data_key IS NULL;

-- Keyring keys that `confide keys retire` found unused and retired: ops remove them from
-- CONFIDE_ENCRYPTION_KEYS and destroy them; `confide keys` lists any still configured.
CREATE TABLE retired_keys (
    id          text PRIMARY KEY,
    retired_at  timestamptz NOT NULL DEFAULT now()
);
