"""JSON API (CONTRACTS §3). Errors are application/problem+json, raised through webapp.errors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from confide import codes, idempotency, logs
from confide.errors import FieldError, ValidationFailed
from confide.services import reporter_auth, reports, sessions, threads, validation
from confide.services import staff as staff_service
from confide.services.staff import ROLES, THREAD_READER_ROLES
from webapp.auth import Auth, reporter_for, staff_for
from webapp.errors import problem
from webapp.forms import read_json
from webapp.keys import (
    CATEGORIES,
    CTX,
    HASHER,
    LIMITS,
    LOGIN_LIMITS,
    SETTINGS,
    STAFF_LOGIN_LIMITS,
)
from webapp.openapi import document
from webapp.responses import latest_reminder

log = logs.get("confide.web.api")


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())


async def categories(request: web.Request) -> web.Response:
    items = await request.app[CATEGORIES].get(request.app[CTX])
    return web.json_response([{"id": c["slug"], "name": c["name"]} for c in items])


async def create_report(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    key = idempotency.check_header(request.headers.get("Idempotency-Key"))
    data = await read_json(request)
    known = await request.app[CATEGORIES].slugs(request.app[CTX])
    draft = validation.report_from_json(data, known)
    request.app[LIMITS].check(request)
    done = await reports.submit(
        request.app[CTX],
        draft,
        idempotency=reports.submission_idempotency(
            settings, key, idempotency.canonical(data), author="api"
        ),
        store_verifier=request.app[HASHER].store_verifier,
    )
    receipt = done.receipt
    log.debug(
        "report_submitted",
        thread_id=str(receipt.thread_id),
        outcome="new" if receipt.is_new else "repeat",
    )
    if done.code_failed:
        return problem(
            503,
            "The report was received, but its code could not be made yet. "
            "Send the same request again with the same Idempotency-Key.",
            headers={"Retry-After": "5"},
        )
    return web.json_response(
        {
            "reference": receipt.reference,
            "code": codes.display(done.code) if done.code else None,
            "reply_due_by": _iso(receipt.reply_due_by),
        },
        status=201 if receipt.is_new else 200,
    )


# --- Reporter ------------------------------------------------------------------------------


async def reporter_session(request: web.Request) -> web.Response:
    data = await read_json(request)
    code = data.get("code") if isinstance(data, dict) else None
    if not isinstance(code, str):
        raise ValidationFailed([FieldError("code", "Send the code as a string")])
    thread_id, session = await reporter_auth.log_in(
        request.app[CTX],
        code,
        request.app[LOGIN_LIMITS].guard(request),
        request.app[HASHER].check_code,
    )
    log.info("reporter_logged_in", thread_id=str(thread_id))
    return web.json_response({"token": session.token, "expires_at": session.expires_at.isoformat()})


async def _reporter(request: web.Request) -> Auth:
    auth = await reporter_for(request)
    if auth is None:
        raise web.HTTPUnauthorized()
    return auth


def _message(m: threads.Message) -> dict[str, Any]:
    return {"from": m.author, "body": m.body, "sent_at": m.sent_at.isoformat()}


async def reporter_thread(request: web.Request) -> web.Response:
    auth = await _reporter(request)
    assert auth.session.thread_id is not None
    view = await threads.reporter_view(request.app[CTX], auth.session.thread_id)
    return web.json_response(
        {
            "reference": view.reference,
            "category": view.category,
            "description": view.description,
            "submitted_at": view.received_at.isoformat(),
            "status": "closed" if view.status == "closed" else "open",
            "reply_due_by": _iso(view.reply_due_by),
            "messages": [_message(m) for m in view.messages],
        }
    )


async def reporter_message(request: web.Request) -> web.Response:
    auth = await _reporter(request)
    body = threads.message_body(_body_field(await read_json(request)))
    assert auth.session.thread_id is not None
    sent = await threads.add_reporter_message(
        request.app[CTX], auth.session.thread_id, body, idempotency_key=_idempotency_key(request)
    )
    return web.json_response(
        {"sent_at": sent.sent_at.isoformat()}, status=201 if sent.is_new else 200
    )


async def reporter_reminder(request: web.Request) -> web.Response:
    auth = await _reporter(request)
    assert auth.session.thread_id is not None
    return await latest_reminder(request, auth.session.thread_id)


async def reporter_logout(request: web.Request) -> web.Response:
    auth = await _reporter(request)
    await sessions.end(request.app[CTX], auth.session.token_hmac)
    return web.Response(status=204)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _body_field(data: Any) -> Any:
    if not isinstance(data, dict):
        raise ValidationFailed([FieldError("", "The body must be a JSON object")])
    return data.get("body")


def _idempotency_key(request: web.Request) -> str | None:
    """The checked header, marked as the API's so that it never meets an HTML form token."""
    key = idempotency.check_header(request.headers.get("Idempotency-Key"))
    return f"api:{key}" if key is not None else None


