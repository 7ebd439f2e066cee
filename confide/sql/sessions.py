"""SQL for server-side sessions (cookies and bearer tokens). Only token HMACs are stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from asyncpg import Connection, Record

from confide.domain import Role, SessionKind


@dataclass(frozen=True, slots=True)
class SessionTimes:
    created_at: datetime
    last_seen_at: datetime
    idle_seconds: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LiveSession:
    thread_id: UUID | None
    staff_id: int | None
    last_seen_at: datetime
    idle_seconds: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LiveStaffSession:
    """A live staff session with its staff member and their teams."""

    session: LiveSession
    staff_id: int
    email: str
    name: str
    role: Role
    active: bool
    team_ids: tuple[int, ...]


def _live(row: Record) -> LiveSession:
    return LiveSession(
        row["thread_id"],
        row["staff_id"],
        row["last_seen_at"],
        row["idle_seconds"],
        row["expires_at"],
    )


async def insert(
    conn: Connection,
    token_hmac: bytes,
    *,
    kind: SessionKind,
    thread_id: UUID | None,
    staff_id: int | None,
    idle_seconds: int,
    absolute_seconds: int,
) -> SessionTimes:
    row = await conn.fetchrow(
        """INSERT INTO sessions (token_hmac, kind, thread_id, staff_id, idle_seconds, expires_at)
           VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
           RETURNING created_at, last_seen_at, idle_seconds, expires_at""",
        token_hmac,
        kind,
        thread_id,
        staff_id,
        idle_seconds,
        absolute_seconds,
    )
    return SessionTimes(**row)


# A live session's idle clock is restarted at most once every TOUCH_EVERY_S seconds, not on
# every request: a busy session (a page, its API calls, several tabs) rewrote its one row on
# each, so its requests queued on that row's lock and a WAL flush apiece. The idle timeout is
# therefore exact to within TOUCH_EVERY_S (docs/security.md).
TOUCH_EVERY_S = 15

_LIVE = """WITH live AS (
               SELECT token_hmac, thread_id, staff_id, last_seen_at, idle_seconds, expires_at
               FROM sessions
               WHERE token_hmac = $1 AND kind = $2 AND expires_at > now()
                 AND last_seen_at + make_interval(secs => idle_seconds) > now()
           ), touched AS (
               UPDATE sessions s SET last_seen_at = now()
               FROM live WHERE s.token_hmac = live.token_hmac
                 AND s.last_seen_at < now() - make_interval(secs => $3)
               RETURNING s.last_seen_at
           )"""
_SESSION_COLUMNS = """live.thread_id, live.staff_id,
           coalesce((SELECT max(last_seen_at) FROM touched), live.last_seen_at) AS last_seen_at,
           live.idle_seconds, live.expires_at"""


async def touch(conn: Connection, token_hmac: bytes, kind: SessionKind) -> LiveSession | None:
    """The live session for this token, its idle clock restarted; None if expired or unknown."""
    row = await conn.fetchrow(
        f"{_LIVE} SELECT {_SESSION_COLUMNS} FROM live", token_hmac, kind, TOUCH_EVERY_S
    )
    return None if row is None else _live(row)


async def touch_staff(conn: Connection, token_hmac: bytes) -> LiveStaffSession | None:
    """``touch`` for a staff session, with its staff member and their teams: every staff page
    needs all three, in one round trip."""
    row = await conn.fetchrow(
        f"""{_LIVE}
           SELECT {_SESSION_COLUMNS}, st.email, st.name, st.role, st.active,
                  ARRAY(SELECT team_id FROM staff_teams WHERE staff_id = st.id ORDER BY team_id)
                      AS team_ids
           FROM live JOIN staff st ON st.id = live.staff_id""",
        token_hmac,
        SessionKind.STAFF,
        TOUCH_EVERY_S,
    )
    if row is None:
        return None
    return LiveStaffSession(
        _live(row),
        row["staff_id"],
        row["email"],
        row["name"],
        Role(row["role"]),
        row["active"],
        tuple(row["team_ids"]),
    )


async def delete(conn: Connection, token_hmac: bytes) -> None:
    await conn.execute("DELETE FROM sessions WHERE token_hmac = $1", token_hmac)


async def delete_for_staff(conn: Connection, staff_id: int) -> None:
    await conn.execute("DELETE FROM sessions WHERE staff_id = $1", staff_id)


async def delete_for_staff_except(conn: Connection, staff_id: int, keep_hmac: bytes) -> None:
    await conn.execute(
        "DELETE FROM sessions WHERE staff_id = $1 AND token_hmac <> $2", staff_id, keep_hmac
    )


async def purge_expired(conn: Connection) -> int:
    result: str = await conn.execute(
        """DELETE FROM sessions WHERE expires_at < now()
              OR last_seen_at + make_interval(secs => idle_seconds) < now()"""
    )
    return int(result.split()[-1])
