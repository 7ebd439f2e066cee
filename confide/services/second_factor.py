"""Staff second factors: authenticator codes (TOTP, RFC 6238) and recovery codes.

Guarantees (docs/staff-sign-in.md, docs/security.md "Staff second factor"):

- An authenticator secret is sealed with the keyring under the AAD ``staff_totp.secret:<staff
  id>``; it takes effect only once one code from it was entered. Codes are checked at ±1 step of
  30 s, and a code is accepted only by raising the account's last used step, in one UPDATE, so
  a code (or one older than the last accepted) is never taken twice, by any process.
- Recovery codes are 10 random codes of 80 bits, shown once; PostgreSQL holds only their
  HMAC-SHA256 under a key derived with HKDF from ``CONFIDE_LOOKUP_KEY`` (label
  :data:`RECOVERY_KEY_LABEL`), so a check is one primary-key lookup, not ten argon2 runs. A code
  is spent by one conditional UPDATE: once and only once.
- Wrong codes are limited per account (:data:`ATTEMPTS` in :data:`WINDOW_S`), with no client
  address anywhere: an attempt is claimed before the code is checked and given back when right.
- Audit rows name the method and the account, never a code or a secret.
"""

from __future__ import annotations

import functools
import hmac
import re
import secrets
import time
from dataclasses import dataclass

import pyotp
import segno
from asyncpg import Connection

from confide.context import Context
from confide.crypto import derive_key, keyed_hash
from confide.errors import ConfideError, FieldError, RateLimited, ValidationFailed
from confide.org import SECOND_FACTOR_ROLES, Organisation
from confide.services import sessions, sign_in_notices
from confide.settings import Secret
from confide.sql import audit as sql_audit
from confide.sql import passkeys as sql_passkeys
from confide.sql import second_factor as sql_factor
from confide.sql import sessions as sql_sessions
from confide.sql import staff as sql_staff

TOTP = "totp"
RECOVERY_CODE = "recovery_code"
PASSWORD = "password"  # noqa: S105 (a sign-in method's name, not a password)
STEP_S = 30  # RFC 6238's default, which every authenticator app uses
WINDOW_STEPS = 1  # a code of the step before or after is accepted too (clock drift)
DIGITS = 6
ATTEMPTS = 5  # wrong second-factor codes per account ...
WINDOW_S = 15 * 60  # ... in this many seconds; then the second step waits (429)
RECOVERY_CODES = 10
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud, typed back
RECOVERY_LENGTH = 16  # 16 characters of 31: 79 bits, beyond guessing in 5 tries a window
RECOVERY_KEY_LABEL = "confide/staff-recovery-codes/v1"
CANDIDATE_S = 60 * 60  # an enrolment left unconfirmed this long starts again with a new secret
_CODE = re.compile(r"^[0-9]{6}$")


class SecondFactorRequired(ConfideError):
    """The account has a second factor and none was given (CONTRACTS §3)."""


class SecondFactorInvalid(ConfideError):
    """A wrong, replayed or used authenticator or recovery code (CONTRACTS §3)."""


class SecondFactorEnrolmentRequired(ConfideError):
    """The account's role must use a second factor and has none yet: enrol in the browser."""


class AlreadyEnrolled(ConfideError):
    """The account has an authenticator already: remove it before setting up another."""


class EnrolledMeanwhile(ConfideError):
    """A half-signed-in enrolment found a factor on the account (its owner set one up in another
    browser meanwhile): the sign-in goes on at the second step, which only the owner can pass."""


def required_roles(org: Organisation, *, production: bool) -> frozenset[str]:
    """The roles that must sign in with a second factor: the organisation file's
    ``require_second_factor``, else every role in production and none in development."""
    if org.require_second_factor is not None:
        return org.require_second_factor
    return frozenset(SECOND_FACTOR_ROLES) if production else frozenset()


def _context(staff_id: int) -> str:
    return f"staff_totp.secret:{staff_id}"


