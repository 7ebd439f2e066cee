"""Request policy in middleware: what every unsafe HTML request must satisfy before a handler.

Every POST (PUT, PATCH, DELETE) to an HTML route must come from this site: the same-origin rule
of docs/security.md (``Origin`` or ``Referer``, ``Origin: null`` only with Fetch metadata saying
same-origin), checked here once for every route, so a form added later is covered by default.
Then the form must carry the token its route declares (``webapp.form_routes``, the ``FORMS``
table of ``webapp.routes``): the session's CSRF token for cookie sessions, a signed form token
for the login forms. A route that declares nothing is refused. A refused token raises
:class:`~webapp.form_routes.FormRefused`, which the error middleware draws as the route's page
("expired", with what was typed) or a 403 page.
The JSON API (``/api/``) is outside it: it reads no cookie and authenticates by bearer token,
and a cross-site page cannot send it JSON without a CORS preflight that it never answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from confide import logs
from confide.crypto import same_text
from webapp.auth import API_PREFIX, Auth, reporter_for, staff_for
from webapp.errors import error_page
from webapp.form_routes import CsrfRefused, Form, Token, TokenRefused, declared
from webapp.forms import read_form
from webapp.i18n import N_, _
from webapp.keys import SETTINGS
from webapp.security import checked_form_token, same_origin

log = logs.get("confide.web.policy")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CROSS_SITE = N_("This form must be sent from this site.")
UNDECLARED = N_("This form cannot be sent.")
STAFF_EXPIRED = N_("This form has expired. Go back, reload the page and try again.")
REPORTER_EXPIRED = N_("This form has expired. Go back, reload and try again.")


@web.middleware
async def same_origin_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if (
        request.method not in UNSAFE_METHODS
        or request.match_info.http_exception is not None  # no route (404/405 as usual)
        or request.path.startswith(API_PREFIX)
    ):
        return await handler(request)
    if not same_origin(request, request.app[SETTINGS]):
        return error_page(request, 403, _(CROSS_SITE))
    form = declared(request)
    if form is None:  # the safe default: a form nobody declared carries no known token
        log.error("undeclared_form_route", route=request.match_info.route.name or "unnamed")
        return error_page(request, 403, _(UNDECLARED))
    await check_token(request, form)
    return await handler(request)


async def check_token(request: web.Request, form: Form) -> None:
    """Raise FormRefused unless the request carries the token ``form`` declares."""
    if form.token is Token.STAFF_SESSION:
        found = await staff_for(request)  # a refusal is then drawn in the staff layout
        if found is not None:
            await _session_csrf(request, found[1], STAFF_EXPIRED)
    elif form.token is Token.REPORTER_SESSION:
        auth = await reporter_for(request)
        if auth is not None:
            await _session_csrf(request, auth, REPORTER_EXPIRED)
    elif form.token is Token.SIGNED:
        assert form.purpose is not None
        purpose = form.purpose(request)
        if purpose is None:
            raise TokenRefused(no_cookie=True)
        fields = await read_form(request)
        token = fields.get("form_token", "")
        if checked_form_token(request, request.app[SETTINGS], purpose, token) is None:
            raise TokenRefused()
    # Token.SERVICE and Token.NONE: the declaration says why no token is checked here.


async def _session_csrf(request: web.Request, auth: Auth, expired: str) -> None:
    """A cookie session's form must carry its CSRF token; a bearer call needs none. Without a
    session the handler answers as it does for any visitor (a redirect to log in)."""
    if not auth.via_cookie:
        return
    fields = await read_form(request)
    if not same_text(fields.get("csrf_token", ""), auth.csrf(request.app[SETTINGS])):
        raise CsrfRefused(expired)  # translated where it is shown (webapp.errors)
