"""Issuing a reporter's code. The argon2id work runs on the ``hashing`` workers, or locally."""

from __future__ import annotations

from typing import Protocol
from uuid import UUID, uuid4

from asyncpg import Connection

from confide import codes
from confide.context import Context
from confide.errors import CodeNotIssued
from confide.sql import codes as sql_codes


class VerifierStore(Protocol):
    """Computes argon2id(prehash) and commits it for (thread, issue); True once committed."""

    async def __call__(self, thread_id: UUID, issue_id: UUID, prehash: bytes) -> bool: ...


MAX_CODES = 3
"""Codes a report may have at most: the first and two additional ones (CONTRACTS §2)."""
ADDITIONAL_WITHIN_S = 600.0
"""An additional code only within 10 minutes of the first submission (CONTRACTS §2)."""
PENDING_COUNTS_S = 60.0
"""A code still waiting for its verifier counts towards the limit for this long."""


async def issue_code(
    ctx: Context, thread_id: UUID, store_verifier: VerifierStore, *, additional: bool = False
) -> str | None:
    """Draw a code for the thread, beside any earlier ones, and return it once it works.

    Nothing here ever stops an issued code from working: codes are only ever added. The first
    code is issued whenever the report has no working code yet. An ``additional`` one (a retried
    submission, CONTRACTS §2 "Issuing") only while the report was received under 10 minutes
    ago, no one has logged in with any of its codes, and it has fewer than 3; otherwise None.

    Guarantee: the code is returned only after its verifier is committed, so a code shown to a
    reporter always works. Raises :class:`CodeNotIssued` otherwise.
    """
    for _ in range(8):
        code = codes.generate()
        parts = codes.split(ctx.settings, code)
        issue_id = uuid4()
        async with ctx.pool.acquire() as conn, conn.transaction():
            rows = await sql_codes.lock_for_thread(conn, thread_id, PENDING_COUNTS_S)
            if additional and not await _may_add(conn, thread_id, rows):
                return None
            if await sql_codes.insert_pending(conn, thread_id, parts.lookup_hmac, issue_id):
                break
    else:  # pragma: no cover - 8 lookup collisions in a row
        raise CodeNotIssued()
    if not await store_verifier(thread_id, issue_id, parts.prehash):
        raise CodeNotIssued()
    return code


async def _may_add(conn: Connection, thread_id: UUID, rows: list[sql_codes.CodeState]) -> bool:
    if sum(1 for r in rows if r.works or r.recent) >= MAX_CODES:
        return False
    if not any(r.works for r in rows):
        return True  # no code works yet (the first was never shown): this one is the first
    if any(r.used for r in rows):
        return False
    return await sql_codes.received_within(conn, thread_id, ADDITIONAL_WITHIN_S)


async def commit_verifier(ctx: Context, thread_id: UUID, issue_id: UUID, verifier: str) -> bool:
    async with ctx.pool.acquire() as conn:
        return await sql_codes.store_verifier(conn, thread_id, issue_id, verifier)
