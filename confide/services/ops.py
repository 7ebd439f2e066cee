"""What the ops dashboard shows, and its actions on dead letters (audited)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from confide import jobs
from confide.context import Context
from confide.sql import audit as sql_audit
from confide.sql import deadlines as sql_deadlines
from confide.sql import heartbeats as sql_heartbeats
from confide.sql import metrics as sql_metrics
from confide.sql import outbox as sql_outbox
from confide.sql.deadlines import TeamDeadlines
from confide.sql.metrics import Snapshot as Snapshot  # the /metrics figures
from confide.sql.outbox import DeadLetter

WORKER_DOWN_AFTER_S = 45


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    hostname: str
    last_seen: datetime
    age_s: float
    up: bool
    queues: list[str]
    active: int | None  # tasks running at its last heartbeat


@dataclass
class Overview:
    workers: list[WorkerStatus] = field(default_factory=list)
    beat_age_s: float | None = None
    teams: list[TeamDeadlines] = field(default_factory=list)
    outbox_pending: int = 0
    outbox_oldest_s: float | None = None
    dead_letters: list[DeadLetter] = field(default_factory=list)

    @property
    def workers_status(self) -> str:
        up = [w for w in self.workers if w.up]
        if not up:
            return "down"
        return "ok" if len(up) == len(self.workers) else "degraded"

    @property
    def beat_status(self) -> str:
        if self.beat_age_s is None:
            return "down"
        return "ok" if self.beat_age_s <= jobs.BEAT_STALE_AFTER_S else "down"

    @property
    def deadlines_status(self) -> str:
        return "degraded" if any(t.overdue for t in self.teams) else "ok"

    @property
    def outbox_status(self) -> str:
        if self.outbox_oldest_s is not None and self.outbox_oldest_s > 600:
            return "degraded"
        return "ok"

    @property
    def failed_status(self) -> str:
        return "degraded" if self.dead_letters else "ok"


async def overview(ctx: Context, down_after_s: float = WORKER_DOWN_AFTER_S) -> Overview:
    result = Overview()
    async with ctx.pool.acquire() as conn:
        for row in await sql_heartbeats.all_workers(conn):
            detail = json.loads(row.detail) if row.detail else {}
            result.workers.append(
                WorkerStatus(
                    row.hostname,
                    row.last_tick,
                    row.age,
                    row.age <= down_after_s,
                    list(detail.get("queues", [])),
                    detail.get("active"),
                )
            )
        result.beat_age_s = await sql_heartbeats.age_seconds(conn, jobs.BEAT_HEARTBEAT_NAME)
        result.teams = await sql_deadlines.summary(conn)
        stats = await sql_outbox.pending_stats(conn)
        result.outbox_pending = stats.pending
        result.outbox_oldest_s = stats.oldest
        result.dead_letters = await sql_outbox.dead_letters(conn)
    return result


async def retry_dead_letter(ctx: Context, staff_id: int, outbox_id: UUID) -> bool:
    async with ctx.pool.acquire() as conn, conn.transaction():
        done = await sql_outbox.retry_dead(conn, outbox_id)
        if done:
            await sql_audit.record(conn, staff_id, None, "ops_retry", {"outbox_id": str(outbox_id)})
    if done:
        ctx.after_commit()
    return done


async def dismiss_dead_letter(ctx: Context, staff_id: int, outbox_id: UUID) -> bool:
    async with ctx.pool.acquire() as conn, conn.transaction():
        done = await sql_outbox.dismiss_dead(conn, outbox_id)
        if done:
            await sql_audit.record(
                conn, staff_id, None, "ops_dismiss", {"outbox_id": str(outbox_id)}
            )
    return done


@dataclass(frozen=True)
class LastTicks:
    """When beat and the latest worker last wrote a heartbeat (``None``: never)."""

    beat: datetime | None
    worker: datetime | None


async def last_ticks(ctx: Context) -> LastTicks:
    """For ``/readyz``; raises what the pool raises when PostgreSQL does not answer."""
    async with ctx.pool.acquire() as conn:
        return LastTicks(
            beat=await sql_heartbeats.last_tick(conn, jobs.BEAT_HEARTBEAT_NAME),
            worker=await sql_heartbeats.latest_worker_tick(conn),
        )


async def metrics_snapshot(ctx: Context) -> Snapshot:
    """Every database figure of ``GET /metrics`` from one query over small summary tables."""
    async with ctx.pool.acquire() as conn:
        return await sql_metrics.snapshot(conn)


async def readiness(ctx: Context, ping_redis: Callable[[], Awaitable[object]]) -> dict[str, str]:
    """What ``/readyz`` reports: ``postgres``, ``redis``, ``workers`` and ``beat``, each "ok",
    "stale" (no heartbeat lately) or "down". Never raises: any failure means "down", since its
    details would name hosts."""
    checks = {"postgres": "down", "redis": "down", "workers": "down", "beat": "down"}
    ticks = LastTicks(None, None)
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2.0):
            ticks = await last_ticks(ctx)
        checks["postgres"] = "ok"
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1.0):
            await ping_redis()
        checks["redis"] = "ok"
    now = datetime.now(UTC)
    for name, at in (("beat", ticks.beat), ("workers", ticks.worker)):
        if at is not None:
            fresh = (now - at).total_seconds() <= jobs.BEAT_STALE_AFTER_S
            checks[name] = "ok" if fresh else "stale"
    return checks
