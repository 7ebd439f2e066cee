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
    public_id: UUID | None = None  # names the session on the sessions page (never its HMAC)


@dataclass(frozen=True, slots=True)
class LiveSession:
    thread_id: UUID | None
    staff_id: int | None
    last_seen_at: datetime
    idle_seconds: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LiveStaffSession:
    """A live staff session with its staff member and their teams, how it signed in, and
    whether the account has a second factor (the enrolment rule needs it on every request)."""

    session: LiveSession
    staff_id: int
    email: str
    name: str
    role: Role
    active: bool
    team_ids: tuple[int, ...]
    methods: tuple[str, ...] = ()
    has_second_factor: bool = False
    # A personal access token (``confide tokens issue``): the staff API only, never a page.
    personal_token: bool = False


@dataclass(frozen=True, slots=True)
class PendingSession:
    """A half-signed-in staff session: the password was right, a second step is due."""

    staff_id: int
    role: Role
    step: str  # 'second_factor' or 'enrol'
    methods: tuple[str, ...]


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
    methods: tuple[str, ...] = (),
    pending_step: str | None = None,
    first_login_of: UUID | None = None,
) -> SessionTimes:
    """One new session row. ``first_login_of`` names the reporter code just used: the same
    statement marks its first login (from then on a retried submission gets no additional code,
    CONTRACTS §2), one round trip for the whole login."""
    row = await conn.fetchrow(
        """WITH first_login AS (
               UPDATE reporter_codes SET logged_in_at = now()
               WHERE $9::uuid IS NOT NULL AND issue_id = $9 AND logged_in_at IS NULL
           )
           INSERT INTO sessions (token_hmac, kind, thread_id, staff_id, idle_seconds, expires_at,
                                 methods, pending_step)
           VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), $7, $8)
           RETURNING created_at, last_seen_at, idle_seconds, expires_at, public_id""",
        token_hmac,
        kind,
        thread_id,
        staff_id,
        idle_seconds,
        absolute_seconds,
        list(methods),
        pending_step,
        first_login_of,
    )
    return SessionTimes(**row)


# A live session's idle clock is restarted at most once every TOUCH_EVERY_S seconds, not on
# every request: a busy session (a page, its API calls, several tabs) rewrote its one row on
# each, so its requests queued on that row's lock and a WAL flush apiece. The idle timeout is
# therefore exact to within TOUCH_EVERY_S (docs/security.md).
TOUCH_EVERY_S = 15

_LIVE = """WITH live AS (
               SELECT token_hmac, thread_id, staff_id, last_seen_at, idle_seconds, expires_at,
                      methods, token_name
               FROM sessions
               WHERE token_hmac = $1 AND kind = $2 AND expires_at > now()
                 AND last_seen_at + make_interval(secs => idle_seconds) > now()
                 -- a half-signed-in session opens nothing (touch_pending alone finds it)
                 AND pending_step IS NULL
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
                      AS team_ids,
                  live.methods,
                  (EXISTS (SELECT 1 FROM staff_totp WHERE staff_id = st.id
                           AND confirmed_at IS NOT NULL)
                   OR EXISTS (SELECT 1 FROM staff_passkeys WHERE staff_id = st.id))
                      AS has_second_factor,
                  live.token_name IS NOT NULL AS personal_token
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
        tuple(row["methods"]),
        row["has_second_factor"],
        row["personal_token"],
    )


async def touch_pending(conn: Connection, token_hmac: bytes) -> PendingSession | None:
    """The live half-signed-in session for this token, of an active account; None otherwise.
    A session sent to enrolment whose account has a factor by now (its owner enrolled in another
    browser) is at the second step instead: whoever holds only the password must pass it."""
    row = await conn.fetchrow(
        """SELECT s.staff_id, st.role, s.methods,
                  CASE WHEN s.pending_step = 'enrol'
                        AND (EXISTS (SELECT 1 FROM staff_totp t
                                     WHERE t.staff_id = s.staff_id AND t.confirmed_at IS NOT NULL)
                             OR EXISTS (SELECT 1 FROM staff_passkeys p
                                        WHERE p.staff_id = s.staff_id))
                       THEN 'second_factor' ELSE s.pending_step END AS pending_step
           FROM sessions s JOIN staff st ON st.id = s.staff_id
           WHERE s.token_hmac = $1 AND s.kind = 'staff' AND s.pending_step IS NOT NULL
             AND s.expires_at > now()
             AND s.last_seen_at + make_interval(secs => s.idle_seconds) > now() AND st.active""",
        token_hmac,
    )
    if row is None:
        return None
    return PendingSession(
        row["staff_id"], Role(row["role"]), row["pending_step"], tuple(row["methods"])
    )


async def delete_pending(conn: Connection, token_hmac: bytes) -> bool:
    """End a half-signed-in session; False if it was gone already (a second tab finished)."""
    done = await conn.fetchval(
        """DELETE FROM sessions WHERE token_hmac = $1 AND pending_step IS NOT NULL
           RETURNING true""",
        token_hmac,
    )
    return bool(done)


async def delete(conn: Connection, token_hmac: bytes) -> None:
    await conn.execute("DELETE FROM sessions WHERE token_hmac = $1", token_hmac)


async def delete_for_staff(conn: Connection, staff_id: int) -> None:
    await conn.execute("DELETE FROM sessions WHERE staff_id = $1", staff_id)


async def delete_for_staff_except(conn: Connection, staff_id: int, keep_hmac: bytes) -> int:
    """End every other session of the account, browsers and API sign-ins; its personal access
    tokens stay (they are revoked one by one on the sessions page, or by an admin)."""
    result: str = await conn.execute(
        """DELETE FROM sessions WHERE staff_id = $1 AND token_hmac <> $2
             AND token_name IS NULL""",
        staff_id,
        keep_hmac,
    )
    return int(result.split()[-1])


async def purge_expired(conn: Connection) -> int:
    result: str = await conn.execute(
        """DELETE FROM sessions WHERE expires_at < now()
              OR last_seen_at + make_interval(secs => idle_seconds) < now()"""
    )
    return int(result.split()[-1])
