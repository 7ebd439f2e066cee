"""PostgreSQL pool helpers and the migration runner (numbered plain .sql files in ``migrations/``)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import asyncpg
from asyncpg import Connection

from confide.sql import migrations as sql_migrations

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_ID = 0x636F6E66  # "conf": one migrator at a time across processes


class Pool:
    """A first-come, first-served pool over asyncpg's: connections stay checked out of asyncpg's
    pool while idle here, and are handed out in arrival order.

    asyncpg hands a released connection to whichever task asks next, and a waiter it woke finds
    the connection taken and queues again at the back. Under load a few requests wait many times
    over while others never wait (measured: p50 0 ms, p99 157 ms for a connection at 2,200
    submissions/s). Here a released connection goes straight to the longest waiter.

    asyncpg's pool stays the one that opens, checks and replaces connections: a connection that
    comes back broken, inside a transaction or after an exception goes back to asyncpg (which
    closes it and opens another when asked), and so does a closed one found idle here.

    Serves ``make bench`` ``submit`` (p99 ÷ bare ≤ 1.5, and req/s ÷ bare ≥ 0.50): in arrival
    order the submission p99 fell from about 200 ms to 33–40 ms (docs/benchmarks.md, second
    round); keeping idle connections here rather than releasing each one to asyncpg saves the
    task, timeout and idle timer that asyncpg's release makes every time (docs/benchmarks.md,
    2026-12-03).
    """

    def __init__(self, pool: asyncpg.Pool, size: int) -> None:
        self._pool = pool
        self._size = size
        self._out = 0  # connections taken from asyncpg's pool: idle here or in use
        self._idle: deque[Connection] = deque()
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        self._closing = False
        self._giving_back: set[asyncio.Task[None]] = set()
        self._batches: dict[str, Batches[Any, Any]] = {}

    def acquire(self) -> _Acquire:
        return _Acquire(self)

    def batches(self, name: str, write: BatchWrite[T, R]) -> Batches[T, R]:
        """The one :class:`Batches` of this pool for ``name`` (made on first use)."""
        found = self._batches.get(name)
        if found is None:
            found = self._batches[name] = Batches(self, write)
        return found

    async def close(self) -> None:
        for batches in self._batches.values():
            await batches.drain()  # what callers were promised is written first
        self._closing = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(asyncpg.InterfaceError("the pool is closing"))
        while self._idle:
            await self._give_back(self._idle.popleft())
        if self._giving_back:
            await asyncio.gather(*self._giving_back, return_exceptions=True)
        await self._pool.close()

    def is_closing(self) -> bool:
        return self._closing or bool(self._pool.is_closing())

    async def _get(self) -> Connection:
        if self._closing:
            raise asyncpg.InterfaceError("the pool is closing")
        while self._idle:
            conn = self._idle.pop()  # the most recently used: its server process is warm
            state = _state(conn)
            if state == "open":
                return conn
            if state == "closed":
                await self._give_back(conn)
            else:  # closed and taken back by asyncpg already: its place is free
                self._pass_on(None)
        if self._out < self._size:
            self._out += 1  # a place of our own
        else:
            waiter: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # handed over as we were cancelled
                    self._pass_on(waiter.result())
                raise
            if handed is not None:
                return handed
            # None: a connection went back to asyncpg, and its place is now ours.
        try:
            opened: Connection = await self._pool.acquire()
        except BaseException:
            self._pass_on(None)
            raise
        return opened

    def _put(self, conn: Connection | None, *, ok: bool) -> None:
        """``ok``: the block that used it ended without an exception."""
        if conn is None:
            return
        state = _state(conn)
        if state == "gone":  # it closed in use, and asyncpg took it back
            self._pass_on(None)
            return
        if not ok or self._closing or state == "closed" or conn.is_in_transaction():
            task = asyncio.get_running_loop().create_task(self._give_back(conn))
            self._giving_back.add(task)
            task.add_done_callback(self._giving_back.discard)
            return
        self._pass_on(conn)

    def _pass_on(self, conn: Connection | None) -> None:
        """Hand ``conn``, or with None its place, to the longest waiter; with none waiting, keep
        the connection idle, or free the place."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if conn is not None:
            self._idle.append(conn)
        else:
            self._out -= 1

    async def _give_back(self, conn: Connection) -> None:
        """To asyncpg's pool, which waits for a cancelled query to end (a closed connection it
        replaces when next asked); one left inside a transaction is closed first, since our
        pool resets nothing (``_no_reset``)."""
        try:
            if _state(conn) == "open" and conn.is_in_transaction():
                conn.terminate()  # asyncpg takes a closed connection back by itself
            if _state(conn) != "gone":
                await self._pool.release(conn)
        finally:
            self._pass_on(None)


