"""Responses that HTML pages and the JSON API send alike: the reminder's calendar file."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from confide.errors import ReminderNotReady
from confide.services import reminders
from webapp.keys import CTX


def ics_response(data: bytes | None) -> web.Response:
    """The reminder as a download; ReminderNotReady (503 with Retry-After, as a page or a
    problem: webapp.errors) while a worker is still making it."""
    if data is None:
        raise ReminderNotReady()
    return web.Response(
        body=data,
        content_type="text/calendar",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="reminder.ics"'},
    )


async def latest_reminder(request: web.Request, thread_id: UUID) -> web.Response:
    """The reporter's latest reminder file for their thread (``?include_address=1``: with the
    organisation's address), for the messaging page and the API alike."""
    include_address = request.query.get("include_address") == "1"
    data = await reminders.latest(request.app[CTX], thread_id, include_address=include_address)
    return ics_response(data)
