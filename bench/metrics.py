"""GET /metrics (issue 6) with 100,000 and then 1,000,000 threads in the database.

The bench bulk-loads open threads awaiting a reply in 200 teams (as :mod:`bench.escalation`
does), fills ``team_deadline_summary`` from them, adds outbox rows (pending and dead letters),
two worker heartbeats and the job runs, then:

- **Latency:** one Confide web process, ``wrk -t1 -c4`` on ``/metrics`` (wrk connects from
  loopback, which the route allows). Target: p99 under 50 ms, absolute: there is no baseline,
  since a scrape is meant to cost a fixed handful of round trips whatever the data.
- **Round trips per scrape:** counted, not assumed.
  - SQL: ``sum(calls)`` of ``pg_stat_statements`` when the extension is loaded, otherwise the
    transactions (``xact_commit + xact_rollback``) of ``confide_bench`` in ``pg_stat_database``:
    each statement the handler runs outside a transaction is one. PostgreSQL publishes a
    backend's counts late (at most every second, or after 10 s idle), but always when the backend
    exits, so the bench counts across whole web processes: one that starts and scrapes a few
    times, one that starts and scrapes ``SCRAPES`` more; the difference divided by ``SCRAPES``
    is what one scrape costs, start-up cancelled out.
  - Redis: ``MONITOR`` during those scrapes, counting the commands sent to the bench's db; and,
    as a cross-check, the server-wide ``INFO commandstats`` calls of the commands the handler
    uses (other clients of the server can add to that one).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from bench.common import Context, Result, Target, say
from bench.escalation import LOAD_THREADS
from bench.fixtures import (
    LOAD_CLOCKS,
    Team,
    Web,
    connect,
    create_teams,
    drop_bench_rows,
    ensure_schema,
    start_web,
    timed_wrk,
)

NAME = "metrics"
TITLE = "GET /metrics: p99 at 1,000,000 threads, SQL and Redis round trips per scrape"
TEAMS = 200
SIZES = (100_000, 1_000_000)  # the last one carries the latency target
CONNECTIONS = 4
SCRAPES = 300  # per count; the count's precision is about ±2 / SCRAPES
WARM_SCRAPES = 10
OUTBOX_PENDING = 1_000
OUTBOX_DEAD = 100
P99_TARGET = Target("<", 50)
WORKERS = ("worker:bench-1@localhost", "worker:bench-2@localhost")
# The commands GET /metrics sends, for the server-wide cross-check.
REDIS_COMMANDS = ("llen", "hvals")

SUMMARY = """
INSERT INTO team_deadline_summary (team_id, awaiting, nearing, overdue, updated_at)
SELECT team_id, count(*),
       count(*) FILTER (WHERE nearing_at <= $1 AND reply_due_at > $1),
       count(*) FILTER (WHERE reply_due_at <= $1), $1
FROM thread_clocks GROUP BY team_id
ON CONFLICT (team_id) DO UPDATE SET awaiting = EXCLUDED.awaiting, nearing = EXCLUDED.nearing,
    overdue = EXCLUDED.overdue, updated_at = EXCLUDED.updated_at
"""
OUTBOX = """
INSERT INTO outbox (id, kind, dedupe_key, team_id, payload, created_at, next_attempt_at,
                    attempts, last_error, failed_at)
SELECT gen_random_uuid(), 'digest', 'bench-metrics-' || g, ($1::int[])[1 + g % $2::int], '{}',
       $3::timestamptz - g * interval '1 second', $3::timestamptz,
       CASE WHEN g <= $5::int THEN 8 ELSE 0 END,
       CASE WHEN g <= $5::int THEN 'SMTPServerDisconnected' END,
       CASE WHEN g <= $5::int THEN $3::timestamptz END
