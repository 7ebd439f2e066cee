"""One middleware: domain exceptions -> statuses; HTML pages or problem+json; never a traceback."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp_jinja2
import asyncpg
import jinja2
from aiohttp import web, web_protocol

from confide import logs
from confide.errors import (
    CodeMalformed,
    CodeNotRecognised,
    ConfideError,
    DatabaseUnavailable,
    IdempotencyKeyReused,
    NotFound,
    RateLimited,
    ReceiptLinkExpired,
    ReminderLinkUsed,
    ReminderNotReady,
    RequestInProgress,
    ThreadClosed,
    ValidationFailed,
)
from confide.files.errors import FileTooLarge, TooManyFiles, TypeNotAllowed, UploadTooSlow
from confide.files.sniff import ImageTooLarge
from confide.files.structure import FileDamaged
from confide.org import Organisation
from confide.services.attachments import AttachmentNotReady, AttachmentUnavailable
from confide.services.passkeys import PasskeyInvalid, PasskeySignInOff
from confide.services.second_factor import (
    AlreadyEnrolled,
    SecondFactorEnrolmentRequired,
    SecondFactorInvalid,
    SecondFactorRequired,
)
from confide.services.sso import SsoRefused
from confide.services.staff import PasswordSignInDisabled, SignInExpired, StaffLoginFailed
from confide.services.threads import Forbidden, NoReplyPossible
from webapp.body_limits import LARGE_BODY_ROUTES, carries_files
from webapp.form_routes import FormRefused, TokenRefused, declared
from webapp.i18n import N_, _
from webapp.keys import CSRF_TOKEN, FORM, STAFF_MEMBER

log = logs.get("confide.web")

ERROR_STATUS: dict[type[Exception], int] = {
    CodeMalformed: 422,
    CodeNotRecognised: 401,
    ThreadClosed: 409,
    ValidationFailed: 422,
    NotFound: 404,
    RateLimited: 429,
    DatabaseUnavailable: 503,
    Forbidden: 403,
    NoReplyPossible: 409,
    StaffLoginFailed: 401,
    SecondFactorRequired: 401,
    SecondFactorInvalid: 401,
    SecondFactorEnrolmentRequired: 401,
    SignInExpired: 401,
    PasskeyInvalid: 401,
    PasskeySignInOff: 403,
    PasswordSignInDisabled: 401,
    AlreadyEnrolled: 409,
    IdempotencyKeyReused: 422,
    RequestInProgress: 409,
    ReminderNotReady: 503,
    ReminderLinkUsed: 403,
    ReceiptLinkExpired: 403,
    FormRefused: 403,
    TokenRefused: 400,
}

# What a page and a problem say for a domain error, beside its status. Exceptions that carry
# their own words have a ``detail`` (Forbidden, FormRefused, BadRequest, UnsupportedMediaType).
DETAILS: dict[type[Exception], str] = {
    IdempotencyKeyReused: (
        "This Idempotency-Key was already used for a different request. "
        "Use a new key for a new request."
    ),
    RequestInProgress: (
        "The first request with this Idempotency-Key is still being answered. "
        "Send it again in a moment."
    ),
    RateLimited: "Please wait a little and try again.",
    SecondFactorRequired: "This account signs in with a second factor: send it as otp.",
    SecondFactorInvalid: "The authenticator or recovery code is not right, or was used already.",
    SecondFactorEnrolmentRequired: (
        "This account must set up a second factor before it can sign in: sign in once in a "
        "browser to set it up."
    ),
    ReminderNotReady: "The reminder is being prepared. Try again in a moment.",
    PasswordSignInDisabled: (
        "This organisation signs its staff in through single sign-on only. Sign in in a "
        "browser, or use a personal access token for the API."
    ),
}

# What an HTML page says instead (JSON keeps the bare problem of CONTRACTS §3, or DETAILS).
# The one table for every handler: none catches these itself. A route whose form is drawn again
# with what was typed declares that page (webapp.form_routes), and it is asked first.
PAGE_DETAILS: dict[type[Exception], str] = {
    ThreadClosed: N_("This thread is closed. Reopen it to reply."),
    NoReplyPossible: N_(
        "This report has no anonymous follow-up, so there is nobody to reply to here."
    ),
    ReminderNotReady: N_("Your reminder is not ready yet. Please try again in a moment."),
    ReminderLinkUsed: N_(
        "This reminder link has been used or has expired. "
        "Log in with your code to download it again."
    ),
    ReceiptLinkExpired: N_(
        "This receipt link has expired. If you have a code, log in to download your receipt."
    ),
    SignInExpired: N_("Your sign-in took too long. Please log in again."),
    PasskeyInvalid: N_(
        "That passkey could not be checked. Go back, reload the page and try again."
    ),
    PasskeySignInOff: N_("Signing in with a passkey is not turned on here."),
    AlreadyEnrolled: N_(
        "You have an authenticator app already. Remove it first to set up another."
    ),
    SecondFactorEnrolmentRequired: N_("Set up an authenticator app in your browser first."),
    PasswordSignInDisabled: N_(
        "Your organisation signs you in through its own sign-in page, not with a password here."
    ),
}

PROBLEM_TYPES: dict[type[Exception], str] = {
    IdempotencyKeyReused: "idempotency-key-reused",
    # CONTRACTS §3, staff sign-in: clients match the last segment.
    SecondFactorRequired: "second-factor-required",
    SecondFactorInvalid: "second-factor-invalid",
    SecondFactorEnrolmentRequired: "second-factor-enrolment-required",
    PasswordSignInDisabled: "password-sign-in-disabled",
}

# A page's own heading, where the status's would mislead: a 503 for a reminder still being
# prepared is not an outage, and must not say that the report was not received.
PAGE_TITLES: dict[type[Exception], str] = {
    ReminderNotReady: N_("Your reminder is being prepared"),
}

TITLES = {
    400: "Bad request",
    401: "Not recognised",
    403: "Forbidden",
    404: "Page not found",
    405: "Method not allowed",
    408: "Too slow",
    409: "Conflict",
    413: "Too much to send",
    415: "Unsupported content type",
    422: "There is a problem with what was sent",
    429: "Too many attempts",
    500: "Something went wrong",
    502: "The sign-in service did not answer",
    503: "Service unavailable",
}

_DB_DOWN = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.QueryCanceledError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    # The driver's own state error on a connection that PostgreSQL's restart broke mid-call
    # ("another operation is in progress"; seen by make chaos on an upload): a 503 like the rest.
    asyncpg.InternalClientError,
)


class BadRequest(Exception):
    """Malformed input that is the client's fault (bad UTF-8, broken form or JSON)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnsupportedMediaType(Exception):
    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.detail = f"Send {expected}."


