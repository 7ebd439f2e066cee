"""Ops see queues, workers, deadlines and failures (issue 6)."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from celery import Celery

from tests import html
from tests.conftest import Proc, SmtpSink, Stack, add_staff, kick_relay
from tests.journeys import (
    form_page,
    post,
    reporter_logs_in,
    reporter_sends,
    reporter_submits,
    staff_acts,
    staff_logs_in,
)

ROOT = Path(__file__).resolve().parent.parent


def metric(text: str, metric_name: str, **labels: str) -> float | None:
    label_text = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = (
        re.escape(metric_name)
        + (r"\{" + re.escape(label_text) + r"\}" if labels else "")
        + r" (\S+)"
    )
    match = re.search(r"^" + pattern + r"$", text, re.M)
    return float(match.group(1)) if match else None


async def scrape(http: aiohttp.ClientSession) -> str:
    async with http.get("/metrics") as resp:
        assert resp.status == 200
        return await resp.text()


async def test_queue_length_counts_waiting_tasks_and_drops_when_workers_resume(
    stack: Stack, http: aiohttp.ClientSession, worker: Proc
) -> None:
    worker.stop()
    stack.beat.stop()  # beat would add its own periodic tasks to the count
    try:
        await asyncio.sleep(0.5)
        before = metric(await scrape(http), "celery_queue_length", queue_name="default") or 0
        client = Celery("probe", broker=stack.env["REDIS_URL"])
        try:
            for _ in range(50):
                client.send_task("confide.relay_outbox", queue="default")
        finally:
            client.close()
        text = await scrape(http)
        assert metric(text, "celery_queue_length", queue_name="default") == before + 50
        assert metric(text, "celery_queue_length", queue_name="hashing") == 0
    finally:
        stack.beat.start()
    worker.start()
    # Messages that a worker SIGKILLed by an earlier test left unacknowledged stay counted
    # until the visibility timeout hands them back; they were in ``before`` too.
    for _ in range(120):
        left = metric(await scrape(http), "celery_queue_length", queue_name="default")
        if left is not None and left <= before:
            break
        await asyncio.sleep(0.5)
    left = metric(await scrape(http), "celery_queue_length", queue_name="default")
    assert left is not None and left <= before
    # The worker host exports task outcomes on its own metrics port.
    port = stack.env["CONFIDE_WORKER_METRICS_PORT"]
    for _ in range(20):
        async with (
            aiohttp.ClientSession() as scraper,
            scraper.get(f"http://127.0.0.1:{port}/metrics") as resp,
        ):
            worker_text = await resp.text()
        done = metric(worker_text, "celery_task_succeeded_total", name="confide.relay_outbox")
        if done and done >= 50:
            break
        await asyncio.sleep(0.5)
    assert done is not None and done >= 50
    assert "celery_task_runtime_seconds_bucket" in worker_text


async def test_a_stopped_worker_shows_as_down_and_comes_back(
    stack: Stack, db: asyncpg.Connection, worker: Proc
) -> None:
    _web, base = stack.start_web("web-ops", CONFIDE_WORKER_DOWN_AFTER_S="3")
    ops = add_staff(stack, "olly@example.org", "safety", role="ops")
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base_url=base, cookie_jar=jar) as browser:
        await staff_logs_in(browser, ops.email, ops.password)
        worker.stop()
        for _ in range(40):
            text = await scrape(browser)
            if metric(text, "celery_active_worker_count") == 0:
                break
            await asyncio.sleep(0.5)
        assert metric(text, "celery_active_worker_count") == 0
        page = await form_page(browser, "/ops")
        assert re.search(r"Workers <span class=\"status status--down\">", page)
        worker.start()
        await asyncio.sleep(0.5)
        for _ in range(60):
            text = await scrape(browser)
            if metric(text, "celery_active_worker_count") == 1:
                break
            await asyncio.sleep(0.5)
        assert metric(text, "celery_active_worker_count") == 1
        up = [line for line in text.splitlines() if line.startswith("celery_worker_up{")]
        assert any(line.endswith(" 1.0") for line in up)
        page = await form_page(browser, "/ops")
        assert "hashing" in page and "default" in page


def _pool_processes(worker: Proc) -> set[int]:
    """The live pool processes of the worker (its main process's children, zombies left out)."""
    assert worker.proc is not None
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == worker.proc.pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


async def test_pool_processes_started_in_place_of_killed_ones_run_their_tasks(
    stack: Stack, db: asyncpg.Connection, http: aiohttp.ClientSession, worker: Proc
) -> None:
    """A pool process killed (SIGKILL, or by the kernel for memory) is replaced by a fresh fork
    of the worker's main process, after the worker was ready. The replacements run tasks like
    the first ones: a report's alert is still sent. (They used to fail every task with
    prometheus_client's DuplicateTimeseries: the counters the main process made for the metrics
    were made again in the fork. `make chaos` found it.)"""
    import os
    import signal

    killed = _pool_processes(worker)
    assert len(killed) == 2, killed
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    for _ in range(120):
        fresh = _pool_processes(worker) - killed
        if len(fresh) == 2:
            break
        await asyncio.sleep(0.25)
    assert len(fresh) == 2, fresh
    log = stack.artifacts / "worker.log"
    before = log.read_text(errors="replace").count("DuplicateTimeseries")
    async with http.post(
        "/api/v1/reports",
        json={"category": "safety", "description": "The fire door is propped open again.",
              "anonymous": True, "follow_up": False},
    ) as resp:  # fmt: skip
        assert resp.status == 201, await resp.text()
        reference = (await resp.json())["reference"]
    for _ in range(120):
        kick_relay(stack)
        sent = await db.fetchval(
            """SELECT o.sent_at IS NOT NULL FROM outbox o JOIN threads t ON t.id = o.thread_id
               WHERE t.reference = $1 AND o.kind = 'new_report'""",
            reference,
        )
        if sent:
            break
        await asyncio.sleep(0.5)
    assert sent, "the report's alert was never sent by the new pool processes"
    assert log.read_text(errors="replace").count("DuplicateTimeseries") == before


async def test_failed_work_lands_in_the_dead_letter_list_and_retry_sends_it(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    smtp: SmtpSink,
) -> None:
    ops = add_staff(stack, "olly@example.org", "safety", role="ops")
    smtp.refuse = True
    async with http.post(
        "/api/v1/reports", json={"category": "safety", "description": "x", "anonymous": True}
    ) as resp:
        reference = (await resp.json())["reference"]
    # As if it had failed seven times already: the next failure is its last.
    await db.execute(
        "UPDATE outbox SET attempts = $1 - 1, next_attempt_at = now()",
        stack.settings.outbox_max_attempts,
    )
    for _ in range(60):
        kick_relay(stack)
        if await db.fetchval("SELECT count(*) FROM outbox WHERE failed_at IS NOT NULL"):
            break
        await asyncio.sleep(0.5)
    text = await scrape(http)
    assert metric(text, "confide_outbox_dead_letters") == 1
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base_url=stack.base_url, cookie_jar=jar) as browser:
        await staff_logs_in(browser, ops.email, ops.password)
        page = await form_page(browser, "/ops")
        # The failed mail's kind and id, never the thread it was about: ops sees no thread.
        assert "SMTP" in page and reference not in page and "Failed work" in page
        form = next(f for f in html.forms(page) if f.action == "/ops/dead-letters/retry")
        async with browser.post(
            form.action, data={"outbox_id": form.fields["outbox_id"], "csrf_token": "forged"}
        ) as resp:
            assert resp.status == 403
        smtp.refuse = False
        status, page = await post(browser, form.action, form.fields)
        assert status == 200 and "Done." in page
        smtp.wait_for(lambda m: reference in str(m["Subject"]))
        for _ in range(20):
            page = await form_page(browser, "/ops")
            if "No failed work." in page:
                break
            await asyncio.sleep(0.5)
        assert "No failed work." in page
    actions = [r["action"] for r in await db.fetch("SELECT action FROM audit_log")]
    assert "ops_retry" in actions


