"""Who is asking: reporter and staff sessions from a cookie or a bearer token (looked up once a
request), and the login form's cookie binding.

Cookies are HttpOnly, SameSite=Strict, and over HTTPS Secure with the ``__Host-`` prefix.
Cookie-authenticated forms must carry the session's CSRF token (checked by ``webapp.policy``
before the handler); bearer calls need none. Everything
under ``/api/`` authenticates by Bearer token only and ignores cookies (CONTRACTS §3 "Tokens"),
so a browser's cookie can never carry a cross-site call there.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from confide.crypto import keyed_hash
from confide.domain import SessionKind
from confide.services import second_factor, sessions
from confide.services import staff as staff_service
from confide.services.sessions import ActiveSession, NewSession, PendingSession
from confide.services.sso import SSO_MFA
from confide.services.threads import Staff, resume_staff
from confide.settings import Settings
from webapp.keys import CSRF_TOKEN, CTX, ORG, SETTINGS, STAFF_MEMBER
from webapp.security import is_tls

CLEAR_SITE_DATA = '"cache", "cookies", "storage"'
API_PREFIX = "/api/"
# Who a request is, looked up once: the form policy (webapp.policy) asks before the handler does.
_FOUND = web.RequestKey("found_sessions", dict[str, Any])


@dataclass(frozen=True)
class Auth:
    session: ActiveSession
    via_cookie: bool

    def csrf(self, settings: Settings) -> str:
        return sessions.csrf_token(settings, self.session.token_hmac)


def cookie_name(request: web.Request, kind: str) -> str:
    return f"__Host-{kind}" if is_tls(request, request.app[SETTINGS]) else kind


def _token(request: web.Request, kind: str) -> tuple[str | None, bool]:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip(), False
    if request.path.startswith(API_PREFIX):
        return None, False  # the API takes no cookie: it asks for no CSRF token
    return request.cookies.get(cookie_name(request, kind)), True


def _found(request: web.Request) -> dict[str, Any]:
    found = request.get(_FOUND)
    if found is None:
        found = request[_FOUND] = {}
    return found


async def session_for(request: web.Request, kind: SessionKind) -> Auth | None:
    found = _found(request)
    if kind in found:
        auth: Auth | None = found[kind]
        return auth
    token, via_cookie = _token(request, kind)
    active = await sessions.resume(request.app[CTX], kind, token) if token else None
    found[kind] = auth = Auth(active, via_cookie) if active else None
    return auth


async def reporter_for(request: web.Request) -> Auth | None:
    """The reporter's session, if it is one with a thread."""
    auth = await session_for(request, SessionKind.REPORTER)
    return auth if auth and auth.session.thread_id else None


def set_session_cookie(
    request: web.Request, response: web.StreamResponse, kind: str, new: NewSession
) -> None:
    response.set_cookie(
        cookie_name(request, kind),
        new.token,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=is_tls(request, request.app[SETTINGS]),
    )


def clear_session_cookie(request: web.Request, response: web.StreamResponse, kind: str) -> None:
    response.del_cookie(
        cookie_name(request, kind),
        path="/",
        secure=is_tls(request, request.app[SETTINGS]),
        samesite="Strict",
    )
    response.headers["Clear-Site-Data"] = CLEAR_SITE_DATA


async def staff_for(request: web.Request) -> tuple[Staff, Auth] | None:
    """The staff member and session; error pages from here on are drawn in the staff layout,
    with this member's menu."""
    found = _found(request)
    if "staff_member" not in found:
        token, via_cookie = _token(request, "staff")
        resumed = await resume_staff(request.app[CTX], token) if token else None
        if resumed and resumed[0].personal_token and not _token_may_open(request, via_cookie):
            resumed = None  # a personal access token opens the staff API, and nothing else
        found["staff_member"] = (resumed[1], Auth(resumed[0], via_cookie)) if resumed else None
        if resumed:
            request[STAFF_MEMBER] = resumed[1]
            request[CSRF_TOKEN] = sessions.csrf_token(request.app[SETTINGS], resumed[0].token_hmac)
    staff: tuple[Staff, Auth] | None = found["staff_member"]
    return staff


def _token_may_open(request: web.Request, via_cookie: bool) -> bool:
    """A personal access token is a Bearer token for the staff API only: never a cookie, and
    never on an HTML page (docs/staff-sign-in.md "Personal access tokens")."""
    return not via_cookie and request.path.startswith(STAFF_API_PREFIX)


STAFF_API_PREFIX = "/api/v1/staff/"


# --- The second step of a staff sign-in -----------------------------------------------------


def second_factor_roles(request: web.Request) -> frozenset[str]:
    """The roles that must sign in with a second factor (the organisation file, else the
    default for CONFIDE_ENV)."""
    settings = request.app[SETTINGS]
    return second_factor.required_roles(request.app[ORG], production=settings.is_production)


