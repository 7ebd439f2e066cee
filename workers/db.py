"""Database access from synchronous Celery tasks.

Each worker process keeps one event loop and one small asyncpg pool, so tasks reuse connections
and call the same async SQL modules as the web process.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from confide.db import Pool, create_pool
from confide.settings import Settings

T = TypeVar("T")

_state = threading.local()


def run(coro: Coroutine[Any, Any, T]) -> T:  # Any: what it yields and is sent, unseen here
    loop = getattr(_state, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _state.loop = loop
        _state.pool = None
    return loop.run_until_complete(coro)


async def pool(settings: Settings) -> Pool:
    current = getattr(_state, "pool", None)
    if current is None or current.is_closing():
        current = await create_pool(settings.require_database(), min_size=0, max_size=2)
        _state.pool = current
    return current


def reset_after_fork() -> None:
    """A forked child must not share its parent's sockets or loop."""
    _state.loop = None
    _state.pool = None
