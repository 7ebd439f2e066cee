"""Request policy in middleware (webapp.policy): a forged cross-site POST is refused on every
unsafe HTML route, read from the app's own router, so a route added later is covered too."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web

from tests import html
from tests.conftest import Stack, StaffAccount
from tests.journeys import form_page, reporter_submits, staff_logs_in

ROOT = Path(__file__).resolve().parent.parent
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# What a cross-site page can make a browser send: a foreign Origin; no Origin but Fetch metadata
# saying cross-site; and Origin: null from a sandboxed frame or data: page.
FORGERIES = (
    {"Origin": "https://evil.example"},
    {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
)


def unsafe_html_routes() -> list[tuple[str, str, str]]:
    from webapp import routes

    app = web.Application()
    routes.setup(app, ROOT / "webapp" / "static")
    found = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        if route.method in UNSAFE and not path.startswith("/api/"):
            found.append((route.name or "", route.method, path))
    return found


async def test_a_forged_cross_site_post_is_refused_on_every_unsafe_html_route(
    stack: Stack, caseworker: StaffAccount, db: asyncpg.Connection
) -> None:
    walked = unsafe_html_routes()
    names = {name for name, _, _ in walked}
    assert {"report_submit", "login_submit", "messages_submit", "staff_login_submit"} <= names
    assert {"staff_thread_reply", "staff_thread_team", "staff_admin_submit", "ops_action"} <= names
    async with aiohttp.ClientSession(
        base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as browser:
        sent = await reporter_submits(browser, "a report the forger aims at")
        assert sent.reference is not None
        await staff_logs_in(browser, caseworker.email, caseworker.password)
        page = await form_page(browser, f"/staff/threads/{sent.reference}")
        # The forger even has a valid CSRF token: the origin alone refuses the request.
        token = next(f for f in html.forms(page) if f.action == "/staff/logout").fields
        notes_before = await db.fetchval("SELECT count(*) FROM notes")
        for name, method, pattern in walked:
            path = re.sub(r"\{reference\}", sent.reference, pattern)
            path = re.sub(r"\{action(:[^}]*)?\}", "retry", path)
            for headers in FORGERIES:
                data = {**token, "note": "forged", "body": "forged", "status": "closed"}
                async with browser.request(method, path, data=data, headers=headers) as resp:
                    text = await resp.text()
                    assert resp.status == 403, (name, path, headers, resp.status)
                    assert "This form must be sent from this site." in text, (name, headers)
        assert await db.fetchval("SELECT count(*) FROM notes") == notes_before
        assert await db.fetchval("SELECT status FROM threads") == "open"
        async with browser.get("/staff") as resp:  # the forged logout did not log anyone out
            assert resp.status == 200 and "Team inbox" in await resp.text()
