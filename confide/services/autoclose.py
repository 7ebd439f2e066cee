"""Auto-close after silence (issue 16 item 3, docs/lifecycle.md): an anonymous thread where the
case worker spoke last is closed ``auto_close_after`` (organisation file, default 14 calendar
days) after that message, unless the reporter has written since. Called by the lifecycle pass
(``confide lifecycle``)."""

from __future__ import annotations

from datetime import datetime

from confide.context import Context
from confide.sql import autoclose as sql_autoclose

BATCH = 1000  # threads per statement: short row locks, flat memory


async def auto_close(ctx: Context, as_of: datetime, *, dry_run: bool) -> int:
    """Close every thread that has been silent long enough as of ``as_of``; how many it closed
    (or, with ``dry_run``, would close, changing nothing).

    Set-based, a batch per statement and transaction. Idempotent: a closed thread no longer
    qualifies, so a rerun closes nothing more. A reporter's message keeps the thread open: it
    makes the reporter the last to have spoken.
    """
    rule = ctx.rules.auto_close_after
    if rule is None:
        return 0
    cutoff = as_of - rule.shortest  # no qualifying message is later: lets the index cut first
    if dry_run:
        async with ctx.pool.acquire() as conn:
            return await sql_autoclose.count_due(conn, cutoff, rule.interval, as_of)
    closed = 0
    while True:
        async with ctx.pool.acquire() as conn, conn.transaction():
            done = await sql_autoclose.close_batch(conn, cutoff, rule.interval, as_of, BATCH)
        closed += done
        if done:
            ctx.after_commit()  # the reminders' rebuilds
        if done < BATCH:
            return closed
