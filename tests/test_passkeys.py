"""Staff passkeys, as stories in a real Chromium with its virtual authenticator (the DevTools
protocol's WebAuthn domain: a platform authenticator that keeps discoverable credentials and
verifies its user), against the real web, worker, PostgreSQL, Redis and SMTP.

The browser goes to ``http://localhost:PORT`` (CONFIDE_BASE_URL): a relying party id cannot be
an IP address.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qsl

import aiohttp
import asyncpg
import pytest
from playwright.async_api import Browser, BrowserContext, CDPSession, Page, Request, Route

from tests.conftest import ROOT, SmtpSink, Stack, StaffAccount, add_staff, confide_cli
from tests.test_browser import Auditor, browser, on_a_phone

__all__ = ["browser"]  # the session's Chromium (tests/test_browser.py)


def body_of(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    return str(part.get_content()) if part is not None else ""


def local(base: str) -> str:
    """The address a browser uses for passkeys: localhost, never 127.0.0.1."""
    return base.replace("://127.0.0.1:", "://localhost:")


@dataclass
class Phone:
    context: BrowserContext
    page: Page
    cdp: CDPSession
    authenticator: str

    async def credentials(self) -> list[dict[str, object]]:
        result = await self.cdp.send(
            "WebAuthn.getCredentials", {"authenticatorId": self.authenticator}
        )
        found: list[dict[str, object]] = result["credentials"]
        return found


async def authenticator(cdp: CDPSession, transport: str = "internal") -> str:
    """A virtual authenticator that keeps discoverable credentials and verifies its user."""
    added = await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": transport,
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    found: str = added["authenticatorId"]
    return found


async def phone_with_passkeys(browser: Browser, base: str, js: bool = True) -> Phone:
    """A 375 px browser whose platform authenticator verifies its user (a fingerprint)."""
    context = await on_a_phone(browser, local(base), js)
    page = await context.new_page()
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable", {"enableUI": False})
    return Phone(context, page, cdp, await authenticator(cdp))


@pytest.fixture
async def phone(stack: Stack, browser: Browser) -> AsyncIterator[Phone]:
    found = await phone_with_passkeys(browser, stack.base_url)
    try:
        yield found
    finally:
        await found.context.close()


async def logs_in_with_password(page: Page, account: StaffAccount) -> None:
    await page.goto("/staff/login")
    await page.fill("#email", account.email)
    await page.fill("#password", account.password)
    await page.click("button:has-text('Log in')")


async def adds_a_passkey(page: Page, name: str) -> None:
    """Name it and press the button: the browser makes it, then passkeys.js sends the form."""
    await page.fill("#name", name)
    async with page.expect_navigation():
        await page.click("button:has-text('Create a passkey')")


async def fits_the_phone(page: Page) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, page.url


async def logs_out(page: Page) -> None:
    await page.click("button:has-text('Log out')")
    await page.wait_for_url("**/staff/login")


async def test_manager_registers_a_passkey_and_signs_in_with_password_and_passkey(
    stack: Stack, db: asyncpg.Connection, browser: Browser, phone: Phone, smtp: SmtpSink
) -> None:
    manager = add_staff(stack, "mo@example.org", "safety", role="manager")
    auditor = Auditor(browser, local(stack.base_url))
    page = phone.page
    await logs_in_with_password(page, manager)
    await page.goto("/staff/security")
    assert "Passkeys" in await page.inner_text("main")
    await auditor.check(page, True)
    await page.click("a:has-text('Add a passkey')")
    assert await page.inner_text("h1") == "Add a passkey"
    await auditor.check(page, True)
    await fits_the_phone(page)
    await adds_a_passkey(page, "")
    assert "Give the passkey a name" in await page.inner_text("main")  # and nothing was added
    await auditor.check(page, True)
    await adds_a_passkey(page, "Work phone")
    # Its first factor: the ten recovery codes, shown this once.
    assert "Your passkey is set up" in await page.inner_text("main")
    assert await page.locator("#recovery-codes li").count() == 10
    await auditor.check(page, True)
    await fits_the_phone(page)
    assert len(await phone.credentials()) == 1  # a discoverable credential on the "phone"
    await page.click("text=I have saved my codes")
    await logs_out(page)

    # The password alone reaches the second-factor page and nothing else.
    await logs_in_with_password(page, manager)
    assert "/staff/sign-in/second-factor" in page.url
    for path in ("/staff", "/staff/security", "/staff/sessions", "/staff/audit"):
        await page.goto(path)
        assert "/staff/sign-in/second-factor" in page.url, path
    assert "Use a passkey" in await page.inner_text("main")
    await auditor.check(page, True)
    await fits_the_phone(page)
    await page.click("button:has-text('Use a passkey')")
    await page.wait_for_url("**/staff")
    assert "Inbox" in await page.inner_text("nav")
    await page.goto("/staff/sessions")
    assert "Password and passkey" in await page.inner_text("main")
    await page.goto("/staff/security")
    main = await page.inner_text("main")
    assert "Work phone" in main and "Last used" in main
    await auditor.check(page, True)

    methods = await db.fetch("SELECT methods FROM sessions WHERE pending_step IS NULL")
    assert ["password", "passkey"] in [list(r["methods"]) for r in methods]
    row = await db.fetchrow("SELECT name, sign_count, last_used_at FROM staff_passkeys")
    assert row["name"] == "Work phone" and row["last_used_at"] is not None
    actions = [r["action"] for r in await db.fetch("SELECT action FROM audit_log")]
    assert "passkey_registered" in actions
    mails = smtp.wait_for(
        lambda m: manager.email in str(m["To"]) and "Password and passkey" in body_of(m)
    )
    assert "http://localhost:" in body_of(mails[0])  # CONFIDE_BASE_URL, never an IP address
    # No secret in the audit: the detail names the passkey's public id only.
    detail = json.loads(
        await db.fetchval("SELECT detail FROM audit_log WHERE action = 'passkey_registered'")
    )
    assert set(detail) == {"passkey_id"}


def passkey_org(tmp_path: Path, *extra: str) -> Path:
    org = (ROOT / "confide" / "data" / "demo-org.toml").read_text()
    org_file = tmp_path / "org.toml"
    org_file.write_text(org.replace("closure_days = []", "\n".join(["closure_days = []", *extra])))
    return org_file


Form = dict[str, str | float | bool]


async def recorded(page: Page, path: str) -> list[Form]:
    """The forms this page posts to ``path``, as sent (to send one again later)."""
    sent: list[Form] = []

    async def keep(route: Route, request: Request) -> None:
        sent.append(dict(parse_qsl(request.post_data or "")))
        await route.continue_()

    await page.route(f"**{path}", keep)
    return sent


async def test_manager_who_must_enrol_adds_a_passkey_then_signs_in_without_a_password(
    stack: Stack, db: asyncpg.Connection, browser: Browser, tmp_path: Path
) -> None:
    org_file = passkey_org(
        tmp_path, 'require_second_factor = ["manager"]', "passkey_sign_in = true"
    )
    _, base = stack.start_web("web-passkeys", CONFIDE_ORG_FILE=str(org_file))
    manager = add_staff(stack, "mo@example.org", "safety", role="manager")
    auditor = Auditor(browser, local(base))
    phone = await phone_with_passkeys(browser, base)
    page = phone.page
    try:
        await page.goto("/staff/login")
        assert "Sign in with a passkey" in await page.inner_text("main")
        await auditor.check(page, True)
        await fits_the_phone(page)
        # The enrolment a must-enrol account is sent to offers a passkey as well as an app.
        await logs_in_with_password(page, manager)
        assert "/staff/security/authenticator" in page.url
        await page.click("a:has-text('Use a passkey instead')")
        assert "asks everyone in your role" in await page.inner_text("main")
        await auditor.check(page, True)
        await adds_a_passkey(page, "Laptop")
        assert await page.locator("#recovery-codes li").count() == 10
        await page.click("text=I have saved my codes")
        await page.wait_for_url("**/staff")
        await logs_out(page)

        # No e-mail address, no password: the passkey alone (it verified its user).
        sent = await recorded(page, "/staff/login/passkey")
        await page.goto("/staff/login")
        await page.click("button:has-text('Sign in with a passkey')")
        await page.wait_for_url("**/staff")
        await page.goto("/staff/sessions")
        assert "Passkey" in await page.inner_text("main")
        assert [list(r["methods"]) for r in await db.fetch("SELECT methods FROM sessions")] == [
            ["passkey"]
        ]

        # The same assertion sent again, from the same browser: its challenge was spent.
        assert len(sent) == 1 and sent[0]["credential"]
        replay = await phone.context.request.post(
            "/staff/login/passkey", form=sent[0], max_redirects=0
        )
        assert replay.status == 401
        assert "could not sign you in" in await replay.text()
        assert await db.fetchval("SELECT count(*) FROM sessions") == 1
        failed = await db.fetch("SELECT detail FROM audit_log WHERE action = 'passkey_failed'")
        assert [json.loads(r["detail"]) for r in failed] == [{"ceremony": "sign_in"}]
    finally:
        await phone.context.close()


async def test_passwordless_sign_in_is_refused_where_the_organisation_does_not_allow_it(
    stack: Stack, db: asyncpg.Connection, phone: Phone
) -> None:
    page = phone.page
    await page.goto("/staff/login")
    assert "passkey" not in (await page.inner_text("main")).lower()
    for path in ("/staff/login/passkey/options", "/staff/login/passkey"):
        answer = await phone.context.request.post(path, form={"credential": "{}"})
        assert answer.status in (400, 403), path
    assert await db.fetchval("SELECT count(*) FROM sessions") == 0
    assert await db.fetchval("SELECT count(*) FROM webauthn_challenges") == 0


async def test_a_replayed_second_step_is_refused(
    stack: Stack, db: asyncpg.Connection, phone: Phone
) -> None:
    caseworker = add_staff(stack, "casey@example.org", "safety")
    page = phone.page
    await logs_in_with_password(page, caseworker)
    await page.goto("/staff/security/passkeys/new")
    await adds_a_passkey(page, "Phone")
    await page.click("text=I have saved my codes")
    await logs_out(page)
    await logs_in_with_password(page, caseworker)
    sent = await recorded(page, "/staff/sign-in/passkey")
    await page.click("button:has-text('Use a passkey')")
    await page.wait_for_url("**/staff")
    await logs_out(page)
    # Someone who has the password, and a copy of that assertion, signs in again and sends it.
    await logs_in_with_password(page, caseworker)
    assert "/staff/sign-in/second-factor" in page.url
    await page.unroute("**/staff/sign-in/passkey")
    fresh: Form = dict(sent[0])
    fresh["form_token"] = await page.input_value(
        "form[action='/staff/sign-in/passkey'] input[name=form_token]"
    )
    replay = await phone.context.request.post("/staff/sign-in/passkey", form=fresh)
    assert replay.status == 401
    await page.goto("/staff")
    assert "/staff/sign-in/second-factor" in page.url  # still only half signed in
    # And the authenticator's counter was checked: a stale one is refused too.
    assert await db.fetchval("SELECT sign_count FROM staff_passkeys") >= 1


async def test_caseworker_removes_a_passkey_with_proof_and_reset_removes_the_rest(
    stack: Stack, db: asyncpg.Connection, browser: Browser, phone: Phone
) -> None:
    caseworker = add_staff(stack, "casey@example.org", "safety")
    auditor = Auditor(browser, local(stack.base_url))
    page = phone.page
    await logs_in_with_password(page, caseworker)
    await page.goto("/staff/security/passkeys/new")
    await adds_a_passkey(page, "Phone")
    # The phone's authenticator holds one already (the page excludes it): a security key now.
    await phone.cdp.send(
        "WebAuthn.removeVirtualAuthenticator", {"authenticatorId": phone.authenticator}
    )
    phone.authenticator = await authenticator(phone.cdp, "usb")
    await page.goto("/staff/security/passkeys/new")
    await adds_a_passkey(page, "Security key")
    assert await db.fetchval("SELECT count(*) FROM staff_passkeys") == 2
    assert await db.fetchval("SELECT count(*) FROM staff_recovery_codes") == 10  # made once
    assert "Your passkey was added" in await page.inner_text("main")  # the second: no codes
    first = await db.fetchval("SELECT public_id FROM staff_passkeys WHERE name = 'Phone'")
    field = f"#passkey_proof_{first}"
    await page.fill(field, "not my password")
    await page.click(f"form:has({field}) button:has-text('Remove this passkey')")
    assert "That is not your password" in await page.inner_text("main")
    await auditor.check(page, True)
    await fits_the_phone(page)
    await page.fill(field, caseworker.password)
    await page.click(f"form:has({field}) button:has-text('Remove this passkey')")
    assert "Your passkey was removed" in await page.inner_text("main")
    assert [r["name"] for r in await db.fetch("SELECT name FROM staff_passkeys")] == [
        "Security key"
    ]
    assert await db.fetchval("SELECT count(*) FROM staff_recovery_codes") == 10  # one is left

    result = confide_cli(stack, "staff", "reset-second-factor", "--email", caseworker.email)
    assert result.returncode == 0, result.stderr
    assert await db.fetchval("SELECT count(*) FROM staff_passkeys") == 0
    assert await db.fetchval("SELECT count(*) FROM staff_recovery_codes") == 0
    detail = json.loads(
        await db.fetchval("SELECT detail FROM audit_log WHERE action = 'second_factor_reset'")
    )
    assert detail["passkeys"] == 1 and detail["recovery_codes"] == 10
    removed = await db.fetchval("SELECT detail FROM audit_log WHERE action = 'passkey_removed'")
    assert json.loads(removed) == {"passkey_id": str(first), "by": "self"}
    await page.goto("/staff")
    assert "/staff/login" in page.url  # the reset ended its sessions


async def test_passkey_pages_say_javascript_is_needed_and_pass_axe_without_it(
    stack: Stack, db: asyncpg.Connection, browser: Browser
) -> None:
    caseworker = add_staff(stack, "casey@example.org", "safety")
    auditor = Auditor(browser, stack.base_url)
    context = await on_a_phone(browser, stack.base_url, js=False)
    page = await context.new_page()
    try:
        await logs_in_with_password(page, caseworker)
        await page.goto("/staff/security")
        assert "need JavaScript" in await page.inner_text("main")
        await auditor.check(page, False)
        await page.goto("/staff/security/passkeys/new")
        main = await page.inner_text("main")
        assert "Passkeys need JavaScript" in main
        assert not await page.locator("form[data-passkey]").is_visible()
        await auditor.check(page, False)
        await fits_the_phone(page)
    finally:
        await context.close()
    async with (
        aiohttp.ClientSession(base_url=stack.base_url) as http,
        http.get("/static/passkeys.js") as resp,
    ):
        assert resp.status == 200 and "navigator.credentials" in await resp.text()
