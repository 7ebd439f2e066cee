"""Reply deadlines, escalation, digests, mail and calendar reminders (issue 5)."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg
import pytest
import redis
from icalendar import Calendar, vDDDTypes, vInt

from confide.services import deadlines, reminders
from confide.services.workdays import WorkingCalendar, parse_start
from tests import html
from tests.conftest import SmtpSink, Stack, StaffAccount, add_staff, confide_cli, kick_relay
from tests.journeys import reporter_logs_in, reporter_submits

ROOT = Path(__file__).resolve().parent.parent


def worked_examples() -> list[tuple[str, str, str]]:
    """The table in docs/deadlines.md: the documentation and the tests cannot drift apart."""
    text = (ROOT / "docs" / "deadlines.md").read_text()
    rows = re.findall(r"^\| ([a-z-]+) \| `([^`]+)` \| `([^`]+)` \|", text, re.M)
    assert len(rows) >= 20
    return rows


@pytest.mark.parametrize(("region", "start", "due"), worked_examples())
def test_confide_deadline_prints_each_worked_example(
    stack: Stack, region: str, start: str, due: str
) -> None:
    result = confide_cli(stack, "deadline", start, "--region", region)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == due


def test_confide_deadline_refuses_dates_outside_the_holiday_data(stack: Stack) -> None:
    result = confide_cli(stack, "deadline", "2101-01-03T10:00")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("confide: no bank holiday data for 2101")
    result = confide_cli(stack, "deadline", "next tuesday")
    assert result.returncode == 2 and "Traceback" not in result.stderr


async def report(http: aiohttp.ClientSession, **extra: object) -> dict[str, Any]:
    body = {
        "category": "safety",
        "description": "Blocked fire exit",
        "anonymous": True,
        "follow_up": True,
        **extra,
    }
    async with http.post("/api/v1/reports", json=body) as resp:
        assert resp.status == 201, await resp.text()
        created: dict[str, Any] = await resp.json()  # Any: the API's JSON
        return created


async def staff_token(http: aiohttp.ClientSession, account: StaffAccount) -> dict[str, str]:
    async with http.post(
        "/api/v1/staff/session", json={"email": account.email, "password": account.password}
    ) as resp:
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def test_each_worked_example_is_a_threads_reply_due_by(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    caseworker: StaffAccount,
) -> None:
    headers = await staff_token(http, caseworker)
    pool = await asyncpg.create_pool(stack.env["DATABASE_URL"], min_size=1, max_size=2)
    try:
        for region, start, due in worked_examples():
            receipt = await report(http)
            thread_id = await db.fetchval(
                "SELECT id FROM threads WHERE reference = $1", receipt["reference"]
            )
            calendar = WorkingCalendar(region=region)
            async with pool.acquire() as conn:
                await deadlines.start_clock(
                    conn, calendar, stack.settings, thread_id, parse_start(start)
                )
            async with http.get(
                f"/api/v1/staff/threads/{receipt['reference']}", headers=headers
            ) as resp:
                body = await resp.json()
            assert datetime.fromisoformat(body["reply_due_by"]) == datetime.fromisoformat(due), (
                region,
                start,
            )
    finally:
        await pool.close()


async def test_reporter_sees_when_a_reply_is_due_and_a_reply_stops_the_clock(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    caseworker: StaffAccount,
) -> None:
    sent = await reporter_submits(http, "Due time please")
    assert sent.code
    due = await db.fetchval("SELECT reply_due_at FROM threads")
    expected = WorkingCalendar().reply_due_by(await db.fetchval("SELECT received_at FROM threads"))
    assert due == expected
    assert "We aim to reply by " in sent.page
    _status, page = await reporter_logs_in(http, sent.code)
    assert "We aim to reply by " in page
    headers = await staff_token(http, caseworker)
    async with http.post("/api/v1/reporter/session", json={"code": sent.code}) as resp:
        reporter = {"Authorization": f"Bearer {(await resp.json())['token']}"}
    async with http.get("/api/v1/reporter/thread", headers=reporter) as resp:
        assert resp.status == 200  # the API takes the bearer token, never the cookie
        assert (await resp.json())["reply_due_by"] is not None
    # A note does not stop the clock; a reply does.
    async with http.post(
        f"/api/v1/staff/threads/{sent.reference}/notes", json={"body": "looked"}, headers=headers
    ) as resp:
        assert resp.status == 201
    assert await db.fetchval("SELECT reply_due_at FROM threads") == due
    async with http.post(
        f"/api/v1/staff/threads/{sent.reference}/messages", json={"body": "On it"}, headers=headers
    ) as resp:
        assert resp.status == 201
    assert await db.fetchval("SELECT reply_due_at FROM threads") is None
    async with http.get("/api/v1/reporter/thread", headers=reporter) as resp:
        assert (await resp.json())["reply_due_by"] is None
    # Anonymous without follow-up: no deadline at all, listed as new.
    await report(http, follow_up=False)
    async with http.get("/api/v1/staff/threads?state=new", headers=headers) as resp:
        listed = (await resp.json())["threads"]
    assert len(listed) == 1 and listed[0]["reply_due_by"] is None


async def test_escalation_alerts_managers_once_and_sends_one_digest_per_team(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    smtp: SmtpSink,
) -> None:
    add_staff(stack, "casey@example.org", "safety")
    manager = add_staff(stack, "mo@example.org", "safety", role="manager")
    words = f"CANARY{secrets.token_hex(6).upper()}"
    first = await report(http, description=f"Old one {words}")
    await report(http, category="harassment")
    kick_relay(stack)
    smtp.wait_for(lambda m: first["reference"] in str(m["Subject"]))  # new-report alert
    # A working day at 10:00, long after both deadlines.
    as_of = "2027-03-10T10:00"
    runs = []
    for _ in range(2):
        result = confide_cli(stack, "escalate", "--as-of", as_of)
        assert result.returncode == 0, result.stderr
        runs.append(json.loads(result.stdout))
    assert runs[0]["teams"]["safety"] == {"nearing": 0, "overdue": 1}
    assert sorted(runs[0]["digests"]) == ["safety", "wellbeing"]
    assert runs[0]["overdue_alerts"] == 1  # one manager of the safety team
    assert runs[1]["digests"] == [] and runs[1]["overdue_alerts"] == 0  # idempotent
    preview = json.loads(confide_cli(stack, "escalate", "--as-of", as_of, "--dry-run").stdout)
    assert preview["teams"] == runs[0]["teams"]
    kick_relay(stack)
    smtp.wait_for(lambda m: "digest" in str(m["Subject"]) and "wellbeing" in str(m["To"]))
    smtp.wait_for(lambda m: "Overdue" in str(m["Subject"]))
    await asyncio.sleep(2)
    digests = [m for m in smtp.messages if "digest" in str(m["Subject"])]
    assert sorted(str(m["To"]) for m in digests) == [
        "safety@northbridge.example",
        "wellbeing@northbridge.example",
    ]
    safety = next(m for m in digests if "safety" in str(m["To"]))
    body = safety.get_content()
    assert first["reference"] in body and "working hours" in body and "/staff/threads/" in body
    assert len(smtp.to(manager.email)) == 1
    # No mail carries report text, and every Message-ID comes from its outbox row.
    assert words not in smtp.raw()
    ids = {str(m["Message-ID"]) for m in smtp.messages}
    rows = {f"<{r['id']}@northbridge.example>" for r in await db.fetch("SELECT id FROM outbox")}
    assert ids <= rows
    # The Escalations page and the overdue filter show the same.
    async with http.get(
        "/api/v1/staff/threads?state=overdue", headers=await staff_token(http, manager)
    ) as resp:
        assert [t["reference"] for t in (await resp.json())["threads"]] == [first["reference"]]


async def test_a_manager_gets_one_mail_for_all_threads_that_went_overdue_in_a_pass(
    stack: Stack,
    http: aiohttp.ClientSession,
    smtp: SmtpSink,
) -> None:
    manager = add_staff(stack, "mia@example.org", "safety", role="manager")
    words = f"CANARY{secrets.token_hex(6).upper()}"
    sent = [await report(http, description=f"Report {n} {words}") for n in range(3)]
    result = confide_cli(stack, "escalate", "--as-of", "2027-03-10T10:00")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["overdue_alerts"] == 3  # three threads, one manager
    kick_relay(stack)
    [alert] = smtp.wait_for(lambda m: "Overdue" in str(m["Subject"]))
    await asyncio.sleep(1)
    assert len(smtp.to(manager.email)) == 1
    assert "3 threads" in str(alert["Subject"])
    body = alert.get_content()
    for one in sent:
        assert f"/staff/threads/{one['reference']}" in body
    assert words not in smtp.raw()


async def test_digests_survive_a_killed_worker_and_an_emptied_redis(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    smtp: SmtpSink,
    worker: object,
) -> None:
    for category in ("safety", "harassment", "discrimination"):
        await report(http, category=category)
    stack.worker.stop()
    result = confide_cli(stack, "escalate", "--as-of", "2027-03-11T10:00")
    assert sorted(json.loads(result.stdout)["digests"]) == ["hr", "safety", "wellbeing"]
    kick_relay(stack)
    redis.Redis.from_url(stack.env["REDIS_URL"]).flushdb()  # Redis lost everything queued
    stack.worker.start()
    await asyncio.sleep(3)
    stack.worker.stop(sig=signal.SIGKILL)  # killed mid-run, maybe between SMTP and commit
    stack.worker.start()
    deadline = asyncio.get_running_loop().time() + 60
    while asyncio.get_running_loop().time() < deadline:
        kick_relay(stack)
        pending = await db.fetchval(
            "SELECT count(*) FROM outbox WHERE kind = 'digest' AND sent_at IS NULL"
        )
        if pending == 0:
            break
        await db.execute(
            "UPDATE outbox SET leased_until = NULL, next_attempt_at = now() "
            "WHERE sent_at IS NULL AND leased_until < now() + interval '2 minutes'"
        )
        await asyncio.sleep(1)
    assert pending == 0
    digests = [m for m in smtp.messages if "digest" in str(m["Subject"])]
    by_id: dict[str, set[str]] = {}
    for m in digests:
        by_id.setdefault(str(m["Message-ID"]), set()).add(str(m["To"]))
    # One digest per (team, day): any resend in the documented window has the same Message-ID.
    assert len(by_id) == 3
    assert {to for tos in by_id.values() for to in tos} == {
        "safety@northbridge.example",
        "wellbeing@northbridge.example",
        "hr-cases@northbridge.example",
    }


async def test_mail_is_retried_when_smtp_refuses(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    smtp: SmtpSink,
) -> None:
    smtp.refuse = True
    receipt = await report(http)
    kick_relay(stack)
    for _ in range(60):
        row = await db.fetchrow(
            "SELECT attempts, last_error, sent_at FROM outbox WHERE kind = 'new_report'"
        )
        if row["attempts"] >= 1 and row["last_error"]:
            break
        await asyncio.sleep(0.5)
    assert row["sent_at"] is None and row["last_error"].startswith("SMTP")
    smtp.refuse = False
    await db.execute("UPDATE outbox SET next_attempt_at = now()")  # skip the back-off wait
    kick_relay(stack)
    smtp.wait_for(lambda m: receipt["reference"] in str(m["Subject"]))


async def test_contact_reporter_gets_an_acknowledgement_without_content(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    smtp: SmtpSink,
) -> None:
    words = f"CANARY{secrets.token_hex(6).upper()}"
    receipt = await report(
        http,
        anonymous=False,
        follow_up=False,
        description=words,
        contact={"email": "sam@example.org"},
    )
    assert receipt["reply_due_by"] is not None  # due until marked contacted
    kick_relay(stack)
    ack = smtp.wait_for(lambda m: "sam@example.org" in str(m["To"]))[0]
    assert receipt["reference"] in ack.get_content()
    team = smtp.wait_for(lambda m: "safety@northbridge.example" in str(m["To"]))[0]
    assert "sam@example.org" not in team.as_string()
    assert words not in smtp.raw()
    # The address (sealed under the thread's own key) leaves the outbox once the mail is sent.
    for _ in range(50):
        left = await db.fetchval(
            "SELECT count(*) FROM outbox WHERE kind = 'acknowledgement' AND recipient IS NOT NULL"
        )
        if left == 0:
            break
        await asyncio.sleep(0.1)
    assert left == 0


async def test_reporter_downloads_a_discreet_reminder_that_a_calendar_server_accepts(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    words = f"CANARY{secrets.token_hex(6).upper()}"
    sent = await reporter_submits(http, f"Reminder please {words}")
    assert sent.code
    form = next(f for f in html.forms(sent.page) if f.action == "/reminder.ics")
    data = None
    for _ in range(60):
        kick_relay(stack)
        async with http.post("/reminder.ics", data=form.fields) as resp:
            if resp.status == 200:
                assert resp.content_type == "text/calendar"
                data = await resp.read()
                break
            # A calm page: what was sent was received, only the file is not ready yet.
            page = await resp.text()
            assert resp.status == 503 and "try again in a moment" in page, page
            assert "Your reminder is being prepared" in page and "not received" not in page
        await asyncio.sleep(0.5)
    assert data is not None
    async with http.post("/reminder.ics", data=form.fields) as resp:
        assert resp.status == 403  # single use
    assert reminders.validate(data) == []
    text = data.decode()
    for secret in (
        words,
        sent.code,
        sent.code.replace("-", ""),
        str(sent.reference),
        "Northbridge",
    ):
        assert secret not in text
    assert "Check for a reply" in text and "/login" not in text
    event = Calendar.from_ical(data).walk("VEVENT")[0]
    due = await db.fetchval("SELECT reply_due_at FROM threads")
    # iCalendar times have whole seconds; a report sent in working hours has a due time with
    # microseconds.
    assert isinstance(event["DTSTART"], vDDDTypes)  # a date-time property, for mypy
    assert event["DTSTART"].dt == due.astimezone(UTC).replace(microsecond=0)
    thread_id: UUID = await db.fetchval("SELECT id FROM threads")
    assert str(thread_id) not in text and str(thread_id).replace("-", "") not in text

    # Logged in: the latest file; with the address when asked; a new due time bumps SEQUENCE.
    await reporter_logs_in(http, sent.code)
    async with http.get("/reminder.ics?include_address=1") as resp:
        with_address = await resp.read()
    assert f"{stack.settings.base_url}/login" in with_address.decode().replace("\r\n ", "")
    uid = str(event["UID"])
    # The clock restarts (as after a reply and a new message): a new due time, same event.
    await deadlines.start_clock(
        db, WorkingCalendar(), stack.settings, thread_id, parse_start("2027-03-10T10:00")
    )
    again = None
    for _ in range(60):
        kick_relay(stack)
        async with http.get("/reminder.ics") as resp:
            if resp.status == 200:
                candidate = Calendar.from_ical(await resp.read()).walk("VEVENT")[0]
                assert isinstance(candidate["SEQUENCE"], vInt)  # for mypy
                assert isinstance(event["SEQUENCE"], vInt)
                if int(candidate["SEQUENCE"]) > int(event["SEQUENCE"]):
                    again = candidate
                    break
        await asyncio.sleep(0.5)
    assert again is not None and str(again["UID"]) == uid

    # A real CalDAV server accepts it, and a time-range query finds it at the due time.
    await radicale_finds(tmp_path, data, due)


async def radicale_finds(tmp_path: Path, data: bytes, due: datetime) -> None:
    import subprocess
    import sys

    from confide.devservices import free_port

    port = free_port()
    config = tmp_path / "radicale.conf"
    config.write_text(
        f"[server]\nhosts = 127.0.0.1:{port}\n[auth]\ntype = none\n"
        f"[storage]\nfilesystem_folder = {tmp_path / 'collections'}\n[logging]\nlevel = warning\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "radicale", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as dav:
            for _ in range(100):
                try:
                    async with dav.request("MKCOL", f"{base}/user/") as resp:
                        assert resp.status == 201, resp.status
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            async with dav.request("MKCALENDAR", f"{base}/user/cal/") as resp:
                assert resp.status == 201, resp.status
            async with dav.put(
                f"{base}/user/cal/reminder.ics",
                data=data,
                headers={"Content-Type": "text/calendar"},
            ) as resp:
                assert resp.status in (201, 204), await resp.text()
            start = (due - timedelta(minutes=5)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
            end = (due + timedelta(minutes=5)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
            query = f"""<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/></D:prop>
  <C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
    <C:time-range start="{start}" end="{end}"/>
  </C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"""
            async with dav.request(
                "REPORT",
                f"{base}/user/cal/",
                data=query,
                headers={"Depth": "1", "Content-Type": "application/xml"},
            ) as resp:
                answer = await resp.text()
            assert resp.status == 207 and "reminder.ics" in answer
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_fast_deadline_path_equals_counting_working_time_hour_by_hour() -> None:
    import random

    rnd = random.Random(7)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for region in ("england-and-wales", "scotland", "northern-ireland"):
        calendar = WorkingCalendar(region=region)
        for _ in range(3000):
            start = base + timedelta(seconds=rnd.randrange(0, 2 * 365 * 86400))
            if rnd.random() < 0.2:
                start = start.replace(minute=0, second=0, microsecond=0)
            for days in (1, 2, 3):
                assert calendar.reply_due_by(start, days) == calendar.add_working_time(
                    start, calendar.day_length * days
                ), (region, start, days)


def test_working_time_between_equals_the_day_by_day_count() -> None:
    import random

    rnd = random.Random(11)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for region in ("england-and-wales", "scotland", "northern-ireland"):
        calendar = WorkingCalendar(region=region)
        for _ in range(3000):
            start = base + timedelta(seconds=rnd.randrange(0, 2 * 365 * 86400))
            end = start + timedelta(seconds=rnd.randrange(0, 60 * 86400))
            assert calendar.working_time_between(start, end) == (
                calendar._working_time_between_stepwise(start, end)
            ), (region, start, end)
