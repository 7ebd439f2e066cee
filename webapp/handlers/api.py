"""JSON API (CONTRACTS §3). Errors are application/problem+json, raised through webapp.errors."""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID

from aiohttp import web

from confide import codes, idempotency, logs, models
from confide.errors import FieldError, NotFound, ValidationFailed
from confide.services import attachments, reporter_auth, reports, sessions, statistics, threads
from confide.services import staff as staff_service
from confide.services.second_factor import SecondFactorEnrolmentRequired
from confide.services.staff import ROLES, THREAD_READER_ROLES
from webapp import responses
from webapp.auth import Auth, must_enrol, reporter_for, second_factor_roles, staff_for
from webapp.errors import problem
from webapp.files import file_part, send_file
from webapp.forms import read_json
from webapp.keys import (
    CATEGORIES,
    CTX,
    HASHER,
    LIMITS,
    LOGIN_LIMITS,
    ORG,
    SETTINGS,
    STAFF_LOGIN_LIMITS,
    UPLOAD_LIMITS,
)
from webapp.openapi import document
from webapp.report_flow import submit_report
from webapp.responses import latest_reminder
from webapp.security import UploadMeter

log = logs.get("confide.web.api")
B = TypeVar("B", bound=models.Body)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())


async def categories(request: web.Request) -> web.Response:
    items = await request.app[CATEGORIES].get(request.app[CTX])
    return web.json_response([{"id": c["slug"], "name": c["name"]} for c in items])


async def create_report(request: web.Request) -> web.Response:
    key = _idempotency_key(request, marked=False)
    data = await read_json(request)
    known = await request.app[CATEGORIES].slugs(request.app[CTX])
    draft = models.parse(models.NewReport, data, context={"categories": known})
    request.app[LIMITS].check(request)
    idem = reports.submission_idempotency(
        request.app[SETTINGS], key, idempotency.canonical(data), author="api"
    )
    done = await submit_report(request, draft, idem)
    if done.code_failed:
        return problem(503, CODE_FAILED, headers={"Retry-After": "5"})
    code = codes.display(done.code) if done.code else None
    receipt = responses.Receipt(
        reference=done.receipt.reference, code=code, reply_due_by=done.receipt.reply_due_by
    )
    return receipt.response(201 if done.receipt.is_new else 200)


CODE_FAILED = (
    "The report was received, but its code could not be made yet. "
    "Send the same request again with the same Idempotency-Key."
)


# --- Reporter ------------------------------------------------------------------------------


async def reporter_session(request: web.Request) -> web.Response:
    login = models.parse(models.ReporterLogin, await read_json(request))
    thread_id, session = await reporter_auth.log_in(
        request.app[CTX],
        login.code,
        request.app[LOGIN_LIMITS].guard(request),
        request.app[HASHER].check_code,
    )
    log.info("reporter_logged_in", thread_id=str(thread_id))
    return responses.Session(token=session.token, expires_at=session.expires_at).response()


async def _reporter(request: web.Request) -> Auth:
    auth = await reporter_for(request)
    if auth is None:
        raise web.HTTPUnauthorized()
    return auth


async def reporter_thread(request: web.Request) -> web.Response:
    auth = await _reporter(request)
    assert auth.session.thread_id is not None
    view = await threads.reporter_view(request.app[CTX], auth.session.thread_id)
    return responses.ReporterThread.of(view).response()


async def reporter_message(request: web.Request) -> web.Response:
    auth = await _reporter(request)
    message = models.parse(models.NewReporterMessage, await read_json(request))
    assert auth.session.thread_id is not None
    sent = await threads.add_reporter_message(
        request.app[CTX],
        auth.session.thread_id,
        message.body,
        idempotency_key=_idempotency_key(request),
        files=threads.Files(message.attachments, message.keep_file_names),
    )
    return _sent(sent)


async def reporter_attachment(request: web.Request) -> web.StreamResponse:
    auth = await _reporter(request)
    assert auth.session.thread_id is not None
    download = await attachments.reporter_download(
        request.app[CTX], auth.session.thread_id, _attachment_id(request)
    )
    return await send_file(request, download)


