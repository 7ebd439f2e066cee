"""The escalation pass over 1,000,000 open threads in 200 teams, about 8 % due within a day.

The bench bulk-loads open threads awaiting a reply (``awaiting_since`` and ``reply_due_at`` set)
and their running clocks (``thread_clocks``: ``nearing_at`` set, ``escalation = 'none'``), with ``reply_due_at`` uniform over [as-of − 12 h,
as-of + 18.25 days]: about 2.7 % are overdue and 5.3 % nearing (due within a working day) at the
pass's as-of time, Wednesday 25 November 2026 12:00 UTC (after the 09:00 digest time, so the pass
also queues one digest per team). Each team has one manager, who gets one alert per overdue thread.

Each pass runs in a fresh worker-like child process (:mod:`bench.escalation_child`), which reports
the pass's wall time and its peak RSS. Baseline: the set-based scan and mark of the machine-limits
study (``escalation_scan.py``) on an equivalent bare table (``bench_esc_threads``: id, team, due
time, escalated time, with a partial index), same rows and due times, in the same kind of child.
Confide and the baseline alternate; the data is reset (and vacuumed) between passes, untimed.
Run at 100,000 and at 1,000,000 threads, to show whether memory stays flat.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.common import Context, Result, Target, say
from bench.escalation_child import BARE_TABLE
from bench.fixtures import (
    LOAD_CLOCKS,
    Team,
    add_managers,
    connect,
    create_teams,
    drop_bench_rows,
    ensure_schema,
    median,
    read_child_json,
)

NAME = "escalation"
TITLE = "Escalation pass: 1,000,000 open threads in 200 teams, ~8 % due within a day"
TEAMS = 200
SIZES = (100_000, 1_000_000)  # the last one carries the target
AS_OF = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
RATIO_TARGET = Target("<=", 2.0)

# reply_due_at uniform over [as_of - 12 h, as_of + 18.25 days]; nearing a working day (taken here
# as a calendar day: only the SQL comparisons matter to the pass) before it.
LOAD_THREADS = """
INSERT INTO threads (id, reference, category_slug, team_id, anonymous, follow_up, status,
                     received_at, description, last_reporter_message_at, last_activity_at,
                     awaiting_since, reply_due_at)
SELECT gen_random_uuid(), 'R-' || lpad(g::text, 8, '0'), ($2::text[])[k], ($3::int[])[k],
       true, true, 'open', due - interval '2 days', '\\x00'::bytea, due - interval '2 days',
       due - interval '2 days', due - interval '2 days', due
FROM (SELECT g, 1 + g % $4 AS k,
             $5::timestamptz - interval '12 hours' + random() * interval '18.75 days' AS due
      FROM generate_series(1, $1) g) s
