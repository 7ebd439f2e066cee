"""The "Your sessions" page: a staff member's sessions and personal access tokens, each with a
button that ends it (docs/staff-sign-in.md "Your sessions", "Personal access tokens").

Every form is cookie-authenticated and carries the session's CSRF token (``webapp.policy``). No
IP address and no user agent is kept, so none is shown.
"""

from __future__ import annotations

from aiohttp import web

from confide.services import sign_in_notices, staff_sessions
from confide.services.staff import ROLES
from confide.services.threads import Staff
from webapp.auth import Auth, clear_session_cookie
from webapp.handlers.caseworker import render, staff_page
from webapp.i18n import _
from webapp.keys import CTX, FORM

PATH = sign_in_notices.SESSIONS_PATH
DONE = {"ended", "others", "revoked", "gone"}


def _words(methods: tuple[str, ...]) -> str:
    return sign_in_notices.method_words(methods, _)


@staff_page(roles=ROLES)
async def sessions_page(request: web.Request, member: Staff, auth: Auth) -> web.Response:
    view = await staff_sessions.overview(request.app[CTX], member.id, auth.session.token_hmac)
    done = request.query.get("done", "")[:20]
    context = {
        "sessions": [(s, _words(s.methods)) for s in view.sessions],
        "tokens": view.tokens,
        "others": sum(1 for s in view.sessions if not s.current),
        "done": done if done in DONE else "",
    }
    response = render(request, "staff/sessions.html", member, auth, context)
    response.headers["Cache-Control"] = "no-store"
    return response


@staff_page(post=True, roles=ROLES)
async def end_session(request: web.Request, member: Staff, auth: Auth) -> web.StreamResponse:
    public_id = request[FORM].get("session", "")
    view = await staff_sessions.overview(request.app[CTX], member.id, auth.session.token_hmac)
    this_one = any(str(s.public_id) == public_id.strip() and s.current for s in view.sessions)
    ended = await staff_sessions.end_one(request.app[CTX], member.id, public_id)
    if this_one and ended:  # they signed this browser out: as the Log out button does
        response = web.HTTPSeeOther("/staff/login")
        clear_session_cookie(request, response, "staff")
        raise response
    raise web.HTTPSeeOther(f"{PATH}?done={'ended' if ended else 'gone'}")


@staff_page(post=True, roles=ROLES)
async def end_other_sessions(request: web.Request, member: Staff, auth: Auth) -> web.StreamResponse:
    await staff_sessions.end_others(request.app[CTX], member.id, auth.session.token_hmac)
    raise web.HTTPSeeOther(f"{PATH}?done=others")


@staff_page(post=True, roles=ROLES)
async def revoke_token(request: web.Request, member: Staff, auth: Auth) -> web.StreamResponse:
    revoked = await staff_sessions.revoke_token(
        request.app[CTX], member.id, request[FORM].get("token", "")
    )
    raise web.HTTPSeeOther(f"{PATH}?done={'revoked' if revoked else 'gone'}")
