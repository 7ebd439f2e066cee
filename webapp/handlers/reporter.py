"""Reporter pages: start, the report questions, check answers, confirmation with the code."""

from __future__ import annotations

from uuid import UUID

import aiohttp_jinja2
from aiohttp import web

from confide import codes, drafts, logs
from confide.crypto import same_text
from confide.errors import (
    CodeMalformed,
    CodeNotRecognised,
    DatabaseUnavailable,
    FormExpired,
    IdempotencyKeyReused,
    RateLimited,
    ReceiptInvalid,
    ReceiptLinkExpired,
    ReminderLinkUsed,
    ValidationFailed,
)
from confide.models import NewReport
from confide.receipts import Verified
from confide.services import (
    attachments,
    receipts,
    reminders,
    reporter_auth,
    reports,
    sessions,
    threads,
)
from webapp import form_files, message_drafts, report_drafts, report_files, report_flow
from webapp.auth import (
    Auth,
    bind_login_form,
    clear_session_cookie,
    reporter_for,
    set_login_cookie,
    set_session_cookie,
)
from webapp.files import send_file
from webapp.form_routes import TokenRefused
from webapp.forms import read_form
from webapp.i18n import N_, _
from webapp.keys import (
    CATEGORIES,
    CONFIRMATION_PAGES,
    CTX,
    DATES,
    HASHER,
    LIMITS,
    LOGIN_LIMITS,
    ORG,
    SETTINGS,
)
from webapp.report_flow import FormErrors
from webapp.responses import ics_response, latest_reminder
from webapp.security import (
    check_form_token,
    checked_form_token,
    form_token_age_s,
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


NO_COOKIE = N_(
    "Logging in needs a cookie, and your browser did not send it back. "
    "Allow cookies for this site (they last until you close the browser), "
    "then enter your code again."
)
LOGIN_EXPIRED = N_("The page had expired. Please enter your code again.")
# What the login page says for each refusal, beside its status (webapp.errors.ERROR_STATUS).
LOGIN_ERRORS: dict[type[Exception], str] = {
    CodeMalformed: N_(
        "Codes have 16 letters and numbers, like 7QKM-2XRD-9HWB-T4NF. Check what you typed."
    ),
    RateLimited: N_("There have been too many attempts. Wait a few minutes, then try again."),
    CodeNotRecognised: N_("That code was not recognised. Check it and try again."),
}


def render_login(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    pending: dict[str, str] | None = None,
    notice: str | None = None,
    typed: str = "",
) -> web.Response:
    """The login form, its token bound to this browser's login cookie (set here if new)."""
    purpose, fresh_cookie = bind_login_form(request)
    context = {
        "form_token": new_form_token(request.app[SETTINGS], purpose),
        "errors": FormErrors([("code", error)] if error else []),
        "pending": pending or {},
        "notice": notice,
        "typed": typed,
        "logged_out": request.query.get("logged_out") == "1",
    }
    response = aiohttp_jinja2.render_template(
        "reporter/login.html", request, context, status=status
    )
    if fresh_cookie:
        set_login_cookie(request, response, fresh_cookie)
    return response


def _pending(form: dict[str, str]) -> dict[str, str]:
    """A message typed while the session expired, carried through the login form."""
    return {k: form[k] for k in ("pending_body", "pending_token") if form.get(k)}


async def login_again(
    request: web.Request, form: dict[str, str], exc: Exception, status: int
) -> web.Response | None:
    """The login page for a refused token or login (webapp.form_routes.FormPage)."""
    if isinstance(exc, TokenRefused):
        notice = NO_COOKIE if exc.no_cookie else LOGIN_EXPIRED
        return render_login(request, status=status, pending=_pending(form), notice=_(notice))
    error = LOGIN_ERRORS.get(type(exc))
    if error is None:
        return None
    typed = form.get("code", "")[:200] if isinstance(exc, CodeMalformed) else ""
    return render_login(request, status=status, pending=_pending(form), typed=typed, error=_(error))


async def login(request: web.Request) -> web.Response:
    return render_login(request)


async def login_submit(request: web.Request) -> web.StreamResponse:
    """Code login. Malformed (422), then limited (429), then wrong (401), as CONTRACTS §2; the
    login page is drawn again for each (login_again). A message typed while the session had
    expired is sent now."""
    form = await read_form(request)
    thread_id, session = await reporter_auth.log_in(
        request.app[CTX],
        form.get("code", "")[:200],
        request.app[LOGIN_LIMITS].guard(request),
        request.app[HASHER].check_code,
    )
    log.info("reporter_logged_in", thread_id=str(thread_id))
    await report_drafts.forget_code(request)  # the confirmation shows the code no more
    key = check_form_token(request.app[SETTINGS], "message", form.get("pending_token", ""))
    sent = await threads.send_pending_message(
        request.app[CTX], thread_id, form.get("pending_body"), idempotency_key=key
    )
    response = web.HTTPSeeOther("/messages?sent=1" if sent else "/messages")
    set_session_cookie(request, response, "reporter", session)
    raise response


async def messages_page(request: web.Request) -> web.Response:
    auth = await reporter_for(request)
    if auth is None:
        raise web.HTTPSeeOther("/login")
    typed, files = await message_drafts.kept(request, "reporter", auth, MESSAGES, _uploader(auth))
    return await render_thread(request, auth, typed=typed, files=files)


MESSAGES = "messages"  # the reporter's message draft's place: their one thread


def _uploader(auth: Auth) -> attachments.Uploader:
    assert auth.session.thread_id is not None
    return attachments.Uploader.reporter(auth.session.thread_id)


async def render_thread(
    request: web.Request,
    auth: Auth,
    *,
    errors: FormErrors | None = None,
    typed: str = "",
    status: int = 200,
    files: form_files.Files | None = None,
) -> web.Response:
    assert auth.session.thread_id is not None
    settings = request.app[SETTINGS]
    page = await threads.reporter_page(request.app[CTX], auth.session.thread_id)
    context = {
        **form_files.page_context(request, files or form_files.Files()),
        "thread": page.thread,
        "new_reply": page.new_reply,
        "csrf_token": auth.csrf(settings),
        "errors": errors or FormErrors([]),
        "typed": typed,
        "message_token": new_form_token(settings, "message"),
        "sent": request.query.get("sent") == "1",
        "logout_at": auth.session.logout_at,
        "show_staff_names": settings.show_staff_names,
    }
    response = aiohttp_jinja2.render_template(
        "reporter/thread.html", request, context, status=status
    )
    message_drafts.set_cookie(request, "reporter", response)  # a file refused: the rest kept
    return response


async def thread_again(
    request: web.Request, form: dict[str, str], exc: Exception, status: int
) -> web.Response | None:
    """The messages page with what was typed, for a message that is not valid."""
    auth = await reporter_for(request)
    if auth is None or not isinstance(exc, ValidationFailed):
        return None
    errors = form_files.refused_files(exc)
    if not errors and not isinstance(exc, form_files.FilesToShow):
        errors = [("body", _("Enter a message of 1 to 10,000 characters"))]
    return await render_thread(
        request,
        auth,
        status=status if errors else 200,
        typed=form.get("body", ""),
        errors=FormErrors(errors),
        files=form_files.files_shown_again(request),
    )


async def messages_submit(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    auth = await reporter_for(request)
    if auth is None:
        # Expired while typing: keep the words, carry them through the login form.
        pending = {
            "pending_body": form.get("body", "")[:20_000],
            "pending_token": form.get("message_token", ""),
        }
        return render_login(request, status=401, pending=pending, notice=_(LOGGED_OUT))
    assert auth.session.thread_id is not None
    # "Add these files" or "Remove": kept in the draft, 303 to /messages; refused: thread_again
    files = await message_drafts.take_files(
        request, "reporter", auth, MESSAGES, _uploader(auth), "/messages#files"
    )
    body = threads.message_body(form.get("body", ""))
    token = check_form_token(request.app[SETTINGS], "message", form.get("message_token", ""))
    await threads.add_reporter_message(
        request.app[CTX],
        auth.session.thread_id,
        body,
        idempotency_key=token,
        files=threads.Files(tuple(files.ids), files.keep_names),
    )
    log.info("reporter_message_added", thread_id=str(auth.session.thread_id))
    await message_drafts.sent(request, "reporter", auth, MESSAGES)
    raise web.HTTPSeeOther("/messages?sent=1")


LOGGED_OUT = N_(
    "You were logged out, so your message has not been sent yet. Enter your "
    "code to log in again and it will be sent."
)


async def logout(request: web.Request) -> web.StreamResponse:
    auth = await reporter_for(request)
    if auth is None:
        response = web.HTTPSeeOther("/login?logged_out=1")
        await message_drafts.forget(request, "reporter", response)
        raise response
    await sessions.end(request.app[CTX], auth.session.token_hmac)
    response = web.HTTPSeeOther("/login?logged_out=1")
    clear_session_cookie(request, response, "reporter")
    await message_drafts.forget(request, "reporter", response)
    raise response


async def _categories(request: web.Request) -> list[dict[str, str]]:
    return await request.app[CATEGORIES].get(request.app[CTX])


async def render_step(
    request: web.Request,
    answers: dict[str, str],
    page: report_flow.Page,
    *,
    carry: bool = True,
    form_token: str | None = None,
    files: form_files.Files | None = None,
) -> web.Response:
    """A question page or check answers. ``carry``: the answers ride in hidden fields (no draft
    cookie); with a draft they are drawn from it and the page posts only its own. ``files``: the
    report's files so far (with a draft, the draft's; without one, those the page carries)."""
    context = report_flow.page_context(page, answers, await _categories(request))
    context["carry"] = carry
    context.update(await report_files.page_context(request, files or form_files.Files()))
    template = f"reporter/step-{page.step}.html"
    if page.step == "check":
        template = "reporter/check.html"
        context["form_token"] = form_token or new_form_token(request.app[SETTINGS], SUBMIT_PURPOSE)
    return aiohttp_jinja2.render_template(template, request, context, status=page.status)


async def report_start(request: web.Request) -> web.Response:
    """The first question. A live draft's answers are kept (browser Back to here); otherwise a
    new draft cookie, with a fresh key, is set, and an earlier draft (a confirmation) deleted."""
    browser = report_drafts.browser_key(request)
    draft = await report_drafts.load(request, browser)
    answers = report_drafts.answers_of(draft)
    fresh = drafts.new_key() if answers is None else None
    if fresh is not None and draft is not None:
        # A report sent before: its confirmation ends. A cookie whose key does not open its
        # row (tampered, or another browser's draft id) deletes nothing: it only starts afresh.
        await report_drafts.forget(request)
    page = report_flow.Page("how")
    response = await render_step(
        request, answers or report_flow.answers_from({}), page, carry=False
    )
    if fresh is not None:
        report_drafts.set_cookie(request, response, fresh)
    return response


async def report_page(request: web.Request) -> web.Response:
    """GET of one step, drawn from the draft (post/redirect/get); no draft: start again."""
    step = request.match_info["step"]
    browser, draft, answers = await report_drafts.resume(request)
    page = report_flow.shown(step, answers, request.query.get("return_to", ""))
    if page.step != step:
        raise web.HTTPSeeOther(report_drafts.page_url(page))
    token = await _draft_token(request, browser, draft) if step == "check" else None
    files = await report_files.of_draft(request, draft)
    return await render_step(request, answers, page, carry=False, form_token=token, files=files)


async def _draft_token(
    request: web.Request, browser: drafts.BrowserKey, draft: report_drafts.Draft
) -> str:
    """The draft's submit token, made once: a reloaded check page sends the same report."""
    token = draft.get("form_token")
    if not isinstance(token, str):
        token = new_form_token(request.app[SETTINGS], SUBMIT_PURPOSE)
        await report_drafts.save(request, browser, {**draft, "form_token": token})
    return token


async def report_step(request: web.Request) -> web.Response:
    """One question answered: validate that page, then show the next (or check answers). With
    a draft, the page's answers are saved into it and the next page is a redirect to its GET;
    a page with errors is drawn at once, as without one."""
    form = await read_form(request)
    categories = await request.app[CATEGORIES].slugs(request.app[CTX])
    browser = report_drafts.browser_key(request)
    if browser is None:  # cookies off: the answers (and files, from check answers) ride along
        await form_files.receive_files(request, report_files.ANONYMOUS, form_files.Room(0, 0))
        answers = report_flow.answers_from(form)
        page = report_flow.after_step(form, answers, categories)
        carried = form_files.Files(form_files.carried_ids(form))
        return await render_step(request, answers, page, files=carried)
    return await _drafted_step(request, browser, form, categories)


async def _drafted_step(
    request: web.Request, browser: drafts.BrowserKey, form: dict[str, str], categories: set[str]
) -> web.Response:
    """With a draft: the page's answers and files saved into it, then a redirect to the next
    page's GET; a page with errors (or files refused) drawn at once."""
    draft = await report_drafts.in_progress(request, browser)
    files = await report_files.for_step(request, browser, draft, form)  # read before the rest
    answers = report_drafts.merged(draft, form)
    await report_drafts.save(
        request, browser, {**draft, "answers": answers, **files.draft_fields()}
    )
    await report_files.hold(request, browser, files)
    page = report_files.with_files(form, report_flow.after_step(form, answers, categories), files)
    if page.errors or page.status != 200:
        return await render_step(request, answers, page, carry=False, files=files)
    raise web.HTTPSeeOther(report_drafts.page_url(page))


async def report_submit(request: web.Request) -> web.Response:
    """Commit the report, then (for anonymous follow-up) issue the code. With a draft, the
    answers are the draft's (its token starts a report while the draft lives) and the browser
    is sent to the confirmation's GET; without one, the confirmation is this POST's answer."""
    form = await read_form(request)
    browser, held = await report_drafts.held_answers(request)
    files = await report_files.for_submit(request, browser, form)
    answers = held or report_flow.answers_from(form)
    report, page = await _checked(request, form, answers, files)
    token = form.get("form_token", "")
    if report is None:
        return await render_step(
            request, answers, page, carry=held is None, files=files, form_token=token
        )
    done = await _submit(request, report, token, drafted=held is not None)
    if isinstance(done, report_flow.Page):
        page_files = await report_files.after_refusal(request, browser, files, done)
        return await render_step(
            request, answers, done, carry=held is None, form_token=token, files=page_files
        )
    return await _sent(request, browser, report, done, answers, token)


async def _checked(
    request: web.Request, form: dict[str, str], answers: dict[str, str], files: form_files.Files
) -> tuple[NewReport | None, report_flow.Page]:
    """The report with its files, ready to send; or None and the page to fix (an answer, a file
    refused, or a file removed with "Remove" on check answers without a draft)."""
    categories = await request.app[CATEGORIES].slugs(request.app[CTX])
    report, errors = report_flow.check(answers, categories)
    page = report_files.with_files(form, report_flow.to_fix(errors), files)
    if report is None or files.errors or files.changed:
        return None, page
    return report_files.attached(report, files), page


async def _sent(
    request: web.Request,
    browser: drafts.BrowserKey | None,
    report: NewReport,
    done: reports.Submitted,
    answers: dict[str, str],
    token: str,
) -> web.Response:
    """Without a draft, or when the code could not be made yet ("Get my code" sends the answers
    again), the confirmation at once; otherwise the draft becomes the confirmation."""
    shown = report_drafts.Confirmation.of(report, done)
    if browser is None or done.code_failed:
        return await _confirmation(
            request, shown, done.code, code_failed=done.code_failed, answers=answers, token=token
        )
    await report_drafts.confirmed(request, browser, shown, done.code)
    raise web.HTTPSeeOther("/report/confirmation")


async def confirmation_page(request: web.Request) -> web.Response:
    """The confirmation, as often as it is asked for: with the same code for a few minutes (or
    until "I have saved my code", or a login), then with the reference only; then it is gone."""
    draft = await report_drafts.load(request, report_drafts.browser_key(request))
    shown = report_drafts.Confirmation.from_draft(draft)
    if draft is None or shown is None:
        raise web.HTTPSeeOther("/report")
    typed = report_drafts.checked_last4(draft)
    checked = typed is not None
    return await _confirmation(
        request, shown, draft.get("code"), drafted=True, typed=typed or "", checked=checked
    )


async def confirmation_saved(request: web.Request) -> web.StreamResponse:
    """ "I have saved my code": the confirmation forgets it (and what the check was given)."""
    await report_drafts.forget_code(request)
    raise web.HTTPSeeOther("/report/confirmation")


CODE_GONE = N_(
    "Your code is no longer shown on this page, so it cannot be saved from here. "
    "If you saved it already, it still works."
)


async def _shown_code(request: web.Request, form: dict[str, str]) -> str | None:
    """The code the confirmation shows, for its download: from the browser's own draft while it
    shows the code; without a draft cookie (cookies off, so the confirmation was the submit's
    answer), the one that page posted back in the form body. Never from a URL; nothing is kept.
    None when the draft no longer holds it."""
    browser = report_drafts.browser_key(request)
    if browser is None:
        return codes.normalise(form.get("code", ""))  # malformed: 422, like a login
    code = (await report_drafts.load(request, browser) or {}).get("code")
    return code if isinstance(code, str) else None


async def _confirmation_again(
    request: web.Request,
    *,
    notice: str | None = None,
    typed: str = "",
    checked: bool = False,
    status: int = 200,
) -> web.Response:
    """The confirmation from the draft, drawn again as the answer of one of its forms."""
    draft = await report_drafts.load(request, report_drafts.browser_key(request))
    shown = report_drafts.Confirmation.from_draft(draft)
    if draft is None or shown is None:
        raise web.HTTPSeeOther("/report")
    return await _confirmation(
        request,
        shown,
        draft.get("code"),
        drafted=True,
        notice=notice,
        typed=typed,
        checked=checked,
        status=status,
    )


async def code_file(request: web.Request) -> web.StreamResponse:
    """ "Download as a text file": the code and the login address, nothing else (no reference,
    no report), as an attachment no cache keeps. A POST, so it works without JavaScript and
    the code is never in a URL."""
    code = await _shown_code(request, await read_form(request))
    if code is None:
        return await _confirmation_again(request, notice=_(CODE_GONE), status=410)
    body = f"{codes.display(code)}\n{login_address(request)}\n"
    return web.Response(
        text=body,
        content_type="text/plain",
        charset="utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="code.txt"',
            "Cache-Control": "no-store",
        },
    )


def login_address(request: web.Request) -> str:
    return f"{request.app[SETTINGS].base_url.rstrip('/')}/login"


async def confirmation_check(request: web.Request) -> web.StreamResponse:
    """ "Type the last 4 characters of your code": says whether they match the code in this
    browser's draft, and nothing else. A check, never a gate: it blocks nothing, and attempts
    are neither counted nor logged. With JavaScript the page checks in the browser and never
    sends this; without a draft (cookies off) only that check is offered. What was typed is
    kept in the draft (encrypted, like the code) for the confirmation's GET, 303 See Other
    (post/redirect/get: Back and reload ask nothing again)."""
    form = await read_form(request)
    if report_drafts.browser_key(request) is None:
        raise web.HTTPSeeOther("/report/confirmation")
    await report_drafts.keep_check(request, form.get("last4", "")[:20])
    raise web.HTTPSeeOther("/report/confirmation#saved-check")


def last4_result(code: str | None, typed: str) -> str | None:
    """What the check says about what was typed: "match", "mismatch", "empty" (None: not
    checked, or no code to check against)."""
    if code is None:
        return None
    squeezed = codes.squeeze(typed)
    if not squeezed:
        return "empty"
    return "match" if same_text(squeezed, code[-4:]) else "mismatch"


EXPIRED = report_flow.Page("check", status=400, notice=EXPIRED_NOTICE)
FILE_GONE = N_(
    "Your report has not been sent yet: one of your files is no longer available (files are "
    "kept for an hour, or while your answers are kept). Add it again, or send the report "
    "without it."
)
NOT_SENT = {
    RateLimited: N_(
        "Too many reports have been sent from this connection recently, so this one has not "
        "been sent yet. Your answers are kept: wait a few minutes, then press Send report again."
    ),
    DatabaseUnavailable: N_(
        "We could not save your report just now, so it has not been sent. Your answers are "
        "kept: try again in a minute."
    ),
}


async def report_again(
    request: web.Request, form: dict[str, str], exc: Exception, status: int
) -> web.Response | None:
    """The check page again with every answer, for a report that was not sent (too many from
    this connection, or the database unreachable): nothing typed is lost
    (webapp.form_routes.FormPage). With a draft, they are the draft's; while the database is
    unreachable they cannot be read, and stay safe in it for a reload."""
    notice = NOT_SENT.get(type(exc))
    if notice is None:
        return None
    page = report_flow.Page("check", status=status, notice=_(notice))
    browser = report_drafts.browser_key(request)
    if browser is None:  # cookies off: the answers came with the form
        carried = form_files.Files(form_files.carried_ids(form))
        return await render_step(request, report_flow.answers_from(form), page, files=carried)
    try:
        draft = await report_drafts.load(request, browser)
    except DatabaseUnavailable:
        return None  # the answers are safe in the draft; reloading check answers shows them
    if (held := report_drafts.answers_of(draft)) is None:
        return None
    files = await report_files.of_draft(request, draft)
    return await render_step(
        request, held, page, carry=False, form_token=form.get("form_token"), files=files
    )


async def _submit(
    request: web.Request, draft: NewReport, token: str, *, drafted: bool = False
) -> reports.Submitted | report_flow.Page:
    """The report submitted under the check page's token; or the check page again, saying why
    not (the page expired; or its token already sent other answers). ``drafted``: the answers
    came from a live draft, so the token may start a report (CONTRACTS §3); without a draft,
    for SUBMIT_TOKEN_NEW_S."""
    nonce = checked_form_token(request, request.app[SETTINGS], SUBMIT_PURPOSE, token)
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
            accept_new=drafted or form_token_age_s(token) <= SUBMIT_TOKEN_NEW_S,
            wait_for_first=True,
        )
    except (FormExpired, IdempotencyKeyReused, ValidationFailed) as exc:
        page = _not_sent(exc)
        if page is None:
            raise
        return page


