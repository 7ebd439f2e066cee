"""Staff sign-in's second step and the "Sign-in and security" page (docs/staff-sign-in.md).

A half-signed-in browser (a right password, a second step due) reaches only the two pages here
that it needs: the second-factor page, or the enrolment page when its role must have a second
factor and it has none. Both forms carry a token bound to the browser's staff cookie
(``webapp.auth.staff_cookie_purpose``), since such a session has no CSRF token of its own.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from confide import logs
from confide.errors import RateLimited, ValidationFailed
from confide.services import passkeys, second_factor
from confide.services import staff as staff_service
from confide.services.passkeys import PasskeyInvalid
from confide.services.second_factor import (
    AlreadyEnrolled,
    EnrolledMeanwhile,
    SecondFactorInvalid,
)
from confide.services.staff import ROLES, SignInExpired
from confide.services.threads import Staff
from webapp.auth import (
    SECOND_FACTOR_PAGE,
    Auth,
    must_enrol,
    pending_for,
    second_factor_roles,
    set_session_cookie,
    staff_cookie,
    staff_cookie_purpose,
    staff_for,
)
from webapp.forms import read_form
from webapp.handlers.caseworker import (
    landing,
    render,
    render_login,
    staff_page,
)
from webapp.i18n import _
from webapp.keys import CTX, FORM, HASHER, ORG, SETTINGS
from webapp.report_flow import FormErrors
from webapp.security import new_form_token

log = logs.get("confide.web.staff")
SECOND_FACTOR_PURPOSE = staff_cookie_purpose("staff-second-factor")
PASSKEY_SECOND_FACTOR_PURPOSE = staff_cookie_purpose("staff-passkey-second-factor")
ENROL_PURPOSE = staff_cookie_purpose("staff-enrol")


def form_token(request: web.Request, purpose: Any) -> str:
    bound = purpose(request)
    assert bound is not None  # the page is drawn for a browser with a staff cookie only
    return new_form_token(request.app[SETTINGS], bound)


# --- The second step of a sign-in ------------------------------------------------------------


async def _second_factor_page(
    request: web.Request, *, status: int = 200, errors: FormErrors | None = None
) -> web.Response:
    pending = await pending_for(request)
    if pending is None:
        return render_login(
            request, status=401, error=_("Your sign-in took too long. Please log in again.")
        )
    ctx = request.app[CTX]
    factors = await second_factor.status(ctx, pending.staff_id, required=False)
    context: dict[str, Any] = {
        "form_token": form_token(request, SECOND_FACTOR_PURPOSE),
        "errors": errors,
        "has_totp": factors.has_totp,
        "passkey_options": None,
    }
    if factors.passkeys:  # "Use a passkey": its challenge bound to this browser's staff cookie
        context["passkey_options"] = await passkeys.authentication_options(
            ctx, passkeys.SECOND_FACTOR, staff_cookie(request), pending.staff_id
        )
        context["passkey_token"] = form_token(request, PASSKEY_SECOND_FACTOR_PURPOSE)
    return render(request, "staff/second_factor.html", None, None, context, status=status)


async def second_factor_page(request: web.Request) -> web.StreamResponse:
    pending = await pending_for(request)
    if pending is None or pending.step != "second_factor":
        found = await staff_for(request)
        raise web.HTTPSeeOther(landing(found[0].role) if found else "/staff/login")
    return await _second_factor_page(request)


async def second_factor_again(
    request: web.Request, form: dict[str, str], exc: Exception, status: int
) -> web.Response | None:
    """The second-factor page for a wrong code or a wait; the login page once it expired."""
    field = "code"
    if isinstance(exc, SecondFactorInvalid):
        message = _("That code is not right, or it was used already. Try the newest code.")
    elif isinstance(exc, PasskeyInvalid):
        field, message = "passkey", _("That passkey could not be checked. Try again.")
    elif isinstance(exc, RateLimited):
        message = _("Too many wrong codes. Wait %(n)s seconds, then try again.") % {
            "n": exc.retry_after
        }
    elif isinstance(exc, SignInExpired) or getattr(exc, "no_cookie", False):
        return render_login(
            request, status=401, error=_("Your sign-in took too long. Please log in again.")
        )
    else:
        return None
    if request.path.endswith("/passkey") and isinstance(exc, RateLimited):
        field = "passkey"
    return await _second_factor_page(request, status=status, errors=FormErrors([(field, message)]))


async def second_factor_submit(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    done = await staff_service.finish_second_factor(
        request.app[CTX], staff_cookie(request), form.get("code", "")[:64]
    )
    log.info("staff_logged_in", outcome="ok")
    response = web.HTTPSeeOther(landing(done.role))
    set_session_cookie(request, response, "staff", done.session)
    raise response


# --- Enrolling an authenticator --------------------------------------------------------------


async def _enrolling(request: web.Request) -> tuple[int, Staff | None, Auth | None, bool]:
    """Who is enrolling: a signed-in staff member (from the security page, or sent here by the
    rule), or a half-signed-in browser whose role must enrol. Redirects anyone else."""
    found = await staff_for(request)
    if found is not None:
        member, auth = found
        if auth.session.has_second_factor:
            raise web.HTTPSeeOther("/staff/security")
        return member.id, member, auth, must_enrol(request, member, auth)
    pending = await pending_for(request)
    if pending is not None and pending.step == "enrol":
        return pending.staff_id, None, None, True
    raise web.HTTPSeeOther(SECOND_FACTOR_PAGE if pending else "/staff/login")


async def _enrol_page(
    request: web.Request, *, status: int = 200, errors: FormErrors | None = None
) -> web.Response:
    staff_id, member, auth, required = await _enrolling(request)
    try:
        enrolment = await second_factor.begin_totp(
            request.app[CTX], staff_id, request.app[ORG].name, staff_cookie(request)
        )
    except AlreadyEnrolled:
        raise web.HTTPSeeOther("/staff/security") from None
    context = {
        "form_token": form_token(request, ENROL_PURPOSE),
        "qr_svg": enrolment.qr_svg(),
        "secret": enrolment.secret_grouped,
        "must_enrol": required,
        "errors": errors,
    }
    return render(request, "staff/enrol_authenticator.html", member, auth, context, status=status)


async def enrol_page(request: web.Request) -> web.StreamResponse:
    return await _enrol_page(request)


async def enrol_again(
    request: web.Request, form: dict[str, str], exc: Exception, status: int
) -> web.Response | None:
    if isinstance(exc, ValidationFailed):
        errors = FormErrors([(e.field, e.message) for e in exc.errors])
        return await _enrol_page(request, status=status, errors=errors)
    if isinstance(exc, SignInExpired) or getattr(exc, "no_cookie", False):
        return render_login(
            request, status=401, error=_("Your sign-in took too long. Please log in again.")
        )
    return None


def codes_page(
    request: web.Request,
    member: Staff | None,
    auth: Auth | None,
    codes: list[str],
    *,
    next_url: str,
    enrolled: str | None,
) -> web.Response:
    context = {"codes": codes, "next_url": next_url, "enrolled": enrolled}
    response = render(request, "staff/recovery_codes.html", member, auth, context)
    response.headers["Cache-Control"] = "no-store"  # the codes are shown this once
    return response


async def _enrol_signed_in(
    request: web.Request, member: Staff, auth: Auth | None, code: str
) -> web.Response:
    """A signed-in staff member's own enrolment (AlreadyEnrolled, from a second tab, is the
    error middleware's 409 page)."""
    codes = await second_factor.confirm_totp(
        request.app[CTX], member.id, staff_cookie(request), code
    )
    log.info("second_factor_enrolled", outcome="ok")
    return codes_page(request, member, auth, codes, next_url=landing(member.role), enrolled="totp")


