"""The web process's side of Celery: send by name, wait briefly, fall back locally.

``webapp`` never imports ``workers``; tasks are sent by the names in :mod:`confide.jobs`.

Sending uses Celery's client (blocking, so in a small thread pool). The hashing booleans are
awaited on the event loop instead (:class:`HashResults`): Celery's own ``AsyncResult.get`` parks
a thread per login on a shared pub/sub socket and subscribes and unsubscribes each time, which
cost more web CPU than the rest of a login put together.
"""

from __future__ import annotations

import asyncio
import base64
import json
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID, uuid4

import redis.asyncio as aioredis
from celery import Celery, states

from confide import codes, jobs, logs
from confide.context import Context
from confide.services import codes as code_service
from confide.settings import Settings

log = logs.get("confide.web.jobs")
KICK_EVERY_S = 1.0


def make_client(settings: Settings) -> Celery:
    redis_url = settings.require_redis()
    # No result backend here: the workers store the hashing booleans with theirs, and
    # HashResults reads them on the event loop.
    client = Celery("confide-web", broker=redis_url)
    client.conf.update(
        jobs.celery_config(socket_timeout=2.0),
        broker_connection_timeout=1.0,
        broker_connection_retry=False,
        # Publishing must fail fast: the web falls back locally, and the outbox (issue 5) keeps
        # every other kind of work safe in PostgreSQL.
        task_publish_retry_policy={"max_retries": 1, "interval_start": 0.1, "interval_step": 0.2},
    )
    return client


class HashingFailed(Exception):
    """A hashing task ended in another state than SUCCESS (its details stay on the worker), or
    its result did not verify: no answer either way, so the web hashes locally."""


