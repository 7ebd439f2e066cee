"""A forger on the ``hashing`` queue: what anyone who can write to Redis can do.

Started by ``tests/test_hashing_results.py`` as a real Celery worker with Celery's own Redis
result backend, in place of Confide's workers. It answers every hashing task with whatever JSON
the test left under ``forger:answer`` (a plain ``true`` when none), and counts its answers.
"""

from __future__ import annotations

import json
import os
from typing import Any

import redis
from celery import Celery

from confide import jobs

REDIS_URL = os.environ.get("REDIS_URL", "redis://")  # the stack's, when run as a worker
ANSWER_KEY = "forger:answer"
COUNT_KEY = "forger:answers"

app = Celery("forger", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=60,
    worker_hijack_root_logger=False,
)


def _forged() -> Any:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        stored = client.get(ANSWER_KEY)
        client.incr(COUNT_KEY)
    finally:
        client.close()
    return True if stored is None else json.loads(stored)


@app.task(name=jobs.CHECK_CODE, ignore_result=False)  # type: ignore[untyped-decorator]  # Celery
def check_code(*_: object) -> Any:
    return _forged()


@app.task(name=jobs.STORE_CODE_VERIFIER, ignore_result=False)  # type: ignore[untyped-decorator]  # Celery
def store_code_verifier(*_: object) -> Any:
    return _forged()
