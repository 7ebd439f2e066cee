"""SQL for the migration runner's own bookkeeping (``schema_migrations``) and its lock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from asyncpg import Connection


@dataclass(frozen=True, slots=True)
class Applied:
    version: int
    name: str
    checksum: str
    applied_at: datetime


async def lock(conn: Connection, lock_id: int) -> None:
    """A session-level advisory lock: one migrator at a time across processes."""
    await conn.execute("SELECT pg_advisory_lock($1)", lock_id)


async def unlock(conn: Connection, lock_id: int) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1)", lock_id)


async def create_table(conn: Connection) -> None:
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version integer PRIMARY KEY,
               name text NOT NULL,
               checksum text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )


async def table_exists(conn: Connection) -> bool:
    exists: bool = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    return exists


async def applied(conn: Connection) -> dict[int, Applied]:
    """Every applied migration by version (with its name and checksum)."""
    rows = await conn.fetch("SELECT version, name, checksum, applied_at FROM schema_migrations")
    return {r["version"]: Applied(**r) for r in rows}


async def record(conn: Connection, version: int, name: str, checksum: str) -> None:
    await conn.execute(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
        version,
        name,
        checksum,
    )
