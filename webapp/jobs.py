"""The web process's side of Celery: send by name, wait briefly, fall back locally.

``webapp`` never imports ``workers``; tasks are sent by the names in :mod:`confide.jobs`.
"""

from __future__ import annotations

import asyncio
import base64
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

from celery import Celery

from confide import codes, jobs, logs
from confide.db import Pool
from confide.services import codes as code_service
from confide.settings import Settings

log = logs.get("confide.web.jobs")
KICK_EVERY_S = 1.0


def make_client(settings: Settings) -> Celery:
    redis_url = settings.require_redis()
    client = Celery("confide-web", broker=redis_url, backend=redis_url)
    client.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=60,
        broker_connection_timeout=1.0,
        broker_connection_retry=False,
        # Publishing must fail fast: the web falls back locally, and the outbox (issue 5) keeps
        # every other kind of work safe in PostgreSQL.
        task_publish_retry_policy={"max_retries": 1, "interval_start": 0.1, "interval_step": 0.2},
        broker_transport_options={"visibility_timeout": 600, "socket_timeout": 2.0},
        result_backend_transport_options={"visibility_timeout": 600},
        redis_socket_timeout=2.0,
        redis_socket_connect_timeout=1.0,
        task_routes={
            jobs.STORE_CODE_VERIFIER: {"queue": jobs.HASHING_QUEUE},
            jobs.CHECK_CODE: {"queue": jobs.HASHING_QUEUE},
        },
    )
    return client


class CodeHasher:
    """argon2id on the ``hashing`` workers, or in a bounded local executor if none answers."""

    def __init__(self, settings: Settings, pool: Pool, client: Celery) -> None:
        self.settings = settings
        self.pool = pool
        self.client = client
        self.hasher = codes.hasher(settings)
        self.local = ThreadPoolExecutor(settings.local_hash_threads, thread_name_prefix="argon2")
        # Celery's client is blocking; its calls run here, never on the event loop.
        self.io = ThreadPoolExecutor(8, thread_name_prefix="celery-io")
        self.local_runs = 0
        self.remote_runs = 0
        self._kick_pending = False
        self._last_kick = 0.0

    def close(self) -> None:
        self.local.shutdown(wait=False, cancel_futures=True)
        self.io.shutdown(wait=False, cancel_futures=True)

    async def store_verifier(self, thread_id: UUID, issue_id: UUID, prehash: bytes) -> bool:
        loop = asyncio.get_running_loop()
        timeout = self.settings.hash_timeout_s
        args = [str(thread_id), str(issue_id), base64.b64encode(prehash).decode("ascii")]
        try:
            result = await asyncio.wait_for(
                loop.run_in_executor(
                    self.io, self._send_and_wait, jobs.STORE_CODE_VERIFIER, args, timeout
                ),
                timeout,
            )
            self.remote_runs += 1
            return bool(result)
        except Exception as exc:  # no worker answered, or Redis is away: hash here instead
            log.warning("hashing_fallback", fallback="local", exc_type=type(exc).__name__)
        self.local_runs += 1
        verifier = await loop.run_in_executor(self.local, codes.make_verifier, self.hasher, prehash)
        return await code_service.commit_verifier(self.pool, thread_id, issue_id, verifier)

    async def check_code(self, thread_id: UUID, verifier: str, prehash: bytes) -> bool:
        """One argon2id verification, on a ``hashing`` worker or locally after the timeout."""
        loop = asyncio.get_running_loop()
        timeout = self.settings.hash_timeout_s
        args = [str(thread_id), base64.b64encode(prehash).decode("ascii")]
        try:
            result = await asyncio.wait_for(
                loop.run_in_executor(self.io, self._send_and_wait, jobs.CHECK_CODE, args, timeout),
                timeout,
            )
            self.remote_runs += 1
            return result is True
        except Exception as exc:
            log.warning("hashing_fallback", fallback="local", exc_type=type(exc).__name__)
        self.local_runs += 1
        return await loop.run_in_executor(
            self.local, codes.check_verifier, self.hasher, verifier, prehash
        )

    def kick_outbox(self) -> None:
        """After a commit: ask for the outbox to be relayed soon. Best effort (beat relays every
        15 s anyway); coalesced to at most one publish per second per process, since one relay
        run picks up every due row."""
        if self._kick_pending:
            return
        self._kick_pending = True
        loop = asyncio.get_running_loop()
        wait = max(0.0, self._last_kick + KICK_EVERY_S - loop.time())

        def publish() -> None:
            self._last_kick = loop.time()
            future = loop.run_in_executor(self.io, self._kick)
            future.add_done_callback(lambda _: setattr(self, "_kick_pending", False))

        loop.call_later(wait, publish)

    def _kick(self) -> None:
        try:
            self.client.send_task(
                jobs.RELAY_OUTBOX,
                argsrepr="()",
                kwargsrepr="{}",
                queue=jobs.DEFAULT_QUEUE,
                ignore_result=True,
                expires=60,
            )
        except Exception as exc:  # Redis away: the outbox row waits in PostgreSQL
            log.warning("outbox_kick_failed", exc_type=type(exc).__name__)

    def _send_and_wait(self, name: str, args: list[str], timeout: float) -> Any:
        result = self.client.send_task(
            name,
            args=args,
            argsrepr=jobs.REDACTED_ARGS,
            kwargsrepr="{}",
            queue=jobs.HASHING_QUEUE,
            expires=timeout,  # a worker that reaches it late drops it: the web has moved on
            ignore_result=False,
        )
        # The boolean expires from Redis after 60 s (result_expires); no forget() round trip.
        return result.get(timeout=timeout, propagate=True, disable_sync_subtasks=False)
