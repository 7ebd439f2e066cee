"""Smaller hardening (finding 14 of issue 12): Origin: null, login CSRF, client disconnects,
bidirectional text, and the caching of static 404s. Production's key and argon2 checks are in
``test_codes_and_settings.py``."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import time
from html.parser import HTMLParser
from urllib.parse import urlsplit

import aiohttp
import asyncpg

from tests import html
from tests.conftest import ROOT, Stack, StaffAccount
from tests.journeys import (
    form_page,
    reach_check_answers,
    reporter_logs_in,
    reporter_sends,
    reporter_submits,
    staff_logs_in,
)
from webapp.security import check_form_token, form_token_age_s, new_form_token

# --- Origin: null ----------------------------------------------------------------------------------


async def login_post(
    http: aiohttp.ClientSession, code: str, headers: dict[str, str], token: str | None = None
) -> tuple[int, str]:
    form = html.main_form(await form_page(http, "/login"))
    data = form.data(code=code)
    if token is not None:
        data["form_token"] = token
    async with http.post("/login", data=data, headers=headers, allow_redirects=False) as resp:
        return resp.status, await resp.text()


async def test_page_elsewhere_cannot_post_with_origin_null_unless_fetch_metadata_says_same_origin(
    http: aiohttp.ClientSession,
) -> None:
    sent = await reporter_submits(http, "Someone props the server room door open")
    assert sent.code
    # Origin: null with Fetch metadata that does not say same-origin: refused before the form.
    for site in ("none", "same-site", "cross-site"):
        status, _ = await login_post(http, sent.code, {"Origin": "null", "Sec-Fetch-Site": site})
        assert status == 403, site
    # Without Fetch metadata (an old browser) the form token decides: a forged one fails ...
    status, page = await login_post(http, sent.code, {"Origin": "null"}, token="forged.1.x")
    assert status == 400 and "expired" in page
    # ... and our own form, which browsers send with Origin: null under no-referrer, works.
    status, _ = await login_post(http, sent.code, {"Origin": "null"})
    assert status == 303
    status, _ = await login_post(
        http, sent.code, {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    )
    assert status == 303


# --- Login CSRF ------------------------------------------------------------------------------------


async def test_attacker_cannot_log_a_victims_browser_into_the_attackers_thread(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    """Login CSRF: the attacker's own code and a form token fetched by the attacker, posted from
    the victim's browser, do not log it in, since the token is bound to the attacker's cookie."""
    mine = await reporter_submits(http, "A decoy report of the attacker")
    assert mine.code
    attacker_form = html.main_form(await form_page(http, "/login"))
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base_url=stack.base_url, cookie_jar=jar) as victim:
        await form_page(victim, "/login")  # the victim has its own login cookie
        async with victim.post(
            "/login", data=attacker_form.data(code=mine.code), allow_redirects=False
        ) as resp:
            assert resp.status == 400
            assert "reporter" not in resp.cookies
        async with victim.get("/messages", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/login"
        # The victim's own form still works, without JavaScript, as for anyone.
        status, page = await reporter_logs_in(victim, mine.code)
        assert status == 200 and "A decoy report of the attacker" in page


async def test_reporter_without_cookies_is_told_logging_in_needs_one(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    sent = await reporter_submits(http, "A broken handrail on the east stairs")
    assert sent.code
    async with aiohttp.ClientSession(
        base_url=stack.base_url, cookie_jar=aiohttp.DummyCookieJar()
    ) as no_cookies:
        status, page = await reporter_logs_in(no_cookies, sent.code)
    assert status == 400
    assert "Allow cookies for this site" in html.text(page)
    assert html.main_form(page).fields["form_token"]


# --- Client disconnects ----------------------------------------------------------------------------


async def test_client_that_hangs_up_mid_request_is_not_logged_as_a_dependency_outage(
    stack: Stack, db: asyncpg.Connection
) -> None:
    logged_before = len(stack.web.log_text())
    url = urlsplit(stack.base_url)
    assert url.hostname and url.port
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(
        b"POST /api/v1/reports HTTP/1.1\r\nHost: confide\r\nContent-Type: application/json\r\n"
        b"Content-Length: 5000\r\n\r\n" + b'{"description": "cut off'
    )
    await writer.drain()
    await asyncio.sleep(0.5)  # the handler is now waiting for the rest of the body
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()
    deadline = time.monotonic() + 20
    while "client_disconnected" not in stack.web.log_text()[logged_before:]:
        assert time.monotonic() < deadline, stack.web.log_text()[logged_before:][-2000:]
        await asyncio.sleep(0.2)
    log = stack.web.log_text()[logged_before:]
    assert "dependency_down" not in log and "unhandled_error" not in log
    assert await db.fetchval("SELECT count(*) FROM threads") == 0
    del reader


# --- Bidirectional text ----------------------------------------------------------------------------

RLO = "\u202e"


class _Isolation(HTMLParser):
    """For each text node holding ``needle``: is its innermost element isolating?"""

    def __init__(self, needle: str) -> None:
        super().__init__(convert_charrefs=True)
        self.needle = needle
        self.stack: list[tuple[str, bool]] = []
        self.found: list[tuple[str, bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("br", "input", "meta", "link", "img", "hr"):
            return
        isolating = tag == "bdi" or dict(attrs).get("dir") in ("auto", "ltr", "rtl")
        self.stack.append((tag, isolating))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.needle in data and self.stack:
            self.found.append(self.stack[-1])


def isolated(page: str, needle: str) -> list[tuple[str, bool]]:
    reader = _Isolation(needle)
    reader.feed(page)
    assert reader.found, f"{needle!r} is not on the page"
    return reader.found


async def test_override_characters_cannot_reorder_the_pages_around_user_text(
    stack: Stack, http: aiohttp.ClientSession, caseworker: StaffAccount
) -> None:
    description = f"Payment {RLO}fdp.exe approved by Dana"
    where = f"Room {RLO}12B"
    check = await reach_check_answers(http, description=description, location=where)
    assert all(ok for _, ok in isolated(check, RLO + "fdp.exe"))
    assert all(ok for _, ok in isolated(check, RLO + "12B"))
    sent = await reporter_submits(http, description, location=where)
    assert sent.code
    await reporter_logs_in(http, sent.code)
    message = f"Also {RLO}gnp.scr was sent round"
    await reporter_sends(http, message)
    reporter_page = await form_page(http, "/messages")
    for needle in (RLO + "fdp.exe", RLO + "12B", RLO + "gnp.scr"):
        assert all(ok for _, ok in isolated(reporter_page, needle)), needle

    async with aiohttp.ClientSession(
        base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as staff:
        await staff_logs_in(staff, caseworker.email, caseworker.password)
        inbox = await form_page(staff, "/staff?state=open")
        reference = next(
            line.split("/staff/threads/")[1].split('"')[0]
            for line in inbox.splitlines()
            if "/staff/threads/R-" in line
        )
        staff_page = await form_page(staff, f"/staff/threads/{reference}")
        for needle in (RLO + "fdp.exe", RLO + "12B", RLO + "gnp.scr"):
            assert all(ok for _, ok in isolated(staff_page, needle)), needle
    # Stored and shown as typed: isolation changes the layout, never the text.
    assert message in reporter_page and description in staff_page


# --- Static files ----------------------------------------------------------------------------------


async def test_static_404_is_not_cached_while_static_files_are(http: aiohttp.ClientSession) -> None:
    async with http.get("/static/nope.css") as resp:
        assert resp.status == 404
        assert resp.headers["Cache-Control"] == "no-store"
    async with http.get("/static/app.css") as resp:
        assert resp.status == 200
        assert resp.headers["Cache-Control"].startswith("public")


async def test_static_files_go_gzipped_to_browsers_that_take_it_and_match_their_source(
    http: aiohttp.ClientSession,
) -> None:
    static = ROOT / "webapp" / "static"
    shipped = sorted(p for p in static.iterdir() if p.suffix in (".css", ".js"))
    assert shipped
    for path in shipped:
        packed = path.with_name(path.name + ".gz")
        assert packed.is_file(), f"{packed.name} is missing: run make static"
        assert gzip.decompress(packed.read_bytes()) == path.read_bytes(), (
            f"{packed.name} is stale: run make static"
        )
        url = f"/static/{path.name}"
        async with http.get(
            url, headers={"Accept-Encoding": "gzip"}, auto_decompress=False
        ) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            assert resp.headers["Vary"] == "Accept-Encoding"
            assert await resp.read() == packed.read_bytes()
        async with http.get(url, headers={"Accept-Encoding": "identity"}) as resp:
            assert "Content-Encoding" not in resp.headers
            assert await resp.read() == path.read_bytes()
    async with http.get(f"/static/{shipped[0].name}.gz") as resp:
        assert resp.status == 404  # not an address of its own


async def test_pages_name_our_own_icon_so_browsers_never_ask_for_a_missing_one(
    http: aiohttp.ClientSession,
) -> None:
    async with http.get("/") as resp:
        assert '<link rel="icon" href="/static/icon.svg"' in await resp.text()
    async with http.get("/static/icon.svg") as resp:
        assert resp.status == 200 and resp.content_type == "image/svg+xml"
        assert resp.headers["Cache-Control"].startswith("public")


# --- Signed form tokens (itsdangerous) -------------------------------------------------------------


def test_form_token_works_for_its_own_purpose_only(stack: Stack) -> None:
    token = new_form_token(stack.settings, "report-submit")
    nonce = check_form_token(stack.settings, "report-submit", token)
    assert nonce is not None and nonce == token.split(".")[0] and len(nonce) == 43
    assert check_form_token(stack.settings, "message", token) is None
    assert check_form_token(stack.settings, "reply", token) is None
    assert new_form_token(stack.settings, "report-submit") != token  # a fresh nonce each time


def test_form_token_tells_its_age_and_is_refused_after_24_hours(stack: Stack) -> None:
    hours_ago = new_form_token(stack.settings, "message", now=time.time() - 3 * 3600)
    assert 3 * 3600 - 2 <= form_token_age_s(hours_ago) <= 3 * 3600 + 2
    assert check_form_token(stack.settings, "message", hours_ago) is not None
    a_day_ago = new_form_token(stack.settings, "message", now=time.time() - 24 * 3600 - 5)
    assert check_form_token(stack.settings, "message", a_day_ago) is None
    from_the_future = new_form_token(stack.settings, "message", now=time.time() + 3600)
    assert check_form_token(stack.settings, "message", from_the_future) is None


def test_malformed_or_tampered_form_token_is_refused_without_an_error(stack: Stack) -> None:
    token = new_form_token(stack.settings, "message")
    nonce, stamp, sig = token.split(".")
    other = new_form_token(stack.settings, "message").split(".")
    for bad in (
        "",
        ".",
        "..",
        "forged.1.x",
        nonce,
        f"{nonce}.{stamp}",
        f"{other[0]}.{stamp}.{sig}",  # another nonce under this signature
        f"{nonce}.{other[1]}x.{sig}",  # a changed timestamp
        f"{nonce}.{stamp}.{sig[:-1]}",
        f"{nonce}.{stamp}.{sig}.{sig}",
        token + "\udcff",  # a lone surrogate, as aiohttp decodes invalid UTF-8
        token.replace("a", "é"),
        "x" * 10_000,
        f"{nonce}.{'A' * 40}.{sig}",
    ):
        assert check_form_token(stack.settings, "message", bad) is None, bad
        assert isinstance(form_token_age_s(bad), float)  # it never raises
    assert form_token_age_s(nonce) == form_token_age_s("x" * 10_000) == float("inf")