class HashResults:
    """The hashing tasks' booleans, awaited on the event loop.

    A worker stores a task's result as Celery's Redis result backend does: ``SETEX`` on
    ``celery-task-meta-<task id>`` (60 s, ``result_expires``) and ``PUBLISH`` of the same value on
    the channel of that name. One pattern subscription per web process hears every one of them,
    so a login costs no subscribe round trip and holds no thread. A result published while the
    subscription was down (Redis restarting) is read from its key before the web gives up on
    the worker and hashes locally.

    Serves ``make bench`` ``logins`` (logins/s ÷ raw argon2 verifies/s ≥ 0.70): it replaced
    Celery's ``AsyncResult.get``, a parked thread and a subscribe and unsubscribe per login;
    0.66 → 0.72, web CPU per login 4.3 → 3.5 ms (docs/benchmarks.md, third round).
    """

    PREFIX = jobs.HASH_RESULT_PREFIX

    def __init__(self, redis_url: str, redis: aioredis.Redis) -> None:
        # Its own connection: a subscribed connection can do nothing else, and must not time out
        # while no login is happening.
        self._listener = aioredis.from_url(
            redis_url, socket_connect_timeout=1.0, socket_keepalive=True
        )
        self._redis = redis  # for the GET after a missed publish
        self._pending: dict[str, asyncio.Future[bytes]] = {}
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, wait_s: float = 1.0) -> None:
        """Start listening; wait a moment for the subscription, but never fail start-up."""
        self._task = asyncio.create_task(self._listen(), name="hash-results")
        try:
            await asyncio.wait_for(self._subscribed.wait(), wait_s)
        except TimeoutError:
            log.warning("hash_results_not_subscribed", fallback="key")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._listener.aclose()

    def expect(self, task_id: str) -> asyncio.Future[bytes]:
        """Register interest before the task is sent, so its publish cannot be missed."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[task_id] = future
        return future

    def forget(self, task_id: str) -> None:
        self._pending.pop(task_id, None)

    async def wait(self, task_id: str, future: asyncio.Future[bytes], within_s: float) -> object:
        """The task's return value; TimeoutError if none came, HashingFailed if it failed."""
        payload: bytes | str
        try:
            payload = await asyncio.wait_for(future, within_s)
        except TimeoutError:
            stored = await self._redis.get(self.PREFIX + task_id)  # published while not listening
            if stored is None:
                raise
            payload = stored
        meta = json.loads(payload)
        if meta.get("status") != states.SUCCESS:
            raise HashingFailed(str(meta.get("status")))
        return meta.get("result")

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            try:
                async with self._listener.pubsub() as pubsub:
                    await pubsub.psubscribe(self.PREFIX + "*")
                    async for message in pubsub.listen():
                        if message["type"] == "psubscribe":
                            self._subscribed.set()
                            backoff = 0.1
                        elif message["type"] == "pmessage":
                            self._deliver(message["channel"], message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarting: results are read from their keys meanwhile
                self._subscribed.clear()
                log.warning("hash_results_reconnecting", exc_type=type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _deliver(self, channel: bytes, data: bytes) -> None:
        # Every web process hears every result; only the one that sent the task waits for it.
        future = self._pending.get(channel[len(self.PREFIX) :].decode("ascii", "replace"))
        if future is not None and not future.done():
            future.set_result(data)


class CodeHasher:
    """argon2id on the ``hashing`` workers, or in a bounded local executor if none answers."""

    def __init__(self, ctx: Context, client: Celery, results: HashResults) -> None:
        settings = ctx.settings
        self.ctx = ctx
        self.settings = settings
        self.client = client
        self.results = results
        self.hasher = codes.hasher(settings)
        self.result_key = codes.result_key(settings)  # verifies the workers' answers
        self.local = ThreadPoolExecutor(settings.local_hash_threads, thread_name_prefix="argon2")
        # Celery's client is blocking; its calls run here, never on the event loop.
        self.io = ThreadPoolExecutor(8, thread_name_prefix="celery-io")
        self.local_runs = 0
        self.remote_runs = 0

    def close(self) -> None:
        self.local.shutdown(wait=False, cancel_futures=True)
        self.io.shutdown(wait=False, cancel_futures=True)

    async def store_verifier(self, thread_id: UUID, issue_id: UUID, prehash: bytes) -> bool:
        loop = asyncio.get_running_loop()
        args = [str(thread_id), str(issue_id), base64.b64encode(prehash).decode("ascii")]
        try:
            result = await self._remote(jobs.STORE_CODE_VERIFIER, args)
            self.remote_runs += 1
            return result
        except Exception as exc:  # no worker answered, or Redis is away: hash here instead
            log.warning("hashing_fallback", fallback="local", exc_type=type(exc).__name__)
        self.local_runs += 1
        verifier = await loop.run_in_executor(self.local, codes.make_verifier, self.hasher, prehash)
        return await code_service.commit_verifier(self.ctx, thread_id, issue_id, verifier)

    async def check_code(self, issue_id: UUID, verifier: str, prehash: bytes) -> bool:
        """One argon2id verification, on a ``hashing`` worker or locally after the timeout."""
        loop = asyncio.get_running_loop()
        args = [str(issue_id), base64.b64encode(prehash).decode("ascii")]
        try:
            result = await self._remote(jobs.CHECK_CODE, args)
            self.remote_runs += 1
            return result
        except Exception as exc:
            log.warning("hashing_fallback", fallback="local", exc_type=type(exc).__name__)
        self.local_runs += 1
        return await loop.run_in_executor(
            self.local, codes.check_verifier, self.hasher, verifier, prehash
        )

    async def _remote(self, name: str, args: list[str]) -> bool:
        """Send one hashing task and await its verified answer, all within ``hash_timeout_s``.

        Raises (so the caller hashes locally) when none came, the task failed, or the answer's
        HMAC does not verify: anyone who can write to Redis can publish a result, but not one
        bound to this task id under a key that Redis never sees.
        """
        loop = asyncio.get_running_loop()
        timeout = self.settings.hash_timeout_s
        deadline = loop.time() + timeout
        task_id = str(uuid4())
        future = self.results.expect(task_id)
        try:
            await asyncio.wait_for(
                loop.run_in_executor(self.io, self._send, name, args, task_id, timeout), timeout
            )
            result = await self.results.wait(task_id, future, max(0.0, deadline - loop.time()))
        finally:
            self.results.forget(task_id)
        answer = codes.open_result(self.result_key, name, task_id, result)
        if answer is None:
            log.warning("hashing_result_unverified", task=name)
            raise HashingFailed("unverified")
        return answer

    def _send(self, name: str, args: list[str], task_id: str, timeout: float) -> None:
        self.client.send_task(
            name,
            args=args,
            task_id=task_id,
            argsrepr=jobs.REDACTED_ARGS,
            kwargsrepr="{}",
            queue=jobs.HASHING_QUEUE,
            expires=timeout,  # a worker that reaches it late drops it: the web has moved on
            # The task publishes its boolean for HashResults itself (workers.hash_results); it
            # expires from Redis after 60 s, so no forget() round trip.
            ignore_result=True,
        )


class OutboxKicker:
    """The web's ``Context.wake_outbox``: after a commit, ask for the outbox to be relayed soon.

    Best effort (beat relays every 15 s anyway), and coalesced to at most one publish per second
    per process, since one relay run picks up every due row. Until the Celery client is attached
    at start-up, and after it is detached at shutdown, a wake-up does nothing.
    """

    def __init__(self) -> None:
        self._client: Celery | None = None
        self._io: ThreadPoolExecutor | None = None
        self._pending = False
        self._last = 0.0

    def attach(self, client: Celery) -> None:
        self._client = client
        self._io = ThreadPoolExecutor(1, thread_name_prefix="outbox-kick")

    def detach(self) -> None:
        if self._io is not None:
            self._io.shutdown(wait=False, cancel_futures=True)
        self._client, self._io = None, None

    def __call__(self) -> None:
        if self._pending or self._io is None:
            return
        self._pending = True
        loop = asyncio.get_running_loop()
        wait = max(0.0, self._last + KICK_EVERY_S - loop.time())
        io = self._io

        def publish() -> None:
            self._last = loop.time()
            future = loop.run_in_executor(io, self._send)
            future.add_done_callback(lambda _: setattr(self, "_pending", False))

        loop.call_later(wait, publish)

    def _send(self) -> None:
        client = self._client
        if client is None:
            return
        try:
            client.send_task(
                jobs.RELAY_OUTBOX,
                argsrepr="()",
                kwargsrepr="{}",
                queue=jobs.DEFAULT_QUEUE,
                ignore_result=True,
                expires=60,
            )
        except Exception as exc:  # Redis away: the outbox row waits in PostgreSQL
            log.warning("outbox_kick_failed", exc_type=type(exc).__name__)
