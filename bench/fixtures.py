"""Confide processes and bulk data for the benchmarks that follow ``submit``.

Everything here goes through :class:`bench.common.Processes` or one short-lived asyncpg connection,
and every row it adds to ``confide_bench`` is recognisable (``bench-`` slugs, ``bench…@example.org``
staff) so that :func:`drop_bench_rows` can remove it on the way out, after an error too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import (
    Context,
    OtherLoad,
    WrkResult,
    free_port,
    log_tail,
    process_cpu_s,
    run_wrk,
    say,
    wait_http,
)
from confide.context import Context as ServiceContext
from confide.crypto import Keyring
from confide.services.workdays import WorkingCalendar

REQUESTS_LUA = Path(__file__).resolve().parent / "requests.lua"
# Code logins measured, not the abuse limits: the per-client and argon2 budgets never trigger.
LOGIN_LIMITS_RAISED = {
    "CONFIDE_LOGIN_PER_CLIENT_PER_15MIN": "1000000000",
    "CONFIDE_ARGON2_GLOBAL_PER_MINUTE": "1000000000",
}
TEAM_PREFIX = "bench-team-"
CATEGORY_PREFIX = "bench-cat-"
STAFF_EMAIL_LIKE = "bench%@example.org"
STAFF_PASSWORD_LENGTH = 24


# --- SQL ---------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def connect(ctx: Context) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(ctx.database_url)
    try:
        yield conn
    finally:
        await conn.close()


# The running clocks of bulk-loaded threads (migrations/0007_thread_clocks.sql): nearing a day
# before the due time, and marked as the escalation pass would have marked them at $1 (none
# marked when $1 is NULL).
LOAD_CLOCKS = """
INSERT INTO thread_clocks (thread_id, team_id, reply_due_at, nearing_at, escalation, escalated_at)
SELECT id, team_id, reply_due_at, reply_due_at - interval '1 day',
       CASE WHEN $1::timestamptz IS NULL THEN 'none'
            WHEN reply_due_at <= $1 THEN 'overdue'
            WHEN reply_due_at - interval '1 day' <= $1 THEN 'nearing'
            ELSE 'none' END,
       CASE WHEN reply_due_at - interval '1 day' <= $1 THEN $1::timestamptz END
