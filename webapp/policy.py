"""Request policy in middleware: what every unsafe HTML request must satisfy before a handler.

Every POST (PUT, PATCH, DELETE) to an HTML route must come from this site: the same-origin rule
of docs/security.md (``Origin`` or ``Referer``, ``Origin: null`` only with Fetch metadata saying
same-origin), checked here once for every route, so a form added later is covered by default.
The JSON API (``/api/``) is outside it: it reads no cookie and authenticates by bearer token,
and a cross-site page cannot send it JSON without a CORS preflight that it never answers.
The per-form tokens (session CSRF, login CSRF, signed form tokens) are checked where each form
is read; see docs/security.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from webapp.auth import API_PREFIX
from webapp.errors import error_page
from webapp.i18n import _
from webapp.keys import SETTINGS
from webapp.security import same_origin

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CROSS_SITE = "This form must be sent from this site."


@web.middleware
async def same_origin_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if (
        request.method in UNSAFE_METHODS
        and request.match_info.http_exception is None  # a route matched (else 404/405 as usual)
        and not request.path.startswith(API_PREFIX)
        and not same_origin(request, request.app[SETTINGS])
    ):
        return error_page(request, 403, _(CROSS_SITE))
    return await handler(request)
