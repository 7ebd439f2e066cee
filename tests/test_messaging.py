"""Two-way messaging: reporters log back in with their code; case workers answer (issue 4)."""

from __future__ import annotations

import asyncio
import secrets

import aiohttp
import asyncpg

from tests import html, leaks
from tests.conftest import Proc, Stack, StaffAccount, add_staff, confide_cli
from tests.journeys import (
    form_page,
    post,
    reporter_logs_in,
    reporter_logs_out,
    reporter_sends,
    reporter_submits,
    staff_acts,
    staff_logs_in,
)


def canary(label: str) -> str:
    return f"CANARY{label.upper()}{secrets.token_hex(6).upper()}"


def client(stack: Stack, source: str = "127.0.0.1") -> aiohttp.ClientSession:
    """A browser-like client; ``source`` picks a distinct loopback address (another person)."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    return aiohttp.ClientSession(
        base_url=stack.base_url, connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)
    )


async def reference_in(page: str) -> list[str]:
    import re

    return re.findall(r'href="/staff/threads/(R-[0-9A-Z]{8})"', page)


async def test_reporter_and_caseworker_hold_a_conversation(
    stack: Stack, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    words, reply, answer, note = (canary(x) for x in ("report", "reply", "answer", "note"))
    async with client(stack) as reporter:
        sent = await reporter_submits(reporter, f"Broken fire door. {words}")
        assert sent.code
        assert sent.reference is not None
        status, page = await reporter_logs_in(reporter, sent.code)
        assert status == 200 and "Your report" in html.title(page)
        assert "No one has replied yet" in page
        status, page = await reporter_logs_out(reporter)
        assert "You have logged out" in page
        async with reporter.get("/messages", allow_redirects=False) as resp:
            assert resp.status == 303  # the session is gone server-side

    async with client(stack) as staff:
        status, page = await staff_logs_in(staff, caseworker.email, caseworker.password)
        assert status == 200 and "Team inbox" in page
        assert await reference_in(page) == [sent.reference]  # under "awaiting reply"
        status, page = await staff_acts(staff, sent.reference, "reply", body=f"Thanks. {reply}")
        assert status == 200 and reply in page
        status, page = await staff_acts(staff, sent.reference, "note", note=f"Checked. {note}")
        assert note in page
        page = await form_page(staff, "/staff?state=awaiting")
        assert await reference_in(page) == []

    async with client(stack) as reporter:
        typed = sent.code.lower().replace("-", " ")
        status, page = await reporter_logs_in(reporter, typed)
        assert status == 200 and reply in page and "Case worker" in page
        assert note not in page and caseworker.email not in page
        assert "Casey" not in page  # no staff names unless the organisation turns that on
        status, page = await reporter_sends(reporter, f"It is still broken. {answer}")
        assert status == 200 and "Your message was sent" in page and answer in page

    async with client(stack) as staff:
        await staff_logs_in(staff, caseworker.email, caseworker.password)
        page = await form_page(staff, "/staff?state=awaiting")
        assert await reference_in(page) == [sent.reference]

    # Messages and notes are encrypted at rest, and nothing leaks anywhere.
    rows = await db.fetch("SELECT body FROM messages UNION ALL SELECT body FROM notes")
    assert len(rows) == 3 and all(reply.encode() not in bytes(r["body"]) for r in rows)
    await asyncio.sleep(0.5)
    server_major = int(await db.fetchval("SHOW server_version_num")) // 10000
    secrets_ = {
        "report": words,
        "reply": reply,
        "answer": answer,
        "note": note,
        "code": sent.code,
        "password": caseworker.password,
    }
    for sink, content in {
        "pg_dump": leaks.pg_dump(stack.env["DATABASE_URL"], server_major),
        "redis": leaks.redis_dump(stack.env["REDIS_URL"]),
        "logs": stack.logs(),
    }.items():
        assert leaks.hits(content, secrets_) == [], sink
    assert "127.0.0.1" not in stack.web.log_text()
    audit = await db.fetch("SELECT action FROM audit_log ORDER BY id")
    assert {"view", "reply", "note"} <= {r["action"] for r in audit}


async def test_inbox_rows_change_as_soon_as_their_thread_does(
    stack: Stack, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    """Inbox rows are rendered once a minute (webapp.categories.InboxRows); a change to what a
    row shows is a new row at once, and the filter links still point at the same page."""
    async with client(stack) as reporter:
        sent = await reporter_submits(reporter, "The lab door does not lock.")
    assert sent.reference is not None
    async with client(stack) as staff:
        await staff_logs_in(staff, caseworker.email, caseworker.password)
        page = await form_page(staff, "/staff?state=open")
        row = _row(page, sent.reference)
        assert "Casey" not in row and "Restricted" not in row and "closed" not in row
        await staff_acts(staff, sent.reference, "assign", email=caseworker.email)
        row = _row(await form_page(staff, "/staff?state=open"), sent.reference)
        assert "Casey" in row  # the assignee's name, at once
        await staff_acts(staff, sent.reference, "status", status="closed")
        row = _row(await form_page(staff, "/staff?state=closed"), sent.reference)
        assert "Closed" in row  # a word, not the status code


def _row(page: str, reference: str) -> str:
    start = page.index(f'href="/staff/threads/{reference}"')
    return page[start : page.index("</tr>", start)]


async def test_a_used_session_stays_alive_and_an_idle_one_ends(
    stack: Stack, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    """Each request restarts the idle clock, but writes the session row at most every 15 s."""
    async with client(stack) as staff:
        await staff_logs_in(staff, caseworker.email, caseworker.password)
        await db.execute("UPDATE sessions SET last_seen_at = now() - interval '10 minutes'")
        page = await form_page(staff, "/staff?state=open")
        assert "Team inbox" in page
        seen = await db.fetchval("SELECT last_seen_at FROM sessions")
        assert await db.fetchval("SELECT now() - $1::timestamptz < interval '5 seconds'", seen)
        await form_page(staff, "/staff?state=open")
        assert await db.fetchval("SELECT last_seen_at FROM sessions") == seen  # not rewritten
        await db.execute("UPDATE sessions SET last_seen_at = now() - interval '31 minutes'")
        async with staff.get("/staff?state=open", allow_redirects=False) as resp:
            assert resp.status in (302, 303)  # the idle timeout (30 minutes) has passed


async def test_wrong_and_malformed_codes_get_their_own_messages(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    sent = await reporter_submits(http, "Anything")
    assert sent.code
    status, page = await reporter_logs_in(http, "12345")
    assert status == 422 and "Codes have 16 letters and numbers" in page
    assert html.title(page).startswith("Error:")
    wrong = ("0" if sent.code[0] != "0" else "1") + sent.code[1:]
    status, page = await reporter_logs_in(http, wrong)
    assert status == 401 and "That code was not recognised" in page
    wrong_secret = sent.code[:-1] + ("0" if sent.code[-1] != "0" else "1")
    status, page2 = await reporter_logs_in(http, wrong_secret)
    assert status == 401 and html.text(page2) == html.text(page)  # reveals nothing

    async with http.post("/api/v1/reporter/session", json={"code": "x"}) as resp:
        assert resp.status == 422 and resp.content_type == "application/problem+json"
    async with http.post("/api/v1/reporter/session", json={"code": wrong}) as resp:
        assert resp.status == 401


async def test_a_flood_of_wrong_codes_is_limited_but_a_genuine_reporter_gets_in(
    stack: Stack, db: asyncpg.Connection
) -> None:
    web, base = stack.start_web("web-login-limits", CONFIDE_LOGIN_PER_CLIENT_PER_15MIN="10")
    limited = Stack(stack.env, stack.settings, base, web, stack.worker, stack.beat, stack.artifacts)
    async with (
        client(stack, "127.0.0.2") as reporter,
        reporter.post(
            "/api/v1/reports",
            json={
                "category": "safety",
                "description": "genuine",
                "anonymous": True,
                "follow_up": True,
            },
        ) as resp,
    ):
        code = (await resp.json())["code"]
    statuses = []
    async with client(limited, "127.0.0.3") as attacker:
        for _ in range(14):
            guess = "".join(secrets.choice("0123456789ABCDEFGHJKMNPQRSTVWXYZ") for _ in range(16))
            async with attacker.post("/api/v1/reporter/session", json={"code": guess}) as resp:
                statuses.append(resp.status)
                if resp.status == 429:
                    assert int(resp.headers["Retry-After"]) > 0
    assert statuses[:10] == [401] * 10 and set(statuses[10:]) == {429}
    async with (
        client(limited, "127.0.0.4") as genuine,
        genuine.post("/api/v1/reporter/session", json={"code": code}) as resp,
    ):
        assert resp.status == 200
        assert (await resp.json())["token"]
    # No client address in PostgreSQL, Redis or the logs.
    server_major = int(await db.fetchval("SHOW server_version_num")) // 10000
    for content in (
        leaks.pg_dump(stack.env["DATABASE_URL"], server_major),
        leaks.redis_dump(stack.env["REDIS_URL"]),
        stack.web.log_text(),
    ):
        for address in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
            assert address not in content


async def test_reporter_token_reads_only_its_own_report(http: aiohttp.ClientSession) -> None:
    tokens, references = [], []
    for text in ("first report", "second report"):
        async with http.post(
            "/api/v1/reports",
            json={
                "category": "safety",
                "description": text,
                "anonymous": True,
                "follow_up": True,
            },
        ) as resp:
            body = await resp.json()
        references.append(body["reference"])
        async with http.post("/api/v1/reporter/session", json={"code": body["code"]}) as resp:
            tokens.append((await resp.json())["token"])
    for token, reference in zip(tokens, references, strict=True):
        async with http.get(
            "/api/v1/reporter/thread", headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            body = await resp.json()
        assert body["reference"] == reference
    async with http.post(
        "/api/v1/reporter/messages",
        json={"body": "hello"},
        headers={"Authorization": f"Bearer {tokens[0]}", "Idempotency-Key": "reporter-key-0001"},
    ) as resp:
        assert resp.status == 201
    async with http.post(
        "/api/v1/reporter/messages",
        json={"body": "hello"},
        headers={"Authorization": f"Bearer {tokens[0]}", "Idempotency-Key": "reporter-key-0001"},
    ) as resp:
        assert resp.status == 200  # a repeat: the same receipt, one message (CONTRACTS §3)
    async with http.get(
        "/api/v1/reporter/thread", headers={"Authorization": f"Bearer {tokens[0]}"}
    ) as resp:
        assert [m["body"] for m in (await resp.json())["messages"]] == ["hello"]
    async with http.delete(
        "/api/v1/reporter/session", headers={"Authorization": f"Bearer {tokens[0]}"}
    ) as resp:
        assert resp.status == 204
    async with http.get(
        "/api/v1/reporter/thread", headers={"Authorization": f"Bearer {tokens[0]}"}
    ) as resp:
        assert resp.status == 401


async def test_teams_and_restriction_decide_who_sees_a_thread(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    safety = add_staff(stack, "sam@example.org", "safety")
    other = add_staff(stack, "olu@example.org", "safety")
    hr = add_staff(stack, "harper@example.org", "hr")
    manager = add_staff(stack, "mo@example.org", "safety", role="manager")
    async with http.post(
        "/api/v1/reports",
        json={
            "category": "safety",
            "description": "about a colleague",
            "anonymous": True,
            "follow_up": True,
        },
    ) as resp:
        reference = (await resp.json())["reference"]

    async def api_token(account: StaffAccount) -> dict[str, str]:
        async with http.post(
            "/api/v1/staff/session", json={"email": account.email, "password": account.password}
        ) as resp:
            assert resp.status == 200
            return {"Authorization": f"Bearer {(await resp.json())['token']}"}

    headers = {a.email: await api_token(a) for a in (safety, other, hr, manager)}
    async with http.get(f"/api/v1/staff/threads/{reference}", headers=headers[hr.email]) as resp:
        assert resp.status == 404  # team B cannot see team A's thread
    async with client(stack) as browser:
        await staff_logs_in(browser, hr.email, hr.password)
        async with browser.get(f"/staff/threads/{reference}") as resp:
            assert resp.status == 404
    # Assign to Sam, then the manager restricts it: Olu (same team) no longer sees it.
    async with http.post(
        f"/api/v1/staff/threads/{reference}/assignee",
        json={"email": safety.email},
        headers=headers[other.email],
    ) as resp:
        assert resp.status == 200
    async with http.post(
        f"/api/v1/staff/threads/{reference}/restricted",
        json={"restricted": True},
        headers=headers[other.email],
    ) as resp:
        assert resp.status == 403  # only managers restrict
    async with client(stack) as browser:
        await staff_logs_in(browser, manager.email, manager.password)
        status, page = await staff_acts(browser, reference, "restrict", restricted="1")
        assert status == 200 and "restricted to the assignee and managers" in page
    for account, expected in ((safety, 200), (manager, 200), (other, 404), (hr, 404)):
        async with http.get(
            f"/api/v1/staff/threads/{reference}", headers=headers[account.email]
        ) as resp:
            assert resp.status == expected, account.email
        async with http.get(
            "/api/v1/staff/threads?state=open", headers=headers[account.email]
        ) as resp:
            listed = [t["reference"] for t in (await resp.json())["threads"]]
            assert (reference in listed) == (expected == 200), account.email
    async with client(stack) as browser:
        await staff_logs_in(browser, other.email, other.password)
        async with browser.get(f"/staff/threads/{reference}") as resp:
            assert resp.status == 404 and "Page not found" in await resp.text()


async def test_teams_and_categories_with_reports_are_retired_never_deleted(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    """Threads have no row-locking foreign keys to teams and categories (they made submissions
    queue on multixacts); guard triggers keep the same promise."""
    async with http.post(
        "/api/v1/reports",
        json={
            "category": "safety",
            "description": "a report",
            "anonymous": True,
            "follow_up": False,
        },
    ) as resp:
        assert resp.status == 201
    team_id = await db.fetchval("SELECT team_id FROM categories WHERE slug = 'safety'")
    for statement in (
        "DELETE FROM categories WHERE slug = 'safety'",
        "UPDATE categories SET slug = 'safety-renamed' WHERE slug = 'safety'",
        f"DELETE FROM teams WHERE id = {int(team_id)}",
        f"UPDATE teams SET id = id + 1000 WHERE id = {int(team_id)}",
    ):
        try:
            async with db.transaction():
                await db.execute(statement)
        except asyncpg.ForeignKeyViolationError as exc:
            assert "threads" in str(exc) or "retire" in str(exc)
        else:
            raise AssertionError(f"allowed: {statement}")
    assert await db.fetchval("SELECT count(*) FROM threads WHERE category_slug = 'safety'") == 1

    # A team nobody reported to can go, and its queued mail goes with it (as ON DELETE CASCADE).
    async with db.transaction():
        spare = await db.fetchval(
            "INSERT INTO teams (slug, name) VALUES ('spare', 'Spare') RETURNING id"
        )
        await db.execute(
            "INSERT INTO categories (slug, name, team_id) VALUES ('spare-cat', 'Spare', $1)", spare
        )
        await db.execute(
            "INSERT INTO outbox (id, kind, team_id) VALUES (gen_random_uuid(), 'digest', $1)",
            spare,
        )
    await db.execute("DELETE FROM categories WHERE slug = 'spare-cat'")
    await db.execute("DELETE FROM teams WHERE id = $1", spare)
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE team_id = $1", spare) == 0


async def test_forged_posts_and_logout_without_csrf_are_refused(
    stack: Stack, caseworker: StaffAccount
) -> None:
    async with client(stack) as browser:
        await staff_logs_in(browser, caseworker.email, caseworker.password)
        async with browser.post("/staff/logout", data={"csrf_token": "forged"}) as resp:
            assert resp.status == 403
        async with browser.post(
            "/staff/logout", data={}, headers={"Origin": "https://evil.example"}
        ) as resp:
            assert resp.status == 403
        async with browser.get("/staff") as resp:
            assert resp.status == 200 and "Team inbox" in await resp.text()  # still logged in
        sent = await reporter_submits(browser, "for csrf")
        async with browser.post(
            f"/staff/threads/{sent.reference}/note", data={"note": "x"}
        ) as resp:
            assert resp.status == 403
        page = await form_page(browser, "/staff")
        form = next(f for f in html.forms(page) if f.action == "/staff/logout")
        _status, page = await post(browser, form.action, form.fields)
        assert "Case worker log in" in page
    async with client(stack) as reporter:
        assert sent.code
        await reporter_logs_in(reporter, sent.code)
        async with reporter.post("/logout", data={"csrf_token": "nope"}) as resp:
            assert resp.status == 403
        async with reporter.post("/messages", data={"body": "x", "csrf_token": "nope"}) as resp:
            assert resp.status == 403


async def test_message_typed_while_the_session_expired_is_sent_after_logging_in(
    stack: Stack, db: asyncpg.Connection
) -> None:
    async with client(stack) as reporter:
        sent = await reporter_submits(reporter, "expiry")
        assert sent.code
        await reporter_logs_in(reporter, sent.code)
        page = await form_page(reporter, "/messages")
        form = next(f for f in html.forms(page) if f.action == "/messages")
        await db.execute("DELETE FROM sessions")  # the idle timeout passed meanwhile
        status, page = await post(reporter, "/messages", form.data(body="Words I typed slowly"))
        assert status == 401 and "has not been sent yet" in page
        assert "Words I typed slowly" in page  # carried in the login form
        form = html.main_form(page)
        status, page = await post(reporter, form.action, form.data(code=sent.code))
        assert status == 200 and "Your message was sent" in page
        assert "Words I typed slowly" in page
        # A refresh of the same submission does not send it twice.
        await post(reporter, form.action, form.data(code=sent.code))
    assert await db.fetchval("SELECT count(*) FROM messages") == 1


async def test_message_accepted_while_every_worker_is_down_is_kept(
    stack: Stack, db: asyncpg.Connection, worker: Proc
) -> None:
    async with client(stack) as reporter:
        sent = await reporter_submits(reporter, "before the outage")
        assert sent.code
        worker.stop()
        status, page = await reporter_logs_in(reporter, sent.code)  # local argon2 fallback
        assert status == 200
        status, page = await reporter_sends(reporter, "during the outage")
        assert status == 200 and "during the outage" in page
    assert await db.fetchval("SELECT count(*) FROM messages") == 1


async def test_session_cookies_are_strict_and_renewed_at_each_login(
    stack: Stack, caseworker: StaffAccount
) -> None:
    async with aiohttp.ClientSession(base_url=stack.base_url) as http:
        cookies = []
        for _ in range(2):
            page = await form_page(http, "/staff/login")
            form = html.main_form(page)
            async with http.post(
                form.action,
                allow_redirects=False,
                data=form.data(email=caseworker.email, password=caseworker.password),
            ) as resp:
                cookie = resp.headers["Set-Cookie"]
                cookies.append(cookie.split(";")[0])
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert cookies[0] != cookies[1]
    _, base = stack.start_web("web-tls", CONFIDE_TRUST_PROXY="1")
    async with aiohttp.ClientSession(base_url=base, headers={"X-Forwarded-Proto": "https"}) as http:
        page = await form_page(http, "/staff/login")
        form = html.main_form(page)
        async with http.post(
            form.action,
            allow_redirects=False,
            data=form.data(email=caseworker.email, password=caseworker.password),
        ) as resp:
            cookie = resp.headers["Set-Cookie"]
            assert resp.headers["Strict-Transport-Security"].startswith("max-age=31536000")
        assert cookie.startswith("__Host-staff=") and "Secure" in cookie


async def test_admin_and_audit_pages_are_for_their_roles(
    stack: Stack, caseworker: StaffAccount
) -> None:
    admin = add_staff(stack, "ada@example.org", "safety", role="admin")
    async with client(stack) as browser:
        await staff_logs_in(browser, caseworker.email, caseworker.password)
        for path in ("/staff/admin", "/staff/audit"):
            async with browser.get(path) as resp:
                assert resp.status == 403
    async with client(stack) as browser:
        await staff_logs_in(browser, admin.email, admin.password)
        page = await form_page(browser, "/staff/admin")
        form = next(f for f in html.forms(page) if f.fields.get("action") == "team")
        status, page = await post(
            browser,
            form.action,
            form.data(team_slug="estates", team_name="Estates", team_email="estates@example.org"),
        )
        assert status == 200 and "Estates" in page
        form = next(f for f in html.forms(page) if "member_email" in f.fields)
        status, page = await post(
            browser,
            form.action,
            form.data(member_email=caseworker.email, member_team="estates", action="join"),
        )
        assert "estates, safety" in page
        page = await form_page(browser, "/staff/audit")
        assert "Changed a team" in page and "Added a member to a team" in page
        assert "admin_join" not in page  # words, not the stored code
    result = confide_cli(stack, "teams", "list")
    assert "estates" in result.stdout.split()


async def test_admin_cannot_add_a_malformed_team_nor_put_ops_in_one(
    stack: Stack, db: asyncpg.Connection
) -> None:
    admin = add_staff(stack, "ada@example.org", "safety", role="admin")
    ops = add_staff(stack, "olly@example.org", "", role="ops")
    async with client(stack) as browser:
        await staff_logs_in(browser, admin.email, admin.password)
        page = await form_page(browser, "/staff/admin")
        form = next(f for f in html.forms(page) if f.fields.get("action") == "team")
        status, page = await post(
            browser, form.action, form.data(team_slug="Not a slug", team_name="Odd", team_email="")
        )
        # The error sits next to the field that was wrong.
        assert status == 422 and 'id="team_slug-error"' in page
        assert "Use lower-case letters, digits and hyphens" in page
        form = next(f for f in html.forms(page) if "member_email" in f.fields)
        status, page = await post(
            browser,
            form.action,
            form.data(member_email=ops.email, member_team="safety", action="join"),
        )
        assert status == 422 and 'id="member_email-error"' in page
        assert "Ops accounts belong to no team" in page
    assert await db.fetchval("SELECT count(*) FROM teams WHERE name = 'Odd'") == 0
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action LIKE 'admin_%'") == 0


async def test_staff_accounts_are_managed_from_the_command_line(
    stack: Stack, http: aiohttp.ClientSession, caseworker: StaffAccount
) -> None:
    result = confide_cli(
        stack,
        "staff",
        "add",
        "--email",
        "x@example.org",
        "--name",
        "X",
        "--team",
        "nope",
        stdin="a long enough password\n",
    )
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    result = confide_cli(
        stack,
        "staff",
        "add",
        "--email",
        "y@example.org",
        "--name",
        "Y",
        "--team",
        "safety",
        stdin="short\n",
    )
    assert result.returncode == 1 and "at least 12" in result.stderr
    result = confide_cli(stack, "staff", "reset", "--email", caseworker.email)
    assert result.returncode == 0
    link = result.stdout.strip()
    path = link[link.index("/staff/set-password") :]
    page = await form_page(http, path)
    form = html.main_form(page)
    status, page = await post(
        http, form.action, form.data(new="a brand new password", confirm="a brand new password")
    )
    assert status == 200 and "Case worker log in" in page
    status, page = await post(
        http, form.action, form.data(new="another new password", confirm="another new password")
    )
    assert status == 422 and "expired or was already used" in page
    status, _page = await staff_logs_in(http, caseworker.email, "a brand new password")
    assert status == 200
    result = confide_cli(stack, "staff", "disable", "--email", caseworker.email)
    assert result.returncode == 0
    async with http.get("/staff", allow_redirects=False) as resp:
        assert resp.status == 303  # disabling ended the session
    status, _page = await staff_logs_in(http, caseworker.email, "a brand new password")
    assert status == 401


async def test_staff_change_their_password_with_the_current_one(
    stack: Stack, caseworker: StaffAccount
) -> None:
    async with client(stack) as browser:
        await staff_logs_in(browser, caseworker.email, caseworker.password)
        page = await form_page(browser, "/staff/password")
        form = html.main_form(page)
        status, page = await post(
            browser,
            form.action,
            form.data(current="not it at all", new="twelve chars ok", confirm="twelve chars ok"),
        )
        assert status == 422 and "current password is not right" in page
        status, page = await post(
            browser,
            form.action,
            form.data(
                current=caseworker.password, new="twelve chars ok", confirm="twelve chars ok"
            ),
        )
        assert status == 200 and "Your password was changed" in page


async def test_inbox_counts_are_counted_once_when_many_pages_load_at_the_same_moment() -> None:
    """A manager's filter counts cover every thread of their teams: when they expire while many
    inbox pages load, one query counts them and the other pages wait for it."""
    from webapp.categories import InboxCounts

    calls = 0

    async def count() -> dict[str, int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return {"awaiting": calls}

    counts = InboxCounts(ttl_s=60)
    pages = await asyncio.gather(*(counts.get(("manager", 1), count) for _ in range(20)))
    assert calls == 1 and all(page == {"awaiting": 1} for page in pages)
    assert await counts.get(("manager", 1), count) == {"awaiting": 1}  # still fresh

    async def failing() -> dict[str, int]:
        await asyncio.sleep(0.01)
        raise ConnectionError("database away")

    results = await asyncio.gather(
        *(counts.get("other", failing) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, ConnectionError) for r in results)
    assert await counts.get("other", count) == {"awaiting": 2}  # a failure is not remembered

    # Expired counts are served at once while one recount runs behind them.
    values = iter(range(100, 200))
    recounts = 0

    async def recount() -> dict[str, int]:
        nonlocal recounts
        recounts += 1
        await asyncio.sleep(0.05)
        return {"awaiting": next(values)}

    stale = InboxCounts(ttl_s=0.5)
    assert await stale.get("team", recount) == {"awaiting": 100}
    await asyncio.sleep(0.6)  # expired
    pages = await asyncio.gather(*(stale.get("team", recount) for _ in range(20)))
    assert all(page == {"awaiting": 100} for page in pages)  # nobody waited for the recount
    assert recounts == 2  # and there was one recount
    await asyncio.sleep(0.15)
    assert await stale.get("team", recount) == {"awaiting": 101}

    # A recount that fails keeps the old counts; counts older than max_stale_s are not served.
    failing_db = InboxCounts(ttl_s=0.05, max_stale_s=0.3)
    assert await failing_db.get("team", recount) == {"awaiting": 102}
    await asyncio.sleep(0.1)
    assert await failing_db.get("team", failing) == {"awaiting": 102}
    await asyncio.sleep(0.3)
    try:
        await failing_db.get("team", failing)
    except ConnectionError:
        pass
    else:
        raise AssertionError("counts older than max_stale_s were served")
