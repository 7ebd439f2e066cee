-- Issue 16, items 5 and 6: statistics that survive erasure, read from monthly summaries.
--
-- statistics_facts: one row per report, with no text and no reference. While the thread lives,
-- thread_id links the row to it (so a refresh can update it) and activity_at says which state
-- of the thread it describes; erasure (statistics.capture_facts) sets both to NULL in the same
-- transaction (a thread deleted any other way leaves its row with thread_id NULL, and the next
-- refresh clears its activity_at), so what is left names no case: category, team, month received, anonymous /
-- contact / follow-up, time to first reply in working hours, outcome. The random id orders
-- nothing. No foreign key on team or category: a fact outlives what it counted.
CREATE TABLE statistics_facts (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    thread_id           uuid UNIQUE REFERENCES threads (id) ON DELETE SET NULL,
    activity_at         timestamptz,
    month               date NOT NULL,          -- the first day of the month received (local)
    team_id             integer NOT NULL,
    category_slug       text NOT NULL,
    anonymous           boolean NOT NULL,
    follow_up           boolean NOT NULL,
    is_open             boolean NOT NULL,       -- outcome: open (or contacted) / closed
    overdue             boolean NOT NULL DEFAULT false,
    first_reply_hours   double precision,       -- working hours to the first reply, if any
    within_target       boolean NOT NULL DEFAULT false
);
CREATE INDEX statistics_facts_group ON statistics_facts (month, team_id, category_slug);
CREATE INDEX statistics_facts_overdue ON statistics_facts (thread_id) WHERE overdue;
-- Rows of threads deleted without capture_facts: none, as a rule (clear_orphans empties it).
CREATE INDEX statistics_facts_orphans ON statistics_facts (id)
    WHERE thread_id IS NULL AND activity_at IS NOT NULL;

-- One row per (month, team, category) with any report: what the page and the API read. Written
-- only by the refresh pass (a beat task), never counted at request time.
CREATE TABLE statistics_monthly (
    month                   date NOT NULL,
    team_id                 integer NOT NULL,
    category_slug           text NOT NULL,
    received                integer NOT NULL,
    anonymous               integer NOT NULL,
    with_contact            integer NOT NULL,
    follow_up               integer NOT NULL,
    open                    integer NOT NULL,
    closed                  integer NOT NULL,
    overdue                 integer NOT NULL,
    replied                 integer NOT NULL,   -- threads with a first reply (not published)
    replied_within_target   integer NOT NULL,
    median_hours            double precision,
    p90_hours               double precision,
    -- counts of first-reply times per bucket (confide.services.statistics.BUCKETS), so a
    -- range's median comes from summaries too
    reply_histogram         integer[] NOT NULL,
    PRIMARY KEY (month, team_id, category_slug)
);
CREATE INDEX statistics_monthly_team ON statistics_monthly (team_id, month);

-- Groups whose summary must be recounted from the facts (erasure marks its own).
CREATE TABLE statistics_dirty (
    month           date NOT NULL,
    team_id         integer NOT NULL,
    category_slug   text NOT NULL,
    PRIMARY KEY (month, team_id, category_slug)
);

-- How far the refresh pass has read threads.last_activity_at.
CREATE TABLE statistics_watermark (
    name            text PRIMARY KEY,
    changed_after   timestamptz NOT NULL
);
