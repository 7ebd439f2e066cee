"""A forger on the ``hashing`` queue: what anyone who can write to Redis can do.

Started by ``tests/test_hashing_results.py`` as a real Celery worker in place of Confide's
workers. It answers every hashing task with whatever JSON the test left under ``forger:answer``
(a plain ``true`` when none), stored and published where a genuine answer goes (the result key
and channel of ``workers.hash_results``), and counts its answers.
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

app = Celery("forger", broker=REDIS_URL)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
)


def _forge(task_id: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        stored = client.get(ANSWER_KEY)
        forged: Any = True if stored is None else json.loads(stored)
        key = jobs.HASH_RESULT_PREFIX + task_id
        value = json.dumps({"status": "SUCCESS", "result": forged, "task_id": task_id})
        client.setex(key, jobs.HASH_RESULT_TTL_S, value)
        client.publish(key, value)
        client.incr(COUNT_KEY)
    finally:
        client.close()


@app.task(name=jobs.CHECK_CODE, bind=True)  # type: ignore[untyped-decorator]  # Celery
def check_code(self: Any, *_: object) -> None:
    _forge(self.request.id)


@app.task(name=jobs.STORE_CODE_VERIFIER, bind=True)  # type: ignore[untyped-decorator]  # Celery
def store_code_verifier(self: Any, *_: object) -> None:
    _forge(self.request.id)