FROM generate_series(1, $4::int + $5::int) g
"""
HEARTBEAT = """INSERT INTO heartbeats (name, last_tick) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET last_tick = EXCLUDED.last_tick"""
JOB_RUN = """INSERT INTO job_runs (name, last_success) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET last_success = EXCLUDED.last_success"""
XACTS = """SELECT xact_commit + xact_rollback FROM pg_stat_database
WHERE datname = current_database()"""
STATEMENTS = """SELECT coalesce(sum(calls), 0) FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"""
HAS_STATEMENTS = """SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')
AND current_setting('shared_preload_libraries') LIKE '%pg_stat_statements%'"""


def run(ctx: Context) -> list[Result]:
    ensure_schema(ctx)
    try:
        return _run(ctx)
    finally:
        drop_bench_rows(ctx)  # its heartbeats (worker:bench-…) included


def _run(ctx: Context) -> list[Result]:
    teams = asyncio.run(_teams(ctx))
    statements = bool(ctx.fetchval(HAS_STATEMENTS))
    sql_counter = STATEMENTS if statements else XACTS
    sql_what = "statements (pg_stat_statements)" if statements else "transactions"
    say(
        f"  SQL round trips counted as {sql_what}"
        + ("" if statements else ": pg_stat_statements is not loaded on this server")
    )
    results: list[Result] = []
    per_scrape: dict[int, tuple[float, float]] = {}
    for size in SIZES:
        label = f"{size:,} threads"
        started = time.monotonic()
        awaiting = asyncio.run(_load(ctx, teams, size))
        say(f"\n  {label}: loaded, summarised and vacuumed in {time.monotonic() - started:.0f} s")

        sql, redis_cmds, cross = _count_round_trips(ctx, size, sql_counter, awaiting)
        per_scrape[size] = (sql, redis_cmds)
        say(
            f"    per scrape: SQL {sql_what} {sql:.2f}, Redis commands (MONITOR, db "
            f"{_redis_db(ctx)}) {redis_cmds:.2f}, server-wide {'+'.join(REDIS_COMMANDS)} calls "
            f"{cross:.2f}"
        )

        web = start_web(ctx, f"web-metrics-{size}")
        try:
            timed_wrk(ctx, web, "/metrics", ctx.warmup, connections=CONNECTIONS)
            runs = []
            for i in range(ctx.runs):
                done = timed_wrk(ctx, web, "/metrics", ctx.secs, connections=CONNECTIONS)
                if not done.statuses.only(200):
                    raise RuntimeError(f"/metrics answered {done.statuses}, not only 200")
                runs.append(done)
                say(f"    run {i + 1} {done.describe()}")
        finally:
            ctx.processes.stop(web.procs)
        name = f"metrics, {label}:"
        results += [
            Result(
                f"{name} p99 latency (-c{CONNECTIONS})",
                tuple(r.wrk.p99_ms for r in runs),
                "ms",
                target=P99_TARGET if size == SIZES[-1] else None,
                digits=1,
            ),
            Result(f"{name} p50 latency", tuple(r.wrk.p50_ms for r in runs), "ms", digits=1),
            Result(f"{name} scrapes/s", tuple(r.wrk.rps for r in runs), "req/s", digits=0),
            Result(
                f"{name} web CPU per scrape",
                tuple(r.cpu_ms_per_request for r in runs),
                "ms",
            ),
            Result(f"{name} SQL {sql_what} per scrape", (sql,)),
            Result(f"{name} Redis commands per scrape", (redis_cmds,)),
        ]
    small, large = SIZES[0], SIZES[-1]
    for index, what in ((0, f"SQL {sql_what}"), (1, "Redis commands")):
        results.append(
            Result(
                f"metrics: {what} per scrape at {large:,} ÷ at {small:,}",
                # To a tenth: a stray transaction (autovacuum) moves the count by 1 / SCRAPES.
                (
                    round(per_scrape[large][index], 1)
                    / max(0.1, round(per_scrape[small][index], 1)),
                ),
                target=Target("<=", 1.0),
            )
        )
    return results


async def _teams(ctx: Context) -> list[Team]:
    async with connect(ctx) as conn:
        return await create_teams(conn, TEAMS)


async def _load(ctx: Context, teams: list[Team], size: int) -> int:
    """``size`` threads, their summary rows, outbox rows, heartbeats and job runs; returns the
    number of threads awaiting a reply (what /metrics should report)."""
    now = datetime.now(UTC)
    async with connect(ctx) as conn:
        await conn.execute("TRUNCATE threads CASCADE")
        for table in ("outbox", "team_deadline_summary", "job_runs"):
            await conn.execute(f"DELETE FROM {table}")
        await conn.execute(
            LOAD_THREADS,
            size,
            [t.category for t in teams],
            [t.id for t in teams],
            len(teams),
            now,
        )
        await conn.execute(LOAD_CLOCKS, None)
        await conn.execute(SUMMARY, now)
        await conn.execute(
            OUTBOX, [t.id for t in teams], len(teams), now, OUTBOX_PENDING, OUTBOX_DEAD
        )
        await _heartbeats(conn)
        for job in ("escalation", "digest"):
            await conn.execute(JOB_RUN, job, now)
        # Nothing left for autovacuum to do while the bench counts transactions.
        await conn.execute(
            "VACUUM ANALYZE threads, thread_clocks, outbox, team_deadline_summary, heartbeats, "
            "job_runs"
        )
        awaiting: int = await conn.fetchval("SELECT sum(awaiting) FROM team_deadline_summary")
    return awaiting


async def _heartbeats(conn: Any) -> None:
    """One worker alive (beating now), one down (a year ago)."""
    now = datetime.now(UTC)
    await conn.execute(HEARTBEAT, WORKERS[0], now)
    await conn.execute(HEARTBEAT, WORKERS[1], now.replace(year=now.year - 1))


def _refresh_heartbeats(ctx: Context) -> None:
    async def run() -> None:
        async with connect(ctx) as conn:
            await _heartbeats(conn)

    asyncio.run(run())


# --- Round trips per scrape --------------------------------------------------------------------


def _count_round_trips(
    ctx: Context, size: int, counter: str, awaiting: int
) -> tuple[float, float, float]:
    """(SQL per scrape, Redis commands per scrape on the bench's db, server-wide cross-check)."""
    _refresh_heartbeats(ctx)  # the live one stays live for the 45 s of CONFIDE_WORKER_DOWN_AFTER_S
    before = _sql_count(ctx, counter)
    _scrape_in_fresh_web(ctx, f"web-count-{size}-a", WARM_SCRAPES, awaiting)
    middle = _sql_count(ctx, counter)
    commands: list[int] = []
    stats: dict[str, int] = {}

    def measured(scrape: Callable[[int], None]) -> None:
        nonlocal commands, stats
        cross_before = _commandstats(ctx)
        with _monitor(ctx) as seen:
            scrape(SCRAPES)
        stats = {k: v - cross_before.get(k, 0) for k, v in _commandstats(ctx).items()}
        commands = seen

    _scrape_in_fresh_web(ctx, f"web-count-{size}-b", WARM_SCRAPES, awaiting, then=measured)
    after = _sql_count(ctx, counter)
    first, second = middle - before, after - middle
    say(
        f"    counting: a web process that scraped {WARM_SCRAPES} times added {first} SQL, "
        f"one that scraped {WARM_SCRAPES} + {SCRAPES} times {second}"
    )
    sql = (second - first) / SCRAPES
    cross = sum(stats.get(c, 0) for c in REDIS_COMMANDS) / SCRAPES
    return sql, len(commands) / SCRAPES, cross


def _sql_count(ctx: Context, counter: str) -> int:
    """The counter, once the web process's backends have exited (and so published their
    counts). Exactly one short connection per reading, so the readings cost the same each time."""
    time.sleep(1.5)
    return int(ctx.fetchval(counter))


def _scrape_in_fresh_web(
    ctx: Context,
    name: str,
    scrapes: int,
    awaiting: int,
    then: Callable[[Callable[[int], None]], None] | None = None,
) -> None:
    web = start_web(ctx, name)
    try:
        body = ""
        for _ in range(scrapes):
            body = _scrape(web)
        _check(body, awaiting)
        if then is not None:

            def scrape(n: int) -> None:
                for _ in range(n):
                    _scrape(web)

            then(scrape)
    finally:
        ctx.processes.stop(web.procs)


def _scrape(web: Web) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        text = response.read().decode()
        if response.status != 200:
            raise RuntimeError(f"/metrics answered {response.status}")
        return text
    finally:
        conn.close()


def _check(body: str, awaiting: int) -> None:
    """The scrape reports what the bench loaded, so the figures measure the real thing."""
    values = dict(re.findall(r"^(confide_\w+|celery_active_worker_count) (\S+)$", body, re.M))
    expected = {
        "confide_threads_awaiting_reply": awaiting,
        "confide_outbox_pending": OUTBOX_PENDING,
        "confide_outbox_dead_letters": OUTBOX_DEAD,
        "celery_active_worker_count": 1,
    }
    for key, want in expected.items():
        if float(values.get(key, "nan")) != want:
            raise RuntimeError(f"/metrics gave {key} = {values.get(key)}, expected {want}")


# --- Redis -------------------------------------------------------------------------------------


def _redis_db(ctx: Context) -> int:
    return int(urlsplit(ctx.redis_url).path.lstrip("/") or 0)


def _redis(ctx: Context) -> Any:
    import redis

    return redis.Redis.from_url(ctx.redis_url, socket_timeout=10)


def _commandstats(ctx: Context) -> dict[str, int]:
    client = _redis(ctx)
    try:
        info = client.info("commandstats")
    finally:
        client.close()
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()}


STOP_WORD = "bench-metrics-monitor-stop"


@contextlib.contextmanager
def _monitor(ctx: Context) -> Any:
    """Commands sent to the bench's Redis db while the block runs (MONITOR, in a thread)."""
    db = _redis_db(ctx)
    seen: list[str] = []
    client = _redis(ctx)
    ready = threading.Event()
    failed: list[BaseException] = []

    def listen() -> None:
        try:
            with client.monitor() as monitor:
                ready.set()
                while True:
                    command = monitor.next_command()
                    if STOP_WORD in command["command"]:
                        return
                    if command["db"] == db:
                        seen.append(command["command"])
        except BaseException as exc:  # reported below
            failed.append(exc)
            ready.set()

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    ready.wait(10)
    time.sleep(0.2)  # MONITOR is in place once the server has answered it
    try:
        yield seen
    finally:
        time.sleep(0.2)
        stopper = _redis(ctx)
        try:
            stopper.echo(STOP_WORD)
        finally:
            stopper.close()
        thread.join(10)
        client.close()
    if failed:
        raise RuntimeError(f"Redis MONITOR failed: {failed[0]!r}")
