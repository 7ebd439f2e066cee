"""Per-route body limits (CONTRACTS §3, 413): 1 MiB everywhere (``webapp.app.MAX_BODY``),
except on the routes named in :data:`LARGE_BODY_ROUTES`, which take the organisation's attachment
limits: ``POST /api/v1/uploads`` one file (``max_file_mib``), and the HTML steps that carry files
(registered with :func:`allow_files` by the module that routes them) all of a report's or
message's files (``max_total_mib``), plus :data:`FORM_OVERHEAD` for the rest of the form."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import Enum

from aiohttp import web

from confide.files.limits import AttachmentLimits
from webapp.keys import ORG

MIB = 1024 * 1024
FORM_OVERHEAD = MIB  # multipart headers and a step's text fields beside the files


class BodyLimit(Enum):
    ONE_FILE = "one file"  # max_file_mib
    ALL_FILES = "all files"  # max_total_mib


# Route name -> which limit applies. Everything else keeps MAX_BODY.
LARGE_BODY_ROUTES: dict[str, BodyLimit] = {"api_uploads": BodyLimit.ONE_FILE}


def allow_files(route_name: str, limit: BodyLimit = BodyLimit.ALL_FILES) -> None:
    """Let ``route_name`` (an HTML step that carries files) take bodies up to the
    organisation's attachment limit instead of 1 MiB."""
    LARGE_BODY_ROUTES[route_name] = limit


def limit_bytes(limits: AttachmentLimits, limit: BodyLimit) -> int:
    files = limits.max_file_bytes if limit is BodyLimit.ONE_FILE else limits.max_total_bytes
    return files + FORM_OVERHEAD


@web.middleware
async def body_limit_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Outermost: the routes that carry files get their larger limit on a clone of the request
    (aiohttp's ``client_max_size`` is per request), which every inner middleware then sees."""
    limit = LARGE_BODY_ROUTES.get(request.match_info.route.name or "")
    if limit is None:
        return await handler(request)
    max_size = limit_bytes(request.app[ORG].attachments, limit)
    return await handler(request.clone(client_max_size=max_size))
