"""Staff sign-in and staff sessions, tried as an attacker would (issue 12, findings 7, 9, 10)."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

import aiohttp
import asyncpg
from aiohttp.test_utils import TestServer

from confide.services import staff as staff_service
from tests import html
from tests.conftest import Stack, StaffAccount, add_staff
from tests.journeys import form_page, post, reporter_logs_in, reporter_submits, staff_logs_in

T = TypeVar("T")
UNKNOWN = "nobody-here@example.org"
WRONG = "not the password at all"


def client(base_url: str, source: str = "127.0.0.1") -> aiohttp.ClientSession:
    """A browser-like client; ``source`` picks a distinct loopback address (another person)."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    return aiohttp.ClientSession(
        base_url=base_url, connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)
    )


async def api_sign_in(http: aiohttp.ClientSession, email: str, password: str) -> tuple[int, Any]:
    async with http.post(
        "/api/v1/staff/session", json={"email": email, "password": password}
    ) as resp:
        retry_after = int(resp.headers.get("Retry-After", "0"))
        body = await resp.json(content_type=None)
        return resp.status, (body, retry_after)


async def api_token(http: aiohttp.ClientSession, account: StaffAccount) -> dict[str, str]:
    status, (body, _) = await api_sign_in(http, account.email, account.password)
    assert status == 200
    return {"Authorization": f"Bearer {body['token']}"}


# --- Finding 7: sign-in limits --------------------------------------------------------------


async def test_attacker_cannot_tell_an_unknown_staff_email_from_a_known_one(
    stack: Stack, caseworker: StaffAccount
) -> None:
    """Before: a known address got 429 after 4 wrong passwords, an unknown one never did."""
    _, base = stack.start_web(
        "web-staff-limits-alike",
        CONFIDE_STAFF_LOGIN_PER_CLIENT_ACCOUNT_PER_15MIN="3",
        CONFIDE_STAFF_LOGIN_PER_CLIENT_PER_15MIN="100",
    )
    answers: dict[str, list[tuple[int, Any]]] = {}
    async with client(base, "127.0.0.2") as attacker:
        for email in (caseworker.email, UNKNOWN):
            answers[email] = [await api_sign_in(attacker, email, WRONG) for _ in range(5)]
    known, unknown = answers[caseworker.email], answers[UNKNOWN]
    assert [s for s, _ in known] == [s for s, _ in unknown] == [401, 401, 401, 429, 429]
    assert [body for _, (body, _) in known] == [body for _, (body, _) in unknown]
    for (_, (_, known_wait)), (_, (_, unknown_wait)) in zip(known[3:], unknown[3:], strict=True):
        # Equal but for the seconds between the two runs on a busy machine.
        assert known_wait > 0 and abs(known_wait - unknown_wait) <= 5

    # The same through the login page, whose words never say which part was wrong.
    pages: dict[str, list[tuple[int, str]]] = {}
    digits = re.compile(r"\d+")
    async with client(base, "127.0.0.3") as attacker:
        for email in (caseworker.email, UNKNOWN):
            pages[email] = [await staff_logs_in(attacker, email, WRONG) for _ in range(4)]
    for (known_status, known_page), (unknown_status, unknown_page) in zip(
        pages[caseworker.email], pages[UNKNOWN], strict=True
    ):
        assert known_status == unknown_status
        # The e-mail address is only in a field's value; the seconds to wait may differ by the
        # time between the two runs.
        assert digits.sub("N", html.text(known_page)) == digits.sub("N", html.text(unknown_page))
    assert [s for s, _ in pages[UNKNOWN]] == [401, 401, 401, 429]

    # Neither attacker locked the account.
    async with client(base, "127.0.0.4") as genuine:
        status, page = await staff_logs_in(genuine, caseworker.email, caseworker.password)
        assert status == 200 and "Team inbox" in page


