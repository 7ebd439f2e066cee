"""Case worker pages: login, team inbox, thread view and actions, password, audit, admin."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any
from uuid import UUID

import aiohttp_jinja2
from aiohttp import web
from markupsafe import Markup

from confide import logs, models
from confide.domain import ThreadStatus
from confide.errors import RateLimited, ValidationFailed
from confide.services import admin, attachments, audit, links, ops, receipts, sessions, threads
from confide.services import staff as staff_service
from confide.services.passkeys import PasskeyInvalid, PasskeySignInOff
from confide.services.staff import ROLES, THREAD_READER_ROLES
from confide.services.threads import Forbidden, Staff
from webapp import form_files, message_drafts
from webapp.admin_forms import apply_admin_form
from webapp.auth import (
    ENROL_PAGE,
    SECOND_FACTOR_PAGE,
    Auth,
    clear_session_cookie,
    login_binding,
    login_cookie_bound,
    login_cookie_purpose,
    second_factor_roles,
    set_login_cookie,
    set_session_cookie,
    signed_in_staff,
    staff_for,
)
from webapp.errors import error_page
from webapp.files import send_file
from webapp.form_routes import FormPage, TokenRefused
from webapp.forms import confirmed, read_form
from webapp.i18n import _
from webapp.keys import (
    CATEGORIES,
    CSRF_TOKEN,
    CTX,
    FORM,
    HASHER,
    INBOX_COUNTS,
    INBOX_ROWS,
    ORG,
    SETTINGS,
    SSO_PROVIDER,
    STAFF_LOGIN_LIMITS,
)
from webapp.metrics import queue_lengths_or_none
from webapp.report_flow import FormErrors
from webapp.security import check_form_token, new_form_token

log = logs.get("confide.web.staff")
LOGIN_PURPOSE = "staff-login"
INBOX_STATES = ("awaiting", "nearing", "overdue", "mine", "new", "open", "closed")
StaffHandler = Callable[[web.Request, Staff, Auth], Awaitable[web.StreamResponse]]


def staff_page(
    *,
    post: bool = False,
    roles: tuple[str, ...] = THREAD_READER_ROLES,
    while_enrolling: bool = False,
) -> Callable[[StaffHandler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """Require a full staff session; ``roles`` limits who may enter (else 403). The CSRF token
    of a post was checked before (webapp.policy), whose form is then on ``request[FORM]``.

    By default a page is for the roles that read threads, so a new page cannot forget that ops
    sees none: a page for every account (password, logout) or for ops says so with ``roles``.

    The second-factor rule is kept here, for every staff page: a half-signed-in browser is sent
    to its second step (a code, or enrolment) and reaches nothing else, and so is a signed-in
    account that must have a second factor and has none, unless the page is part of enrolling
    (``while_enrolling``: the enrolment page itself and logging out).
    """

    def wrap(handler: StaffHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        @wraps(handler)
        async def inner(request: web.Request) -> web.StreamResponse:
            # Error pages are then in the staff layout; anyone else is sent where they belong.
            found = await signed_in_staff(request, while_enrolling=while_enrolling)
            if found[0].role not in roles:
                raise Forbidden()  # "Your role cannot open this page."
            if post:
                await read_form(request)
            return await handler(request, *found)

        return inner

    return wrap


def render(
    request: web.Request,
    template: str,
    member: Staff | None,
    auth: Auth | None,
    context: dict[str, Any],
    status: int = 200,
) -> web.Response:
    context = _page_context(request, member, auth, context)
    return aiohttp_jinja2.render_template(template, request, context, status=status)


def _page_context(
    request: web.Request, member: Staff | None, auth: Auth | None, context: dict[str, Any]
) -> dict[str, Any]:
    # staff_page has put this session's token on the request; the login page has none.
    csrf_token = request.get(CSRF_TOKEN) or (auth.csrf(request.app[SETTINGS]) if auth else "")
    errors = context.get("errors") or FormErrors([])
    return dict(context, staff=member, csrf_token=csrf_token, errors=errors)


# Printed where the encoded piece goes; a template's values are autoescaped, so only the
# template itself can write "<!--" (a value's "<" is printed as "&lt;").
SPLICE_MARK = Markup("<!--spliced-->")


def render_spliced(
    request: web.Request,
    template: str,
    member: Staff,
    auth: Auth,
    context: dict[str, Any],
    slot: str,
    piece: bytes,
) -> web.Response:
    """As :func:`render`, with ``context[slot]`` given as ``piece``: markup already encoded as
    UTF-8, which is put between the page's encoded halves instead of being printed.

    Kept for ``make bench`` ``statistics`` (admin p99 ÷ bare form ≤ 1.5): printing an admin's
    190 KB of statistics into the page copied it twice, and one non-ASCII character anywhere in
    the page (the title's dash) made Python store and encode the whole page at two bytes a
    character; splicing its bytes costs a copy (docs/benchmarks.md, 2026-12-03).
    """
    context = _page_context(request, member, auth, {**context, slot: SPLICE_MARK})
    text = aiohttp_jinja2.render_string(template, request, context)
    head, mark, tail = text.partition(SPLICE_MARK)
    if not mark or SPLICE_MARK in tail:
        raise RuntimeError(f"{template} must print {slot} exactly once")
    body = b"".join((head.encode("utf-8"), piece, tail.encode("utf-8")))
    return web.Response(body=body, content_type="text/html", charset="utf-8")


def field_errors(exc: Exception, rename: dict[str, str] | None = None) -> FormErrors | None:
    """A ValidationFailed's errors for the form's fields (``rename``: service name -> field)."""
    if not isinstance(exc, ValidationFailed):
        return None
    rename = rename or {}
    return FormErrors([(rename.get(e.field, e.field), e.message) for e in exc.errors])


def form_again(
    template: str,
    context: Callable[[web.Request, dict[str, str]], Awaitable[dict[str, Any]]],
    rename: dict[str, str] | None = None,
    *,
    signed_in: bool = True,
) -> FormPage:
    """A form's page drawn again with its ValidationFailed's errors (webapp.form_routes):
    ``context`` gives the page's own values, from what was typed; ``rename`` maps the
    service's field names to the form's; ``signed_in=False``: a page without the staff menu."""

    async def again(
        request: web.Request, form: dict[str, str], exc: Exception, status: int
    ) -> web.Response | None:
        errors = field_errors(exc, rename)
        if errors is None:
            return None  # the other domain errors: the error middleware's table
        found = await staff_for(request) if signed_in else None
        member, auth = found or (None, None)
        page = dict(await context(request, form), errors=errors)
        return render(request, template, member, auth, page, status=status)

    return again


# --- Login ---------------------------------------------------------------------------------


def login_purpose(request: web.Request) -> str:
    return LOGIN_PURPOSE


PASSKEY_LOGIN_NAME = "staff-passkey-login"
PASSKEY_LOGIN_PURPOSE = login_cookie_purpose(PASSKEY_LOGIN_NAME)


def _passkey_login_token(request: web.Request) -> tuple[str | None, str | None]:
    """The passkey form's token where the organisation allows sign-in with a passkey, and a new
    login cookie to set when the browser has none: the token and the challenge are bound to it."""
    if not request.app[ORG].passkey_sign_in:
        return None, None
    binding = login_binding(request)
    fresh = None if binding else secrets.token_urlsafe(32)
    purpose = login_cookie_bound(request, PASSKEY_LOGIN_NAME, binding or fresh or "")
    return new_form_token(request.app[SETTINGS], purpose), fresh


def render_login(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    email: str = "",
    passkey_error: str | None = None,
    notice: str | None = None,
) -> web.Response:
    """The login page: the password form, "Sign in with <organisation>" where single sign-on
    is set up (alone, where the organisation switched password sign-in off), and the passkey
    button where passkeys may replace the password."""
    errors = [("email", error)] if error else []
    context: dict[str, Any] = {
        "form_token": new_form_token(request.app[SETTINGS], LOGIN_PURPOSE),
        "email": email,
        "errors": FormErrors(errors + ([("passkey", passkey_error)] if passkey_error else [])),
        "notice": notice,
        "sso": SSO_PROVIDER in request.app,
        "password_sign_in": request.app[ORG].sso.password_sign_in,
    }
    context["passkey_token"], fresh = _passkey_login_token(request)
    response = render(request, "staff/login.html", None, None, context, status=status)
    if fresh:
        set_login_cookie(request, response, fresh)
    return response


def _login_refused(request: web.Request, exc: Exception, status: int) -> web.Response:
    """A passkey sign-in refused, or a password where the organisation uses SSO only."""
    if isinstance(exc, staff_service.PasswordSignInDisabled):
        notice = _("Passwords are not used here: sign in through %(org)s.") % {
            "org": request.app[ORG].name
        }
        return render_login(request, status=status, notice=notice)
    message = (
        _("Signing in with a passkey is not turned on here. Log in with your password.")
        if isinstance(exc, PasskeySignInOff)
        else _("That passkey could not sign you in. Try again, or log in with your password.")
    )
    return render_login(request, status=status, passkey_error=message)


async def login_again(
    request: web.Request, form: dict[str, str], exc: Exception, status: int
) -> web.Response | None:
    """The login page for a refused token or sign-in (webapp.form_routes.FormPage)."""
    if isinstance(exc, TokenRefused):
        error = _("The page had expired. Please log in again.")
    elif isinstance(exc, RateLimited):
        error = _("Too many failed attempts. Wait %(n)s seconds, then try again.") % {
            "n": exc.retry_after
        }
    elif isinstance(exc, staff_service.StaffLoginFailed):
        error = _("The email address or password is not right.")
    elif isinstance(exc, staff_service.SignInExpired):
        error = _("Your sign-in took too long. Please log in again.")
    elif isinstance(exc, PasskeyInvalid | PasskeySignInOff | staff_service.PasswordSignInDisabled):
        return _login_refused(request, exc, status)
    else:
        return None
    return render_login(request, status=status, email=form.get("email", "")[:254], error=error)


async def login(request: web.Request) -> web.Response:
    return render_login(request)


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    done = await staff_service.log_in(
        request.app[CTX],
        request.app[HASHER].local,
        request.app[STAFF_LOGIN_LIMITS].guard(request),
        form.get("email", "")[:254],
        form.get("password", ""),
        required=second_factor_roles(request),
        password_sign_in=request.app[ORG].sso.password_sign_in,
    )
    if done.pending_step is not None:  # a half-signed-in session: its second step is due
        log.info("staff_password_ok", outcome=done.pending_step)
        step = SECOND_FACTOR_PAGE if done.pending_step == "second_factor" else ENROL_PAGE
        response = web.HTTPSeeOther(step)
    else:
        log.info("staff_logged_in", outcome="ok")
        response = web.HTTPSeeOther(landing(done.role))
    set_session_cookie(request, response, "staff", done.session)
    raise response


def landing(role: str) -> str:
    """Each role lands where it works: ops on its dashboard, since it reads no inbox."""
    return "/staff" if role in THREAD_READER_ROLES else "/ops"


@staff_page(post=True, roles=ROLES, while_enrolling=True)
async def logout(request: web.Request, member: Staff, auth: Auth) -> web.StreamResponse:
    await sessions.end(request.app[CTX], auth.session.token_hmac)
    response = web.HTTPSeeOther("/staff/login")
    clear_session_cookie(request, response, "staff")
    await message_drafts.forget(request, "staff", response)
    raise response


# --- Inbox and threads ---------------------------------------------------------------------


def _page_number(request: web.Request) -> int:
    try:
        page = int(request.query.get("page", "1"))
    except ValueError:
        return 1
    return min(max(page, 1), 100_000)


def _reference_query(request: web.Request) -> str | None:
    return request.query.get("q", "").strip().upper()[:20] or None


@staff_page()
async def inbox(request: web.Request, member: Staff, auth: Auth) -> web.Response:
    state = request.query.get("state", "awaiting")
    state = state if state in INBOX_STATES else "awaiting"
    reference, page = _reference_query(request), _page_number(request)
    counts = await request.app[INBOX_COUNTS].for_member(request.app[CTX], member)
    result = await threads.inbox(
        request.app[CTX], member, state=state, page=page, reference=reference, counts=counts
    )
    context = {
        "result": result,
        "state": state,
        "states": INBOX_STATES,
        "q": reference or "",
        "done": request.query.get("done", ""),
    }
    rows = request.app[INBOX_ROWS].render(result.threads)
    return render(request, "staff/inbox.html", member, auth, dict(context, rows=rows, page=page))


@staff_page()
async def escalations(request: web.Request, member: Staff, auth: Auth) -> web.Response:
    rows = await threads.escalations(request.app[CTX], member)
    return render(request, "staff/escalations.html", member, auth, {"threads": rows})


@staff_page()
async def thread_page(request: web.Request, member: Staff, auth: Auth) -> web.Response:
    reference = request.match_info["reference"]
    uploader = attachments.Uploader.staff(member.id)
    body, files = await message_drafts.kept(request, "staff", auth, reference, uploader)
    typed = {"reply": body} if body else None
    return await render_thread(request, member, auth, typed=typed, files=files)


@staff_page()
async def print_page(request: web.Request, member: Staff, auth: Auth) -> web.Response:
    """The printable case record (``?notes=1`` includes the internal notes); audited."""
    with_notes = request.query.get("notes") == "1"
    reference = request.match_info["reference"]
    view = await threads.print_view(request.app[CTX], member, reference, with_notes=with_notes)
    context = {"thread": view, "with_notes": with_notes}
    return render(request, "staff/print.html", member, auth, context)


async def render_thread(
    request: web.Request,
    member: Staff,
    auth: Auth,
    *,
    errors: FormErrors | None = None,
    typed: dict[str, str] | None = None,
    status: int = 200,
    receipt_result: receipts.TamperCheck | None = None,
    files: form_files.Files | None = None,
) -> web.Response:
    page = await threads.staff_page(request.app[CTX], member, request.match_info["reference"])
    context = {
        **form_files.page_context(request, files or form_files.Files()),
        "thread": page.thread,
        "teams": page.teams,
        "members": page.members,
        "errors": errors,
        "typed": typed or {},
        "message_token": new_form_token(request.app[SETTINGS], "reply"),
        "done": request.query.get("done", ""),
        "receipt_result": receipt_result,
    }
    response = render(request, "staff/thread.html", member, auth, context, status=status)
    message_drafts.set_cookie(request, "staff", response)  # a file refused: the rest kept
    return response


def thread_again(action: str) -> FormPage:
    """The thread page with the errors and what was typed, for a form that is not valid."""

    async def again(
        request: web.Request, form: dict[str, str], exc: Exception, status: int
    ) -> web.Response | None:
        found = await staff_for(request)
        errors = field_errors(exc, {} if action == "reply" else {"body": action})
        if found is None or errors is None:
            return None  # the other domain errors: the error middleware's table
        typed = {action: form.get("body") or form.get("note") or form.get("receipt") or ""}
        if action in ("extend", "release_file"):
            typed = {"extension": form.get("extension", ""), "reason": form.get("reason", "")}
        if action == "reply" and (refused := form_files.refused_files(exc)):
            errors = FormErrors(refused)
        files = form_files.files_shown_again(request)
        status = status if errors else 200
        return await render_thread(
            request, *found, errors=errors, status=status, typed=typed, files=files
        )

    return again


ThreadForm = Callable[[web.Request, Staff, dict[str, str], str], Awaitable[str]]
STATUS_DONE = {
    ThreadStatus.OPEN: "reopened",
    ThreadStatus.CLOSED: "closed",
    ThreadStatus.CONTACTED: "contacted",
}


def thread_form(
    action: str,
) -> Callable[[ThreadForm], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """One form of the thread page (``/staff/threads/{reference}/<action>``), each its own route.

    The wrapped function reads its fields, calls one service and names what it did (a fixed
    word the page maps to its notice, ``?done=closed``: never what was typed); its errors are
    drawn by the route's page (thread_again) or the error middleware's table. The member's own
    inbox counts are then recounted for their next page. Then the thread page again, or the
    inbox once the thread has left this member's sight.
    """

    def wrap(do: ThreadForm) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        @staff_page(post=True)
        @wraps(do)
        async def handler(request: web.Request, member: Staff, auth: Auth) -> web.StreamResponse:
            form, reference = request[FORM], request.match_info["reference"]
            done = await do(request, member, form, reference)
            request.app[INBOX_COUNTS].forget_member(member)
            hidden = action == "restrict" and form.get("restricted") == "1"
            if action == "team" or (hidden and not member.is_manager):
                raise web.HTTPSeeOther(f"/staff?done={done}")
            raise web.HTTPSeeOther(f"/staff/threads/{reference}?done={done}#done")

        return handler

    return wrap


@thread_form("reply")
async def reply(request: web.Request, member: Staff, form: dict[str, str], reference: str) -> str:
    found = await staff_for(request)
    assert found is not None  # staff_page let the request in
    auth, uploader = found[1], attachments.Uploader.staff(member.id)
    page = f"/staff/threads/{reference}#files"  # "Add these files", "Remove": 303 back there
    files = await message_drafts.take_files(request, "staff", auth, reference, uploader, page)
    body = threads.message_body(form.get("body"))
    token = check_form_token(request.app[SETTINGS], "reply", form.get("message_token", ""))
    await threads.reply(
        request.app[CTX],
        member,
        reference,
        body,
        idempotency_key=token,
        feedback=form.get("feedback") == "1",
        files=threads.Files(tuple(files.ids), files.keep_names),
    )
    await message_drafts.sent(request, "staff", auth, reference)
    return "reply"


@thread_form("release_file")
async def release_file(
    request: web.Request, member: Staff, form: dict[str, str], reference: str
) -> str:
    """A manager releases a file that could not be made safe (the service refuses any other
    role, and records the release with its reason in the audit log)."""
    attachment_id = form_files.attachment_id(form.get("attachment", ""))
    reason = models.parse(models.ReleaseFile, {"reason": form.get("reason", "")}).reason
    await attachments.release(request.app[CTX], member, attachment_id, reason)
    return "file_released"


@thread_form("note")
async def note(request: web.Request, member: Staff, form: dict[str, str], reference: str) -> str:
    body = threads.message_body(form.get("note"), "note")
    feedback = form.get("feedback") == "1"  # feedback given outside Confide (docs/lifecycle.md)
    await threads.add_note(request.app[CTX], member, reference, body, feedback=feedback)
    return "note"


@thread_form("status")
async def status(request: web.Request, member: Staff, form: dict[str, str], reference: str) -> str:
    chosen = form.get("status", "")
    await threads.set_status(request.app[CTX], member, reference, chosen)
    return STATUS_DONE[ThreadStatus(chosen)]  # the service refused any other value


@thread_form("assign")
async def assign(request: web.Request, member: Staff, form: dict[str, str], reference: str) -> str:
    email = form.get("email") or None
    await threads.set_assignee(request.app[CTX], member, reference, email)
    return "assigned" if email else "unassigned"


@thread_form("restrict")
async def restrict(
    request: web.Request, member: Staff, form: dict[str, str], reference: str
) -> str:
    restricted = form.get("restricted") == "1"
    await threads.set_restricted(request.app[CTX], member, reference, restricted)
    return "restricted" if restricted else "unrestricted"


@thread_form("extend")
async def extend(request: web.Request, member: Staff, form: dict[str, str], reference: str) -> str:
    length, reason = form.get("extension", "")[:40], form.get("reason", "")[:4000]
    await threads.extend_retention(request.app[CTX], member, reference, length, reason)
    return "extended"


@thread_form("hold")
async def hold(request: web.Request, member: Staff, form: dict[str, str], reference: str) -> str:
    held = form.get("hold") == "1"
    await threads.set_legal_hold(request.app[CTX], member, reference, held)
    return "held" if held else "released"


@thread_form("team")
async def team(request: web.Request, member: Staff, form: dict[str, str], reference: str) -> str:
    await threads.set_team(request.app[CTX], member, reference, form.get("team", ""))
    return "moved"


@thread_form("link")
async def link(request: web.Request, member: Staff, form: dict[str, str], reference: str) -> str:
    """Link this report to the earlier one its reporter named (both must be visible)."""
    await links.link(request.app[CTX], member, reference, form.get("other", "")[:20])
    return "linked"


@thread_form("unlink")
async def unlink(request: web.Request, member: Staff, form: dict[str, str], reference: str) -> str:
    await links.unlink(request.app[CTX], member, reference, form.get("other", "")[:20])
    return "unlinked"


@staff_page(post=True)
async def receipt_check(request: web.Request, member: Staff, auth: Auth) -> web.Response:
    """Tamper evidence: does the stored report still match a reporter's receipt? Audited; the
    answer is drawn on the thread page itself (never carried in a link someone could forge)."""
    text = request[FORM].get("receipt", "")
    result = await receipts.check_stored(
        request.app[CTX], member, request.match_info["reference"], text
    )
    return await render_thread(request, member, auth, receipt_result=result)


# --- Password ------------------------------------------------------------------------------


@staff_page(roles=ROLES)
async def password_page(request: web.Request, member: Staff, auth: Auth) -> web.Response:
    return render(
        request, "staff/password.html", member, auth, {"done": request.query.get("done") == "1"}
    )


async def _password_fields(request: web.Request, form: dict[str, str]) -> dict[str, Any]:
    return {"done": False}


async def _set_password_fields(request: web.Request, form: dict[str, str]) -> dict[str, Any]:
    return {"token": form.get("token", "")[:100]}


async def _admin_fields(request: web.Request, form: dict[str, str]) -> dict[str, Any]:
    return await admin.overview(request.app[CTX])


password_again = form_again("staff/password.html", _password_fields)
set_password_again = form_again(
    "staff/set_password.html", _set_password_fields, rename={"password": "new"}, signed_in=False
)
admin_again = form_again("staff/admin.html", _admin_fields)


@staff_page(post=True, roles=ROLES)
async def password_submit(request: web.Request, member: Staff, auth: Auth) -> web.StreamResponse:
    new = confirmed(request[FORM], "new", "confirm", _("The new passwords do not match"))
    await staff_service.change_password(
        request.app[CTX],
        request.app[HASHER].local,
        member.id,
        request[FORM].get("current", ""),
        new,
        keep_session=auth.session.token_hmac,
    )
    raise web.HTTPSeeOther("/staff/password?done=1")


async def set_password_page(request: web.Request) -> web.Response:
    context = {"token": request.query.get("token", "")[:100]}
    return render(request, "staff/set_password.html", None, None, context)


async def set_password_submit(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    new = confirmed(form, "new", "confirm", _("The passwords do not match"))
    token = form.get("token", "")[:100]
    await staff_service.finish_reset(request.app[CTX], request.app[HASHER].local, token, new)
    raise web.HTTPSeeOther("/staff/login")


# --- Audit and admin -----------------------------------------------------------------------


@staff_page(roles=("manager", "admin"))
async def audit_page(request: web.Request, member: Staff, auth: Auth) -> web.Response:
    page, reference = _page_number(request), _reference_query(request)
    found = await audit.recent(request.app[CTX], member, page=page, reference=reference)
    return render(
        request,
        "staff/audit.html",
        member,
        auth,
        {"rows": found.rows, "page": page, "next_page": found.next_page, "q": reference or ""},
    )


@staff_page(roles=("admin",))
async def admin_page(request: web.Request, member: Staff, auth: Auth) -> web.Response:
    return render(request, "staff/admin.html", member, auth, await admin.overview(request.app[CTX]))


@staff_page(post=True, roles=("admin",))
async def admin_submit(request: web.Request, member: Staff, auth: Auth) -> web.StreamResponse:
    await apply_admin_form(request.app[CTX], member.id, request[FORM])
    request.app[CATEGORIES].invalidate()
    raise web.HTTPSeeOther("/staff/admin?done=1")


# --- Ops -----------------------------------------------------------------------------------


@staff_page(roles=("ops",))
async def ops_page(request: web.Request, member: Staff, auth: Auth) -> web.Response:
    view = await ops.overview(request.app[CTX], request.app[SETTINGS].worker_down_after_s)
    context = {
        "view": view,
        "queues": await queue_lengths_or_none(request),  # None: Redis is away, and it says so
        "done": request.query.get("done", ""),
    }
    return render(request, "ops/dashboard.html", member, auth, context)


@staff_page(post=True, roles=("ops",))
async def ops_action(request: web.Request, member: Staff, auth: Auth) -> web.StreamResponse:
    try:
        outbox_id = UUID(request[FORM].get("outbox_id", ""))
    except ValueError:
        return error_page(request, 422, _("That failed job was not recognised."))
    if request.match_info["action"] == "retry":
        await ops.retry_dead_letter(request.app[CTX], member.id, outbox_id)
    else:
        await ops.dismiss_dead_letter(request.app[CTX], member.id, outbox_id)
    raise web.HTTPSeeOther(f"/ops?done={request.match_info['action']}")


@staff_page()
async def attachment_download(
    request: web.Request, member: Staff, auth: Auth
) -> web.StreamResponse:
    """A file of a thread the member sees: the stripped copy, or a released original (409 page
    while it is being prepared or could not be made safe); audited by the service."""
    found = form_files.attachment_id(request.match_info["attachment_id"])
    return await send_file(
        request, await attachments.staff_download(request.app[CTX], member, found)
    )


@staff_page()
async def attachment_preview(request: web.Request, member: Staff, auth: Auth) -> web.StreamResponse:
    """An image's preview (a re-encoded copy of the stripped file), inline and sandboxed."""
    found = form_files.attachment_id(request.match_info["attachment_id"])
    return await send_file(
        request, await attachments.staff_preview(request.app[CTX], member, found)
    )
