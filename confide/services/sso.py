"""Staff single sign-on through OpenID Connect (docs/staff-sign-in.md "Single sign-on").

Guarantees:

- Authorization code flow with PKCE (S256), ``state`` and ``nonce``. All three are made here from
  ``secrets`` and kept server-side (``sso_attempts``), bound to the browser by a short-lived
  cookie that holds only a random id (PostgreSQL keeps its HMAC); the verifier is sealed with the
  keyring. An attempt is taken (deleted) the moment the browser comes back: it is used once.
- The first SSO sign-in of an account needs a verified ``email`` claim matching an existing,
  enabled account (or, only where the organisation file says ``[sso.provision]``, makes one with
  the file's role and team: roles never come from the provider); the account is then bound to
  ``iss`` + ``sub``. Every later sign-in matches on ``iss`` + ``sub`` only, never the e-mail.
- Where the organisation requires an ``acr`` or ``amr`` meaning multi-factor, a token without it
  is refused, and one with it counts as the second factor. Otherwise Confide's own second
  factor still applies, through the same half-signed-in sessions as after a password.
- Audit rows ``sso_sign_in``, ``sso_failed`` (a reason word) and ``sso_identity_bound`` hold no
  token, code, claim value or e-mail address.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn

from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from confide.context import Context
from confide.crypto import keyed_hash
from confide.domain import Role, SessionKind
from confide.errors import ConfideError
from confide.oidc import Provider, ProviderUnavailable, TokenRefused
from confide.org import SsoRules
from confide.services import second_factor, sessions
from confide.services.staff import StaffLogin
from confide.sql import audit as sql_audit
from confide.sql import org as sql_org
from confide.sql import sso as sql_sso
from confide.sql import staff as sql_staff

SSO = "sso"  # a session's method (sessions.methods): shown as "single sign-on"
SSO_MFA = "sso_mfa"  # the provider's multi-factor sign-in stood in for Confide's second factor
CALLBACK_PATH = "/staff/sso/callback"
ATTEMPT_S = 10 * 60  # a sign-in must come back from the provider within this
SCOPE = "openid email profile"
_IDP_ERROR = re.compile(r"^[a-z_]{1,64}$")


class SsoRefused(ConfideError):
    """A single sign-on that is refused, named by a reason word (shown in words, audited)."""

    status: ClassVar[int] = 403
    REASONS: ClassVar[frozenset[str]] = frozenset(
        {
            "idp_error",  # the provider answered with an error (the person cancelled, ...)
            "state",  # no, an expired, a used or another browser's sign-in; or a forged state
            "code",  # the token endpoint refused the code (used, expired, wrong verifier)
            "nonce",  # the ID token's nonce is missing or not this sign-in's
            "id_token",  # the ID token does not verify (signature, issuer, audience, expiry)
            "email_unverified",
            "unknown_email",
            "disabled",
            "already_bound",  # the address's account is bound to another identity there
            "mfa_missing",  # the organisation requires an acr/amr the token does not have
        }
    )

    def __init__(self, reason: str) -> None:
        assert reason in self.REASONS or reason.startswith("provider_"), reason
        super().__init__(reason)
        self.reason = reason


class SsoRequestInvalid(SsoRefused):
    """The sign-in cannot be trusted as this browser's (state, code, nonce, ID token): 400."""

    status = 400


class SsoUnavailable(SsoRefused):
    """The provider is unreachable or answers something unusable: 502."""

    status = 502


@dataclass(frozen=True)
class Started:
    """Where to send the browser, and the cookie value that binds the attempt to it."""

    cookie: str
    url: str


def _mac(ctx: Context, label: str, value: str) -> bytes:
    return keyed_hash(ctx.settings.session_key, label, value)


def _aad(cookie_mac: bytes) -> str:
    return f"sso_attempts.code_verifier:{cookie_mac.hex()}"


def redirect_uri(ctx: Context) -> str:
    return ctx.settings.base_url + CALLBACK_PATH