async def test_staff_member_signs_in_while_attackers_hammer_their_account(
    stack: Stack, caseworker: StaffAccount
) -> None:
    """Before: one wrong try every 15 minutes kept a chosen account locked indefinitely."""
    web, base = stack.start_web(
        "web-staff-limits-hammer",
        CONFIDE_STAFF_LOGIN_PER_CLIENT_ACCOUNT_PER_15MIN="3",
        CONFIDE_STAFF_LOGIN_PER_CLIENT_PER_15MIN="6",
        CONFIDE_STAFF_LOGIN_GLOBAL_PER_MINUTE="2",
    )
    async with client(base, "127.0.0.2") as attacker:
        statuses = [(await api_sign_in(attacker, caseworker.email, WRONG))[0] for _ in range(8)]
    # The first try is free of the global budget, the next two spend it, then the pair's limit.
    assert statuses == [401, 401, 401] + [429] * 5
    async with client(base, "127.0.0.3") as second_attacker:
        statuses = [
            (await api_sign_in(second_attacker, caseworker.email, WRONG))[0] for _ in range(3)
        ]
    assert statuses == [401, 429, 429]  # a failing client finds the global budget spent

    # A client that has not failed is exempt from the spent budget, and a correct password
    # gives its attempt back: more sign-ins than the per-client limit, all let in.
    async with client(base, "127.0.0.4") as genuine:
        for _ in range(8):
            status, page = await staff_logs_in(genuine, caseworker.email, caseworker.password)
            assert status == 200 and "Team inbox" in page
    async with client(base, "127.0.0.5") as genuine_api:
        await api_token(genuine_api, caseworker)
    for address in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"):
        assert address not in web.log_text()