ERROR_STATUS.update(
    {
        FileTooLarge: 413,
        TypeNotAllowed: 415,
        ImageTooLarge: 422,
        FileDamaged: 422,
        TooManyFiles: 422,
        AttachmentNotReady: 409,
        AttachmentUnavailable: 409,
        UploadTooSlow: 408,
        BadRequest: 400,
        UnsupportedMediaType: 415,
        # A NUL or other unstorable character slipped past validation: the client's mistake.
        asyncpg.CharacterNotInRepertoireError: 400,
        asyncpg.UntranslatableCharacterError: 400,
    }
)
DETAILS.update(
    {
        FileTooLarge: "The file is too large, or the files are too large together.",
        TypeNotAllowed: (
            "This kind of file cannot be attached (judged by its content, not its name). "
            "Allowed: photos (JPEG, PNG, HEIC), PDF, Word (DOCX), OpenDocument text (ODT), "
            "plain text and audio (MP3, M4A)."
        ),
        ImageTooLarge: (
            "This image is too large to open safely (over 80 megapixels). Send a smaller "
            "copy or a screenshot of it."
        ),
        TooManyFiles: "Too many files for one report or message.",
    }
)
PROBLEM_TYPES.update(
    {
        FileTooLarge: "file-too-large",
        TypeNotAllowed: "type-not-allowed",
        ImageTooLarge: "image-too-large",
        FileDamaged: "file-damaged",
        TooManyFiles: "too-many-files",
        AttachmentNotReady: "attachment-not-ready",
        AttachmentUnavailable: "attachment-unavailable",
        UploadTooSlow: "upload-too-slow",
    }
)
DETAILS[asyncpg.CharacterNotInRepertoireError] = DETAILS[asyncpg.UntranslatableCharacterError] = (
    "The request contained a character that is not allowed."
)