def must_enrol(request: web.Request, member: Staff, auth: Auth) -> bool:
    """A full session whose account must have a second factor and has none (the rule came in
    after it signed in, or the factor was removed): it may reach enrolment and nothing else."""
    if auth.session.personal_token:  # issued by an admin for an integration: no second factor
        return False
    if SSO_MFA in auth.session.methods:  # the provider's multi-factor sign-in counted as one
        return False
    return not auth.session.has_second_factor and member.role in second_factor_roles(request)


SECOND_FACTOR_PAGE = "/staff/sign-in/second-factor"
ENROL_PAGE = "/staff/security/authenticator"


async def signed_in_staff(request: web.Request, *, while_enrolling: bool) -> tuple[Staff, Auth]:
    """The staff member of a full session, or a redirect: a half-signed-in browser to its second
    step (a code, or enrolment), and it reaches nothing else; an account that must have a
    second factor and has none to enrolment, unless the page is part of enrolling
    (``while_enrolling``); anyone else to the login page."""
    found = await staff_for(request)
    if found is None:
        pending = await pending_for(request)
        if pending is not None:
            raise web.HTTPSeeOther(
                SECOND_FACTOR_PAGE if pending.step == "second_factor" else ENROL_PAGE
            )
        raise web.HTTPSeeOther("/staff/login")
    if not while_enrolling and must_enrol(request, *found):
        raise web.HTTPSeeOther(ENROL_PAGE)
    return found


async def pending_for(request: web.Request) -> PendingSession | None:
    """The browser's half-signed-in staff session (a right password, the second step due).
    No staff page or API call accepts it: only the second-factor and enrolment pages."""
    found = _found(request)
    if "pending" not in found:
        token = request.cookies.get(cookie_name(request, "staff"))
        found["pending"] = (
            await staff_service.pending_sign_in(request.app[CTX], token) if token else None
        )
    pending: PendingSession | None = found["pending"]
    return pending


def staff_cookie(request: web.Request) -> str:
    return request.cookies.get(cookie_name(request, "staff"), "")


def staff_cookie_purpose(name: str) -> Callable[[web.Request], str | None]:
    """A form-token purpose bound to this browser's staff cookie (None: it sent none): the
    second-step forms, which a half-signed-in session fills, have no session CSRF token, and a
    cross-site page can neither read nor send that cookie (SameSite=Strict)."""

    def purpose(request: web.Request) -> str | None:
        cookie = staff_cookie(request)
        if not cookie:
            return None
        mac = keyed_hash(request.app[SETTINGS].session_key, "staff-cookie-binding", cookie)
        return f"{name}:{mac.hex()}"

    return purpose


# --- Login CSRF: the reporter login form's token is bound to a cookie of this browser ----------

LOGIN_PURPOSE = "reporter-login"
# A cross-site page can neither read nor set this cookie, so a token fetched by an attacker does
# not log a victim's browser into the attacker's thread (docs/security.md "Login CSRF").
LOGIN_COOKIE = "login"


def login_binding(request: web.Request) -> str | None:
    """The browser's login cookie, if it sent one that is ours."""
    value = request.cookies.get(cookie_name(request, LOGIN_COOKIE), "")
    if (
        40 <= len(value) <= 64
        and value.isascii()
        and value.replace("-", "").replace("_", "").isalnum()
    ):
        return value
    return None


def login_purpose(request: web.Request, binding: str | None = None) -> str | None:
    """The purpose the login form's token is signed for (None: the browser sent no cookie)."""
    binding = binding or login_binding(request)
    if binding is None:
        return None
    mac = keyed_hash(request.app[SETTINGS].session_key, "login-binding", binding).hex()
    return f"{LOGIN_PURPOSE}:{mac}"


def login_cookie_purpose(name: str) -> Callable[[web.Request], str | None]:
    """A form-token purpose bound to this browser's login cookie (None: it sent none), for the
    staff login page's passkey form: its challenge is bound to the same cookie."""

    def purpose(request: web.Request) -> str | None:
        binding = login_binding(request)
        return None if binding is None else login_cookie_bound(request, name, binding)

    return purpose


def login_cookie_bound(request: web.Request, name: str, binding: str) -> str:
    mac = keyed_hash(request.app[SETTINGS].session_key, "login-binding", binding).hex()
    return f"{name}:{mac}"


def bind_login_form(request: web.Request) -> tuple[str, str | None]:
    """The login form's purpose, and a new cookie value to set when the browser has none."""
    binding = login_binding(request)
    fresh = None if binding else secrets.token_urlsafe(32)
    purpose = login_purpose(request, binding or fresh)
    assert purpose is not None
    return purpose, fresh


def set_login_cookie(request: web.Request, response: web.StreamResponse, value: str) -> None:
    response.set_cookie(
        cookie_name(request, LOGIN_COOKIE),
        value,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=is_tls(request, request.app[SETTINGS]),
    )
