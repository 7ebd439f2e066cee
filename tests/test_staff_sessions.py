"""Issue 15: the "Your sessions" page, sign-in notices and personal access tokens, as stories
against the real stack (PostgreSQL, Redis, the Celery worker, the aiosmtpd sink, Chromium)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
from playwright.async_api import Browser

from tests import html
from tests.conftest import SmtpSink, Stack, StaffAccount, add_staff, confide_cli, kick_relay
from tests.journeys import form_page, post, staff_logs_in
from tests.leaks import hits, pg_dump, redis_dump
from tests.test_browser import Auditor, browser, on_a_phone
from tests.test_second_factor import api_session, enrols, jar_client, next_code, second_step

__all__ = ["browser"]  # the session's Chromium (tests/test_browser.py)

SESSIONS = "/staff/sessions"


async def is_signed_in(http: aiohttp.ClientSession) -> bool:
    async with http.get("/staff", allow_redirects=False) as resp:
        return resp.status == 200


def end_forms(page: str) -> list[html.Form]:
    """The sessions page's "Sign out" forms: this browser's first."""
    return [f for f in html.forms(page) if f.action == f"{SESSIONS}/end"]


async def audit(db: asyncpg.Connection, action: str) -> list[dict[str, object]]:
    rows = await db.fetch("SELECT detail FROM audit_log WHERE action = $1 ORDER BY id", action)
    return [json.loads(r["detail"]) for r in rows]


def body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


async def test_a_case_worker_ends_another_browsers_session_and_it_is_signed_out(
    stack: Stack, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    async with jar_client(stack.base_url) as first, jar_client(stack.base_url) as second:
        for http in (first, second):
            status, _ = await staff_logs_in(http, caseworker.email, caseworker.password)
            assert status == 200
        security = await form_page(first, "/staff/security")
        assert f'href="{SESSIONS}"' in security  # linked from "Sign-in and security"
        page = await form_page(first, SESSIONS)
        text = html.text(page)
        assert text.count("This browser") == 1 and text.count("Signed in with") == 2
        assert "Password" in text and "Sign out of all other sessions" in text
        forms = end_forms(page)
        assert len(forms) == 2
        # A post without the session's CSRF token is refused and ends nothing.
        status, _ = await post(first, forms[1].action, {"session": forms[1].fields["session"]})
        assert status in (400, 403)
        assert await is_signed_in(second)
        status, page = await post(first, forms[1].action, forms[1].data())
        assert status == 200 and "was signed out" in page
        assert len(end_forms(page)) == 1
        # The second browser is signed out at its next request; the first is not.
        async with second.get("/staff", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/staff/login"
        assert await is_signed_in(first)
        # The same session again (a second tab): nothing to end, a clear page.
        status, page = await post(first, forms[1].action, forms[1].data())
        assert status == 200 and "had ended already" in page
        # A session id of someone else's, or nonsense, ends nothing of theirs.
        status, _ = await post(first, forms[0].action, forms[0].data(session="not-a-session"))
        assert status == 422
        assert await is_signed_in(first)
        # Signing this browser out from the page is logging out.
        page = await form_page(first, SESSIONS)
        status, _ = await post(first, end_forms(page)[0].action, end_forms(page)[0].data())
        assert status == 200 and not await is_signed_in(first)
    assert await audit(db, "session_ended") == [
        {"by": "self", "scope": "one"},
        {"by": "self", "scope": "one"},
    ]
    # Nothing about the client is kept: no address, no browser.
    columns = {
        r["column_name"]
        for r in await db.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'sessions'"
        )
    }
    assert not {c for c in columns if "ip" in c.split("_") or "agent" in c or "addr" in c}


async def test_a_half_signed_in_browser_is_never_listed(
    stack: Stack, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    async with jar_client(stack.base_url) as first, jar_client(stack.base_url) as second:
        await staff_logs_in(first, caseworker.email, caseworker.password)
        totp, _, _ = await enrols(first)
        status, page = await staff_logs_in(second, caseworker.email, caseworker.password)
        assert "Enter your sign-in code" in page  # the password only: half signed in
        page = await form_page(first, SESSIONS)
        assert len(end_forms(page)) == 1
        assert "Sign out of all other sessions" not in page
        status, _ = await second_step(second, next_code(totp))
        assert status == 200
        page = await form_page(first, SESSIONS)
        assert len(end_forms(page)) == 2
        assert "Password and authenticator code" in html.text(page)


async def test_sign_out_of_all_others_and_an_admin_ends_every_session_of_an_account(
    stack: Stack, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    admin = add_staff(stack, "ada@example.org", "safety", role="admin")
    clients = [jar_client(stack.base_url) for _ in range(3)]
    try:
        for http in clients:
            await staff_logs_in(http, caseworker.email, caseworker.password)
        api_status, api_body, _ = await api_session(
            stack.base_url, {"email": caseworker.email, "password": caseworker.password}
        )
        assert api_status == 200
        page = await form_page(clients[2], SESSIONS)
        assert len(end_forms(page)) == 4  # three browsers and the API sign-in
        form = next(f for f in html.forms(page) if f.action.endswith("/end-others"))
        status, page = await post(clients[2], form.action, form.data())
        assert status == 200 and "All your other sessions were signed out" in page
        assert [await is_signed_in(h) for h in clients] == [False, False, True]
        async with aiohttp.ClientSession(base_url=stack.base_url) as api:
            headers = {"Authorization": f"Bearer {api_body['token']}"}
            async with api.get("/api/v1/staff/threads", headers=headers) as resp:
                assert resp.status == 401
        # An admin ends every session of the account from the admin page.
        for http in clients[:2]:
            await staff_logs_in(http, caseworker.email, caseworker.password)
        async with jar_client(stack.base_url) as admin_http:
            await staff_logs_in(admin_http, admin.email, admin.password)
            page = await form_page(admin_http, "/staff/admin")
            form = next(f for f in html.forms(page) if f.fields.get("action") == "end_sessions")
            status, again = await post(admin_http, form.action, form.data(account_email="x@y.z"))
            assert status == 422 and "No staff member has that address" in again
            status, _ = await post(
                admin_http, form.action, form.data(account_email=caseworker.email)
            )
            assert status == 200
            assert await is_signed_in(admin_http)  # only that account's sessions end
        assert [await is_signed_in(h) for h in clients] == [False, False, False]
        # A case worker cannot do it to anyone.
        await staff_logs_in(clients[0], caseworker.email, caseworker.password)
        status, _ = await post(
            clients[0],
            "/staff/admin",
            form.data(
                account_email=admin.email, csrf_token=_csrf(await form_page(clients[0], SESSIONS))
            ),
        )
        assert status == 403
    finally:
        for http in clients:
            await http.close()
    ended = await audit(db, "session_ended")
    assert ended[0] == {"by": "self", "scope": "others", "count": 3}
    by_admin = ended[-1]
    assert by_admin["by"] == "admin" and by_admin["scope"] == "all" and by_admin["count"] == 3
    row = await db.fetchrow("SELECT staff_id FROM audit_log WHERE detail::jsonb->>'by' = 'admin'")
    assert row["staff_id"] == await db.fetchval(
        "SELECT id FROM staff WHERE email = $1", admin.email
    )


def _csrf(page: str) -> str:
    return next(f.fields["csrf_token"] for f in html.forms(page) if "csrf_token" in f.fields)


def _sign_in_mails(smtp: SmtpSink, to: str) -> list[EmailMessage]:
    return [m for m in smtp.messages if m["To"] == to and "New sign-in" in str(m["Subject"])]


async def test_each_full_sign_in_mails_a_notice_with_time_method_and_link_and_no_address(
    stack: Stack, db: asyncpg.Connection, smtp: SmtpSink, caseworker: StaffAccount
) -> None:
    async with jar_client(stack.base_url) as http:
        await staff_logs_in(http, caseworker.email, caseworker.password)  # password only
        totp, _, _ = await enrols(http)
    before = datetime.now(ZoneInfo("Europe/London"))
    async with jar_client(stack.base_url) as http:
        await staff_logs_in(http, caseworker.email, caseworker.password)
        await asyncio.sleep(1)
        assert await db.fetchval("SELECT count(*) FROM outbox WHERE kind = 'new_sign_in'") == 1
        status, _ = await second_step(http, next_code(totp))  # now fully signed in
        assert status == 200
    status, _, _ = await api_session(
        stack.base_url,
        {"email": caseworker.email, "password": caseworker.password, "otp": str(totp.now())},
    )
    kick_relay(stack)
    smtp.wait_for(lambda m: len(_sign_in_mails(smtp, caseworker.email)) >= 2, timeout=60)
    time.sleep(3)  # anything more would be a duplicate
    mails = _sign_in_mails(smtp, caseworker.email)
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE kind = 'new_sign_in'") == 2 + (
        status == 200
    )
    hows = sorted(body(m).split("How: ")[1].splitlines()[0] for m in mails)
    assert "Password" in hows and "Password and authenticator code" in hows
    for message in mails:
        text = body(message)
        assert f"{stack.settings.base_url}/staff/sessions" in text
        assert f"{before:%B %Y}" in text and "Europe/London" in text
        # No address, no browser: the only "127.0.0.1" is the service's own base URL.
        whole = message.as_string().replace(stack.settings.base_url, "")
        assert "127.0.0.1" not in whole and "localhost" not in whole
        assert "aiohttp" not in whole and "Python" not in whole and "Mozilla" not in whole
    # A worker's retry sends no second mail: each sign-in has one row, sent once.
    kick_relay(stack)
    await asyncio.sleep(2)
    assert len(_sign_in_mails(smtp, caseworker.email)) == len(mails)


async def test_five_wrong_codes_mail_once_that_someone_has_the_password(
    stack: Stack, db: asyncpg.Connection, smtp: SmtpSink, caseworker: StaffAccount
) -> None:
    async with jar_client(stack.base_url) as http:
        await staff_logs_in(http, caseworker.email, caseworker.password)
        await enrols(http)
    creds = {"email": caseworker.email, "password": caseworker.password}
    statuses = [
        (await api_session(stack.base_url, {**creds, "otp": "000000"}))[0] for _ in range(4)
    ]
    assert statuses == [401] * 4
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE kind = 'password_known'") == 0
    statuses = [
        (await api_session(stack.base_url, {**creds, "otp": "000000"}))[0] for _ in range(4)
    ]
    assert statuses == [401, 429, 429, 429]
    async with jar_client(stack.base_url) as http:  # and in a browser, in the same window
        await staff_logs_in(http, caseworker.email, caseworker.password)
        status, _ = await second_step(http, "000000")
        assert status == 429
    kick_relay(stack)

    def told(m: EmailMessage) -> bool:
        return m["To"] == caseworker.email and "has your Confide password" in str(m["Subject"])

    found = smtp.wait_for(told, timeout=60)
    await asyncio.sleep(3)
    assert len([m for m in smtp.messages if told(m)]) == 1 == len(found)
    text = body(found[0])
    assert "entered your Confide password correctly" in text and "5 times" in text
    assert "change your password" in text and "administrator" in text
    assert "127.0.0.1" not in found[0].as_string().replace(stack.settings.base_url, "")


async def test_a_personal_access_token_works_on_the_api_only_until_revoked_or_expired(
    stack: Stack, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    issued = confide_cli(
        stack, "tokens", "issue", "--email", caseworker.email, "--name", "Case export"
    )
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert len(token) >= 43 and "\n" not in token  # 256 random bits, URL-safe base64
    bearer = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base_url=stack.base_url) as api:
        async with api.get("/api/v1/staff/threads", headers=bearer) as resp:
            assert resp.status == 200
            assert "threads" in await resp.json()
        # Not on an HTML page: neither as a Bearer header nor as the staff cookie.
        async with api.get("/staff", headers=bearer, allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/staff/login"
        async with api.get(
            "/staff", headers={"Cookie": f"staff={token}"}, allow_redirects=False
        ) as resp:
            assert resp.status == 303
        async with api.get(SESSIONS, headers=bearer, allow_redirects=False) as resp:
            assert resp.status == 303
    expires = await db.fetchval(
        "SELECT expires_at - created_at FROM sessions WHERE token_name = 'Case export'"
    )
    assert expires.days == 90
    # Listed on the sessions page (not as a session), with its last use, and revoked there.
    async with jar_client(stack.base_url) as http:
        await staff_logs_in(http, caseworker.email, caseworker.password)
        page = await form_page(http, SESSIONS)
        text = html.text(page)
        assert "Case export" in text and "Never" not in text  # it was used just now
        assert len(end_forms(page)) == 1
        # "Sign out of all other sessions" leaves tokens alone.
        async with jar_client(stack.base_url) as elsewhere:
            await staff_logs_in(elsewhere, caseworker.email, caseworker.password)
        page = await form_page(http, SESSIONS)
        form = next(f for f in html.forms(page) if f.action.endswith("/end-others"))
        await post(http, form.action, form.data())
        page = await form_page(http, SESSIONS)
        assert "Case export" in page
        form = next(f for f in html.forms(page) if f.action.endswith("/tokens/revoke"))
        status, page = await post(http, form.action, form.data())
        assert status == 200 and "The token was revoked" in page
        assert "Case export" not in html.text(page)
    async with (
        aiohttp.ClientSession(base_url=stack.base_url) as api,
        api.get("/api/v1/staff/threads", headers=bearer) as resp,
    ):
        assert resp.status == 401
        assert resp.headers["Content-Type"].startswith("application/problem+json")
        assert (await resp.json(content_type=None))["status"] == 401
    # An expired token gets 401 too.
    other = confide_cli(
        stack, "tokens", "issue", "--email", caseworker.email, "--name", "Old", "--expires", "1"
    ).stdout.strip()
    await db.execute(
        "UPDATE sessions SET expires_at = now() - interval '1 minute' WHERE token_name = 'Old'"
    )
    async with (
        aiohttp.ClientSession(base_url=stack.base_url) as api,
        api.get("/api/v1/staff/threads", headers={"Authorization": f"Bearer {other}"}) as resp,
    ):
        assert resp.status == 401
        assert resp.headers["Content-Type"].startswith("application/problem+json")
    issued_rows = await audit(db, "token_issued")
    assert [r["name"] for r in issued_rows] == ["Case export", "Old"]
    assert issued_rows[0]["by"] == "command"
    revoked = await audit(db, "token_revoked")
    assert len(revoked) == 1 and revoked[0]["name"] == "Case export"
    # Never in plaintext at rest: not in a pg_dump, not in Redis, not in the logs.
    canaries = {"token": token, "old token": other}
    server_major = int((await db.fetchval("SHOW server_version")).split(".")[0])
    assert hits(pg_dump(stack.env["DATABASE_URL"], server_major), canaries) == []
    assert hits(redis_dump(stack.env["REDIS_URL"]), canaries) == []
    assert hits(stack.logs(), canaries) == []


async def test_tokens_keep_role_scoping_and_skip_no_rule_but_the_second_factor(
    stack: Stack, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    ops = add_staff(stack, "olu@example.org", "safety", role="ops")
    token = confide_cli(stack, "tokens", "issue", "--email", ops.email, "--name", "ops").stdout
    async with (
        aiohttp.ClientSession(base_url=stack.base_url) as api,
        api.get(
            "/api/v1/staff/threads", headers={"Authorization": f"Bearer {token.strip()}"}
        ) as resp,
    ):
        assert resp.status == 403  # ops sees no thread, by token as by session
    # An account with an authenticator: the token needs no code.
    async with jar_client(stack.base_url) as http:
        await staff_logs_in(http, caseworker.email, caseworker.password)
        await enrols(http)
    issued = confide_cli(stack, "tokens", "issue", "--email", caseworker.email, "--name", "n")
    async with (
        aiohttp.ClientSession(base_url=stack.base_url) as api,
        api.get(
            "/api/v1/staff/threads", headers={"Authorization": f"Bearer {issued.stdout.strip()}"}
        ) as resp,
    ):
        assert resp.status == 200


async def test_tokens_issue_exit_codes(stack: Stack, db: asyncpg.Connection) -> None:
    unknown = confide_cli(stack, "tokens", "issue", "--email", "no@example.org", "--name", "x")
    assert unknown.returncode == 1 and len(unknown.stderr.strip().splitlines()) == 1
    assert unknown.stdout == "" and "Traceback" not in unknown.stderr
    gone = add_staff(stack, "gone@example.org", "safety")
    assert confide_cli(stack, "staff", "disable", "--email", gone.email).returncode == 0
    disabled = confide_cli(stack, "tokens", "issue", "--email", gone.email, "--name", "x")
    assert disabled.returncode == 1 and "disabled" in disabled.stderr
    assert len(disabled.stderr.strip().splitlines()) == 1 and disabled.stdout == ""
    for args in (
        ("--email", gone.email),
        ("--name", "x"),
        ("--email", gone.email, "--name", "x", "--expires", "soon"),
        ("--email", gone.email, "--name", "x", "--expires", "0"),
    ):
        usage = confide_cli(stack, "tokens", "issue", *args)
        assert usage.returncode == 2, args
        assert len(usage.stderr.strip().splitlines()) == 1 and "Traceback" not in usage.stderr
    assert await db.fetchval("SELECT count(*) FROM sessions WHERE token_name IS NOT NULL") == 0


async def test_the_sessions_page_works_on_a_phone_and_passes_axe(
    stack: Stack, db: asyncpg.Connection, browser: Browser, caseworker: StaffAccount
) -> None:
    assert (
        confide_cli(
            stack, "tokens", "issue", "--email", caseworker.email, "--name", "Nightly export"
        ).returncode
        == 0
    )
    auditor = Auditor(browser, stack.base_url)
    for js in (True, False):
        async with jar_client(stack.base_url) as other:
            await staff_logs_in(other, caseworker.email, caseworker.password)
            context = await on_a_phone(browser, stack.base_url, js)
            page = await context.new_page()
            try:
                await page.goto("/staff/login")
                await page.fill("#email", caseworker.email)
                await page.fill("#password", caseworker.password)
                await page.click("button:has-text('Log in')")
                await page.goto("/staff/security")
                await page.click(f"a[href='{SESSIONS}']")
                assert "Your sessions" in await page.inner_text("h1")
                main = await page.inner_text("main")
                assert "This browser" in main and "Nightly export" in main
                await auditor.check(page, js)
                assert await page.evaluate("document.documentElement.scrollWidth") <= 375
                await page.click("button:has-text('Sign out of all other sessions')")
                assert "All your other sessions were signed out" in await page.inner_text("main")
                await auditor.check(page, js)
                assert not await is_signed_in(other)
                await page.click("button:has-text('Revoke')")
                assert "The token was revoked" in await page.inner_text("main")
                await auditor.check(page, js)
                assert await page.evaluate("document.documentElement.scrollWidth") <= 375
            finally:
                await context.close()
        if js:
            assert (
                confide_cli(
                    stack,
                    "tokens",
                    "issue",
                    "--email",
                    caseworker.email,
                    "--name",
                    "Nightly export",
                ).returncode
                == 0
            )
