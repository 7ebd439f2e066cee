"""Health endpoints (CONTRACTS §3). They name no hosts or versions."""

from __future__ import annotations

from aiohttp import web

from confide.services import ops
from webapp.keys import CTX, REDIS


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks = await ops.readiness(request.app[CTX], request.app[REDIS].ping)
    ok = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ok" if ok else "degraded", "checks": checks},
        status=200 if checks["postgres"] == "ok" else 503,
    )
