"""The Celery application: two queues, JSON only, late acks, no results but hashing booleans.

Every setting here carries its reason; see docs/reliability.md for the background.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from celery import Celery
from celery.signals import (
    after_setup_logger,
    beat_init,
    worker_init,
    worker_process_init,
    worker_ready,
)

from confide import jobs, logs
from confide.settings import Settings
from confide.sql import heartbeats
from schedules.beat import beat_schedule
from workers import context, db
from workers import metrics as worker_metrics

settings = Settings.from_env()
METRICS = worker_metrics.prepare(settings.data_dir)

VISIBILITY_TIMEOUT_S = 600  # longer than any task may run (task_time_limit), so none runs twice

app = Celery(
    "confide",
    broker=settings.require_redis(),
    backend=settings.require_redis(),
    task_cls="workers.metrics:MeasuredTask",  # counts outcomes for the worker metrics port
)
app.conf.update(
    # JSON only: pickle would let anyone who can write to Redis run code in the workers.
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # Ack after the task ran, and re-queue if the worker process dies, so a crash never loses work;
    # the outbox keeps a delivery cap in PostgreSQL against poison loops.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    # One message per process: a stuck worker holds no queue of others' work hostage.
    worker_prefetch_multiplier=1,
    # Every run ends well before the visibility timeout, which is set the same everywhere.
    task_time_limit=300,
    task_soft_time_limit=240,
    broker_transport_options={
        "visibility_timeout": VISIBILITY_TIMEOUT_S,
        "unacked_restore_interval": 5,  # a killed worker's tasks come back within seconds
        "unacked_restore_throttle": 1,
    },
    result_backend_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
    visibility_timeout=VISIBILITY_TIMEOUT_S,
    # A warm phase on shutdown so late-ack tasks are re-queued, and no task keeps running after
    # its channel died (it would be redelivered and run twice).
    worker_soft_shutdown_timeout=10.0,
    worker_cancel_long_running_tasks_on_connection_loss=True,
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,
    # No results except the hashing booleans, which live 60 s; never args or tracebacks.
    task_ignore_result=True,
    result_extended=False,
    task_store_errors_even_if_ignored=False,
    result_expires=60,
    # Routing: argon2 work alone on "hashing", so logins never wait behind other work.
    task_default_queue=jobs.DEFAULT_QUEUE,
    task_routes={
        jobs.STORE_CODE_VERIFIER: {"queue": jobs.HASHING_QUEUE},
        jobs.CHECK_CODE: {"queue": jobs.HASHING_QUEUE},
    },
    worker_hijack_root_logger=False,
    beat_schedule=beat_schedule(settings),
    beat_scheduler="workers.scheduler:HeartbeatScheduler",
    beat_max_loop_interval=10,
    beat_schedule_filename=str(settings.data_dir / "celerybeat-schedule"),
    timezone="UTC",
    enable_utc=True,
)
import workers.tasks.delivery  # noqa: E402  (register the tasks)
import workers.tasks.hashing  # noqa: E402,F401


@after_setup_logger.connect
def _setup_logging(**_: Any) -> None:
    logs.configure("worker", settings.log_level)


@worker_process_init.connect
def _fresh_process(**_: Any) -> None:
    db.reset_after_fork()
    context.reset_after_fork()
    context.init(settings)


@worker_init.connect
@beat_init.connect
def _context(**_: Any) -> None:
    """The solo and threads pools run tasks in the worker's own process, and beat runs none but
    shares the code: each gets its context here (prefork children in ``_fresh_process``)."""
    context.init(settings)


@worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    """The worker's main process marks itself alive in PostgreSQL every 30 s (for /readyz)."""
    name = f"worker:{getattr(sender, 'hostname', 'worker')}"
    if METRICS:
        worker_metrics.start_at_zero(sorted(n for n in app.tasks if n.startswith("confide.")))
        worker_metrics.serve()

    consumer = getattr(sender, "consumer", None)

    async def tick() -> None:
        from celery.worker import state

        queues = sorted(
            q.name for q in getattr(getattr(consumer, "task_consumer", None), "queues", []) or []
        )
        detail = json.dumps({"queues": queues, "active": len(state.active_requests)})
        pool = await db.pool(settings)
        async with pool.acquire() as conn:
            await heartbeats.beat_with_detail(conn, name, detail)

    def loop() -> None:
        while True:
            try:
                db.run(tick())
            except Exception:
                logs.get("confide.worker").warning("worker_heartbeat_failed", exc_info=True)
            time.sleep(settings.worker_heartbeat_s)

    threading.Thread(target=loop, name="confide-heartbeat", daemon=True).start()
