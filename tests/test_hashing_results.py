"""A writer to Redis cannot forge a login (issue 12, finding 14; CONTRACTS §2).

The hashing workers' answers travel through Redis. A forger who replaces the workers (or writes
results itself) can answer "true" for any code; the web accepts only an answer sealed with an
HMAC bound to its own task id under a key Redis never sees, and otherwise hashes locally.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import time

import aiohttp
import asyncpg
import redis

from confide import codes, jobs
from tests.conftest import Proc, Stack, wait_worker
from tests.forger import ANSWER_KEY, COUNT_KEY

REPORT = {"category": "safety", "description": "Wet floor", "anonymous": True, "follow_up": True}


async def submit(http: aiohttp.ClientSession) -> str:
    async with http.post("/api/v1/reports", json=REPORT) as resp:
        assert resp.status == 201, await resp.text()
        code: str = (await resp.json())["code"]
        return code


async def log_in(http: aiohttp.ClientSession, code: str) -> int:
    async with http.post("/api/v1/reporter/session", json={"code": code}) as resp:
        return resp.status


def wrong_secret(code: str) -> str:
    """The same lookup id (so the web asks for an argon2 check) with another secret."""
    plain = code.replace("-", "")
    last = "0" if plain[-1] != "0" else "1"
    return plain[:-1] + last


async def answers_reach(client: redis.Redis, count: int) -> int:
    for _ in range(100):
        seen = int(client.get(COUNT_KEY) or 0)
        if seen >= count:
            return seen
        await asyncio.sleep(0.1)
    return int(client.get(COUNT_KEY) or 0)


async def test_a_writer_to_redis_cannot_forge_a_login_and_genuine_codes_still_work(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection, worker: Proc
) -> None:
    code = await submit(http)  # hashed by the genuine worker
    assert await log_in(http, code) == 200
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    client.delete(ANSWER_KEY, COUNT_KEY)
    worker.stop()
    forger = Proc(
        "forger",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.forger",
            "worker",
            "-Q",
            jobs.HASHING_QUEUE,
            "-P",
            "solo",
            "-n",
            "forger@%h",
            "--without-mingle",
            "--without-gossip",
        ],
        stack.env,
        stack.artifacts / "forger.log",
    )
    forger.start()
    try:
        wait_worker(stack.env["REDIS_URL"], forger)
        key = codes.result_key(stack.settings)
        forgeries = [
            None,  # a plain `true`, as results were before they were sealed
            {"answer": True, "mac": "A" * 44},  # a seal made up
            # A genuine seal, replayed from another task (e.g. read from an earlier login).
            codes.seal_result(key, jobs.CHECK_CODE, "another-task-id", True),
            codes.seal_result(key, jobs.STORE_CODE_VERIFIER, "another-task-id", True),
        ]
        answered = 0
        for forged in forgeries:
            if forged is None:
                client.delete(ANSWER_KEY)
            else:
                client.set(ANSWER_KEY, json.dumps(forged))
            assert await log_in(http, wrong_secret(code)) == 401, forged
            answered = await answers_reach(client, answered + 1)
            assert answered >= len(forgeries[: forgeries.index(forged) + 1])  # it did answer
        # The genuine reporter is never locked out: the forged answers count as none, and the
        # web hashes locally, for a login and for a new report's verifier alike.
        client.delete(ANSWER_KEY)
        assert await log_in(http, code) == 200
        fresh = await submit(http)
        assert await log_in(http, fresh) == 200
        assert await log_in(http, wrong_secret(fresh)) == 401
        assert await answers_reach(client, answered + 3) >= answered + 3
        assert "hashing_result_unverified" in stack.web.log_text()
    finally:
        forger.stop()
        client.delete(ANSWER_KEY, COUNT_KEY)
        client.close()


class RedisMonitor:
    """The commands one Redis database receives meanwhile (Redis's own MONITOR, in a thread)."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.db = int(self.client.connection_pool.connection_kwargs.get("db", 0))
        self.commands: list[str] = []
        self._monitor = self.client.monitor()  # type: ignore[no-untyped-call]  # redis-py
        self._monitor.__enter__()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._monitor.listen():
                if str(event.get("db")) == str(self.db):
                    self.commands.append(str(event.get("command", "")))
        except (redis.ConnectionError, ValueError, OSError):
            pass  # closed

    def wait_for(self, prefix: str, count: int, within_s: float = 10.0) -> list[str]:
        """The commands starting with ``prefix``, once ``count`` of them arrived (MONITOR's
        stream lags the commands a little) or ``within_s`` passed."""
        deadline = time.monotonic() + within_s
        while True:
            seen = [c for c in self.commands if c.startswith(prefix)]
            if len(seen) >= count or time.monotonic() > deadline:
                return seen
            time.sleep(0.05)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._monitor.connection.disconnect()
        self._thread.join(timeout=2)
        self.client.close()


async def test_a_hashing_only_worker_answers_logins_and_keeps_no_unacked_bookkeeping(
    stack: Stack, http: aiohttp.ClientSession, worker: Proc
) -> None:
    """The ``worker-hashing`` process of compose.yaml and the Procfile (``-Q hashing`` alone)
    runs without kombu's ack emulation (docs/reliability.md "Hashing tasks"): its tasks write
    nothing to Redis's unacked hash, and each answer still reaches the web, sealed."""
    worker.stop()
    hashing = Proc(
        "worker-hashing",
        [
            *(sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker"),
            *("-Q", jobs.HASHING_QUEUE, "-c", "2", "-n", "hashing-only@%h"),
            *("--without-mingle", "--without-gossip"),
        ],
        stack.env,
        stack.artifacts / "worker-hashing.log",
    )
    hashing.start()
    try:
        wait_worker(stack.env["REDIS_URL"], hashing)
        fallbacks = stack.web.log_text().count("hashing_fallback")
        monitor = RedisMonitor(stack.env["REDIS_URL"])
        try:
            code = await submit(http)  # the verifier is hashed and committed by the worker
            for attempt in (code, wrong_secret(code), code):
                assert await log_in(http, attempt) == (200 if attempt == code else 401)
            # The verifier and three checks, each answered once.
            published = monitor.wait_for("PUBLISH celery-task-meta-", 4)
        finally:
            monitor.close()
        assert stack.web.log_text().count("hashing_fallback") == fallbacks  # all answered
        assert len(published) == 4
        assert not [c for c in monitor.commands if "unacked" in c], monitor.commands
    finally:
        hashing.stop()
