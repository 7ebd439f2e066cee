"""/dev/mail: what the local capture server received (development only, never in production)."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from confide.devservices import captured_mail
from webapp.keys import SETTINGS


async def dev_mail(request: web.Request) -> web.Response:
    folder = request.app[SETTINGS].dev_mail_dir
    if folder is None or request.app[SETTINGS].is_production:
        raise web.HTTPNotFound()
    context = {"messages": captured_mail(folder), "staff": None, "csrf_token": ""}
    return aiohttp_jinja2.render_template("dev/mail.html", request, context)
