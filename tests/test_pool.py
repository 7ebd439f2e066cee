"""The web's connection pool (confide.db.Pool) serves requests in the order they asked, and a
request that fails, is cancelled or breaks its connection never costs the next one a place."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
import pytest

from confide import db
from tests.conftest import Stack


async def test_when_every_connection_is_busy_requests_are_served_in_arrival_order(
    stack: Stack,
) -> None:
    pool = await db.create_pool(stack.env["DATABASE_URL"], min_size=1, max_size=2)
    served: list[int] = []

    async def request(n: int) -> None:
        async with pool.acquire() as conn:
            served.append(n)
            await conn.execute("SELECT pg_sleep(0.05)")

    try:
        tasks = []
        for n in range(8):
            tasks.append(asyncio.create_task(request(n)))
            await asyncio.sleep(0)  # each asks before the next is created
        await asyncio.gather(*tasks)
    finally:
        await pool.close()
    assert served == list(range(8))


async def test_a_failed_or_cancelled_request_leaves_its_place_to_the_next(stack: Stack) -> None:
    pool = await db.create_pool(stack.env["DATABASE_URL"], min_size=1, max_size=1)
    try:
        with pytest.raises(asyncpg.UndefinedTableError):
            async with pool.acquire() as conn:
                await conn.execute("SELECT * FROM no_such_table")
        # Left inside a transaction: that connection is closed, and a fresh one serves next.
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            broken_pid = conn.get_server_pid()
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert conn.get_server_pid() != broken_pid
        # One waits for the only connection and is cancelled: the one after it still gets it.
        async with pool.acquire() as conn:
            waiting = asyncio.create_task(_one(pool))
            await asyncio.sleep(0.01)
            waiting.cancel()
            after = asyncio.create_task(_one(pool))
            await asyncio.sleep(0.01)
        assert await asyncio.wait_for(after, 5) == 1
        with pytest.raises(asyncio.CancelledError):
            await waiting
    finally:
        await pool.close()


async def test_a_connection_the_server_closed_while_idle_is_replaced(stack: Stack) -> None:
    pool = await db.create_pool(stack.env["DATABASE_URL"], min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            idle_pid = conn.get_server_pid()
        admin = await asyncpg.connect(stack.env["DATABASE_URL"])
        try:
            await admin.execute("SELECT pg_terminate_backend($1)", idle_pid)
        finally:
            await admin.close()
        await asyncio.sleep(0.2)  # the client notices the closed socket
        async with pool.acquire() as conn:
            assert conn.get_server_pid() != idle_pid
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


async def _one(pool: db.Pool) -> int:
    async with pool.acquire() as conn:
        value: int = await conn.fetchval("SELECT 1")
        return value


async def test_writes_that_arrive_together_share_a_statement_and_a_bad_one_fails_alone(
    stack: Stack,
) -> None:
    """confide.db.Batches: items queued together go in one write; when it fails with an error an
    item can cause, each is written alone, so only that item's caller sees the error."""
    pool = await db.create_pool(stack.env["DATABASE_URL"], min_size=1, max_size=2)
    sizes: list[int] = []

    async def divide(conn: asyncpg.Connection, items: Sequence[int]) -> list[int]:
        sizes.append(len(items))
        rows = await conn.fetch(
            "SELECT 12 / x AS q FROM unnest($1::int[]) WITH ORDINALITY AS t(x, n) ORDER BY n",
            list(items),
        )
        return [row["q"] for row in rows]

    batches = pool.batches("test-divide", divide)
    try:
        answers = await asyncio.gather(
            *(batches.write(x) for x in (1, 2, 0, 3)), return_exceptions=True
        )
        one_at_a_time = [await batches.write(4), await batches.write(6)]
    finally:
        await pool.close()
    assert answers[:2] == [12, 6] and answers[3] == 4
    assert isinstance(answers[2], asyncpg.DivisionByZeroError)
    assert sizes == [4, 1, 1, 1, 1, 1, 1]  # together, then alone after the error; then lone
    assert one_at_a_time == [3, 2]


async def test_a_batch_that_cannot_reach_the_database_fails_every_caller_at_once(
    stack: Stack,
) -> None:
    pool = await db.create_pool(stack.env["DATABASE_URL"], min_size=1, max_size=2)
    attempts: list[int] = []

    async def unreachable(conn: asyncpg.Connection, items: Sequence[int]) -> list[int]:
        attempts.append(len(items))
        raise OSError("the database is unreachable")

    batches = pool.batches("test-unreachable", unreachable)
    try:
        answers = await asyncio.gather(
            *(batches.write(n) for n in range(3)), return_exceptions=True
        )
    finally:
        await pool.close()
    assert all(isinstance(a, OSError) for a in answers)
    assert attempts == [3]  # not tried again item by item, which would multiply the wait
