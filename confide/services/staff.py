"""Staff accounts: created by `confide staff add`, passwords hashed with argon2id.

Sign-in is limited per (client, account), per client and by a global budget (the web's
``StaffLoginLimits``), never per account alone, so nobody can lock a chosen account. Every
argon2 call of the web runs in its bounded local executor, never on the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import threading
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from confide import domain
from confide.context import Context
from confide.crypto import keyed_hash
from confide.domain import Role, SessionKind
from confide.errors import ConfideError, FieldError, ValidationFailed
from confide.models import email_field
from confide.services import sessions
from confide.settings import Settings
from confide.sql import org as sql_org
from confide.sql import sessions as sql_sessions
from confide.sql import staff as sql_staff

ROLES: tuple[Role, ...] = tuple(Role)
# The roles that read threads (docs/staff.md "Who sees what"). Ops reads none and belongs to no
# team: services.threads.visibility refuses it, and no list or mail names it.
THREAD_READER_ROLES = domain.THREAD_READER_ROLES
TEAM_ROLES = domain.TEAM_ROLES  # `staff add` requires --team for these
PASSWORD_MIN = 12
PASSWORD_MAX = 256
RESET_VALID = timedelta(hours=24)


class StaffLoginFailed(ConfideError):
    """Wrong e-mail or password (never says which)."""


class StaffError(ConfideError):
    """A command-line or admin mistake, with a message for the user."""


@dataclass(frozen=True)
class StaffLogin:
    staff_id: int
    session: sessions.NewSession
    role: str = "caseworker"


def hasher(settings: Settings) -> PasswordHasher:
    return PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )


def check_password_rules(password: str, field: str = "password") -> None:
    if len(password) < PASSWORD_MIN:
        raise ValidationFailed([FieldError(field, f"Use at least {PASSWORD_MIN} characters")])
    if len(password) > PASSWORD_MAX:
        raise ValidationFailed([FieldError(field, f"Use at most {PASSWORD_MAX} characters")])


def _verify(ph: PasswordHasher, stored: str | None, password: str) -> bool:
    """Exactly one argon2id verification, against the dummy hash when there is no account.

    Runs in the bounded local executor, never on the event loop."""
    try:
        return ph.verify(stored or _dummy_hash(ph), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


_DUMMY_LOCK = threading.Lock()


@functools.cache
def _dummy_hash_for(time_cost: int, memory_cost: int, parallelism: int) -> str:
    ph = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
    return ph.hash(secrets.token_urlsafe(16))


def _dummy_hash(ph: PasswordHasher) -> str:
    """A hash of a random password with the current parameters, made once per process, so an
    unknown address costs one verification like a known one (and no hash of its own)."""
    with _DUMMY_LOCK:  # two first logins at once must not both hash it
        return _dummy_hash_for(ph.time_cost, ph.memory_cost, ph.parallelism)


def _hash(ph: PasswordHasher, password: str) -> str:
    return ph.hash(password)


def login_key(email: str) -> str:
    """The e-mail address as the limits key it: as the account lookup matches it, or wider."""
    return email.strip().casefold()


class LoginGuard(Protocol):
    def admit(self, account: str) -> None:
        """Raise RateLimited when this client, or this client on this account, tried too often,
        or when the global budget is spent and this client failed recently."""

    def failed(self) -> None:
        """The attempt failed: this client now spends the global budget for a while."""

    def succeeded(self) -> None:
        """The attempt succeeded: it gives back what it took."""


async def log_in(
    ctx: Context, executor: Executor, guard: LoginGuard, email: str, password: str
) -> StaffLogin:
    """Sign a staff member in by password; StaffLoginFailed (never says why) or RateLimited.

    An unknown address, a disabled account and a wrong password get the same answer, the same
    limits and one argon2id verification each, in ``executor`` (the bounded local executor)."""
    guard.admit(login_key(email))  # 429 before any work
    ph = hasher(ctx.settings)
    async with ctx.pool.acquire() as conn:
        usable = len(email) <= 254 and email.isprintable()
        row = await sql_staff.by_email(conn, email.strip()) if usable else None
    loop = asyncio.get_running_loop()
    stored = row.password_hash if row is not None else None
    ok = await loop.run_in_executor(executor, _verify, ph, stored, password[:PASSWORD_MAX])
    if row is None or row.password_hash is None or not ok or not row.active:
        guard.failed()
        raise StaffLoginFailed()
    guard.succeeded()
    if ph.check_needs_rehash(row.password_hash):
        new_hash = await loop.run_in_executor(executor, _hash, ph, password)
        async with ctx.pool.acquire() as conn:
            await sql_staff.set_password(conn, row.id, new_hash)
    session = await sessions.create(ctx, SessionKind.STAFF, staff_id=row.id)
    return StaffLogin(row.id, session, row.role)


async def add(
    ctx: Context, *, email: str, name: str, team: str | None, role: str, password: str
) -> int:
    """A new account; case workers and managers join ``team``, ops accounts join none."""
    errors: list[FieldError] = []
    normal = email_field(errors, "email", email)
    if errors or not normal:
        raise StaffError("--email is not a valid e-mail address")
    if role not in ROLES:
        raise StaffError(f"--role must be one of {', '.join(ROLES)}")
    if role not in THREAD_READER_ROLES and team is not None:
        raise StaffError(f"--team is refused for --role {role} ({role} belong to no team)")
    if role in TEAM_ROLES and team is None:
        raise StaffError(f"--team is required for --role {role}")
    if not name.strip():
        raise StaffError("--name must not be empty")
    try:
        check_password_rules(password)
    except ValidationFailed as exc:
        raise StaffError(f"password: {exc.errors[0].message}") from None
    password_hash = hasher(ctx.settings).hash(password)
    async with ctx.pool.acquire() as conn, conn.transaction():
        team_id = await sql_org.team_id(conn, team) if team is not None else None
        if team is not None and team_id is None:
            raise StaffError(f"no team {team!r} (see `confide teams list`)")
        if await sql_staff.by_email(conn, normal) is not None:
            raise StaffError(f"{normal} already has an account")
        staff_id = await sql_staff.insert(conn, normal, name.strip(), Role(role), password_hash)
        if team_id is not None:
            await sql_staff.add_to_team(conn, staff_id, team_id)
    return staff_id


async def disable(ctx: Context, email: str) -> None:
    async with ctx.pool.acquire() as conn, conn.transaction():
        staff_id = await sql_staff.set_active(conn, email, False)
        if staff_id is None:
            raise StaffError(f"no account for {email}")
        await sql_sessions.delete_for_staff(conn, staff_id)


async def start_reset(ctx: Context, email: str) -> str:
    """A one-time set-password token, valid 24 h; only its HMAC is stored."""
    token = secrets.token_urlsafe(32)
    async with ctx.pool.acquire() as conn:
        staff_id = await sql_staff.set_reset_token(
            conn,
            email,
            keyed_hash(ctx.settings.session_key, "reset", token),
            datetime.now(UTC) + RESET_VALID,
        )
    if staff_id is None:
        raise StaffError(f"no account for {email}")
    return token


async def finish_reset(ctx: Context, executor: Executor, token: str, password: str) -> None:
    """Set the password from a reset link; ends every session of the account."""
    check_password_rules(password)
    loop = asyncio.get_running_loop()
    password_hash = await loop.run_in_executor(executor, _hash, hasher(ctx.settings), password)
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await sql_staff.by_reset_token(
            conn, keyed_hash(ctx.settings.session_key, "reset", token)
        )
        if row is None:
            raise ValidationFailed(
                [FieldError("password", "This link has expired or was already used")]
            )
        await sql_staff.set_password(conn, row.id, password_hash)
        await sql_sessions.delete_for_staff(conn, row.id)


async def change_password(
    ctx: Context, executor: Executor, staff_id: int, current: str, new: str, *, keep_session: bytes
) -> None:
    """Change the password, checked against the current one; ends every other session of the
    account (browsers and API tokens alike) and keeps ``keep_session``, the one that asked."""
    empty = [
        FieldError(name, message)
        for name, value, message in (
            ("current", current, "Enter your current password"),
            ("new", new, "Enter a new password"),
        )
        if not value
    ]
    if empty:  # asked for, rather than checked: an empty password is never "not right"
        raise ValidationFailed(empty)
    ph = hasher(ctx.settings)
    async with ctx.pool.acquire() as conn:
        row = await sql_staff.by_id(conn, staff_id)
    assert row is not None
    loop = asyncio.get_running_loop()
    stored = row.password_hash
    if not await loop.run_in_executor(executor, _verify, ph, stored, current[:PASSWORD_MAX]):
        raise ValidationFailed([FieldError("current", "Your current password is not right")])
    check_password_rules(new, "new")
    new_hash = await loop.run_in_executor(executor, _hash, ph, new)
    async with ctx.pool.acquire() as conn, conn.transaction():
        await sql_staff.set_password(conn, staff_id, new_hash)
        await sql_sessions.delete_for_staff_except(conn, staff_id, keep_session)