async def test_only_ops_open_the_dashboard_and_metrics_need_loopback_or_token(
    stack: Stack, http: aiohttp.ClientSession, caseworker: object
) -> None:
    from tests.conftest import StaffAccount

    assert isinstance(caseworker, StaffAccount)
    await staff_logs_in(http, caseworker.email, caseworker.password)
    async with http.get("/ops") as resp:
        assert resp.status == 403
    # The access rule itself, for a request from another host (no other host exists here).
    from webapp.app import create_app
    from webapp.metrics import allowed

    app = create_app(
        stack.settings.__class__.from_env({**stack.env, "CONFIDE_METRICS_TOKEN": "s3cret"})
    )

    def request(peer: str, token: str | None = None) -> web.Request:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        transport = type(
            "T",
            (),
            {
                "get_extra_info": lambda self, name, d=None: (
                    (peer, 1234) if name == "peername" else d
                )
            },
        )()
        return make_mocked_request("GET", "/metrics", headers=headers, app=app, transport=transport)

    assert allowed(request("127.0.0.1"))
    assert allowed(request("::1"))
    assert not allowed(request("203.0.113.9"))
    assert not allowed(request("203.0.113.9", "wrong"))
    assert allowed(request("203.0.113.9", "s3cret"))


async def test_metrics_carry_no_personal_data_and_logs_keep_to_the_allow_list(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    caseworker: object,
    smtp: SmtpSink,
) -> None:
    from tests.conftest import StaffAccount

    assert isinstance(caseworker, StaffAccount)
    words = f"CANARY{secrets.token_hex(6).upper()}"
    reply = f"CANARY{secrets.token_hex(6).upper()}"
    sent = await reporter_submits(http, f"A full journey {words}")
    assert sent.code and sent.reference
    await reporter_logs_in(http, sent.code)
    await reporter_sends(http, f"More {words}")
    async with aiohttp.ClientSession(
        base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as staff:
        await staff_logs_in(staff, caseworker.email, caseworker.password)
        await staff_acts(staff, sent.reference, "reply", body=reply)
    kick_relay(stack)
    await asyncio.sleep(2)
    text = await scrape(http)
    for secret in (words, reply, sent.code, sent.reference, caseworker.email, "127.0.0.1"):
        assert secret not in text
    documented = set(
        re.findall(r"^\| `([a-z_]+)`", (ROOT / "docs" / "logging.md").read_text(), re.M)
    )
    for extra in re.findall(r"`([a-z_]+)`", (ROOT / "docs" / "logging.md").read_text()):
        documented.add(extra)
    lines = 0
    for line in stack.logs().splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        lines += 1
        assert set(record) <= documented, set(record) - documented
        for secret in (words, reply, sent.code, caseworker.email, caseworker.password):
            assert secret not in line
    assert lines > 20
    # The names the alert rules rely on are all exported.
    for name in (
        "celery_queue_length",
        "celery_active_worker_count",
        "confide_threads_overdue",
        "confide_outbox_oldest_age_seconds",
        "confide_outbox_dead_letters",
        "confide_beat_last_tick_timestamp_seconds",
        "confide_login_rate_limited_total",
    ):
        assert f"\n{name}" in "\n" + text, name
