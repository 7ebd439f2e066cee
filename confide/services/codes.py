"""Issuing a reporter's code. The argon2id work runs on the ``hashing`` workers, or locally."""

from __future__ import annotations

from typing import Protocol
from uuid import UUID, uuid4

from confide import codes
from confide.db import Pool
from confide.errors import CodeNotIssued
from confide.settings import Settings
from confide.sql import codes as sql_codes


class VerifierStore(Protocol):
    """Computes argon2id(prehash) and commits it for (thread, issue); True once committed."""

    async def __call__(self, thread_id: UUID, issue_id: UUID, prehash: bytes) -> bool: ...


async def issue_code(
    pool: Pool, settings: Settings, thread_id: UUID, store_verifier: VerifierStore
) -> str:
    """Draw a fresh code for the thread, replacing any earlier one, and return it.

    Guarantee: the code is returned only after its verifier is committed, so a code shown to a
    reporter always works. Raises :class:`CodeNotIssued` otherwise; a retry issues a new code.
    """
    for _ in range(8):
        code = codes.generate()
        parts = codes.split(settings, code)
        issue_id = uuid4()
        async with pool.acquire() as conn:
            if await sql_codes.set_pending(conn, thread_id, parts.lookup_hmac, issue_id):
                break
    else:  # pragma: no cover - 8 lookup collisions in a row
        raise CodeNotIssued()
    if not await store_verifier(thread_id, issue_id, parts.prehash):
        raise CodeNotIssued()
    return code


async def commit_verifier(pool: Pool, thread_id: UUID, issue_id: UUID, verifier: str) -> bool:
    async with pool.acquire() as conn:
        return await sql_codes.store_verifier(conn, thread_id, issue_id, verifier)