def _not_sent(exc: Exception) -> report_flow.Page | None:
    """Check answers again, saying why the report was not sent."""
    if isinstance(exc, FormExpired):
        return EXPIRED
    if isinstance(exc, IdempotencyKeyReused):
        notice = _(
            "A report was already sent from this page, and it was received. These answers "
            "are different: if you send them, they will be a second, separate report."
        )
        return report_flow.Page("check", status=422, notice=notice)
    if isinstance(exc, ValidationFailed) and any(  # a file that expired or was used meanwhile
        e.field.startswith("attachments") for e in exc.errors
    ):
        return report_flow.Page("check", status=422, notice=_(FILE_GONE))
    return None


async def _confirmation(
    request: web.Request,
    shown: report_drafts.Confirmation,
    code: str | None,
    *,
    drafted: bool = False,
    code_failed: bool = False,
    answers: dict[str, str] | None = None,
    token: str = "",
    notice: str | None = None,
    typed: str = "",
    checked: bool = False,
    status: int = 200,
) -> web.Response:
    """The confirmation page. ``drafted``: drawn from the draft, which can forget the code.
    ``checked``: the answer of the last-4 check, with what was ``typed``."""
    reminder_token = None
    if code and shown.reply_due_by is not None:
        reminder_token = await reminders.issue_token(request.app[CTX], UUID(shown.thread_id))
    due = shown.reply_due_by
    page = request.app[CONFIRMATION_PAGES].render(
        {
            "login_address": login_address(request),
            "notice": notice,
            "last4": last4_result(code, typed) if checked else None,
            "code_failed": code_failed,
            # A repeat that may not get another code: the code shown the first time still works.
            "already_received": shown.already_received,
            # From the draft, after its minutes: the code was shown once and still works.
            "shown_once": drafted and code is None and not shown.already_received,
            "drafted": drafted,
            "wants_code": shown.wants_code,
            "anonymous": shown.anonymous,
            # Only "Get my code" sends the answers again (a dict: that page is drawn uncached).
            "answers": (answers or {}) if code_failed else None,
        },
        {
            "reply_due_by": request.app[DATES].due_words(due) if due else None,
            "reminder_token": reminder_token,
            "reference": shown.reference,
            "typed": typed,  # what the last-4 check was given: the reporter's own text
            "code": codes.display(code) if code else None,
            "code_groups": tuple(codes.display(code).split("-")) if code else None,
            "form_token": token,
        },
    )
    return web.Response(body=page, status=status, content_type="text/html", charset="utf-8")


