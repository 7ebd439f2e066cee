"""Auto-close after silence and the statutory clocks (issue 16, items 3 and 4; docs/lifecycle.md).

Real PostgreSQL, Redis, Celery worker and SMTP. Time moves by the pass's ``as_of`` (the service
called directly, or ``confide escalate --as-of``), never by sleeping.
"""

from __future__ import annotations

import asyncio
import html as html_text
import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import pytest
from icalendar import Calendar, vDDDTypes

from confide import org
from confide.context import Context
from confide.durations import Duration
from confide.errors import ConfigError
from confide.services import autoclose, deadlines, reminders
from confide.services.workdays import WorkingCalendar
from confide.settings import DEFAULT_ORG_FILE
from tests.conftest import SmtpSink, Stack, StaffAccount, add_staff, confide_cli, kick_relay
from tests.journeys import (
    reporter_logs_in,
    reporter_sends,
    reporter_submits,
    staff_acts,
    staff_logs_in,
)

LONDON = ZoneInfo("Europe/London")
FOURTEEN_DAYS = timedelta(days=14)


@pytest.fixture
async def ctx(stack: Stack, db: asyncpg.Connection) -> AsyncIterator[Context]:
    """The services' context, as the lifecycle pass builds it (the demo file's rules)."""
    pool = await asyncpg.create_pool(stack.env["DATABASE_URL"], min_size=1, max_size=2)
    try:
        yield Context(pool, stack.settings, stack.keyring, WorkingCalendar())
    finally:
        await pool.close()