def _recovery_key(secret: Secret) -> bytes:
    return _derived(secret.bytes())


@functools.cache
def _derived(raw: bytes) -> bytes:
    return derive_key(raw, RECOVERY_KEY_LABEL)


def recovery_hmac(secret: Secret, staff_id: int, code: str) -> bytes:
    """The stored form of a recovery code: bound to its account."""
    return keyed_hash(_recovery_key(secret), str(staff_id), normalise_recovery_code(code))


def normalise_recovery_code(code: str) -> str:
    return "".join(c for c in code.casefold() if c not in " -\t")[:64]


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, RECOVERY_LENGTH, 4))


def grouped(secret: str) -> str:
    """The secret as people read and type it: groups of four."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def _matching_step(secret: str, code: str, now: float) -> int | None:
    """The time-step whose code this is, within ±WINDOW_STEPS of now; None if none."""
    if not _CODE.match(code):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S)
    step = totp.timecode(int(now))
    found = None
    for candidate in range(step - WINDOW_STEPS, step + WINDOW_STEPS + 1):
        # Every candidate is compared, in constant time: no early exit tells which step matched.
        if hmac.compare_digest(totp.generate_otp(candidate), code):
            found = candidate
    return found


def _typed_code(code: str) -> str:
    return "".join(c for c in code if not c.isspace())[:64]


@dataclass(frozen=True)
class Enrolment:
    """What the enrolment page shows: the secret as text (grouped) and its QR code as SVG."""

    secret: str
    uri: str

    @property
    def secret_grouped(self) -> str:
        return grouped(self.secret)

    def qr_svg(self) -> str:
        """The otpauth URI as an inline SVG drawn here (no third party sees the secret)."""
        qr = segno.make(self.uri, error="m")
        svg: str = qr.svg_inline(
            scale=4,
            border=4,
            dark="#000",
            light="#fff",
            svgclass="qr",
            lineclass=None,
            omitsize=True,
        )
        return svg


@dataclass(frozen=True)
class Status:
    """What the security page shows."""

    has_totp: bool
    recovery_codes_left: int
    required: bool
    passkeys: tuple[sql_passkeys.Passkey, ...] = ()
    recovery_codes_set: str = "none"  # sent back by "Make new recovery codes" (a reload is a no-op)

    @property
    def has_factor(self) -> bool:
        return self.has_totp or bool(self.passkeys)


async def status(ctx: Context, staff_id: int, *, required: bool) -> Status:
    async with ctx.pool.acquire() as conn:
        has = await sql_factor.has_confirmed_totp(conn, staff_id)
        left = await sql_factor.recovery_codes_left(conn, staff_id)
        passkeys = await sql_passkeys.for_staff(conn, staff_id)
        made = await sql_factor.recovery_codes_set(conn, staff_id)
    return Status(has, left, required, tuple(passkeys), made)


async def has_second_factor(ctx: Context, staff_id: int) -> bool:
    """An authenticator app or a passkey (either satisfies the second-factor rule)."""
    async with ctx.pool.acquire() as conn:
        return await has_factor(conn, staff_id)


async def has_factor(conn: Connection, staff_id: int) -> bool:
    """The account has a factor that recovery codes can stand in for: an app or a passkey."""
    return await sql_factor.has_confirmed_totp(conn, staff_id) or await sql_passkeys.has_passkey(
        conn, staff_id
    )


async def replace_recovery_codes(conn: Connection, key: Secret, staff_id: int) -> list[str]:
    """Ten new recovery codes for the account, the old ones void, in the caller's transaction
    (enrolment of any first factor, an authenticator or a passkey). Shown once."""
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
    await sql_factor.replace_recovery_codes(
        conn, staff_id, [recovery_hmac(key, staff_id, c) for c in codes]
    )
    return codes


async def begin_totp(ctx: Context, staff_id: int, issuer: str, browser_token: str) -> Enrolment:
    """This browser's unconfirmed authenticator secret, made now if it has none (so that a
    reload shows the same one); AlreadyEnrolled if the account has a confirmed one. A key begun
    by another browser (``browser_token``: the staff cookie) is replaced, never shown here."""
    browser = sessions.token_hmac(ctx.settings, browser_token)
    async with ctx.pool.acquire() as conn, conn.transaction():
        await sql_factor.lock_factors(conn, staff_id)
        await sql_factor.drop_stale_candidate(conn, staff_id, CANDIDATE_S, browser)
        secret = pyotp.random_base32()  # 160 bits, RFC 4226's recommendation
        await sql_factor.insert_candidate(
            conn, staff_id, ctx.keyring.seal(secret, _context(staff_id)), browser
        )
        row = await sql_factor.totp(conn, staff_id)
        account = await sql_staff.by_id(conn, staff_id)
    assert row is not None and account is not None
    if row.confirmed_at is not None:
        raise AlreadyEnrolled()
    secret = ctx.keyring.open(row.secret, _context(staff_id))
    uri = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_S).provisioning_uri(
        name=account.email, issuer_name=issuer
    )
    return Enrolment(secret, uri)


async def confirm_totp(
    ctx: Context,
    staff_id: int,
    browser_token: str,
    code: str,
    *,
    now: float | None = None,
    first_only: bool = False,
) -> list[str]:
    """The first code makes the authenticator take effect; returns the account's new recovery
    codes (shown once). ValidationFailed on a wrong code, AlreadyEnrolled if done already, and
    with ``first_only`` (a half-signed-in enrolment) EnrolledMeanwhile when the account has any
    factor by now: a password alone never adds a factor beside the owner's."""
    code = _typed_code(code)
    if not code:
        raise ValidationFailed([FieldError("code", "Enter the 6-digit code from your app")])
    browser = sessions.token_hmac(ctx.settings, browser_token)
    async with ctx.pool.acquire() as conn:
        row = await sql_factor.totp(conn, staff_id)
    if row is not None and row.confirmed_at is not None:
        raise AlreadyEnrolled()
    if row is not None and row.begun_by != browser:
        row = None  # another browser's key: this one's was replaced, so its codes are not right
    secret = ctx.keyring.open(row.secret, _context(staff_id)) if row else None
    step = _matching_step(secret, code, time.time() if now is None else now) if secret else None
    if step is None:
        raise ValidationFailed(
            [
                FieldError(
                    "code",
                    "That code is not right. Check the time on your phone, then try the newest code",
                )
            ]
        )
    async with ctx.pool.acquire() as conn, conn.transaction():
        await sql_factor.lock_factors(conn, staff_id)
        if first_only and await has_factor(conn, staff_id):
            raise EnrolledMeanwhile()
        if not await sql_factor.confirm(conn, staff_id, step, browser):
            raise AlreadyEnrolled()
        codes = await replace_recovery_codes(conn, ctx.settings.lookup_key, staff_id)
        await sql_audit.record(conn, staff_id, None, "second_factor_enrolled", {"method": TOTP})
    return codes


