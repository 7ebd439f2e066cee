"""The audit log as staff read it: the same visibility rule as the threads it is about."""

from __future__ import annotations

from dataclasses import dataclass

from confide.context import Context
from confide.services.threads import REFERENCE, Forbidden, Staff, visibility
from confide.sql import audit as sql_audit
from confide.sql.audit import AuditRow

PAGE_SIZE = 100


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditRow]
    next_page: int | None


async def recent(ctx: Context, staff: Staff, *, page: int, reference: str | None) -> AuditPage:
    """Managers and admins: rows about threads they may see (their teams; restricted ones for
    managers, or as assignee), newest first. Rows about no thread are for admins only."""
    if not staff.can_read_audit:
        raise Forbidden()
    scope = visibility(staff)
    if reference is not None and not REFERENCE.match(reference):
        reference = "R-NONE"  # matches no thread, and is safe to send to PostgreSQL
    async with ctx.pool.acquire() as conn:
        rows = await sql_audit.recent(
            conn,
            team_ids=scope.team_ids,
            staff_id=scope.staff_id,
            is_manager=scope.is_manager,
            with_admin_events=staff.is_admin and reference is None,
            limit=PAGE_SIZE + 1,
            offset=(page - 1) * PAGE_SIZE,
            reference=reference,
        )
    return AuditPage(rows[:PAGE_SIZE], page + 1 if len(rows) > PAGE_SIZE else None)
