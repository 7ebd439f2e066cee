"""Staff accounts: created by `confide staff add`, passwords hashed with argon2id.

Login failures slow the account down progressively (1 s, 2 s, 4 s … up to 15 minutes between
attempts after the third failure) and never lock it permanently.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from confide.crypto import keyed_hash
from confide.db import Pool
from confide.errors import ConfideError, FieldError, RateLimited, ValidationFailed
from confide.services import sessions
from confide.services.validation import email_field
from confide.settings import Settings
from confide.sql import org as sql_org
from confide.sql import sessions as sql_sessions
from confide.sql import staff as sql_staff

ROLES = ("caseworker", "manager", "admin", "ops")
# The roles that read threads (docs/staff.md "Who sees what"). Ops reads none and belongs to no
# team: services.threads.visibility refuses it, and no list or mail names it.
THREAD_READER_ROLES = ("caseworker", "manager", "admin")
TEAM_ROLES = ("caseworker", "manager")  # `staff add` requires --team for these
PASSWORD_MIN = 12
PASSWORD_MAX = 256
FREE_FAILURES = 3
MAX_DELAY_S = 900
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
    try:
        return stored is not None and ph.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


_DUMMY: dict[int, str] = {}


async def log_in(pool: Pool, settings: Settings, email: str, password: str) -> StaffLogin:
    ph = hasher(settings)
    loop = asyncio.get_running_loop()
    async with pool.acquire() as conn:
        usable = len(email) <= 254 and email.isprintable()
        row = await sql_staff.by_email(conn, email.strip()) if usable else None
    if row is not None and row["failed_logins"] >= FREE_FAILURES and row["last_failed_at"]:
        delay = min(2 ** (row["failed_logins"] - FREE_FAILURES), MAX_DELAY_S)
        wait = row["last_failed_at"] + timedelta(seconds=delay) - datetime.now(UTC)
        if wait.total_seconds() > 0:
            raise RateLimited(int(wait.total_seconds()) + 1)
    if row is None:
        # Spend the same argon2 work for an unknown address, so timing does not tell.
        dummy = _DUMMY.setdefault(id(settings), ph.hash(secrets.token_urlsafe(16)))
        await loop.run_in_executor(None, _verify, ph, dummy, password[:PASSWORD_MAX])
        raise StaffLoginFailed()
    ok = await loop.run_in_executor(
        None, _verify, ph, row["password_hash"], password[:PASSWORD_MAX]
    )
    async with pool.acquire() as conn:
        if not ok or not row["active"]:
            await sql_staff.record_failure(conn, row["id"])
            raise StaffLoginFailed()
        await sql_staff.clear_failures(conn, row["id"])
        if ph.check_needs_rehash(row["password_hash"]):
            await sql_staff.set_password(conn, row["id"], ph.hash(password))
    session = await sessions.create(pool, settings, "staff", staff_id=row["id"])
    return StaffLogin(row["id"], session, row["role"])


async def add(
    pool: Pool,
    settings: Settings,
    *,
    email: str,
    name: str,
    team: str | None,
    role: str,
    password: str,
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
    password_hash = hasher(settings).hash(password)
    async with pool.acquire() as conn, conn.transaction():
        team_id = await sql_org.team_id(conn, team) if team is not None else None
        if team is not None and team_id is None:
            raise StaffError(f"no team {team!r} (see `confide teams list`)")
        if await sql_staff.by_email(conn, normal) is not None:
            raise StaffError(f"{normal} already has an account")
        staff_id = await sql_staff.insert(conn, normal, name.strip(), role, password_hash)
        if team_id is not None:
            await sql_staff.add_to_team(conn, staff_id, team_id)
    return staff_id


async def disable(pool: Pool, email: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        staff_id = await sql_staff.set_active(conn, email, False)
        if staff_id is None:
            raise StaffError(f"no account for {email}")
        await sql_sessions.delete_for_staff(conn, staff_id)


async def start_reset(pool: Pool, settings: Settings, email: str) -> str:
    """A one-time set-password token, valid 24 h; only its HMAC is stored."""
    token = secrets.token_urlsafe(32)
    async with pool.acquire() as conn:
        staff_id = await sql_staff.set_reset_token(
            conn,
            email,
            keyed_hash(settings.session_key, "reset", token),
            datetime.now(UTC) + RESET_VALID,
        )
    if staff_id is None:
        raise StaffError(f"no account for {email}")
    return token


async def finish_reset(pool: Pool, settings: Settings, token: str, password: str) -> None:
    check_password_rules(password)
    password_hash = hasher(settings).hash(password)
    async with pool.acquire() as conn, conn.transaction():
        row = await sql_staff.by_reset_token(conn, keyed_hash(settings.session_key, "reset", token))
        if row is None:
            raise ValidationFailed(
                [FieldError("password", "This link has expired or was already used")]
            )
        await sql_staff.set_password(conn, row["id"], password_hash)
        await sql_sessions.delete_for_staff(conn, row["id"])


async def change_password(
    pool: Pool, settings: Settings, staff_id: int, current: str, new: str
) -> None:
    ph = hasher(settings)
    async with pool.acquire() as conn:
        row = await sql_staff.by_id(conn, staff_id)
    assert row is not None
    loop = asyncio.get_running_loop()
    if not await loop.run_in_executor(None, _verify, ph, row["password_hash"], current):
        raise ValidationFailed([FieldError("current", "Your current password is not right")])
    check_password_rules(new, "new")
    async with pool.acquire() as conn:
        await sql_staff.set_password(conn, staff_id, ph.hash(new))
