-- Support and signposting pages (issue 14, item 9), edited by admins in Markdown.
--
-- A page is its slug (the public address /support/<slug>); everything else is a version: a new
-- row for every edit, never updated, with its title, the Markdown as typed and the HTML made
-- from it once when it was saved (confide.markup: markdown-it-py, then nh3's allow-list). The
-- page shows its latest version; admins read the history.
--
-- edited_by is the editor's staff id, or NULL for the pages Confide seeds on its first start
-- (confide/data/support-pages.toml). It has no foreign key: staff accounts are disabled, never
-- deleted, and a history must outlive whatever happens to the account rows (tests truncate
-- staff; a foreign key would make that truncate every page's history with them).
CREATE TABLE support_pages (
    id          serial PRIMARY KEY,
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE support_page_versions (
    page_id     integer NOT NULL REFERENCES support_pages (id),
    version     integer NOT NULL CHECK (version > 0),
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 120),
    body        text NOT NULL CHECK (length(body) <= 50000),
    body_html   text NOT NULL,
    edited_by   integer,
    edited_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (page_id, version)
);
