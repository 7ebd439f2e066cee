"""Short-lived caches of one web process: the active categories (they change rarely, and every
question page and submission needs them), the staff inbox's filter counts and its rendered rows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence

import jinja2
from markupsafe import Markup

from confide.db import Pool
from confide.services.threads import InboxRow
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


class InboxRows:
    """The inbox's rows, rendered once per minute for as long as what they show is unchanged.

    A 50-row page spent most of its time in the per-row date and working-time filters and in
    escaping; case workers of a team reload the same first page all day. The key is the row
    itself (an ``InboxRow``, the values it shows), so a change to a thread (a new message, a new assignee, a new
    deadline) is a new key, never a stale row; only the "waiting" and "left" columns may lag
    the clock by under a minute. The rows are the same for every viewer (who may see a thread
    is decided by the query, before this), and the cache is emptied when the minute turns.
    """

    def __init__(self, template: jinja2.Template, max_rows: int = 20_000) -> None:
        # The template's ``row`` macro: autoescaped, and it returns Markup.
        self.row: Callable[[InboxRow], Markup] = template.module.row  # type: ignore[attr-defined]
        self.max_rows = max_rows
        self._minute = -1
        self._rows: dict[InboxRow, Markup] = {}

    def render(self, threads: Sequence[InboxRow]) -> list[Markup]:
        minute = int(time.time() // 60)
        if minute != self._minute or len(self._rows) >= self.max_rows:
            self._minute, self._rows = minute, {}
        rows = self._rows
        out = []
        for t in threads:
            html = rows.get(t)
            if html is None:
                html = rows[t] = self.row(t)
            out.append(html)
        return out