async def exit_page(request: web.Request) -> web.StreamResponse:
    """Exit without JavaScript: the draft and its cookie are deleted, then straight to the
    organisation's exit address."""
    await report_drafts.forget(request)
    response = web.HTTPSeeOther(request.app[ORG].exit_url)
    report_drafts.clear_cookie(request, response)
    raise response


async def reminder_download(request: web.Request) -> web.StreamResponse:
    """From the messaging page (logged in): the latest file for the reporter's own thread."""
    auth = await reporter_for(request)
    if auth is None:
        raise web.HTTPSeeOther("/login")
    assert auth.session.thread_id is not None
    return await latest_reminder(request, auth.session.thread_id)


async def reminder_from_confirmation(request: web.Request) -> web.StreamResponse:
    """From the confirmation page: a POST with a single-use token, never a URL."""
    form = await read_form(request)
    valid, data = await reminders.file_for_token(
        request.app[CTX],
        form.get("reminder_token", ""),
        include_address=form.get("include_address") == "1",
    )
    if not valid:
        raise ReminderLinkUsed()
    return ics_response(data)


# --- Receipts (docs/security.md "Receipts") --------------------------------------------------------


def _receipt_file(data: bytes) -> web.Response:
    """A receipt as a download, never kept by a cache (the security headers add no-store too)."""
    return web.Response(
        body=data,
        content_type="application/json",
        headers={
            "Content-Disposition": 'attachment; filename="receipt.json"',
            "Cache-Control": "no-store",
        },
    )


