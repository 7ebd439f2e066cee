"""Who is asking: reporter and staff sessions from a cookie or a bearer token, and CSRF.

Cookies are HttpOnly, SameSite=Strict, and over HTTPS Secure with the ``__Host-`` prefix.
Cookie-authenticated forms must carry the session's CSRF token; bearer calls need none. Everything
under ``/api/`` authenticates by Bearer token only and ignores cookies (CONTRACTS §3 "Tokens"),
so a browser's cookie can never carry a cross-site call there.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from confide.crypto import same_text
from confide.domain import SessionKind
from confide.services import sessions
from confide.services.sessions import ActiveSession, NewSession
from confide.services.threads import Staff, resume_staff
from confide.settings import Settings
from webapp.keys import CTX, SETTINGS
from webapp.security import is_tls

CLEAR_SITE_DATA = '"cache", "cookies", "storage"'
API_PREFIX = "/api/"


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


async def session_for(request: web.Request, kind: SessionKind) -> Auth | None:
    token, via_cookie = _token(request, kind)
    if not token:
        return None
    active = await sessions.resume(request.app[CTX], kind, token)
    return Auth(active, via_cookie) if active else None


def csrf_ok(request: web.Request, auth: Auth, form: dict[str, str]) -> bool:
    if not auth.via_cookie:
        return True
    expected = auth.csrf(request.app[SETTINGS])
    return same_text(form.get("csrf_token", ""), expected)


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
    token, via_cookie = _token(request, "staff")
    if not token:
        return None
    found = await resume_staff(request.app[CTX], token)
    if found is None:
        return None
    active, staff = found
    return staff, Auth(active, via_cookie)