FROM threads WHERE reply_due_at IS NOT NULL AND status <> 'closed'
"""


def ensure_schema(ctx: Context) -> None:
    """Migrate ``confide_bench`` and sync the demo organisation, as a web process would on start
    (for the benchmarks that run without one)."""
    from confide import db
    from confide import org as org_file
    from confide.services.org import sync_organisation
    from confide.settings import Settings

    settings = Settings.from_env(ctx.confide_env(port=8080))

    async def run() -> None:
        async with connect(ctx) as conn:
            await db.migrate(conn)
        pool = await db.create_pool(ctx.database_url, min_size=1, max_size=1)
        try:
            await sync_organisation(
                ServiceContext(
                    pool, settings, Keyring.from_secret(settings.encryption_keys), WorkingCalendar()
                ),
                org_file.load(settings.org_file),
            )
        finally:
            await pool.close()

    asyncio.run(run())


@dataclass(frozen=True)
class Team:
    id: int
    slug: str
    category: str


async def create_teams(conn: asyncpg.Connection, count: int) -> list[Team]:
    """``count`` teams ``bench-team-NNN``, each with one category ``bench-cat-NNN``."""
    rows = await conn.fetch(
        """INSERT INTO teams (slug, name, email)
           SELECT $1 || lpad(n::text, 3, '0'), 'Bench team ' || n,
                  'team' || n || '@bench.example.org'
           FROM generate_series(1, $2) n
           ON CONFLICT (slug) DO UPDATE SET active = true
           RETURNING id, slug""",
        TEAM_PREFIX,
        count,
    )
    teams = sorted(
        (Team(r["id"], r["slug"], CATEGORY_PREFIX + r["slug"][len(TEAM_PREFIX) :]) for r in rows),
        key=lambda t: t.slug,
    )
    await conn.executemany(
        """INSERT INTO categories (slug, name, team_id, position) VALUES ($1, $2, $3, $4)
           ON CONFLICT (slug) DO UPDATE SET team_id = EXCLUDED.team_id, active = true""",
        [(t.category, f"Bench category {n}", t.id, 100 + n) for n, t in enumerate(teams)],
    )
    return teams


async def add_managers(conn: asyncpg.Connection, teams: Sequence[Team]) -> None:
    """One manager per team, straight in SQL (no password): the escalation pass alerts them."""
    for n, team in enumerate(teams, start=1):
        staff_id = await conn.fetchval(
            """INSERT INTO staff (email, name, role) VALUES ($1, $2, 'manager')
               ON CONFLICT (lower(email)) DO UPDATE SET active = true RETURNING id""",
            f"bench-manager-{n:03d}@example.org",
            f"Bench manager {n}",
        )
        await conn.execute(
            "INSERT INTO staff_teams VALUES ($1, $2) ON CONFLICT DO NOTHING", staff_id, team.id
        )


async def _drop_bench_rows(conn: asyncpg.Connection) -> None:
    # After Ctrl-C a bulk load may still run server-side (PostgreSQL notices a closed client only
    # when it next writes to it): cancel it rather than wait for it. Only the bench uses this
    # database.
    await conn.execute(
        """SELECT pg_cancel_backend(pid) FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'"""
    )
    if not await conn.fetchval("SELECT to_regclass('threads') IS NOT NULL"):
        return
    # Threads cascade to codes, sessions, messages, notes, audit, outbox rows of threads, reminders.
    await conn.execute("TRUNCATE threads CASCADE")
    await conn.execute("DELETE FROM outbox")
    await conn.execute("DELETE FROM staff WHERE email LIKE $1", STAFF_EMAIL_LIKE)
    await conn.execute("DELETE FROM categories WHERE slug LIKE $1", CATEGORY_PREFIX + "%")
    # Cascades to staff_teams and team_deadline_summary.
    await conn.execute("DELETE FROM teams WHERE slug LIKE $1", TEAM_PREFIX + "%")
    await conn.execute("DELETE FROM team_deadline_summary")
    await conn.execute("DELETE FROM job_runs")
    await conn.execute("DELETE FROM heartbeats WHERE name LIKE 'worker:bench-%'")


def drop_bench_rows(ctx: Context) -> None:
    """Empty ``threads`` (and all that hangs off it) and delete the bench's teams and staff."""

    async def run() -> None:
        async with connect(ctx) as conn:
            await _drop_bench_rows(conn)

    try:
        asyncio.run(run())
    except (OSError, asyncpg.PostgresError) as exc:
        say(f"  bench: could not remove the bench's rows ({type(exc).__name__}: {exc})")


# --- Confide processes -------------------------------------------------------------------------


@dataclass
class Web:
    port: int
    procs: list[subprocess.Popen[bytes]]
    env: dict[str, str]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def start_web(ctx: Context, name: str, **extra_env: str) -> Web:
    """One ``python -m webapp`` with the run's keys; the first one migrates ``confide_bench``."""
    port = free_port()
    env = ctx.confide_env(port, **extra_env)
    proc = ctx.processes.start(name, [sys.executable, "-m", "webapp"], env)
    wait_http(f"http://127.0.0.1:{port}/healthz", [proc])
    return Web(port, [proc], env)


