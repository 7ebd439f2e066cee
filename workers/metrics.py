"""Task outcome metrics, exported by each worker host on its own port (prometheus multiprocess).

Pool children count into files under ``PROMETHEUS_MULTIPROC_DIR``; the worker's main process
serves them on ``CONFIDE_WORKER_METRICS_PORT`` so workers on other hosts are scraped where they
run. Labels are task names only.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from celery.signals import task_failure, task_postrun, task_prerun, task_retry, task_success

_started: dict[str, float] = {}


def prepare(data_dir: Path) -> bool:
    """Call before prometheus_client is imported in this process tree."""
    port = os.environ.get("CONFIDE_WORKER_METRICS_PORT")
    if not port:
        return False
    folder = data_dir / f"prometheus-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(folder))
    return True


def install() -> None:
    from prometheus_client import Counter, Histogram

    succeeded = Counter("celery_task_succeeded", "Tasks that succeeded", ["name"])
    failed = Counter("celery_task_failed", "Tasks that raised", ["name"])
    retried = Counter("celery_task_retried", "Tasks retried", ["name"])
    runtime = Histogram(
        "celery_task_runtime_seconds",
        "Task run time",
        ["name"],
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    )

    @task_prerun.connect(weak=False)
    def _pre(task_id: str | None = None, **_: Any) -> None:
        if task_id:
            _started[task_id] = time.perf_counter()

    @task_postrun.connect(weak=False)
    def _post(task_id: str | None = None, task: Any = None, **_: Any) -> None:
        begun = _started.pop(task_id or "", None)
        if begun is not None and task is not None:
            runtime.labels(task.name).observe(time.perf_counter() - begun)

    @task_success.connect(weak=False)
    def _ok(sender: Any = None, **_: Any) -> None:
        succeeded.labels(getattr(sender, "name", "unknown")).inc()

    @task_failure.connect(weak=False)
    def _failed(sender: Any = None, **_: Any) -> None:
        failed.labels(getattr(sender, "name", "unknown")).inc()

    @task_retry.connect(weak=False)
    def _retried(sender: Any = None, **_: Any) -> None:
        retried.labels(getattr(sender, "name", "unknown")).inc()


def serve() -> None:
    """In the worker's main process: serve every child's figures."""
    port = os.environ.get("CONFIDE_WORKER_METRICS_PORT")
    if not port:
        return
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(
        int(port),
        addr=os.environ.get("CONFIDE_WORKER_METRICS_ADDR", "127.0.0.1"),
        registry=registry,
    )
