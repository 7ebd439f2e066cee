"""SQL for support pages: a row a page (its slug), a row a version (title, Markdown, HTML)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from asyncpg import Connection

# The latest version of each page: the highest version number of its page_id.
_LATEST = """SELECT DISTINCT ON (p.id) p.id, p.slug, v.version, v.title
             FROM support_pages p JOIN support_page_versions v ON v.page_id = p.id
             ORDER BY p.id, v.version DESC"""


@dataclass(frozen=True, slots=True)
class PageLink:
    """A page as lists show it: its slug and the title and number of its latest version."""

    slug: str
    title: str
    version: int


@dataclass(frozen=True, slots=True)
class PageVersion:
    """One version of a page, as saved: the Markdown as typed, and the HTML made from it."""

    slug: str
    version: int
    title: str
    body: str
    body_html: str
    edited_at: datetime
    editor_id: int | None  # None: seeded by Confide on its first start
    editor_email: str | None  # None too for an account that no longer exists


@dataclass(frozen=True, slots=True)
class VersionSummary:
    """A line of a page's history."""

    version: int
    title: str
    edited_at: datetime
    editor_id: int | None
    editor_email: str | None


async def latest_links(conn: Connection) -> list[PageLink]:
    """Every page's latest title, in the order the pages were made."""
    rows = await conn.fetch(f"SELECT slug, title, version FROM ({_LATEST}) latest ORDER BY id")
    return [PageLink(**r) for r in rows]


async def rendered(conn: Connection, slug: str, version: int) -> str | None:
    """The HTML of one version of a page, or None."""
    html: str | None = await conn.fetchval(
        """SELECT v.body_html FROM support_page_versions v
           JOIN support_pages p ON p.id = v.page_id WHERE p.slug = $1 AND v.version = $2""",
        slug,
        version,
    )
    return html


async def version(conn: Connection, slug: str, number: int | None = None) -> PageVersion | None:
    """Version ``number`` of the page, or its latest with None; None if there is none."""
    row = await conn.fetchrow(
        """SELECT p.slug, v.version, v.title, v.body, v.body_html, v.edited_at,
                  v.edited_by AS editor_id, s.email AS editor_email
           FROM support_pages p JOIN support_page_versions v ON v.page_id = p.id
           LEFT JOIN staff s ON s.id = v.edited_by
           WHERE p.slug = $1 AND ($2::integer IS NULL OR v.version = $2)
           ORDER BY v.version DESC LIMIT 1""",
        slug,
        number,
    )
    return PageVersion(**row) if row is not None else None


async def history(conn: Connection, slug: str) -> list[VersionSummary]:
    """Every version of the page, newest first."""
    rows = await conn.fetch(
        """SELECT v.version, v.title, v.edited_at, v.edited_by AS editor_id,
                  s.email AS editor_email
           FROM support_pages p JOIN support_page_versions v ON v.page_id = p.id
           LEFT JOIN staff s ON s.id = v.edited_by
           WHERE p.slug = $1 ORDER BY v.version DESC""",
        slug,
    )
    return [VersionSummary(**r) for r in rows]


async def create_page(conn: Connection, slug: str) -> int | None:
    """A new page's id, or None when a page with this slug exists already."""
    page_id: int | None = await conn.fetchval(
        "INSERT INTO support_pages (slug) VALUES ($1) ON CONFLICT (slug) DO NOTHING RETURNING id",
        slug,
    )
    return page_id


async def lock_page(conn: Connection, slug: str) -> tuple[int, int] | None:
    """(page id, latest version number) with the page's row locked until the transaction ends,
    so that two saves of one page take their turns; None if there is no such page."""
    page_id: int | None = await conn.fetchval(
        "SELECT id FROM support_pages WHERE slug = $1 FOR UPDATE", slug
    )
    if page_id is None:
        return None
    latest: int = await conn.fetchval(
        "SELECT coalesce(max(version), 0) FROM support_page_versions WHERE page_id = $1", page_id
    )
    return page_id, latest


async def add_version(
    conn: Connection,
    page_id: int,
    number: int,
    *,
    title: str,
    body: str,
    body_html: str,
    edited_by: int | None,
) -> None:
    await conn.execute(
        """INSERT INTO support_page_versions
               (page_id, version, title, body, body_html, edited_by)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        page_id,
        number,
        title,
        body,
        body_html,
        edited_by,
    )