def start_bare(ctx: Context, name: str) -> Web:
    """One :mod:`bench.bare_server` process (benchmark 1's baseline, plus the lookup route)."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.bare_server", "--port", str(port)]
    argv += ["--dsn", ctx.database_url]
    proc = ctx.processes.start(name, argv, ctx.base_env())
    wait_http(f"http://127.0.0.1:{port}/healthz", [proc])
    return Web(port, [proc], ctx.base_env())


def start_hashing_worker(
    ctx: Context, env: dict[str, str], concurrency: int = 2, timeout: float = 60
) -> subprocess.Popen[bytes]:
    """Celery on the ``hashing`` queue with ``concurrency`` processes; returns once it is ready
    (its heartbeat row, written on ``worker_ready``, appears)."""
    hostname = f"bench-{secrets.token_hex(4)}@localhost"
    argv = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker"]
    argv += ["-Q", "hashing", "-c", str(concurrency), "--without-mingle", "--without-gossip"]
    argv += ["-n", hostname]
    proc = ctx.processes.start("celery-hashing", argv, env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"the hashing worker exited with {proc.returncode}:\n{log_tail(proc)}"
            )
        if ctx.fetchval("SELECT 1 FROM heartbeats WHERE name = $1", f"worker:{hostname}"):
            return proc
        time.sleep(0.25)
    raise RuntimeError(
        f"the hashing worker was not ready within {timeout:.0f} s:\n{log_tail(proc)}"
    )


def log_count(proc: subprocess.Popen[bytes], needle: str) -> int:
    """How often ``needle`` occurs in the process's log so far."""
    path: Path | None = getattr(proc, "bench_log", None)
    if path is None or not path.exists():
        return 0
    return path.read_text(errors="replace").count(needle)


def read_child_json(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    """Wait for a bench child that prints one JSON object as its last line, and return it."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{proc.args!r} did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}:\n{log_tail(proc)}")
    lines = log_tail(proc, 5).splitlines()
    for line in reversed(lines):
        if line.startswith("{"):
            value: dict[str, Any] = json.loads(line)
            return value
    raise RuntimeError(f"{proc.args!r} printed no JSON:\n{log_tail(proc)}")


# --- CPU of process groups ---------------------------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def group_cpu_s(procs: Sequence[subprocess.Popen[bytes]]) -> dict[int, float]:
    """User + system CPU seconds of every live process in these processes' groups (sessions),
    by pid: a Celery worker's pool children included."""
    groups = {p.pid for p in procs}
    found: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) in groups:
            found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return found


# --- wrk with status counts --------------------------------------------------------------------


@dataclass(frozen=True)
class Statuses:
    counts: dict[int, int]

    @classmethod
    def parse(cls, wrk: WrkResult) -> Statuses:
        match = re.search(r"^statuses:(.*)$", wrk.output, re.M)
        if match is None:
            raise RuntimeError(f"requests.lua printed no statuses:\n{wrk.output}")
        pairs = (part.split("=") for part in match.group(1).split())
        return cls({int(k): int(v) for k, v in pairs})

    def only(self, status: int) -> bool:
        return set(self.counts) <= {status}

    def __str__(self) -> str:
        return " ".join(f"{k}×{v}" for k, v in sorted(self.counts.items())) or "none"


def wrk_statuses(
    url: str,
    secs: float,
    *,
    connections: int,
    method: str = "GET",
    bodies: Path | None = None,
    cookie: str | None = None,
    timeout_s: int | None = None,
) -> tuple[WrkResult, Statuses]:
    args = [f"method={method}"]
    if bodies is not None:
        args.append(f"bodies={bodies}")
    if cookie is not None:
        args.append(f"cookie={cookie}")
    result = run_wrk(
        url,
        secs,
        connections=connections,
        script=REQUESTS_LUA,
        script_args=args,
        timeout_s=timeout_s,
    )
    return result, Statuses.parse(result)


