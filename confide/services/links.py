"""Linking a reporter's new report to an earlier one (a lost code): a staff decision, audited.

A link changes nothing for the reporter: their code and session open only the thread they were
issued for (docs/security.md "A report about an earlier one"). Each thread's page lists its links
to threads the viewer may see; a link to a thread they may not see is left out (docs/staff.md).
"""

from __future__ import annotations

from uuid import uuid4

from asyncpg import Connection

from confide.context import Context
from confide.errors import FieldError, NotFound, ValidationFailed
from confide.services.reports import recognise_reference
from confide.services.threads import Staff, visible_thread
from confide.sql import audit as sql_audit
from confide.sql import links as sql_links
from confide.sql.threads import ThreadDetail


async def _both(
    conn: Connection, staff: Staff, reference: str, other_reference: str
) -> tuple[ThreadDetail, ThreadDetail]:
    """Both threads, if the staff member may see both; else NotFound, the same for either."""
    other = recognise_reference(other_reference)
    if other is None:
        raise NotFound()
    this_row = await visible_thread(conn, staff, reference)
    other_row = await visible_thread(conn, staff, other)
    if this_row.id == other_row.id:
        raise ValidationFailed([FieldError("other", "A report cannot be linked to itself")])
    return this_row, other_row


async def link(ctx: Context, staff: Staff, reference: str, other_reference: str) -> bool:
    """Link two threads the staff member may both see; True if they were not linked before.

    Either thread being invisible or missing raises :class:`NotFound`, the same answer for
    both, so the action is no way to learn whether a reference exists. Both threads' audit logs
    record the link (the same ``link_id``, never the other thread's reference).
    """
    async with ctx.pool.acquire() as conn, conn.transaction():
        this_row, other_row = await _both(conn, staff, reference, other_reference)
        link_id = uuid4()
        added = await sql_links.insert(
            conn, link_id=link_id, one=this_row.id, other=other_row.id, staff_id=staff.id
        )
        if added:
            for thread_id in (this_row.id, other_row.id):
                await sql_audit.record(conn, staff.id, thread_id, "link", {"link_id": str(link_id)})
    return added


async def unlink(ctx: Context, staff: Staff, reference: str, other_reference: str) -> bool:
    """Undo a link between two threads the staff member may both see; True if they were
    linked. Audited on both threads with the link's id, like :func:`link`."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        this_row, other_row = await _both(conn, staff, reference, other_reference)
        link_id = await sql_links.delete(conn, this_row.id, other_row.id)
        if link_id is not None:
            for thread_id in (this_row.id, other_row.id):
                await sql_audit.record(
                    conn, staff.id, thread_id, "unlink", {"link_id": str(link_id)}
                )
    return link_id is not None