async def enrol_submit(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    code = form.get("code", "")[:64]
    _staff_id, member, auth, _required = await _enrolling(request)
    if member is not None:
        return await _enrol_signed_in(request, member, auth, code)
    try:
        codes, done = await staff_service.finish_enrolment(
            request.app[CTX], staff_cookie(request), code
        )
    except EnrolledMeanwhile:
        raise web.HTTPSeeOther(SECOND_FACTOR_PAGE) from None
    log.info("second_factor_enrolled", outcome="ok")
    response = codes_page(request, None, None, codes, next_url=landing(done.role), enrolled="totp")
    set_session_cookie(request, response, "staff", done.session)
    return response


# --- The security page -----------------------------------------------------------------------


async def _security_context(request: web.Request, member: Staff) -> dict[str, Any]:
    required = member.role in second_factor_roles(request)
    status = await second_factor.status(request.app[CTX], member.id, required=required)
    return {"status": status, "done": request.query.get("done", "")[:20]}


@staff_page(roles=ROLES)
async def security_page(request: web.Request, member: Staff, auth: Auth) -> web.Response:
    return render(
        request, "staff/security.html", member, auth, await _security_context(request, member)
    )


async def security_again(
    request: web.Request, form: dict[str, str], exc: Exception, status: int
) -> web.Response | None:
    if not isinstance(exc, ValidationFailed | RateLimited):
        return None
    found = await staff_for(request)
    if found is None:
        return None
    member, auth = found
    errors = _proof_errors(_proof_field(request, form), exc)
    context = dict(await _security_context(request, member), errors=errors, done="")
    return render(request, "staff/security.html", member, auth, context, status=status)


def _proof_field(request: web.Request, form: dict[str, str]) -> str:
    """The form's password-or-code field: one per passkey, since each has its own form."""
    if request.path.endswith("/passkeys/remove"):
        return f"passkey_proof_{form.get('passkey', '')[:40]}"
    return "remove_proof" if request.path.endswith("/remove") else "codes_proof"


def _proof_errors(field: str, exc: ValidationFailed | RateLimited) -> FormErrors:
    if isinstance(exc, RateLimited):
        message = _("Too many wrong codes. Wait %(n)s seconds, then try again.") % {
            "n": exc.retry_after
        }
        return FormErrors([(field, message)])
    return FormErrors([(field, e.message) for e in exc.errors])


async def confirm_it_is_them(request: web.Request, member: Staff, field: str) -> None:
    await staff_service.confirm_identity(
        request.app[CTX], request.app[HASHER].local, member.id, request[FORM].get(field, ""), field
    )


@staff_page(post=True, roles=ROLES)
async def remove_authenticator(
    request: web.Request, member: Staff, auth: Auth
) -> web.StreamResponse:
    await confirm_it_is_them(request, member, "remove_proof")
    await second_factor.remove_totp(request.app[CTX], member.id)
    raise web.HTTPSeeOther("/staff/security?done=removed")


@staff_page(post=True, roles=ROLES)
async def new_recovery_codes(request: web.Request, member: Staff, auth: Auth) -> web.Response:
    await confirm_it_is_them(request, member, "codes_proof")
    replacing = request[FORM].get("codes_set", "")[:32]
    try:
        codes = await second_factor.regenerate_recovery_codes(
            request.app[CTX], member.id, replacing
        )
    except second_factor.CodesMadeAlready:
        raise web.HTTPSeeOther("/staff/security?done=codes-kept") from None
    return codes_page(request, member, auth, codes, next_url="/staff/security", enrolled=None)
