"""Short-lived caches of one web process: the active categories (they change rarely, and every
question page and submission needs them) and the staff inbox's filter counts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable

from confide.db import Pool
from confide.sql import org as sql_org

TTL_S = 10.0


class CategoryCache:
    def __init__(self) -> None:
        self._items: list[dict[str, str]] = []
        self._loaded = 0.0

    async def get(self, pool: Pool) -> list[dict[str, str]]:
        if time.monotonic() - self._loaded > TTL_S:
            async with pool.acquire() as conn:
                rows = await sql_org.active_categories(conn)
            self._items = [{"slug": r["slug"], "name": r["name"]} for r in rows]
            self._loaded = time.monotonic()
        return self._items

    async def slugs(self, pool: Pool) -> set[str]:
        return {c["slug"] for c in await self.get(pool)}

    def invalidate(self) -> None:
        self._loaded = 0.0


class InboxCounts:
    """Each staff member's inbox filter counts, reused for ``ttl_s`` seconds.

    One computation at a time per key: when the counts expire under load, the requests that
    arrive meanwhile wait for that one query instead of each counting every visible thread
    again (for a manager of 50 teams, 100,000 rows per count).
    """

    def __init__(self, ttl_s: float, max_keys: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self._done: dict[Hashable, tuple[float, dict[str, int]]] = {}
        self._running: dict[Hashable, asyncio.Future[dict[str, int]]] = {}

    async def get(
        self, key: Hashable, compute: Callable[[], Awaitable[dict[str, int]]]
    ) -> dict[str, int]:
        found = self._done.get(key)
        if found is not None and time.monotonic() - found[0] < self.ttl_s:
            return found[1]
        running = self._running.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[dict[str, int]] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            counts = await compute()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: those waiting get it; nobody waiting is fine too
            raise
        finally:
            del self._running[key]
        future.set_result(counts)
        if len(self._done) >= self.max_keys:
            self._done.clear()
        self._done[key] = (time.monotonic(), counts)
        return counts
