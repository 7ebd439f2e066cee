"""SQL for auto-close after silence (docs/lifecycle.md): set-based, in batches, idempotent."""

from __future__ import annotations

from datetime import datetime

from asyncpg import Connection

# The threads that may close for silence: open, anonymous, and the case worker spoke last. Word
# for word the predicate of the partial index threads_auto_close (migrations/0024), so that the
# pass reads only those threads. $1 = a cut-off no qualifying message is later than (for the
# index), $2 = the organisation's auto_close_after as an interval, $3 = the pass's as_of.
_SILENT = """status <> 'closed' AND anonymous
    AND last_caseworker_message_at > coalesce(last_reporter_message_at, '-infinity')
    AND last_caseworker_message_at <= $1
    AND (last_caseworker_message_at AT TIME ZONE 'UTC' + $2::text::interval)
        AT TIME ZONE 'UTC' <= $3"""


async def count_due(conn: Connection, cutoff: datetime, interval: str, as_of: datetime) -> int:
    """How many threads a pass at ``as_of`` would close (the dry run)."""
    found: int = await conn.fetchval(
        f"SELECT count(*) FROM threads WHERE {_SILENT}", cutoff, interval, as_of
    )
    return found


async def close_batch(
    conn: Connection, cutoff: datetime, interval: str, as_of: datetime, limit: int
) -> int:
    """Close up to ``limit`` silent threads in one statement; how many it closed.

    Each closed thread loses any reply clock, stops its statutory clocks, gets an audit row with
    no staff member (action ``auto_close``) and a ``reminder`` outbox row, so its .ics is rebuilt
    with both events cancelled. A thread a reporter is writing to holds its row lock and is
    skipped (SKIP LOCKED); the next pass sees the message and leaves it open. Rerunning finds
    nothing: a closed thread no longer matches.
    """
    closed: int = await conn.fetchval(
        f"""WITH silent AS (
                SELECT id FROM threads WHERE {_SILENT}
                ORDER BY last_caseworker_message_at LIMIT $4
                FOR UPDATE SKIP LOCKED
            ), closed AS (
                UPDATE threads t SET status = 'closed', last_activity_at = $3, closed_at = $3,
                                     awaiting_since = NULL, reply_due_at = NULL
                FROM silent WHERE t.id = silent.id
                RETURNING t.id, t.team_id
            ), clocks AS (
                DELETE FROM thread_clocks k USING closed WHERE k.thread_id = closed.id
            ), statutory AS (
                UPDATE statutory_clocks q SET running = false
                FROM closed WHERE q.thread_id = closed.id
            ), audited AS (
                INSERT INTO audit_log (staff_id, thread_id, action, detail, at)
                SELECT NULL, id, 'auto_close', jsonb_build_object('after', $2::text), $3
                FROM closed
            ), reminders AS (
                INSERT INTO outbox (id, kind, thread_id, team_id)
                SELECT gen_random_uuid(), 'reminder', id, team_id FROM closed
            )
            SELECT count(*) FROM closed""",
        cutoff,
        interval,
        as_of,
        limit,
    )
    return closed
