"""Short-lived caches of one web process: the active categories (they change rarely, and every
question page and submission needs them), the staff inbox's filter counts and its rendered rows,
and the statistics of each scope, drawn once per refresh of the summaries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import jinja2
from markupsafe import Markup

from confide import logs
from confide.context import Context
from confide.services import org, statistics, threads
from confide.services.statistics import Scope, Statistics
from confide.services.threads import InboxRow, Staff
from webapp.charts import month_chart

TTL_S = 10.0
log = logs.get("confide.web.caches")


class CategoryCache:
    def __init__(self) -> None:
        self._items: list[dict[str, str]] = []
        self._loaded = 0.0

    async def get(self, ctx: Context) -> list[dict[str, str]]:
        if time.monotonic() - self._loaded > TTL_S:
            rows = await org.active_categories(ctx)
            self._items = [{"slug": r.slug, "name": r.name} for r in rows]
            self._loaded = time.monotonic()
        return self._items

    async def slugs(self, ctx: Context) -> set[str]:
        return {c["slug"] for c in await self.get(ctx)}

    def invalidate(self) -> None:
        self._loaded = 0.0


def _member_key(member: Staff) -> Hashable:
    return (member.id, member.team_ids, member.role)


class InboxCounts:
    """Each staff member's inbox filter counts, reused for ``ttl_s`` seconds.

    One computation at a time per key, and nobody waits for a refresh: when a key's counts
    expire, the next request starts one recount in the background and, like every request until
    it is done, gets the previous counts at once. Before this, every inbox page of a team stalled
    behind the recount every ``ttl_s`` (for a manager of 50 teams, 100,000 rows per count), which
    was most of the page's p99. Only a key never counted, or whose counts are older than
    ``max_stale_s`` (the recounts keep failing), waits for a fresh count.

    Serves ``make bench`` ``inbox`` (p99 case worker ÷ bare form ≤ 1.5): with the session's idle
    clock written at most every 15 s, the page's p99 ÷ p50 fell from about 2 to 1.2, and the
    manager's page stopped counting once per waiting request (docs/benchmarks.md, third and
    fourth rounds).

    A staff member's own action forgets their counts (:meth:`forget_member`, called by the
    thread page's forms once the change is committed), so the page after it is counted afresh
    in that process; other members' counts, and this member's in another web process, may lag
    by up to ``ttl_s`` (docs/staff.md, "Inbox").
    """

    def __init__(self, ttl_s: float, max_keys: int = 10_000, max_stale_s: float = 60.0) -> None:
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self.max_stale_s = max_stale_s
        self._done: dict[Hashable, tuple[float, dict[str, int]]] = {}
        self._running: dict[Hashable, asyncio.Future[dict[str, int]]] = {}
        self._background: set[asyncio.Task[None]] = set()

    async def for_member(self, ctx: Context, member: Staff) -> dict[str, int]:
        """The counts of ``member``'s inbox filters, through :meth:`get`."""
        return await self.get(_member_key(member), lambda: threads.inbox_counts(ctx, member))

    def forget_member(self, member: Staff) -> None:
        """After ``member``'s own action (committed): their next page counts afresh."""
        self.forget(_member_key(member))

    def forget(self, key: Hashable) -> None:
        """Drop ``key``'s counts, so that the next :meth:`get` counts afresh and waits for it.

        A count already running may have read the rows before the change that called this, so
        it is neither waited for nor kept (those already waiting for it still get it)."""
        self._done.pop(key, None)
        self._running.pop(key, None)

    async def get(
        self, key: Hashable, compute: Callable[[], Awaitable[dict[str, int]]]
    ) -> dict[str, int]:
        found = self._done.get(key)
        if found is not None:
            age = time.monotonic() - found[0]
            if age < self.ttl_s:
                return found[1]
            if age < self.max_stale_s:
                if key not in self._running:
                    # Claimed now, not when the task first runs: one recount per key.
                    future = self._claim(key)
                    task = asyncio.get_running_loop().create_task(
                        self._refresh(key, future, compute)
                    )
                    self._background.add(task)
                    task.add_done_callback(self._background.discard)
                return found[1]
        running = self._running.get(key)
        if running is not None:
            return await asyncio.shield(running)
        return await self._compute(key, self._claim(key), compute)

    def _claim(self, key: Hashable) -> asyncio.Future[dict[str, int]]:
        future: asyncio.Future[dict[str, int]] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        return future

    async def _refresh(
        self,
        key: Hashable,
        future: asyncio.Future[dict[str, int]],
        compute: Callable[[], Awaitable[dict[str, int]]],
    ) -> None:
        try:
            await self._compute(key, future, compute)
        except Exception as exc:  # the stale counts stay; the next request tries again
            log.warning("inbox_counts_refresh_failed", exc_type=type(exc).__name__)

    async def _compute(
        self,
        key: Hashable,
        future: asyncio.Future[dict[str, int]],
        compute: Callable[[], Awaitable[dict[str, int]]],
    ) -> dict[str, int]:
        try:
            counts = await compute()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: those waiting get it; nobody waiting is fine too
            raise
        finally:
            # Still this key's count, unless forget() dropped it meanwhile.
            current = self._running.get(key) is future
            if current:
                del self._running[key]
        future.set_result(counts)
        if current:
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

    Serves ``make bench`` ``inbox`` (p99 case worker ÷ bare form ≤ 1.5, met narrowly): web CPU
    per 50-row page 5.9 → 1.3 ms (fourth round), and joining the rows once took another 10 %
    (docs/benchmarks.md, issue 12). Its misses format their dates with
    :class:`webapp.dates.DateFormats`, which keeps Babel's output per day and per minute.
    """

    def __init__(self, template: jinja2.Template, max_rows: int = 20_000) -> None:
        # The template's ``row`` macro: autoescaped, and it returns Markup.
        self.row: Callable[[InboxRow], Markup] = template.module.row  # type: ignore[attr-defined]
        self.max_rows = max_rows
        self._minute = -1
        self._rows: dict[InboxRow, Markup] = {}

    def render(self, threads: Sequence[InboxRow]) -> Markup:
        """The rows as one piece of markup: joined as plain text, since a template printing
        each row would copy it into a new Markup on the way out (autoescape)."""
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
        # Safe: every piece is the autoescaped macro's Markup, joined by a newline.
        return Markup("\n".join(out))  # noqa: S704


@dataclass(frozen=True, slots=True)
class DrawnStatistics:
    stats: Statistics
    body: Markup  # the page below its range form
    body_utf8: bytes  # the same, encoded once: the page splices it in (webapp.handlers.statistics)


class StatisticsPages:
    """The statistics of one scope (a range and a set of teams), read and drawn once for each
    refresh of the summaries. The key is the scope itself, so a manager's page is never
    another's (``statistics.scope_of`` decided the scope first); each request checks the
    summaries' version (one indexed read), so nothing shown is older than the summaries.

    Serves ``make bench`` ``statistics`` (manager p99 ÷ bare form ≤ 1.5): drawing the page took
    3.6–5 ms of web CPU, the bare form 0.3 ms. The body is also kept encoded (``body_utf8``) for
    the same target, an admin's page of 600 rows (190 KB): printing it into the page copied it
    twice and encoding the whole page cost more than the rest of the request (docs/benchmarks.md,
    2026-12-03).
    """

    def __init__(self, template: jinja2.Template, max_keys: int = 1000) -> None:
        # The template's ``body`` macro: autoescaped, and it returns Markup.
        self.body: Callable[[Statistics, object, bool, date], Markup] = template.module.body  # type: ignore[attr-defined]
        self.max_keys = max_keys
        self._version: datetime | None = None
        self._drawn: dict[tuple[Scope, date], asyncio.Future[DrawnStatistics]] = {}

    async def get(self, ctx: Context, scope: Scope, month: date) -> DrawnStatistics:
        """The page's body for ``scope``, its detailed table showing ``month``'s rows."""
        current = await statistics.version(ctx)
        if current != self._version or len(self._drawn) >= self.max_keys:
            self._version, self._drawn = current, {}
        key = (scope, month)
        found = self._drawn.get(key)
        if found is not None:
            return await asyncio.shield(found)
        drawing = self._drawn[key] = asyncio.get_running_loop().create_future()
        try:
            stats = await statistics.read(ctx, scope)
            body = self.body(stats, month_chart(stats), scope.for_manager, month)
            drawn = DrawnStatistics(stats, body, body.encode("utf-8"))
        except BaseException as exc:
            self._drawn.pop(key, None)
            drawing.set_exception(exc)
            drawing.exception()  # marked as retrieved: waiters get it, and nobody else needs to
            raise
        drawing.set_result(drawn)
        return drawn
