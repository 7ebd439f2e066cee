"""Server-side sessions for reporters and staff; cookies and bearer tokens share them.

Tokens are 256 random bits; PostgreSQL keeps only their HMAC. A session has an idle timeout and an
absolute lifetime. Logging out deletes it.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from asyncpg import Connection

from confide.context import Context
from confide.crypto import keyed_hash
from confide.domain import SessionKind
from confide.services import sign_in_notices
from confide.settings import Settings
from confide.sql import sessions as sql_sessions
from confide.sql.sessions import LiveSession

# A half-signed-in staff session (the password was right, a second step due), for the web.
from confide.sql.sessions import PendingSession as PendingSession


@dataclass(frozen=True)
class NewSession:
    token: str
    expires_at: datetime
    idle_until: datetime


@dataclass(frozen=True)
class ActiveSession:
    token_hmac: bytes
    thread_id: UUID | None
    staff_id: int | None
    idle_until: datetime
    expires_at: datetime
    # How it signed in, e.g. ("password", "totp"); and whether the account has a second factor.
    methods: tuple[str, ...] = ()
    has_second_factor: bool = False
    # A personal access token (``confide tokens issue``): the staff API only, never a page.
    personal_token: bool = False

    @property
    def logout_at(self) -> datetime:
        return min(self.idle_until, self.expires_at)


def token_hmac(settings: Settings, token: str) -> bytes:
    return keyed_hash(settings.session_key, "session", token)


def presented_hmac(settings: Settings, token: str) -> bytes | None:
    """The HMAC to look a presented token up by; None for a token no session can have."""
    if not token or len(token) > 128 or not token.isascii():  # ours are URL-safe base64
        return None
    return token_hmac(settings, token)


def csrf_token(settings: Settings, session_hmac: bytes) -> str:
    """Bound to the session; cookie-authenticated forms must carry it."""
    mac = keyed_hash(settings.session_key, "csrf", session_hmac)
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def lifetimes(settings: Settings, kind: SessionKind) -> tuple[int, int]:
    if kind is SessionKind.REPORTER:
        return settings.reporter_idle_minutes * 60, settings.reporter_max_hours * 3600
    return settings.staff_idle_minutes * 60, settings.staff_max_hours * 3600


# A half-signed-in session (the password was right, the second step is due) lasts this long.
PENDING_SECONDS = 15 * 60


async def create(
    ctx: Context,
    kind: SessionKind,
    *,
    thread_id: UUID | None = None,
    staff_id: int | None = None,
    methods: tuple[str, ...] = (),
    pending_step: str | None = None,
    first_login_of: UUID | None = None,
) -> NewSession:
    """A brand-new session id on every login (never reuses one). ``methods`` records how a
    staff session signed in; ``pending_step`` makes a half-signed-in one (second_factor,
    enrol) that no staff page or API call accepts; ``first_login_of`` is the reporter code
    that opened it, marked as logged in by the same statement."""
    token = secrets.token_urlsafe(32)
    idle, absolute = lifetimes(ctx.settings, kind)
    if pending_step is not None:
        idle = absolute = min(absolute, PENDING_SECONDS)
    # A full staff sign-in mails its staff member (sign_in_notices), in the same transaction.
    notify = kind is SessionKind.STAFF and pending_step is None and staff_id is not None
    mac = token_hmac(ctx.settings, token)

    async def insert(conn: Connection) -> sql_sessions.SessionTimes:
        return await sql_sessions.insert(
            conn,
            mac,
            kind=kind,
            thread_id=thread_id,
            staff_id=staff_id,
            idle_seconds=idle,
            absolute_seconds=absolute,
            methods=methods,
            pending_step=pending_step,
            first_login_of=first_login_of,
        )

    async with ctx.pool.acquire() as conn:
        if not notify or staff_id is None:
            row = await insert(conn)  # one statement: no transaction round trips of its own
        else:
            async with conn.transaction():
                row = await insert(conn)
                if row.public_id is not None:
                    await sign_in_notices.queue_new_sign_in(
                        conn, staff_id, row.public_id, methods, row.created_at
                    )
    if notify:
        ctx.after_commit()
    return NewSession(token, row.expires_at, row.last_seen_at + timedelta(seconds=idle))


async def resume(ctx: Context, kind: SessionKind, token: str) -> ActiveSession | None:
    mac = presented_hmac(ctx.settings, token)
    if mac is None:
        return None
    async with ctx.pool.acquire() as conn:
        row = await sql_sessions.touch(conn, mac, kind)
    return None if row is None else active_from_row(mac, row)


def active_from_row(mac: bytes, row: LiveSession) -> ActiveSession:
    return ActiveSession(
        mac,
        row.thread_id,
        row.staff_id,
        row.last_seen_at + timedelta(seconds=row.idle_seconds),
        row.expires_at,
    )


async def end(ctx: Context, session_hmac: bytes) -> None:
    async with ctx.pool.acquire() as conn:
        await sql_sessions.delete(conn, session_hmac)