async def check(ctx: Context, staff_id: int, code: str, *, now: float | None = None) -> str:
    """Check a second-factor code of the account: an authenticator code or a recovery code.
    Returns the method ("totp" or "recovery_code"). RateLimited after ATTEMPTS wrong codes in
    WINDOW_S; SecondFactorInvalid for a wrong, replayed or used code (audited, without it)."""
    code = _typed_code(code)
    async with ctx.pool.acquire() as conn:
        if not await sql_factor.claim_attempt(conn, staff_id, limit=ATTEMPTS, window_s=WINDOW_S):
            raise RateLimited(await sql_factor.seconds_until_attempts(conn, staff_id, WINDOW_S))
    method = await _accept(ctx, staff_id, code, time.time() if now is None else now)
    if method is None:
        async with ctx.pool.acquire() as conn, conn.transaction():
            await sql_audit.record(conn, staff_id, None, "second_factor_failed", {})
            # The limit reached: once a window, the staff member hears someone has the password.
            told = await sign_in_notices.queue_password_known(conn, staff_id, ATTEMPTS)
        if told:
            ctx.after_commit()
        raise SecondFactorInvalid()
    async with ctx.pool.acquire() as conn, conn.transaction():
        await sql_factor.give_back_attempts(conn, staff_id)
        if method == RECOVERY_CODE:
            left = await sql_factor.recovery_codes_left(conn, staff_id)
            await sql_audit.record(conn, staff_id, None, "recovery_code_used", {"left": left})
    return method


