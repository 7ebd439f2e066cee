"""``python -m webapp``: one web process (``confide run`` starts it for you)."""

from __future__ import annotations

import asyncio
import gc
import sys

from aiohttp import web

from confide import logs
from confide.errors import ConfigError
from confide.settings import Settings
from webapp.app import create_app


def main() -> int:
    try:
        settings = Settings.from_env()
        logs.configure("web", settings.log_level, coalesce=True)
        app = create_app(settings)
    except ConfigError as exc:
        print(f"confide: {exc}", file=sys.stderr)
        return 1
    loop = asyncio.new_event_loop()
    if settings.is_production and (loop.get_debug() or sys.flags.dev_mode):
        # In debug mode aiohttp puts tracebacks in error pages.
        print("confide: asyncio debug mode is on; refusing to run in production", file=sys.stderr)
        return 1
    logs.get("confide.web").info("web_starting", component="web")
    # Everything built so far (templates, modules, settings) lives as long as the process:
    # keep it out of the garbage collector's scans, which otherwise stall requests.
    gc.collect()
    gc.freeze()
    # A young-generation collection every 20,000 new objects, not 700, and the older ones
    # less often too: a request allocates thousands, so the defaults collected several times
    # a request, and the older collections, which walk every object the inbox's row cache
    # holds, stalled whole pages. Serves ``make bench`` ``inbox`` (case worker's p99 ÷ bare
    # ≤ 1.5; A/B on a busy machine: p99 340–354 → 91–97 ms, web CPU per page −20 %) and
    # ``submit`` (req/s ÷ bare ≥ 0.50; +2.6 % req/s in an A/B run); docs/benchmarks.md.
    gc.set_threshold(20_000, 20, 20)
    web.run_app(
        app,
        host=settings.bind_host,
        port=settings.port,
        access_log=None,  # aiohttp's own access log records the client address; ours does not
        print=None,
        reuse_port=True,
        loop=loop,
        shutdown_timeout=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
