"""Responses that HTML pages and the JSON API send alike: the reminder's calendar file."""

from __future__ import annotations

from aiohttp import web

from confide.errors import ReminderNotReady


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
