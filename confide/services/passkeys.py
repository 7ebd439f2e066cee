"""Staff passkeys (WebAuthn, py_webauthn): registration, the second step after the password, and
(where the organisation file says ``passkey_sign_in = true``) sign-in without the password.

Guarantees (docs/staff-sign-in.md "Passkeys"):

- The relying party id and origin come from ``CONFIDE_BASE_URL``: its host, and its scheme with
  host and port.
- User verification is required at every ceremony (the authenticator checked a PIN or a
  biometric), so a passkey alone satisfies the second-factor rule; registration asks for a
  discoverable credential, so that it can sign in without an e-mail address.
- A challenge is 32 random bytes, stored only as an HMAC, bound to the ceremony and to the
  browser that asked (an HMAC of its staff cookie or login cookie), valid
  :data:`CHALLENGE_S` seconds, and spent by one ``DELETE … RETURNING`` before the response is
  checked: a replayed response, or one for another browser or ceremony, is refused.
- A credential id is unique across accounts (one account only). The signature counter must go up
  when the authenticator keeps one, and it is raised by a compare-and-set UPDATE.
- Failures are audited as ``passkey_failed`` with the ceremony only; nothing from the response.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit
from uuid import UUID

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from confide.context import Context
from confide.crypto import keyed_hash
from confide.errors import ConfideError, FieldError, RateLimited, ValidationFailed
from confide.services import second_factor, sign_in_notices
from confide.settings import Settings
from confide.sql import audit as sql_audit
from confide.sql import passkeys as sql_passkeys
from confide.sql import second_factor as sql_factor
from confide.sql import staff as sql_staff

PASSKEY = "passkey"
REGISTER = "register"
SECOND_FACTOR = "second_factor"
SIGN_IN = "sign_in"
CHALLENGE_S = 5 * 60  # a ceremony's options are good for this long
TIMEOUT_MS = 3 * 60 * 1000  # what the browser is told to wait for the authenticator
NAME_MAX = 100
MAX_RESPONSE = 16_384  # a response JSON longer than this is no passkey's


class PasskeyInvalid(ConfideError):
    """A passkey response that does not check out: an unknown, another account's or cloned
    credential, a wrong signature, a spent or expired challenge, or no user verification."""


class PasskeySignInOff(ConfideError):
    """Sign-in without a password: the organisation file does not allow it."""


@dataclass(frozen=True)
class RelyingParty:
    id: str
    origin: str


def relying_party(settings: Settings) -> RelyingParty:
    """From CONFIDE_BASE_URL: the host is the relying party id (never an IP address: use
    http://localhost:PORT in development), scheme://host[:port] the origin."""
    parts = urlsplit(settings.base_url)
    return RelyingParty(parts.hostname or "localhost", f"{parts.scheme}://{parts.netloc}")


def user_handle(settings: Settings, staff_id: int) -> bytes:
    """The WebAuthn user id of an account: stable and opaque (no e-mail address, no number)."""
    return keyed_hash(settings.lookup_key, "webauthn-user", str(staff_id))


def _binding(settings: Settings, browser_token: str) -> bytes:
    return keyed_hash(settings.session_key, "webauthn-binding", browser_token)


def _challenge_hmac(settings: Settings, challenge: bytes) -> bytes:
    return keyed_hash(settings.session_key, "webauthn-challenge", challenge.hex())


async def _store_challenge(
    ctx: Context, challenge: bytes, ceremony: str, browser_token: str, staff_id: int | None
) -> None:
    async with ctx.pool.acquire() as conn:
        await sql_passkeys.add_challenge(
            conn,
            _challenge_hmac(ctx.settings, challenge),
            ceremony=ceremony,
            binding_hmac=_binding(ctx.settings, browser_token),
            staff_id=staff_id,
            lifetime_s=CHALLENGE_S,
        )


def _challenge_of(response: str) -> bytes:
    """The challenge the browser signed, read from its clientDataJSON (checked again, with the
    signature, by py_webauthn)."""
    try:
        data = json.loads(response)
        client_data = base64url_to_bytes(data["response"]["clientDataJSON"])
        return parse_client_data_json(client_data).challenge
    except (ValueError, KeyError, TypeError, WebAuthnException):
        raise PasskeyInvalid() from None


async def _spend(
    ctx: Context, response: str, ceremony: str, browser_token: str
) -> tuple[bytes, int | None]:
    """Spend the response's challenge (once): the challenge and the staff id it was made for."""
    if not response or len(response) > MAX_RESPONSE or not browser_token:
        raise PasskeyInvalid()
    challenge = _challenge_of(response)
    async with ctx.pool.acquire() as conn:
        found, staff_id = await sql_passkeys.spend_challenge(
            conn,
            _challenge_hmac(ctx.settings, challenge),
            ceremony=ceremony,
            binding_hmac=_binding(ctx.settings, browser_token),
        )
    if not found:
        raise PasskeyInvalid()
    return challenge, staff_id


async def _failed(ctx: Context, staff_id: int | None, ceremony: str) -> None:
    async with ctx.pool.acquire() as conn:
        await sql_audit.record(conn, staff_id, None, "passkey_failed", {"ceremony": ceremony})


# --- Registration ------------------------------------------------------------------------------


async def registration_options(
    ctx: Context, staff_id: int, browser_token: str, org_name: str
) -> str:
    """The options for ``navigator.credentials.create()`` as JSON, their challenge stored."""
    async with ctx.pool.acquire() as conn:
        account = await sql_staff.by_id(conn, staff_id)
        existing = await sql_passkeys.for_staff(conn, staff_id)
    assert account is not None
    rp = relying_party(ctx.settings)
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=org_name,
        user_id=user_handle(ctx.settings, staff_id),
        user_name=account.email,
        user_display_name=account.name,
        challenge=secrets.token_bytes(32),
        timeout=TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=p.credential_id) for p in existing],
    )
    await _store_challenge(ctx, options.challenge, REGISTER, browser_token, staff_id)
    return options_to_json(options)