async def begin(ctx: Context, provider: Provider, rules: SsoRules) -> Started:
    """A new sign-in: its state, nonce and PKCE verifier kept server-side, and the provider's
    authorization address. SsoUnavailable when the provider cannot be read."""
    try:
        meta = await provider.metadata()
    except ProviderUnavailable as exc:
        raise SsoUnavailable(exc.reason) from None
    cookie, state, nonce = (secrets.token_urlsafe(32) for _ in range(3))
    verifier = secrets.token_urlsafe(48)  # 64 characters (RFC 7636: 43 to 128)
    extra: dict[str, str] = {
        "nonce": nonce,
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    if rules.require_acr:  # a hint; the answer's acr is what is checked
        extra["acr_values"] = " ".join(sorted(rules.require_acr))
    url = prepare_grant_uri(
        meta.authorization_endpoint,
        provider.client.client_id,
        "code",
        redirect_uri=redirect_uri(ctx),
        scope=SCOPE,
        state=state,
        **extra,
    )
    cookie_mac = _mac(ctx, "sso-attempt", cookie)
    async with ctx.pool.acquire() as conn, conn.transaction():
        await sql_sso.sweep_attempts(conn)
        await sql_sso.insert_attempt(
            conn,
            cookie_mac,
            state_hmac=_mac(ctx, "sso-state", state),
            nonce=nonce,
            code_verifier=ctx.keyring.seal(verifier, _aad(cookie_mac)),
            seconds=ATTEMPT_S,
        )
    return Started(cookie, str(url))


async def _refuse(
    ctx: Context, exc: SsoRefused, staff_id: int | None = None, **detail: Any
) -> NoReturn:
    async with ctx.pool.acquire() as conn:
        await sql_audit.record(conn, staff_id, None, "sso_failed", {"reason": exc.reason, **detail})
    raise exc


async def finish(
    ctx: Context,
    provider: Provider,
    rules: SsoRules,
    cookie: str,
    params: Mapping[str, str],
    *,
    required: frozenset[str] = frozenset(),
) -> StaffLogin:
    """The browser back from the provider: check the attempt, the code and the ID token, find
    (or bind) the account, and start its session: a full one, or a half-signed-in one when
    Confide's own second factor (or enrolment) is still due. SsoRefused (audited) otherwise."""
    attempt = None
    if cookie and len(cookie) <= 128:
        async with ctx.pool.acquire() as conn:
            attempt = await sql_sso.take_attempt(conn, _mac(ctx, "sso-attempt", cookie))
    error = params.get("error", "")
    if error:
        code = error if _IDP_ERROR.match(error) else "other"
        await _refuse(ctx, SsoRefused("idp_error"), error=code)
    state = params.get("state", "")
    if attempt is None or not hmac.compare_digest(
        _mac(ctx, "sso-state", state[:512]), attempt.state_hmac
    ):
        await _refuse(ctx, SsoRequestInvalid("state"))
    assert attempt is not None
    code = params.get("code", "")
    if not code or len(code) > 2048:
        await _refuse(ctx, SsoRequestInvalid("code"))
    cookie_mac = _mac(ctx, "sso-attempt", cookie)
    verifier = ctx.keyring.open(attempt.code_verifier, _aad(cookie_mac))
    claims = await _claims(ctx, provider, code, verifier, attempt.nonce)
    if rules.requires_mfa and not mfa_met(rules, claims):
        await _refuse(ctx, SsoRefused("mfa_missing"))
    account = await _account(ctx, provider.client.issuer, claims, rules)
    return await _sign_in(ctx, account, mfa=rules.requires_mfa, required=required)


async def _claims(
    ctx: Context, provider: Provider, code: str, verifier: str, nonce: str
) -> dict[str, Any]:  # Any: JSON claims
    try:
        tokens = await provider.exchange(code, verifier, redirect_uri(ctx))
        access = tokens.get("access_token")
        return await provider.verify_id_token(
            tokens["id_token"],
            nonce=nonce,
            access_token=access if isinstance(access, str) else None,
        )
    except ProviderUnavailable as exc:
        await _refuse(ctx, SsoUnavailable(exc.reason))
    except TokenRefused as exc:
        await _refuse(ctx, SsoRequestInvalid(exc.reason))


def mfa_met(rules: SsoRules, claims: Mapping[str, Any]) -> bool:
    """Whether the ID token says the person signed in with more than one factor, as the
    organisation defines it: ``acr`` one of require_acr, ``amr`` holding one of require_amr."""
    if rules.require_acr and claims.get("acr") not in rules.require_acr:
        return False
    if rules.require_amr:
        amr = claims.get("amr")
        said = {a for a in amr if isinstance(a, str)} if isinstance(amr, list) else set()
        if not said & rules.require_amr:
            return False
    return True


async def _account(
    ctx: Context, issuer: str, claims: Mapping[str, Any], rules: SsoRules
) -> sql_staff.Account:
    """The account of this identity: bound already (``iss`` + ``sub``), or bound now through a
    verified e-mail address (or provisioned, where the organisation says so)."""
    subject = str(claims["sub"])
    async with ctx.pool.acquire() as conn, conn.transaction():
        staff_id = await sql_sso.staff_for_identity(conn, issuer, subject)
        account = await sql_staff.by_id(conn, staff_id) if staff_id is not None else None
    if account is not None:
        if not account.active:
            await _refuse(ctx, SsoRefused("disabled"), account.id)
        return account
    return await _bind(ctx, issuer, subject, claims, rules)


def _verified_email(claims: Mapping[str, Any]) -> str | None:
    email = claims.get("email")
    if not isinstance(email, str) or not 3 <= len(email) <= 254 or not email.isprintable():
        return None
    return email.strip() if claims.get("email_verified") is True else None


async def _bind(
    ctx: Context, issuer: str, subject: str, claims: Mapping[str, Any], rules: SsoRules
) -> sql_staff.Account:
    email = _verified_email(claims)
    if email is None:
        await _refuse(ctx, SsoRefused("email_unverified"))
    assert email is not None
    refusal: SsoRefused | None = None
    provisioned = False
    async with ctx.pool.acquire() as conn, conn.transaction():
        account = await sql_staff.by_email(conn, email)
        if account is None and rules.provision is not None:
            account = await _provision(conn, email, claims, rules)
            provisioned = True
        if account is None:
            refusal = SsoRefused("unknown_email")
        elif not account.active:
            refusal = SsoRefused("disabled")
        elif await sql_sso.has_identity_at(conn, account.id, issuer) or not await sql_sso.bind(
            conn, account.id, issuer, subject
        ):
            refusal = SsoRefused("already_bound")
        else:
            await sql_audit.record(
                conn,
                account.id,
                None,
                "sso_identity_bound",
                {"issuer": issuer, "provisioned": provisioned},
            )
    if refusal is not None:
        await _refuse(ctx, refusal, account.id if account is not None else None)
    assert account is not None
    return account


async def _provision(
    conn: Any, email: str, claims: Mapping[str, Any], rules: SsoRules
) -> sql_staff.Account | None:
    """A new account for a verified address, with the organisation file's role and team."""
    assert rules.provision is not None
    name = claims.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or not name.isprintable():
        name = email.split("@", 1)[0]
    staff_id = await sql_staff.insert(
        conn, email, name.strip(), Role(rules.provision.role), password_hash=None
    )
    if rules.provision.team is not None:
        team_id = await sql_org.team_id(conn, rules.provision.team)
        if team_id is not None:
            await sql_staff.add_to_team(conn, staff_id, team_id)
    return await sql_staff.by_id(conn, staff_id)


async def _sign_in(
    ctx: Context, account: sql_staff.Account, *, mfa: bool, required: frozenset[str]
) -> StaffLogin:
    """A full session when the provider's multi-factor sign-in counts (``mfa``); otherwise
    Confide's own second factor or enrolment, exactly as after a password."""
    step: str | None = None
    methods: tuple[str, ...] = (SSO, SSO_MFA) if mfa else (SSO,)
    if not mfa:
        if await second_factor.has_second_factor(ctx, account.id):
            step = "second_factor"
        elif account.role in required:
            step = "enrol"
    session = await sessions.create(
        ctx, SessionKind.STAFF, staff_id=account.id, methods=methods, pending_step=step
    )
    async with ctx.pool.acquire() as conn:
        await sql_audit.record(
            conn, account.id, None, "sso_sign_in", {"mfa": mfa, "pending_step": step}
        )
    return StaffLogin(account.id, session, account.role, step)
