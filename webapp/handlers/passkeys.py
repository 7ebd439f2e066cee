"""Staff passkeys: adding one (from "Sign-in and security", or as the enrolment a sign-in was
sent to), removing one, the second step with a passkey, and sign-in without the password where
the organisation allows it (docs/staff-sign-in.md "Passkeys").

Each ceremony is an ordinary form: ``webapp/static/passkeys.js`` asks the browser for the
passkey with the options on the page (or, on the login page, fetched when the button is
pressed), puts the browser's answer in the form's ``credential`` field and sends the form.
"""

from __future__ import annotations

from aiohttp import web

from confide import logs
from confide.errors import ValidationFailed
from confide.services import passkeys
from confide.services import staff as staff_service
from confide.services.passkeys import PasskeyInvalid, PasskeySignInOff
from confide.services.second_factor import EnrolledMeanwhile
from confide.services.staff import ROLES, SignInExpired
from confide.services.threads import Staff
from webapp.auth import (
    SECOND_FACTOR_PAGE,
    Auth,
    login_binding,
    pending_for,
    set_session_cookie,
    staff_cookie,
    staff_cookie_purpose,
    staff_for,
)
from webapp.forms import read_form
from webapp.handlers.caseworker import landing, render, render_login, staff_page
from webapp.handlers.staff_security import codes_page, confirm_it_is_them, form_token
from webapp.i18n import _
from webapp.keys import CTX, FORM, ORG, STAFF_LOGIN_LIMITS
from webapp.report_flow import FormErrors

log = logs.get("confide.web.staff")
REGISTER_PURPOSE = staff_cookie_purpose("staff-passkey-register")
NEW_PAGE = "/staff/security/passkeys/new"


# --- Adding a passkey --------------------------------------------------------------------------


async def _registering(request: web.Request) -> tuple[int, Staff | None, Auth | None]:
    """Who is adding a passkey: a signed-in staff member, or a half-signed-in browser sent to
    enrolment. Redirects anyone else."""
    found = await staff_for(request)
    if found is not None:
        return found[0].id, found[0], found[1]
    pending = await pending_for(request)
    if pending is not None and pending.step == "enrol":
        return pending.staff_id, None, None
    raise web.HTTPSeeOther("/staff/sign-in/second-factor" if pending else "/staff/login")


async def _register_page(
    request: web.Request, *, status: int = 200, errors: FormErrors | None = None, name: str = ""
) -> web.Response:
    staff_id, member, auth = await _registering(request)
    options = await passkeys.registration_options(
        request.app[CTX], staff_id, staff_cookie(request), request.app[ORG].name
    )
    context = {
        "form_token": form_token(request, REGISTER_PURPOSE),
        "options": options,
        "name": name,
        "must_enrol": member is None,
        "errors": errors,
    }
    return render(request, "staff/passkey_new.html", member, auth, context, status=status)


async def register_page(request: web.Request) -> web.StreamResponse:
    return await _register_page(request)


async def register_again(
    request: web.Request, form: dict[str, str], exc: Exception, status: int
) -> web.Response | None:
    name = form.get("name", "")[:200]
    if isinstance(exc, ValidationFailed):
        errors = FormErrors([(e.field, e.message) for e in exc.errors])
    elif isinstance(exc, PasskeyInvalid):
        message = _("The passkey could not be added. Try again.")
        errors = FormErrors([("passkey", message)])
    elif isinstance(exc, SignInExpired) or getattr(exc, "no_cookie", False):
        return render_login(
            request, status=401, error=_("Your sign-in took too long. Please log in again.")
        )
    else:
        return None
    return await _register_page(request, status=status, errors=errors, name=name)


async def register_submit(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    name, response = form.get("name", "")[:200], form.get("credential", "")
    _staff_id, member, auth = await _registering(request)
    if member is not None:
        return await _add_for_signed_in(request, member, auth, name, response)
    try:
        codes, done = await staff_service.enrol_passkey(
            request.app[CTX], staff_cookie(request), name, response
        )
    except EnrolledMeanwhile:
        raise web.HTTPSeeOther(SECOND_FACTOR_PAGE) from None
    log.info("passkey_registered", outcome="ok")
    next_url = landing(done.role)
    # No codes: a factor was added meanwhile (another tab), so there is nothing more to show.
    page: web.StreamResponse = (
        codes_page(request, None, None, codes, next_url=next_url, enrolled="passkey")
        if codes is not None
        else web.HTTPSeeOther(next_url)
    )
    set_session_cookie(request, page, "staff", done.session)
    return page


async def _add_for_signed_in(
    request: web.Request, member: Staff, auth: Auth | None, name: str, response: str
) -> web.Response:
    codes = await passkeys.register(
        request.app[CTX], member.id, staff_cookie(request), name, response
    )
    log.info("passkey_registered", outcome="ok")
    if codes is None:
        raise web.HTTPSeeOther("/staff/security?done=passkey-added")
    return codes_page(
        request, member, auth, codes, next_url=landing(member.role), enrolled="passkey"
    )


@staff_page(post=True, roles=ROLES)
async def remove(request: web.Request, member: Staff, auth: Auth) -> web.StreamResponse:
    public_id = request[FORM].get("passkey", "")[:40]
    await confirm_it_is_them(request, member, f"passkey_proof_{public_id}")
    await passkeys.remove(request.app[CTX], member.id, public_id)
    raise web.HTTPSeeOther("/staff/security?done=passkey-removed")


# --- The second step, and sign-in without the password ---------------------------------------


async def second_factor_submit(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    done = await staff_service.finish_with_passkey(
        request.app[CTX], staff_cookie(request), form.get("credential", "")
    )
    log.info("staff_logged_in", outcome="ok")
    response = web.HTTPSeeOther(landing(done.role))
    set_session_cookie(request, response, "staff", done.session)
    raise response


def _allowed(request: web.Request) -> str:
    if not request.app[ORG].passkey_sign_in:
        raise PasskeySignInOff()
    binding = login_binding(request)
    if binding is None:  # the form token is bound to it: the policy has refused this already
        raise PasskeyInvalid()
    return binding


async def login_options(request: web.Request) -> web.StreamResponse:
    """The options for a sign-in without the password, fetched by passkeys.js when its button is
    pressed (so that a visit to the login page stores nothing)."""
    binding = _allowed(request)
    request.app[STAFF_LOGIN_LIMITS].start(request)
    options = await passkeys.authentication_options(request.app[CTX], passkeys.SIGN_IN, binding)
    return web.Response(text=options, content_type="application/json")


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    binding = _allowed(request)
    done = await staff_service.sign_in_with_passkey(
        request.app[CTX], binding, form.get("credential", "")
    )
    log.info("staff_logged_in", outcome="ok")
    response = web.HTTPSeeOther(landing(done.role))
    set_session_cookie(request, response, "staff", done.session)
    raise response
