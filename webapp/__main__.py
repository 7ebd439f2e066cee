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
    # A young-generation collection every 20,000 new objects, not 700: a submission allocates
    # a few thousand, so the default collected several times a request. Serves ``make bench``
    # ``submit`` (req/s ÷ bare ≥ 0.50): +2.6 % req/s, -1.7 % web CPU per submission in an A/B
    # run (docs/benchmarks.md). The older generations are collected less often too.
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
