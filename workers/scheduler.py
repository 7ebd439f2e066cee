"""Celery beat's scheduler, plus the beat heartbeat (CONTRACTS §6).

The heartbeat is written by the beat process itself, not by a task, so a stale heartbeat means
that beat (and not a worker) has stopped.
"""

from __future__ import annotations

import time
from typing import Any

from celery.beat import PersistentScheduler

from confide import jobs, logs
from confide.sql import heartbeats
from workers import context, db

log = logs.get("confide.beat")


class HeartbeatScheduler(PersistentScheduler):  # type: ignore[misc]
    _last_beat = 0.0

    def tick(self, *args: Any, **kwargs: Any) -> float:  # Any: Celery's own signature
        interval: float = super().tick(*args, **kwargs)
        now = time.monotonic()
        if now - self._last_beat >= jobs.BEAT_INTERVAL_S:
            try:
                db.run(self._write())
                self._last_beat = now
            except Exception:  # PostgreSQL away: try again on the next tick
                log.warning("beat_heartbeat_failed", exc_info=True)
                return min(interval, 5.0)
        return min(interval, float(jobs.BEAT_INTERVAL_S))

    @staticmethod
    async def _write() -> None:
        pool = await db.pool(context.settings())
        async with pool.acquire() as conn:
            await heartbeats.beat(conn, jobs.BEAT_HEARTBEAT_NAME)
