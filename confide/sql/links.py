"""SQL for links between threads (a reporter's new report about an earlier one, migrations/0016).

Every read takes the viewer's visibility rule (``sql.threads.VISIBLE``): a thread the viewer may
not see is never named, counted or hinted at.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from asyncpg import Connection

from confide.sql.threads import VISIBLE


@dataclass(frozen=True, slots=True)
class OtherThread:
    """A thread the viewer may see, as another thread's page names it. No content."""

    id: UUID
    reference: str
    category_name: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Link:
    """A link from one thread to another the viewer may see."""

    other: OtherThread
    linked_at: datetime
    linked_by: str | None  # the staff member's name; None once the account is gone


async def visible_other(
    conn: Connection,
    reference: str,
    *,
    team_ids: list[int],
    staff_id: int,
    is_manager: bool,
) -> OtherThread | None:
    """The thread of ``reference`` if the viewer may see it; None for a missing one and an
    invisible one alike."""
    row = await conn.fetchrow(
        f"""SELECT t.id, t.reference, c.name AS category_name, t.received_at
            FROM threads t JOIN categories c ON c.slug = t.category_slug
            WHERE {VISIBLE} AND t.reference = $4""",
        team_ids,
        staff_id,
        is_manager,
        reference,
    )
    return None if row is None else OtherThread(**row)


async def of_thread(
    conn: Connection, thread_id: UUID, *, team_ids: list[int], staff_id: int, is_manager: bool
) -> list[Link]:
    """The thread's links to threads the viewer may see, oldest first. A link to a thread the
    viewer may not see is left out, as if it did not exist (docs/staff.md)."""
    rows = await conn.fetch(
        f"""SELECT t.id, t.reference, c.name AS category_name, t.received_at, l.linked_at,
                   s.name AS linked_by
            FROM thread_links l
            JOIN threads t ON t.id = CASE WHEN l.thread_a = $4 THEN l.thread_b ELSE l.thread_a END
            JOIN categories c ON c.slug = t.category_slug
            LEFT JOIN staff s ON s.id = l.linked_by
            WHERE (l.thread_a = $4 OR l.thread_b = $4) AND {VISIBLE}
            ORDER BY l.linked_at, t.reference""",
        team_ids,
        staff_id,
        is_manager,
        thread_id,
    )
    return [
        Link(
            OtherThread(r["id"], r["reference"], r["category_name"], r["received_at"]),
            r["linked_at"],
            r["linked_by"],
        )
        for r in rows
    ]


async def insert(conn: Connection, *, link_id: UUID, one: UUID, other: UUID, staff_id: int) -> bool:
    """Link two threads (stored once per pair, the smaller id first); False if they already
    were."""
    first, second = sorted((one, other))
    done = await conn.fetchval(
        """INSERT INTO thread_links (id, thread_a, thread_b, linked_by) VALUES ($1, $2, $3, $4)
           ON CONFLICT (thread_a, thread_b) DO NOTHING RETURNING true""",
        link_id,
        first,
        second,
        staff_id,
    )
    return bool(done)


async def delete(conn: Connection, one: UUID, other: UUID) -> UUID | None:
    """Unlink two threads; the link's id, or None if they were not linked."""
    first, second = sorted((one, other))
    link_id: UUID | None = await conn.fetchval(
        "DELETE FROM thread_links WHERE thread_a = $1 AND thread_b = $2 RETURNING id",
        first,
        second,
    )
    return link_id
