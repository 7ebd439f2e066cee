"""Real services for every test: PostgreSQL, Redis, a Celery worker process, beat, and the web.

``DATABASE_URL`` / ``REDIS_URL`` name the servers when given (CI uses the machine's own on
127.0.0.1); otherwise embedded servers start from PyPI wheels. Tests get their own database
(``confide_test``, or ``CONFIDE_TEST_DB``) and Redis db 13 (``CONFIDE_TEST_REDIS_DB``), and each test starts from truncated tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.message
import email.policy
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest
import redis

from confide import devservices, jobs
from confide.crypto import Keyring
from confide.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def with_redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


@dataclass
class Proc:
    """A real child process (web, worker or beat) with its log file."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: Any = None

    def start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.cmd,
            env=self.env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self._log:
            self._log.close()
            self._log = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Stack:
    """The running system under test."""

    env: dict[str, str]
    settings: Settings
    base_url: str
    web: Proc
    worker: Proc
    beat: Proc
    artifacts: Path
    extra: list[Proc] = field(default_factory=list)

    @property
    def keyring(self) -> Keyring:
        return Keyring.from_secret(self.settings.encryption_keys)

    def logs(self) -> str:
        return "\n".join(p.log_text() for p in (self.web, self.worker, self.beat, *self.extra))

    def start_web(self, name: str, **overrides: str) -> tuple[Proc, str]:
        """A second web process with other settings (e.g. low rate limits)."""
        port = str(devservices.free_port())
        # Its own public address (passkeys are bound to the origin), unless the test sets one.
        env = dict(self.env, PORT=port, CONFIDE_BASE_URL=f"http://localhost:{port}")
        env.update(overrides)
        proc = Proc(name, [sys.executable, "-m", "webapp"], env, self.artifacts / f"{name}.log")
        proc.start()
        self.extra.append(proc)
        base = f"http://127.0.0.1:{env['PORT']}"
        wait_http(base + "/healthz", proc)
        return proc, base


