"""SQL for the audit log: who, which thread, what, when. Never report text."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from asyncpg import Connection

from confide.sql.threads import VISIBLE


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One audit row as a viewer reads it: never report text."""

    at: datetime
    action: str
    detail: str  # the JSON text as stored (nothing reads it back but the database)
    staff_email: str | None
    reference: str | None  # an erased thread's rows: its erasure id (docs/lifecycle.md)


async def record(
    conn: Connection,
    staff_id: int | None,
    thread_id: UUID | None,
    action: str,
    detail: dict[str, Any] | None = None,  # Any: whatever json.dumps takes
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (staff_id, thread_id, action, detail) VALUES ($1, $2, $3, $4)",
        staff_id,
        thread_id,
        action,
        json.dumps(detail or {}),
    )


async def recent(
    conn: Connection,
    *,
    team_ids: list[int],
    staff_id: int,
    is_manager: bool,
    with_admin_events: bool,
    limit: int,
    offset: int,
    reference: str | None,  # an erased thread's rows: its erasure id (docs/lifecycle.md) = None,
) -> list[AuditRow]:
    """Audit rows the viewer may read: a row about a thread only if the viewer may see that
    thread now (sql.threads.VISIBLE: team, restriction), a row about no thread (staff and
    admin changes, ops actions) only with ``with_admin_events``."""
    # Two statements rather than "$7 IS NULL OR reference = $7", whose plan, once PostgreSQL
    # plans the prepared statement for any values, fits neither case (see sql.threads.inbox).
    by_reference = "AND t.reference = $7" if reference is not None else ""
    rows = await conn.fetch(
        f"""SELECT a.at, a.action, a.detail, s.email AS staff_email,
                   coalesce(t.reference, a.erasure_id) AS reference
            FROM audit_log a LEFT JOIN staff s ON s.id = a.staff_id
            LEFT JOIN threads t ON t.id = a.thread_id
            LEFT JOIN erasures e ON e.id = a.erasure_id
            WHERE CASE WHEN a.erasure_id IS NOT NULL
                       -- an erased thread's rows: its team's managers, and admins
                       THEN e.team_id = ANY($1::int[]) OR $4::boolean
                       WHEN a.thread_id IS NULL THEN $4::boolean
                       ELSE coalesce({VISIBLE}, false) END
            {by_reference}
            ORDER BY a.at DESC, a.id DESC LIMIT $5 OFFSET $6""",
        team_ids,
        staff_id,
        is_manager,
        with_admin_events,
        limit,
        offset,
        *([reference] if reference is not None else []),
    )
    return [AuditRow(**r) for r in rows]