T = TypeVar("T")
R = TypeVar("R")
# Writes one batch in one statement (autocommit: the batch commits whole or not at all) and
# answers each item, in order.
BatchWrite = Callable[[Connection, Sequence[T]], Awaitable[Sequence[R]]]


class Batches(Generic[T, R]):
    """Concurrent writes of one kind, committed together: each caller's item waits while a batch
    is being written, and goes with the next one, so N submissions arriving together cost a
    statement, a commit and a round trip for the batch rather than for each.

    A caller's :meth:`write` returns only once its item's batch has committed (or raises what
    writing it raised), so "received" is never said of an uncommitted row. A batch that fails
    with an error one item can cause (``ITEM_ERRORS``: a drawn reference that is taken, say) is
    written again item by item, so that error reaches its own caller only and the others still
    commit; any other error reaches every caller of the batch at once. Items wait for no timer: a lone item is written at once, and batches form only
    while earlier ones are in flight (at most ``MAX_IN_FLIGHT`` of them, of at most
    ``MAX_ITEMS`` items each). A caller that is cancelled while its batch is written does not
    stop it; one cancelled before does not join one.

    Serves ``make bench`` ``submit`` (req/s ÷ bare ≥ 0.50 with two web processes, where the
    2-core machine is the limit): PostgreSQL's CPU per submission is most of the gap to the
    bare form, and in batches of 2, 4 and 8 it fell from 0.20 ms to 0.13, 0.09 and 0.06 ms
    (12 connections, docs/benchmarks.md 2026-12-04).
    """

    MAX_ITEMS = 32
    MAX_IN_FLIGHT = 2
    # What one item can cause (a taken reference, a value the table refuses): its batch is
    # written again item by item. Anything else (a lost connection, a timeout) fails the batch's
    # callers at once, as it would have failed each of them alone.
    ITEM_ERRORS: tuple[type[Exception], ...] = (
        asyncpg.IntegrityConstraintViolationError,
        asyncpg.DataError,
    )

    def __init__(self, pool: Pool, write: BatchWrite[T, R]) -> None:
        self._pool = pool
        self._write = write
        self._queue: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._writers: set[asyncio.Task[None]] = set()
        # Counted down by a writer as it finds the queue empty, with no await in between, so
        # an item queued after that check always starts a writer of its own.
        self._running = 0

    async def write(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._running < self.MAX_IN_FLIGHT:
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._run())
            self._writers.add(task)
            task.add_done_callback(self._writers.discard)
        return await future

    async def drain(self) -> None:
        while self._writers:
            await asyncio.gather(*self._writers, return_exceptions=True)

    async def _run(self) -> None:
        try:
            while self._queue:
                batch: list[tuple[T, asyncio.Future[R]]] = []
                while self._queue and len(batch) < self.MAX_ITEMS:
                    entry = self._queue.popleft()
                    if not entry[1].done():  # a caller cancelled before its batch began
                        batch.append(entry)
                if batch:
                    await self._write_batch(batch)
        finally:
            self._running -= 1

    async def _write_batch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            async with self._pool.acquire() as conn:
                answers = await self._write(conn, [item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1 or not isinstance(exc, self.ITEM_ERRORS):
                for _, future in batch:
                    _fail(future, exc)
                return
            for entry in batch:  # item by item: only the item at fault fails
                await self._write_batch([entry])
            return
        except BaseException:  # cancelled (the process is stopping): its callers are too
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), answer in zip(batch, answers, strict=True):
            if not future.done():  # its caller was cancelled meanwhile: written all the same
                future.set_result(answer)


def _fail(future: asyncio.Future[R], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)


def _state(conn: Connection) -> Literal["open", "closed", "gone"]:
    """ "open"; "closed"; or "gone": closed, and already taken back by asyncpg's pool (which
    does so for every connection that closes, and detaches it)."""
    try:
        return "closed" if conn.is_closed() else "open"
    except asyncpg.InterfaceError:
        return "gone"


class _Acquire:
    """``async with pool.acquire() as conn``: a connection, in arrival order."""

    __slots__ = ("_conn", "_pool")

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._conn: Connection | None = None

    async def __aenter__(self) -> Connection:
        self._conn = await self._pool._get()
        return self._conn

    async def __aexit__(self, exc_type: object, *exc: object) -> None:
        conn, self._conn = self._conn, None
        self._pool._put(conn, ok=exc_type is None)


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
