"""Statistics for managers and admins: the page (charts drawn on the server), its CSV and
``GET /api/v1/staff/statistics`` (CONTRACTS §3). All three show the same suppressed table."""

from __future__ import annotations

import csv
import io
from typing import Any

from aiohttp import web

from confide.errors import ValidationFailed
from confide.services import statistics
from confide.services.statistics import STATISTICS_ROLES, Figures, Statistics
from confide.services.threads import Staff
from webapp.auth import Auth
from webapp.handlers.caseworker import field_errors, render, render_spliced, staff_page
from webapp.keys import CTX, STATISTICS_PAGES

ROLES = tuple(r.value for r in STATISTICS_ROLES)
SUPPRESSED = "fewer than 5*"
NOT_SHOWN = "not shown"
CSV_COLUMNS = (
    "month",
    "team",
    "category",
    "received",
    "anonymous",
    "with_contact",
    "follow_up",
    "open",
    "closed",
    "overdue",
    "replied_within_target",
    "share_within_target",
    "median_first_reply_working_hours",
    "p90_first_reply_working_hours",
)


@staff_page(roles=ROLES)
async def page(request: web.Request, member: Staff, auth: Auth) -> web.Response:
    start, end = request.query.get("from"), request.query.get("to")
    typed = {"typed_from": (start or "")[:7], "typed_to": (end or "")[:7]}
    try:
        scope = statistics.scope_of(request.app[CTX], member, start, end)
        month = statistics.detail_month(scope, request.query.get("month"))
    except ValidationFailed as exc:
        context: dict[str, Any] = {**typed, "body": None, "errors": field_errors(exc)}
        return render(request, "staff/statistics.html", member, auth, context, status=422)
    drawn = await request.app[STATISTICS_PAGES].get(request.app[CTX], scope, month)
    shown = {"typed_from": scope.first.isoformat()[:7], "typed_to": scope.last.isoformat()[:7]}
    return render_spliced(
        request, "staff/statistics.html", member, auth, shown, "body", drawn.body_utf8
    )


def _cell(value: float | None, hidden: str) -> str:
    return hidden if value is None else str(value)


def _csv_figures(f: Figures) -> list[str]:
    counts = [
        f.received,
        f.anonymous,
        f.with_contact,
        f.follow_up,
        f.open,
        f.closed,
        f.overdue,
        f.replied_within_target,
    ]
    derived = [f.share_within_target, f.median_hours, f.p90_hours]
    return [_cell(v, SUPPRESSED) for v in counts] + [_cell(v, NOT_SHOWN) for v in derived]


def _text(value: str) -> str:
    """A name as a spreadsheet takes it: never a formula (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_text(stats: Statistics) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for r in stats.rows:
        month = r.month.isoformat()[:7]
        writer.writerow([month, _text(r.team), _text(r.category), *_csv_figures(r.figures)])
    writer.writerow(["total", "", "", *_csv_figures(stats.totals)])
    return out.getvalue()


@staff_page(roles=ROLES)
async def download(request: web.Request, member: Staff, auth: Auth) -> web.Response:
    query = request.query
    stats = await statistics.statistics(
        request.app[CTX], member, query.get("from"), query.get("to")
    )
    name = f"statistics-{stats.first.isoformat()[:7]}-{stats.last.isoformat()[:7]}.csv"
    return web.Response(
        text=csv_text(stats),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