# --- Small statistics --------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0–100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@dataclass(frozen=True)
class ServerRun:
    """One timed wrk run against one server, with its CPU and the machine's other load."""

    wrk: WrkResult
    statuses: Statuses
    cpu_ms_per_request: float  # the server's processes
    other_cpus: float

    def describe(self) -> str:
        text = (
            f"{self.wrk.rps:7.0f} req/s  p50 {self.wrk.p50_ms:6.1f} ms  p99 {self.wrk.p99_ms:6.1f} "
            f"ms  statuses {self.statuses}  CPU ms/req {self.cpu_ms_per_request:.2f}  "
            f"other load {self.other_cpus:.2f} CPUs"
        )
        if self.wrk.socket_errors:
            text += f"  socket errors: {self.wrk.socket_errors}"
        if self.other_cpus > 0.2:
            text += "  (busy machine: treat this run with care)"
        return text


def timed_wrk(
    ctx: Context,
    server: Web,
    path: str,
    secs: float,
    *,
    connections: int,
    method: str = "GET",
    bodies: Path | None = None,
    cookie: str | None = None,
    timeout_s: int | None = None,
) -> ServerRun:
    """One wrk run, after the server has finished the requests of the run before (aiohttp keeps
    serving requests whose client has gone, so a slow page's backlog would leak into the next)."""
    wait_idle(ctx)
    cpu_before, other = sum(process_cpu_s(p.pid) for p in server.procs), OtherLoad()
    result, statuses = wrk_statuses(
        server.url(path),
        secs,
        connections=connections,
        method=method,
        bodies=bodies,
        cookie=cookie,
        timeout_s=timeout_s,
    )
    cpu = sum(process_cpu_s(p.pid) for p in server.procs) - cpu_before
    return ServerRun(result, statuses, 1000 * cpu / max(1, result.requests), other.cpus())


def staff_pages_against_bare(
    ctx: Context,
    name: str,
    confide: Web,
    bare: Web,
    page: str,
    cookies: dict[str, str],
    *,
    bare_body: str,
    connections: int,
    timeout_s: int,
) -> dict[str, list[ServerRun]]:
    """wrk on ``page`` with each staff cookie and on the bare form's POST of ``bare_body``, one
    warm-up each, then ``ctx.runs`` rounds in ABBA order; the runs by who, ``"bare"`` first."""
    bodies = ctx.path(f"{name}-bare-bodies.txt")
    bodies.write_text(bare_body + "\n")
    say(f"  1 process each, wrk -t1 -c{connections}, {ctx.secs:g} s × {ctx.runs} runs each")

    def timed(who: str, secs: float) -> ServerRun:
        if who == "bare":
            return timed_wrk(
                ctx,
                bare,
                "/report/submit",
                secs,
                connections=connections,
                method="POST",
                bodies=bodies,
            )
        return timed_wrk(
            ctx,
            confide,
            page,
            secs,
            connections=connections,
            cookie=cookies[who],
            timeout_s=timeout_s,
        )

    names = ("bare", *cookies)
    width = max(len(n) for n in names)
    for who in names:
        timed(who, ctx.warmup)
    runs: dict[str, list[ServerRun]] = {n: [] for n in names}
    for i in range(ctx.runs):
        for who in names if i % 2 == 0 else tuple(reversed(names)):
            result = timed(who, ctx.secs)
            runs[who].append(result)
            note = "" if result.statuses.only(200) else "  WARNING: not all 200"
            say(f"    run {i + 1} {who:<{width}} {result.describe()}{note}")
    return runs


def wait_idle(ctx: Context, *, below: float = 0.05, timeout: float = 60) -> None:
    """Until the bench's processes use less than ``below`` of a CPU over 0.3 s and no query is
    running in ``confide_bench`` (or ``timeout``): aiohttp keeps serving requests whose client has
    gone, so a slow page's backlog would otherwise leak into the next timed run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs = ctx.processes.running()
        before = sum(process_cpu_s(p.pid) for p in procs)
        time.sleep(0.3)
        busy = sum(process_cpu_s(p.pid) for p in procs if p.poll() is None) - before
        if busy < below * 0.3 and not ctx.fetchval(_ACTIVE_QUERIES):
            return
    say(f"  bench: the servers were still busy after {timeout:.0f} s; timing anyway")


_ACTIVE_QUERIES = """SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()"""
