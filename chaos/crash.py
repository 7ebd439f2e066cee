"""Crash and restart: load the real system while killing its parts, then count what was lost.

20 clients send reports, reporter messages and case-worker replies through the API, each with an
``Idempotency-Key`` that it reuses when it retries, and each recording what it was told. Meanwhile,
on a seeded schedule, a child or the main process of the worker or of the ``files`` worker is
SIGKILLed every 3–7 s and restarted; Redis is SIGKILLed and restarted on its AOF; later SIGKILLed
and restarted with an empty data directory; and PostgreSQL is stopped for 5 s. Reporters also
upload files and attach them (issue 17; :mod:`chaos.crash_files`), and four times the files
worker's children are SIGKILLed while a file is being stripped. After draining, the figures come
from PostgreSQL, the SMTP server and the clients' records (see docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from chaos import crash_files
from chaos import files as chaos_files
from chaos.procs import ROOT, Proc
from chaos.servers import PrivatePostgres, PrivateRedis, SmtpSink, free_port
from confide import devservices, jobs
from confide.services.sign_in_notices import NEW_SIGN_IN, PASSWORD_KNOWN

# Every kind of outbox row that is a mail: staff sign-ins (the chaos case worker's) send notices.
MAIL_KINDS = (
    "new_report",
    "new_message",
    "acknowledgement",
    "digest",
    "overdue_alert",
    NEW_SIGN_IN,
    PASSWORD_KNOWN,
)
MAIL_DOMAIN = "chaos.example"
STAFF_EMAIL = "chaos-caseworker@example.org"


@dataclass
class Plan:
    reports: int
    messages: int
    replies: int
    clients: int = 20
    seed: int = 7
    unsafe: bool = False  # the negative control: outbox relay and late acks off
    drain_timeout_s: float = 300.0
    duration_s: float = 60.0  # the clients pace themselves to spread the load over this long
    files: bool = True  # reporters attach files (off for the negative control)
    scans: int = 6  # large files (a few MiB each), stripped slowly enough to be killed mid-file


@dataclass
class ClientLog:
    """What the clients were told."""

    report_keys: set[str] = field(default_factory=set)
    acknowledged_reports: set[str] = field(default_factory=set)  # references
    message_keys: Counter[str] = field(default_factory=Counter)  # reference -> keys tried
    acknowledged_messages: Counter[str] = field(default_factory=Counter)
    reply_keys: Counter[str] = field(default_factory=Counter)
    acknowledged_replies: Counter[str] = field(default_factory=Counter)
    status_5xx_other: Counter[str] = field(default_factory=Counter)
    status_503: int = 0
    gave_up: int = 0
    files_sent: dict[str, list[str]] = field(default_factory=dict)  # reference -> kinds accepted
    uploads: Counter[str] = field(default_factory=Counter)  # sent, accepted
    files_refused: Counter[str] = field(default_factory=Counter)


@dataclass
class Figures:
    acknowledged_but_missing: int
    duplicate_reports: int
    duplicate_messages: int
    undelivered_effects: int
    duplicate_effects: int
    smtp_window_resends: int
    other_5xx: int
    answers_503: int
    gave_up: int
    drain_s: float
    load_s: float
    events: list[str]
    details: dict[str, Any]
    files: crash_files.FileFigures | None = None  # None: the run sent no files

    def counting_ok(self) -> bool:
        return (
            self.acknowledged_but_missing == 0
            and self.duplicate_reports == 0
            and self.duplicate_messages == 0
            and self.undelivered_effects == 0
            and self.duplicate_effects == 0
            and self.other_5xx == 0
            and (self.files is None or self.files.ok())
        )

    def losses(self) -> int:
        lost = self.acknowledged_but_missing + self.undelivered_effects
        if self.files is not None:
            lost += self.files.missing + self.files.not_prepared
        return lost


class System:
    """Private servers plus Confide's web, worker and beat, all under ``root``."""

    def __init__(self, root: Path, plan: Plan) -> None:
        self.root = root
        self.plan = plan
        self.pg = PrivatePostgres(root)
        self.redis = PrivateRedis(root)
        self.smtp = SmtpSink()
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env: dict[str, str] = {}
        self.env_overrides: dict[str, str | None] = {}  # None removes a harness default
        self.procs: dict[str, Proc] = {}
        self.web_module = ""  # the canary scan's instrumented web (chaos.inspect_web)

    def start(self) -> None:
        self.pg.init()
        self.pg.start()
        self.redis.start()
        self.smtp.start()
        env = devservices.foreign_environ()
        env.update(devservices.fresh_keys("c1"))
        env.update(
            DATABASE_URL=self.pg.url,
            REDIS_URL=self.redis.url,
            SMTP_URL=f"smtp://127.0.0.1:{self.smtp.port}",
            MAIL_FROM=f"confide@{MAIL_DOMAIN}",
            PORT=str(self.port),
            CONFIDE_ENV="development",
            CONFIDE_DATA_DIR=str(self.root / "data"),
            CONFIDE_ARGON2_TIME_COST="1",
            CONFIDE_ARGON2_MEMORY_KIB="1024",
            # 20 clients on one address: the limits are not what this run measures.
            CONFIDE_SUBMIT_PER_CLIENT_PER_HOUR="1000000",
            CONFIDE_SUBMIT_GLOBAL_PER_MINUTE="1000000",
            CONFIDE_UPLOAD_PER_CLIENT_PER_HOUR="1000000",
            CONFIDE_UPLOAD_GLOBAL_PER_MINUTE="1000000",
            CONFIDE_LOGIN_PER_CLIENT_PER_15MIN="1000000",
            CONFIDE_STAFF_LOGIN_PER_CLIENT_ACCOUNT_PER_15MIN="1000000",
            CONFIDE_STAFF_LOGIN_PER_CLIENT_PER_15MIN="1000000",
            CONFIDE_STAFF_LOGIN_GLOBAL_PER_MINUTE="1000000",
            CONFIDE_WORKER_METRICS_PORT=str(free_port()),
            PYTHONUNBUFFERED="1",
            # Every process's temporary files (the files worker's stripping folders) where the
            # canary scan reads them.
            TMPDIR=str(self.root / "tmp"),
        )
        for key, value in self.env_overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        self.env = env
        (self.root / "tmp").mkdir(exist_ok=True)
        self.cli("migrate")
        password = secrets.token_urlsafe(16)
        self.staff_password = password
        self.cli(
            "staff",
            "add",
            "--email",
            STAFF_EMAIL,
            "--name",
            "Chaos",
            "--team",
            "safety",
            stdin=password + "\n",
        )
        python = sys.executable
        worker_module = ["-m", "chaos.unsafe_worker"] if self.plan.unsafe else ["-m", "celery"]
        worker_app = [] if self.plan.unsafe else ["-A", "workers.celery_app"]
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        self.procs = {
            "web": Proc(
                "web",
                [
                    python,
                    "-m",
                    self.web_module or ("chaos.unsafe_web" if self.plan.unsafe else "webapp"),
                ],
                env,
                logs / "web.log",
            ),
            "worker": Proc(
                "worker",
                [
                    python,
                    *worker_module,
                    *worker_app,
                    "worker",
                    "-Q",
                    ",".join(q for q in jobs.QUEUES if q != jobs.FILES_QUEUE),
                    "-c",
                    "2",
                    "-n",
                    "chaos@%h",
                    "--without-mingle",
                    "--without-gossip",
                    "--loglevel",
                    "INFO",
                ],
                env,
                logs / "worker.log",
            ),
            # Stripping on its own worker, as compose.yaml and the Procfile run it.
            "files": Proc(
                "files",
                [
                    python,
                    *worker_module,
                    *worker_app,
                    "worker",
                    "-Q",
                    jobs.FILES_QUEUE,
                    "-c",
                    "2",
                    "-n",
                    "chaos-files@%h",
                    "--without-mingle",
                    "--without-gossip",
                    "--loglevel",
                    "INFO",
                ],
                # Its own metrics port: two workers cannot serve on one.
                {**env, "CONFIDE_WORKER_METRICS_PORT": str(free_port())},
                logs / "worker-files.log",
            ),
            "beat": Proc(
                "beat",
                [python, "-m", "celery", "-A", "workers.celery_app", "beat", "--loglevel", "INFO"],
                env,
                logs / "beat.log",
            ),
        }
        for proc in self.procs.values():
            proc.start()
        _wait_http(self.base_url + "/healthz", 60)

    def cli(self, *args: str, stdin: str = "") -> str:
        result = subprocess.run(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "confide.cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=self.env,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"confide {' '.join(args[:2])}: {result.stderr.strip()[-500:]}")
        return result.stdout

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()
        self.smtp.stop()
        self.redis.destroy()
        self.pg.destroy()


def _wait_http(url: str, timeout: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - our loopback URL
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s")


# --- Clients -------------------------------------------------------------------------------------

RETRY_FOR_S = 90.0


async def _send(
    http: aiohttp.ClientSession,
    record: ClientLog,
    method: str,
    path: str,
    *,
    body: dict[str, Any] | None = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    ok: tuple[int, ...] = (200, 201),
    refused: tuple[int, ...] = (),
) -> dict[str, Any] | None:
    """Send until answered with ``ok`` (the same idempotency key each time), or give up. An
    answer in ``refused`` is counted (``files_refused``) and not retried."""
    deadline = time.monotonic() + RETRY_FOR_S
    while time.monotonic() < deadline:
        try:
            async with http.request(
                method,
                path,
                json=body if raw is None else None,
                data=raw,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=20),
            ) as resp:
                if resp.status in ok:
                    data: dict[str, Any] = await resp.json() if resp.content_length != 0 else {}
                    return data
                if resp.status in refused:
                    record.files_refused[f"{method} {path.split('/')[3]} {resp.status}"] += 1
                    return None
                if resp.status == 503:
                    record.status_503 += 1
                elif resp.status >= 500:
                    record.status_5xx_other[f"{method} {path.split('/')[3]} {resp.status}"] += 1
                elif resp.status not in (409, 429):  # 409: the first try is still running
                    text = (await resp.text())[:200]
                    raise RuntimeError(f"{method} {path}: {resp.status} {text}")
        except (TimeoutError, aiohttp.ClientError):
            pass  # the outcome is unknown: send the same request again
        await asyncio.sleep(0.3)
    record.gave_up += 1
    return None


async def _pause(pace_s: float) -> None:
    await asyncio.sleep(pace_s * (0.5 + random.random()))  # noqa: S311 - jitter, not a secret


async def _upload(
    http: aiohttp.ClientSession,
    record: ClientLog,
    files: chaos_files.FileSet,
    kind: str,
    n: int,
    auth: dict[str, str],
) -> str | None:
    """One file to ``POST /api/v1/uploads``; its upload id, or None (refused, or given up)."""
    body, content_type = chaos_files.multipart(
        files.data[kind], files.name(kind, n), chaos_files.MIME[kind]
    )
    record.uploads["sent"] += 1
    got = await _send(
        http, record, "POST", crash_files.UPLOAD_PATH, raw=body,
        headers={**auth, "Content-Type": content_type}, ok=(201,), refused=(413, 415, 422),
    )  # fmt: skip
    if got is None:
        return None
    record.uploads["accepted"] += 1
    return str(got["upload_id"])


async def _uploads(
    http: aiohttp.ClientSession,
    record: ClientLog,
    files: chaos_files.FileSet,
    kinds: list[str],
    auth: dict[str, str],
) -> tuple[list[str], list[str]]:
    """Upload each of ``kinds``; the upload ids and the kinds of those accepted."""
    ids, sent = [], []
    for n, kind in enumerate(kinds):
        upload_id = await _upload(http, record, files, kind, n, auth)
        if upload_id is not None:
            ids.append(upload_id)
            sent.append(kind)
    return ids, sent


def _kinds(rng: random.Random, scan: bool) -> list[str]:
    """What one report attaches: nothing half the time, else one or two photos or letters, now
    and then the damaged picture; and the large scan when ``scan``."""
    kinds: list[str] = []
    if rng.random() < 0.5:
        count = rng.randint(1, 2)
        kinds = rng.choices(("photo", "letter", chaos_files.DAMAGED), weights=(5, 4, 1), k=count)
    return [*kinds, "scan"] if scan else kinds


async def _reporter(
    http: aiohttp.ClientSession,
    record: ClientLog,
    n_reports: int,
    n_messages: int,
    tag: str,
    pace_s: float,
    files: chaos_files.FileSet | None = None,
    scan_at: int = -1,
) -> None:
    follow_up_ref = None
    code = None
    rng = random.Random(f"{tag}-files")  # noqa: S311 - a repeatable choice, not a secret
    for i in range(n_reports):
        await _pause(pace_s)
        key = f"{tag}-r{i}-{uuid.uuid4()}"
        record.report_keys.add(key)
        wants_code = i == 0 and n_messages > 0
        ids: list[str] = []
        sent: list[str] = []
        if files is not None:
            ids, sent = await _uploads(http, record, files, _kinds(rng, i == scan_at), {})
        got = await _send(
            http,
            record,
            "POST",
            "/api/v1/reports",
            body={
                "category": "safety",
                "description": f"Chaos report {key}",
                "anonymous": True,
                "follow_up": wants_code,
                **({"attachments": ids} if ids else {}),
            },
            headers={"Idempotency-Key": key},
            refused=(422,) if ids else (),
        )
        if got is not None:
            record.acknowledged_reports.add(got["reference"])
            if sent:
                record.files_sent.setdefault(got["reference"], []).extend(sent)
            if wants_code:
                follow_up_ref, code = got["reference"], got.get("code")
    if follow_up_ref is None or not code:
        return
    session = await _send(http, record, "POST", "/api/v1/reporter/session", body={"code": code})
    if session is None:
        return
    auth = {"Authorization": f"Bearer {session['token']}"}
    for j in range(n_messages):
        await _pause(pace_s)
        key = f"{tag}-m{j}-{uuid.uuid4()}"
        record.message_keys[follow_up_ref] += 1
        ids, sent = [], []
        if files is not None and j % 2 == 0:  # every other message carries a photo
            ids, sent = await _uploads(http, record, files, ["photo"], auth)
        got = await _send(
            http,
            record,
            "POST",
            "/api/v1/reporter/messages",
            body={"body": f"Chaos message {key}", **({"attachments": ids} if ids else {})},
            headers={**auth, "Idempotency-Key": key},
            refused=(422,) if ids else (),
        )
        if got is not None:
            record.acknowledged_messages[follow_up_ref] += 1
            if sent:
                record.files_sent.setdefault(follow_up_ref, []).extend(sent)


async def _caseworker(
    http: aiohttp.ClientSession,
    record: ClientLog,
    password: str,
    replies: int,
    done: asyncio.Event,
    pace: float,
) -> None:
    session = await _send(
        http,
        record,
        "POST",
        "/api/v1/staff/session",
        body={"email": STAFF_EMAIL, "password": password},
    )
    if session is None:
        return
    auth = {"Authorization": f"Bearer {session['token']}"}
    sent = 0
    rng = random.Random(1)  # noqa: S311 - a repeatable choice, not a secret
    while sent < replies:
        targets = sorted(record.acknowledged_messages)
        if not targets:
            if done.is_set():
                return
            await asyncio.sleep(0.5)
            continue
        reference = rng.choice(targets)
        key = f"reply-{sent}-{uuid.uuid4()}"
        record.reply_keys[reference] += 1
        got = await _send(
            http,
            record,
            "POST",
            f"/api/v1/staff/threads/{reference}/messages",
            body={"body": f"Chaos reply {key}"},
            headers={**auth, "Idempotency-Key": key},
        )
        if got is not None:
            record.acknowledged_replies[reference] += 1
        sent += 1
        await asyncio.sleep(pace)


# --- The attack ----------------------------------------------------------------------------------


async def _attack(system: System, rng: random.Random, progress: Any, events: list[str]) -> None:
    """Kill a worker child or main process every 3–7 s. At 25 % of the load, Redis is SIGKILLed
    and restarted on its AOF; at 50 %, restarted with an empty data directory; at 75 %,
    PostgreSQL stops for 5 s. Each of those comes with the worker's main process killed 2 s
    before and started after, so that work is queued in Redis when it goes."""
    worker, files = system.procs["worker"], system.procs["files"]
    started = time.monotonic()
    milestones = [(0.25, "redis_aof"), (0.5, "redis_empty"), (0.75, "postgres")]

    def note(what: str) -> None:
        events.append(f"{time.monotonic() - started:6.1f}s {what}")

    while progress() < 1.0:
        await asyncio.sleep(rng.uniform(3, 7))
        if progress() >= 1.0:
            break
        if milestones and progress() >= milestones[0][0]:
            _, what = milestones.pop(0)
            await asyncio.to_thread(worker.kill_main)
            await asyncio.to_thread(files.kill_main)
            note("SIGKILL the worker and files worker main processes")
            await asyncio.sleep(2)
            if what == "redis_aof":
                await asyncio.to_thread(system.redis.restart, empty=False)
                note("SIGKILL Redis, restarted on its AOF")
            elif what == "redis_empty":
                await asyncio.to_thread(system.redis.restart, empty=True)
                note("SIGKILL Redis, restarted with an empty data directory")
            else:
                await asyncio.to_thread(system.pg.stop)
                note("PostgreSQL stopped")
                await asyncio.sleep(5)
                await asyncio.to_thread(system.pg.start)
                note("PostgreSQL started again")
            for proc in (worker, files):
                proc.start()
                proc.restarts += 1
            note("workers started again")
            continue
        target = worker if rng.random() < 0.6 else files
        label = "worker" if target is worker else "files worker"
        if rng.random() < 0.5 and target.kill_child(rng):
            note(f"SIGKILL a {label} child")
        else:
            await asyncio.to_thread(target.kill_main)
            target.start()
            target.restarts += 1
            note(f"SIGKILL the {label} main process, restarted")


async def _kill_mid_strip(system: System, progress: Any, events: list[str]) -> None:
    """At 20, 40, 60 and 80 % of the load, wait (up to 30 s) for a file being stripped, and
    SIGKILL the files worker's children then: a run killed mid-file."""
    files = system.procs["files"]
    started = time.monotonic()
    watch = crash_files.LeaseWatch(system.pg.url)
    try:
        await _kill_mid_strip_at(files, watch, progress, events, started)
    finally:
        await watch.close()


async def _kill_mid_strip_at(
    files: Proc,
    watch: crash_files.LeaseWatch,
    progress: Any,
    events: list[str],
    started: float,
) -> None:
    for threshold in (0.2, 0.4, 0.6, 0.8):
        while True:  # progress is a count the clients keep, not an event
            if progress() >= threshold:
                break
            await asyncio.sleep(0.5)
        if progress() >= 1.0:
            return
        deadline = time.monotonic() + 30
        polls = 0
        while time.monotonic() < deadline:
            polls += 1
            if await watch.leased():
                children = files.children()  # none while its main process is being restarted
                for pid in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                if children:
                    events.append(
                        f"{time.monotonic() - started:6.1f}s SIGKILL the files worker's "
                        f"{len(children)} children while a file is being stripped"
                    )
                    break
            await asyncio.sleep(0.02)
        else:
            events.append(
                f"{time.monotonic() - started:6.1f}s no file was being stripped in 30 s "
                f"({polls} looks, {watch.errors} errors)"
            )


async def _drain(system: System, limit_s: float) -> float:
    """Until every outbox row is sent (or dead); returns the seconds it took."""
    started = time.monotonic()
    if not system.procs["worker"].running():
        system.procs["worker"].start()
    while time.monotonic() - started < limit_s:
        left = await system.pg.count(
            "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL"
        )
        if left == 0:
            return time.monotonic() - started
        await asyncio.sleep(1)
    return time.monotonic() - started


async def _figures(
    system: System, record: ClientLog, drain_s: float, load_s: float, events: list[str]
) -> Figures:
    conn = await asyncpg.connect(system.pg.url)
    try:
        threads = {
            r["reference"]: r["id"] for r in await conn.fetch("SELECT reference, id FROM threads")
        }
        by_author = await conn.fetch(
            """SELECT t.reference, m.author, count(*) AS n FROM messages m
               JOIN threads t ON t.id = m.thread_id GROUP BY 1, 2"""
        )
        outbox = await conn.fetch(
            """SELECT o.id, o.kind, o.sent_at, o.failed_at, t.reference
               FROM outbox o LEFT JOIN threads t ON t.id = o.thread_id"""
        )
    finally:
        await conn.close()
    stored = {(r["reference"], r["author"]): r["n"] for r in by_author}
    missing = [ref for ref in record.acknowledged_reports if ref not in threads]
    missing_messages = sum(
        max(0, n - stored.get((ref, "reporter"), 0))
        for ref, n in record.acknowledged_messages.items()
    ) + sum(
        max(0, n - stored.get((ref, "caseworker"), 0))
        for ref, n in record.acknowledged_replies.items()
    )
    duplicate_reports = max(0, len(threads) - len(record.report_keys))
    duplicate_messages = sum(
        max(0, stored.get((ref, "reporter"), 0) - tried)
        for ref, tried in record.message_keys.items()
    ) + sum(
        max(0, stored.get((ref, "caseworker"), 0) - tried)
        for ref, tried in record.reply_keys.items()
    )
    # Effects: every outbox row done; every acknowledged report and message has its row.
    per_thread = Counter((r["reference"], r["kind"]) for r in outbox)
    not_done = [r for r in outbox if r["sent_at"] is None]
    no_row = sum(1 for ref in record.acknowledged_reports if per_thread[(ref, "new_report")] == 0)
    no_row += sum(
        max(0, stored.get((ref, "reporter"), 0) - per_thread[(ref, "new_message")])
        for ref in record.acknowledged_messages
    )
    received = Counter(system.smtp.message_ids())
    mail_ids = {f"<{r['id']}@{MAIL_DOMAIN}>": r for r in outbox if r["kind"] in MAIL_KINDS}
    sent_not_received = sum(
        1 for mid, r in mail_ids.items() if r["sent_at"] is not None and received[mid] == 0
    )
    duplicate_rows = sum(
        max(0, n - 1) for (_, kind), n in per_thread.items() if kind == "new_report"
    )
    duplicate_rows += sum(
        max(0, per_thread[(ref, "new_message")] - stored.get((ref, "reporter"), 0))
        for ref in record.message_keys
    )
    strangers = sum(n for mid, n in received.items() if mid not in mail_ids)
    return Figures(
        acknowledged_but_missing=len(missing) + missing_messages,
        duplicate_reports=duplicate_reports,
        duplicate_messages=duplicate_messages,
        undelivered_effects=len(not_done) + no_row + sent_not_received,
        duplicate_effects=duplicate_rows + strangers,
        smtp_window_resends=sum(n - 1 for mid, n in received.items() if n > 1 and mid in mail_ids),
        other_5xx=sum(record.status_5xx_other.values()),
        answers_503=record.status_503,
        gave_up=record.gave_up,
        drain_s=drain_s,
        load_s=load_s,
        events=events,
        details={
            "reports acknowledged": len(record.acknowledged_reports),
            "reports stored": len(threads),
            "reporter messages acknowledged": sum(record.acknowledged_messages.values()),
            "replies acknowledged": sum(record.acknowledged_replies.values()),
            "outbox rows": len(outbox),
            "outbox rows not done": len(not_done),
            "mails received": sum(received.values()),
            "worker restarts": system.procs["worker"].restarts,
            "5xx other than 503 by route": dict(record.status_5xx_other),
            "unhandled errors in the web log": _unhandled(system.root / "logs" / "web.log"),
        },
    )


def _unhandled(log: Path) -> list[str]:
    """Each ``unhandled_error`` the web logged, and each error aiohttp logged itself (route or
    logger, type, frames): what a 500 came from."""
    found = []
    for line in log.read_text(errors="replace").splitlines() if log.exists() else ():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        if event.get("event") == "unhandled_error" or (
            str(event.get("logger", "")).startswith("aiohttp") and event.get("level") == "error"
        ):
            where = event.get("route") or event.get("logger")
            found.append(f"{where}: {event.get('exc_type')}: {event.get('traceback')}")
    return found


async def run(plan: Plan, root: Path) -> Figures:
    system = System(root, plan)
    try:
        await asyncio.to_thread(system.start)
        files: chaos_files.FileSet | None = None
        if plan.files and plan.reports:
            files = await asyncio.to_thread(chaos_files.make, root / "files")
            why = await crash_files.available(system, files)
            if why is None:
                await crash_files.install_observers(system)
            else:
                print(f"  attachments: not in this run ({why})", flush=True)
                files = None
        record = ClientLog()
        rng = random.Random(plan.seed)  # noqa: S311 - a seeded schedule, not a secret
        per_client = [plan.reports // plan.clients] * plan.clients
        for i in range(plan.reports % plan.clients):
            per_client[i] += 1
        messages_each = plan.messages // plan.clients
        total = plan.reports + plan.messages
        done = asyncio.Event()

        def progress() -> float:
            sent = len(record.report_keys) + sum(record.message_keys.values())
            return 1.0 if done.is_set() else min(0.99, sent / max(1, total))

        events: list[str] = []
        started = time.monotonic()
        async with aiohttp.ClientSession(base_url=system.base_url) as http:
            attack = asyncio.create_task(_attack(system, rng, progress, events))
            mid_strip = (
                asyncio.create_task(_kill_mid_strip(system, progress, events))
                if files is not None
                else None
            )
            staff = asyncio.create_task(
                _caseworker(
                    http,
                    record,
                    system.staff_password,
                    plan.replies,
                    done,
                    plan.duration_s / max(1, plan.replies),
                )
            )
            pace_s = plan.duration_s * plan.clients / max(1, total)
            scans = min(plan.scans, plan.clients) if files is not None else 0
            await asyncio.gather(
                *(
                    _reporter(
                        http,
                        record,
                        n,
                        messages_each,
                        f"c{i}",
                        pace_s,
                        files,
                        # Client i < scans sends the large file at (i + 0.5) / scans of its load.
                        int(n * (i + 0.5) / scans) if i < scans else -1,
                    )
                    for i, n in enumerate(per_client)
                )
            )
            done.set()
            await staff
            await attack
            if mid_strip is not None:
                await mid_strip
        load_s = time.monotonic() - started
        for proc in system.procs.values():
            if not proc.running():
                proc.start()
        drain_s = await _drain(system, plan.drain_timeout_s)
        drained = None
        if files is not None:
            drained = await crash_files.drain(system, plan.drain_timeout_s)
        await asyncio.sleep(2)  # mails accepted just now reach the sink
        figures = await _figures(system, record, drain_s, load_s, events)
        if files is not None and drained is not None:
            figures.files = await crash_files.figures(
                system, files, record.files_sent, record.files_refused, record.uploads, drained
            )
            await crash_files.scan(system, files, figures.files)
        return figures
    finally:
        await asyncio.to_thread(system.stop)


def describe(name: str, figures: Figures) -> str:
    lines = [f"== crash and restart: {name}"]
    lines += [f"   {e}" for e in figures.events]
    for label, value in (
        ("acknowledged_but_missing", figures.acknowledged_but_missing),
        ("duplicate_reports", figures.duplicate_reports),
        ("duplicate_messages", figures.duplicate_messages),
        ("undelivered_effects", figures.undelivered_effects),
        ("duplicate_effects", figures.duplicate_effects),
        ("5xx other than 503", figures.other_5xx),
    ):
        lines.append(f"  {label:<28} {value}")
    lines.append(f"  {'smtp_window_resends':<28} {figures.smtp_window_resends}  (same Message-ID)")
    lines.append(f"  {'answers of 503':<28} {figures.answers_503}")
    lines.append(f"  {'requests given up':<28} {figures.gave_up}")
    lines.append(f"  {'load time':<28} {figures.load_s:.1f} s")
    lines.append(f"  {'drain time':<28} {figures.drain_s:.1f} s")
    lines.append("  " + json.dumps(figures.details, sort_keys=True))
    if figures.files is not None:
        for label, value in figures.files.judged().items():
            lines.append(f"  {label:<28} {value}")
        control = figures.files.control_missing
        lines.append(
            "  file canary control found in "
            + (f"MISSING from {', '.join(control)}" if control else "every sink it was planted in")
        )
        lines += [f"  HIT {hit}" for hit in figures.files.hits]
        lines.append("  files: " + json.dumps(figures.files.details, sort_keys=True))
    return "\n".join(lines)
