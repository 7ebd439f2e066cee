"""SQL for process heartbeats (beat writes one every 30 s)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from asyncpg import Connection


@dataclass(frozen=True, slots=True)
class WorkerBeat:
    hostname: str
    last_tick: datetime
    detail: str | None  # JSON text: {"queues": [...], "active": n}
    age: float  # seconds since last_tick


async def beat(conn: Connection, name: str) -> None:
    await conn.execute(
        """INSERT INTO heartbeats (name, last_tick) VALUES ($1, now())
           ON CONFLICT (name) DO UPDATE SET last_tick = now()""",
        name,
    )


async def last_tick(conn: Connection, name: str) -> datetime | None:
    value: datetime | None = await conn.fetchval(
        "SELECT last_tick FROM heartbeats WHERE name = $1", name
    )
    return value


async def latest_worker_tick(conn: Connection) -> datetime | None:
    value: datetime | None = await conn.fetchval(
        "SELECT max(last_tick) FROM heartbeats WHERE name LIKE 'worker:%'"
    )
    return value


async def beat_with_detail(conn: Connection, name: str, detail: str) -> None:
    await conn.execute(
        """INSERT INTO heartbeats (name, last_tick, detail) VALUES ($1, now(), $2::jsonb)
           ON CONFLICT (name) DO UPDATE SET last_tick = now(), detail = EXCLUDED.detail""",
        name,
        detail,
    )


async def all_workers(conn: Connection) -> list[WorkerBeat]:
    rows = await conn.fetch(
        """SELECT substr(name, 8) AS hostname, last_tick, detail,
                  extract(epoch FROM now() - last_tick) AS age
           FROM heartbeats WHERE name LIKE 'worker:%' ORDER BY name"""
    )
    return [WorkerBeat(r["hostname"], r["last_tick"], r["detail"], float(r["age"])) for r in rows]


async def age_seconds(conn: Connection, name: str) -> float | None:
    value = await conn.fetchval(
        "SELECT extract(epoch FROM now() - last_tick) FROM heartbeats WHERE name = $1", name
    )
    return float(value) if value is not None else None
