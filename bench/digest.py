"""Digest generation for 200 teams, and its SQL round trips per digest at two data sizes.

Threads as in the escalation benchmark, smaller: 20,000 and then 100,000 open threads in 200
teams, of which about 8 % are already marked nearing or overdue (as the escalation pass leaves
them). One outbox row of kind ``digest`` per team (``payload {"day": "2026-11-25"}``, created at
Wednesday 25 November 2026 12:00 UTC), rendered one after the other on one connection by
``confide.services.notifications.render``, exactly as the delivery task does (no SMTP). A wrapper
around the asyncpg connection counts the round trips (``fetch``, ``fetchrow``, ``fetchval``,
``execute`` …) of each digest: with one query per digest for its threads, the count per digest
stays the same when the threads per team grow fivefold.

Baseline: the least a digest can cost: one query per team joining the team, its nearing and
overdue threads and their categories, the same lines with plain ``str.format`` (hours waited as
wall-clock hours, no working-time calendar) and the same ``EmailMessage``. Runs alternate.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import asyncpg

from bench.common import Context, Result, Target, say
from bench.escalation import LOAD_THREADS  # open threads due around as-of, as the pass sees them
from bench.fixtures import (
    LOAD_CLOCKS,
    Team,
    connect,
    create_teams,
    drop_bench_rows,
    ensure_schema,
)
from confide.context import Context as ServiceContext

NAME = "digest"
TITLE = "Digests for 200 teams: render time and SQL round trips per digest at 2 sizes"
TEAMS = 200
SIZES = (20_000, 100_000)
AS_OF = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DAY = "2026-11-25"
FLAT_TARGET = Target("<=", 1.0)

QUEUE_DIGESTS = """
INSERT INTO outbox (id, kind, dedupe_key, team_id, payload, created_at)
SELECT gen_random_uuid(), 'digest', 'digest:' || slug || ':' || $2, id,
       jsonb_build_object('day', $2::text), $3
FROM teams WHERE id = ANY($1::int[])
"""
OUTBOX_ROWS = """SELECT id, kind, thread_id, team_id, staff_id, recipient, payload, attempts,
       created_at FROM outbox WHERE kind = 'digest' ORDER BY team_id"""
BARE_DIGEST = """SELECT tm.name, tm.email, t.reference, c.name AS category_name,
       t.awaiting_since, k.reply_due_at, k.escalation
FROM teams tm
LEFT JOIN thread_clocks k ON k.team_id = tm.id AND k.escalation <> 'none'
LEFT JOIN threads t ON t.id = k.thread_id
LEFT JOIN categories c ON c.slug = t.category_slug
WHERE tm.id = $1
ORDER BY t.awaiting_since, t.reference"""
ROUND_TRIPS = (
    "execute",
    "executemany",
    "fetch",
    "fetchrow",
    "fetchval",
    "fetchmany",
    "copy_from_query",
    "copy_to_table",
    "copy_records_to_table",
)


class CountingConnection:
    """An asyncpg connection that counts the statements sent through it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self.round_trips = 0

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._conn, name)
        if name not in ROUND_TRIPS:
            return value

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.round_trips += 1
            return await value(*args, **kwargs)

        return counted


def run(ctx: Context) -> list[Result]:
    ensure_schema(ctx)
    try:
        return asyncio.run(_run(ctx))
    finally:
        drop_bench_rows(ctx)


