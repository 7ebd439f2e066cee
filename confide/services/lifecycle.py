"""The lifecycle pass (issue 16, CONTRACTS §4 ``confide lifecycle``): auto-close, closing
threads inactive for ``close_inactive_after``, erasure warnings, and erasure.

Every step is set-based and works in batches, each batch its own transaction, so a pass over
100,000 expired threads holds a batch of ids in memory at a time and a crash loses nothing
but the batch in flight (which the next pass does again). Every step is idempotent: a second
pass at the same time finds nothing left to do.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from confide import codes
from confide.context import Context
from confide.services import autoclose, retention, statistics
from confide.sql import lifecycle as sql_lifecycle

BATCH = 1000
REWRAP_BATCH = 500


@dataclass
class LifecycleReport:
    as_of: datetime
    auto_closed: int = 0
    warned: int = 0
    erased: int = 0

    def as_json(self) -> dict[str, object]:
        """Exactly CONTRACTS §4: ``{"as_of", "auto_closed", "warned", "erased"}``."""
        return {
            "as_of": self.as_of.isoformat(),
            "auto_closed": self.auto_closed,
            "warned": self.warned,
            "erased": self.erased,
        }


def new_erasure_id() -> str:
    """``E-`` and 12 random Crockford characters: names no case and derives from nothing."""
    return "E-" + "".join(codes.ALPHABET[b & 31] for b in secrets.token_bytes(12))


async def run_pass(
    ctx: Context, as_of: datetime, dry_run: bool = False, *, budget_s: float | None = None
) -> LifecycleReport:
    """One pass at ``as_of``; ``dry_run`` counts what it would do and changes nothing.

    ``auto_closed`` counts the auto-close after silence and the closes for inactivity alike.
    ``budget_s`` (the beat task's, inside Celery's time limit) stops the batched steps once
    spent, between batches: the next pass carries on where this one stopped.
    """
    stop_at = None if budget_s is None else time.monotonic() + budget_s
    report = LifecycleReport(as_of)
    rules = retention.rules(ctx)
    inactive = rules.close_inactive_after.sql
    report.auto_closed = await autoclose.auto_close(ctx, as_of, dry_run=dry_run)
    report.auto_closed += await _close_inactive(ctx, as_of, inactive, dry_run, stop_at)
    if not dry_run:
        await rewrap_drifted(ctx)
    warn_until = ctx.calendar.add_working_time(
        as_of, ctx.calendar.day_length * rules.erasure_warning_days
    )
    async with ctx.pool.acquire() as conn:
        report.warned = await sql_lifecycle.warn(conn, as_of, warn_until, inactive, dry_run=dry_run)
    report.erased = await erase_due(ctx, as_of, dry_run=dry_run, stop_at=stop_at)
    return report


def _spent(stop_at: float | None) -> bool:
    return stop_at is not None and time.monotonic() >= stop_at


async def _close_inactive(
    ctx: Context, as_of: datetime, inactive: str, dry_run: bool, stop_at: float | None
) -> int:
    async with ctx.pool.acquire() as conn:
        if dry_run:
            return await sql_lifecycle.count_inactive(conn, as_of, inactive)
        total = 0
        while True:
            async with conn.transaction():
                closed = await sql_lifecycle.close_inactive(conn, as_of, inactive, BATCH)
            total += len(closed)
            if len(closed) < BATCH or _spent(stop_at):
                return total


async def rewrap_drifted(ctx: Context) -> int:
    """Rewrap the keys of threads whose due date moved to another quarter without a service
    of ours seeing it (closed by a set-based pass). Compare-and-set: safe beside any writer."""
    rules = retention.rules(ctx)
    after: UUID | None = None
    done = 0
    async with ctx.pool.acquire() as conn:
        if not await sql_lifecycle.any_drifted(conn):
            return 0
        while wraps := await sql_lifecycle.drifted(conn, after, REWRAP_BATCH):
            rows = [r for w in wraps if (r := retention.new_wrap_for(ctx.keyring, rules, w))]
            done += await sql_lifecycle.set_wraps(conn, rows)
            after = wraps[-1].id
    return done


async def erase_due(
    ctx: Context, as_of: datetime, *, dry_run: bool = False, stop_at: float | None = None
) -> int:
    """Erase every closed, unheld thread whose erasure was due by ``as_of``, a batch per
    transaction: statistics facts are kept first (``statistics.capture_facts``), audit rows
    keep an erasure id, then the rows go, the wrapped data key with them."""
    async with ctx.pool.acquire() as conn:
        if dry_run:
            return await sql_lifecycle.count_erasable(conn, as_of)
        total = 0
        while not _spent(stop_at):
            async with conn.transaction():
                due = await sql_lifecycle.claim_erasable(conn, as_of, BATCH)
                if not due:
                    return total
                ids = [d.id for d in due]
                await statistics.capture_facts(
                    conn,
                    ids,
                    calendar=ctx.calendar,
                    target_workdays=ctx.settings.reply_target_workdays,
                )
                total += await sql_lifecycle.erase(
                    conn, ids, [new_erasure_id() for _ in due], [d.team_id for d in due]
                )
        return total
