"""Outages answer honestly and heal without restarting anything (issues 3 and 7).

PostgreSQL and Redis disappear for one web process through a TCP proxy in front of the real
servers, so the shared servers are never stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest

from tests.conftest import SmtpSink, Stack, kick_relay
from tests.proxy import Proxy
from tests.test_reporting import code_works

REPORT = {
    "category": "safety",
    "description": "During an outage",
    "anonymous": True,
    "follow_up": True,
}


def through(url: str, proxy: Proxy) -> str:
    """The same URL, reaching the server through the proxy over TCP."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    auth = netloc[0] + "@" if len(netloc) == 2 else ""
    return urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{proxy.port}", query=""))


@pytest.fixture
def pg_proxy(stack: Stack) -> Iterator[Proxy]:
    parts = urlsplit(stack.env["DATABASE_URL"])
    socket_dir = parse_qs(parts.query).get("host", [None])[0]
    if socket_dir:  # the embedded server: a Unix socket in its data directory
        proxy = Proxy("", 0, unix_path=f"{socket_dir}/.s.PGSQL.{parts.port or 5432}")
    else:
        proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    yield proxy
    proxy.close()


@pytest.fixture
def redis_proxy(stack: Stack) -> Iterator[Proxy]:
    parts = urlsplit(stack.env["REDIS_URL"])
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    yield proxy
    proxy.close()


async def test_postgres_down_says_nothing_was_received_and_heals(
    stack: Stack, db: asyncpg.Connection, pg_proxy: Proxy
) -> None:
    _, base = stack.start_web(
        "web-pg-outage", DATABASE_URL=through(stack.env["DATABASE_URL"], pg_proxy)
    )
    async with aiohttp.ClientSession(base_url=base) as http:
        pg_proxy.down()
        async with http.post("/api/v1/reports", json=REPORT) as resp:
            assert resp.status == 503
            assert resp.content_type == "application/problem+json"
            assert "Nothing was received" in (await resp.json())["detail"]
        async with http.post("/report/submit", data={"how": "anonymous"}) as resp:
            page = await resp.text()
            assert resp.status == 503 and "was not received" in page
            assert "Report received" not in page
        async with http.get("/readyz") as resp:
            assert resp.status == 503 and (await resp.json())["checks"]["postgres"] == "down"
        pg_proxy.up()
        for _ in range(20):
            async with http.post("/api/v1/reports", json=REPORT) as resp:
                if resp.status == 201:
                    break
            await asyncio.sleep(0.5)
        assert resp.status == 201  # healed, with no restart
    assert await db.fetchval("SELECT count(*) FROM threads") == 1


async def test_a_locked_database_times_out_into_a_clear_503(
    stack: Stack, db: asyncpg.Connection
) -> None:
    _, base = stack.start_web("web-pg-locked", CONFIDE_DB_TIMEOUT_S="2")
    async with aiohttp.ClientSession(base_url=base) as http:
        locker = await asyncpg.connect(stack.env["DATABASE_URL"])
        try:
            tx = locker.transaction()
            await tx.start()
            await locker.execute("LOCK TABLE threads IN ACCESS EXCLUSIVE MODE")
            async with http.post("/api/v1/reports", json=REPORT) as resp:
                assert resp.status == 503
            await tx.rollback()
        finally:
            await locker.close()
        async with http.post("/api/v1/reports", json=REPORT) as resp:
            assert resp.status == 201
    assert await db.fetchval("SELECT count(*) FROM threads") == 1


async def test_redis_down_still_accepts_reports_and_the_work_runs_later(
    stack: Stack, db: asyncpg.Connection, redis_proxy: Proxy, smtp: SmtpSink
) -> None:
    _, base = stack.start_web(
        "web-redis-outage", REDIS_URL=through(stack.env["REDIS_URL"], redis_proxy)
    )
    redis_proxy.down()
    async with aiohttp.ClientSession(base_url=base) as http:
        async with http.post("/api/v1/reports", json=REPORT) as resp:
            assert resp.status == 201  # committed in PostgreSQL; the code hashed locally
            body = await resp.json()
        assert await code_works(db, stack, body["code"])
        async with http.post("/api/v1/reporter/session", json={"code": body["code"]}) as resp:
            assert resp.status == 200
            token = (await resp.json())["token"]
        async with http.post(
            "/api/v1/reporter/messages",
            json={"body": "still here"},
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            assert resp.status == 201
        async with http.get("/readyz") as resp:
            ready = await resp.json()
        assert resp.status == 200 and ready["status"] == "degraded"
        assert ready["checks"]["redis"] == "down"
        redis_proxy.up()
    # The alerts were waiting in the outbox: relayed once Redis is reachable again.
    kick_relay(stack)
    smtp.wait_for(
        lambda m: body["reference"] in str(m["Subject"]) and "New report" in str(m["Subject"])
    )
    smtp.wait_for(
        lambda m: body["reference"] in str(m["Subject"]) and "message" in str(m["Subject"])
    )
