"""Health endpoints (CONTRACTS §3). They name no hosts or versions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiohttp import web

from confide import jobs
from confide.services import ops
from webapp.keys import CTX, REDIS


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks = {"postgres": "down", "redis": "down", "workers": "down", "beat": "down"}
    beat_at = None
    worker_at = None
    try:
        async with asyncio.timeout(2.0):
            ticks = await ops.last_ticks(request.app[CTX])
            beat_at, worker_at = ticks.beat, ticks.worker
        checks["postgres"] = "ok"
    except Exception:  # noqa: S110 - any failure means "down"; details would name hosts
        pass
    try:
        async with asyncio.timeout(1.0):
            await request.app[REDIS].ping()
        checks["redis"] = "ok"
    except Exception:  # noqa: S110
        pass
    now = datetime.now(UTC)
    for name, at in (("beat", beat_at), ("workers", worker_at)):
        if at is not None:
            age = (now - at).total_seconds()
            checks[name] = "ok" if age <= jobs.BEAT_STALE_AFTER_S else "stale"
    ok = all(v == "ok" for v in checks.values())
    status = 200 if checks["postgres"] == "ok" else 503
    return web.json_response(
        {"status": "ok" if ok else "degraded", "checks": checks}, status=status
    )
