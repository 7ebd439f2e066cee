"""Task outcome metrics, exported by each worker host on its own port (prometheus multiprocess).

Pool children count into files under ``PROMETHEUS_MULTIPROC_DIR``; the worker's main process
serves them on ``CONFIDE_WORKER_METRICS_PORT`` so workers on other hosts are scraped where they
run. Labels are task names only. Counting happens in :class:`MeasuredTask`, the base class of
every Confide task, which also binds the task name and id to its log lines.
"""

from __future__ import annotations

import os
import shutil
import time
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from celery import Task
from celery.exceptions import Retry

if TYPE_CHECKING:  # imported where counted, once PROMETHEUS_MULTIPROC_DIR is set
    from prometheus_client import Counter, Histogram


def prepared() -> bool:
    """Whether :func:`prepare` set up the multiprocess folder for this worker."""
    return bool(os.environ.get("CONFIDE_WORKER_METRICS_PORT")) and bool(
        os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    )


def prepare(data_dir: Path) -> bool:
    """Call in the worker's main process before its pool starts (``worker_init``)."""
    port = os.environ.get("CONFIDE_WORKER_METRICS_PORT")
    if not port:
        return False
    for stale in data_dir.glob("prometheus-*"):  # folders of worker processes long gone
        pid = stale.name.removeprefix("prometheus-")
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    folder = data_dir / f"prometheus-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(folder))
    return True


@cache
def _metrics() -> tuple[Counter, Counter, Counter, Histogram] | None:
    """Created once per process tree: in the main process by :func:`start_at_zero`, or in a
    pool child forked before that. A child forked after it (one that replaces a child that died,
    e.g. SIGKILLed or killed for memory) inherits these objects with the default registry they
    are in; creating them again there would raise DuplicateTimeseries on every task that child
    runs. prometheus_client's multiprocess values notice the fork and write to the child's own
    file."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    from prometheus_client import Counter, Histogram, values

    if not values.ValueClass.__name__.startswith("Mmaped"):
        # prometheus_client chose its value class when first imported, which can happen before
        # our module sets PROMETHEUS_MULTIPROC_DIR (celery's CLI loads plugins such as Flower).
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]

    return (
        Counter("celery_task_succeeded", "Tasks that succeeded", ["name"]),
        Counter("celery_task_failed", "Tasks that raised", ["name"]),
        Counter("celery_task_retried", "Tasks retried", ["name"]),
        Histogram(
            "celery_task_runtime_seconds",
            "Task run time",
            ["name"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        ),
    )


def start_at_zero(task_names: list[str]) -> None:
    """Expose every task's counters at 0 from the worker's start.

    A counter that first appears at 1 has no earlier sample, so ``increase()`` over it is 0 and
    ``ConfideTaskFailing`` would miss a task's first failure (issue 12, finding 15).
    """
    metrics = _metrics()
    if metrics is None:
        return
    succeeded, failed, retried, _ = metrics
    for name in task_names:
        for counter in (succeeded, failed, retried):
            counter.labels(name)  # creating the child writes its 0 to this process's file


class MeasuredTask(Task):  # type: ignore[misc]
    # Any: Celery passes a task's own arguments and result through.
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Every log line of this run carries the task name and id (docs/logging.md).
        structlog.contextvars.bind_contextvars(task=self.name, task_id=self.request.id)
        metrics = _metrics()
        if metrics is None:
            return super().__call__(*args, **kwargs)
        succeeded, failed, retried, runtime = metrics
        started = time.perf_counter()
        try:
            result = super().__call__(*args, **kwargs)
        except Retry:
            retried.labels(self.name).inc()
            raise
        except Exception:
            failed.labels(self.name).inc()
            raise
        finally:
            runtime.labels(self.name).observe(time.perf_counter() - started)
        succeeded.labels(self.name).inc()
        return result


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
