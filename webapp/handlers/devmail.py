"""/dev/mail: what the local capture server received (development only, never in production)."""

from __future__ import annotations

import email
from email import policy
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from webapp.keys import SETTINGS


async def dev_mail(request: web.Request) -> web.Response:
    folder = request.app[SETTINGS].dev_mail_dir
    if folder is None or request.app[SETTINGS].is_production:
        raise web.HTTPNotFound()
    messages: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.eml"), reverse=True)[:200]:
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        body = msg.get_body(preferencelist=("plain",))
        messages.append(
            {
                "subject": str(msg["Subject"] or ""),
                "to": str(msg["To"] or ""),
                "date": str(msg["Date"] or ""),
                "message_id": str(msg["Message-ID"] or ""),
                "body": body.get_content() if body is not None else "",
            }
        )
    return aiohttp_jinja2.render_template(
        "dev/mail.html", request, {"messages": messages, "staff": None, "csrf_token": ""}
    )
