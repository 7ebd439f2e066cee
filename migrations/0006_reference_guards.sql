-- Every submission inserted a thread and an outbox row whose foreign keys to `categories` and
-- `teams` each took a FOR KEY SHARE lock on the same few parent rows. With dozens of submissions
-- in flight those locks become multixacts (a new one, copying every member, for each locker),
-- which cost PostgreSQL about a fifth of each submission's CPU (bench/submit.py, docs/benchmarks.md).
--
-- Teams and categories are reference rows: they are retired (active = false), never renamed or
-- deleted by Confide. These triggers make that a rule and keep what the foreign keys promised:
-- a team or category with threads cannot be deleted, and their keys cannot change. The delete
-- guards take a SHARE lock on the referencing tables, so they wait for in-flight inserts and
-- block new ones until they commit: no thread can slip in behind the check.
-- categories.team_id, staff_teams and the summary tables keep their foreign keys (not hot).
ALTER TABLE threads DROP CONSTRAINT threads_category_slug_fkey;
ALTER TABLE threads DROP CONSTRAINT threads_team_id_fkey;
ALTER TABLE outbox DROP CONSTRAINT outbox_team_id_fkey;

CREATE FUNCTION guard_team_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE threads, outbox IN SHARE MODE;
    IF EXISTS (SELECT 1 FROM threads WHERE team_id = OLD.id) THEN
        RAISE EXCEPTION 'team "%" has threads: retire it (active = false) instead', OLD.slug
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    -- What outbox_team_id_fkey's ON DELETE CASCADE did (digests and alerts of the team).
    DELETE FROM outbox WHERE team_id = OLD.id;
    RETURN OLD;
END $$;

CREATE FUNCTION guard_category_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE threads IN SHARE MODE;
    IF EXISTS (SELECT 1 FROM threads WHERE category_slug = OLD.slug) THEN
        RAISE EXCEPTION 'category "%" has threads: retire it (active = false) instead', OLD.slug
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN OLD;
END $$;

CREATE FUNCTION refuse_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%.% cannot change: threads refer to it', TG_TABLE_NAME, TG_ARGV[0]
        USING ERRCODE = 'foreign_key_violation';
END $$;

CREATE TRIGGER teams_guard_delete BEFORE DELETE ON teams
    FOR EACH ROW EXECUTE FUNCTION guard_team_delete();
CREATE TRIGGER categories_guard_delete BEFORE DELETE ON categories
    FOR EACH ROW EXECUTE FUNCTION guard_category_delete();
CREATE TRIGGER teams_fixed_id BEFORE UPDATE OF id ON teams
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION refuse_key_change('id');
CREATE TRIGGER categories_fixed_slug BEFORE UPDATE OF slug ON categories
    FOR EACH ROW WHEN (OLD.slug IS DISTINCT FROM NEW.slug)
    EXECUTE FUNCTION refuse_key_change('slug');
