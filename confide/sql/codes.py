"""SQL for reporter codes: the lookup HMAC and the argon2id verifier, never the code."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from asyncpg import Connection


@dataclass(frozen=True, slots=True)
class CodeState:
    """One of a report's codes, as a retry decides whether it may add another."""

    works: bool  # its verifier is committed
    used: bool  # someone logged in with it
    recent: bool  # issued within the pending window


@dataclass(frozen=True, slots=True)
class CodeLookup:
    thread_id: UUID
    issue_id: UUID
    verifier: str | None


async def lock_for_thread(
    conn: Connection, thread_id: UUID, pending_counts_s: float
) -> list[CodeState]:
    """The report's codes, locked, so two concurrent retries cannot both pass a count.

    ``works``: its verifier is committed; ``recent``: issued within ``pending_counts_s``."""
    rows = await conn.fetch(
        """SELECT verifier IS NOT NULL AS works, logged_in_at IS NOT NULL AS used,
                  issued_at > now() - make_interval(secs => $2) AS recent
           FROM reporter_codes WHERE thread_id = $1 FOR UPDATE""",
        thread_id,
        pending_counts_s,
    )
    return [CodeState(**r) for r in rows]


async def received_within(conn: Connection, thread_id: UUID, seconds: float) -> bool:
    value: bool | None = await conn.fetchval(
        "SELECT received_at > now() - make_interval(secs => $2) FROM threads WHERE id = $1",
        thread_id,
        seconds,
    )
    return bool(value)


async def insert_pending(
    conn: Connection, thread_id: UUID, lookup_hmac: bytes, issue_id: UUID
) -> bool:
    """Add a code with no verifier yet, beside any earlier ones. False on a lookup collision."""
    added: bool | None = await conn.fetchval(
        """INSERT INTO reporter_codes (thread_id, lookup_hmac, issue_id, verifier)
           VALUES ($1, $2, $3, NULL) ON CONFLICT (lookup_hmac) DO NOTHING RETURNING true""",
        thread_id,
        lookup_hmac,
        issue_id,
    )
    return bool(added)


async def store_verifier(conn: Connection, thread_id: UUID, issue_id: UUID, verifier: str) -> bool:
    """True once this issue's verifier is committed (by us or by an earlier, equivalent writer).

    False when the issue is gone (its thread was erased): nothing is ever overwritten.
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


async def by_lookup(conn: Connection, lookup_hmac: bytes) -> CodeLookup | None:
    row = await conn.fetchrow(
        "SELECT thread_id, issue_id, verifier FROM reporter_codes WHERE lookup_hmac = $1",
        lookup_hmac,
    )
    return None if row is None else CodeLookup(**row)


async def verifier_for_issue(conn: Connection, issue_id: UUID) -> str | None:
    value: str | None = await conn.fetchval(
        "SELECT verifier FROM reporter_codes WHERE issue_id = $1", issue_id
    )
    return value
