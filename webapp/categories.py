"""Active categories, cached for a few seconds per web process (they change rarely, and every
question page and submission needs them)."""

from __future__ import annotations

import time

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