async def receipt_from_confirmation(request: web.Request) -> web.StreamResponse:
    """From the confirmation page (no code needed): docs/security.md "Receipts"."""
    reference = await _confirmed_reference(request, await read_form(request))
    if reference is None:
        raise ReceiptLinkExpired()
    return _receipt_file(await receipts.confirmation_receipt(request.app[CTX], reference))


async def _confirmed_reference(request: web.Request, form: dict[str, str]) -> str | None:
    """The report the draft confirms (the page names it: an older confirmation of this browser
    gets none) or, without a draft, the one that the check page's submit token sent; nothing new
    is signed for the page that offers the download."""
    token = form.get("form_token")
    if not token:
        draft = await report_drafts.load(request, report_drafts.browser_key(request))
        shown = report_drafts.Confirmation.from_draft(draft)
        named = form.get("reference")
        return shown.reference if shown is not None and shown.reference == named else None
    nonce = check_form_token(request.app[SETTINGS], SUBMIT_PURPOSE, token)
    if nonce is None:
        return None
    return await reports.reference_for_form_key(request.app[CTX], nonce)


async def receipt_download(request: web.Request) -> web.StreamResponse:
    """From the messaging page (logged in): the report's receipt, or with ``?message=ID`` the
    receipt of one of the reporter's own messages."""
    auth = await reporter_for(request)
    if auth is None:
        raise web.HTTPSeeOther("/login")
    assert auth.session.thread_id is not None
    message = request.query.get("message")
    if message is None:
        data = await receipts.report_receipt(request.app[CTX], auth.session.thread_id)
    else:
        data = await receipts.message_receipt(request.app[CTX], auth.session.thread_id, message)
    return _receipt_file(data)