async def staff_headers(http: aiohttp.ClientSession, account: StaffAccount) -> dict[str, str]:
    async with http.post(
        "/api/v1/staff/session", json={"email": account.email, "password": account.password}
    ) as resp:
        assert resp.status == 200, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def reporter_headers(http: aiohttp.ClientSession, code: str) -> dict[str, str]:
    async with http.post("/api/v1/reporter/session", json={"code": code}) as resp:
        assert resp.status == 200, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def reporter_thread(http: aiohttp.ClientSession, headers: dict[str, str]) -> Any:
    async with http.get("/api/v1/reporter/thread", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()  # Any: the API's JSON


async def staff_thread(http: aiohttp.ClientSession, reference: str, headers: dict[str, str]) -> Any:
    async with http.get(f"/api/v1/staff/threads/{reference}", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()  # Any: the API's JSON


async def staff_sets(
    http: aiohttp.ClientSession, reference: str, what: str, headers: dict[str, str], **body: object
) -> None:
    """``POST /api/v1/staff/threads/{reference}/{what}``: 201 for messages, else (status,
    restricted) 200."""
    async with http.post(
        f"/api/v1/staff/threads/{reference}/{what}", json=body, headers=headers
    ) as resp:
        assert resp.status == (201 if what == "messages" else 200), await resp.text()


async def staff_replies(
    http: aiohttp.ClientSession, reference: str, headers: dict[str, str], **body: object
) -> None:
    await staff_sets(http, reference, "messages", headers, **body)


async def feedback_due_by(
    http: aiohttp.ClientSession, reference: str, headers: dict[str, str]
) -> datetime:
    return datetime.fromisoformat((await staff_thread(http, reference, headers))["feedback_due_by"])


async def calendar_events(
    stack: Stack, http: aiohttp.ClientSession, want: int, *, cancelled_close: bool = False
) -> list[Any]:
    """The logged-in reporter's .ics once the worker has rebuilt it with ``want`` events (and,
    with ``cancelled_close``, the auto-close event cancelled)."""
    for _ in range(120):
        kick_relay(stack)
        async with http.get("/reminder.ics") as resp:
            if resp.status == 200:
                data = await resp.read()
                events = list(Calendar.from_ical(data).walk("VEVENT"))
                close_cancelled = len(events) == 2 and str(events[1].get("STATUS")) == "CANCELLED"
                if len(events) == want and close_cancelled == cancelled_close:
                    assert reminders.validate(data) == []
                    return events
        await asyncio.sleep(0.5)
    raise AssertionError("the reminder was not rebuilt")


def day_words(moment: datetime) -> str:
    local = moment.astimezone(LONDON)
    return f"{local.day} {local:%B}"


async def test_reporter_sees_the_auto_close_date_and_a_reply_keeps_the_report_open(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    ctx: Context,
    caseworker: StaffAccount,
) -> None:
    words = f"CANARY{secrets.token_hex(6).upper()}"
    sent = await reporter_submits(http, f"Silent thread {words}")
    assert sent.code and sent.reference
    staff = await staff_headers(http, caseworker)
    reporter = await reporter_headers(http, sent.code)
    await reporter_logs_in(http, sent.code)
    await calendar_events(stack, http, 1)  # the reply's due time, before anyone answers
    # Before any reply nothing can close: the reporter spoke last.
    assert (await reporter_thread(http, reporter))["auto_close_at"] is None
    await staff_replies(http, sent.reference, staff, body="Can you tell us which building?")
    replied = await db.fetchval("SELECT last_caseworker_message_at FROM threads")
    closes = replied + FOURTEEN_DAYS

    # The API, the messaging page and the staff view all say when.
    body = await reporter_thread(http, reporter)
    assert datetime.fromisoformat(body["auto_close_at"]) == closes
    _, page = await reporter_logs_in(http, sent.code)
    sentence = (
        f"If we don't hear from you by {day_words(closes - timedelta(days=1))}, "
        "we will close this report."
    )
    assert sentence in html_text.unescape(page)
    assert (
        datetime.fromisoformat((await staff_thread(http, sent.reference, staff))["auto_close_at"])
        == closes
    )

    # The .ics gains a second event: the last day to reply, a day before it closes.
    first, last_day = await calendar_events(stack, http, 2)
    assert str(first["STATUS"]) == "CANCELLED"  # the reply came: nothing more is due
    assert str(last_day["SUMMARY"]) == reminders.CLOSE_TITLE
    assert last_day["DTSTART"].dt == (closes - timedelta(days=1)).replace(microsecond=0)
    assert str(last_day["UID"]) != str(first["UID"])

    # A day early nothing closes; at the moment it would, a dry run sees the one thread.
    assert await autoclose.auto_close(ctx, closes - timedelta(days=1), dry_run=False) == 0
    assert await autoclose.auto_close(ctx, closes, dry_run=True) == 1
    assert await db.fetchval("SELECT status FROM threads") == "open"

    # The reporter writes before then: the thread stays open and the date goes.
    status, _ = await reporter_sends(http, "It was the library.")
    assert status == 200
    assert await autoclose.auto_close(ctx, closes + timedelta(days=30), dry_run=False) == 0
    assert await db.fetchval("SELECT status FROM threads") == "open"
    assert (await reporter_thread(http, reporter))["auto_close_at"] is None
    _, page = await reporter_logs_in(http, sent.code)
    assert "we will close this report" not in html_text.unescape(page)
    events = await calendar_events(stack, http, 2, cancelled_close=True)
    assert str(events[0].get("STATUS")) != "CANCELLED"  # a reply is due again

    assert words not in stack.logs()


async def test_a_silent_thread_closes_and_the_reporter_learns_how_to_report_again(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    ctx: Context,
    caseworker: StaffAccount,
) -> None:
    sent = await reporter_submits(http, "Nobody answers")
    assert sent.code and sent.reference
    staff = await staff_headers(http, caseworker)
    await reporter_logs_in(http, sent.code)
    await calendar_events(stack, http, 1)
    await staff_replies(http, sent.reference, staff, body="Could you tell us more?")
    await calendar_events(stack, http, 2)  # the last day to reply is in the reminder
    # A second thread where the reporter spoke last, and one never answered: neither closes.
    other = await reporter_submits(http, "Still talking")
    assert other.code and other.reference
    await staff_replies(http, other.reference, staff, body="Thanks")
    await reporter_logs_in(http, other.code)
    await reporter_sends(http, "More detail")
    await reporter_submits(http, "Never answered")
    replied = await db.fetchval(
        "SELECT last_caseworker_message_at FROM threads WHERE reference = $1", sent.reference
    )
    as_of = replied + FOURTEEN_DAYS + timedelta(minutes=1)

    assert await autoclose.auto_close(ctx, as_of, dry_run=False) == 1
    assert await autoclose.auto_close(ctx, as_of, dry_run=False) == 0  # idempotent
    rows = await db.fetch("SELECT reference, status FROM threads ORDER BY received_at")
    assert {r["reference"]: r["status"] for r in rows}[sent.reference] == "closed"
    assert sorted(r["status"] for r in rows) == ["closed", "open", "open"]
    audit = await db.fetch("SELECT staff_id, action FROM audit_log WHERE action = 'auto_close'")
    assert [(a["staff_id"], a["action"]) for a in audit] == [(None, "auto_close")]

    # The reporter who logs in sees it was closed and how to make a new report.
    _, page = await reporter_logs_in(http, sent.code)
    assert "This report is closed" in page and 'href="/report"' in page
    assert "make a new report" in page and "we will close this report" not in page
    reporter = await reporter_headers(http, sent.code)
    body = await reporter_thread(http, reporter)
    assert body["status"] == "closed" and body["auto_close_at"] is None
    async with http.post(
        "/api/v1/reporter/messages", json={"body": "too late"}, headers=reporter
    ) as resp:
        assert resp.status == 409  # CONTRACTS §3: a closed thread
    # Its .ics cancels the auto-close event too.
    await calendar_events(stack, http, 2, cancelled_close=True)


# --- The statutory clocks -------------------------------------------------------------------

AUTO_ACKNOWLEDGEMENT = "We have received your report and will look at it."


@pytest.fixture(scope="module")
def eu_web(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A web process whose organisation runs the EU clocks and sends the automatic
    acknowledgement (the demo file plus a [lifecycle] table)."""
    org = tmp_path_factory.mktemp("eu-org") / "org.toml"
    org.write_text(
        Path(DEFAULT_ORG_FILE).read_text()
        + '\n[lifecycle]\nclocks = ["eu-directive"]\n'
        + f'auto_acknowledgement = "{AUTO_ACKNOWLEDGEMENT}"\n'
    )
    _, base = stack.start_web("web-eu", CONFIDE_ORG_FILE=str(org))
    return base


async def submit(base: str, **body: object) -> Any:
    """A report through the API of the web at ``base`` (a client of its own: no cookies)."""
    report = {"category": "safety", "description": "Blocked fire exit", **body}
    async with (
        aiohttp.ClientSession() as client,
        client.post(f"{base}/api/v1/reports", json=report) as resp,
    ):
        assert resp.status == 201, await resp.text()
        return await resp.json()  # Any: the API's JSON


def escalate(stack: Stack, as_of: datetime) -> Any:
    result = confide_cli(stack, "escalate", "--as-of", as_of.isoformat())
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # Any: the command's JSON


def digest_moment(stack: Stack, after: datetime) -> datetime:
    """The first moment from ``after`` at which the day's digests are due (a working day, past
    digest time), so the pass both marks the clock and queues the digest."""
    calendar = WorkingCalendar()
    moment = after
    while deadlines.digest_due(calendar, stack.settings, moment) is None:
        local = moment.astimezone(LONDON)
        moment = datetime.combine(local.date() + timedelta(days=1), local.time(), LONDON)
        moment = moment.replace(hour=10, minute=0).astimezone(UTC)
    return moment


async def inbox_page(http: aiohttp.ClientSession, account: StaffAccount) -> str:
    await staff_logs_in(http, account.email, account.password)
    async with http.get("/staff?state=open") as resp:
        assert resp.status == 200
        return await resp.text()


async def test_with_eu_clocks_an_unacknowledged_report_is_overdue_at_day_seven(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    smtp: SmtpSink,
    eu_web: str,
) -> None:
    caseworker = add_staff(stack, "casey@example.org", "safety")
    words = f"CANARY{secrets.token_hex(6).upper()}"
    # Nobody acknowledges a report with a phone number only (no acknowledgement e-mail).
    phone = await submit(
        eu_web,
        description=f"Phone only {words}",
        anonymous=False,
        contact={"phone": "+44 20 7946 0000"},
    )
    # The automatic acknowledgement answers an anonymous report with follow-up at once.
    anonymous = await submit(
        eu_web, description=f"Anonymous {words}", anonymous=True, follow_up=True
    )
    # The demo web runs no clocks: its reports get none.
    plain = await submit(stack.base_url, anonymous=True, follow_up=True)
    staff = await staff_headers(http, caseworker)

    first = await staff_thread(http, phone["reference"], staff)
    received = datetime.fromisoformat(first["received_at"])
    due = received + timedelta(days=7)
    assert datetime.fromisoformat(first["acknowledge_by"]) == due
    assert first["acknowledged_at"] is None and first["feedback_at"] is None
    assert datetime.fromisoformat(first["feedback_due_by"]) == Duration(months=3).after(due)
    assert first["statutory"] == "none"
    assert first["reply_due_by"] is not None  # the working-day promise runs beside them
    none = await staff_thread(http, plain["reference"], staff)
    assert none["acknowledge_by"] is None and none["statutory"] == "none"

    acknowledged = await staff_thread(http, anonymous["reference"], staff)
    assert acknowledged["acknowledged_at"] is not None
    [message] = acknowledged["messages"]
    assert message["body"] == AUTO_ACKNOWLEDGEMENT and message["automatic"] is True
    # ... but it is nobody's reply: the promise still runs and nothing can close for silence.
    assert acknowledged["reply_due_by"] is not None and acknowledged["auto_close_at"] is None
    assert acknowledged["statutory"] == "none"

    # Day 6: nearing. Day 7: overdue, in the API, the inbox, the thread page and the digest.
    escalate(stack, due - timedelta(days=1))
    assert (await staff_thread(http, phone["reference"], staff))["statutory"] == "nearing"
    as_of = digest_moment(stack, due + timedelta(minutes=1))
    report = escalate(stack, as_of)
    assert report["statutory"]["safety"] == {"nearing": 0, "overdue": 1}
    assert "safety" in report["digests"]
    listed = {
        t["reference"]: t["statutory"]
        for t in (await (await http.get("/api/v1/staff/threads?state=open", headers=staff)).json())[
            "threads"
        ]
    }
    assert listed == {
        phone["reference"]: "overdue",
        anonymous["reference"]: "none",
        plain["reference"]: "none",
    }
    inbox = await inbox_page(http, caseworker)
    assert inbox.count("Acknowledgement overdue") == 1
    async with http.get(f"/staff/threads/{phone['reference']}") as resp:
        assert "Acknowledgement overdue" in await resp.text()
    # The day-6 pass queued that day's digest (nearing); the day-7 pass queues its own.
    kick_relay(stack)
    digest = smtp.wait_for(
        lambda m: (
            "digest" in str(m["Subject"])
            and "safety@" in str(m["To"])
            and "OVERDUE; acknowledgement" in m.get_content()
        )
    )[0]
    text = digest.get_content()
    assert "Statutory deadlines" in text
    line = next(
        x
        for x in text.splitlines()
        if x.startswith(f"- {phone['reference']}") and "acknowledgement" in x
    )
    assert "OVERDUE" in line
    assert anonymous["reference"] not in text.split("Statutory deadlines")[1]

    # Marking it contacted acknowledges it; a reply with "This is our feedback" is the feedback.
    await staff_sets(http, phone["reference"], "status", staff, status="contacted")
    after = await staff_thread(http, phone["reference"], staff)
    assert after["acknowledged_at"] is not None and after["statutory"] == "none"
    # The reply form offers "This is our feedback" on a thread with the clocks only.
    async with http.get(f"/staff/threads/{plain['reference']}") as resp:
        assert "This is our feedback" not in await resp.text()
    status, _ = await staff_acts(
        http, anonymous["reference"], "reply", body="Here is what we did", feedback="1"
    )
    assert status == 200
    done = await staff_thread(http, anonymous["reference"], staff)
    assert done["feedback_at"] is not None and done["messages"][-1]["feedback"] is True
    async with http.post(
        f"/api/v1/staff/threads/{anonymous['reference']}/messages",
        json={"body": "x", "feedback": "yes"},
        headers=staff,
    ) as resp:
        assert resp.status == 422  # a JSON boolean or nothing
    escalate(stack, as_of + timedelta(days=200))
    assert (await staff_thread(http, anonymous["reference"], staff))["statutory"] == "none"

    assert words not in smtp.raw() and words not in stack.logs()


async def test_the_acknowledgement_email_meets_the_clock_and_feedback_can_be_overdue(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    smtp: SmtpSink,
    eu_web: str,
) -> None:
    caseworker = add_staff(stack, "casey@example.org", "safety")
    staff = await staff_headers(http, caseworker)
    mailed = await submit(eu_web, anonymous=False, contact={"email": "reporter@example.net"})
    kick_relay(stack)
    smtp.wait_for(lambda m: "reporter@example.net" in str(m["To"]))
    for _ in range(40):
        thread = await staff_thread(http, mailed["reference"], staff)
        if thread["acknowledged_at"] is not None:
            break
        await asyncio.sleep(0.25)
    assert thread["acknowledged_at"] is not None
    # The case worker answers by marking it contacted (the reply promise stops) but gives no
    # feedback: three months later only the statutory clock is overdue, and the digest says so.
    await staff_sets(http, mailed["reference"], "status", staff, status="contacted")
    feedback_due = await feedback_due_by(http, mailed["reference"], staff)
    report = escalate(stack, digest_moment(stack, feedback_due + timedelta(minutes=1)))
    assert report["teams"]["safety"] == {"nearing": 0, "overdue": 0}
    assert report["statutory"]["safety"] == {"nearing": 0, "overdue": 1}
    assert report["digests"] == ["safety"]
    kick_relay(stack)
    [digest] = smtp.wait_for(lambda m: "digest" in str(m["Subject"]))
    assert "statutory deadline" in str(digest["Subject"])
    line = next(x for x in digest.get_content().splitlines() if mailed["reference"] in x)
    assert "OVERDUE" in line and "feedback" in line
    assert "reporter@example.net" not in digest.as_string()

    # A report with contact details has no messages: a note with the box ticked records the
    # feedback given by phone or e-mail, and the clock is met.
    await staff_logs_in(http, caseworker.email, caseworker.password)
    status, _ = await staff_acts(
        http, mailed["reference"], "note", note="Called back with the outcome", feedback="1"
    )
    assert status == 200
    met = await staff_thread(http, mailed["reference"], staff)
    assert met["feedback_at"] is not None and met["statutory"] == "none"


async def test_a_restricted_threads_statutory_deadline_reaches_only_those_who_may_see_it(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    smtp: SmtpSink,
    eu_web: str,
) -> None:
    caseworker = add_staff(stack, "casey@example.org", "safety")
    manager = add_staff(stack, "mo@example.org", "safety", role="manager")
    hidden = await submit(eu_web, anonymous=False, contact={"phone": "+44 20 7946 0001"})
    boss = await staff_headers(http, manager)
    await staff_sets(http, hidden["reference"], "restricted", boss, restricted=True)
    # Contacted: no reply is due, so only the statutory feedback clock can bring a digest.
    await staff_sets(http, hidden["reference"], "status", boss, status="contacted")
    feedback_due = await feedback_due_by(http, hidden["reference"], boss)
    report = escalate(stack, digest_moment(stack, feedback_due + timedelta(minutes=1)))
    assert report["statutory"]["safety"] == {"nearing": 0, "overdue": 1}
    assert report["digests"] == []  # the shared address hears nothing of a restricted thread
    kick_relay(stack)
    [mail] = smtp.wait_for(lambda m: "digest" in str(m["Subject"]))
    assert str(mail["To"]) == manager.email
    assert hidden["reference"] in mail.get_content()
    await asyncio.sleep(1)
    digests = [m for m in smtp.messages if "digest" in str(m["Subject"])]
    assert [str(m["To"]) for m in digests] == [manager.email]  # not the team, not the worker
    # The case worker cannot see it in the API either (a restricted thread reads as missing).
    async with http.get(
        f"/api/v1/staff/threads/{hidden['reference']}",
        headers=await staff_headers(http, caseworker),
    ) as resp:
        assert resp.status == 404


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('auto_close_after = "fortnight"', "'lifecycle.auto_close_after' must look like"),
        ('auto_close_after = "0 days"', "'lifecycle.auto_close_after' must look like"),
        ('clocks = ["uk"]', "'lifecycle.clocks' must be"),
        ("auto_acknowledgement = 3", "'lifecycle.auto_acknowledgement' must be text"),
    ],
)
def test_an_organisation_file_with_a_bad_lifecycle_key_is_refused_with_its_name(
    tmp_path: Path, table: str, message: str
) -> None:
    path = tmp_path / "org.toml"
    path.write_text(Path(DEFAULT_ORG_FILE).read_text() + f"\n[lifecycle]\n{table}\n")
    with pytest.raises(ConfigError, match=message):
        org.load(path)


def test_the_lifecycle_keys_default_to_fourteen_days_and_no_clocks(tmp_path: Path) -> None:
    rules = org.load(Path(DEFAULT_ORG_FILE)).clock_rules
    assert rules.auto_close_after == Duration(days=14) and not rules.eu_directive
    assert rules.auto_acknowledgement == ""
    path = tmp_path / "org.toml"
    path.write_text(
        Path(DEFAULT_ORG_FILE).read_text()
        + '\n[lifecycle]\nauto_close_after = "never"\nclocks = ["eu-directive"]\n'
    )
    rules = org.load(path).clock_rules
    assert rules.auto_close_after is None and rules.eu_directive
    # A month is a calendar month, its last day when the day does not exist (as PostgreSQL).
    month = Duration(months=1)
    assert month.after(datetime(2027, 1, 31, 12, tzinfo=UTC)) == datetime(
        2027, 2, 28, 12, tzinfo=UTC
    )


def test_a_reminder_for_a_report_answered_at_once_holds_the_last_day_alone(stack: Stack) -> None:
    """A case worker who replies before the worker built the first file: no reply was ever
    due in a file, so it holds the auto-close event only."""
    closes = datetime(2027, 1, 15, 10, 30, tzinfo=UTC)
    data = reminders.build(stack.settings, uuid4(), None, 0, include_address=False, closes=closes)
    assert reminders.validate(data) == []
    [event] = Calendar.from_ical(data).walk("VEVENT")
    assert str(event["SUMMARY"]) == reminders.CLOSE_TITLE
    start = event["DTSTART"]
    assert isinstance(start, vDDDTypes)  # a date-time property, for mypy
    assert start.dt == closes - timedelta(days=1)
