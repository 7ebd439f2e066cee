"""Support pages: the public pages (``/support``, no login) and their editor for admins
(``/staff/support``)."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web
from markupsafe import Markup

from confide import markup
from confide.errors import NotFound
from confide.models import SupportPageEdit, parse
from confide.services import support
from confide.services.support import HELP_SLUG, PageChanged
from confide.services.threads import Staff
from webapp.auth import Auth, staff_for
from webapp.handlers.caseworker import field_errors, render, staff_page
from webapp.keys import CTX, FORM, ORG, SUPPORT_PAGES

ADMIN = ("admin",)

# --- Reporters -----------------------------------------------------------------------------


async def index(request: web.Request) -> web.Response:
    pages = request.app[SUPPORT_PAGES].links
    return aiohttp_jinja2.render_template("reporter/support.html", request, {"pages": pages})


async def page(request: web.Request) -> web.Response:
    shown = await request.app[SUPPORT_PAGES].page(request.app[CTX], request.match_info["slug"])
    services = request.app[ORG].support_services if shown.slug == HELP_SLUG else ()
    context = {"page": shown, "services": services}
    return aiohttp_jinja2.render_template("reporter/support_page.html", request, context)


# --- Admins --------------------------------------------------------------------------------


def _number(text: str) -> int | None:
    """A version number as a URL or a form gives it, or None."""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None


@staff_page(roles=ADMIN)
async def staff_list(request: web.Request, member: Staff, auth: Auth) -> web.Response:
    pages = await support.links(request.app[CTX])
    return render(request, "staff/support.html", member, auth, {"pages": pages})


async def _editor(
    request: web.Request, member: Staff, slug: str, *, title: str, body: str, version: int
) -> dict[str, Any]:
    """The editor's values: what the page holds, or what was typed, and the page's history."""
    history = await support.history(request.app[CTX], member, slug) if version else []
    return {
        "slug": slug,
        "title": title,
        "body": body,
        "version": version,
        "is_new": version == 0,
        "history": history,
        "saved": _number(request.query.get("saved", "")),
    }


@staff_page(roles=ADMIN)
async def staff_new(request: web.Request, member: Staff, auth: Auth) -> web.Response:
    context = await _editor(request, member, "", title="", body="", version=0)
    return render(request, "staff/support_edit.html", member, auth, context)


@staff_page(roles=ADMIN)
async def staff_edit(request: web.Request, member: Staff, auth: Auth) -> web.Response:
    found = await support.page_version(request.app[CTX], member, request.match_info["slug"])
    context = await _editor(
        request, member, found.slug, title=found.title, body=found.body, version=found.version
    )
    return render(request, "staff/support_edit.html", member, auth, context)


@staff_page(roles=ADMIN)
async def staff_version(request: web.Request, member: Staff, auth: Auth) -> web.Response:
    number = _number(request.match_info["version"])
    if number is None:
        raise NotFound()
    slug = request.match_info["slug"]
    found = await support.page_version(request.app[CTX], member, slug, number)
    html = Markup(markup.sanitise(found.body_html))  # noqa: S704 - kept to nh3's allow-list here
    return render(
        request, "staff/support_version.html", member, auth, {"page": found, "html": html}
    )


@staff_page(post=True, roles=ADMIN)
async def staff_submit(request: web.Request, member: Staff, auth: Auth) -> web.StreamResponse:
    edit = parse(SupportPageEdit, request[FORM])
    saved = await support.save(request.app[CTX], member, edit)
    await request.app[SUPPORT_PAGES].refresh(request.app[CTX])  # this process shows it at once
    raise web.HTTPSeeOther(f"/staff/support/{saved.slug}?saved={saved.version}")


async def staff_again(
    request: web.Request, form: dict[str, str], exc: Exception, status: int
) -> web.Response | None:
    """The editor again with what was typed and its errors (webapp.form_routes.FormPage); after
    PageChanged it starts from the latest version, so that saving again is a choice."""
    errors = field_errors(exc)
    found = await staff_for(request)
    if errors is None or found is None or not found[0].is_admin:
        return None  # the other domain errors: the error middleware's table
    version = exc.latest if isinstance(exc, PageChanged) else _number(form.get("version", ""))
    member, auth = found
    slug = form.get("slug", "").strip()[:63]
    title, body = form.get("title", "")[:1000], form.get("body", "")[:100_000]
    context = await _editor(request, member, slug, title=title, body=body, version=version or 0)
    page = dict(context, errors=errors)
    return render(request, "staff/support_edit.html", member, auth, page, status=status)
