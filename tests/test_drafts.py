"""Reporters' drafts: answers kept between pages, readable only with the key in the reporter's
browser (issue 14 items 1, 2 and 4; docs/security.md "Drafts")."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from http.cookies import Morsel

import aiohttp
import asyncpg
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from playwright.async_api import Browser
from yarl import URL

from confide import drafts as draft_keys
from confide.context import Context
from confide.crypto import DecryptionError, Keyring
from confide.org import load as load_org
from confide.services import drafts, housekeeping
from confide.services.workdays import WorkingCalendar
from confide.settings import parse_keyring
from tests import html, leaks
from tests.conftest import Stack
from tests.journeys import reach_check_answers, reporter_logs_in, reporter_submits, send_report
from tests.test_browser import Auditor, browser, on_a_phone

__all__ = ["browser"]  # the session's Chromium (tests/test_browser.py)


def canary(label: str) -> str:
    return f"CANARY{label.upper()}{secrets.token_hex(6).upper()}"


@pytest.fixture
async def ctx(stack: Stack, db: asyncpg.Connection) -> AsyncIterator[Context]:
    """The service context a web process builds, on the test database."""
    pool = await asyncpg.create_pool(stack.env["DATABASE_URL"], min_size=1, max_size=2)
    calendar = WorkingCalendar.for_org(load_org(stack.settings.org_file))
    try:
        yield Context(pool, stack.settings, stack.keyring, calendar)
    finally:
        await pool.close()


def server_keys(stack: Stack) -> Iterator[tuple[str, bytes]]:
    """Every key the server holds, raw and as SHA-256 (a 32-byte AES key made of it)."""
    settings = stack.settings
    named = [(f"keyring:{kid}", raw) for kid, raw in parse_keyring(settings.encryption_keys.get())]
    for name in ("lookup_key", "code_pepper", "session_key", "receipt_key"):
        secret = getattr(settings, name)
        named.append((name, secret.bytes()))
        padded = secret.get() + "=" * (-len(secret.get()) % 4)
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            with contextlib.suppress(ValueError):
                named.append((f"{name}:decoded", decode(padded)))
    for name, raw in named:
        yield name, raw
        yield f"{name}:sha256", hashlib.sha256(raw).digest()


async def test_a_draft_is_ciphertext_that_no_server_key_opens(
    stack: Stack, ctx: Context, db: asyncpg.Connection
) -> None:
    words = canary("draft")
    browser = draft_keys.new_key()
    await drafts.save(ctx, browser, {"answers": {"description": f"The lift is broken. {words}"}})

    # The reporter's browser reads it back.
    loaded = await drafts.load(ctx, browser)
    assert loaded is not None and words in loaded["answers"]["description"]

    # The row holds a hash of the draft id and ciphertext, nothing else about anyone.
    row = await db.fetchrow("SELECT * FROM report_drafts")
    assert set(row.keys()) == {
        "id",
        "ciphertext",
        "updated_at",
        "expires_at",
        "code_ciphertext",
        "code_expires_at",
    }
    assert row["code_ciphertext"] is None
    assert row["id"] == hashlib.sha256(browser.draft_id).digest() != browser.draft_id
    assert browser.key not in row["ciphertext"] and browser.draft_id not in row["ciphertext"]

    # No dump, Redis key or log line holds the words, nor the browser's key.
    server_major = int(await db.fetchval("SHOW server_version_num")) // 10000
    secrets_ = {"draft": words, "key": browser.cookie_value().split(".")[1]}
    for sink, content in {
        "pg_dump": leaks.pg_dump(stack.env["DATABASE_URL"], server_major),
        "redis": leaks.redis_dump(stack.env["REDIS_URL"]),
        "logs": stack.logs(),
    }.items():
        assert leaks.hits(content, secrets_) == [], sink

    # Every key the server holds fails to open it: tried, not assumed.
    blob = row["ciphertext"]
    nonce, body = blob[1:13], blob[13:]
    aad = b"report_drafts.ciphertext:" + row["id"].hex().encode()
    tried = set()
    for name, raw in server_keys(stack):
        if len(raw) not in (16, 24, 32):
            continue
        for associated in (aad, b"", None):
            with pytest.raises(InvalidTag):
                AESGCM(raw).decrypt(nonce, body, associated)
        tried.add(name.split(":")[0])
    assert tried >= {"lookup_key", "code_pepper", "session_key", "receipt_key"}
    assert any(name.startswith("keyring") for name in tried)
    with pytest.raises(DecryptionError):
        stack.keyring.open(blob, "report_drafts.ciphertext")
    for kid, raw in parse_keyring(stack.settings.encryption_keys.get()):
        with pytest.raises(DecryptionError):
            Keyring([(kid, raw)]).open(bytes([1, len(kid)]) + kid.encode() + blob[1:], aad.decode())
    # Nor does another browser's key, or the right key on another row.
    assert await drafts.load(ctx, draft_keys.new_key()) is None
    with pytest.raises(draft_keys.DraftUnreadable):
        draft_keys.open_sealed(draft_keys.BrowserKey(secrets.token_bytes(32), browser.key), blob)


async def test_drafts_expire_when_left_idle_and_are_deleted(
    ctx: Context, db: asyncpg.Connection
) -> None:
    left = draft_keys.new_key()
    kept = draft_keys.new_key()
    await drafts.save(ctx, left, {"answers": {"description": "left"}})
    await drafts.save(ctx, kept, {"answers": {"description": "kept"}})
    expires = await db.fetchval("SELECT expires_at - updated_at FROM report_drafts LIMIT 1")
    assert expires.total_seconds() == 60 * 60  # the default idle timeout

    # An hour without a save: loading finds nothing, and deletes the row there and then.
    await db.execute("UPDATE report_drafts SET expires_at = now() - interval '1 second'")
    assert await drafts.load(ctx, left) is None
    assert await db.fetchval("SELECT count(*) FROM report_drafts") == 1
    # The periodic purge deletes the rest, never a live one.
    fresh = draft_keys.new_key()
    await drafts.save(ctx, fresh, {"answers": {}})
    purged = await housekeeping.purge_expired(ctx)
    assert purged.drafts == 1
    assert await drafts.load(ctx, kept) is None
    assert await drafts.load(ctx, fresh) == {"answers": {}}

    # Saving again moves the expiry on; deleting forgets it.
    assert await drafts.delete(ctx, fresh)
    assert await drafts.load(ctx, fresh) is None
    assert await db.fetchval("SELECT count(*) FROM report_drafts") == 0


def test_a_draft_cookie_holds_the_id_and_the_key_and_nothing_else() -> None:
    browser = draft_keys.new_key()
    value = browser.cookie_value()
    assert draft_keys.from_cookie(value) == browser
    assert "redacted" in repr(browser)
    for bad in ("", "x", "a.b", value + ".x", value[:-2], "é" * 80, value.replace(".", "")):
        assert draft_keys.from_cookie(bad) is None


# --- The report pages with a draft (post/redirect/get) ---------------------------------------


async def step(http: aiohttp.ClientSession, path: str, data: dict[str, str]) -> str:
    """POST one page's form; with a draft, the answer is a 303 to the next page's GET."""
    async with http.post("/report", data=data, allow_redirects=False) as resp:
        assert resp.status == 303, (resp.status, html.text(await resp.text())[:300])
        assert resp.headers["Location"] == path
        return path


async def get(http: aiohttp.ClientSession, path: str) -> str:
    async with http.get(path) as resp:
        assert resp.status == 200, (path, resp.status)
        return await resp.text()


def draft_cookie(http: aiohttp.ClientSession) -> Morsel[str]:
    found = [c for c in http.cookie_jar if c.key == "confide_draft"]
    assert len(found) == 1, [c.key for c in http.cookie_jar]
    return found[0]


async def test_each_step_is_a_page_that_can_be_reloaded_and_revisited_with_what_was_typed(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    words = canary("words")
    first = await get(http, "/report")
    cookie = draft_cookie(http)
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert not cookie["max-age"] and not cookie["expires"]  # ends with the browser session
    assert 'type="hidden" name="description"' not in first

    await step(http, "/report/category", {"step": "how", "how": "anonymous"})
    await step(http, "/report/what", {"step": "category", "category": "safety"})
    await step(http, "/report/when", {"step": "what", "description": f"Door. {words}"})
    await step(http, "/report/where", {"step": "when", "occurred": "Tuesday"})
    # The in-page Back keeps what was typed on the page being left, unchecked.
    await step(http, "/report/when", {"step": "where", "location": "Car park", "nav": "back"})
    assert 'value="Tuesday"' in await get(http, "/report/when")
    where = await get(http, "/report/where")
    assert 'value="Car park"' in where
    assert 'name="nav" value="back"' in where and 'form="report-step"' in where
    await step(http, "/report/follow-up", {"step": "where", "location": "Car park"})
    await step(http, "/report/check", {"step": "follow-up", "follow_up": "yes"})

    # Every page, reloaded or gone back to, shows its answer; none carries the others.
    what = await get(http, "/report/what")
    assert words in what and 'type="hidden" name="how"' not in what
    assert 'value="anonymous" checked' in await get(http, "/report")
    assert 'value="safety" checked' in await get(http, "/report/category")
    assert 'value="yes" checked' in await get(http, "/report/follow-up")
    check = await get(http, "/report/check")
    assert words in check and "Car park" in check and "Tuesday" in check
    # Reloading check answers sends nothing, and its token stays the same.
    again = await get(http, "/report/check")
    assert html.main_form(again).fields["form_token"] == html.main_form(check).fields["form_token"]
    assert await db.fetchval("SELECT count(*) FROM threads") == 0

    # Before sending, the words are only ciphertext: no dump, Redis key or log line has them.
    server_major = int(await db.fetchval("SHOW server_version_num")) // 10000
    key = cookie.value.split(".")[1]
    for sink, content in {
        "pg_dump": leaks.pg_dump(stack.env["DATABASE_URL"], server_major),
        "redis": leaks.redis_dump(stack.env["REDIS_URL"]),
        "logs": stack.logs(),
    }.items():
        assert leaks.hits(content, {"words": words, "key": key}) == [], sink

    # Send: a 303 to the confirmation's GET, which shows the same code however often it loads.
    form = html.main_form(check)
    async with http.post(form.action, data=form.fields, allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/report/confirmation"
    shown = await get(http, "/report/confirmation")
    code = html.code_on(shown)
    assert code is not None and "Report received" in shown
    assert 'action="/receipt.json"' in shown and 'name="reminder_token"' in shown
    assert html.code_on(await get(http, "/report/confirmation")) == code
    # Sending again (Back to check answers and Send, or a resubmitted POST) adds nothing.
    async with http.post(form.action, data=form.fields) as resp:
        assert html.code_on(await resp.text()) == code
    assert await db.fetchval("SELECT count(*) FROM threads") == 1
    assert await db.fetchval("SELECT count(*) FROM reporter_codes") == 1
    # The answers are gone from the draft; only the confirmation is left (Back goes to it).
    async with http.get("/report/what", allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/report/confirmation"

    # "I have saved my code": the page shows the reference, and says the code still works.
    saved = html.forms(shown)
    saved_form = next(f for f in saved if f.action == "/report/confirmation")
    async with http.post(saved_form.action, data=saved_form.fields) as resp:
        after = await resp.text()
    assert html.code_on(after) is None and "Your code was shown once" in after
    assert re.search(r"R-[0-9A-Z]{8}", after)
    assert (
        await db.fetchval("SELECT count(*) FROM report_drafts WHERE code_ciphertext IS NOT NULL")
        == 0
    )
    status, page = await reporter_logs_in(http, code)  # the first code still works
    assert status == 200 and "Log out" in page


async def test_the_code_is_shown_again_only_for_its_minutes_and_never_after_a_login(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    sent = await reporter_submits(http, "The stairwell light is out.", wants_replies=True)
    assert sent.code is not None and str(sent.status) == "200"
    expires = await db.fetchval("SELECT code_expires_at - updated_at FROM report_drafts")
    assert expires.total_seconds() <= 10 * 60
    # Its minutes are over: the page shows no code, and the ciphertext is wiped.
    await db.execute("UPDATE report_drafts SET code_expires_at = now() - interval '1 second'")
    page = await get(http, "/report/confirmation")
    assert html.code_on(page) is None and "Your code was shown once" in page
    assert await db.fetchval("SELECT code_ciphertext FROM report_drafts") is None

    # Another report in the same browser: logging in forgets its code at once.
    http.cookie_jar.clear()
    second = await reporter_submits(http, "The lift is stuck.", wants_replies=True)
    assert second.code is not None
    status, _page = await reporter_logs_in(http, second.code)
    assert status == 200
    assert html.code_on(await get(http, "/report/confirmation")) is None
    # The draft ends with the browser session or its idle timeout: then the page is gone.
    await db.execute("UPDATE report_drafts SET expires_at = now() - interval '1 second'")
    async with http.get("/report/confirmation", allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/report"


async def test_exit_deletes_the_draft_and_its_cookie_then_leaves(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    page = await get(http, "/report")
    assert 'href="/exit"' in page
    await step(http, "/report/category", {"step": "how", "how": "anonymous"})
    assert await db.fetchval("SELECT count(*) FROM report_drafts") == 1
    async with http.get("/exit", allow_redirects=False) as resp:
        assert resp.status == 303
        assert resp.headers["Location"] == "https://www.bbc.co.uk/weather"
        cleared = resp.cookies["confide_draft"]
        assert cleared.value == "" and cleared["max-age"] == "0"
    assert await db.fetchval("SELECT count(*) FROM report_drafts") == 0
    assert not [c for c in http.cookie_jar if c.key == "confide_draft"]


async def test_with_cookies_off_the_answers_ride_in_the_pages_as_before(
    stack: Stack, db: asyncpg.Connection
) -> None:
    async with aiohttp.ClientSession(
        base_url=stack.base_url, cookie_jar=aiohttp.DummyCookieJar()
    ) as http:
        check = await reach_check_answers(http, description="No cookies here.", location="Hall")
        assert 'type="hidden" name="description" value="No cookies here."' in check
        sent = await send_report(http, check)
    assert sent.status == 200 and "Report received" in sent.page and sent.code
    assert "cookie" not in html.text(sent.page).casefold()
    assert await db.fetchval("SELECT count(*) FROM threads") == 1
    assert await db.fetchval("SELECT count(*) FROM report_drafts") == 0


# --- The code first: download and the last-4 check (issue 14 item 3) -------------------------


async def download_code(
    http: aiohttp.ClientSession, data: dict[str, str] | None = None
) -> tuple[int, str, dict[str, str]]:
    async with http.post("/report/code.txt", data=data or {}) as resp:
        return resp.status, await resp.text(), dict(resp.headers)


async def test_the_code_downloads_as_a_text_file_with_the_login_address_and_nothing_else(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    sent = await reporter_submits(http, "The stairwell light is out.", wants_replies=True)
    shown = await get(http, "/report/confirmation")
    code = html.code_on(shown)
    assert code is not None and sent.reference
    login = f"{stack.settings.base_url}/login"
    assert login in html.text(shown)  # the page shows where to log in too
    download = next(f for f in html.forms(shown) if f.action == "/report/code.txt")
    assert download.method == "post" and download.fields == {}  # the draft holds the code

    status, body, headers = await download_code(http, download.fields)
    assert status == 200 and body == f"{code}\n{login}\n"  # exactly these two lines
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Content-Disposition"] == 'attachment; filename="code.txt"'
    assert headers["Cache-Control"] == "no-store"
    assert sent.reference not in body and "stairwell" not in body
    # With a draft, only its code is ever given: a posted one is ignored.
    other = "7QKM-2XRD-9HWB-T4NF"
    status, body, _headers = await download_code(http, {"code": other})
    assert status == 200 and body == f"{code}\n{login}\n"

    # Once the page shows the code no more, neither does the download: it says so kindly.
    saved = next(f for f in html.forms(shown) if f.action == "/report/confirmation")
    async with http.post(saved.action, data=saved.fields) as resp:
        assert html.code_on(await resp.text()) is None
    status, body, headers = await download_code(http)
    assert status == 410 and headers["Content-Type"].startswith("text/html")
    assert "no longer shown on this page" in body and code not in body
    assert "it still works" in html.text(body)

    # Cookies off: the confirmation is the submit's answer, and its form posts the code back.
    async with aiohttp.ClientSession(
        base_url=stack.base_url, cookie_jar=aiohttp.DummyCookieJar()
    ) as cookieless:
        plain = await reporter_submits(cookieless, "No cookies here.", wants_replies=True)
        assert plain.code is not None
        form = next(f for f in html.forms(plain.page) if f.action == "/report/code.txt")
        assert form.fields == {"code": plain.code}
        status, body, headers = await download_code(cookieless, form.fields)
        assert status == 200 and body == f"{plain.code}\n{login}\n"
        assert headers["Cache-Control"] == "no-store"
        # A tampered form gets the login page's answer for a code that is not one.
        status, body, _headers = await download_code(cookieless, {"code": "<script>"})
        assert status == 422 and "<script>" not in body
        status, body, _headers = await download_code(cookieless)
        assert status == 422

    # Neither code went to a URL, a Redis key or a log line.
    secrets_ = {"code": code, "plain": plain.code}
    assert leaks.hits(leaks.redis_dump(stack.env["REDIS_URL"]), secrets_) == []
    assert leaks.hits(stack.logs(), secrets_) == []


async def test_the_last_4_check_says_whether_they_match_and_never_blocks(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    sent = await reporter_submits(http, "The lift is stuck.", wants_replies=True)
    shown = await get(http, "/report/confirmation")
    code = html.code_on(shown)
    assert code is not None and sent.code == code
    check = next(f for f in html.forms(shown) if f.action.startswith("/report/confirmation/check"))
    assert "Type the last 4 characters of your code to check you have saved it" in shown
    assert set(check.fields) == {"last4"}  # the code itself is not posted: the draft has it

    async def typed(last4: str) -> str:
        async with http.post(check.action, data={"last4": last4}) as resp:
            # Post/redirect/get: the answer is a GET of the confirmation (Back asks nothing).
            assert [r.status for r in resp.history] == [303]
            assert resp.history[0].headers["Location"] == "/report/confirmation#saved-check"
            assert resp.status == 200 and resp.url.path == "/report/confirmation"
            page = await resp.text()
        assert html.code_on(page) == code  # the page is the confirmation again, code and all
        return html.text(page)

    assert "That matches: you have saved your code." in await typed(code[-4:])
    # Typed as people type: lower case, O for 0, I or L for 1, spaces.
    squeezed = code[-4:].lower().replace("0", "o").replace("1", "l")
    assert "That matches" in await typed(f" {squeezed[:2]} {squeezed[2:]} ")
    wrong = "".join("Z" if ch != "Z" else "Y" for ch in code[-4:])
    mismatch = await typed(wrong)
    assert "That does not match the end of your code." in mismatch
    assert "That matches" not in mismatch
    assert "or skip this" in await typed("")
    # A reload (the GET again) says the same; what was typed is sealed in the draft only.
    assert "or skip this" in html.text(await get(http, "/report/confirmation"))
    # Nothing was blocked or counted: many wrong answers later the page, the saved button, the
    # download and the login all still work.
    for _ in range(10):
        await typed(wrong)
    status, body, _headers = await download_code(http)
    assert status == 200 and body.startswith(code)
    saved = next(f for f in html.forms(shown) if f.action == "/report/confirmation")
    async with http.post(saved.action, data=saved.fields) as resp:
        assert "Your code was shown once" in await resp.text()
    status, page = await reporter_logs_in(http, code)
    assert status == 200 and "Log out" in page
    # Afterwards (no code in the draft) the check has nothing to compare: no form, no answer.
    async with http.post(check.action, data={"last4": code[-4:]}) as resp:
        after = await resp.text()
    assert "That matches" not in after and "That does not match" not in after
    assert leaks.hits(stack.logs(), {"code": code}) == []

    # Cookies off: the check is done by the page's script only (no form without JavaScript);
    # a post without a draft cookie learns nothing and goes to the confirmation.
    async with aiohttp.ClientSession(
        base_url=stack.base_url, cookie_jar=aiohttp.DummyCookieJar()
    ) as cookieless:
        plain = await reporter_submits(cookieless, "No cookies here.", wants_replies=True)
        assert plain.code is not None
        assert re.search(r'<form[^>]+id="saved-check"[^>]+hidden>', plain.page)
        async with cookieless.post(
            "/report/confirmation/check", data={"last4": plain.code[-4:]}, allow_redirects=False
        ) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/report/confirmation"


async def test_one_browsers_draft_cookie_never_opens_another_browsers_draft(
    stack: Stack, db: asyncpg.Connection
) -> None:
    words = canary("alice")

    def browser_session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
        )

    def forged_browser(cookie: str) -> aiohttp.ClientSession:
        jar = aiohttp.CookieJar(unsafe=True)
        jar.update_cookies({"confide_draft": cookie}, URL(stack.base_url))
        return aiohttp.ClientSession(base_url=stack.base_url, cookie_jar=jar)

    async with browser_session() as alice, browser_session() as bob:
        # Alice is half-way through her report; Bob opens his own.
        await get(alice, "/report")
        await step(alice, "/report/category", {"step": "how", "how": "anonymous"})
        await step(alice, "/report/what", {"step": "category", "category": "safety"})
        await step(alice, "/report/when", {"step": "what", "description": f"Door. {words}"})
        alice_cookie = draft_cookie(alice)
        first = await get(bob, "/report")
        bob_cookie = draft_cookie(bob)
        assert bob_cookie.value != alice_cookie.value
        assert words not in first
        # Bob's own cookie reaches only his own (empty) draft: no page shows Alice's words.
        async with bob.get("/report/what", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/report"
        await step(bob, "/report/category", {"step": "how", "how": "anonymous"})
        await step(bob, "/report/what", {"step": "category", "category": "safety"})
        assert words not in await get(bob, "/report/what")
        await step(bob, "/report/when", {"step": "what", "description": "A light is out."})

        # A cookie with Alice's draft id and Bob's key, or her id with a tampered key: each is a
        # fresh start (a new cookie), never an error, never her words; and her draft is intact.
        alice_id, alice_key = alice_cookie.value.split(".")
        bob_key = bob_cookie.value.split(".")[1]
        flipped = ("A" if alice_key[0] != "A" else "B") + alice_key[1:]
        for forged in (f"{alice_id}.{bob_key}", f"{alice_id}.{flipped}", "junk.value"):
            async with forged_browser(forged) as mallory:
                assert mallory.cookie_jar.filter_cookies(URL(stack.base_url))["confide_draft"]
                for path in ("/report/what", "/report/check", "/report/confirmation"):
                    async with mallory.get(path, allow_redirects=False) as resp:
                        assert resp.status == 303 and resp.headers["Location"] == "/report"
                async with mallory.get("/report", allow_redirects=False) as resp:
                    page = await resp.text()
                    assert resp.status == 200 and words not in page
                    fresh = resp.cookies["confide_draft"].value
                    assert fresh and fresh != forged and not fresh.startswith(alice_id)
                status, body, _headers = await download_code(mallory)
                assert status < 500 and words not in body
        assert words in await get(alice, "/report/what")

        # Both send: each confirmation shows its own code, and never the other's.
        for http, label in ((alice, "alice"), (bob, "bob")):
            await step(http, "/report/where", {"step": "when", "occurred": label})
            await step(http, "/report/follow-up", {"step": "where", "location": label})
            await step(http, "/report/check", {"step": "follow-up", "follow_up": "yes"})
        assert words not in await get(bob, "/report/check")
        codes_shown: dict[str, str] = {}
        for http, label in ((alice, "alice"), (bob, "bob")):
            form = html.main_form(await get(http, "/report/check"))
            async with http.post(form.action, data=form.fields) as resp:
                shown_code = html.code_on(await resp.text())
            assert shown_code is not None, label
            codes_shown[label] = shown_code
        assert codes_shown["alice"] != codes_shown["bob"]
        bob_page = await get(bob, "/report/confirmation")
        assert codes_shown["alice"] not in bob_page and words not in bob_page
        status, body, _headers = await download_code(bob)
        assert status == 200 and body.startswith(f"{codes_shown['bob']}\n")
        # A forged cookie naming Alice's draft sees no confirmation and no code of hers.
        async with forged_browser(f"{alice_id}.{bob_key}") as mallory:
            async with mallory.get("/report/confirmation", allow_redirects=False) as resp:
                assert resp.status == 303 and resp.headers["Location"] == "/report"
            status, body, _headers = await download_code(mallory)
            assert codes_shown["alice"] not in body
        assert html.code_on(await get(alice, "/report/confirmation")) == codes_shown["alice"]
    assert await db.fetchval("SELECT count(*) FROM threads") == 2


# --- In a real Chromium at 375 px, JavaScript on and off -------------------------------------


@pytest.mark.parametrize("js", [True, False], ids=["javascript-on", "javascript-off"])
async def test_back_and_forward_through_every_step_keep_every_answer(
    stack: Stack, browser: Browser, db: asyncpg.Connection, js: bool
) -> None:
    auditor = Auditor(browser, stack.base_url)
    context = await on_a_phone(browser, stack.base_url, js)
    page = await context.new_page()
    answers = [
        ("#description", "The fire door on level 2 does not close."),
        ("#occurred", "Last Tuesday"),
        ("#location", "Library"),
    ]
    try:
        await page.goto("/report")
        await page.check("#how")
        await page.click("button:has-text('Continue')")
        await page.check("label:has-text('A safety concern on site')")
        await page.click("button:has-text('Continue')")
        for selector, value in answers:
            await page.fill(selector, value)
            if selector == "#occurred":
                await page.press(selector, "Enter")  # Enter continues, never goes back
            else:
                await page.click("button:has-text('Continue')")
        await page.check("#follow_up")
        await page.click("button:has-text('Continue')")
        assert (await page.title()).startswith("Check your answers")
        assert page.url.endswith("/report/check")

        # The browser's Back through every step: each page shows what was typed, no resubmit.
        back: list[tuple[str, str | None]] = [("#follow_up", None), *reversed(answers)]
        for field, typed in back:
            await page.go_back()
            if typed is None:
                assert await page.is_checked(field)
            else:
                assert await page.input_value(field) == typed
        await page.go_back()
        assert await page.is_checked("label:has-text('A safety concern on site')")
        await page.go_back()
        assert await page.is_checked("#how")
        # And Forward again, to check answers.
        for _ in range(6):
            await page.go_forward()
        assert (await page.title()).startswith("Check your answers")
        await page.reload()  # reloading check answers sends nothing
        assert await db.fetchval("SELECT count(*) FROM threads") == 0

        # The in-page Back keeps what was typed on the page being left.
        await page.goto("/report/where")
        await page.fill("#location", "Library, second floor")
        await page.click("button.back-link")
        assert await page.input_value("#occurred") == "Last Tuesday"
        await page.click("button:has-text('Continue')")
        assert await page.input_value("#location") == "Library, second floor"
        await auditor.check(page, js)
        await page.goto("/report/check")

        await page.click("button:has-text('Send report')")
        assert page.url.endswith("/report/confirmation")
        code = (await page.inner_text("#code")).strip()
        await auditor.check(page, js)
        await page.reload()
        assert (await page.inner_text("#code")).strip() == code
        await page.go_back()  # to check answers: the report is not sent again
        await page.go_forward()
        assert (await page.inner_text("#code")).strip() == code
        assert await db.fetchval("SELECT count(*) FROM threads") == 1

        await page.click("button:has-text('I have saved my code')")
        assert not await page.is_visible("#code")
        assert await page.is_visible("text=Your code was shown once")
        await auditor.check(page, js)
        await page.reload()
        assert not await page.is_visible("#code")

        # The first code still logs in.
        await page.goto("/login")
        await page.fill("#code", code)
        await page.click("main button[type=submit]")
        assert page.url.endswith("/messages")
        assert await db.fetchval("SELECT count(*) FROM threads") == 1
    finally:
        await context.close()


async def test_exit_in_the_browser_deletes_the_draft(
    stack: Stack, browser: Browser, db: asyncpg.Connection
) -> None:
    for js in (True, False):
        context = await on_a_phone(browser, stack.base_url, js)
        await context.route("https://www.bbc.co.uk/**", lambda route: route.fulfill(body="away"))
        page = await context.new_page()
        try:
            await page.goto("/report")
            await page.check("#how")
            await page.click("button:has-text('Continue')")
            assert await db.fetchval("SELECT count(*) FROM report_drafts") == 1
            await page.click("#exit-this-page")
            await page.wait_for_url("https://www.bbc.co.uk/**")
            # With JavaScript the page leaves at once and /exit answers in the background:
            # the row goes first, then the answer clearing the cookie arrives.
            for _ in range(50):
                rows = await db.fetchval("SELECT count(*) FROM report_drafts")
                cookies = await context.cookies(stack.base_url)
                kept = [c for c in cookies if c["name"] == "confide_draft"]
                if not rows and not kept:
                    break
                await asyncio.sleep(0.1)
            assert rows == 0, js
            assert not kept, js
        finally:
            await context.close()
