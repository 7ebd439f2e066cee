"""The statistics refresh (beat): facts rows and monthly summaries, never at request time."""

from __future__ import annotations

from celery import shared_task

from confide import jobs, logs
from confide.services import statistics
from workers import context, db

log = logs.get("confide.worker.statistics")


@shared_task(name=jobs.REFRESH_STATISTICS, acks_late=True, expires=300)
def refresh_statistics() -> None:
    """One refresh pass; idempotent, and a second pass at the same time does nothing."""

    async def run() -> None:
        read = await statistics.refresh(await context.current())
        log.info("statistics_refreshed", count=read)

    db.run(run())
