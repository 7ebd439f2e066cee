"""SQL for the audit log: who, which thread, what, when. Never report text."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from asyncpg import Connection, Record


async def record(
    conn: Connection,
    staff_id: int | None,
    thread_id: UUID | None,
    action: str,
    detail: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (staff_id, thread_id, action, detail) VALUES ($1, $2, $3, $4)",
        staff_id,
        thread_id,
        action,
        json.dumps(detail or {}),
    )


async def recent(
    conn: Connection, *, limit: int, offset: int, reference: str | None = None
) -> list[Record]:
    # Two statements rather than "$3 IS NULL OR reference = $3", whose plan, once PostgreSQL
    # plans the prepared statement for any values, fits neither case (see sql.threads.inbox).
    by_reference = "WHERE t.reference = $3" if reference is not None else ""
    rows: list[Record] = await conn.fetch(
        f"""SELECT a.at, a.action, a.detail, s.email AS staff_email, t.reference
            FROM audit_log a LEFT JOIN staff s ON s.id = a.staff_id
            LEFT JOIN threads t ON t.id = a.thread_id
            {by_reference}
            ORDER BY a.at DESC, a.id DESC LIMIT $1 OFFSET $2""",
        limit,
        offset,
        *([reference] if reference is not None else []),
    )
    return rows
