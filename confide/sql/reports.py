"""SQL for reports (threads) and their idempotency keys. Text columns hold ciphertext only."""

from __future__ import annotations

from uuid import UUID

from asyncpg import Connection, Record


async def claim_submission_key(conn: Connection, key_hmac: bytes, thread_id: UUID) -> bool:
    """True if this submission is the first with its key; a concurrent twin waits for our commit."""
    claimed = await conn.fetchval(
        """INSERT INTO submission_keys (key_hmac, thread_id) VALUES ($1, $2)
           ON CONFLICT (key_hmac) DO NOTHING RETURNING true""",
        key_hmac,
        thread_id,
    )
    return bool(claimed)


async def thread_for_submission_key(conn: Connection, key_hmac: bytes) -> Record | None:
    row: Record | None = await conn.fetchrow(
        """SELECT t.id, t.reference, t.anonymous, t.follow_up, t.received_at
           FROM submission_keys k JOIN threads t ON t.id = k.thread_id
           WHERE k.key_hmac = $1""",
        key_hmac,
    )
    return row


async def insert_thread(
    conn: Connection,
    *,
    thread_id: UUID,
    reference: str,
    category_slug: str,
    team_id: int,
    anonymous: bool,
    follow_up: bool,
    description: bytes,
    occurred: bytes | None,
    location: bytes | None,
    contact: bytes | None,
) -> Record | None:
    """Insert a report; None if the reference is taken (the caller draws another)."""
    row: Record | None = await conn.fetchrow(
        """INSERT INTO threads (id, reference, category_slug, team_id, anonymous, follow_up,
                                description, occurred, location, contact, last_reporter_message_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now())
           ON CONFLICT (reference) DO NOTHING
           RETURNING id, reference, anonymous, follow_up, received_at""",
        thread_id,
        reference,
        category_slug,
        team_id,
        anonymous,
        follow_up,
        description,
        occurred,
        location,
        contact,
    )
    return row


async def thread(conn: Connection, thread_id: UUID) -> Record | None:
    row: Record | None = await conn.fetchrow(
        """SELECT t.*, c.name AS category_name, tm.slug AS team
           FROM threads t JOIN categories c ON c.slug = t.category_slug
           JOIN teams tm ON tm.id = t.team_id WHERE t.id = $1""",
        thread_id,
    )
    return row