async def receipt_keys(request: web.Request) -> web.Response:
    """The JWKS of the keys that verify receipts: current first, then retired ones."""
    return web.json_response(
        receipts.jwks(request.app[CTX]), headers={"Cache-Control": "public, max-age=300"}
    )


RECEIPT_TYPED_MAX = 10_000
# What the check page says for each reason a receipt does not verify (ReceiptInvalid.reason).
RECEIPT_ERRORS = {
    ReceiptInvalid.EMPTY: N_("Paste the text of your receipt file, from { to }."),
    ReceiptInvalid.MALFORMED: N_(
        "This is not a receipt. Paste the whole text of the receipt file, from { to }."
    ),
    ReceiptInvalid.MISSING: N_(
        "This is not a receipt. Paste the whole text of the receipt file, from { to }."
    ),
    ReceiptInvalid.VERSION: N_("This receipt is of a kind this service cannot check."),
    ReceiptInvalid.UNKNOWN_KEY: N_(
        "This receipt was not signed by this service. It may be from another service, "
        "or it is not genuine."
    ),
    ReceiptInvalid.SIGNATURE: N_(
        "This receipt is not genuine: its signature does not match what it says. "
        "It may have been changed."
    ),
}


def render_check(
    request: web.Request,
    *,
    verified: Verified | None = None,
    typed: str = "",
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    context = {
        "verified": verified,
        "typed": typed,
        "errors": FormErrors([("receipt", error)] if error else []),
    }
    return aiohttp_jinja2.render_template(
        "reporter/check_receipt.html", request, context, status=status
    )


async def check_receipt(request: web.Request) -> web.Response:
    return render_check(request)


async def check_receipt_submit(request: web.Request) -> web.Response:
    """Check a pasted receipt's signature; one that does not verify is drawn again with why
    (check_receipt_again)."""
    form = await read_form(request)
    verified = receipts.check(request.app[CTX], form.get("receipt", ""))
    return render_check(request, verified=verified)


async def check_receipt_again(
    request: web.Request, form: dict[str, str], exc: Exception, status: int
) -> web.Response | None:
    """The check page with what was pasted and why it does not verify."""
    if not isinstance(exc, ReceiptInvalid):
        return None
    typed = form.get("receipt", "")[:RECEIPT_TYPED_MAX]
    error = _(RECEIPT_ERRORS[exc.reason])
    return render_check(request, typed=typed, error=error, status=status)


async def attachment_download(request: web.Request) -> web.StreamResponse:
    """A file of the reporter's own thread, stripped (409 page while it is being prepared or
    could not be made safe: a reporter is never served an unstripped file)."""
    auth = await reporter_for(request)
    if auth is None:
        raise web.HTTPSeeOther("/login")
    assert auth.session.thread_id is not None
    found = form_files.attachment_id(request.match_info["attachment_id"])
    download = await attachments.reporter_download(request.app[CTX], auth.session.thread_id, found)
    return await send_file(request, download)
