"""Roles and visibility (issue 12, findings 3 to 6): each test replays an attack the security
review made, and shows the genuine user still succeeding.

- Ops reads no thread: no page, list, search or API call, no "Assign to", no mail.
- The audit log follows the visibility of the threads it is about.
- On a restricted thread only managers change the assignee, team or restriction.
- Mail about a restricted thread goes only to its assignee and the team's managers.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from tests import html
from tests.conftest import SmtpSink, Stack, StaffAccount, add_staff, confide_cli, kick_relay
from tests.journeys import form_page, post, staff_acts, staff_logs_in

ROOT = Path(__file__).resolve().parent.parent
# Staff routes that are the account's own, not about any thread: open to every role.
ACCOUNT_ROUTES = {
    "staff_login",
    "staff_login_submit",
    "staff_logout",
    "staff_password",
    "staff_password_submit",
    "staff_set_password",
    "staff_set_password_submit",
    "api_staff_login",
    "api_staff_logout",
    # Every account's own sign-in and security pages (issue 15): no thread on any of them.
    "staff_second_factor",
    "staff_second_factor_submit",
    "staff_security",
    "staff_sessions",
    "staff_end_session",
    "staff_end_other_sessions",
    "staff_revoke_token",
    "staff_enrol",
    "staff_enrol_submit",
    "staff_remove_authenticator",
    "staff_new_recovery_codes",
    # Passkeys: adding, removing, the second step and sign-in without a password.
    "staff_passkey_new",
    "staff_passkey_register",
    "staff_remove_passkey",
    "staff_passkey_second_factor",
    "staff_passkey_login_options",
    "staff_passkey_login",
    # Single sign-on: the way in through the organisation's provider (404 where it is not set up).
    "staff_sso_start",
    "staff_sso_callback",
}
HTML_ACTION_FIELDS = {
    "reply": {"body": "hello"},
    "note": {"note": "a note"},
    "status": {"status": "closed"},
    "assign": {"email": "olly@example.org"},
    "restrict": {"restricted": "0"},
    "team": {"team": "hr"},
    "extend": {"extension": "1 month", "reason": "a reason"},
    "hold": {"hold": "1"},
}
API_ACTION_BODIES: dict[str, dict[str, Any]] = {
    "messages": {"body": "hello"},
    "notes": {"body": "a note"},
    "status": {"status": "closed"},
    "team": {"team": "hr"},
    "assignee": {"email": "olly@example.org"},
    "restricted": {"restricted": False},
}


def canary(label: str) -> str:
    return f"CANARY{label.upper()}{secrets.token_hex(6).upper()}"


def browser(stack: Stack) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True))


async def report(http: aiohttp.ClientSession, category: str, **extra: Any) -> dict[str, Any]:
    body = {
        "category": category,
        "description": extra.pop("description", "A report"),
        "anonymous": True,
        "follow_up": True,
        **extra,
    }
    async with http.post("/api/v1/reports", json=body) as resp:
        assert resp.status == 201, await resp.text()
        found: dict[str, Any] = await resp.json()
        return found


async def bearer(http: aiohttp.ClientSession, account: StaffAccount) -> dict[str, str]:
    async with http.post(
        "/api/v1/staff/session", json={"email": account.email, "password": account.password}
    ) as resp:
        assert resp.status == 200, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}


def staff_routes() -> Iterator[tuple[str, str, str]]:
    """(name, method, path pattern) of every staff route of the app's own router, so that a
    route added later is walked too. ``{action:a|b}`` yields one entry per action."""
    from webapp import routes

    app = web.Application()
    routes.setup(app, ROOT / "webapp" / "static")
    for route in app.router.routes():
        name = route.name or ""
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        if route.method == "HEAD" or name in ACCOUNT_ROUTES:
            continue
        if not (path.startswith("/staff") or path.startswith("/api/v1/staff")):
            continue
        pattern = info.get("pattern")
        actions = re.search(r"\(\?P<action>([^)]*)\)", pattern.pattern) if pattern else None
        if actions:
            for action in actions.group(1).split("|"):
                yield name, route.method, path.replace("{action}", action)
        else:
            yield name, route.method, path


async def test_ops_reaches_no_thread_in_any_page_list_search_or_api_call(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    ops = add_staff(stack, "olly@example.org", "", role="ops")
    # As an ops account added before the fix would be: a member of the team whose thread it is.
    await db.execute(
        """INSERT INTO staff_teams (staff_id, team_id)
           SELECT s.id, t.id FROM staff s, teams t WHERE s.email = $1 AND t.slug = 'wellbeing'""",
        ops.email,
    )
    words, name, phone = canary("words"), canary("name"), "+447700900123"
    async with http.post(
        "/api/v1/reports",
        json={
            "category": "harassment",
            "description": words,
            "anonymous": False,
            "contact": {"name": name, "email": "reporter@example.net", "phone": phone},
        },
    ) as resp:
        reference = (await resp.json())["reference"]
    walked = list(staff_routes())
    assert {n for n, _, _ in walked} >= {
        "staff_inbox",
        "staff_thread",
        "staff_thread_reply",
        "staff_thread_note",
        "staff_thread_status",
        "staff_thread_assign",
        "staff_thread_restrict",
        "staff_thread_team",
        "staff_escalations",
        "staff_audit",
        "staff_thread_print",
        "staff_statistics",
        "staff_statistics_csv",
        "api_staff_statistics",
        "api_staff_threads",
        "api_staff_thread",
        "api_staff_thread_messages",
        "api_staff_thread_notes",
        "api_staff_thread_status",
        "api_staff_thread_team",
        "api_staff_thread_assignee",
        "api_staff_thread_restricted",
    }
    secrets_ = (reference, words, name, phone, "reporter@example.net")
    async with browser(stack) as ops_browser:
        # Ops lands on its dashboard after login, not on an inbox.
        page = await form_page(ops_browser, "/staff/login")
        form = html.main_form(page)
        async with ops_browser.post(
            form.action,
            data=form.data(email=ops.email, password=ops.password),
            allow_redirects=False,
        ) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/ops"
        page = await form_page(ops_browser, "/ops")
        assert 'href="/staff"' not in page and 'href="/staff/escalations"' not in page
        csrf = next(f for f in html.forms(page) if f.action == "/staff/logout").fields
        for _name, method, pattern in walked:
            if pattern.startswith("/api/"):
                continue
            path = pattern.replace("{reference}", reference)
            path = path.replace("{slug}", "help").replace("{version}", "1")  # support pages
            for query in ("", f"?q={reference}", "?state=open"):
                if method == "GET":
                    async with ops_browser.get(path + query) as resp:
                        status, text = resp.status, await resp.text()
                else:
                    action = path.rsplit("/", 1)[-1]
                    data = {**csrf, **HTML_ACTION_FIELDS.get(action, {})}
                    async with ops_browser.post(path + query, data=data) as resp:
                        status, text = resp.status, await resp.text()
                assert status == 403, (method, path + query, status)
                # Its own words, in the staff layout with ops' own menu.
                assert "Your role cannot open this page" in text, path
                assert "We could not understand that request" not in text
                assert 'class="staff-nav"' in text and 'href="/ops"' in text
                assert not [s for s in secrets_ if s in text], (path, query)
        # What ops may reach still works.
        for path in ("/ops", "/staff/password"):
            async with ops_browser.get(path) as resp:
                assert resp.status == 200, path
    headers = await bearer(http, ops)
    for _name, method, pattern in walked:
        if not pattern.startswith("/api/"):
            continue
        path = pattern.replace("{reference}", reference)
        path = path.replace("{attachment_id}", str(uuid.uuid4()))  # a file: 403 before 404
        action = path.rsplit("/", 1)[-1]
        for query in ("", f"?q={reference}&state=open"):
            async with http.request(
                method, path + query, json=API_ACTION_BODIES.get(action, {}), headers=headers
            ) as resp:
                text = await resp.text()
                assert resp.status == 403, (method, path, resp.status)
                assert resp.content_type == "application/problem+json"
                assert not [s for s in secrets_ if s in text], path
    async with http.delete("/api/v1/staff/session", headers=headers) as resp:
        assert resp.status == 204  # logging out is its own account's business
    # Nothing was done to the thread, and nothing was audited as ops' view.
    thread = await db.fetchrow(
        "SELECT id, status, assignee_id, team_id FROM threads WHERE reference = $1", reference
    )
    assert thread["status"] == "open" and thread["assignee_id"] is None
    assert await db.fetchval("SELECT count(*) FROM notes") == 0
    assert await db.fetchval("SELECT count(*) FROM messages WHERE author = 'caseworker'") == 0
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE thread_id IS NOT NULL") == 0


async def test_ops_is_not_offered_in_assign_to_and_cannot_be_assigned(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    casey = add_staff(stack, "casey@example.org", "wellbeing")
    mo = add_staff(stack, "mo@example.org", "wellbeing", role="manager")
    ops = add_staff(stack, "olly@example.org", "", role="ops")
    await db.execute(
        """INSERT INTO staff_teams (staff_id, team_id)
           SELECT s.id, t.id FROM staff s, teams t WHERE s.email = $1 AND t.slug = 'wellbeing'""",
        ops.email,
    )
    reference = (await report(http, "harassment"))["reference"]
    async with browser(stack) as casey_browser:
        await staff_logs_in(casey_browser, casey.email, casey.password)
        page = await form_page(casey_browser, f"/staff/threads/{reference}")
        assign = next(f for f in html.forms(page) if f.action.endswith("/assign"))
        assert ops.email not in page and mo.email in page  # the manager is offered, ops is not
        status, page = await post(casey_browser, assign.action, assign.data(email=ops.email))
        assert status == 422 and "Choose a member of the thread" in page
        status, page = await post(casey_browser, assign.action, assign.data(email=mo.email))
        assert status == 200
    async with http.post(
        f"/api/v1/staff/threads/{reference}/assignee",
        json={"email": ops.email},
        headers=await bearer(http, mo),
    ) as resp:
        assert resp.status == 422
    assignee = await db.fetchval(
        "SELECT s.email FROM threads t JOIN staff s ON s.id = t.assignee_id WHERE reference = $1",
        reference,
    )
    assert assignee == mo.email


async def test_staff_add_refuses_a_team_for_ops_and_requires_one_for_caseworkers(
    stack: Stack, db: asyncpg.Connection
) -> None:
    def add(*args: str) -> Any:
        return confide_cli(
            stack, "staff", "add", "--name", "N", *args, stdin="a long enough password\n"
        )

    refused = add("--email", "o@example.org", "--role", "ops", "--team", "wellbeing")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "--team" in refused.stderr and "Traceback" not in refused.stderr
    missing = add("--email", "c@example.org", "--role", "caseworker")
    assert missing.returncode == 2 and "--team is required" in missing.stderr
    missing = add("--email", "m@example.org", "--role", "manager")
    assert missing.returncode == 2 and "--team is required" in missing.stderr
    done = add("--email", "o@example.org", "--role", "ops")
    assert done.returncode == 0 and "no team" in done.stdout
    done = add("--email", "c@example.org", "--role", "caseworker", "--team", "wellbeing")
    assert done.returncode == 0, done.stderr
    rows = await db.fetch(
        """SELECT s.email, count(st.team_id) AS n FROM staff s
           LEFT JOIN staff_teams st ON st.staff_id = s.id GROUP BY s.email"""
    )
    assert {r["email"]: r["n"] for r in rows} == {"o@example.org": 0, "c@example.org": 1}


async def test_migration_takes_existing_ops_accounts_out_of_their_teams(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    casey = add_staff(stack, "casey@example.org", "wellbeing")
    ops = add_staff(stack, "olly@example.org", "", role="ops")
    reference = (await report(http, "harassment"))["reference"]
    # An ops account as the old `staff add --role ops --team wellbeing` left it, even assigned.
    await db.execute(
        """INSERT INTO staff_teams (staff_id, team_id)
           SELECT s.id, t.id FROM staff s, teams t WHERE s.email = $1 AND t.slug = 'wellbeing'""",
        ops.email,
    )
    await db.execute(
        """UPDATE threads SET assignee_id = (SELECT id FROM staff WHERE email = $1)
           WHERE reference = $2""",
        ops.email,
        reference,
    )
    [migration] = (ROOT / "migrations").glob("0009_*.sql")
    for _ in range(2):  # what `confide migrate` runs, and safe a second time
        async with db.transaction():
            await db.execute(migration.read_text())
    rows = await db.fetch(
        "SELECT s.email FROM staff_teams st JOIN staff s ON s.id = st.staff_id ORDER BY 1"
    )
    assert [r["email"] for r in rows] == [casey.email]  # the case worker keeps their team
    assert await db.fetchval(
        "SELECT assignee_id IS NULL FROM threads WHERE reference = $1", reference
    )
    applied = await db.fetchval(
        "SELECT count(*) FROM schema_migrations WHERE name = $1", migration.name
    )
    assert applied == 1  # the test database was migrated with it


async def test_audit_page_shows_each_role_only_the_threads_it_may_see(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    casey = add_staff(stack, "casey@example.org", "wellbeing")
    wanda = add_staff(stack, "wanda@example.org", "wellbeing", role="manager")
    harper = add_staff(stack, "harper@example.org", "hr", role="manager")
    ada = add_staff(stack, "ada@example.org", "wellbeing", role="admin")
    wellbeing = (await report(http, "harassment"))["reference"]
    hr = (await report(http, "discrimination"))["reference"]
    async with browser(stack) as b:
        await staff_logs_in(b, wanda.email, wanda.password)
        await staff_acts(b, wellbeing, "assign", email=casey.email)
        status, _page = await staff_acts(b, wellbeing, "restrict", restricted="1")
        assert status == 200
    async with browser(stack) as b:
        await staff_logs_in(b, harper.email, harper.password)
        await form_page(b, f"/staff/threads/{hr}")
    async with browser(stack) as b:
        await staff_logs_in(b, ada.email, ada.password)
        page = await form_page(b, "/staff/admin")
        form = next(f for f in html.forms(page) if "member_email" in f.fields)
        await post(
            b, form.action, form.data(member_email=casey.email, member_team="safety", action="join")
        )

    async def audit_page(account: StaffAccount, query: str = "") -> str:
        async with browser(stack) as b:
            await staff_logs_in(b, account.email, account.password)
            page = await form_page(b, f"/staff/audit{query}")
        return page[page.index("<tbody>") : page.index("</tbody>")]  # the rows, not the search box

    # The attack: HR's manager reads who viewed, assigned and restricted a Wellbeing thread.
    page = await audit_page(harper)
    assert wellbeing not in page and hr in page
    assert "Added a member to a team" not in page  # admin events are for admins
    page = await audit_page(harper, f"?q={wellbeing}")
    assert wellbeing not in page and "Changed who may see it" not in page
    # Wellbeing's manager sees its restricted thread's history; not HR's thread.
    page = await audit_page(wanda)
    assert wellbeing in page and "Changed who may see it" in page and hr not in page
    assert wellbeing in await audit_page(wanda, f"?q={wellbeing}")
    # An admin of Wellbeing sees threads like a case worker (not this restricted one), and the
    # admin events.
    page = await audit_page(ada)
    assert wellbeing not in page and hr not in page and "Added a member to a team" in page
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'restrict'") == 1


async def test_only_a_manager_changes_who_sees_a_restricted_thread(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    casey = add_staff(stack, "casey@example.org", "wellbeing")
    tam = add_staff(stack, "tam@example.org", "wellbeing")
    wanda = add_staff(stack, "wanda@example.org", "wellbeing", role="manager")
    ada = add_staff(stack, "ada@example.org", "wellbeing", role="admin")
    reference = (await report(http, "harassment"))["reference"]
    async with browser(stack) as b:
        await staff_logs_in(b, wanda.email, wanda.password)
        await staff_acts(b, reference, "assign", email=casey.email)
        await staff_acts(b, reference, "restrict", restricted="1")
    tokens = {a.email: await bearer(http, a) for a in (casey, tam, wanda, ada)}
    url = f"/api/v1/staff/threads/{reference}"
    # The attack: the assignee hands the restricted thread to a teammate, or moves it away.
    async with browser(stack) as b:
        await staff_logs_in(b, casey.email, casey.password)
        page = await form_page(b, f"/staff/threads/{reference}")
        assert 'id="assign"' not in page and 'id="team"' not in page
        assert "only a manager can change its assignee or team" in page
        csrf = next(f for f in html.forms(page) if f.action.endswith("/note")).fields["csrf_token"]
        for action, data in (
            ("assign", {"email": tam.email}),
            ("team", {"team": "hr"}),
            ("restrict", {"restricted": "0"}),
        ):
            async with b.post(
                f"/staff/threads/{reference}/{action}", data={"csrf_token": csrf, **data}
            ) as resp:
                assert resp.status == 403, action
                assert "Only managers can" in await resp.text()
        # What the assignee may still do, such as adding a note.
        status, _page = await staff_acts(b, reference, "note", note="checked")
        assert status == 200
    for who in (casey.email, ada.email):
        for action, body in (
            ("assignee", {"email": tam.email}),
            ("team", {"team": "hr"}),
            ("restricted", {"restricted": False}),
        ):
            async with http.post(f"{url}/{action}", json=body, headers=tokens[who]) as resp:
                if who == ada.email and action != "restricted":
                    assert resp.status == 404  # an admin does not see it at all
                else:  # (restricting is refused to non-managers before any thread is read)
                    assert resp.status == 403, (who, action)
    async with http.get(url, headers=tokens[tam.email]) as resp:
        assert resp.status == 404  # the teammate still cannot read it
    row = await db.fetchrow(
        """SELECT s.email, t.restricted, tm.slug FROM threads t JOIN staff s ON s.id = t.assignee_id
           JOIN teams tm ON tm.id = t.team_id WHERE t.reference = $1""",
        reference,
    )
    assert tuple(row) == (casey.email, True, "wellbeing")
    # The manager can: reassign (the new assignee then reads it), and lift the restriction.
    async with http.post(
        f"{url}/assignee", json={"email": tam.email}, headers=tokens[wanda.email]
    ) as resp:
        assert resp.status == 200
    async with http.get(url, headers=tokens[tam.email]) as resp:
        assert resp.status == 200
    async with http.get(url, headers=tokens[casey.email]) as resp:
        assert resp.status == 404
    async with http.post(
        f"{url}/restricted", json={"restricted": False}, headers=tokens[wanda.email]
    ) as resp:
        assert resp.status == 200
    async with http.get(url, headers=tokens[casey.email]) as resp:
        assert resp.status == 200
    # Unrestricted again, a case worker reassigns as before.
    async with http.post(
        f"{url}/assignee", json={"email": casey.email}, headers=tokens[tam.email]
    ) as resp:
        assert resp.status == 200


async def test_restricted_threads_are_mailed_only_to_their_assignee_and_the_teams_managers(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection, smtp: SmtpSink
) -> None:
    casey = add_staff(stack, "casey@example.org", "wellbeing")
    tam = add_staff(stack, "tam@example.org", "wellbeing")
    wanda = add_staff(stack, "wanda@example.org", "wellbeing", role="manager")
    harper = add_staff(stack, "harper@example.org", "hr", role="manager")
    ops = add_staff(stack, "olly@example.org", "", role="ops")
    await db.execute(
        """INSERT INTO staff_teams (staff_id, team_id)
           SELECT s.id, t.id FROM staff s, teams t WHERE s.email = $1 AND t.slug = 'wellbeing'""",
        ops.email,
    )
    team_address = "wellbeing@northbridge.example"
    words = canary("words")
    restricted = await report(http, "harassment", description=f"About a colleague {words}")
    open_one = await report(http, "harassment", description=f"Another {words}")
    secret, other = restricted["reference"], open_one["reference"]
    kick_relay(stack)
    for ref in (secret, other):  # the new-report alerts, before anyone restricted it
        smtp.wait_for(lambda m, ref=ref: ref in str(m["Subject"]))
    manager = await bearer(http, wanda)
    url = f"/api/v1/staff/threads/{secret}"
    async with http.post(f"{url}/assignee", json={"email": casey.email}, headers=manager) as resp:
        assert resp.status == 200
    async with http.post(f"{url}/restricted", json={"restricted": True}, headers=manager) as resp:
        assert resp.status == 200
    smtp.clear()
    # The reporter writes again: the new-message alert names the thread.
    async with http.post("/api/v1/reporter/session", json={"code": restricted["code"]}) as resp:
        reporter = {"Authorization": f"Bearer {(await resp.json())['token']}"}
    async with http.post(
        "/api/v1/reporter/messages", json={"body": f"More {words}"}, headers=reporter
    ) as resp:
        assert resp.status == 201
    kick_relay(stack)
    [alert] = smtp.wait_for(lambda m: secret in str(m["Subject"]))
    assert sorted(a.strip() for a in str(alert["To"]).split(",")) == [casey.email, wanda.email]
    # Then the day's digests and overdue alerts, long after both deadlines.
    result = confide_cli(stack, "escalate", "--as-of", "2027-03-10T10:00")
    assert result.returncode == 0, result.stderr
    assert "wellbeing" in json.loads(result.stdout)["digests"]
    kick_relay(stack)
    team_digest = smtp.wait_for(
        lambda m: "digest" in str(m["Subject"]) and team_address in str(m["To"])
    )[0]
    assert other in team_digest.get_content() and secret not in team_digest.get_content()
    assert "1 thread(s)" in str(team_digest["Subject"])
    for person in (casey, wanda):
        [mine] = smtp.wait_for(
            lambda m, p=person: "restricted thread" in str(m["Subject"]) and p.email in str(m["To"])
        )
        assert secret in mine.get_content() and other not in mine.get_content()
    smtp.wait_for(lambda m: "Overdue" in str(m["Subject"]))  # to the manager, who may see both
    await asyncio.sleep(2)  # anything still on its way
    for message in smtp.messages:
        named = secret in str(message["Subject"]) or secret in message.get_content()
        if named:
            recipients = {a.strip() for a in str(message["To"]).split(",")}
            assert recipients <= {casey.email, wanda.email}, (message["Subject"], recipients)
    for nobody in (tam.email, harper.email, ops.email):
        assert not [m for m in smtp.to(nobody) if secret in m.as_string()], nobody
    assert smtp.to(ops.email) == []  # ops gets no mail about threads at all
    assert words not in smtp.raw()


async def test_a_team_whose_only_late_thread_is_restricted_gets_no_shared_digest(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection, smtp: SmtpSink
) -> None:
    harper = add_staff(stack, "harper@example.org", "hr", role="manager")
    secret = (await report(http, "discrimination", description="About my line manager"))[
        "reference"
    ]
    manager = await bearer(http, harper)
    url = f"/api/v1/staff/threads/{secret}/restricted"
    async with http.post(url, json={"restricted": True}, headers=manager) as resp:
        assert resp.status == 200
    kick_relay(stack)
    smtp.wait_for(lambda m: secret in str(m["Subject"]))  # the new-report alert, before
    smtp.clear()
    # Long past its deadline, the pass queues the HR manager's own digest, not the team's.
    result = confide_cli(stack, "escalate", "--as-of", "2027-03-10T10:00")
    assert result.returncode == 0, result.stderr
    assert "hr" not in json.loads(result.stdout)["digests"]
    kick_relay(stack)
    [mine] = smtp.wait_for(
        lambda m: "restricted thread" in str(m["Subject"]) and harper.email in str(m["To"])
    )
    assert secret in mine.get_content()
    await asyncio.sleep(1)
    assert not [m for m in smtp.messages if "hr-cases@" in str(m["To"])]
