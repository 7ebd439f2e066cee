"""SQL for reporters' receipts: what a receipt says, and the sealed salts the tamper check opens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from asyncpg import Connection


@dataclass(frozen=True, slots=True)
class ReportReceipt:
    """What a report's receipt says (no content)."""

    reference: str
    received_at: datetime
    commitment: bytes


@dataclass(frozen=True, slots=True)
class MessageReceipt:
    """What a message's receipt says (no content)."""

    id: UUID
    reference: str
    sent_at: datetime
    commitment: bytes


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A reporter's message as the tamper check recomputes it: ciphertext only."""

    body: bytes
    receipt_salt: bytes | None


_REPORT = "SELECT reference, received_at, commitment FROM threads"


async def report(conn: Connection, thread_id: UUID) -> ReportReceipt | None:
    """None for a missing thread, or one made before receipts existed."""
    row = await conn.fetchrow(f"{_REPORT} WHERE id = $1 AND commitment IS NOT NULL", thread_id)
    return None if row is None else ReportReceipt(**row)


async def report_by_reference(conn: Connection, reference: str) -> ReportReceipt | None:
    row = await conn.fetchrow(
        f"{_REPORT} WHERE reference = $1 AND commitment IS NOT NULL", reference
    )
    return None if row is None else ReportReceipt(**row)


async def message(conn: Connection, thread_id: UUID, message_id: UUID) -> MessageReceipt | None:
    """A reporter's own message of this thread that has a receipt, else None."""
    row = await conn.fetchrow(
        """SELECT m.id, t.reference, m.sent_at, m.commitment
           FROM messages m JOIN threads t ON t.id = m.thread_id
           WHERE m.id = $2 AND m.thread_id = $1 AND m.author = 'reporter'
             AND m.commitment IS NOT NULL""",
        thread_id,
        message_id,
    )
    return None if row is None else MessageReceipt(**row)


async def report_salt(conn: Connection, thread_id: UUID) -> bytes | None:
    """The report's sealed receipt salt (None: made before receipts, or removed)."""
    salt: bytes | None = await conn.fetchval(
        "SELECT receipt_salt FROM threads WHERE id = $1", thread_id
    )
    return salt


async def stored_message(
    conn: Connection, thread_id: UUID, message_id: UUID
) -> StoredMessage | None:
    """A reporter's message of this thread, sealed, with its sealed receipt salt."""
    row = await conn.fetchrow(
        """SELECT body, receipt_salt FROM messages
           WHERE id = $2 AND thread_id = $1 AND author = 'reporter'""",
        thread_id,
        message_id,
    )
    return None if row is None else StoredMessage(**row)
