"""Staff single sign-on through OpenID Connect: the start and the provider's callback
(docs/staff-sign-in.md "Single sign-on"; the flow is in confide.services.sso).

The attempt's cookie is SameSite=Lax, so that the browser sends it when the provider sends it
back (a top-level GET from another site), and lives 10 minutes. The staff cookie is
SameSite=Strict, which the browser would not send on a redirect that began at the provider: the
callback answers with a page of ours that goes on from here.
"""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from confide import logs
from confide.oidc import Provider
from confide.services import sso
from webapp.auth import (
    ENROL_PAGE,
    SECOND_FACTOR_PAGE,
    cookie_name,
    second_factor_roles,
    set_session_cookie,
)
from webapp.handlers.caseworker import landing
from webapp.keys import CTX, ORG, SETTINGS, SSO_PROVIDER, STAFF_LOGIN_LIMITS
from webapp.security import is_tls

log = logs.get("confide.web.staff")
ATTEMPT_COOKIE = "sso"


def _provider(request: web.Request) -> Provider:
    provider = request.app.get(SSO_PROVIDER)
    if provider is None:
        raise web.HTTPNotFound()  # single sign-on is not set up here
    return provider


async def start(request: web.Request) -> web.StreamResponse:
    provider = _provider(request)
    request.app[STAFF_LOGIN_LIMITS].start(request)
    started = await sso.begin(request.app[CTX], provider, request.app[ORG].sso)
    response = web.HTTPSeeOther(started.url)
    response.set_cookie(
        cookie_name(request, ATTEMPT_COOKIE),
        started.cookie,
        path="/",
        max_age=sso.ATTEMPT_S,
        httponly=True,
        samesite="Lax",
        secure=is_tls(request, request.app[SETTINGS]),
    )
    raise response


async def callback(request: web.Request) -> web.StreamResponse:
    provider = _provider(request)
    done = await sso.finish(
        request.app[CTX],
        provider,
        request.app[ORG].sso,
        request.cookies.get(cookie_name(request, ATTEMPT_COOKIE), ""),
        request.query,
        required=second_factor_roles(request),
    )
    log.info("staff_sso_ok", outcome=done.pending_step or "ok")
    if done.pending_step is None:
        next_url = landing(done.role)
    else:
        next_url = SECOND_FACTOR_PAGE if done.pending_step == "second_factor" else ENROL_PAGE
    response = aiohttp_jinja2.render_template(
        "staff/sso_continue.html",
        request,
        {"next_url": next_url, "staff": None, "csrf_token": ""},
    )
    response.headers["Cache-Control"] = "no-store"
    set_session_cookie(request, response, "staff", done.session)
    response.del_cookie(
        cookie_name(request, ATTEMPT_COOKIE),
        path="/",
        secure=is_tls(request, request.app[SETTINGS]),
        samesite="Lax",
    )
    return response