def check_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise ValidationFailed([FieldError("name", "Give the passkey a name")])
    if len(name) > NAME_MAX:
        raise ValidationFailed([FieldError("name", f"Use at most {NAME_MAX} characters")])
    return name


async def register(
    ctx: Context,
    staff_id: int,
    browser_token: str,
    name: str,
    response: str,
    *,
    first_only: bool = False,
) -> list[str] | None:
    """Add the passkey of this registration response to the account. Returns its ten new
    recovery codes when it is the account's first factor (shown once), else None. With
    ``first_only`` (a half-signed-in enrolment), EnrolledMeanwhile if it would not be the first.
    ValidationFailed for a bad name; PasskeyInvalid when the response does not check out."""
    name = check_name(name)
    challenge, for_staff = await _spend(ctx, response, REGISTER, browser_token)
    if for_staff != staff_id:
        await _failed(ctx, staff_id, REGISTER)
        raise PasskeyInvalid()
    rp = relying_party(ctx.settings)
    try:
        credential = parse_registration_credential_json(response)
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError):
        await _failed(ctx, staff_id, REGISTER)
        raise PasskeyInvalid() from None
    transports = [t.value for t in credential.response.transports or []]
    async with ctx.pool.acquire() as conn, conn.transaction():
        await sql_factor.lock_factors(conn, staff_id)
        first = not await second_factor.has_factor(conn, staff_id)
        if first_only and not first:
            raise second_factor.EnrolledMeanwhile()
        public_id = await sql_passkeys.insert(
            conn,
            staff_id,
            credential_id=verified.credential_id,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            name=name,
            transports=transports,
        )
        if public_id is None:  # this credential is registered already, to this or another account
            raise PasskeyInvalid()
        codes = (
            await second_factor.replace_recovery_codes(conn, ctx.settings.lookup_key, staff_id)
            if first
            else None
        )
        await sql_audit.record(
            conn, staff_id, None, "passkey_registered", {"passkey_id": str(public_id)}
        )
    return codes


async def remove(ctx: Context, staff_id: int, public_id: str) -> bool:
    """Remove one of the account's passkeys (the caller has checked the staff member); with the
    account's last factor go its recovery codes. False when it had no such passkey."""
    try:
        passkey_id = UUID(public_id)
    except ValueError:
        return False
    async with ctx.pool.acquire() as conn, conn.transaction():
        if not await sql_passkeys.delete(conn, staff_id, passkey_id):
            return False
        if not await second_factor.has_factor(conn, staff_id):
            await sql_factor.delete_recovery_codes(conn, staff_id)
        await sql_audit.record(
            conn, staff_id, None, "passkey_removed", {"passkey_id": str(passkey_id), "by": "self"}
        )
    return True