def wait_http(url: str, proc: Proc, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.proc is not None and proc.proc.poll() is not None:
            raise RuntimeError(f"{proc.name} exited early:\n{proc.log_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s:\n{proc.log_text()[-3000:]}")


def wait_worker(redis_url: str, worker: Proc, timeout: float = 60) -> None:
    """Wait until the worker consumes from the hashing queue (Celery ping over the broker)."""
    from celery import Celery

    client = Celery("probe", broker=redis_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if worker.proc is not None and worker.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{worker.log_text()[-3000:]}")
            if client.control.ping(timeout=0.5):
                return
        raise RuntimeError(f"worker did not answer:\n{worker.log_text()[-3000:]}")
    finally:
        client.close()


@pytest.fixture(scope="session")
def services() -> Iterator[tuple[str, str]]:
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    embedded = None
    if not database_url or not redis_url:
        env = {"DATABASE_URL": database_url or "", "REDIS_URL": redis_url or ""}
        embedded = devservices.start_missing(ROOT / "var" / "test-services", env)
        database_url, redis_url = env["DATABASE_URL"], env["REDIS_URL"]
    try:
        yield from _prepare(database_url, redis_url)
    finally:
        if embedded is not None:
            embedded.stop()


# Overridable so that two checkouts can run their tests at once against one server.
TEST_DB = os.environ.get("CONFIDE_TEST_DB", "confide_test")
TEST_REDIS_DB = int(os.environ.get("CONFIDE_TEST_REDIS_DB", "13"))


def _prepare(database_url: str, redis_url: str) -> Iterator[tuple[str, str]]:
    test_db = with_database(database_url, TEST_DB)
    admin_db = with_database(database_url, "postgres")

    async def recreate() -> None:
        conn = await asyncpg.connect(admin_db)
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                TEST_DB,
            )
            await conn.execute(f'DROP DATABASE IF EXISTS "{TEST_DB}"')
            await conn.execute(f'CREATE DATABASE "{TEST_DB}"')
        finally:
            await conn.close()

    asyncio.run(recreate())
    test_redis = with_redis_db(redis_url, TEST_REDIS_DB)
    redis.Redis.from_url(test_redis).flushdb()
    yield test_db, test_redis


class SmtpSink:
    """A real SMTP server (aiosmtpd) that keeps what it receives, for assertions."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.refuse = False
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return "451 Try again later"
        msg = email.message_from_bytes(
            envelope.original_content or envelope.content, policy=email.policy.default
        )
        with self._lock:
            self.messages.append(msg)
        return "250 OK"

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def to(self, address: str) -> list[email.message.EmailMessage]:
        with self._lock:
            return [m for m in self.messages if address in str(m["To"])]

    def raw(self) -> str:
        with self._lock:
            return "\n\n".join(m.as_string() for m in self.messages)

    def wait_for(self, predicate: Any, timeout: float = 30) -> list[email.message.EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [m for m in self.messages if predicate(m)]
            if found:
                return found
            time.sleep(0.2)
        raise AssertionError("no matching mail arrived")


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[SmtpSink, int]]:
    from aiosmtpd.controller import Controller

    sink = SmtpSink()
    port = devservices.free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@pytest.fixture
def smtp(smtp_server: tuple[SmtpSink, int]) -> SmtpSink:
    sink, _ = smtp_server
    sink.clear()
    sink.refuse = False
    return sink


def kick_relay(stack: Stack) -> None:
    """Ask for the outbox to be relayed now (beat does it every 15 s anyway)."""
    from celery import Celery

    client = Celery("kick", broker=stack.env["REDIS_URL"])
    try:
        client.send_task("confide.relay_outbox", queue="default")
    finally:
        client.close()


@pytest.fixture(scope="session")
def stack(
    services: tuple[str, str],
    smtp_server: tuple[SmtpSink, int],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    database_url, redis_url = services
    artifacts = ARTIFACTS
    shutil.rmtree(artifacts, ignore_errors=True)
    artifacts.mkdir(parents=True)
    data_dir = tmp_path_factory.mktemp("confide-data")
    port = devservices.free_port()
    env = devservices.foreign_environ()
    env.update(devservices.fresh_keys("t1"))
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SMTP_URL=f"smtp://127.0.0.1:{smtp_server[1]}",
        MAIL_FROM="confide@northbridge.example",
        PORT=str(port),
        # The relying party of passkeys: a host name, never an IP address (CONTRACTS §1).
        CONFIDE_BASE_URL=f"http://localhost:{port}",
        CONFIDE_ENV="development",
        CONFIDE_DATA_DIR=str(data_dir),
        # argon2 uses tiny parameters in tests, on the same code path.
        CONFIDE_ARGON2_TIME_COST="1",
        CONFIDE_ARGON2_MEMORY_KIB="64",
        CONFIDE_SUBMIT_PER_CLIENT_PER_HOUR="100000",
        CONFIDE_SUBMIT_GLOBAL_PER_MINUTE="100000",
        # Upload limits are tested on their own web process (test_attachments.py).
        CONFIDE_UPLOAD_PER_CLIENT_PER_HOUR="100000",
        CONFIDE_UPLOAD_GLOBAL_PER_MINUTE="100000",
        CONFIDE_UPLOAD_MIB_PER_CLIENT_PER_HOUR="100000",
        CONFIDE_LOGIN_PER_CLIENT_PER_15MIN="100000",
        # Staff sign-in limits are tested on their own web process (test_staff_sign_in.py).
        CONFIDE_STAFF_LOGIN_PER_CLIENT_ACCOUNT_PER_15MIN="100000",
        CONFIDE_STAFF_LOGIN_PER_CLIENT_PER_15MIN="100000",
        CONFIDE_STAFF_LOGIN_GLOBAL_PER_MINUTE="100000",
        CONFIDE_WORKER_HEARTBEAT_S="1",
        CONFIDE_WORKER_METRICS_PORT=str(devservices.free_port()),
        PYTHONUNBUFFERED="1",
    )
    settings = Settings.from_env(env)
    celery = [sys.executable, "-m", "celery", "-A", "workers.celery_app"]
    web = Proc("web", [sys.executable, "-m", "webapp"], env, artifacts / "web.log")
    worker = Proc(
        "worker",
        [
            *celery,
            "worker",
            "-Q",
            ",".join(jobs.QUEUES),
            "-c",
            "2",
            "-n",
            "test-worker@%h",
            "--loglevel",
            "INFO",
            "--without-mingle",
            "--without-gossip",
        ],
        env,
        artifacts / "worker.log",
    )
    beat = Proc("beat", [*celery, "beat", "--loglevel", "INFO"], env, artifacts / "beat.log")
    stack = Stack(env, settings, f"http://127.0.0.1:{port}", web, worker, beat, artifacts)
    try:
        web.start()
        wait_http(stack.base_url + "/healthz", web)
        worker.start()
        beat.start()
        wait_worker(redis_url, worker)
        yield stack
    finally:
        for proc in (*stack.extra, beat, worker, web):
            proc.stop()


_TRUNCATE_ALL = (
    "TRUNCATE threads, reporter_codes, submission_keys, sessions, messages, notes, "
    "audit_log, staff, staff_teams, outbox, reminders, reminder_tokens, "
    "team_deadline_summary, job_runs, report_drafts, erasures, statistics_facts, "
    "statistics_monthly, statistics_dirty, statistics_watermark, uploads, attachments, "
    "attachment_chunks CASCADE"
)


@pytest.fixture
async def db(stack: Stack) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test database; every test starts from truncated tables."""
    conn = await asyncpg.connect(stack.env["DATABASE_URL"])
    try:
        # The stack's worker and beat keep running between tests; a job of theirs can hold a
        # table that TRUNCATE wants while waiting for one TRUNCATE already holds. PostgreSQL
        # then ends one side as a deadlock: if it picks ours, try again (theirs is retried).
        for attempt in range(6):
            try:
                await conn.execute(_TRUNCATE_ALL)
                break
            except asyncpg.DeadlockDetectedError:
                if attempt == 5:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def http(stack: Stack, db: asyncpg.Connection) -> AsyncIterator[aiohttp.ClientSession]:
    jar = aiohttp.CookieJar(unsafe=True)  # keep cookies from 127.0.0.1, as a browser does
    async with aiohttp.ClientSession(base_url=stack.base_url, cookie_jar=jar) as session:
        yield session


@dataclass
class StaffAccount:
    email: str
    password: str
    team: str
    role: str


def confide_cli(stack: Stack, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "confide.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=stack.env,
        timeout=60,
        check=False,
    )


def add_staff(stack: Stack, email: str, team: str, role: str = "caseworker") -> StaffAccount:
    """``team`` is ignored for ops, which belong to no team (`staff add` refuses --team)."""
    password = secrets.token_urlsafe(16)
    result = confide_cli(
        stack,
        "staff",
        "add",
        "--email",
        email,
        "--name",
        email.split("@")[0].title(),
        *(("--team", team) if role != "ops" else ()),
        "--role",
        role,
        stdin=password + "\n",
    )
    assert result.returncode == 0, result.stderr
    return StaffAccount(email, password, team, role)


@pytest.fixture
async def caseworker(stack: Stack, db: asyncpg.Connection) -> StaffAccount:
    """A case worker in the safety team (each test starts without staff)."""
    return add_staff(stack, "casey@example.org", "safety")


@pytest.fixture
def worker(stack: Stack) -> Iterator[Proc]:
    """The worker process; a test that stops it gets it restarted afterwards."""
    yield stack.worker
    if stack.worker.proc is None or stack.worker.proc.poll() is not None:
        stack.worker.start()
        wait_worker(stack.env["REDIS_URL"], stack.worker)
