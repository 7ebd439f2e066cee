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
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from confide.crypto import keyed_hash
from confide.domain import SessionKind
from confide.services import sessions
from confide.services.sessions import ActiveSession, NewSession
from confide.services.threads import Staff, resume_staff
from confide.settings import Settings
from webapp.keys import CSRF_TOKEN, CTX, SETTINGS, STAFF_MEMBER
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
        found["staff_member"] = (resumed[1], Auth(resumed[0], via_cookie)) if resumed else None
        if resumed:
            request[STAFF_MEMBER] = resumed[1]
            request[CSRF_TOKEN] = sessions.csrf_token(request.app[SETTINGS], resumed[0].token_hmac)
    staff: tuple[Staff, Auth] | None = found["staff_member"]
    return staff


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
