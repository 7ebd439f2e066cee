"""JSON API (CONTRACTS §3). Errors are application/problem+json, raised through webapp.errors."""

from __future__ import annotations

from aiohttp import web

from confide import codes, logs
from confide.errors import CodeNotIssued
from confide.services import codes as code_service
from confide.services import reports, validation
from confide.sql import org as sql_org
from webapp.errors import problem
from webapp.forms import read_json
from webapp.keys import HASHER, KEYRING, LIMITS, POOL, SETTINGS
from webapp.openapi import document

log = logs.get("confide.web.api")
MAX_IDEMPOTENCY_KEY = 200


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())


async def categories(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        rows = await sql_org.active_categories(conn)
    return web.json_response([{"id": r["slug"], "name": r["name"]} for r in rows])


async def create_report(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()):
        return problem(400, f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters.")
    data = await read_json(request)
    async with request.app[POOL].acquire() as conn:
        known = {r["slug"] for r in await sql_org.active_categories(conn)}
    draft = validation.report_from_json(data, known)
    request.app[LIMITS].check(request)
    receipt = await reports.submit_report(
        request.app[POOL],
        settings,
        request.app[KEYRING],
        draft,
        idempotency_key=f"api:{key}" if key else None,
    )
    log.info(
        "report_submitted",
        thread_id=str(receipt.thread_id),
        outcome="new" if receipt.is_new else "repeat",
    )
    code = None
    if receipt.wants_code:
        try:
            code = await code_service.issue_code(
                request.app[POOL], settings, receipt.thread_id, request.app[HASHER].store_verifier
            )
        except CodeNotIssued:
            return problem(
                503,
                "The report was received, but its code could not be made yet. "
                "Send the same request again with the same Idempotency-Key.",
                headers={"Retry-After": "5"},
            )
    return web.json_response(
        {
            "reference": receipt.reference,
            "code": codes.display(code) if code else None,
            "reply_due_by": None,
        },
        status=201 if receipt.is_new else 200,
    )