def wants_json(request: web.Request) -> bool:
    if request.path.startswith("/api/"):
        return True
    accept = request.headers.get("Accept", "")
    return "json" in accept and "html" not in accept


PROBLEM_TYPE_BASE = "tag:confide,2026:problems/"
"""Problem ``type`` URIs (RFC 9457) that clients match by their last segment, e.g.
``…/idempotency-key-reused``. A tag URI names no host that we would have to serve."""


def problem(
    status: int,
    detail: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    type_: str | None = None,
) -> web.Response:
    body: dict[str, object] = {
        "type": PROBLEM_TYPE_BASE + type_ if type_ else "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if errors is not None:
        body["errors"] = errors
    return web.json_response(
        body, status=status, content_type="application/problem+json", headers=headers
    )


def error_page(
    request: web.Request,
    status: int,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    error_id: str | None = None,
    title: str | None = None,
) -> web.Response:
    """The error page; ``title`` (untranslated) replaces the status's heading, and a page with
    its own heading is not an outage (no "was not received")."""
    if wants_json(request):
        return problem(status, detail, headers=headers)
    context = {
        "status": status,
        "title": title or TITLES.get(status, "Error"),
        "outage": status == 503 and title is None,
        "detail": detail,
        "error_id": error_id,
        # Set by webapp.handlers.caseworker.staff_page: staff see errors in the staff layout.
        "staff": request.get(STAFF_MEMBER),
        "csrf_token": request.get(CSRF_TOKEN, ""),
    }
    response = aiohttp_jinja2.render_template("errors/error.html", request, context, status=status)
    if headers:
        response.headers.update(headers)
    return response


def sso_refused_page(request: web.Request, exc: SsoRefused) -> web.Response:
    """A refused single sign-on, in words for its reason (templates/staff/sso_refused.html)."""
    context = {"reason": exc.reason, "status": exc.status, "staff": None, "csrf_token": ""}
    return aiohttp_jinja2.render_template(
        "staff/sso_refused.html", request, context, status=exc.status
    )


OWN_WORDS = (
    BadRequest,
    UnsupportedMediaType,
    Forbidden,
    FormRefused,
    AttachmentNotReady,
    AttachmentUnavailable,
    UploadTooSlow,
    FileDamaged,  # its words name the type it was read as
)
"""The exceptions that carry the words shown for them, as ``detail``."""


def status_of(exc: BaseException) -> int | None:
    """The status ERROR_STATUS gives ``exc`` (or a class it derives from), if any; a refused
    single sign-on carries its own (400, 403 or 502)."""
    if isinstance(exc, SsoRefused):
        return exc.status
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return None


def _words(table: dict[type[Exception], str], exc: Exception) -> str | None:
    return next((table[cls] for cls in type(exc).__mro__ if cls in table), None)


async def domain_response(request: web.Request, exc: Exception, status: int) -> web.StreamResponse:
    """The one answer to a domain error: the route's own page drawn again with what was typed
    (if it declares one), else the error page or problem of the tables above."""
    retry_after = getattr(exc, "retry_after", None) if isinstance(exc, ConfideError) else None
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    if isinstance(exc, SsoRefused) and not wants_json(request):
        return sso_refused_page(request, exc)
    form = declared(request)
    if form is not None and form.page is not None and not wants_json(request):
        response = await form.page(request, request.get(FORM) or {}, exc, status)
        if response is not None:
            response.headers.update(headers)
            return response
    json = wants_json(request)
    if json and isinstance(exc, ValidationFailed):
        errors = [{"field": e.field, "message": e.message} for e in exc.errors]
        return problem(status, "Some fields are not valid.", errors)
    # Only our own exceptions' words: a driver's (asyncpg's ``detail``) could quote the request.
    detail = exc.detail if isinstance(exc, OWN_WORDS) else None
    detail = detail or (None if json else _words(PAGE_DETAILS, exc)) or _words(DETAILS, exc)
    if json:
        return problem(status, detail, headers=headers, type_=_words(PROBLEM_TYPES, exc))
    title = _words(PAGE_TITLES, exc)
    return error_page(request, status, _(detail) if detail else None, headers=headers, title=title)


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {}
        if isinstance(exc, web.HTTPMethodNotAllowed):
            headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        if exc.status == 413:
            if request.match_info.route.name in LARGE_BODY_ROUTES and carries_files(request):
                return error_page(request, 413, DETAILS[FileTooLarge])
            return error_page(request, 413, "That was more than 1 MiB. Shorten it and try again.")
        return error_page(request, exc.status, headers=headers)
    except Exception as exc:
        status = status_of(exc)
        if status is not None:
            try:
                return await domain_response(request, exc, status)
            except web.HTTPException:
                raise
            except Exception as again:  # the page drawn again raised (its thread is gone, ...)
                status = status_of(again)
                if status is None:
                    return _unexpected(request, again)
                return await domain_response(request, again, status)
        return _unexpected(request, exc)


def _unexpected(request: web.Request, exc: Exception) -> web.Response:
    if isinstance(exc, (*_DB_DOWN, asyncpg.PostgresConnectionError)):
        if isinstance(exc, OSError) and client_gone(request):
            # The client hung up mid-request (a reset, or a body cut short): nothing of ours
            # is down, and there is no one left to answer. aiohttp drops ConnectionErrors.
            log.info("client_disconnected", route=_route(request))
            raise ConnectionResetError("client disconnected") from None
        log.error("dependency_down", exc_info=exc, route=_route(request))
        return error_page(
            request,
            503,
            "Nothing was received. Please try again in a few minutes.",
            headers={"Retry-After": "30"},
        )
    error_id = secrets.token_hex(4)
    # The traceback goes to the log only, as frames without messages or request data.
    log.error("unhandled_error", exc_info=exc, error_id=error_id, route=_route(request))
    return error_page(request, 500, error_id=error_id)


def client_gone(request: web.Request) -> bool:
    """True once the client's connection is closed or closing (it disconnected)."""
    transport = request.transport
    return transport is None or transport.is_closing()


def _route(request: web.Request) -> str:
    info = request.match_info.route
    return info.name or (info.resource.canonical if info.resource else "") or "unmatched"


# --- Requests aiohttp's parser rejects before any handler runs ------------------------------------

PARSER_STATUSES = (400, 413, 414, 431, 500)
_parser_pages: dict[int, bytes] = {}


def prepare_parser_error_pages(env: jinja2.Environment, org: Organisation) -> None:
    """Render the pages for requests that never reach the application (broken request lines,
    headers or bodies). aiohttp would answer those with a text/plain echo of the offending bytes,
    its version in ``Server`` and none of our security headers."""
    template = env.get_template("errors/error.html")
    for status in PARSER_STATUSES:
        context = {
            "status": status,
            "title": TITLES.get(status, "Error"),
            "outage": status == 503,
            "detail": None,
            "error_id": None,
            "org": org,
        }
        _parser_pages[status] = template.render(context).encode()
    _install_parser_error_handler()


# Any: what aiohttp's parser gives up on, a request whose very attributes may raise.
def _parser_error_response(request: Any, status: int) -> web.Response:
    from webapp.security import static_security_headers

    try:
        api = str(request.path).startswith("/api/")
    except Exception:  # the request line itself may be what failed to parse
        api = False
    if api:
        response = problem(status)
    else:
        page = _parser_pages.get(status) or _parser_pages.get(400, b"Bad request")
        response = web.Response(status=status, body=page, content_type="text/html", charset="utf-8")
    response.headers.update(static_security_headers())
    response.force_close()
    return response


def _install_parser_error_handler() -> None:
    handler_class = web_protocol.RequestHandler
    if getattr(handler_class.handle_error, "_confide", False):
        return
    original = handler_class.handle_error

    def handle_error(
        self: web_protocol.RequestHandler,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # aiohttp's own handling first: it logs (through our allow-list, without the address)
        # and refuses when part of a response was already sent.
        original(self, request, status, exc, message)
        return _parser_error_response(request, status)

    handle_error._confide = True  # type: ignore[attr-defined]
    handler_class.handle_error = handle_error  # type: ignore[method-assign]
