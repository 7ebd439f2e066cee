"""SQL for the reporter's calendar reminder files and their single-use download tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from asyncpg import Connection, Record


@dataclass(frozen=True, slots=True)
class StoredReminder:
    sequence: int
    generated_for: datetime | None
    due_at: datetime | None  # None: no reply was ever due in a file (answered at once)
    ics: bytes
    closes_at: datetime | None = None  # the auto-close time last described (0024)
    closes_for: datetime | None = None  # the auto-close time the files were built for


@dataclass(frozen=True, slots=True)
class CurrentReminder:
    """The thread's reminder files (None before the first) and its due time now."""

    ics: bytes | None
    ics_with_address: bytes | None
    generated_for: datetime | None
    reply_due_at: datetime | None
    closes_for: datetime | None = None
    silence: Silence | None = None  # what decides the thread's auto-close time now


@dataclass(frozen=True, slots=True)
class Silence:
    """What decides when a thread closes for silence (confide.clock_rules.ClockRules)."""

    anonymous: bool
    closed: bool
    last_caseworker_message_at: datetime | None
    last_reporter_message_at: datetime | None


@dataclass(frozen=True, slots=True)
class Times:
    reply_due_at: datetime | None
    silence: Silence


_SILENCE = """t.anonymous, t.status = 'closed' AS closed, t.last_caseworker_message_at,
    t.last_reporter_message_at"""


def _silence(row: Record) -> Silence:
    return Silence(
        row["anonymous"],
        row["closed"],
        row["last_caseworker_message_at"],
        row["last_reporter_message_at"],
    )


async def lock_times(conn: Connection, thread_id: UUID) -> Times | None:
    """The thread's reply due time and what decides its auto-close time, its row locked."""
    row = await conn.fetchrow(
        f"SELECT t.reply_due_at, {_SILENCE} FROM threads t WHERE t.id = $1 FOR UPDATE",
        thread_id,
    )
    return None if row is None else Times(row["reply_due_at"], _silence(row))


async def stored(conn: Connection, thread_id: UUID) -> StoredReminder | None:
    row = await conn.fetchrow(
        """SELECT sequence, generated_for, due_at, ics, closes_at, closes_for
           FROM reminders WHERE thread_id = $1""",
        thread_id,
    )
    return None if row is None else StoredReminder(**row)


async def store(
    conn: Connection,
    thread_id: UUID,
    *,
    due_at: datetime | None,
    sequence: int,
    ics: bytes,
    ics_with_address: bytes,
    generated_for: datetime | None,
    closes_at: datetime | None = None,
    closes_for: datetime | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO reminders (thread_id, due_at, sequence, ics, ics_with_address,
                                  generated_for, updated_at, closes_at, closes_for)
           VALUES ($1, $2, $3, $4, $5, $6, now(), $7, $8)
           ON CONFLICT (thread_id) DO UPDATE SET due_at = EXCLUDED.due_at,
               sequence = EXCLUDED.sequence, ics = EXCLUDED.ics,
               ics_with_address = EXCLUDED.ics_with_address,
               generated_for = EXCLUDED.generated_for, updated_at = now(),
               closes_at = EXCLUDED.closes_at, closes_for = EXCLUDED.closes_for""",
        thread_id,
        due_at,
        sequence,
        ics,
        ics_with_address,
        generated_for,
        closes_at,
        closes_for,
    )


async def current(conn: Connection, thread_id: UUID) -> CurrentReminder | None:
    row = await conn.fetchrow(
        f"""SELECT r.ics, r.ics_with_address, r.generated_for, t.reply_due_at, r.closes_for,
                   {_SILENCE}
            FROM threads t LEFT JOIN reminders r ON r.thread_id = t.id WHERE t.id = $1""",
        thread_id,
    )
    if row is None:
        return None
    return CurrentReminder(
        row["ics"],
        row["ics_with_address"],
        row["generated_for"],
        row["reply_due_at"],
        row["closes_for"],
        _silence(row),
    )


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
