"""A staff member's sessions and personal access tokens (docs/staff-sign-in.md "Your
sessions", "Personal access tokens").

- The sessions page lists the account's live, fully signed-in sessions (never a half-signed-in
  one, never a token): when each started, when it was last used and how it signed in. No IP
  address and no user agent is kept, so none is shown.
- Ending a session deletes its row: that browser or API client is signed out at its next request.
- A personal access token is a staff session with a name, issued by ``confide tokens issue``:
  256 random bits shown once, kept only as its HMAC (like every session token), usable as a
  Bearer token on the staff API only, with no second factor, until its expiry (no idle timeout).
- Every end and every token issued or revoked is audited, without any token or HMAC.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from confide.context import Context
from confide.errors import ConfideError, FieldError, ValidationFailed
from confide.services import sessions
from confide.sql import audit as sql_audit
from confide.sql import sessions as sql_sessions
from confide.sql import staff as sql_staff
from confide.sql import staff_sessions as sql_staff_sessions
from confide.sql.staff_sessions import SessionRow, TokenRow

TOKEN_DAYS = 90  # `confide tokens issue` without --expires
TOKEN_MAX_DAYS = 366
TOKEN_NAME_MAX = 100


class TokenError(ConfideError):
    """A `confide tokens issue` mistake, with a message for the user."""


@dataclass(frozen=True)
class SessionsView:
    sessions: list[SessionRow]
    tokens: list[TokenRow]


@dataclass(frozen=True)
class IssuedToken:
    token: str  # shown once, never stored
    expires_at: datetime


async def overview(ctx: Context, staff_id: int, current: bytes) -> SessionsView:
    """The account's live sessions (``current``: this browser's) and unexpired tokens."""
    async with ctx.pool.acquire() as conn:
        found = await sql_staff_sessions.active_sessions(conn, staff_id, current)
        tokens = await sql_staff_sessions.tokens(conn, staff_id)
    return SessionsView(found, tokens)


def _public_id(value: str, field: str) -> UUID:
    try:
        return UUID(value.strip()[:40])
    except ValueError:
        raise ValidationFailed([FieldError(field, "That session was not recognised")]) from None


async def end_one(ctx: Context, staff_id: int, public_id: str) -> bool:
    """End one of the staff member's own sessions (this browser's too, if they choose it).
    False when it had ended already (another tab, or it expired)."""
    found = _public_id(public_id, "session")
    async with ctx.pool.acquire() as conn, conn.transaction():
        ended = await sql_staff_sessions.end_one(conn, staff_id, found)
        if ended:
            await sql_audit.record(
                conn, staff_id, None, "session_ended", {"by": "self", "scope": "one"}
            )
    return ended


async def end_others(ctx: Context, staff_id: int, current: bytes) -> int:
    """ "Sign out of all other sessions": every session but this one; tokens stay."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        count = await sql_sessions.delete_for_staff_except(conn, staff_id, current)
        await sql_audit.record(
            conn, staff_id, None, "session_ended", {"by": "self", "scope": "others", "count": count}
        )
    return count


async def end_all_for_account(ctx: Context, admin_id: int, *, email: str) -> tuple[int, int]:
    """An admin ends every session of an account and revokes its tokens (audited): the
    account is signed out everywhere at its next request. Returns (sessions, tokens)."""
    if not email.strip():
        raise ValidationFailed([FieldError("email", "Enter a staff email address")])
    async with ctx.pool.acquire() as conn, conn.transaction():
        account = await sql_staff.by_email(conn, email.strip())
        if account is None:
            raise ValidationFailed([FieldError("email", "No staff member has that address")])
        ended, tokens = await sql_staff_sessions.end_all(conn, account.id)
        await sql_audit.record(
            conn,
            admin_id,
            None,
            "session_ended",
            {
                "by": "admin",
                "scope": "all",
                "staff_id": account.id,
                "count": ended,
                "tokens_revoked": tokens,
            },
        )
    return ended, tokens


async def issue_token(ctx: Context, *, email: str, name: str, days: int) -> IssuedToken:
    """``confide tokens issue``: a personal access token for an enabled account, shown once.
    TokenError for an unknown or disabled account or a bad name or lifetime."""
    name = name.strip()
    if not name or len(name) > TOKEN_NAME_MAX or not name.isprintable():
        raise TokenError(f"--name must be 1 to {TOKEN_NAME_MAX} printable characters")
    if not 1 <= days <= TOKEN_MAX_DAYS:
        raise TokenError(f"--expires must be a number of days from 1 to {TOKEN_MAX_DAYS}")
    token = secrets.token_urlsafe(32)  # 256 bits
    async with ctx.pool.acquire() as conn, conn.transaction():
        account = await sql_staff.by_email(conn, email.strip())
        if account is None:
            raise TokenError(f"no account for {email}")
        if not account.active:
            raise TokenError(f"the account for {email} is disabled")
        public_id, expires_at = await sql_staff_sessions.insert_token(
            conn, sessions.token_hmac(ctx.settings, token), account.id, name, days
        )
        await sql_audit.record(
            conn,
            None,
            None,
            "token_issued",
            {
                "staff_id": account.id,
                "token_id": str(public_id),
                "name": name,
                "expires_at": expires_at.isoformat(),
                "by": "command",
            },
        )
    return IssuedToken(token, expires_at)


async def revoke_token(ctx: Context, staff_id: int, public_id: str) -> bool:
    """Revoke one of the staff member's own tokens (audited); False if it was gone already."""
    found = _public_id(public_id, "token")
    async with ctx.pool.acquire() as conn, conn.transaction():
        name = await sql_staff_sessions.revoke_token(conn, staff_id, found)
        if name is not None:
            await sql_audit.record(
                conn,
                staff_id,
                None,
                "token_revoked",
                {"token_id": str(found), "name": name, "by": "self"},
            )
    return name is not None
