"""SQL for the statutory clocks (``clocks = ["eu-directive"]``; migrations/0024): acknowledgement
within 7 days and feedback within 3 months. The table's trigger derives the deadlines from what
happened; these functions only record it. Set-based: no loops over threads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from asyncpg import Connection, Record

from confide.domain import Escalation
from confide.sql.threads import RESTRICTED_READER


@dataclass(frozen=True, slots=True)
class StatutoryThread:
    """What a digest may say of a thread's statutory clock: no content."""

    reference: str
    category_name: str
    phase: str  # "acknowledgement" or "feedback"
    due_at: datetime
    statutory: Escalation


def _digest_row(r: Record) -> StatutoryThread:
    return StatutoryThread(
        r["reference"], r["category_name"], r["phase"], r["due_at"], Escalation(r["statutory"])
    )


async def acknowledge(conn: Connection, thread_id: UUID, at: datetime) -> None:
    """The first acknowledgement counts; later ones change nothing."""
    await conn.execute(
        """UPDATE statutory_clocks SET acknowledged_at = $2
           WHERE thread_id = $1 AND acknowledged_at IS NULL""",
        thread_id,
        at,
    )


async def record_feedback(conn: Connection, thread_id: UUID, at: datetime) -> None:
    """Feedback is also an acknowledgement, if none came before it."""
    await conn.execute(
        """UPDATE statutory_clocks SET acknowledged_at = coalesce(acknowledged_at, $2),
                                       feedback_at = coalesce(feedback_at, $2)
           WHERE thread_id = $1 AND (acknowledged_at IS NULL OR feedback_at IS NULL)""",
        thread_id,
        at,
    )


async def set_running(conn: Connection, thread_id: UUID, running: bool) -> None:
    """Closing stops the clocks; reopening restarts whichever is still unmet."""
    await conn.execute(
        "UPDATE statutory_clocks SET running = $2 WHERE thread_id = $1 AND running <> $2",
        thread_id,
        running,
    )


async def has_clocks(conn: Connection, thread_id: UUID) -> bool:
    found = await conn.fetchval("SELECT true FROM statutory_clocks WHERE thread_id = $1", thread_id)
    return bool(found)


async def escalate(conn: Connection, as_of: datetime) -> int:
    """Mark running statutory clocks nearing or overdue as of ``as_of``; how many changed.
    Idempotent: a mark changes once, and a later deadline (acknowledged) resets it (trigger)."""
    changed: str = await conn.execute(
        """UPDATE statutory_clocks
           SET statutory = CASE WHEN due_at <= $1 THEN 'overdue' ELSE 'nearing' END,
               marked_at = $1
           WHERE due_at IS NOT NULL AND nearing_at <= $1 AND statutory <> 'overdue'
             AND statutory <> CASE WHEN due_at <= $1 THEN 'overdue' ELSE 'nearing' END""",
        as_of,
    )
    return int(changed.split()[-1])


async def team_counts(conn: Connection) -> dict[str, dict[str, int]]:
    """Each team's nearing and overdue statutory clocks (teams that have any)."""
    rows = await conn.fetch(
        """SELECT tm.slug, count(*) FILTER (WHERE q.statutory = 'nearing') AS nearing,
                  count(*) FILTER (WHERE q.statutory = 'overdue') AS overdue
           FROM statutory_clocks q JOIN teams tm ON tm.id = q.team_id
           WHERE q.statutory <> 'none' GROUP BY tm.slug ORDER BY tm.slug"""
    )
    return {r["slug"]: {"nearing": r["nearing"], "overdue": r["overdue"]} for r in rows}


_COLUMNS = """t.reference, c.name AS category_name,
    CASE WHEN q.acknowledged_at IS NULL THEN 'acknowledgement' ELSE 'feedback' END AS phase,
    q.due_at, q.statutory"""


async def digest_threads(conn: Connection, team_id: int) -> list[StatutoryThread]:
    """The team's unrestricted threads whose statutory clock nears or is overdue, soonest due
    first: what its shared address may be told."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS}
            FROM statutory_clocks q JOIN threads t ON t.id = q.thread_id
            JOIN categories c ON c.slug = t.category_slug
            WHERE q.team_id = $1 AND q.statutory <> 'none' AND NOT t.restricted
            ORDER BY q.due_at, t.reference""",
        team_id,
    )
    return [_digest_row(r) for r in rows]


async def restricted_digest_threads(
    conn: Connection, team_id: int, staff_id: int, roles: list[str]
) -> list[StatutoryThread]:
    """The same for the team's restricted threads one person may see (a manager of the team or
    the assignee, an active member of it in one of ``roles``)."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS}
            FROM statutory_clocks q JOIN threads t ON t.id = q.thread_id
            JOIN categories c ON c.slug = t.category_slug
            {RESTRICTED_READER}
            WHERE t.team_id = $1 AND t.restricted AND q.statutory <> 'none'
            ORDER BY q.due_at, t.reference""",
        team_id,
        staff_id,
        roles,
    )
    return [_digest_row(r) for r in rows]
