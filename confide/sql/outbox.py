"""SQL for the outbox: background work recorded in the same transaction as its cause.

A consumer claims a row with a conditional update and a lease; a redelivery finds it claimed or
done and does nothing. Retries follow ``next_attempt_at``; after the last attempt the row becomes
a dead letter (``failed_at``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from asyncpg import Connection, Record

LEASE_SECONDS = 120


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A claimed outbox row: ids, the sealed recipient (acknowledgements only) and the payload."""

    id: UUID
    kind: str
    thread_id: UUID | None
    team_id: int | None
    staff_id: int | None
    recipient: bytes | None
    payload: dict[str, object]  # the JSON object as stored ({} for anything else)
    attempts: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PendingStats:
    pending: int
    oldest: float | None  # seconds since the oldest pending row was queued


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A row that used up its attempts. No thread reference: ops sees no thread."""

    id: UUID
    kind: str
    team_id: int | None
    failed_at: datetime
    last_error: str | None
    attempts: int


async def enqueue(
    conn: Connection,
    kind: str,
    *,
    thread_id: UUID | None = None,
    team_id: int | None = None,
    staff_id: int | None = None,
    recipient: bytes | None = None,
    payload: dict[str, Any] | None = None,  # Any: whatever json.dumps takes
    dedupe_key: str | None = None,
    outbox_id: UUID | None = None,
) -> UUID | None:
    """The new row's id; None when ``dedupe_key`` was already queued."""
    outbox_id = outbox_id or uuid4()
    value: UUID | None = await conn.fetchval(
        """INSERT INTO outbox (id, kind, thread_id, team_id, staff_id, recipient, payload,
                               dedupe_key)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING RETURNING id""",
        outbox_id,
        kind,
        thread_id,
        team_id,
        staff_id,
        recipient,
        json.dumps(payload or {}),
        dedupe_key,
    )
    return value


async def claim(conn: Connection, outbox_id: UUID) -> OutboxItem | None:
    row = await conn.fetchrow(
        f"""UPDATE outbox SET leased_until = now() + interval '{LEASE_SECONDS} seconds',
                              attempts = attempts + 1
            WHERE id = $1 AND sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
              AND (leased_until IS NULL OR leased_until < now())
            RETURNING id, kind, thread_id, team_id, staff_id, recipient, payload, attempts,
                      created_at""",
        outbox_id,
    )
    return None if row is None else outbox_item(row)


def outbox_item(row: Record) -> OutboxItem:
    """A row of ``outbox`` (the columns :func:`claim` returns) as its typed value."""
    payload = row["payload"]  # jsonb comes as text unless a codec decodes it
    payload = json.loads(payload) if isinstance(payload, str) else payload
    return OutboxItem(**{**row, "payload": payload if isinstance(payload, dict) else {}})


async def mark_sent(conn: Connection, outbox_id: UUID) -> None:
    """Sent: its sealed recipient (a reporter's own address) is no longer needed and goes. A
    contact-details report's acknowledgement e-mail, once sent, meets its statutory
    acknowledgement clock when it has one (migrations/0024), in the same statement."""
    await conn.execute(
        """WITH sent AS (
               UPDATE outbox SET sent_at = now(), leased_until = NULL, last_error = NULL,
                                 recipient = NULL
               WHERE id = $1 RETURNING kind, thread_id, sent_at
           )
           UPDATE statutory_clocks q SET acknowledged_at = sent.sent_at FROM sent
           WHERE sent.kind = 'acknowledgement' AND q.thread_id = sent.thread_id
             AND q.acknowledged_at IS NULL""",
        outbox_id,
    )


async def schedule_retry(
    conn: Connection, outbox_id: UUID, *, error: str, delay_s: float, give_up: bool
) -> None:
    await conn.execute(
        """UPDATE outbox SET leased_until = NULL, last_error = $2,
               next_attempt_at = now() + make_interval(secs => $3),
               failed_at = CASE WHEN $4 THEN now() ELSE NULL END
           WHERE id = $1""",
        outbox_id,
        error[:100],
        delay_s,
        give_up,
    )


async def due_ids(conn: Connection, limit: int) -> list[UUID]:
    return [
        r["id"]
        for r in await conn.fetch(
            """SELECT id FROM outbox
           WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
             AND (leased_until IS NULL OR leased_until < now())
           ORDER BY next_attempt_at LIMIT $1""",
            limit,
        )
    ]


async def pending_stats(conn: Connection) -> PendingStats:
    row = await conn.fetchrow(
        """SELECT count(*) AS pending, extract(epoch FROM now() - min(created_at)) AS oldest
           FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL"""
    )
    return PendingStats(
        int(row["pending"]), None if row["oldest"] is None else float(row["oldest"])
    )


async def dead_letters(conn: Connection, limit: int = 200) -> list[DeadLetter]:
    rows = await conn.fetch(
        # No thread reference: ops sees no thread, not even which one a failed mail was about.
        """SELECT o.id, o.kind, o.team_id, o.failed_at, o.last_error, o.attempts
           FROM outbox o
           WHERE o.failed_at IS NOT NULL AND o.dismissed_at IS NULL
           ORDER BY o.failed_at DESC LIMIT $1""",
        limit,
    )
    return [DeadLetter(**r) for r in rows]


async def retry_dead(conn: Connection, outbox_id: UUID) -> bool:
    """Idempotent: only a dead letter is revived; a second click finds nothing to do."""
    done = await conn.fetchval(
        """UPDATE outbox SET failed_at = NULL, attempts = 0, next_attempt_at = now(),
                             leased_until = NULL
           WHERE id = $1 AND failed_at IS NOT NULL AND dismissed_at IS NULL RETURNING true""",
        outbox_id,
    )
    return bool(done)


async def dismiss_dead(conn: Connection, outbox_id: UUID) -> bool:
    done = await conn.fetchval(
        """UPDATE outbox SET dismissed_at = now()
           WHERE id = $1 AND failed_at IS NOT NULL AND dismissed_at IS NULL RETURNING true""",
        outbox_id,
    )
    return bool(done)
