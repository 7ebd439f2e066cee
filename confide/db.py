"""PostgreSQL pool helpers and the migration runner (numbered plain .sql files in ``migrations/``)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from pathlib import Path
from typing import Any

import asyncpg
from asyncpg import Connection

from confide.sql import migrations as sql_migrations

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_ID = 0x636F6E66  # "conf": one migrator at a time across processes


class Pool:
    """asyncpg's pool behind a first-come, first-served gate.

    asyncpg hands a released connection to whichever task asks next, and a waiter it woke finds
    the connection taken and queues again at the back. Under load a few requests wait many times
    over while others never wait (measured: p50 0 ms, p99 157 ms for a connection at 2,200
    submissions/s). The semaphore, sized like the pool, queues requests in arrival order, so a
    busy pool delays every request a little instead of some a lot.

    Serves ``make bench`` ``submit`` (p99 ÷ bare ≤ 1.5, and req/s ÷ bare ≥ 0.50): with it the
    submission p99 fell from about 200 ms to 33–40 ms (docs/benchmarks.md, second round).
    """

    def __init__(self, pool: asyncpg.Pool, size: int) -> None:
        self._pool = pool
        self._gate = asyncio.Semaphore(size)

    def acquire(self) -> _Acquire:
        return _Acquire(self._gate, self._pool)

    async def close(self) -> None:
        await self._pool.close()

    def is_closing(self) -> bool:
        return bool(self._pool.is_closing())


class _Acquire:
    """``async with pool.acquire() as conn``: a place in the queue, then a connection."""

    __slots__ = ("_gate", "_inner", "_pool")

    def __init__(self, gate: asyncio.Semaphore, pool: asyncpg.Pool) -> None:
        self._gate = gate
        self._pool = pool
        self._inner: Any = None  # Any: asyncpg's acquire context (asyncpg ships no types)

    async def __aenter__(self) -> Connection:
        await self._gate.acquire()
        try:
            self._inner = self._pool.acquire()
            conn: Connection = await self._inner.__aenter__()
        except BaseException:
            self._gate.release()
            raise
        return conn

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._inner.__aexit__(*exc)
        finally:
            self._gate.release()


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, timeout_s: float = 30.0
) -> Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=timeout_s,
        # No per-release reset query: our connections keep no session state (advisory locks are
        # released explicitly, no LISTEN, no SET). It saves a round trip on every request.
        reset=_no_reset,
        # application_name shows in pg_stat_activity; it never carries request data.
        server_settings={"application_name": "confide"},
    )
    assert pool is not None
    return Pool(pool, max_size)


async def _no_reset(conn: Connection) -> None:
    return None


def migration_files(folder: Path = MIGRATIONS_DIR) -> list[tuple[int, str, str]]:
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise RuntimeError(f"migration file name not NNNN_name.sql: {path.name}")
        found.append((int(match.group(1)), path.name, path.read_text(encoding="utf-8")))
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError("two migration files share a number")
    return found


async def migrate(conn: Connection, folder: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations, each in its own transaction. Safe to run twice or concurrently."""
    applied_now: list[str] = []
    await sql_migrations.lock(conn, _LOCK_ID)
    try:
        await sql_migrations.create_table(conn)
        done = await sql_migrations.applied(conn)
        for version, name, sql in migration_files(folder):
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if version in done:
                if done[version].checksum != checksum:
                    raise RuntimeError(f"migration {name} was edited after it was applied")
                continue
            async with conn.transaction():
                await conn.execute(sql)  # the migration file itself: plain SQL, no parameters
                await sql_migrations.record(conn, version, name, checksum)
            applied_now.append(name)
    finally:
        await sql_migrations.unlock(conn, _LOCK_ID)
    return applied_now


async def pending_migrations(conn: Connection, folder: Path = MIGRATIONS_DIR) -> list[str]:
    """The names of the migration files not applied yet (all of them on an empty database)."""
    done = await sql_migrations.applied(conn) if await sql_migrations.table_exists(conn) else {}
    return [name for version, name, _ in migration_files(folder) if version not in done]


async def ensure_database(dsn: str) -> None:
    """Create the database named in ``dsn`` if it does not exist (development convenience)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    name = parts.path.lstrip("/") or "postgres"
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        admin = urlunsplit(parts._replace(path="/postgres"))
        conn = await asyncpg.connect(admin)
        with contextlib.suppress(asyncpg.DuplicateDatabaseError):
            await conn.execute(f'CREATE DATABASE "{_ident(name)}"')
    await conn.close()


def _ident(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise ValueError("database names may use letters, digits and _ only")
    return name