# --- Staff ---------------------------------------------------------------------------------


async def staff_session(request: web.Request) -> web.Response:
    data = await read_json(request)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("email"), str)
        or not isinstance(data.get("password"), str)
    ):
        raise ValidationFailed([FieldError("email", "Send email and password as strings")])
    done = await staff_service.log_in(
        request.app[CTX],
        request.app[HASHER].local,
        request.app[STAFF_LOGIN_LIMITS].guard(request),
        data["email"],
        data["password"],
    )
    return web.json_response(
        {"token": done.session.token, "expires_at": done.session.expires_at.isoformat()}
    )


async def _staff(
    request: web.Request, roles: tuple[str, ...] = THREAD_READER_ROLES
) -> tuple[threads.Staff, Auth]:
    """The caller's staff session; by default only roles that read threads get further (else
    403), so a new staff call cannot forget that ops sees none."""
    found = await staff_for(request)
    if found is None:
        raise web.HTTPUnauthorized()
    if found[0].role not in roles:
        raise threads.Forbidden()
    return found


async def staff_logout(request: web.Request) -> web.Response:
    _, auth = await _staff(request, ROLES)
    await sessions.end(request.app[CTX], auth.session.token_hmac)
    return web.Response(status=204)


def _summary(t: threads.ThreadView | threads.InboxRow) -> dict[str, Any]:
    return {
        "reference": t.reference,
        "category": t.category,
        "team": t.team,
        "anonymous": t.anonymous,
        "follow_up": t.follow_up,
        "received_at": t.received_at.isoformat(),
        "last_reporter_message_at": (
            t.last_reporter_message_at.isoformat() if t.last_reporter_message_at else None
        ),
        "status": t.status,
        "assignee": t.assignee,
        "reply_due_by": _iso(t.reply_due_by),
        "escalation": t.escalation,
    }


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
    return web.json_response(
        {"threads": [_summary(t) for t in result.threads], "next_page": result.next_page}
    )


async def staff_thread(request: web.Request) -> web.Response:
    member, _ = await _staff(request)
    view = await threads.staff_view(request.app[CTX], member, request.match_info["reference"])
    body = _summary(view)
    body.update(
        description=view.description,
        contact=view.contact,
        messages=[_message(m) for m in view.messages],
        notes=[
            {"author": n.author, "body": n.body, "created_at": n.created_at.isoformat()}
            for n in view.notes
        ],
    )
    return web.json_response(body)


async def _thread_body(request: web.Request) -> tuple[threads.Staff, str, dict[str, Any]]:
    """A staff thread action's caller, thread reference and JSON object body."""
    member, _ = await _staff(request)
    data = await read_json(request)
    if not isinstance(data, dict):
        raise ValidationFailed([FieldError("", "The body must be a JSON object")])
    return member, request.match_info["reference"], data


async def staff_thread_messages(request: web.Request) -> web.Response:
    member, reference, data = await _thread_body(request)
    body = threads.message_body(data.get("body"))
    key = _idempotency_key(request)
    sent = await threads.reply(request.app[CTX], member, reference, body, idempotency_key=key)
    return web.json_response(
        {"sent_at": sent.sent_at.isoformat()}, status=201 if sent.is_new else 200
    )


async def staff_thread_notes(request: web.Request) -> web.Response:
    member, reference, data = await _thread_body(request)
    body = threads.message_body(data.get("body"))
    created = await threads.add_note(request.app[CTX], member, reference, body)
    return web.json_response({"created_at": created.isoformat()}, status=201)


async def staff_thread_status(request: web.Request) -> web.Response:
    member, reference, data = await _thread_body(request)
    await threads.set_status(request.app[CTX], member, reference, str(data.get("status", "")))
    return web.json_response({"status": "ok"})


async def staff_thread_team(request: web.Request) -> web.Response:
    member, reference, data = await _thread_body(request)
    await threads.set_team(request.app[CTX], member, reference, str(data.get("team", "")))
    return web.json_response({"status": "ok"})


async def staff_thread_assignee(request: web.Request) -> web.Response:
    member, reference, data = await _thread_body(request)
    email = data.get("email")
    if email is not None and not isinstance(email, str):
        raise ValidationFailed([FieldError("email", "A string or null")])
    await threads.set_assignee(request.app[CTX], member, reference, email)
    return web.json_response({"status": "ok"})


async def staff_thread_restricted(request: web.Request) -> web.Response:
    member, reference, data = await _thread_body(request)
    restricted = data.get("restricted") is True
    await threads.set_restricted(request.app[CTX], member, reference, restricted)
    return web.json_response({"status": "ok"})