class GatedExecutor(Executor):
    """The web's own bounded executor, with a gate: work submitted waits until it opens, so a
    test can look at the event loop while every hash is still in flight."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.submitted: list[str] = []
        self.threads: set[int] = set()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        self.submitted.append(getattr(fn, "__name__", "?"))

        def run() -> T:
            self.gate.wait(60)
            self.threads.add(threading.get_ident())
            return fn(*args, **kwargs)

        return self.inner.submit(run)


async def test_web_stays_responsive_while_unknown_email_sign_ins_are_hashed(
    stack: Stack, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    """Before: each unknown address hashed a fresh dummy on the event loop, and six clients
    pushed /healthz p50 from 3 ms to 338 ms. Now every verification runs in the web's bounded
    executor (the reporters' local argon2 one), and the dummy hash is made once."""
    from webapp.app import create_app
    from webapp.keys import HASHER

    app = create_app(stack.settings)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        hasher = app[HASHER]
        gated = GatedExecutor(hasher.local)
        hasher.local = gated  # type: ignore[assignment]
        staff_service._dummy_hash_for.cache_clear()
        async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as http:
            sign_ins = [
                asyncio.create_task(api_sign_in(http, f"nobody{i}@example.org", WRONG))
                for i in range(6)
            ]
            sign_ins.append(asyncio.create_task(api_sign_in(http, caseworker.email, WRONG)))
            async with asyncio.timeout(30):
                while len(gated.submitted) < len(sign_ins):
                    await asyncio.sleep(0.01)
            # Every check is waiting inside the executor, and the event loop still answers.
            async with http.get("/healthz") as resp:
                assert resp.status == 200
            assert not any(task.done() for task in sign_ins)
            gated.gate.set()
            answers = await asyncio.gather(*sign_ins)
        assert [status for status, _ in answers] == [401] * 7
        assert gated.submitted == ["_verify"] * 7  # one verification each, no hash of its own
        assert threading.get_ident() not in gated.threads
        assert staff_service._dummy_hash_for.cache_info().misses == 1
    finally:
        await server.close()


# --- Finding 9: the API takes no cookie -----------------------------------------------------


async def test_staff_and_reporter_cookies_open_nothing_under_the_api(
    stack: Stack, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    """Before: a staff cookie on POST /api/v1/staff/threads/R/notes without a token got 201."""
    async with client(stack.base_url) as browser:
        sent = await reporter_submits(browser, "A cookie must not reach the API")
        assert sent.code and sent.reference
        status, _ = await reporter_logs_in(browser, sent.code)
        assert status == 200
        status, _ = await staff_logs_in(browser, caseworker.email, caseworker.password)
        assert status == 200
        thread = f"/api/v1/staff/threads/{sent.reference}"
        calls: list[tuple[str, str, dict[str, Any] | None]] = [
            ("GET", "/api/v1/staff/threads", None),
            ("GET", thread, None),
            ("POST", f"{thread}/messages", {"body": "forged reply"}),
            ("POST", f"{thread}/notes", {"body": "forged note"}),
            ("POST", f"{thread}/status", {"status": "closed"}),
            ("POST", f"{thread}/team", {"team": "safety"}),
            ("POST", f"{thread}/assignee", {"email": caseworker.email}),
            ("POST", f"{thread}/restricted", {"restricted": True}),
            ("GET", "/api/v1/reporter/thread", None),
            ("POST", "/api/v1/reporter/messages", {"body": "forged message"}),
            ("GET", "/api/v1/reporter/reminder.ics", None),
            ("DELETE", "/api/v1/staff/session", None),
            ("DELETE", "/api/v1/reporter/session", None),
        ]
        for method, path, body in calls:
            async with browser.request(method, path, json=body) as resp:
                assert resp.status == 401, (method, path)
        # Nothing happened, and both cookie sessions are still alive for their own pages.
        assert await db.fetchval("SELECT count(*) FROM notes") == 0
        assert await db.fetchval("SELECT count(*) FROM messages") == 0
        assert await db.fetchval("SELECT count(*) FROM threads WHERE status = 'closed'") == 0
        assert await db.fetchval("SELECT count(*) FROM threads WHERE restricted") == 0
        assert "Team inbox" in await form_page(browser, "/staff")
        assert "Your report" in html.title(await form_page(browser, "/messages"))

    async with aiohttp.ClientSession(base_url=stack.base_url) as api:
        staff = await api_token(api, caseworker)
        async with api.post(f"{thread}/notes", json={"body": "a real note"}, headers=staff) as r:
            assert r.status == 201
        async with api.get(thread, headers=staff) as resp:
            assert resp.status == 200
            assert [n["body"] for n in (await resp.json())["notes"]] == ["a real note"]
        async with api.post("/api/v1/reporter/session", json={"code": sent.code}) as resp:
            reporter = {"Authorization": f"Bearer {(await resp.json())['token']}"}
        async with api.get("/api/v1/reporter/thread", headers=reporter) as resp:
            assert resp.status == 200 and (await resp.json())["reference"] == sent.reference
        for headers, path in (
            (staff, "/api/v1/staff/session"),
            (reporter, "/api/v1/reporter/session"),
        ):
            async with api.delete(path, headers=headers) as resp:
                assert resp.status == 204


# --- Finding 10: a password change ends the other sessions ----------------------------------


async def test_changing_the_password_signs_out_every_other_session_of_the_account(
    stack: Stack, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    """Before: a password change (say, after a laptop was lost) left its sessions alive."""
    colleague = add_staff(stack, "colleague@example.org", "safety")
    new_password = "a fresh password after the loss"
    async with (
        client(stack.base_url) as changer,
        client(stack.base_url) as lost_laptop,
        client(stack.base_url) as other_account,
    ):
        for browser, account in (
            (changer, caseworker),
            (lost_laptop, caseworker),
            (other_account, colleague),
        ):
            status, _ = await staff_logs_in(browser, account.email, account.password)
            assert status == 200
        token = await api_token(changer, caseworker)
        async with changer.get("/api/v1/staff/threads", headers=token) as resp:
            assert resp.status == 200

        form = html.main_form(await form_page(changer, "/staff/password"))
        status, page = await post(
            changer,
            form.action,
            form.data(current=caseworker.password, new=new_password, confirm=new_password),
        )
        assert status == 200 and "Your password was changed" in page

        assert "Team inbox" in await form_page(changer, "/staff")  # the one that changed it
        async with lost_laptop.get("/staff", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/staff/login"
        async with changer.get("/api/v1/staff/threads", headers=token) as resp:
            assert resp.status == 401
        assert "Team inbox" in await form_page(other_account, "/staff")  # not their account
    assert await db.fetchval("SELECT count(*) FROM sessions") == 2

    async with client(stack.base_url) as browser:
        status, _ = await staff_logs_in(browser, caseworker.email, caseworker.password)
        assert status == 401
        status, page = await staff_logs_in(browser, caseworker.email, new_password)
        assert status == 200 and "Team inbox" in page
