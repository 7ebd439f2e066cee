"""What ops is alerted on, held to Prometheus's own tools (issue 12, finding 15): task counters
that start at 0, promtool unit tests for every alert, and digests that say how long a thread
has really waited."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import pytest
import yaml

from confide import devservices, jobs
from confide.services.workdays import WorkingCalendar
from tests.conftest import Proc, SmtpSink, Stack, confide_cli, kick_relay

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus"
TASKS = [jobs.STORE_CODE_VERIFIER, jobs.CHECK_CODE, jobs.DELIVER, jobs.RELAY_OUTBOX, jobs.ESCALATE]


def sample(text: str, name: str, task: str) -> float | None:
    match = re.search(rf'^{re.escape(name)}\{{name="{re.escape(task)}"\}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else None


def test_ops_sees_every_task_counted_from_zero_on_a_fresh_worker(stack: Stack) -> None:
    """Before any task ran, each one's failed/retried/succeeded counters exist at 0, so the first
    failure is an increase that ConfideTaskFailing sees."""
    port = devservices.free_port()
    env = dict(stack.env, CONFIDE_WORKER_METRICS_PORT=str(port))
    fresh = Proc(
        "worker-fresh",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.celery_app",
            "worker",
            "-Q",
            "idle-for-metrics",  # takes none of the stack's work: no task runs in it
            "-c",
            "1",
            "-n",
            "fresh-worker@%h",
            "--without-mingle",
            "--without-gossip",
        ],
        env,
        stack.artifacts / "worker-fresh.log",
    )
    fresh.start()
    try:
        text = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    text = r.read().decode()
                if all(sample(text, "celery_task_failed_total", t) is not None for t in TASKS):
                    break
            except OSError:
                pass
            time.sleep(0.3)
        for task in TASKS:
            for counter in ("failed", "retried", "succeeded"):
                value = sample(text, f"celery_task_{counter}_total", task)
                assert value == 0, (task, counter, value, fresh.log_text()[-2000:])
        assert "celery." not in "".join(re.findall(r'name="([^"]+)"', text))  # ours only
    finally:
        fresh.stop()


def promtool() -> str:
    found = os.environ.get("CONFIDE_PROMTOOL") or shutil.which("promtool")
    if found is None and os.path.exists("/usr/bin/promtool"):
        found = "/usr/bin/promtool"
    if found is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("promtool is missing under CI: scripts/ensure-promtool installs it")
        pytest.skip("promtool not found (apt-get install prometheus, or `make ops-deps`)")
    return found


def test_every_alert_passes_promtool_check_and_its_unit_tests() -> None:
    tool = promtool()
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        result = subprocess.run(
            [tool, *args], cwd=RULES, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    # Every alert has at least one case where it fires and one where it must not.
    rules = yaml.safe_load((RULES / "alerts.yml").read_text())
    alerts = {r["alert"] for group in rules["groups"] for r in group["rules"] if "alert" in r}
    cases = yaml.safe_load((RULES / "alerts.test.yml").read_text())
    fires: set[str] = set()
    quiet: set[str] = set()
    for test in cases["tests"]:
        for case in test.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert alerts and alerts <= fires, alerts - fires
    assert alerts <= quiet, alerts - quiet


async def test_a_digest_for_a_later_pass_says_how_long_an_overdue_thread_has_waited(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection, smtp: SmtpSink
) -> None:
    """`confide escalate --as-of` days after a report: its digest counts the working hours to
    that moment, not to when the mail was queued (which was "waited 0.0 working hours")."""
    body = {"category": "safety", "description": "Loose cable", "anonymous": True}
    async with http.post("/api/v1/reports", json={**body, "follow_up": True}) as resp:
        assert resp.status == 201, await resp.text()
        reference = (await resp.json())["reference"]
    as_of = "2027-03-10T10:00"
    result = confide_cli(stack, "escalate", "--as-of", as_of)
    assert result.returncode == 0, result.stderr
    kick_relay(stack)
    [digest] = smtp.wait_for(
        lambda m: "digest" in str(m["Subject"]) and "safety" in str(m["To"]), timeout=30
    )
    await asyncio.sleep(0.5)
    line = next(x for x in digest.get_content().splitlines() if reference in x)
    assert "OVERDUE" in line, line
    hours = float(re.search(r"waited ([0-9.]+) working hours", line).group(1))  # type: ignore[union-attr]
    since = await db.fetchval("SELECT awaiting_since FROM threads WHERE reference = $1", reference)
    moment = datetime.fromisoformat(as_of).replace(tzinfo=ZoneInfo("Europe/London"))
    expected = WorkingCalendar().working_time_between(since, moment).total_seconds() / 3600
    assert hours == round(expected, 1), (line, expected)
    assert hours > 16  # past the 2-working-day limit, as OVERDUE says