async def _run(ctx: Context) -> list[Result]:
    from confide.crypto import Keyring
    from confide.services.workdays import WorkingCalendar
    from confide.settings import Settings

    settings = Settings.from_env(ctx.confide_env(port=8080))
    keyring = Keyring.from_secret(settings.encryption_keys)
    calendar = WorkingCalendar()
    results: list[Result] = []
    trips: dict[int, float] = {}
    async with connect(ctx) as conn:
        teams = await create_teams(conn, TEAMS)
        for size in SIZES:
            listed = await _load(conn, teams, size)
            rows = await conn.fetch(OUTBOX_ROWS)
            say(
                f"\n  {size:,} threads, {listed:,} nearing or overdue "
                f"(~{listed / len(teams):.0f} per team); {len(rows)} digest rows"
            )
            confide_ms: list[float] = []
            bare_ms: list[float] = []
            per_digest: list[float] = []
            for i in range(ctx.runs):
                for which in ("bare", "confide") if i % 2 == 0 else ("confide", "bare"):
                    if which == "bare":
                        elapsed, lines = await _bare(conn, rows)
                        bare_ms.append(1000 * elapsed / len(rows))
                        say(f"    run {i + 1} bare     {bare_ms[-1]:6.2f} ms per digest")
                    else:
                        counting = CountingConnection(conn)
                        elapsed, lines = await _confide(counting, settings, keyring, calendar, rows)
                        confide_ms.append(1000 * elapsed / len(rows))
                        per_digest.append(counting.round_trips / len(rows))
                        say(
                            f"    run {i + 1} confide  {confide_ms[-1]:6.2f} ms per digest, "
                            f"{per_digest[-1]:.2f} SQL round trips per digest, "
                            f"{lines / len(rows):.0f} threads listed per digest"
                        )
            trips[size] = max(per_digest)
            name = f"digest, {size:,} threads:"
            results += [
                Result(
                    f"{name} ms per digest Confide ÷ bare",
                    tuple(c / b for c, b in zip(confide_ms, bare_ms, strict=True)),
                ),
                Result(f"{name} Confide ms per digest", tuple(confide_ms), "ms"),
                Result(f"{name} bare ms per digest", tuple(bare_ms), "ms"),
                Result(f"{name} SQL round trips per digest", tuple(per_digest), digits=1),
            ]
    small, large = SIZES[0], SIZES[-1]
    results.append(
        Result(
            f"digest: round trips per digest at {large:,} ÷ at {small:,} threads",
            (trips[large] / trips[small],),
            target=FLAT_TARGET,
        )
    )
    return results


async def _load(conn: asyncpg.Connection, teams: list[Team], size: int) -> int:
    await conn.execute("TRUNCATE threads CASCADE")
    await conn.execute("DELETE FROM outbox")
    await conn.execute(
        LOAD_THREADS, size, [t.category for t in teams], [t.id for t in teams], len(teams), AS_OF
    )
    await conn.execute(LOAD_CLOCKS, AS_OF)  # their clocks, already marked as of AS_OF
    await conn.execute(QUEUE_DIGESTS, [t.id for t in teams], DAY, AS_OF)
    await conn.execute("VACUUM ANALYZE threads, thread_clocks, outbox")
    listed: int = await conn.fetchval(
        "SELECT count(*) FROM thread_clocks WHERE escalation <> 'none'"
    )
    return listed


async def _confide(
    conn: CountingConnection, settings: Any, keyring: Any, calendar: Any, rows: list[asyncpg.Record]
) -> tuple[float, int]:
    from confide.services.notifications import render
    from confide.sql.outbox import outbox_item

    listed = 0
    started = time.perf_counter()
    for row in rows:
        message = await render(
            ServiceContext(None, settings, keyring, calendar),  # type: ignore[arg-type]  # no pool used
            conn,
            outbox_item(row),  # the typed row, as the outbox task claims it
        )
        if message is None:
            raise RuntimeError(f"no digest for team {row['team_id']}")
        listed += message.get_content().count("/staff/threads/R-")
    return time.perf_counter() - started, listed


async def _bare(conn: asyncpg.Connection, rows: list[Any]) -> tuple[float, int]:
    listed = 0
    started = time.perf_counter()
    for row in rows:
        threads = await conn.fetch(BARE_DIGEST, row["team_id"])
        now = row["created_at"]
        lines = [f"Threads nearing or past the limit for {threads[0]['name']} ({DAY}):", ""]
        for t in threads:
            if t["reference"] is None:
                continue
            hours = (now - t["awaiting_since"]).total_seconds() / 3600
            lines.append(
                f"- {t['reference']}  {t['category_name']}  {t['escalation']}; waited "
                f"{hours:.1f} hours; due {t['reply_due_at']:%a %d %b %H:%M}\n"
                f"  https://confide.invalid/staff/threads/{t['reference']}"
            )
        message = EmailMessage()
        message["From"] = "confide@localhost"
        message["To"] = threads[0]["email"]
        message["Subject"] = f"Confide digest {DAY}: {len(lines) - 2} thread(s) need a reply"
        message.set_content("\n".join(lines))
        listed += len(lines) - 2
    return time.perf_counter() - started, listed
