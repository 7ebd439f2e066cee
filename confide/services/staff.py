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
from confide.services import passkeys, second_factor, sessions
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


class PasswordSignInDisabled(ConfideError):
    """The organisation signs its staff in through single sign-on only (``[sso]
    password_sign_in = false``): no password is checked (CONTRACTS §3)."""


class SignInExpired(ConfideError):
    """The half-signed-in session is gone (expired, finished in another tab): start again."""


@dataclass(frozen=True)
class StaffLogin:
    """A sign-in: a full session, or (``pending_step`` set) a half-signed-in one whose second
    step (``second_factor`` or ``enrol``) is still due."""

    staff_id: int
    session: sessions.NewSession
    role: str = "caseworker"
    pending_step: str | None = None


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


async def _password_step(
    ctx: Context, executor: Executor, guard: LoginGuard, email: str, password: str
) -> sql_staff.Account:
    """The account whose password this is; StaffLoginFailed (never says why) or RateLimited.

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
    return row


async def log_in(
    ctx: Context,
    executor: Executor,
    guard: LoginGuard,
    email: str,
    password: str,
    *,
    required: frozenset[str] = frozenset(),
    password_sign_in: bool = True,
) -> StaffLogin:
    """Sign a staff member in by password in the browser (see :func:`_password_step`).

    An account with a second factor gets a half-signed-in session (``second_factor``), and one
    whose role is in ``required`` but has none gets one for enrolment (``enrol``): neither
    opens any staff page or API call. Any other account gets a full session.
    PasswordSignInDisabled, before any work, where the organisation signs in by SSO only."""
    if not password_sign_in:
        raise PasswordSignInDisabled()
    row = await _password_step(ctx, executor, guard, email, password)
    step = None
    if await second_factor.has_second_factor(ctx, row.id):
        step = "second_factor"
    elif row.role in required:
        step = "enrol"
    session = await sessions.create(
        ctx,
        SessionKind.STAFF,
        staff_id=row.id,
        methods=(second_factor.PASSWORD,),
        pending_step=step,
    )
    return StaffLogin(row.id, session, row.role, step)


async def log_in_api(
    ctx: Context,
    executor: Executor,
    guard: LoginGuard,
    email: str,
    password: str,
    otp: str | None,
    *,
    required: frozenset[str] = frozenset(),
    password_sign_in: bool = True,
) -> StaffLogin:
    """Sign in for the API in one call (CONTRACTS §3): the password, then the second factor
    when the account has one (``otp``: an authenticator or a recovery code). Raises
    SecondFactorRequired, SecondFactorInvalid, SecondFactorEnrolmentRequired, RateLimited;
    PasswordSignInDisabled where the organisation signs in by SSO only."""
    if not password_sign_in:
        raise PasswordSignInDisabled()
    row = await _password_step(ctx, executor, guard, email, password)
    methods: tuple[str, ...] = (second_factor.PASSWORD,)
    if await second_factor.has_second_factor(ctx, row.id):
        if not otp:
            raise second_factor.SecondFactorRequired()
        methods += (await second_factor.check(ctx, row.id, otp),)
    elif row.role in required:
        raise second_factor.SecondFactorEnrolmentRequired()
    session = await sessions.create(ctx, SessionKind.STAFF, staff_id=row.id, methods=methods)
    return StaffLogin(row.id, session, row.role)


async def pending_sign_in(ctx: Context, token: str) -> sql_sessions.PendingSession | None:
    """The half-signed-in session of this token, if it is live."""
    mac = sessions.presented_hmac(ctx.settings, token)
    if mac is None:
        return None
    async with ctx.pool.acquire() as conn:
        return await sql_sessions.touch_pending(conn, mac)


async def _promote(
    ctx: Context, token: str, pending: sql_sessions.PendingSession, method: str
) -> StaffLogin:
    """The half-signed-in session ends and a full one begins (a new token: never the same)."""
    mac = sessions.token_hmac(ctx.settings, token)
    async with ctx.pool.acquire() as conn:
        if not await sql_sessions.delete_pending(conn, mac):
            raise SignInExpired()  # finished in another tab, or ended meanwhile
    session = await sessions.create(
        ctx, SessionKind.STAFF, staff_id=pending.staff_id, methods=(*pending.methods, method)
    )
    return StaffLogin(pending.staff_id, session, pending.role)


async def finish_second_factor(ctx: Context, token: str, code: str) -> StaffLogin:
    """The second step of a browser sign-in: an authenticator or recovery code. SignInExpired,
    SecondFactorInvalid or RateLimited; a full session otherwise."""
    pending = await pending_sign_in(ctx, token)
    if pending is None or pending.step != "second_factor":
        raise SignInExpired()
    method = await second_factor.check(ctx, pending.staff_id, code)
    return await _promote(ctx, token, pending, method)


async def finish_enrolment(ctx: Context, token: str, code: str) -> tuple[list[str], StaffLogin]:
    """The enrolment a sign-in was sent to: the first code confirms the authenticator, and the
    sign-in becomes a full one. Returns the recovery codes (shown once) and the sign-in."""
    pending = await pending_sign_in(ctx, token)
    if pending is None or pending.step != "enrol":
        raise SignInExpired()
    codes = await second_factor.confirm_totp(ctx, pending.staff_id, token, code, first_only=True)
    return codes, await _promote(ctx, token, pending, second_factor.TOTP)


async def finish_with_passkey(ctx: Context, token: str, response: str) -> StaffLogin:
    """The second step of a browser sign-in with a passkey (``token``: the staff cookie, to which
    the challenge was bound). SignInExpired, PasskeyInvalid or RateLimited."""
    pending = await pending_sign_in(ctx, token)
    if pending is None or pending.step != "second_factor":
        raise SignInExpired()
    method = await passkeys.check_second_factor(ctx, pending.staff_id, token, response)
    return await _promote(ctx, token, pending, method)


async def enrol_passkey(
    ctx: Context, token: str, name: str, response: str
) -> tuple[list[str] | None, StaffLogin]:
    """The enrolment a sign-in was sent to, with a passkey: it is registered and the sign-in
    becomes a full one ("password + passkey"). Returns the recovery codes and the sign-in."""
    pending = await pending_sign_in(ctx, token)
    if pending is None or pending.step != "enrol":
        raise SignInExpired()
    codes = await passkeys.register(ctx, pending.staff_id, token, name, response, first_only=True)
    return codes, await _promote(ctx, token, pending, passkeys.PASSKEY)


async def sign_in_with_passkey(ctx: Context, login_cookie: str, response: str) -> StaffLogin:
    """Sign-in without the password (the organisation allows it): a passkey with user
    verification is both factors. A full session with methods ("passkey",)."""
    found = await passkeys.check_sign_in(ctx, login_cookie, response)
    session = await sessions.create(
        ctx, SessionKind.STAFF, staff_id=found.staff_id, methods=(passkeys.PASSKEY,)
    )
    return StaffLogin(found.staff_id, session, found.role)


async def check_password(ctx: Context, executor: Executor, staff_id: int, password: str) -> bool:
    """Whether this is the account's password: one argon2id verification, off the event loop
    (the security page asks for it before a factor is removed or codes are made again)."""
    async with ctx.pool.acquire() as conn:
        row = await sql_staff.by_id(conn, staff_id)
    stored = row.password_hash if row is not None else None
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        executor, _verify, hasher(ctx.settings), stored, password[:PASSWORD_MAX]
    )


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


async def confirm_identity(
    ctx: Context, executor: Executor, staff_id: int, proof: str, field: str = "proof"
) -> None:
    """Before a factor is removed or recovery codes are made again, the staff member shows it
    is them, not someone at their unlocked screen: the current password, or a fresh code from
    the authenticator (limited like any second-factor code). ValidationFailed otherwise."""
    if not proof:
        raise ValidationFailed([FieldError(field, "Enter your password or a code from your app")])
    wrong = ValidationFailed([FieldError(field, "That is not your password or a current code")])
    typed = "".join(proof.split())
    if len(typed) == second_factor.DIGITS and typed.isdigit():  # never a password (12 or more)
        try:
            await second_factor.check(ctx, staff_id, typed)
        except second_factor.SecondFactorInvalid:
            raise wrong from None
        return
    if not await check_password(ctx, executor, staff_id, proof):
        raise wrong


async def reset_second_factor(ctx: Context, email: str) -> None:
    """``confide staff reset-second-factor``: after the organisation has checked who the staff
    member is, remove every factor of the account and end all its sessions (audited)."""
    try:
        await second_factor.reset(ctx, email)
    except LookupError:
        raise StaffError(f"no account for {email}") from None