# --- Attachments -----------------------------------------------------------------------------


async def upload(request: web.Request) -> web.Response:
    """``POST /api/v1/uploads``: bound to the staff member or reporter whose Bearer token comes
    with it, else to the upload id alone (an anonymous submitter, for ``POST /api/v1/reports``)."""
    uploader = await _uploader(request)
    limits = request.app[ORG].attachments
    # A budget of its own, not the submissions' (ten files and their report would use 11 of the
    # 20 an hour a client has), in files and in bytes, and a cap on what pending uploads hold;
    # staff are not counted (webapp.security.UploadLimits).
    meter = await _upload_meter(request, uploader)
    try:
        blocks, filename = await file_part(request, limits)
        done = await attachments.receive_upload(
            request.app[CTX],
            uploader,
            blocks if meter is None else meter.blocks(blocks),
            limits=limits,
            filename=filename,
        )
    finally:
        if meter is not None:
            meter.done()
    return responses.Upload.of(done).response(201)


async def _upload_meter(request: web.Request, uploader: attachments.Uploader) -> UploadMeter | None:
    if uploader.owner is attachments.Owner.STAFF:
        return None
    pending = await attachments.pending_upload_bytes(request.app[CTX])
    return request.app[UPLOAD_LIMITS].check(request, pending, request.content_length)


async def _uploader(request: web.Request) -> attachments.Uploader:
    if "Authorization" not in request.headers:
        return attachments.Uploader.anonymous()
    staff = await staff_for(request)
    if staff is not None:
        member, _ = await _staff(request)
        return attachments.Uploader.staff(member.id)
    reporter = await reporter_for(request)
    if reporter is not None and reporter.session.thread_id is not None:
        return attachments.Uploader.reporter(reporter.session.thread_id)
    raise web.HTTPUnauthorized()


def _attachment_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["attachment_id"])
    except ValueError:
        raise NotFound() from None


async def staff_attachment(request: web.Request) -> web.StreamResponse:
    member, _ = await _staff(request)
    download = await attachments.staff_download(request.app[CTX], member, _attachment_id(request))
    return await send_file(request, download)


async def staff_attachment_preview(request: web.Request) -> web.StreamResponse:
    member, _ = await _staff(request)
    download = await attachments.staff_preview(request.app[CTX], member, _attachment_id(request))
    return await send_file(request, download)


async def staff_attachment_release(request: web.Request) -> web.Response:
    member, _ = await _staff(request)
    body = models.parse(models.ReleaseFile, await read_json(request))
    await attachments.release(request.app[CTX], member, _attachment_id(request), body.reason)
    return responses.Released(state="released").response()


async def reporter_reminder(request: web.Request) -> web.Response:
    auth = await _reporter(request)
    assert auth.session.thread_id is not None
    return await latest_reminder(request, auth.session.thread_id)


async def reporter_logout(request: web.Request) -> web.Response:
    auth = await _reporter(request)
    await sessions.end(request.app[CTX], auth.session.token_hmac)
    return web.Response(status=204)


def _idempotency_key(request: web.Request, *, marked: bool = True) -> str | None:
    """The checked ``Idempotency-Key`` header (16-255 visible ASCII characters, else 422),
    ``marked`` as the API's so that it never meets an HTML form token (a report's key is
    scoped by its author instead: ``reports.submission_idempotency``)."""
    key = idempotency.check_header(request.headers.get("Idempotency-Key"))
    return f"api:{key}" if key is not None and marked else key


def _sent(sent: threads.Sent) -> web.Response:
    return responses.Sent(sent_at=sent.sent_at).response(201 if sent.is_new else 200)


# --- Staff ---------------------------------------------------------------------------------


async def staff_session(request: web.Request) -> web.Response:
    login = models.parse(models.StaffLogin, await read_json(request))
    done = await staff_service.log_in_api(
        request.app[CTX],
        request.app[HASHER].local,
        request.app[STAFF_LOGIN_LIMITS].guard(request),
        login.email,
        login.password,
        login.otp,
        required=second_factor_roles(request),
        password_sign_in=request.app[ORG].sso.password_sign_in,
    )
    session = done.session
    return responses.Session(token=session.token, expires_at=session.expires_at).response()


