"""Reporter login with the code (CONTRACTS §2).

Order of answers: malformed (422), then limited (429), then wrong (401). An unknown lookup id is
rejected with no argon2 work; a known one costs exactly one verification.
"""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from confide import codes
from confide.context import Context
from confide.domain import SessionKind
from confide.errors import CodeNotRecognised
from confide.services import sessions
from confide.sql import codes as sql_codes


class LoginGuard(Protocol):
    def per_client(self) -> None:
        """Raise RateLimited when this client has tried too often."""

    def argon2_budget(self) -> None:
        """Raise RateLimited when the global budget of verifications is spent."""


class CodeCheck(Protocol):
    """One argon2id verification of ``prehash`` against the code ``issue_id``'s verifier."""

    async def __call__(self, issue_id: UUID, verifier: str, prehash: bytes) -> bool: ...


async def log_in(
    ctx: Context, typed: str, guard: LoginGuard, check: CodeCheck
) -> tuple[UUID, sessions.NewSession]:
    code = codes.normalise(typed)  # CodeMalformed -> 422
    guard.per_client()  # -> 429
    parts = codes.split(ctx.settings, code)
    async with ctx.pool.acquire() as conn:
        row = await sql_codes.by_lookup(conn, parts.lookup_hmac)
    if row is None or row.verifier is None:
        raise CodeNotRecognised()  # no argon2 work for an unknown lookup id
    guard.argon2_budget()
    if not await check(row.issue_id, row.verifier, parts.prehash):
        raise CodeNotRecognised()
    # From the first login on, a retried submission gets no additional code (CONTRACTS §2): the
    # session's insert marks it.
    session = await sessions.create(
        ctx, SessionKind.REPORTER, thread_id=row.thread_id, first_login_of=row.issue_id
    )
    return row.thread_id, session
