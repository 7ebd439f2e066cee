"""How a hashing task hands its sealed boolean to the web: ``SETEX`` and ``PUBLISH`` in one pipe.

The web's :class:`webapp.jobs.HashResults` hears the publish on one pattern subscription and reads
the key only if it missed it. This writes exactly what Celery's Redis result backend would, for
these two tasks only, without the backend's extra ``GET`` of the task's earlier state before each
store and its result-meta building: one round trip a login instead of two. Serves ``make bench``
``logins`` (logins/s ÷ raw argon2 verifies/s ≥ 0.70). The tasks set ``ignore_result`` so Celery
stores nothing itself, and a task that fails still publishes ``FAILURE`` at once, so the web hashes
locally without waiting out its timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from celery import states

from confide import jobs
from workers import context

_client: tuple[int, redis.Redis] | None = None


def _redis() -> redis.Redis:
    """This process's client (a forked child makes its own)."""
    global _client
    if _client is None or _client[0] != os.getpid():
        url = context.settings().require_redis()
        _client = (os.getpid(), redis.Redis.from_url(url, socket_timeout=2.0))
    return _client[1]


def publish(task_id: str, status: str, result: object = None) -> None:
    """Store (60 s) and publish one task's outcome, as Celery's backend does."""
    key = jobs.HASH_RESULT_PREFIX + task_id
    value = json.dumps({"status": status, "result": result, "task_id": task_id})
    pipe = _redis().pipeline(transaction=False)
    pipe.setex(key, jobs.HASH_RESULT_TTL_S, value)
    pipe.publish(key, value)
    pipe.execute()


@contextmanager
def failure_published(task_id: str) -> Iterator[None]:
    """Publish ``FAILURE`` (no details: they stay in the worker's log) if the body raises."""
    try:
        yield
    except Exception:
        with contextlib.suppress(redis.RedisError):  # else the web times out, hashes locally
            publish(task_id, states.FAILURE)
        raise
