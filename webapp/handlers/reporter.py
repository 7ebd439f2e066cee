"""Reporter pages: start, the report questions, check answers, confirmation with the code."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from confide import codes, logs
from confide.errors import CodeNotIssued
from confide.services import codes as code_service
from confide.services import reports
from confide.sql import org as sql_org
from webapp import report_flow
from webapp.errors import error_page
from webapp.forms import read_form
from webapp.keys import HASHER, KEYRING, LIMITS, POOL, SETTINGS
from webapp.report_flow import FormErrors
from webapp.security import check_form_token, new_form_token, same_origin

log = logs.get("confide.web.reporter")
SUBMIT_PURPOSE = "report-submit"


async def start(request: web.Request) -> web.Response:
    return aiohttp_jinja2.render_template("reporter/start.html", request, {})


async def accessibility(request: web.Request) -> web.Response:
    return aiohttp_jinja2.render_template("reporter/accessibility.html", request, {})


async def login(request: web.Request) -> web.Response:
    # The code login arrives with issue 4; until then the page says so plainly.
    return aiohttp_jinja2.render_template("reporter/login.html", request, {})


async def _categories(request: web.Request) -> list[dict[str, str]]:
    async with request.app[POOL].acquire() as conn:
        rows = await sql_org.active_categories(conn)
    return [{"slug": r["slug"], "name": r["name"]} for r in rows]


async def render_step(
    request: web.Request,
    step: str,
    answers: dict[str, str],
    *,
    errors: FormErrors | None = None,
    return_to: str = "",
    status: int = 200,
    notice: str | None = None,
) -> web.Response:
    categories = await _categories(request)
    context: dict[str, Any] = {
        "step": step,
        "answers": answers,
        "errors": errors or FormErrors([]),
        "return_to": return_to,
        "previous": None if return_to else report_flow.previous_step(step, answers),
        "categories": categories,
        "category_names": {c["slug"]: c["name"] for c in categories},
        "notice": notice,
        "fields": report_flow.STEP_FIELDS.get(step, ()),
    }
    template = "reporter/check.html" if step == "check" else f"reporter/step-{step}.html"
    if step == "check":
        context["form_token"] = new_form_token(request.app[SETTINGS], SUBMIT_PURPOSE)
    return aiohttp_jinja2.render_template(template, request, context, status=status)


async def report_start(request: web.Request) -> web.Response:
    return await render_step(request, "how", report_flow.answers_from({}))


async def report_step(request: web.Request) -> web.Response:
    """One question answered: validate that page, then show the next (or check answers)."""
    if not same_origin(request, request.app[SETTINGS]):
        return error_page(request, 403, "This form must be sent from this site.")
    form = await read_form(request)
    answers = report_flow.answers_from(form)
    step = form.get("step", "")
    if step not in report_flow.STEPS:
        return await render_step(request, "how", answers)
    if form.get("nav") == "back":
        return await render_step(
            request, report_flow.previous_step(step, answers) or "how", answers
        )
    if step == "check":
        change = form.get("change", "")
        if change in report_flow.STEP_FIELDS:
            return await render_step(request, change, answers, return_to="check")
        return await render_step(request, "check", answers)
    categories = {c["slug"] for c in await _categories(request)}
    errors = report_flow.validate_step(step, answers, categories)
    if errors:
        return await render_step(
            request,
            step,
            answers,
            errors=errors,
            return_to=(form.get("return_to", "") == "check" and "check") or "",
            status=422,
        )
    following = report_flow.next_step(step, answers)
    if form.get("return_to") == "check" or following == "check":
        _, bad_step, bad = report_flow.draft_or_first_bad_step(answers, categories)
        if bad_step is not None:
            # e.g. switched to "with contact details" from check answers: ask what is missing.
            return await render_step(
                request,
                bad_step,
                answers,
                return_to="check",
                errors=bad if bad_step != following else None,
            )
        return await render_step(request, "check", answers)
    return await render_step(request, following, answers)


async def report_submit(request: web.Request) -> web.Response:
    """Commit the report, then (for anonymous follow-up) issue the code and show it once."""
    settings = request.app[SETTINGS]
    if not same_origin(request, settings):
        return error_page(request, 403, "This form must be sent from this site.")
    form = await read_form(request)
    answers = report_flow.answers_from(form)
    categories = {c["slug"] for c in await _categories(request)}
    draft, bad_step, errors = report_flow.draft_or_first_bad_step(answers, categories)
    if draft is None:
        assert bad_step is not None
        return await render_step(
            request, bad_step, answers, errors=errors, return_to="check", status=422
        )
    nonce = check_form_token(settings, SUBMIT_PURPOSE, form.get("form_token", ""))
    if nonce is None:
        return await render_step(
            request,
            "check",
            answers,
            status=400,
            notice="This page had expired, so your report was not sent yet. "
            "Your answers are still here: check them and send the report again.",
        )
    request.app[LIMITS].check(request)
    receipt = await reports.submit_report(
        request.app[POOL], settings, request.app[KEYRING], draft, idempotency_key=nonce
    )
    log.info(
        "report_submitted",
        thread_id=str(receipt.thread_id),
        outcome="new" if receipt.is_new else "repeat",
    )
    code = None
    code_failed = False
    if receipt.wants_code:
        try:
            code = await code_service.issue_code(
                request.app[POOL],
                settings,
                receipt.thread_id,
                request.app[HASHER].store_verifier,
            )
        except CodeNotIssued:
            code_failed = True
    return aiohttp_jinja2.render_template(
        "reporter/confirmation.html",
        request,
        {
            "reference": receipt.reference,
            "code": codes.display(code) if code else None,
            "code_failed": code_failed,
            "wants_code": receipt.wants_code,
            "anonymous": draft.anonymous,
            "answers": answers,
            "form_token": form.get("form_token", ""),
        },
    )