async def _staff(
    request: web.Request, roles: tuple[str, ...] = THREAD_READER_ROLES, *, to_sign_out: bool = False
) -> tuple[threads.Staff, Auth]:
    """The caller's staff session; by default only roles that read threads get further (else
    403), so a new staff call cannot forget that ops sees none."""
    found = await staff_for(request)
    if found is None:
        raise web.HTTPUnauthorized()
    if not to_sign_out and must_enrol(
        request, *found
    ):  # signed in before the rule, or its factor was removed
        raise SecondFactorEnrolmentRequired()
    if found[0].role not in roles:
        raise threads.Forbidden()
    return found


async def staff_logout(request: web.Request) -> web.Response:
    _, auth = await _staff(request, ROLES, to_sign_out=True)
    await sessions.end(request.app[CTX], auth.session.token_hmac)
    return web.Response(status=204)


async def staff_threads(request: web.Request) -> web.Response:
    member, _ = await _staff(request)
    state = request.query.get("state", "awaiting")
    try:
        page = int(request.query.get("page", "1"))
    except ValueError:
        raise ValidationFailed([FieldError("page", "A whole number from 1")]) from None
    if page < 1 or page > 100_000:
        raise ValidationFailed([FieldError("page", "A whole number from 1")])
    result = await threads.inbox(
        request.app[CTX], member, state=state, page=page, reference=request.query.get("q") or None
    )
    rows = [responses.ThreadSummary(**responses.ThreadSummary.fields(t)) for t in result.threads]
    return responses.ThreadPage(threads=rows, next_page=result.next_page).response()


async def staff_statistics(request: web.Request) -> web.Response:
    member, _ = await _staff(request, statistics.STATISTICS_ROLES)
    query = request.query
    found = await statistics.statistics(
        request.app[CTX], member, query.get("from"), query.get("to")
    )
    return responses.StatisticsAnswer.of(found).response()


async def staff_thread(request: web.Request) -> web.Response:
    member, _ = await _staff(request)
    view = await threads.staff_view(request.app[CTX], member, request.match_info["reference"])
    return responses.StaffThread.of(view).response()


async def _thread_body(request: web.Request, model: type[B]) -> tuple[threads.Staff, str, B]:
    """A staff thread action's caller (401/403 first), thread reference and body."""
    member, _ = await _staff(request)
    body = models.parse(model, await read_json(request))
    return member, request.match_info["reference"], body


async def staff_thread_messages(request: web.Request) -> web.Response:
    member, reference, message = await _thread_body(request, models.NewStaffReply)
    key = _idempotency_key(request)
    sent = await threads.reply(
        request.app[CTX],
        member,
        reference,
        message.body,
        idempotency_key=key,
        feedback=message.feedback,
        files=threads.Files(message.attachments, message.keep_file_names),
    )
    return _sent(sent)


async def staff_thread_notes(request: web.Request) -> web.Response:
    member, reference, note = await _thread_body(request, models.NewStaffMessage)
    created = await threads.add_note(
        request.app[CTX], member, reference, note.body, feedback=note.feedback
    )
    return responses.NoteAdded(created_at=created).response(201)


async def staff_thread_status(request: web.Request) -> web.Response:
    member, reference, body = await _thread_body(request, models.NewStatus)
    await threads.set_status(request.app[CTX], member, reference, body.status)
    return responses.Done().response()


async def staff_thread_team(request: web.Request) -> web.Response:
    member, reference, body = await _thread_body(request, models.NewTeam)
    await threads.set_team(request.app[CTX], member, reference, body.team)
    return responses.Done().response()


async def staff_thread_assignee(request: web.Request) -> web.Response:
    member, reference, body = await _thread_body(request, models.NewAssignee)
    await threads.set_assignee(request.app[CTX], member, reference, body.email)
    return responses.Done().response()


async def staff_thread_restricted(request: web.Request) -> web.Response:
    member, reference, body = await _thread_body(request, models.NewRestriction)
    await threads.set_restricted(request.app[CTX], member, reference, body.restricted)
    return responses.Done().response()
