"""Retries and idempotency keys can never take over a report or lose a message (issue 12, finding
1 and 8; CONTRACTS §2 "Issuing" and §3 "Idempotency")."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import aiohttp
import asyncpg

from confide import db as db_module
from confide.context import Context
from confide.errors import ValidationFailed
from confide.models import NewReport
from confide.org import load as load_org
from confide.services import reports
from confide.services.workdays import WorkingCalendar
from confide.sql import reports as sql_reports
from tests import html
from tests.conftest import Proc, Stack, StaffAccount
from tests.journeys import post, reach_check_answers, reporter_logs_in, send_report
from tests.test_reporting import code_works
from webapp.security import new_form_token

REPORT = {
    "category": "safety",
    "description": "Loose handrail",
    "anonymous": True,
    "follow_up": True,
}


def new_key() -> str:
    return "key-" + secrets.token_hex(12)


async def submit(
    http: aiohttp.ClientSession, body: dict[str, Any], key: str
) -> tuple[int, dict[str, Any]]:
    async with http.post("/api/v1/reports", json=body, headers={"Idempotency-Key": key}) as resp:
        return resp.status, await resp.json()


async def api_login(http: aiohttp.ClientSession, code: str) -> str:
    async with http.post("/api/v1/reporter/session", json={"code": code}) as resp:
        assert resp.status == 200, await resp.text()
        token: str = (await resp.json())["token"]
        return token


async def test_attacker_cannot_take_over_a_report_by_reusing_its_idempotency_key(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    key = new_key()
    status, first = await submit(http, REPORT, key)
    assert status == 201
    # Someone who learns (or guesses) the key sends another body with it.
    status, attack = await submit(http, {**REPORT, "description": "Something else"}, key)
    assert status == 422
    assert attack["type"].endswith("/idempotency-key-reused")
    assert "reference" not in attack and "code" not in attack
    assert await db.fetchval("SELECT count(*) FROM threads") == 1
    assert await db.fetchval("SELECT count(*) FROM reporter_codes") == 1
    # The genuine reporter's code still opens their report.
    token = await api_login(http, first["code"])
    async with http.get(
        "/api/v1/reporter/thread", headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        assert (await resp.json())["description"] == "Loose handrail"


async def test_api_retry_gets_at_most_two_additional_codes_and_never_stops_the_first(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    key = new_key()
    answers = [await submit(http, REPORT, key) for _ in range(4)]
    assert [status for status, _ in answers] == [201, 200, 200, 200]
    assert len({body["reference"] for _, body in answers}) == 1
    codes = [body["code"] for _, body in answers]
    assert codes[3] is None  # the report has 3 codes: a further retry gets none
    assert len(set(codes[:3])) == 3
    for code in codes[:3]:
        assert await code_works(db, stack, code)
    # Key order and spacing of the same JSON are the same request.
    async with http.post(
        "/api/v1/reports",
        data='{"follow_up":true, "anonymous":true, "description":"Loose handrail", "category":"safety"}',
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 200 and (await resp.json())["code"] is None


async def test_retry_after_the_reporter_logged_in_gets_no_code(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    key = new_key()
    _, first = await submit(http, REPORT, key)
    await api_login(http, first["code"])
    status, again = await submit(http, REPORT, key)
    assert status == 200
    assert again["reference"] == first["reference"] and again["code"] is None
    assert await code_works(db, stack, first["code"])


async def test_retry_ten_minutes_after_the_report_gets_no_code(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    key = new_key()
    _, first = await submit(http, REPORT, key)
    await db.execute("UPDATE threads SET received_at = now() - interval '11 minutes'")
    status, again = await submit(http, REPORT, key)
    assert status == 200
    assert again["reference"] == first["reference"] and again["code"] is None
    assert await code_works(db, stack, first["code"])


async def test_api_client_gets_422_for_a_malformed_idempotency_key(
    http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    for bad in ("1", "short-key", "x" * 256, "sixteen chars ok"):  # the last has spaces
        async with http.post(
            "/api/v1/reports", json=REPORT, headers={"Idempotency-Key": bad}
        ) as resp:
            assert resp.status == 422, bad
            errors = (await resp.json())["errors"]
            assert errors[0]["field"] == "Idempotency-Key"
    assert await db.fetchval("SELECT count(*) FROM threads") == 0


async def test_api_repeat_while_the_first_is_still_issuing_its_code_gets_409(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection, worker: Proc
) -> None:
    worker.stop()  # the code is then hashed locally after the 3 s wait for a worker
    key = new_key()
    first = asyncio.create_task(submit(http, REPORT, key))
    while await db.fetchval("SELECT count(*) FROM submission_keys") == 0:
        await asyncio.sleep(0.05)
    async with http.post("/api/v1/reports", json=REPORT, headers={"Idempotency-Key": key}) as resp:
        assert resp.status == 409
        assert int(resp.headers["Retry-After"]) >= 1
    status, body = await first
    assert status == 201 and await code_works(db, stack, body["code"])
    status, again = await submit(http, REPORT, key)  # after Retry-After: the repeat's answer
    assert status == 200 and again["reference"] == body["reference"]


async def test_html_double_submit_waits_for_the_first_and_every_code_shown_works(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection, worker: Proc
) -> None:
    worker.stop()  # the first submission takes ~3 s to issue its code
    check = await reach_check_answers(http, description="Double click while slow")
    first, second = await asyncio.gather(send_report(http, check), send_report(http, check))
    assert first.status == second.status == 200  # never a 409 page for a form
    assert first.reference == second.reference is not None
    assert await db.fetchval("SELECT count(*) FROM threads") == 1
    for shown in (first, second):
        assert shown.code is not None and await code_works(db, stack, shown.code)


async def test_reloading_the_confirmation_after_login_shows_no_new_code(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    check = await reach_check_answers(http, description="Reloaded after logging in")
    sent = await send_report(http, check)
    assert sent.code is not None
    status, _ = await reporter_logs_in(http, sent.code)
    assert status == 200
    again = await send_report(http, check)  # the check page's form, sent again
    assert again.reference == sent.reference
    assert again.code is None
    # The draft's confirmation, whose code the login forgot: shown once, and it still works.
    assert "shown once" in html.text(again.page)
    assert "still works" in html.text(again.page)
    assert await code_works(db, stack, sent.code)
    assert await db.fetchval("SELECT count(*) FROM reporter_codes") == 1


async def test_changed_answers_with_a_used_form_token_do_not_reach_the_first_report(
    stack: Stack, db: asyncpg.Connection
) -> None:
    # Cookies off: the answers ride in the form, and the token's own rules apply (CONTRACTS
    # §3); with a draft, the draft's (tests/test_drafts.py).
    async with aiohttp.ClientSession(
        base_url=stack.base_url, cookie_jar=aiohttp.DummyCookieJar()
    ) as http:
        check = await reach_check_answers(http, description="First version")
        sent = await send_report(http, check)
        form = html.main_form(check)
        status, page = await post(http, form.action, {**form.fields, "description": "Changed"})
        assert status == 422
        assert sent.reference is not None and sent.reference not in page
        assert html.code_on(page) is None
        assert "second, separate report" in html.text(page)
        assert await db.fetchval("SELECT count(*) FROM threads") == 1
        assert sent.code is not None and await code_works(db, stack, sent.code)


async def test_an_old_form_token_starts_no_report_but_still_answers_its_repeat(
    stack: Stack, db: asyncpg.Connection
) -> None:
    # Cookies off: the answers ride in the form, and the token's own rules apply (CONTRACTS
    # §3); with a draft, the draft's (tests/test_drafts.py).
    async with aiohttp.ClientSession(
        base_url=stack.base_url, cookie_jar=aiohttp.DummyCookieJar()
    ) as http:
        check = await reach_check_answers(http, description="Left open for hours")
        form = html.main_form(check)
        old = new_form_token(stack.settings, "report-submit", now=time.time() - 3 * 3600)
        status, page = await post(http, form.action, {**form.fields, "form_token": old})
        assert status == 400 and "had expired" in html.text(page)
        assert await db.fetchval("SELECT count(*) FROM threads") == 0

        # A token used just before its 2 hours were up still answers its repeat afterwards.
        issued = time.time() - 2 * 3600 + 3
        token = new_form_token(stack.settings, "report-submit", now=issued)
        status, page = await post(http, form.action, {**form.fields, "form_token": token})
        assert status == 200 and html.code_on(page) is not None
        await asyncio.sleep(max(0.0, issued + 2 * 3600 + 1 - time.time()))  # now past 2 hours
        status, again = await post(http, form.action, {**form.fields, "form_token": token})
        assert status == 200 and "Report received" in again
        assert await db.fetchval("SELECT count(*) FROM threads") == 1


async def test_reporter_and_staff_using_the_same_key_both_have_their_message_kept(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    _, report = await submit(http, REPORT, new_key())
    reporter = {"Authorization": f"Bearer {await api_login(http, report['code'])}"}
    async with http.post(
        "/api/v1/staff/session", json={"email": caseworker.email, "password": caseworker.password}
    ) as resp:
        staff = {"Authorization": f"Bearer {(await resp.json())['token']}"}
    key = "shared-key-000001"
    async with http.post(
        "/api/v1/reporter/messages",
        json={"body": "From the reporter"},
        headers={**reporter, "Idempotency-Key": key},
    ) as resp:
        assert resp.status == 201
    async with http.post(
        f"/api/v1/staff/threads/{report['reference']}/messages",
        json={"body": "From the case worker"},
        headers={**staff, "Idempotency-Key": key},
    ) as resp:
        assert resp.status == 201
    assert await db.fetchval("SELECT count(*) FROM messages") == 2

    # A repeat of the same message is answered 200 and stored once; another body gets 422.
    async with http.post(
        "/api/v1/reporter/messages",
        json={"body": "From the reporter"},
        headers={**reporter, "Idempotency-Key": key},
    ) as resp:
        assert resp.status == 200
    async with http.post(
        "/api/v1/reporter/messages",
        json={"body": "Something else"},
        headers={**reporter, "Idempotency-Key": key},
    ) as resp:
        assert resp.status == 422
        assert (await resp.json())["type"].endswith("/idempotency-key-reused")
    assert await db.fetchval("SELECT count(*) FROM messages") == 2


async def test_a_drawn_reference_that_is_taken_is_drawn_again_and_the_report_kept_once(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection, monkeypatch: Any
) -> None:
    """References are random; when one is drawn twice (1 in 2^40), the second report's statement
    fails whole on the unique reference, its idempotency key included, and is sent again."""
    async with http.post(
        "/api/v1/reports",
        json={"category": "safety", "description": "The first report", "anonymous": True},
    ) as resp:
        assert resp.status == 201
        taken = (await resp.json())["reference"]
    draws, fresh = iter([taken, taken, "R-" + "Z" * 8]), reports.new_reference
    monkeypatch.setattr(reports, "new_reference", lambda: next(draws, None) or fresh())
    pool = await db_module.create_pool(stack.env["DATABASE_URL"], min_size=1, max_size=2)
    calendar = WorkingCalendar.for_org(load_org(stack.settings.org_file))
    ctx = Context(pool, stack.settings, stack.keyring, calendar)
    draft = NewReport.model_validate(
        {"category": "safety", "description": "The second report", "anonymous": True},
        context={"categories": {"safety"}},
    )
    key = reports.submission_idempotency(
        stack.settings, "taken-reference-key-1", b'{"a": 1}', author="api"
    )
    try:
        receipt = await reports.submit_report(ctx, draft, idempotency=key)
        again = await reports.submit_report(ctx, draft, idempotency=key)
    finally:
        await pool.close()
    assert receipt.reference == "R-ZZZZZZZZ" and receipt.is_new
    assert again.reference == receipt.reference and not again.is_new
    rows = await db.fetch("SELECT reference FROM threads ORDER BY received_at")
    assert [r["reference"] for r in rows] == [taken, "R-ZZZZZZZZ"]
    keys = await db.fetch("SELECT thread_id FROM submission_keys")
    assert [k["thread_id"] for k in keys] == [receipt.thread_id]  # one claim, the kept one


async def test_reports_sent_at_the_same_moment_are_committed_together_and_each_answered_alone(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection, monkeypatch: Any
) -> None:
    """Submissions that arrive together share one statement and one commit (confide.db.Batches),
    yet each reporter gets the answer they would have had alone: a repeat its first receipt, an
    unknown category its own error, and a drawn reference that is taken a fresh one, while the
    others in the batch are kept."""
    async with http.post(
        "/api/v1/reports",
        json={"category": "safety", "description": "An earlier report", "anonymous": True},
    ) as resp:
        taken = (await resp.json())["reference"]
    draws, fresh = iter([taken]), reports.new_reference
    monkeypatch.setattr(reports, "new_reference", lambda: next(draws, None) or fresh())
    batch_sizes: list[int] = []
    real_submit = sql_reports.submit

    async def counted(conn: asyncpg.Connection, batch: Any) -> Any:
        batch_sizes.append(len(batch))
        return await real_submit(conn, batch)

    monkeypatch.setattr(sql_reports, "submit", counted)
    pool = await db_module.create_pool(stack.env["DATABASE_URL"], min_size=1, max_size=2)
    ctx = Context(
        pool,
        stack.settings,
        stack.keyring,
        WorkingCalendar.for_org(load_org(stack.settings.org_file)),
    )

    def draft(description: str, category: str = "safety") -> NewReport:
        return NewReport.model_validate(
            {"category": category, "description": description, "anonymous": True},
            context={"categories": {"safety", "retired-category"}},
        )

    def key(name: str, body: bytes = b"{}") -> Any:
        return reports.submission_idempotency(stack.settings, name, body, author="api")

    sent = [(draft("The taken reference's report"), key("batch-taken-0000"))]
    sent += [(draft(f"Report {n}"), key(f"batch-report-{n:04d}")) for n in range(8)]
    sent += [(draft("Sent twice"), key("batch-twice-0000", b"same"))] * 2
    sent += [(draft("Nowhere to go", "retired-category"), key("batch-nowhere-00"))]
    try:
        answers = await asyncio.gather(
            *(reports.submit_report(ctx, d, idempotency=k) for d, k in sent),
            return_exceptions=True,
        )
    finally:
        await pool.close()
    assert batch_sizes[0] == len(sent)  # one statement for all of them, at first
    *kept, twice_a, twice_b, nowhere = answers
    assert isinstance(nowhere, ValidationFailed)
    assert all(isinstance(a, reports.Receipt) and a.is_new for a in kept)
    assert isinstance(twice_a, reports.Receipt) and isinstance(twice_b, reports.Receipt)
    assert twice_a.reference == twice_b.reference and {twice_a.is_new, twice_b.is_new} == {
        True,
        False,
    }
    references = [a.reference for a in kept if isinstance(a, reports.Receipt)]
    assert taken not in references and len(set(references)) == 9
    rows = await db.fetch("SELECT reference FROM threads")
    assert sorted(r["reference"] for r in rows) == sorted([taken, *references, twice_a.reference])
    assert await db.fetchval("SELECT count(*) FROM submission_keys") == 10  # not the refused one
    alerts = await db.fetchval("SELECT count(*) FROM outbox WHERE kind = 'new_report'")
    assert alerts == 11  # one for each report kept, the earlier one included
