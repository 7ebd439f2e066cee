"""Staff second factor (issue 15, first part): authenticator codes, recovery codes, the rule
that some roles must enrol, the API's 401 types, the reset command, and no secret at rest."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pyotp
import pytest
from playwright.async_api import Browser

from tests import html
from tests.conftest import ROOT, Stack, StaffAccount, add_staff, confide_cli
from tests.journeys import form_page, post, staff_logs_in
from tests.leaks import hits, pg_dump, redis_dump
from tests.test_browser import Auditor, browser, on_a_phone

__all__ = ["browser"]  # the session's Chromium (tests/test_browser.py)

SECRET_ON_PAGE = re.compile(r'id="totp-secret"[^>]*>([A-Z2-7 ]+)</p>')
RECOVERY_ON_PAGE = re.compile(r"<li><code>([a-z0-9-]{19})</code></li>")


def jar_client(base_url: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(base_url=base_url, cookie_jar=aiohttp.CookieJar(unsafe=True))


def secret_on(page: str) -> str:
    match = SECRET_ON_PAGE.search(page)
    assert match, "no key on the enrolment page"
    return match.group(1).replace(" ", "")


def codes_on(page: str) -> list[str]:
    return RECOVERY_ON_PAGE.findall(page)


async def enrols(http: aiohttp.ClientSession) -> tuple[pyotp.TOTP, list[str], str]:
    """From a signed-in (or sent-to-enrol) browser: read the key off the page, as a person
    typing it into their app would, and confirm with the app's current code."""
    page = await form_page(http, "/staff/security/authenticator")
    assert "<svg" in page and 'class="qr"' in page  # the QR code, drawn on our own server
    totp = pyotp.TOTP(secret_on(page))
    form = html.main_form(page)
    status, codes_page = await post(http, form.action, form.data(code=totp.now()))
    assert status == 200, html.text(codes_page)
    codes = codes_on(codes_page)
    assert len(codes) == 10 and len(set(codes)) == 10
    return totp, codes, codes_page


def next_code(totp: pyotp.TOTP) -> str:
    """A code the app shows in the next 30 s: not yet used, within the ±1 step window."""
    return str(totp.at(time.time() + 30))


async def second_step(http: aiohttp.ClientSession, code: str) -> tuple[int, str]:
    page = await form_page(http, "/staff/sign-in/second-factor")
    form = html.main_form(page)
    return await post(http, form.action, form.data(code=code))