"""
BARE_CREATE = f"""CREATE TABLE {BARE_TABLE} (
    id bigserial PRIMARY KEY, team_id int NOT NULL, due_at timestamptz NOT NULL,
    escalated_at timestamptz)"""
BARE_LOAD = f"""INSERT INTO {BARE_TABLE} (team_id, due_at)
SELECT team_id, reply_due_at FROM threads"""
BARE_INDEX = (
    f"CREATE INDEX {BARE_TABLE}_open_due ON {BARE_TABLE} (due_at, team_id) "
    "WHERE escalated_at IS NULL"
)
CONFIDE_RESET = (
    "UPDATE thread_clocks SET escalation = 'none', escalated_at = NULL WHERE escalation <> 'none'",
    "DELETE FROM outbox",
    "DELETE FROM team_deadline_summary",
    "DELETE FROM job_runs",
)
BARE_RESET = f"UPDATE {BARE_TABLE} SET escalated_at = NULL WHERE escalated_at IS NOT NULL"


@dataclass
class Pass:
    wall_ms: float
    rss_before_mb: float
    peak_mb: float
    detail: dict[str, Any]


def run(ctx: Context) -> list[Result]:
    ensure_schema(ctx)
    try:
        return _run(ctx)
    finally:
        drop_bench_rows(ctx)
        ctx.execute(f"DROP TABLE IF EXISTS {BARE_TABLE}")


def _run(ctx: Context) -> list[Result]:
    teams = asyncio.run(_teams(ctx))
    results: list[Result] = []
    peaks: dict[int, float] = {}
    for size in SIZES:
        label = f"{size:,} threads"
        started = time.monotonic()
        due = asyncio.run(_load(ctx, teams, size))
        say(
            f"\n  {label}: {due:,} due within a day ({100 * due / size:.1f} %); loaded, indexed "
            f"and vacuumed in {time.monotonic() - started:.0f} s"
        )
        confide: list[Pass] = []
        bare: list[Pass] = []
        runs = ctx.runs if size == SIZES[-1] else max(1, ctx.runs - 1)
        for i in range(runs):
            for which in ("bare", "confide") if i % 2 == 0 else ("confide", "bare"):
                done = _pass(ctx, which)
                (bare if which == "bare" else confide).append(done)
                say(f"    run {i + 1} {which:<8} {_describe(done)}")
                asyncio.run(_reset(ctx, which))
        peaks[size] = median([p.peak_mb for p in confide])
        name = f"escalation, {label}:"
        results += [
            Result(
                f"{name} pass time Confide ÷ bare",
                tuple(c.wall_ms / b.wall_ms for c, b in zip(confide, bare, strict=True)),
                target=RATIO_TARGET if size == SIZES[-1] else None,
            ),
            Result(f"{name} Confide pass", tuple(p.wall_ms for p in confide), "ms", digits=0),
            Result(f"{name} bare scan + mark", tuple(p.wall_ms for p in bare), "ms", digits=0),
            Result(
                f"{name} Confide peak RSS during the pass",
                tuple(p.peak_mb for p in confide),
                "MB",
                digits=1,
            ),
            Result(
                f"{name} Confide RSS growth during the pass",
                tuple(p.peak_mb - p.rss_before_mb for p in confide),
                "MB",
                digits=1,
            ),
            Result(
                f"{name} bare RSS growth during the pass",
                tuple(p.peak_mb - p.rss_before_mb for p in bare),
                "MB",
                digits=1,
            ),
        ]
    small, large = SIZES[0], SIZES[-1]
    results.append(
        Result(
            f"escalation: peak RSS at {large:,} ÷ at {small:,} threads",
            (peaks[large] / peaks[small],),
        )
    )
    return results


async def _teams(ctx: Context) -> list[Team]:
    async with connect(ctx) as conn:
        teams = await create_teams(conn, TEAMS)
        await add_managers(conn, teams)
    return teams


async def _load(ctx: Context, teams: list[Team], size: int) -> int:
    """``size`` threads and the same rows in the bare table; returns how many are due in a day."""
    async with connect(ctx) as conn:
        await conn.execute("TRUNCATE threads CASCADE")
        await conn.execute(f"DROP TABLE IF EXISTS {BARE_TABLE}")
        for statement in CONFIDE_RESET[1:]:
            await conn.execute(statement)
        await conn.execute(
            LOAD_THREADS,
            size,
            [t.category for t in teams],
            [t.id for t in teams],
            len(teams),
            AS_OF,
        )
        await conn.execute(LOAD_CLOCKS, None)
        await conn.execute(BARE_CREATE)
        await conn.execute(BARE_LOAD)
        await conn.execute(BARE_INDEX)
        await conn.execute(f"VACUUM ANALYZE threads, thread_clocks, {BARE_TABLE}")
        due: int = await conn.fetchval(
            "SELECT count(*) FROM thread_clocks WHERE nearing_at <= $1", AS_OF
        )
    return due


def _pass(ctx: Context, which: str) -> Pass:
    argv = [sys.executable, "-m", "bench.escalation_child", "--as-of", AS_OF.isoformat()]
    argv += ["--mode", which, "--dsn", ctx.database_url]
    proc = ctx.processes.start(f"escalation-{which}", argv, ctx.confide_env(port=8080))
    try:
        out = read_child_json(proc, timeout=300)
    finally:
        ctx.processes.stop([proc])
    detail = {k: v for k, v in out.items() if k not in ("wall_ms", "rss_before_mb", "pass_peak_mb")}
    return Pass(out["wall_ms"], out["rss_before_mb"], out["pass_peak_mb"], detail)


async def _reset(ctx: Context, which: str) -> None:
    """Undo a pass (untimed) and vacuum, so the next pass finds the same table state."""
    async with connect(ctx) as conn:
        if which == "confide":
            for statement in CONFIDE_RESET:
                await conn.execute(statement)
            await conn.execute("VACUUM ANALYZE thread_clocks, outbox, team_deadline_summary")
        else:
            await conn.execute(BARE_RESET)
            await conn.execute(f"VACUUM ANALYZE {BARE_TABLE}")


def _describe(done: Pass) -> str:
    counts = {k: v for k, v in done.detail.items() if k not in ("maxrss_mb", "steps_ms")}
    text = (
        f"{done.wall_ms:7.0f} ms  RSS {done.rss_before_mb:.0f} MB before, peak "
        f"{done.peak_mb:.0f} MB during the pass  ("
        + ", ".join(f"{k} {v:,.0f}" for k, v in counts.items())
        + ")"
    )
    steps = done.detail.get("steps_ms")
    if steps:
        text += "\n      steps: " + ", ".join(f"{k} {v:,.0f} ms" for k, v in steps.items())
    return text
