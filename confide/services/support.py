"""Support pages: seeded on first start, edited by admins in Markdown, each edit a new version.

A version's HTML is made once, when it is saved (``confide.markup``), and kept beside its
Markdown, so showing a page never renders Markdown. Every save is audited with its editor.
"""

from __future__ import annotations

import asyncio
import tomllib
from dataclasses import dataclass
from pathlib import Path

from confide import markup
from confide.context import Context
from confide.errors import FieldError, NotFound, ValidationFailed
from confide.models import SupportPageEdit
from confide.services.threads import Forbidden, Staff
from confide.sql import audit as sql_audit
from confide.sql import support as sql_support
from confide.sql.support import PageLink as PageLink  # the web shows them
from confide.sql.support import PageVersion, VersionSummary

DEFAULT_PAGES_FILE = Path(__file__).resolve().parent.parent / "data" / "support-pages.toml"
HELP_SLUG = "help"
"""The "I need help now" page, linked from every reporter page beside "Exit this page"; it also
lists the organisation's own services (``Organisation.support_services``)."""
ADMINS_ONLY = "Only admins can edit support pages."


@dataclass(frozen=True)
class DefaultPage:
    slug: str
    title: str
    body: str


class PageChanged(ValidationFailed):
    """Someone saved the page after the admin opened it: their text is not saved (it is drawn
    again), and ``latest`` is the version to start from if they save again."""

    def __init__(self, latest: int) -> None:
        super().__init__(
            [
                FieldError(
                    "body",
                    f"Someone else saved this page (version {latest}) since you opened it. "
                    "Your text was not saved: compare it with the latest version, then save "
                    "again.",
                )
            ]
        )
        self.latest = latest


def default_pages(path: Path = DEFAULT_PAGES_FILE) -> list[DefaultPage]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [DefaultPage(p["slug"], p["title"], p["body"].strip()) for p in data["pages"]]


async def seed_defaults(ctx: Context) -> list[str]:
    """Create each default page whose slug has never existed (version 1, by no staff member);
    the slugs created. Idempotent and safe to run from several processes at once: a page that
    exists, edited or not, is left as it is."""
    created = []
    for page in default_pages():
        html = markup.render(page.body)
        async with ctx.pool.acquire() as conn, conn.transaction():
            page_id = await sql_support.create_page(conn, page.slug)
            if page_id is None:
                continue
            await sql_support.add_version(
                conn, page_id, 1, title=page.title, body=page.body, body_html=html, edited_by=None
            )
        created.append(page.slug)
    return created


async def links(ctx: Context) -> list[PageLink]:
    """Every page's slug and latest title, in the order the pages were made."""
    async with ctx.pool.acquire() as conn:
        return await sql_support.latest_links(conn)


async def rendered(ctx: Context, slug: str, version: int) -> str | None:
    """The HTML made when that version was saved, or None."""
    async with ctx.pool.acquire() as conn:
        return await sql_support.rendered(conn, slug, version)


def _admin(staff: Staff) -> None:
    if not staff.is_admin:
        raise Forbidden(ADMINS_ONLY)


async def page_version(
    ctx: Context, staff: Staff, slug: str, number: int | None = None
) -> PageVersion:
    """Admins: version ``number`` of a page (its latest with None), with its Markdown; else
    NotFound."""
    _admin(staff)
    async with ctx.pool.acquire() as conn:
        found = await sql_support.version(conn, slug, number)
    if found is None:
        raise NotFound()
    return found


async def history(ctx: Context, staff: Staff, slug: str) -> list[VersionSummary]:
    """Admins: every version of a page, newest first (empty for a page that does not exist)."""
    _admin(staff)
    async with ctx.pool.acquire() as conn:
        return await sql_support.history(conn, slug)


async def save(ctx: Context, staff: Staff, edit: SupportPageEdit) -> PageLink:
    """Admins: save ``edit`` as the page's next version (a new page when ``edit.version`` is 0),
    audited in the same transaction. Raises PageChanged when the page has moved on since the
    version the admin started from, and ValidationFailed (slug) for a new page whose address is
    taken."""
    _admin(staff)
    # Off the event loop: 50,000 characters of Markdown take a few tens of milliseconds.
    html = await asyncio.to_thread(markup.render, edit.body)
    async with ctx.pool.acquire() as conn, conn.transaction():
        if edit.version == 0:
            page_id = await sql_support.create_page(conn, edit.slug)
            if page_id is None:
                raise ValidationFailed(
                    [FieldError("slug", "A page with this address exists already")]
                )
            latest = 0
        else:
            found = await sql_support.lock_page(conn, edit.slug)
            if found is None:
                raise NotFound()
            page_id, latest = found
            if latest != edit.version:
                raise PageChanged(latest)
        number = latest + 1
        await sql_support.add_version(
            conn,
            page_id,
            number,
            title=edit.title,
            body=edit.body,
            body_html=html,
            edited_by=staff.id,
        )
        await sql_audit.record(
            conn, staff.id, None, "admin_support_page", {"page": edit.slug, "version": number}
        )
    return PageLink(edit.slug, edit.title, number)