async def api_session(base: str, body: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
    async with (
        aiohttp.ClientSession(base_url=base) as http,
        http.post("/api/v1/staff/session", json=body) as resp,
    ):
        return resp.status, await resp.json(content_type=None), dict(resp.headers)


def problem_type(body: Any) -> str:
    return str(body.get("type", "")).rsplit("/", 1)[-1]


@pytest.fixture
async def enrolled(
    stack: Stack, caseworker: StaffAccount
) -> AsyncIterator[tuple[StaffAccount, pyotp.TOTP, list[str]]]:
    async with jar_client(stack.base_url) as http:
        status, _ = await staff_logs_in(http, caseworker.email, caseworker.password)
        assert status == 200
        totp, codes, _ = await enrols(http)
    yield caseworker, totp, codes


async def test_caseworker_can_enrol_an_authenticator_and_cannot_replay_a_code(
    stack: Stack, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    async with jar_client(stack.base_url) as http:
        status, inbox = await staff_logs_in(http, caseworker.email, caseworker.password)
        assert status == 200 and "inbox" in html.title(inbox)  # no factor yet: password only
        security = await form_page(http, "/staff/security")
        assert "Set up an authenticator app" in security
        # A wrong first code leaves the factor off.
        page = await form_page(http, "/staff/security/authenticator")
        form = html.main_form(page)
        status, again = await post(http, form.action, form.data(code="12345"))
        assert status == 422 and "not right" in again
        assert secret_on(again) == secret_on(page)  # the same key, so a scanned app still works
        totp, _, codes_page = await enrols(http)
        assert "only time they are shown" in codes_page
    row = await db.fetchrow("SELECT secret, confirmed_at, last_step FROM staff_totp")
    assert row["confirmed_at"] is not None and row["last_step"] is not None
    assert totp.secret.encode() not in row["secret"]

    # Signing in now takes a code; the password alone reaches only the second-factor page.
    async with jar_client(stack.base_url) as http:
        status, page = await staff_logs_in(http, caseworker.email, caseworker.password)
        assert status == 200 and "Enter your sign-in code" in page
        for path in ("/staff", "/staff/security", "/staff/password", "/staff/threads/R-ABCDEFGH"):
            async with http.get(path, allow_redirects=False) as resp:
                assert resp.status == 303
                assert resp.headers["Location"] == "/staff/sign-in/second-factor"
        # Its cookie is no bearer token for the API either.
        token = next(c.value for c in http.cookie_jar if c.key == "staff")
        async with http.get(
            "/api/v1/staff/threads", headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            assert resp.status == 401
        code = next_code(totp)
        status, page = await second_step(http, code)
        assert status == 200 and "inbox" in html.title(page)
    # The same code, replayed by someone who saw it, is refused.
    async with jar_client(stack.base_url) as attacker:
        await staff_logs_in(attacker, caseworker.email, caseworker.password)
        status, page = await second_step(attacker, code)
        assert status == 401 and "used already" in page
        async with attacker.get("/staff", allow_redirects=False) as resp:
            assert resp.headers["Location"] == "/staff/sign-in/second-factor"
    sessions = await db.fetch("SELECT methods, pending_step FROM sessions ORDER BY created_at")
    full = [list(r["methods"]) for r in sessions if r["pending_step"] is None]
    assert ["password", "totp"] in full
    actions = [r["action"] for r in await db.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert "second_factor_enrolled" in actions and "second_factor_failed" in actions


async def test_a_recovery_code_works_once_and_only_once(
    stack: Stack, db: asyncpg.Connection, enrolled: tuple[StaffAccount, pyotp.TOTP, list[str]]
) -> None:
    account, _, codes = enrolled
    async with jar_client(stack.base_url) as http:
        await staff_logs_in(http, account.email, account.password)
        status, page = await second_step(http, codes[0].upper().replace("-", " "))
        assert status == 200 and "inbox" in html.title(page)
    async with jar_client(stack.base_url) as http:
        await staff_logs_in(http, account.email, account.password)
        status, page = await second_step(http, codes[0])
        assert status == 401
    # The API takes one too, and a used one is refused there as well.
    status, body, _ = await api_session(
        stack.base_url, {"email": account.email, "password": account.password, "otp": codes[1]}
    )
    assert status == 200 and body["token"]
    status, body, _ = await api_session(
        stack.base_url, {"email": account.email, "password": account.password, "otp": codes[1]}
    )
    assert status == 401 and problem_type(body) == "second-factor-invalid"
    used = await db.fetchval("SELECT count(*) FROM staff_recovery_codes WHERE used_at IS NOT NULL")
    assert used == 2
    audit = await db.fetch("SELECT detail FROM audit_log WHERE action = 'recovery_code_used'")
    assert len(audit) == 2
    assert all(not hits(r["detail"], {"code": c}) for r in audit for c in codes)


async def test_api_answers_each_second_factor_problem_with_its_type(
    stack: Stack, db: asyncpg.Connection, enrolled: tuple[StaffAccount, pyotp.TOTP, list[str]]
) -> None:
    account, totp, _ = enrolled
    creds = {"email": account.email, "password": account.password}
    status, body, _ = await api_session(stack.base_url, creds)
    assert status == 401 and problem_type(body) == "second-factor-required"
    assert body["type"].startswith("tag:confide,2026:problems/")
    status, body, _ = await api_session(stack.base_url, {**creds, "otp": "000000"})
    assert status == 401 and problem_type(body) == "second-factor-invalid"
    code = next_code(totp)
    status, body, _ = await api_session(stack.base_url, {**creds, "otp": code})
    assert status == 200
    async with aiohttp.ClientSession(base_url=stack.base_url) as http:
        headers = {"Authorization": f"Bearer {body['token']}"}
        async with http.get("/api/v1/staff/threads", headers=headers) as resp:
            assert resp.status == 200
    status, body, _ = await api_session(stack.base_url, {**creds, "otp": code})  # replayed
    assert status == 401 and problem_type(body) == "second-factor-invalid"
    # A wrong password says nothing about the second factor.
    status, body, _ = await api_session(
        stack.base_url, {**creds, "password": "not the password", "otp": next_code(totp)}
    )
    assert status == 401 and body["type"] == "about:blank"
    status, body, _ = await api_session(stack.base_url, {**creds, "otp": 123456})  # type: ignore[dict-item]
    assert status == 422
    async with (
        aiohttp.ClientSession(base_url=stack.base_url) as http,
        http.get("/api/v1/openapi.json") as resp,
    ):
        spec = await resp.json()
    login = spec["paths"]["/api/v1/staff/session"]["post"]
    assert "second-factor-enrolment-required" in login["responses"]["401"]["description"]
    schema = spec["components"]["schemas"]["StaffLogin"]
    assert "otp" in schema["properties"] and "otp" not in schema.get("required", [])


async def test_a_flood_of_wrong_codes_gets_429_while_another_account_signs_in(
    stack: Stack, db: asyncpg.Connection, enrolled: tuple[StaffAccount, pyotp.TOTP, list[str]]
) -> None:
    account, _, _ = enrolled
    other = add_staff(stack, "morgan@example.org", "safety")
    async with jar_client(stack.base_url) as http:
        await staff_logs_in(http, other.email, other.password)
        other_totp, _, _ = await enrols(http)
    creds = {"email": account.email, "password": account.password}
    answers = [(await api_session(stack.base_url, {**creds, "otp": "000000"})) for _ in range(7)]
    assert [s for s, _, _ in answers] == [401] * 5 + [429] * 2
    assert all(int(h["Retry-After"]) > 0 for _, _, h in answers[5:])
    # The flood kept no client address: only the account's count.
    row = await db.fetchrow(
        "SELECT second_factor_attempts FROM staff WHERE email = $1", account.email
    )
    assert row["second_factor_attempts"] == 5
    status, _, _ = await api_session(
        stack.base_url,
        {"email": other.email, "password": other.password, "otp": next_code(other_totp)},
    )
    assert status == 200
    # In the browser the account's second step waits too, with a clear page.
    async with jar_client(stack.base_url) as http:
        await staff_logs_in(http, account.email, account.password)
        status, page = await second_step(http, "000000")
        assert status == 429 and "Too many wrong codes" in page


async def test_manager_who_must_enrol_reaches_nothing_else_until_they_do(
    stack: Stack, db: asyncpg.Connection, tmp_path: Path
) -> None:
    org = (ROOT / "confide" / "data" / "demo-org.toml").read_text()
    org_file = tmp_path / "org.toml"
    org_file.write_text(
        org.replace("closure_days = []", 'closure_days = []\nrequire_second_factor = ["manager"]')
    )
    _, base = stack.start_web("web-2fa-required", CONFIDE_ORG_FILE=str(org_file))
    manager = add_staff(stack, "mo@example.org", "safety", role="manager")
    caseworker = add_staff(stack, "casey@example.org", "safety")
    status, body, _ = await api_session(
        base, {"email": manager.email, "password": manager.password}
    )
    assert status == 401 and problem_type(body) == "second-factor-enrolment-required"
    async with jar_client(base) as http:
        status, page = await staff_logs_in(http, manager.email, manager.password)
        assert status == 200 and "Set up an authenticator app" in page
        assert "asks everyone in your role" in page
        for path in ("/staff", "/staff/audit", "/staff/security", "/staff/escalations", "/ops"):
            async with http.get(path, allow_redirects=False) as resp:
                assert resp.status == 303, path
                assert resp.headers["Location"] == "/staff/security/authenticator", path
        async with http.get("/staff/sign-in/second-factor", allow_redirects=False) as resp:
            assert resp.headers["Location"] == "/staff/login"  # no code is due: enrolment is
        totp, _, _ = await enrols(http)
        async with http.get("/staff", allow_redirects=False) as resp:
            assert resp.status == 200
    status, body, _ = await api_session(
        base, {"email": manager.email, "password": manager.password, "otp": next_code(totp)}
    )
    assert status == 200
    # A case worker is not in the rule: the password alone still signs them in.
    async with jar_client(base) as http:
        status, page = await staff_logs_in(http, caseworker.email, caseworker.password)
        assert status == 200 and "inbox" in html.title(page)


async def test_a_stranger_with_only_the_password_cannot_add_a_factor_beside_the_owners(
    stack: Stack, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """Someone who has the manager's password, but not their phone, signs in first and is sent
    to enrolment. The owner then signs in elsewhere and sets up their own app. The stranger's
    browser never saw the owner's key, cannot confirm a key of its own beside it, and is sent to
    the second step, which it cannot pass."""
    org = (ROOT / "confide" / "data" / "demo-org.toml").read_text()
    org_file = tmp_path / "org.toml"
    org_file.write_text(
        org.replace("closure_days = []", 'closure_days = []\nrequire_second_factor = ["manager"]')
    )
    _, base = stack.start_web("web-2fa-stranger", CONFIDE_ORG_FILE=str(org_file))
    manager = add_staff(stack, "morgan@example.org", "safety", role="manager")
    async with jar_client(base) as stranger, jar_client(base) as owner:
        status, page = await staff_logs_in(stranger, manager.email, manager.password)
        assert status == 200 and "Set up an authenticator app" in page
        stranger_page = await form_page(stranger, "/staff/security/authenticator")
        strangers_key = pyotp.TOTP(secret_on(stranger_page))

        status, _ = await staff_logs_in(owner, manager.email, manager.password)
        assert status == 200
        owners_totp, _, _ = await enrols(owner)
        assert owners_totp.secret != strangers_key.secret  # the owner got a key of their own

        # The stranger's enrolment form, sent now with its own key's code: refused.
        form = html.main_form(stranger_page)
        async with stranger.post(
            form.action, data=form.data(code=strangers_key.now()), allow_redirects=False
        ) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == "/staff/sign-in/second-factor"
        for path in ("/staff", "/staff/security", "/staff/security/authenticator"):
            async with stranger.get(path, allow_redirects=False) as resp:
                assert resp.status == 303, path
                assert resp.headers["Location"] == "/staff/sign-in/second-factor", path
        status, _ = await second_step(stranger, strangers_key.now())
        assert status != 200 or "inbox" not in html.title(_)
    assert await db.fetchval(
        "SELECT secret IS NOT NULL AND confirmed_at IS NOT NULL FROM staff_totp st"
        " JOIN staff s ON s.id = st.staff_id WHERE s.email = $1",
        manager.email,
    )
    # Only the owner's app works: its next code signs in on the API.
    status, _, _ = await api_session(
        base, {"email": manager.email, "password": manager.password, "otp": next_code(owners_totp)}
    )
    assert status == 200


async def test_ops_can_reset_a_staff_members_second_factor(
    stack: Stack, db: asyncpg.Connection, enrolled: tuple[StaffAccount, pyotp.TOTP, list[str]]
) -> None:
    account, _, codes = enrolled
    status, body, _ = await api_session(
        stack.base_url, {"email": account.email, "password": account.password, "otp": codes[0]}
    )
    token = body["token"]
    result = confide_cli(stack, "staff", "reset-second-factor", "--email", account.email)
    assert result.returncode == 0, result.stderr
    assert await db.fetchval("SELECT count(*) FROM staff_totp") == 0
    assert await db.fetchval("SELECT count(*) FROM staff_recovery_codes") == 0
    async with aiohttp.ClientSession(base_url=stack.base_url) as http:
        headers = {"Authorization": f"Bearer {token}"}
        async with http.get("/api/v1/staff/threads", headers=headers) as resp:
            assert resp.status == 401  # its sessions ended
    detail = json.loads(
        await db.fetchval("SELECT detail FROM audit_log WHERE action = 'second_factor_reset'")
    )
    assert detail["totp"] is True and detail["recovery_codes"] == 10
    status, _, _ = await api_session(
        stack.base_url, {"email": account.email, "password": account.password}
    )
    assert status == 200  # development: no rule, and no factor left
    missing = confide_cli(stack, "staff", "reset-second-factor", "--email", "nobody@example.org")
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
    assert "Traceback" not in missing.stderr
    usage = confide_cli(stack, "staff", "reset-second-factor")
    assert usage.returncode == 2


async def test_caseworker_can_remove_the_app_and_make_new_codes_with_proof(
    stack: Stack, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    async with jar_client(stack.base_url) as http:
        await staff_logs_in(http, caseworker.email, caseworker.password)
        totp, old_codes, _ = await enrols(http)
        page = await form_page(http, "/staff/security")
        form = next(f for f in html.forms(page) if f.action.endswith("/recovery-codes"))
        status, again = await post(http, form.action, form.data(codes_proof="wrong password!"))
        assert status == 422 and "not your password" in again
        status, new_page = await post(http, form.action, form.data(codes_proof=next_code(totp)))
        new_codes = codes_on(new_page)
        assert status == 200 and len(new_codes) == 10 and not set(new_codes) & set(old_codes)
        # Reloading the page of new codes sends the form again, with the password: it makes
        # nothing, and the codes just shown stay the ones that work.
        status, again = await post(http, form.action, form.data(codes_proof=caseworker.password))
        assert status == 200 and "were made already" in again
        assert not set(codes_on(again))
        status, _, _ = await api_session(
            stack.base_url,
            {"email": caseworker.email, "password": caseworker.password, "otp": new_codes[0]},
        )
        assert status == 200
        page = await form_page(http, "/staff/security")
        form = next(f for f in html.forms(page) if f.action.endswith("/remove"))
        status, page = await post(http, form.action, form.data(remove_proof=caseworker.password))
        assert status == 200 and "was removed" in page
    assert await db.fetchval("SELECT count(*) FROM staff_totp") == 0
    assert await db.fetchval("SELECT count(*) FROM staff_recovery_codes") == 0
    actions = {r["action"] for r in await db.fetch("SELECT action FROM audit_log")}
    assert {"recovery_codes_regenerated", "second_factor_removed"} <= actions


async def test_totp_secrets_and_recovery_codes_are_never_at_rest_in_plaintext(
    stack: Stack, db: asyncpg.Connection, enrolled: tuple[StaffAccount, pyotp.TOTP, list[str]]
) -> None:
    account, totp, codes = enrolled
    async with jar_client(stack.base_url) as http:
        await staff_logs_in(http, account.email, account.password)
        await second_step(http, codes[0])
    await api_session(
        stack.base_url,
        {"email": account.email, "password": account.password, "otp": next_code(totp)},
    )
    canaries = {"totp secret": totp.secret, **{f"recovery {i}": c for i, c in enumerate(codes)}}
    server_major = int((await db.fetchval("SHOW server_version")).split(".")[0])
    assert hits(pg_dump(stack.env["DATABASE_URL"], server_major), canaries) == []
    assert hits(redis_dump(stack.env["REDIS_URL"]), canaries) == []
    assert hits(stack.logs(), canaries) == []


async def test_enrolment_works_on_a_phone_and_its_pages_pass_axe(
    stack: Stack, db: asyncpg.Connection, browser: Browser, caseworker: StaffAccount
) -> None:
    auditor = Auditor(browser, stack.base_url)
    for js in (True, False):
        await db.execute("DELETE FROM staff_totp")
        context = await on_a_phone(browser, stack.base_url, js)
        page = await context.new_page()
        try:
            await page.goto("/staff/login")
            await page.fill("#email", caseworker.email)
            await page.fill("#password", caseworker.password)
            await page.click("button:has-text('Log in')")
            await page.goto("/staff/security")
            await auditor.check(page, js)
            await page.click("a:has-text('Set up an authenticator app')")
            await auditor.check(page, js)
            # The QR code fits the phone's width; the key is there as text to type.
            box = await page.locator(".qr svg").bounding_box()
            assert box is not None and 100 <= box["width"] <= 375
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375
            secret = (await page.inner_text("#totp-secret")).replace(" ", "").strip()
            totp = pyotp.TOTP(secret)
            await page.fill("#code", "1")
            await page.click("button:has-text('Turn on')")
            await auditor.check(page, js)  # the page again, with its error
            await page.fill("#code", totp.now())
            await page.click("button:has-text('Turn on')")
            assert "Your recovery codes" in await page.inner_text("h1")
            await auditor.check(page, js)
            await page.click("text=I have saved my codes")
            await page.click("button:has-text('Log out')")
            await page.goto("/staff/login")
            await page.fill("#email", caseworker.email)
            await page.fill("#password", caseworker.password)
            await page.click("button:has-text('Log in')")
            assert "Enter your sign-in code" in await page.inner_text("h1")
            await auditor.check(page, js)
            await page.fill("#code", next_code(totp))
            await page.click("button:has-text('Continue')")
            assert "/staff" in page.url and "sign-in" not in page.url
            await page.goto("/staff/security")
            assert "unused recovery codes" in await page.inner_text("main")
            await auditor.check(page, js)
        finally:
            await context.close()


async def test_two_web_processes_given_the_same_code_at_once_accept_it_once(
    stack: Stack, db: asyncpg.Connection, enrolled: tuple[StaffAccount, pyotp.TOTP, list[str]]
) -> None:
    account, totp, _ = enrolled
    _, second_web = stack.start_web("web-2fa-race")
    body = {"email": account.email, "password": account.password, "otp": next_code(totp)}
    # Four at once: under the five attempts an account has, so none is refused for the limit.
    answers = await asyncio.gather(
        *(api_session(base, body) for base in (stack.base_url, second_web) * 2)
    )
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [200] + [401] * 3
    assert all(problem_type(b) == "second-factor-invalid" for s, b, _ in answers if s == 401)
