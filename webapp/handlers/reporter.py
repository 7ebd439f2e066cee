"""Reporter pages: start, the report questions, check answers, confirmation with the code."""

from __future__ import annotations

import secrets

import aiohttp_jinja2
from aiohttp import web

from confide import codes, logs
from confide.crypto import keyed_hash
from confide.domain import SessionKind
from confide.errors import (
    CodeMalformed,
    CodeNotRecognised,
    FormExpired,
    IdempotencyKeyReused,
    RateLimited,
    ThreadClosed,
    ValidationFailed,
)
from confide.models import NewReport
from confide.services import reminders, reporter_auth, reports, sessions, threads
from webapp import report_flow
from webapp.auth import (
    Auth,
    clear_session_cookie,
    cookie_name,
    csrf_ok,
    session_for,
    set_session_cookie,
)
from webapp.errors import error_page
from webapp.forms import read_form
from webapp.i18n import _
from webapp.keys import (
    CATEGORIES,
    CTX,
    HASHER,
    LIMITS,
    LOGIN_LIMITS,
    SETTINGS,
)
from webapp.report_flow import FormErrors
from webapp.security import (
    check_form_token,
    form_token_age_s,
    is_tls,
    new_form_token,
)

log = logs.get("confide.web.reporter")
SUBMIT_PURPOSE = "report-submit"
SUBMIT_TOKEN_NEW_S = 2 * 3600
"""A check page's token starts a new report for 2 hours (until drafts expire by idleness,
issue 14); after that it only answers a repeat of the report it sent, for 24 h."""
EXPIRED_NOTICE = (
    "This page had expired, so your report was not sent yet. "
    "Your answers are still here: check them and send the report again."
)


async def start(request: web.Request) -> web.Response:
    return aiohttp_jinja2.render_template("reporter/start.html", request, {})


async def accessibility(request: web.Request) -> web.Response:
    return aiohttp_jinja2.render_template("reporter/accessibility.html", request, {})


LOGIN_PURPOSE = "reporter-login"
# Login CSRF (docs/security.md): the login form's token is bound to a random cookie of this
# browser, which a cross-site page can neither read nor set, so a token fetched by an attacker
# does not log a victim's browser into the attacker's thread.
LOGIN_COOKIE = "login"


def _login_binding(request: web.Request) -> tuple[str | None, bool]:
    """The browser's login cookie, or a new one (``True``) when it sent none that is ours."""
    value = request.cookies.get(cookie_name(request, LOGIN_COOKIE), "")
    if (
        40 <= len(value) <= 64
        and value.isascii()
        and value.replace("-", "").replace("_", "").isalnum()
    ):
        return value, False
    return None, True


def _login_purpose(request: web.Request, binding: str) -> str:
    mac = keyed_hash(request.app[SETTINGS].session_key, "login-binding", binding).hex()
    return f"{LOGIN_PURPOSE}:{mac}"


def render_login(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    pending: dict[str, str] | None = None,
    notice: str | None = None,
    typed: str = "",
) -> web.Response:
    binding, fresh = _login_binding(request)
    if binding is None:
        binding = secrets.token_urlsafe(32)
    response = aiohttp_jinja2.render_template(
        "reporter/login.html",
        request,
        {
            "form_token": new_form_token(request.app[SETTINGS], _login_purpose(request, binding)),
            "errors": FormErrors([("code", error)] if error else []),
            "pending": pending or {},
            "notice": notice,
            "typed": typed,
            "logged_out": request.query.get("logged_out") == "1",
        },
        status=status,
    )
    if fresh:
        response.set_cookie(
            cookie_name(request, LOGIN_COOKIE),
            binding,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=is_tls(request, request.app[SETTINGS]),
        )
    return response


async def login(request: web.Request) -> web.Response:
    return render_login(request)


