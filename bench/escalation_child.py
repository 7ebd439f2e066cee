"""One escalation pass in a fresh, worker-like process: its wall time and peak memory.

``python -m bench.escalation_child --as-of ISO --mode confide`` calls
:func:`confide.services.deadlines.escalation_pass` as the Celery task does (a pool of at most 2
connections, the organisation's calendar), with Confide's settings from the environment.
``--mode bare --dsn DSN`` runs the baseline instead: the set-based scan and mark of the
machine-limits study on ``bench_esc_threads``, in one transaction.

Both modes import the same modules and open their connection before the clock starts. The
process's peak RSS (``VmHWM``) is reset just before the pass (``/proc/self/clear_refs``), so
``pass_peak_mb`` is the most the whole process held while the pass ran and ``rss_before_mb`` what
it held just before. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from confide import db
from confide import org as org_file
from confide.context import Context
from confide.crypto import Keyring
from confide.services import deadlines
from confide.services.workdays import WorkingCalendar
from confide.settings import Settings

# The SQL functions confide.services.deadlines.escalation_pass calls, timed one by one.
STEPS = (
    "escalate",
    "queue_overdue_alerts",
    "refresh_summary",
    "queue_digests",
    "team_counts",
    "record_success",
)
BARE_TABLE = "bench_esc_threads"
BARE_WHERE = "escalated_at IS NULL AND due_at <= $1::timestamptz + interval '1 day'"
BARE_SCAN = (
    f"SELECT team_id, count(*) AS n, min(due_at) AS oldest FROM {BARE_TABLE} WHERE {BARE_WHERE} "
    "GROUP BY team_id"
)
BARE_MARK = f"UPDATE {BARE_TABLE} SET escalated_at = $1 WHERE {BARE_WHERE} RETURNING id, team_id"


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Meter:
    """Wall time and memory of the pass alone: RSS just before it, and the peak during it."""

    def __init__(self) -> None:
        self.rss_before_mb = float("nan")
        self.peak_reset = False
        self.started = 0.0
        self.wall_s = 0.0

    def start(self) -> None:
        self.rss_before_mb = _status_mb("VmRSS")
        self.peak_reset = _reset_peak()
        self.started = time.perf_counter()

    def stop(self) -> None:
        self.wall_s = time.perf_counter() - self.started

    def as_json(self) -> dict[str, float]:
        return {
            "wall_ms": 1000 * self.wall_s,
            "rss_before_mb": self.rss_before_mb,
            "pass_peak_mb": _status_mb("VmHWM") if self.peak_reset else float("nan"),
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }


def _time_steps(steps: dict[str, float]) -> None:
    """Wrap each SQL function the pass calls, to show where its time goes (ms per step)."""
    from confide.sql import deadlines as sql_deadlines

    def timed(name: str, function: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                steps[name] = steps.get(name, 0.0) + 1000 * (time.perf_counter() - started)

        return wrapper

    for name in STEPS:
        function = getattr(sql_deadlines, name, None)
        if function is not None:  # the steps change as the pass is optimised
            setattr(sql_deadlines, name, timed(name, function))


async def _confide(meter: Meter, as_of: datetime) -> dict[str, Any]:
    steps: dict[str, float] = {}
    _time_steps(steps)
    settings = Settings.from_env()
    calendar = WorkingCalendar.for_org(org_file.load(settings.org_file))
    pool = await db.create_pool(settings.require_database(), min_size=0, max_size=2)
    try:
        async with pool.acquire() as conn:  # the worker's pool is warm between passes
            await conn.fetchval("SELECT 1")
        meter.start()
        ctx = Context(pool, settings, Keyring.from_secret(settings.encryption_keys), calendar)
        report = await deadlines.escalation_pass(ctx, as_of)
        meter.stop()
    finally:
        await pool.close()
    teams = report.teams.values()
    return {
        "nearing": sum(t["nearing"] for t in teams),
        "overdue": sum(t["overdue"] for t in teams),
        "alerts": report.overdue_alerts,
        "digests": len(report.digests),
        "steps_ms": steps,
    }


async def _bare(meter: Meter, dsn: str, as_of: datetime) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.fetchval("SELECT 1")
        meter.start()
        async with conn.transaction():
            teams = await conn.fetch(BARE_SCAN, as_of)
            marked = await conn.fetch(BARE_MARK, as_of)
        meter.stop()
    finally:
        await conn.close()
    return {"teams": len(teams), "due": sum(r["n"] for r in teams), "marked": len(marked)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-of", required=True)
    parser.add_argument("--mode", choices=("confide", "bare"), required=True)
    parser.add_argument("--dsn", help="bare mode: the database")
    args = parser.parse_args()
    as_of = datetime.fromisoformat(args.as_of)
    meter = Meter()
    if args.mode == "confide":
        detail = asyncio.run(_confide(meter, as_of))
    else:
        detail = asyncio.run(_bare(meter, args.dsn, as_of))
    print(json.dumps({**meter.as_json(), **detail}), flush=True)


if __name__ == "__main__":
    main()
