"""The support pages as one web process shows them: every page's latest title (for the footer,
the start page and ``/support``) and each page's HTML, kept per saved version.

Showing a page costs no query while the version it shows is cached: the list of latest
versions is reloaded in the background every ``refresh_s`` seconds (and at once after a save in
this process), and a page's HTML is read once per version, then kept. An edit saved in another
web process is shown here within ``refresh_s``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from markupsafe import Markup

from confide import logs, markup
from confide.context import Context
from confide.errors import NotFound
from confide.services import support
from confide.services.support import PageLink

log = logs.get("confide.web.support")


@dataclass(frozen=True, slots=True)
class ShownPage:
    slug: str
    title: str
    version: int
    html: Markup


class SupportPages:
    def __init__(self, refresh_s: float = 10.0) -> None:
        self.refresh_s = refresh_s
        self.links: tuple[PageLink, ...] = ()
        self._latest: dict[str, PageLink] = {}
        self._shown: dict[str, ShownPage] = {}

    async def refresh(self, ctx: Context) -> None:
        found = await support.links(ctx)
        self.links = tuple(found)
        self._latest = {link.slug: link for link in found}

    async def keep_fresh(self, ctx: Context) -> None:
        """Reload the latest versions every ``refresh_s`` until cancelled; a failed reload keeps
        what was there and tries again next time."""
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh(ctx)
            except Exception as exc:  # the database away, or a bug: logged, and tried again
                log.warning("support_pages_refresh_failed", exc_type=type(exc).__name__)

    async def page(self, ctx: Context, slug: str) -> ShownPage:
        """The latest version of a page, or NotFound (the normal 404 page)."""
        link = self._latest.get(slug)
        if link is None:
            raise NotFound()
        shown = self._shown.get(slug)
        if shown is None or shown.version != link.version:
            html = await support.rendered(ctx, slug, link.version)
            if html is None:
                raise NotFound()
            # Sanitised when it was saved; again here (microseconds, once a version) so that
            # what the database holds is never trusted as HTML, and today's allow-list applies.
            shown = ShownPage(slug, link.title, link.version, Markup(markup.sanitise(html)))  # noqa: S704 - sanitised by nh3 on the line itself
            self._shown[slug] = shown
        return shown