async def login_submit(request: web.Request) -> web.StreamResponse:
    """Code login. Malformed (422), then limited (429), then wrong (401), as CONTRACTS §2."""
    settings = request.app[SETTINGS]
    form = await read_form(request)
    pending = {k: form[k] for k in ("pending_body", "pending_token") if form.get(k)}
    typed = form.get("code", "")[:200]
    binding, _fresh = _login_binding(request)
    if binding is None:
        return render_login(
            request,
            status=400,
            pending=pending,
            notice=_(
                "Logging in needs a cookie, and your browser did not send it back. "
                "Allow cookies for this site (they last until you close the browser), "
                "then enter your code again."
            ),
        )
    token = form.get("form_token", "")
    if check_form_token(settings, _login_purpose(request, binding), token) is None:
        return render_login(
            request,
            status=400,
            pending=pending,
            notice=_("The page had expired. Please enter your code again."),
        )
    try:
        thread_id, session = await reporter_auth.log_in(
            request.app[CTX],
            typed,
            request.app[LOGIN_LIMITS].guard(request),
            request.app[HASHER].check_code,
        )
    except CodeMalformed:
        return render_login(
            request,
            status=422,
            pending=pending,
            typed=typed,
            error=_(
                "Codes have 16 letters and numbers, like 7QKM-2XRD-9HWB-T4NF. Check what you typed."
            ),
        )
    except RateLimited as exc:
        response = render_login(
            request,
            status=429,
            pending=pending,
            error=_("There have been too many attempts. Wait a few minutes, then try again."),
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except CodeNotRecognised:
        return render_login(
            request,
            status=401,
            pending=pending,
            error=_("That code was not recognised. Check it and try again."),
        )
    log.info("reporter_logged_in", thread_id=str(thread_id))
    target = "/messages"
    if pending.get("pending_body"):
        # The session had expired while they were typing: send what they wrote now.
        try:
            body = threads.message_body(pending["pending_body"])
            await threads.add_reporter_message(
                request.app[CTX],
                thread_id,
                body,
                idempotency_key=check_form_token(
                    settings, "message", pending.get("pending_token", "")
                ),
            )
            target = "/messages?sent=1"
        except (ValidationFailed, ThreadClosed, threads.NoReplyPossible, IdempotencyKeyReused):
            target = "/messages"
    response = web.HTTPSeeOther(target)
    set_session_cookie(request, response, "reporter", session)
    raise response


async def _reporter(request: web.Request) -> Auth | None:
    auth = await session_for(request, SessionKind.REPORTER)
    return auth if auth and auth.session.thread_id else None


async def messages_page(request: web.Request) -> web.Response:
    auth = await _reporter(request)
    if auth is None:
        raise web.HTTPSeeOther("/login")
    return await render_thread(request, auth)


async def render_thread(
    request: web.Request,
    auth: Auth,
    *,
    errors: FormErrors | None = None,
    typed: str = "",
    status: int = 200,
) -> web.Response:
    assert auth.session.thread_id is not None
    view = await threads.reporter_view(request.app[CTX], auth.session.thread_id)
    settings = request.app[SETTINGS]
    return aiohttp_jinja2.render_template(
        "reporter/thread.html",
        request,
        {
            "thread": view,
            "csrf_token": auth.csrf(settings),
            "errors": errors or FormErrors([]),
            "typed": typed,
            "message_token": new_form_token(settings, "message"),
            "sent": request.query.get("sent") == "1",
            "logout_at": auth.session.logout_at,
            "show_staff_names": settings.show_staff_names,
        },
        status=status,
    )


async def messages_submit(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    form = await read_form(request)
    auth = await _reporter(request)
    body_text = form.get("body", "")
    if auth is None:
        # Expired while typing: keep the words, carry them through the login form.
        return render_login(
            request,
            status=401,
            pending={
                "pending_body": body_text[:20_000],
                "pending_token": form.get("message_token", ""),
            },
            notice=_(
                "You were logged out, so your message has not been sent yet. Enter your "
                "code to log in again and it will be sent."
            ),
        )
    if not csrf_ok(request, auth, form):
        return error_page(request, 403, "This form has expired. Go back, reload and try again.")
    try:
        body = threads.message_body(body_text)
    except ValidationFailed:
        return await render_thread(
            request,
            auth,
            status=422,
            typed=body_text,
            errors=FormErrors([("body", _("Enter a message of 1 to 10,000 characters"))]),
        )
    token = check_form_token(settings, "message", form.get("message_token", ""))
    assert auth.session.thread_id is not None
    await threads.add_reporter_message(
        request.app[CTX], auth.session.thread_id, body, idempotency_key=token
    )
    log.info("reporter_message_added", thread_id=str(auth.session.thread_id))
    raise web.HTTPSeeOther("/messages?sent=1")


async def logout(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    auth = await _reporter(request)
    if auth is None:
        raise web.HTTPSeeOther("/login?logged_out=1")
    if not csrf_ok(request, auth, form):
        return error_page(request, 403, "This form has expired. Go back, reload and try again.")
    await sessions.end(request.app[CTX], auth.session.token_hmac)
    response = web.HTTPSeeOther("/login?logged_out=1")
    clear_session_cookie(request, response, "reporter")
    raise response


async def _categories(request: web.Request) -> list[dict[str, str]]:
    return await request.app[CATEGORIES].get(request.app[CTX])


async def render_step(
    request: web.Request, answers: dict[str, str], page: report_flow.Page
) -> web.Response:
    context = report_flow.page_context(page, answers, await _categories(request))
    template = f"reporter/step-{page.step}.html"
    if page.step == "check":
        template = "reporter/check.html"
        context["form_token"] = new_form_token(request.app[SETTINGS], SUBMIT_PURPOSE)
    return aiohttp_jinja2.render_template(template, request, context, status=page.status)


async def report_start(request: web.Request) -> web.Response:
    return await render_step(request, report_flow.answers_from({}), report_flow.Page("how"))


async def report_step(request: web.Request) -> web.Response:
    """One question answered: validate that page, then show the next (or check answers)."""
    form = await read_form(request)
    answers = report_flow.answers_from(form)
    categories = await request.app[CATEGORIES].slugs(request.app[CTX])
    return await render_step(request, answers, report_flow.after_step(form, answers, categories))


async def report_submit(request: web.Request) -> web.Response:
    """Commit the report, then (for anonymous follow-up) issue the code and show it once."""
    form = await read_form(request)
    answers = report_flow.answers_from(form)
    draft, errors = report_flow.check(
        answers, await request.app[CATEGORIES].slugs(request.app[CTX])
    )
    if draft is None:
        step = report_flow.first_bad_step(errors) or "how"
        page = report_flow.Page(step, report_flow.on_step(errors, step), "check", 422)
        return await render_step(request, answers, page)
    done = await _submit(request, draft, form.get("form_token", ""))
    if isinstance(done, report_flow.Page):
        return await render_step(request, answers, done)
    return await _confirmation(request, draft, done, answers, form.get("form_token", ""))


EXPIRED = report_flow.Page("check", status=400, notice=EXPIRED_NOTICE)


async def _submit(
    request: web.Request, draft: NewReport, token: str
) -> reports.Submitted | report_flow.Page:
    """The report submitted under the check page's token; or the check page again, saying why
    not (the page expired; or its token already sent other answers)."""
    nonce = check_form_token(request.app[SETTINGS], SUBMIT_PURPOSE, token)
    if nonce is None:
        return EXPIRED
    request.app[LIMITS].check(request)
    canonical = reports.canonical_draft(draft)
    idem = reports.submission_idempotency(request.app[SETTINGS], nonce, canonical, author="form")
    try:
        return await report_flow.submit_report(
            request,
            draft,
            idem,
            accept_new=form_token_age_s(token) <= SUBMIT_TOKEN_NEW_S,
            wait_for_first=True,
        )
    except FormExpired:
        return EXPIRED
    except IdempotencyKeyReused:
        notice = _(
            "A report was already sent from this page, and it was received. These answers "
            "are different: if you send them, they will be a second, separate report."
        )
        return report_flow.Page("check", status=422, notice=notice)


async def _confirmation(
    request: web.Request,
    draft: NewReport,
    done: reports.Submitted,
    answers: dict[str, str],
    token: str,
) -> web.Response:
    receipt = done.receipt
    reminder_token = None
    if done.code and receipt.reply_due_by is not None:
        reminder_token = await reminders.issue_token(request.app[CTX], receipt.thread_id)
    return aiohttp_jinja2.render_template(
        "reporter/confirmation.html",
        request,
        {
            "reply_due_by": receipt.reply_due_by,
            "reminder_token": reminder_token,
            "reference": receipt.reference,
            "code": codes.display(done.code) if done.code else None,
            "code_failed": done.code_failed,
            # A repeat that may not get another code: the code shown the first time still works.
            "already_received": not receipt.is_new and done.code is None,
            "wants_code": receipt.wants_code,
            "anonymous": draft.anonymous,
            "answers": answers,
            "form_token": token,
        },
    )


def ics_response(data: bytes) -> web.Response:
    return web.Response(
        body=data,
        content_type="text/calendar",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="reminder.ics"'},
    )


def reminder_not_ready(request: web.Request) -> web.Response:
    response = error_page(
        request, 503, _("Your reminder is not ready yet. Please try again in a moment.")
    )
    response.headers["Retry-After"] = "3"
    return response


async def reminder_download(request: web.Request) -> web.StreamResponse:
    """From the messaging page (logged in): the latest file for the reporter's own thread."""
    auth = await _reporter(request)
    if auth is None:
        raise web.HTTPSeeOther("/login")
    assert auth.session.thread_id is not None
    data = await reminders.latest(
        request.app[CTX],
        auth.session.thread_id,
        include_address=request.query.get("include_address") == "1",
    )
    return ics_response(data) if data is not None else reminder_not_ready(request)


async def reminder_from_confirmation(request: web.Request) -> web.StreamResponse:
    """From the confirmation page: a POST with a single-use token, never a URL."""
    form = await read_form(request)
    valid, data = await reminders.file_for_token(
        request.app[CTX],
        form.get("reminder_token", ""),
        include_address=form.get("include_address") == "1",
    )
    if not valid:
        return error_page(
            request,
            403,
            _(
                "This reminder link has been used or has expired. "
                "Log in with your code to download it again."
            ),
        )
    return ics_response(data) if data is not None else reminder_not_ready(request)