# --- Sign-in -----------------------------------------------------------------------------------


async def authentication_options(
    ctx: Context, ceremony: str, browser_token: str, staff_id: int | None = None
) -> str:
    """The options for ``navigator.credentials.get()`` as JSON, their challenge stored: for the
    second step, the account's passkeys; for sign-in without a password, any discoverable one."""
    allow: list[PublicKeyCredentialDescriptor] = []
    if ceremony == SECOND_FACTOR:
        assert staff_id is not None
        async with ctx.pool.acquire() as conn:
            allow = [
                PublicKeyCredentialDescriptor(id=p.credential_id)
                for p in await sql_passkeys.for_staff(conn, staff_id)
            ]
    options = generate_authentication_options(
        rp_id=relying_party(ctx.settings).id,
        challenge=secrets.token_bytes(32),
        timeout=TIMEOUT_MS,
        allow_credentials=allow,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    await _store_challenge(ctx, options.challenge, ceremony, browser_token, staff_id)
    return options_to_json(options)


async def _verify_assertion(
    ctx: Context, challenge: bytes, response: str, staff_id: int | None
) -> sql_passkeys.Passkey:
    try:
        credential = parse_authentication_credential_json(response)
    except (WebAuthnException, ValueError, KeyError, TypeError):
        raise PasskeyInvalid() from None
    async with ctx.pool.acquire() as conn:
        passkey = await sql_passkeys.by_credential(conn, credential.raw_id)
    if passkey is None or (staff_id is not None and passkey.staff_id != staff_id):
        raise PasskeyInvalid()
    handle = credential.response.user_handle
    if handle and handle != user_handle(ctx.settings, passkey.staff_id):
        raise PasskeyInvalid()
    rp = relying_party(ctx.settings)
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=passkey.public_key,
            credential_current_sign_count=passkey.sign_count,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError):
        raise PasskeyInvalid() from None
    async with ctx.pool.acquire() as conn:
        if not await sql_passkeys.use(
            conn, passkey.public_id, passkey.sign_count, verified.new_sign_count
        ):
            raise PasskeyInvalid()  # used at the same moment elsewhere
    return passkey


async def check_second_factor(
    ctx: Context, staff_id: int, browser_token: str, response: str
) -> str:
    """The second step with a passkey of this account; counted against the account's limit on
    wrong second steps like a code. Returns the method; PasskeyInvalid or RateLimited."""
    async with ctx.pool.acquire() as conn:
        if not await sql_factor.claim_attempt(
            conn, staff_id, limit=second_factor.ATTEMPTS, window_s=second_factor.WINDOW_S
        ):
            raise RateLimited(
                await sql_factor.seconds_until_attempts(conn, staff_id, second_factor.WINDOW_S)
            )
    try:
        challenge, for_staff = await _spend(ctx, response, SECOND_FACTOR, browser_token)
        if for_staff != staff_id:
            raise PasskeyInvalid()
        await _verify_assertion(ctx, challenge, response, staff_id)
    except PasskeyInvalid:
        async with ctx.pool.acquire() as conn, conn.transaction():
            await sql_audit.record(
                conn, staff_id, None, "passkey_failed", {"ceremony": SECOND_FACTOR}
            )
            told = await sign_in_notices.queue_password_known(
                conn, staff_id, second_factor.ATTEMPTS
            )
        if told:
            ctx.after_commit()
        raise
    async with ctx.pool.acquire() as conn:
        await sql_factor.give_back_attempts(conn, staff_id)
    return PASSKEY


@dataclass(frozen=True)
class SignedIn:
    staff_id: int
    role: str


async def check_sign_in(ctx: Context, browser_token: str, response: str) -> SignedIn:
    """Sign-in without the password: a discoverable passkey of an enabled account. The caller
    checked that the organisation allows it. PasskeyInvalid otherwise (audited)."""
    staff_id: int | None = None
    try:
        challenge, _ = await _spend(ctx, response, SIGN_IN, browser_token)
        passkey = await _verify_assertion(ctx, challenge, response, None)
        staff_id = passkey.staff_id
        async with ctx.pool.acquire() as conn:
            account = await sql_staff.by_id(conn, staff_id)
        if account is None or not account.active:
            raise PasskeyInvalid()
    except PasskeyInvalid:
        await _failed(ctx, staff_id, SIGN_IN)
        raise
    return SignedIn(account.id, account.role)
