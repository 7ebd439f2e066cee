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
from tests.journeys import form_page, reporter_logs_in, reporter_submits, staff_logs_in
from webapp.form_routes import Token

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


# What an old browser (no Fetch metadata) or a sandboxed page sends: the origin check lets it
# through for want of evidence, and the form's token must refuse it (docs/security.md).
TOKEN_DECIDES: tuple[dict[str, str], ...] = ({}, {"Origin": "null"})
REFUSED_WITH = {
    Token.STAFF_SESSION: (403, "This form has expired."),
    Token.REPORTER_SESSION: (403, "This form has expired."),
    Token.SIGNED: (400, "expired"),
}


async def test_a_forged_post_that_passes_the_origin_check_is_refused_for_want_of_its_token(
    stack: Stack, caseworker: StaffAccount, db: asyncpg.Connection
) -> None:
    """Each unsafe HTML route declares the token its form carries, and a forgery sent with the
    victim's cookies but without that token changes nothing: no note, status, message or
    session, and no login into the attacker's thread or account (login CSRF)."""
    from webapp.routes import FORM_ROUTES

    walked = unsafe_html_routes()
    assert {name for name, _, _ in walked} == set(FORM_ROUTES)  # each declared, none extra
    async with aiohttp.ClientSession(
        base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as victim:
        sent = await reporter_submits(victim, "a report the forger aims at")
        attackers = await reporter_submits(victim, "the attacker's own report")
        assert sent.code and attackers.code
        await reporter_logs_in(victim, sent.code)
        await staff_logs_in(victim, caseworker.email, caseworker.password)
        await form_page(victim, "/login")  # the victim's browser has its login cookie too
        before = await db.fetchval(
            "SELECT (SELECT count(*) FROM notes), (SELECT count(*) FROM messages),"
            " (SELECT count(*) FROM sessions), (SELECT count(*) FROM threads)"
        )
        forged = {
            "csrf_token": "forged",
            "form_token": "forged.1.x",
            "code": attackers.code,  # login CSRF: the attacker's own code or account
            "email": caseworker.email,
            "password": caseworker.password,
            **{"note": "forged", "body": "forged", "status": "closed", "restricted": "1"},
            **{"outbox_id": "00000000-0000-0000-0000-000000000000", "new": "x", "confirm": "x"},
        }
        for name, method, pattern in walked:
            path = re.sub(r"\{reference\}", sent.reference or "", pattern)
            path = re.sub(r"\{action(:[^}]*)?\}", "retry", path)
            declared = FORM_ROUTES[name]
            for headers in TOKEN_DECIDES:
                async with victim.request(
                    method, path, data=forged, headers=headers, allow_redirects=False
                ) as resp:
                    text = await resp.text()
                    assert not {"reporter", "staff"} & set(resp.cookies), name  # no login
                    if declared.token in REFUSED_WITH:
                        status, words = REFUSED_WITH[declared.token]
                        assert resp.status == status, (name, headers, resp.status)
                        assert words in html.text(text), (name, headers)
                    elif declared.token is Token.SERVICE:
                        assert resp.status >= 400, (name, headers, resp.status)  # its own secret
                    else:
                        assert declared.token is Token.NONE and declared.why, name
                        assert resp.status < 500, (name, resp.status)
        after = await db.fetchval(
            "SELECT (SELECT count(*) FROM notes), (SELECT count(*) FROM messages),"
            " (SELECT count(*) FROM sessions), (SELECT count(*) FROM threads)"
        )
        assert after == before
        assert await db.fetchval("SELECT count(*) FROM threads WHERE status <> 'open'") == 0
        async with victim.get("/staff") as resp:  # both of the victim's sessions are alive
            assert resp.status == 200 and "Team inbox" in await resp.text()
        async with victim.get("/messages", allow_redirects=False) as resp:
            assert resp.status == 200 and "a report the forger aims at" in await resp.text()


async def test_a_form_route_added_without_a_declaration_is_refused(stack: Stack) -> None:
    """The safe default: a route nobody declared in FORM_ROUTES takes no post, even same-origin
    and with a session's CSRF token, so a form added later cannot go unchecked."""
    from aiohttp.test_utils import TestServer

    from webapp.app import create_app

    reached: list[str] = []

    async def new_form(request: web.Request) -> web.Response:
        reached.append(request.path)
        return web.Response(text="stored")

    app = create_app(stack.settings)
    app.router.add_post("/staff/new-form", new_form, name="staff_new_form")
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        origin = str(server.make_url("")).rstrip("/")
        async with aiohttp.ClientSession(base_url=origin) as browser:
            headers = {"Origin": origin, "Sec-Fetch-Site": "same-origin"}
            async with browser.post("/staff/new-form", data={}, headers=headers) as resp:
                assert resp.status == 403
                assert "This form cannot be sent." in html.text(await resp.text())
            async with browser.get("/healthz") as resp:  # the app itself is fine
                assert resp.status == 200
    finally:
        await server.close()
    assert reached == []


async def test_both_login_pages_say_when_to_try_again_and_keep_what_was_typed(
    stack: Stack, caseworker: StaffAccount, db: asyncpg.Connection
) -> None:
    """A limited sign-in is answered by the error table once (429 and Retry-After) and drawn
    by each login page with its own words: the case worker's e-mail address stays typed, and a
    reporter's message waiting to be sent stays in the form."""
    _, base = stack.start_web(
        "web-policy-limits",
        CONFIDE_LOGIN_PER_CLIENT_PER_15MIN="2",
        CONFIDE_STAFF_LOGIN_PER_CLIENT_PER_15MIN="2",
    )
    async with aiohttp.ClientSession(
        base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as browser:
        for _ in range(3):
            page = await form_page(browser, "/staff/login")
            form = html.main_form(page).data(email=caseworker.email, password="not it")
            async with browser.post("/staff/login", data=form) as resp:
                status, headers, raw = resp.status, resp.headers, await resp.text()
        assert status == 429 and int(headers["Retry-After"]) > 0
        assert "Too many failed attempts. Wait" in html.text(raw)
        assert html.main_form(raw).fields.get("email") == caseworker.email
        for _ in range(3):
            page = await form_page(browser, "/login")
            form = html.main_form(page).data(code="7QKM-2XRD-9HWB-T4NF")
            form.update(pending_body="Words typed before the session ended")
            async with browser.post("/login", data=form) as resp:
                status, headers, raw = resp.status, resp.headers, await resp.text()
        assert status == 429 and int(headers["Retry-After"]) > 0
        assert "There have been too many attempts." in html.text(raw)
        assert html.main_form(raw).fields.get("pending_body") == (
            "Words typed before the session ended"
        )
