"""SQL for the "Your sessions" page and personal access tokens (docs/staff-sign-in.md).

A session is named by its ``public_id`` here, never by its token's HMAC. Every statement is
scoped to the staff member whose sessions they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from asyncpg import Connection

from confide.domain import SessionKind
from confide.sql.sessions import TOUCH_EVERY_S

# Live, fully signed-in browser or API sessions: never a half-signed-in one, never a token.
_ACTIVE = """staff_id = $1 AND kind = 'staff' AND pending_step IS NULL AND token_name IS NULL
             AND expires_at > now()
             AND last_seen_at + make_interval(secs => idle_seconds) > now()"""


@dataclass(frozen=True, slots=True)
class SessionRow:
    public_id: UUID
    created_at: datetime
    last_seen_at: datetime
    methods: tuple[str, ...]
    current: bool


@dataclass(frozen=True, slots=True)
class TokenRow:
    public_id: UUID
    name: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None  # None: never used since it was issued


async def active_sessions(conn: Connection, staff_id: int, current: bytes) -> list[SessionRow]:
    rows = await conn.fetch(
        f"""SELECT public_id, created_at, last_seen_at, methods, token_hmac = $2 AS current
            FROM sessions WHERE {_ACTIVE}
            ORDER BY token_hmac = $2 DESC, last_seen_at DESC""",
        staff_id,
        current,
    )
    return [
        SessionRow(r["public_id"], r["created_at"], r["last_seen_at"], tuple(r["methods"]), r[4])
        for r in rows
    ]


async def end_one(conn: Connection, staff_id: int, public_id: UUID) -> bool:
    """End one of the account's sessions (not a token); False if it was gone already."""
    done = await conn.fetchval(
        """DELETE FROM sessions WHERE staff_id = $1 AND public_id = $2 AND token_name IS NULL
           RETURNING true""",
        staff_id,
        public_id,
    )
    return bool(done)


async def end_all(conn: Connection, staff_id: int) -> tuple[int, int]:
    """End every session of the account and revoke its tokens: (sessions, tokens) ended."""
    rows = await conn.fetch(
        "DELETE FROM sessions WHERE staff_id = $1 RETURNING token_name IS NOT NULL AS token",
        staff_id,
    )
    tokens = sum(1 for r in rows if r["token"])
    return len(rows) - tokens, tokens


async def insert_token(
    conn: Connection, token_hmac: bytes, staff_id: int, name: str, days: int
) -> tuple[UUID, datetime]:
    """A personal access token: no idle timeout (its idle time is its whole lifetime). Its
    last_seen_at starts just before TOUCH_EVERY_S ago, so that its first use is recorded."""
    row = await conn.fetchrow(
        """INSERT INTO sessions (token_hmac, kind, staff_id, idle_seconds, expires_at, methods,
                                 token_name, last_seen_at)
           VALUES ($1, $2, $3, $4 * 86400 + $6 + 1, now() + make_interval(days => $4),
                   '{personal_access_token}', $5, now() - make_interval(secs => $6 + 1))
           RETURNING public_id, expires_at""",
        token_hmac,
        SessionKind.STAFF,
        staff_id,
        days,
        name,
        TOUCH_EVERY_S,
    )
    return row["public_id"], row["expires_at"]


async def tokens(conn: Connection, staff_id: int) -> list[TokenRow]:
    """The account's unexpired tokens, newest first."""
    rows = await conn.fetch(
        """SELECT public_id, token_name, created_at, expires_at,
                  CASE WHEN last_seen_at >= created_at THEN last_seen_at END AS last_used_at
           FROM sessions
           WHERE staff_id = $1 AND token_name IS NOT NULL AND expires_at > now()
           ORDER BY created_at DESC""",
        staff_id,
    )
    return [TokenRow(*r) for r in rows]


async def revoke_token(conn: Connection, staff_id: int, public_id: UUID) -> str | None:
    """Revoke one of the account's tokens: its name, or None if it was gone already."""
    name: str | None = await conn.fetchval(
        """DELETE FROM sessions WHERE staff_id = $1 AND public_id = $2 AND token_name IS NOT NULL
           RETURNING token_name""",
        staff_id,
        public_id,
    )
    return name