async def _accept(ctx: Context, staff_id: int, code: str, now: float) -> str | None:
    if _CODE.match(code):
        async with ctx.pool.acquire() as conn:
            row = await sql_factor.totp(conn, staff_id)
            if row is None or row.confirmed_at is None:
                return None
            step = _matching_step(ctx.keyring.open(row.secret, _context(staff_id)), code, now)
            if step is not None and await sql_factor.use_step(conn, staff_id, step):
                return TOTP
        return None
    if not code or len(normalise_recovery_code(code)) != RECOVERY_LENGTH:
        return None
    mac = recovery_hmac(ctx.settings.lookup_key, staff_id, code)
    async with ctx.pool.acquire() as conn:
        if not await has_factor(conn, staff_id):
            return None  # recovery codes stand in for a factor the account has
        if await sql_factor.use_recovery_code(conn, staff_id, mac):
            return RECOVERY_CODE
    return None


class CodesMadeAlready(ConfideError):
    """ "Make new recovery codes" sent again (a reload, or Back and resubmit): the set it was
    made from is gone, so the set made then, and shown then, stays the one that works."""


async def regenerate_recovery_codes(ctx: Context, staff_id: int, replacing: str) -> list[str]:
    """Ten new recovery codes, the old ones void; the caller has checked the staff member
    (password or a fresh code). Shown once. ``replacing`` names the set the page showed
    (:attr:`Status.recovery_codes_set`): CodesMadeAlready when it is no longer the account's."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        await sql_factor.lock_factors(conn, staff_id)
        if await sql_factor.recovery_codes_set(conn, staff_id) != replacing:
            raise CodesMadeAlready()
        if not await has_factor(conn, staff_id):
            raise ValidationFailed(
                [FieldError("proof", "Set up an authenticator app or a passkey first")]
            )
        codes = await replace_recovery_codes(conn, ctx.settings.lookup_key, staff_id)
        await sql_audit.record(conn, staff_id, None, "recovery_codes_regenerated", {})
    return codes


async def remove_totp(ctx: Context, staff_id: int) -> None:
    """Remove the account's authenticator and, with its last factor, its recovery codes; the
    caller has checked the staff member. Audited."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        if await sql_factor.delete_totp(conn, staff_id):
            if not await sql_passkeys.has_passkey(conn, staff_id):  # they stand in for a passkey
                await sql_factor.delete_recovery_codes(conn, staff_id)
            await sql_audit.record(
                conn, staff_id, None, "second_factor_removed", {"method": TOTP, "by": "self"}
            )


async def reset(ctx: Context, email: str) -> int:
    """``confide staff reset-second-factor``: remove every factor of the account (the
    authenticator, its passkeys and its recovery codes), and end all its sessions, in one
    transaction.
    Audited. Returns the staff id; LookupError when there is no such account."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        account = await sql_staff.by_email(conn, email.strip())
        if account is None:
            raise LookupError(email)
        had_totp = await sql_factor.delete_totp(conn, account.id)
        codes = await sql_factor.delete_recovery_codes(conn, account.id)
        passkeys = await sql_passkeys.delete_for_staff(conn, account.id)
        await sql_sessions.delete_for_staff(conn, account.id)
        await sql_audit.record(
            conn,
            None,
            None,
            "second_factor_reset",
            {
                "staff_id": account.id,
                "totp": had_totp,
                "passkeys": passkeys,
                "recovery_codes": codes,
                "by": "command",
            },
        )
    return account.id
