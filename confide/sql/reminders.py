"""SQL for the reporter's calendar reminder files and their single-use download tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from asyncpg import Connection


@dataclass(frozen=True, slots=True)
class StoredReminder:
    sequence: int
    generated_for: datetime | None
    due_at: datetime
    ics: bytes


@dataclass(frozen=True, slots=True)
class CurrentReminder:
    """The thread's reminder files (None before the first) and its due time now."""

    ics: bytes | None
    ics_with_address: bytes | None
    generated_for: datetime | None
    reply_due_at: datetime | None


async def lock_due(conn: Connection, thread_id: UUID) -> datetime | None:
    value: datetime | None = await conn.fetchval(
        "SELECT reply_due_at FROM threads WHERE id = $1 FOR UPDATE", thread_id
    )
    return value


async def stored(conn: Connection, thread_id: UUID) -> StoredReminder | None:
    row = await conn.fetchrow(
        "SELECT sequence, generated_for, due_at, ics FROM reminders WHERE thread_id = $1",
        thread_id,
    )
    return None if row is None else StoredReminder(**row)


async def store(
    conn: Connection,
    thread_id: UUID,
    *,
    due_at: datetime,
    sequence: int,
    ics: bytes,
    ics_with_address: bytes,
    generated_for: datetime | None,
) -> None:
    await conn.execute(
        """INSERT INTO reminders (thread_id, due_at, sequence, ics, ics_with_address,
                                  generated_for, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, now())
           ON CONFLICT (thread_id) DO UPDATE SET due_at = EXCLUDED.due_at,
               sequence = EXCLUDED.sequence, ics = EXCLUDED.ics,
               ics_with_address = EXCLUDED.ics_with_address,
               generated_for = EXCLUDED.generated_for, updated_at = now()""",
        thread_id,
        due_at,
        sequence,
        ics,
        ics_with_address,
        generated_for,
    )


async def current(conn: Connection, thread_id: UUID) -> CurrentReminder | None:
    row = await conn.fetchrow(
        """SELECT r.ics, r.ics_with_address, r.generated_for, t.reply_due_at
           FROM threads t LEFT JOIN reminders r ON r.thread_id = t.id WHERE t.id = $1""",
        thread_id,
    )
    return None if row is None else CurrentReminder(**row)


async def insert_token(
    conn: Connection, token_hmac: bytes, thread_id: UUID, lifetime_s: float
) -> None:
    await conn.execute(
        """INSERT INTO reminder_tokens (token_hmac, thread_id, expires_at)
           VALUES ($1, $2, now() + make_interval(secs => $3))""",
        token_hmac,
        thread_id,
        lifetime_s,
    )


async def token_thread(conn: Connection, token_hmac: bytes) -> UUID | None:
    value: UUID | None = await conn.fetchval(
        """SELECT thread_id FROM reminder_tokens
           WHERE token_hmac = $1 AND used_at IS NULL AND expires_at > now()""",
        token_hmac,
    )
    return value


async def use_token(conn: Connection, token_hmac: bytes) -> bool:
    used = await conn.fetchval(
        """UPDATE reminder_tokens SET used_at = now()
           WHERE token_hmac = $1 AND used_at IS NULL RETURNING true""",
        token_hmac,
    )
    return bool(used)
