"""Retention and erasure (issue 16, docs/lifecycle.md): a closed thread past its period is erased
for good, reopening restarts the period, a legal hold stops erasure, and keys move with dates."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from confide.crypto import DecryptionError, Keyring, quarter_of
from confide.org import Duration
from confide.settings import parse_keyring
from confide.sql import lifecycle as sql_lifecycle
from tests import html, leaks
from tests.conftest import SmtpSink, Stack, StaffAccount, add_staff, confide_cli, kick_relay
from tests.journeys import (
    form_page,
    post,
    reporter_logs_in,
    reporter_submits,
    staff_acts,
    staff_logs_in,
)

YEAR = Duration(months=12)
LIFECYCLE_KEYS = {"as_of", "auto_closed", "warned", "erased"}


def new_key(key_id: str) -> str:
    return f"{key_id}:" + base64.b64encode(secrets.token_bytes(32)).decode()


def cli(stack: Stack, ring: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``confide`` with another keyring than the stack's (the web under test has it too)."""
    original = dict(stack.env)
    stack.env["CONFIDE_ENCRYPTION_KEYS"] = ring
    try:
        return confide_cli(stack, *args)
    finally:
        stack.env.clear()
        stack.env.update(original)


def lifecycle(stack: Stack, ring: str, as_of: datetime, *flags: str) -> dict[str, object]:
    result = cli(stack, ring, "lifecycle", "--as-of", as_of.isoformat(), *flags)
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    assert set(report) == LIFECYCLE_KEYS  # exactly CONTRACTS §4
    return report


@pytest.fixture
def quarter_web(stack: Stack) -> tuple[str, str, str]:
    """A web process whose keyring has keys for the quarters this test's threads fall in:
    the first key of the stack, then ``lr-<quarter>`` keys. (ring, base url, closed quarter)."""
    now = datetime.now(UTC)
    closed_q = quarter_of(YEAR.after(now))
    open_q = quarter_of(YEAR.after(YEAR.after(now)))
    ring = ",".join(
        [stack.env["CONFIDE_ENCRYPTION_KEYS"], new_key(f"lr-{closed_q}"), new_key(f"lr-{open_q}")]
    )
    name = "web-quarters-" + secrets.token_hex(3)
    _, base = stack.start_web(name, CONFIDE_ENCRYPTION_KEYS=ring)
    return ring, base, closed_q


