"""The report's files (docs/attachments.md "What people see"): chosen on "What happened" and
kept in the draft, under the browser-held key (the draft holds their upload ids, never a cookie
or a URL), so Back, a changed answer or a reload never loses them. Without a draft (cookies
off) they are chosen on check answers and sent with the report; while that page is drawn again
their ids ride in its form, like the answers.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from confide.drafts import BrowserKey
from confide.models import NewReport
from confide.services import attachments
from confide.services.attachments import Uploader, UploadInfo
from webapp import form_files, report_drafts, report_flow
from webapp.form_files import Files, Room
from webapp.keys import CTX

ANONYMOUS = Uploader.anonymous()  # a report's files: bound to their upload ids alone
FILES_STEP = "what"
UPLOADS = "uploads"  # the draft's list of upload ids, in order
KEEP_NAMES = "keep_file_names"


def held_ids(draft: report_drafts.Draft | None) -> list[str]:
    held = (draft or {}).get(UPLOADS)
    return [i for i in held if isinstance(i, str)] if isinstance(held, list) else []


def keeps_names(draft: report_drafts.Draft | None) -> bool:
    return (draft or {}).get(KEEP_NAMES) is True


async def _usable(request: web.Request, ids: list[str]) -> list[UploadInfo]:
    return await form_files.usable(request, ANONYMOUS, ids)


async def of_draft(request: web.Request, draft: report_drafts.Draft | None) -> Files:
    """The draft's files still usable (one that expired is left out), for its pages."""
    held = await _usable(request, held_ids(draft))
    ids = [u.upload_id for u in held]
    return Files(ids, keeps_names(draft), shown=form_files.shown_files(held))


async def take(
    request: web.Request, form: dict[str, str], held_now: list[str], *, step: str
) -> Files:
    """The files a form brought, added to ``held_now`` (the draft's, or those the page
    carried); the one its "Remove" button named, deleted."""
    return await form_files.take(request, ANONYMOUS, form, held_now)


async def hold(request: web.Request, browser: BrowserKey, files: Files) -> None:
    """The draft holds its new uploads: they live as long as it does (after it was saved)."""
    for upload_id in files.new_ids:
        if upload_id in files.ids:
            await attachments.hold_in_draft(request.app[CTX], ANONYMOUS, upload_id, browser.row_id)


async def for_step(
    request: web.Request, browser: BrowserKey, draft: report_drafts.Draft, form: dict[str, str]
) -> Files:
    """A question page's POST with a draft: "What happened" takes files (and the tick box);
    every other page keeps the draft's files as they are."""
    if form.get("step") != FILES_STEP:
        await form_files.receive_files(request, ANONYMOUS, Room(0, 0))  # none are offered
        return await of_draft(request, draft)
    return await take(request, form, held_ids(draft), step=FILES_STEP)


async def for_submit(
    request: web.Request, browser: BrowserKey | None, form: dict[str, str]
) -> Files:
    """Check answers' submit: with a draft, its files (the page offers none); without one, the
    files chosen on the page with those it carried."""
    if browser is not None:
        await form_files.receive_files(request, ANONYMOUS, Room(0, 0))
        return await of_draft(request, await report_drafts.load(request, browser))
    return await take(request, form, form_files.carried_ids(form), step="check")


def with_files(form: dict[str, str], page: report_flow.Page, files: Files) -> report_flow.Page:
    """The page after a form that carried files: the same page with the refused files in its
    error summary (beside the page's own errors, what was typed kept), or after "Add files" or
    "Remove" the same page again; otherwise ``page``."""
    step = form.get("step", "check")
    step = step if step in report_flow.STEPS else "check"
    return_to = "check" if form.get("return_to") == "check" and step != "check" else ""
    if files.errors:
        own = page.errors.items if page.step == step else []
        items = [*own, *((form_files.FILES_FIELD, e) for e in files.errors)]
        return report_flow.Page(step, report_flow.FormErrors(items), return_to, 422)
    if files.changed:
        return report_flow.Page(step, return_to=return_to)
    return page


async def after_refusal(
    request: web.Request, browser: BrowserKey | None, files: Files, page: report_flow.Page
) -> Files:
    """Check answers again after the report was not sent: its files still usable (one that
    expired meanwhile is dropped from the draft too)."""
    usable = await _usable(request, files.ids)
    kept = Files(
        [u.upload_id for u in usable], files.keep_names, shown=form_files.shown_files(usable)
    )
    if browser is not None and len(kept.ids) != len(files.ids):
        draft = await report_drafts.load(request, browser)
        if draft is not None and report_drafts.answers_of(draft) is not None:
            await report_drafts.save(request, browser, {**draft, **kept.draft_fields()})
    return kept


async def page_context(request: web.Request, files: Files) -> dict[str, Any]:
    """What a page with the report's files shows: the list (neutral name, size, type), the ids
    a page without a draft carries, the tick box, and the limits in words."""
    shown = files.shown
    if files.ids and not shown:
        shown = form_files.shown_files(await _usable(request, files.ids))
    return form_files.page_context(request, files, shown)


def attached(report: NewReport, files: Files) -> NewReport:
    """The report with its files, in order (claimed when it is submitted)."""
    if not files.ids:
        return report
    return report.model_copy(
        update={"attachments": tuple(files.ids), "keep_file_names": files.keep_names}
    )
