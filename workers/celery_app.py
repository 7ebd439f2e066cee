"""The Celery application: three queues, JSON only, late acks, no results but hashing booleans.

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
    celeryd_init,
    worker_init,
    worker_process_init,
    worker_ready,
)

from confide import jobs, logs
from confide.sql import heartbeats
from schedules.beat import beat_schedule
from workers import context, db
from workers import metrics as worker_metrics

VISIBILITY_TIMEOUT_S = jobs.VISIBILITY_TIMEOUT_S  # longer than task_time_limit below
# The task modules: Celery imports them when the app is finalised. They use ``shared_task`` and
# never import this module, so importing any worker module first works, without an import loop.
TASK_MODULES = [
    "workers.tasks.delivery",
    "workers.tasks.files",
    "workers.tasks.hashing",
    "workers.tasks.statistics",
]

app = Celery(
    "confide",
    include=TASK_MODULES,
    task_cls="workers.metrics:MeasuredTask",  # counts outcomes for the worker metrics port
)
app.conf.update(
    # Serializers, routing and the visibility timeout, as the web's client has them.
    jobs.celery_config(
        unacked_restore_interval=5,  # a killed worker's tasks come back within seconds
        unacked_restore_throttle=1,
    ),
    result_serializer="json",
    # Ack after the task ran, and re-queue if the worker process dies, so a crash never loses work;
    # the outbox keeps a delivery cap in PostgreSQL against poison loops.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    # One message per process: a stuck worker holds no queue of others' work hostage.
    worker_prefetch_multiplier=1,
    # Every run ends well before the visibility timeout, which is set the same everywhere.
    task_time_limit=300,
    task_soft_time_limit=240,
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
    worker_hijack_root_logger=False,
    beat_scheduler="workers.scheduler:HeartbeatScheduler",
    beat_max_loop_interval=10,
    timezone="UTC",
    enable_utc=True,
)


# The signal handlers take Celery's keyword arguments as ``**_: Any``: each signal sends its own.
@app.on_configure.connect
def _configure(sender: Celery, **_: Any) -> None:
    """What comes from the settings, read when Celery first needs its configuration (not at
    import, so importing a worker module needs no environment)."""
    settings = context.settings()
    sender.conf.update(
        broker_url=settings.require_redis(),
        result_backend=settings.require_redis(),
        beat_schedule=beat_schedule(settings),
        beat_schedule_filename=str(settings.data_dir / "celerybeat-schedule"),
    )


@celeryd_init.connect
def _hashing_only_worker(conf: Any = None, options: dict[str, Any] | None = None, **_: Any) -> None:
    """A worker that consumes only the ``hashing`` queue turns off kombu's ack emulation.

    Ack emulation keeps each delivered message in an "unacked" hash and index in Redis until its
    late ack, so that a crashed worker's message comes back after the visibility timeout. A
    hashing task gains nothing from that: the web gives up on it after ``hash_timeout_s`` (3 s)
    and hashes locally, and the task ``expires`` then, long before any restore. What it costs is
    four Redis writes and a new Redis client object per login on the worker's single consuming
    thread. Serves ``make bench`` ``logins`` (logins/s ÷ raw argon2 verifies/s ≥ 0.70). Workers
    that also consume ``default`` keep ack emulation: their tasks must never be lost.
    """
    queues = (options or {}).get("queues") or []
    names = {q.strip() for q in (queues.split(",") if isinstance(queues, str) else queues)}
    if conf is not None and names == {jobs.HASHING_QUEUE}:
        conf.broker_transport_options = {**conf.broker_transport_options, "ack_emulation": False}


@after_setup_logger.connect
def _setup_logging(**_: Any) -> None:
    logs.configure("worker", context.settings().log_level)


@worker_init.connect
def _worker_starting(**_: Any) -> None:
    """In the worker's main process, before any pool child forks: the metrics folder (before
    prometheus_client is used in this process tree), and the context for the solo and threads
    pools, which run tasks in this process."""
    worker_metrics.prepare(context.settings().data_dir)
    context.init()
    _sweep_strip_folder()


@worker_process_init.connect
def _fresh_process(**_: Any) -> None:
    """Each prefork child: its own loop and pool, and its own context."""
    db.reset_after_fork()
    context.reset_after_fork()
    context.init()
    _sweep_strip_folder()


def _sweep_strip_folder() -> None:
    """Decrypted originals left by a stripping run that was killed (a child that replaces a
    killed one starts here): deleted before any new work (workers.tasks.files)."""
    from workers.tasks.files import sweep_at_start

    sweep_at_start(context.settings().strip_folder)


@beat_init.connect
def _beat_starting(**_: Any) -> None:
    context.init()


@worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    """The worker's main process marks itself alive in PostgreSQL every 30 s (for /readyz)."""
    settings = context.settings()
    name = f"worker:{getattr(sender, 'hostname', 'worker')}"
    if worker_metrics.prepared():
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