async def test_an_erased_thread_is_gone_for_good_and_its_key_can_be_retired(
    stack: Stack,
    db: asyncpg.Connection,
    caseworker: StaffAccount,
    quarter_web: tuple[str, str, str],
) -> None:
    ring, base, closed_q = quarter_web
    canary = {
        "report": "Canary-report-" + secrets.token_hex(6),
        "reply": "Canary-reply-" + secrets.token_hex(6),
        "note": "Canary-note-" + secrets.token_hex(6),
    }
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base_url=base, cookie_jar=jar) as reporter:
        sent = await reporter_submits(reporter, canary["report"], location="Canary lab")
    assert sent.reference and sent.code
    row = await db.fetchrow("SELECT id, data_key_id, data_key_quarter FROM threads")
    # Open: wrapped for the earliest quarter it could be erased in (inactive a year, kept a year).
    assert row["data_key_id"].startswith("lr-") and row["data_key_id"] != f"lr-{closed_q}"
    thread_id = row["id"]

    async with aiohttp.ClientSession(
        base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as staff:
        await staff_logs_in(staff, caseworker.email, caseworker.password)
        await staff_acts(staff, sent.reference, "reply", body=canary["reply"])
        await staff_acts(staff, sent.reference, "note", note=canary["note"])
        await staff_acts(staff, sent.reference, "status", status="closed")
    row = await db.fetchrow(
        "SELECT data_key, data_key_id, description, erasure_due_at, closed_at FROM threads"
    )
    # Closed: due a year after closure, and rewrapped under that quarter's key.
    assert row["erasure_due_at"] is not None and row["data_key_id"] == f"lr-{closed_q}"
    copied_key, copied_description = bytes(row["data_key"]), bytes(row["description"])
    # The content is under the thread key, never the keyring itself.
    assert copied_description[0] == 2

    refused = cli(stack, ring, "keys", "retire", "--id", f"lr-{closed_q}")
    assert refused.returncode == 1 and "live thread" in refused.stderr
    assert "Traceback" not in refused.stderr

    later = row["erasure_due_at"] + timedelta(days=1)
    preview = lifecycle(stack, ring, later, "--dry-run")
    assert preview["erased"] == 1
    assert await db.fetchval("SELECT count(*) FROM threads") == 1  # a preview changes nothing

    report = lifecycle(stack, ring, later)
    assert report["erased"] == 1 and report["as_of"] == later.isoformat()
    assert lifecycle(stack, ring, later)["erased"] == 0  # idempotent

    # Its statistics survive it, naming none of it: no thread id, no activity time.
    facts = await db.fetch(
        "SELECT thread_id, activity_at, category_slug, is_open, first_reply_hours "
        "FROM statistics_facts"
    )
    assert len(facts) == 1 and facts[0]["thread_id"] is None and facts[0]["activity_at"] is None
    assert facts[0]["category_slug"] and not facts[0]["is_open"]
    assert facts[0]["first_reply_hours"] is not None  # the case worker's reply was counted

    for table in ("threads", "messages", "notes", "reporter_codes", "thread_clocks", "reminders"):
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE thread_id IS NOT NULL") == 0
    assert await db.fetchval("SELECT count(*) FROM sessions WHERE thread_id IS NOT NULL") == 0

    # "Who looked at what" survives, naming the erasure, never the case.
    audit = await db.fetch("SELECT action, thread_id, erasure_id FROM audit_log ORDER BY id")
    erasure_ids = {a["erasure_id"] for a in audit}
    assert len(erasure_ids) == 1 and next(iter(erasure_ids)).startswith("E-")
    assert all(a["thread_id"] is None for a in audit)
    assert {"view", "reply", "note", "status", "erased"} <= {a["action"] for a in audit}
    assert (
        await db.fetchval("SELECT count(*) FROM erasures WHERE id = ANY($1)", list(erasure_ids))
        == 1
    )

    server_major = int(await db.fetchval("SHOW server_version_num")) // 10000
    dump = leaks.pg_dump(stack.env["DATABASE_URL"], server_major)
    assert leaks.hits(dump, {**canary, "reference": sent.reference}) == []
    assert str(thread_id) not in dump

    async with aiohttp.ClientSession(
        base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as reporter:
        status, page = await reporter_logs_in(reporter, sent.code)
    assert status == 401 and canary["report"] not in page

    listing = json.loads(cli(stack, ring, "keys").stdout)["keys"]
    closed_key = next(k for k in listing if k["id"] == f"lr-{closed_q}")
    assert closed_key["threads"] == 0 and closed_key["retirable"]
    retired = cli(stack, ring, "keys", "retire", "--id", f"lr-{closed_q}")
    assert retired.returncode == 0, retired.stderr

    # A copy of the wrapped key (WAL, replica, backup) is useless once that key is retired.
    without = ",".join(p for p in ring.split(",") if not p.startswith(f"lr-{closed_q}:"))
    keyring = Keyring(parse_keyring(without))
    with pytest.raises(DecryptionError):
        keyring.unwrap(thread_id, copied_key)
    with pytest.raises(DecryptionError):
        keyring.thread_key(thread_id, copied_key)
    # ...and the keyring alone never opened the content: it needs the destroyed thread key.
    with pytest.raises(DecryptionError):
        keyring.open(copied_description, f"threads.description:{thread_id}")


async def test_a_thread_closed_for_inactivity_is_rewrapped_for_its_erasure_quarter(
    stack: Stack,
    db: asyncpg.Connection,
    caseworker: StaffAccount,
    quarter_web: tuple[str, str, str],
) -> None:
    """The pass closes a silent thread with one statement for many, then finds its key wrapped
    for the wrong quarter and rewraps it for the quarter of its new erasure date; the case
    worker still reads it."""
    ring, base, closed_q = quarter_web
    canary = "Canary-silent-" + secrets.token_hex(6)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base_url=base, cookie_jar=jar) as reporter:
        sent = await reporter_submits(reporter, canary)
    assert await db.fetchval("SELECT data_key_id FROM threads") != f"lr-{closed_q}"
    await db.execute("UPDATE threads SET last_activity_at = now() - interval '13 months'")

    assert lifecycle(stack, ring, datetime.now(UTC))["auto_closed"] == 1
    row = await db.fetchrow(
        "SELECT status, erasure_due_at, data_key_id, data_key_quarter FROM threads"
    )
    assert row["status"] == "closed"
    assert row["data_key_quarter"] == quarter_of(row["erasure_due_at"]) == closed_q
    assert row["data_key_id"] == f"lr-{closed_q}"
    async with aiohttp.ClientSession(
        base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as staff:
        await staff_logs_in(staff, caseworker.email, caseworker.password)
        assert canary in await form_page(staff, f"/staff/threads/{sent.reference}")

    # The pass first asks whether any wrap drifted at all (one sequential read), then walks.
    assert not await sql_lifecycle.any_drifted(db)
    await db.execute("UPDATE threads SET data_key_quarter = '2000q1'")
    assert await sql_lifecycle.any_drifted(db)
    lifecycle(stack, ring, datetime.now(UTC))
    assert await db.fetchval("SELECT data_key_quarter FROM threads") == closed_q
    assert not await sql_lifecycle.any_drifted(db)


async def test_reopening_restarts_retention_and_a_legal_hold_stops_erasure(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    ring = stack.env["CONFIDE_ENCRYPTION_KEYS"]
    manager = add_staff(stack, "mona@example.org", "safety", role="manager")
    first = await reporter_submits(http, "A report to reopen")
    second = await reporter_submits(http, "A report to hold")
    assert first.reference and second.reference
    async with aiohttp.ClientSession(
        base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as staff:
        await staff_logs_in(staff, caseworker.email, caseworker.password)
        for ref in (first.reference, second.reference):
            await staff_acts(staff, ref, "status", status="closed")
        # Both were closed long ago, as far as retention knows.
        await db.execute(
            """UPDATE threads SET closed_at = now() - interval '13 months',
                                  erasure_due_at = now() - interval '1 month'"""
        )
        await staff_acts(staff, first.reference, "status", status="open")
        reopened = await db.fetchrow(
            "SELECT closed_at, erasure_due_at FROM threads WHERE reference = $1", first.reference
        )
        assert reopened["closed_at"] is None and reopened["erasure_due_at"] is None
        await staff_acts(staff, first.reference, "status", status="closed")
        # A case worker cannot hold a thread: the form is not there for them.
        page = await form_page(staff, f"/staff/threads/{second.reference}")
        assert 'action="/staff/threads/' + second.reference + '/hold"' not in page

    async with aiohttp.ClientSession(
        base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as boss:
        await staff_logs_in(boss, manager.email, manager.password)
        status, page = await staff_acts(boss, second.reference, "hold", hold="1")
        assert status == 200 and "Legal hold" in page

    now = datetime.now(UTC)
    report = lifecycle(stack, ring, now)
    assert report["erased"] == 0  # the reopened one starts again; the held one is held
    rows = await db.fetch("SELECT reference, erasure_due_at FROM threads ORDER BY reference")
    due = {r["reference"]: r["erasure_due_at"] for r in rows}
    assert due[first.reference] > now + timedelta(days=360)

    async with aiohttp.ClientSession(
        base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as boss:
        await staff_logs_in(boss, manager.email, manager.password)
        await staff_acts(boss, second.reference, "hold", hold="0")
    # Lifted after its date had passed: it gets the whole warning period (10 working days, at
    # least two weeks), is warned, and only then erased.
    lifted = await db.fetchval(
        "SELECT erasure_due_at FROM threads WHERE reference = $1", second.reference
    )
    assert lifted > now + timedelta(days=13)
    next_pass = lifecycle(stack, ring, now + timedelta(hours=1))  # the next hourly pass
    assert next_pass["erased"] == 0 and next_pass["warned"] == 1
    assert lifecycle(stack, ring, lifted + timedelta(minutes=1))["erased"] == 1

    audit = await db.fetch("SELECT action, detail::text AS detail, erasure_id FROM audit_log")
    actions = [a["action"] for a in audit]
    assert "legal_hold_set" in actions and "legal_hold_lifted" in actions
    statuses = [a["detail"] for a in audit if a["action"] == "status"]
    assert any('"open"' in d for d in statuses)  # the reopening is audited
    held = [a for a in audit if a["action"].startswith("legal_hold")]
    assert all(a["erasure_id"] for a in held)  # erased since: named by its erasure id


async def test_erasure_leaves_no_plaintext_in_the_data_directory_or_the_wal(
    stack: Stack, tmp_path: Path
) -> None:
    """On an embedded PostgreSQL this test owns: after erasure and a checkpoint, no file of the
    server (heap, indexes, WAL) holds the thread's words."""
    from confide import db as confide_db
    from confide import devservices
    from confide import org as org_file
    from confide.context import Context
    from confide.models import NewReport
    from confide.services import lifecycle as lifecycle_service
    from confide.services import reports, threads
    from confide.services.org import sync_organisation
    from confide.services.workdays import WorkingCalendar

    embedded = devservices.Embedded()
    try:
        dsn = devservices.start_postgres(tmp_path, embedded, database="confide_lret_wal")
    except Exception as exc:  # pgserver needs its wheel and a usable system user
        pytest.skip(f"embedded PostgreSQL unavailable: {type(exc).__name__}")
    try:
        await confide_db.ensure_database(dsn)
        pool = await confide_db.create_pool(dsn, min_size=1, max_size=2)
        try:
            async with pool.acquire() as conn:
                await confide_db.migrate(conn)
            settings = stack.settings
            organisation = org_file.load(settings.org_file)
            ctx = Context(
                pool,
                settings,
                Keyring(parse_keyring(new_key("wal1"))),
                WorkingCalendar.for_org(organisation),
            )
            await sync_organisation(ctx, organisation)
            words = "Canary-wal-" + secrets.token_hex(8)
            answer = "Canary-answer-" + secrets.token_hex(8)
            receipt = await reports.submit_report(
                ctx,
                NewReport.model_validate(
                    {
                        "category": "safety",
                        "description": words,
                        "anonymous": True,
                        "follow_up": True,
                    },
                    context={"categories": {"safety"}},
                ),
                idempotency=None,
            )
            await threads.add_reporter_message(ctx, receipt.thread_id, answer, idempotency_key=None)
            async with pool.acquire() as conn:
                await conn.execute("UPDATE threads SET status = 'closed'")
                due = await conn.fetchval("SELECT erasure_due_at FROM threads")
            report = await lifecycle_service.run_pass(ctx, due + timedelta(days=1))
            assert report.erased == 1
            async with pool.acquire() as conn:
                await conn.execute("VACUUM")
                await conn.execute("CHECKPOINT")
                assert await conn.fetchval("SELECT count(*) FROM threads") == 0
        finally:
            await pool.close()
        scanned = 0
        for path in (tmp_path / "pg").rglob("*"):
            if not path.is_file():
                continue
            data = path.read_bytes()
            scanned += 1
            for secret in (words, answer):
                for variant in leaks.variants(secret):
                    assert variant.encode() not in data, (path.name, secret)
        assert scanned > 100  # heap, indexes and WAL segments were all read
        assert any("pg_wal" in str(p) for p in (tmp_path / "pg").rglob("0000*"))
    finally:
        embedded.stop()


async def test_staff_are_warned_before_erasure_and_a_manager_extends_retention_once(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    caseworker: StaffAccount,
    smtp: SmtpSink,
) -> None:
    ring = stack.env["CONFIDE_ENCRYPTION_KEYS"]
    manager = add_staff(stack, "mona@example.org", "safety", role="manager")
    sent = await reporter_submits(http, "A report to be kept a little longer")
    assert sent.reference
    reason = "Canary-reason-" + secrets.token_hex(6)
    async with aiohttp.ClientSession(
        base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as staff:
        await staff_logs_in(staff, caseworker.email, caseworker.password)
        await staff_acts(staff, sent.reference, "status", status="closed")
        await db.execute("UPDATE threads SET erasure_due_at = now() + interval '3 days'")
        page = await form_page(staff, f"/staff/threads/{sent.reference}")
        assert re.search(r"Erased (in \d working days?|at the next lifecycle pass)", page)
        inbox = await form_page(staff, "/staff?state=closed")
        assert sent.reference in inbox and "Erased " in inbox
        # Only managers extend or hold: a case worker's own POST is refused.
        form = next(f for f in html.forms(page) if f.action.endswith("/status"))
        async with staff.post(
            f"/staff/threads/{sent.reference}/extend",
            data={**form.fields, "extension": "1 month", "reason": "mine"},
        ) as resp:
            assert resp.status == 403
        assert 'id="extend"' not in page

    # The digest lists it among the team's threads to be erased in the warning period.
    await db.execute("UPDATE threads SET erasure_due_at = '2027-03-15T12:00Z'")
    result = confide_cli(stack, "escalate", "--as-of", "2027-03-10T10:00")
    assert result.returncode == 0, result.stderr
    assert "safety" in json.loads(result.stdout)["digests"]
    kick_relay(stack)
    [digest] = smtp.wait_for(lambda m: "digest" in str(m["Subject"]) and "safety" in str(m["To"]))
    body = digest.get_content()
    assert "To be erased" in body and sent.reference in body
    warned = lifecycle(stack, ring, datetime(2027, 3, 10, 10, tzinfo=UTC))
    assert warned["warned"] == 1 and warned["erased"] == 0
    assert lifecycle(stack, ring, datetime(2027, 3, 10, 10, tzinfo=UTC))["warned"] == 0

    async with aiohttp.ClientSession(
        base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as boss:
        await staff_logs_in(boss, manager.email, manager.password)
        status, page = await staff_acts(
            boss, sent.reference, "extend", extension="13 months", reason=reason
        )
        assert status == 422 and "at most the category" in page and reason in page
        status, page = await staff_acts(boss, sent.reference, "extend", extension="6 months")
        assert status == 422 and "Give a reason" in page
        status, page = await staff_acts(
            boss, sent.reference, "extend", extension="6 months", reason=reason
        )
        assert status == 200 and "Retention extended" in page and 'id="extend"' not in page
        csrf = next(f for f in html.forms(page) if f.action.endswith("/status")).fields
        async with boss.post(
            f"/staff/threads/{sent.reference}/extend",
            data={**csrf, "extension": "1 month", "reason": reason},
        ) as resp:
            assert resp.status == 422 and "extended already" in await resp.text()
    row = await db.fetchrow(
        "SELECT erasure_due_at, retention_extension_reason, data_key_quarter FROM threads"
    )
    assert row["erasure_due_at"] == datetime(2027, 9, 15, 12, tzinfo=UTC)
    assert row["data_key_quarter"] == "2027q3"  # rewrapped for the new quarter
    assert reason.encode() not in bytes(row["retention_extension_reason"])
    audit = await db.fetch("SELECT action, detail::text AS detail FROM audit_log")
    extended = [a for a in audit if a["action"] == "retention_extended"]
    assert len(extended) == 1 and "6 months" in extended[0]["detail"]
    assert reason not in str([dict(a) for a in audit])
    assert lifecycle(stack, ring, datetime(2027, 3, 16, tzinfo=UTC))["erased"] == 0
    assert reason not in smtp.raw() and reason not in stack.logs()


async def test_a_manager_reads_the_audit_of_an_erased_thread_by_its_erasure_id(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    manager = add_staff(stack, "mona@example.org", "safety", role="manager")
    other = add_staff(stack, "hana@example.org", "hr", role="manager")
    sent = await reporter_submits(http, "A report to be erased and audited")
    assert sent.reference
    async with aiohttp.ClientSession(
        base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as staff:
        await staff_logs_in(staff, caseworker.email, caseworker.password)
        await staff_acts(staff, sent.reference, "status", status="closed")
    due = await db.fetchval("SELECT erasure_due_at FROM threads")
    lifecycle(stack, stack.env["CONFIDE_ENCRYPTION_KEYS"], due + timedelta(days=1))
    erasure_id = await db.fetchval("SELECT erasure_id FROM audit_log WHERE action = 'erased'")
    for account, sees in ((manager, True), (other, False)):
        async with aiohttp.ClientSession(
            base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as browser:
            await staff_logs_in(browser, account.email, account.password)
            page = await form_page(browser, "/staff/audit")
        assert (erasure_id in page) is sees, account.email
        assert sent.reference not in page
        if sees:
            assert "Erased at the end of its retention period" in page


async def test_closing_a_thread_while_the_erasure_pass_deletes_it_answers_not_found(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    """The case worker's page was loaded before the pass; their "Close" arrives while the pass's
    DELETE is uncommitted. It waits on the thread's row and then finds it gone: 404, never 500."""
    sent = await reporter_submits(http, "A report erased while a case worker closes it")
    assert sent.reference
    async with aiohttp.ClientSession(
        base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as staff:
        await staff_logs_in(staff, caseworker.email, caseworker.password)
        page = await form_page(staff, f"/staff/threads/{sent.reference}")
        form = next(f for f in html.forms(page) if f.action.endswith("/status"))
        eraser = await asyncpg.connect(stack.env["DATABASE_URL"])
        try:
            erasing = eraser.transaction()
            await erasing.start()
            await eraser.execute("DELETE FROM threads WHERE reference = $1", sent.reference)
            closing = asyncio.ensure_future(post(staff, form.action, form.data(status="closed")))
            await asyncio.sleep(0.5)
            assert not closing.done()  # it waits for the pass, on the thread's row
            await erasing.commit()
            status, answer = await closing
        finally:
            await eraser.close()
    assert status == 404, answer
    assert "Traceback" not in answer
    assert await db.fetchval("SELECT count(*) FROM threads") == 0


async def test_a_restricted_thread_due_for_erasure_is_told_only_to_its_manager(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    caseworker: StaffAccount,
    smtp: SmtpSink,
) -> None:
    """The shared address never hears of a restricted thread, so the warning before its erasure
    goes in a personal digest to the people who may see it: the team's manager here."""
    manager = add_staff(stack, "mona@example.org", "safety", role="manager")
    hidden = await reporter_submits(http, "A restricted report near its erasure")
    shared = await reporter_submits(http, "An unrestricted report near its erasure")
    assert hidden.reference and shared.reference
    async with aiohttp.ClientSession(
        base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as boss:
        await staff_logs_in(boss, manager.email, manager.password)
        status, _ = await staff_acts(boss, hidden.reference, "restrict", restricted="1")
        assert status == 200
        for ref in (hidden.reference, shared.reference):
            status, _ = await staff_acts(boss, ref, "status", status="closed")
            assert status == 200
    await db.execute("UPDATE threads SET erasure_due_at = '2027-03-15T12:00Z'")
    result = confide_cli(stack, "escalate", "--as-of", "2027-03-10T10:00")
    assert result.returncode == 0, result.stderr
    kick_relay(stack)
    [personal_mail] = smtp.wait_for(
        lambda m: "digest" in str(m["Subject"]) and str(m["To"]) == manager.email
    )
    [team_mail] = smtp.wait_for(
        lambda m: "digest" in str(m["Subject"]) and "safety@" in str(m["To"])
    )
    team, personal = team_mail.get_content(), personal_mail.get_content()
    assert shared.reference in team and hidden.reference not in team
    assert "To be erased" in personal and hidden.reference in personal
    assert shared.reference not in personal
    await asyncio.sleep(1)
    assert caseworker.email not in [str(m["To"]) for m in smtp.messages]
