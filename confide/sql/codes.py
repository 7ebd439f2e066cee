"""SQL for reporter codes: the lookup HMAC and the argon2id verifier, never the code."""

from __future__ import annotations

from uuid import UUID

import asyncpg
from asyncpg import Connection, Record


async def set_pending(
    conn: Connection, thread_id: UUID, lookup_hmac: bytes, issue_id: UUID
) -> bool:
    """Issue (or replace) the thread's code with no verifier yet. False on a lookup collision."""
    try:
        await conn.execute(
            """INSERT INTO reporter_codes (thread_id, lookup_hmac, issue_id, verifier)
               VALUES ($1, $2, $3, NULL)
               ON CONFLICT (thread_id) DO UPDATE
               SET lookup_hmac = EXCLUDED.lookup_hmac, issue_id = EXCLUDED.issue_id,
                   verifier = NULL, issued_at = now()""",
            thread_id,
            lookup_hmac,
            issue_id,
        )
    except asyncpg.UniqueViolationError:
        return False
    return True


async def store_verifier(conn: Connection, thread_id: UUID, issue_id: UUID, verifier: str) -> bool:
    """True once this issue's verifier is committed (by us or by an earlier, equivalent writer).

    False when a fresher code has replaced this issue: a late task must never overwrite it.
    """
    done: bool = await conn.fetchval(
        """WITH upd AS (
               UPDATE reporter_codes SET verifier = $3
               WHERE thread_id = $1 AND issue_id = $2 AND verifier IS NULL
               RETURNING 1)
           SELECT EXISTS (SELECT 1 FROM upd)
               OR EXISTS (SELECT 1 FROM reporter_codes
                          WHERE thread_id = $1 AND issue_id = $2 AND verifier IS NOT NULL)""",
        thread_id,
        issue_id,
        verifier,
    )
    return done


async def by_lookup(conn: Connection, lookup_hmac: bytes) -> Record | None:
    row: Record | None = await conn.fetchrow(
        "SELECT thread_id, issue_id, verifier FROM reporter_codes WHERE lookup_hmac = $1",
        lookup_hmac,
    )
    return row


async def verifier_for_thread(conn: Connection, thread_id: UUID) -> str | None:
    value: str | None = await conn.fetchval(
        "SELECT verifier FROM reporter_codes WHERE thread_id = $1", thread_id
    )
    return value
