"""The report pages' drafts as the web sees them: the draft cookie, and a step's answers merged
into the draft (docs/security.md "Drafts", docs/reporters.md "The report pages").

With the cookie, each question's POST saves the page's answers into the draft and redirects to
a GET of the next page, drawn from the draft (post/redirect/get). Without it (cookies off), the
pages carry the answers in hidden fields, as they always did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from confide import drafts as keys
from confide.drafts import BrowserKey
from confide.models import NewReport
from confide.services import drafts
from confide.services.reports import Submitted
from webapp import report_flow
from webapp.keys import CTX, SETTINGS
from webapp.security import is_tls

COOKIE = "confide_draft"
Draft = dict[str, Any]


def cookie_name(request: web.Request) -> str:
    return f"__Host-{COOKIE}" if is_tls(request, request.app[SETTINGS]) else COOKIE


def browser_key(request: web.Request) -> BrowserKey | None:
    """The key the browser sent in its draft cookie; None without one (cookies off)."""
    return keys.from_cookie(request.cookies.get(cookie_name(request)))


def set_cookie(request: web.Request, response: web.StreamResponse, browser: BrowserKey) -> None:
    """A browser-session cookie: it ends when the browser is closed, or at Exit."""
    response.set_cookie(
        cookie_name(request),
        browser.cookie_value(),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=is_tls(request, request.app[SETTINGS]),
    )


def clear_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(
        cookie_name(request),
        path="/",
        secure=is_tls(request, request.app[SETTINGS]),
        samesite="Strict",
    )


async def load(request: web.Request, browser: BrowserKey | None) -> Draft | None:
    return None if browser is None else await drafts.load(request.app[CTX], browser)


async def save(request: web.Request, browser: BrowserKey, draft: Draft) -> None:
    await drafts.save(request.app[CTX], browser, draft)


async def forget(request: web.Request) -> None:
    """Delete the browser's draft, if it has one (Exit)."""
    browser = browser_key(request)
    if browser is not None:
        await drafts.delete(request.app[CTX], browser)


async def in_progress(request: web.Request, browser: BrowserKey) -> Draft:
    """The draft of a report being written: empty when there is none yet, or when the draft
    holds a report already sent (a new report begins)."""
    draft = await load(request, browser)
    return draft if draft is not None and answers_of(draft) is not None else {}


async def resume(request: web.Request) -> tuple[BrowserKey, Draft, dict[str, str]]:
    """The browser's key, its draft and the answers in it; a report sent already: its
    confirmation (browser Back from it); no draft: start again."""
    browser = browser_key(request)
    draft = await load(request, browser)
    answers = answers_of(draft)
    if browser is None or draft is None or answers is None:
        sent = draft is not None and "confirmation" in draft
        raise web.HTTPSeeOther("/report/confirmation" if sent else "/report")
    return browser, draft, answers


async def held_answers(request: web.Request) -> tuple[BrowserKey | None, dict[str, str] | None]:
    """For the check page's submit: the browser's key and the answers its draft holds. A draft
    cookie without answers is a report sent already (a repeat: the confirmation's GET answers
    it), or a draft that expired or was exited (that GET then starts again)."""
    browser = browser_key(request)
    held = answers_of(await load(request, browser))
    if browser is not None and held is None:
        raise web.HTTPSeeOther("/report/confirmation")
    return browser, held


def answers_of(draft: Draft | None) -> dict[str, str] | None:
    """The answers a draft holds (None once the report was sent, or without a draft)."""
    held = (draft or {}).get("answers")
    return report_flow.answers_from(held) if isinstance(held, dict) else None


def merged(draft: Draft | None, form: dict[str, str]) -> dict[str, str]:
    """The draft's answers with the posted page's own fields (what was typed on it) over them:
    the page posts only its own questions."""
    answers = answers_of(draft) or report_flow.answers_from({})
    step_fields = report_flow.STEP_FIELDS.get(form.get("step", ""), ())
    return report_flow.answers_from({**answers, **{f: form.get(f, "") for f in step_fields}})


def page_url(page: report_flow.Page) -> str:
    query = "?return_to=check" if page.return_to == "check" else ""
    return f"/report/{page.step}{query}"


@dataclass(frozen=True)
class Confirmation:
    """What the confirmation page shows, kept in the draft after submission (the code apart)."""

    reference: str
    thread_id: str
    wants_code: bool
    anonymous: bool
    reply_due_by: datetime | None = None
    already_received: bool = False

    @classmethod
    def of(cls, report: NewReport, done: Submitted) -> Confirmation:
        receipt = done.receipt
        return cls(
            receipt.reference,
            str(receipt.thread_id),
            receipt.wants_code,
            report.anonymous,
            receipt.reply_due_by,
            not receipt.is_new and done.code is None,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["reply_due_by"] = self.reply_due_by.isoformat() if self.reply_due_by else None
        return data

    @classmethod
    def from_draft(cls, draft: Draft | None) -> Confirmation | None:
        data = (draft or {}).get("confirmation")
        if not isinstance(data, dict):
            return None
        due = data.get("reply_due_by")
        return cls(**{**data, "reply_due_by": datetime.fromisoformat(due) if due else None})


async def confirmed(
    request: web.Request, browser: BrowserKey, shown: Confirmation, code: str | None
) -> None:
    """Submitted: the answers are deleted, and the draft keeps only the confirmation (and its
    code, for a few minutes)."""
    payload = {"confirmation": shown.to_json()}
    if code is None:
        await drafts.save(request.app[CTX], browser, payload)
    else:
        await drafts.save_confirmation(request.app[CTX], browser, payload, code)


async def forget_code(request: web.Request) -> None:
    """ "I have saved my code", or a login: the confirmation shows the code no more, nor what
    its check was given."""
    browser = browser_key(request)
    if browser is not None:
        await drafts.forget_code(request.app[CTX], browser)
        draft = await load(request, browser)
        if draft is not None and CHECK in draft:
            await save(request, browser, {k: v for k, v in draft.items() if k != CHECK})


CHECK = "last4_typed"  # what the confirmation's check was given, for its next GET


async def keep_check(request: web.Request, typed: str) -> None:
    """The confirmation's check without JavaScript: what was typed, kept in the draft (sealed
    like the rest) while it holds a confirmation; its GET then says whether it matches."""
    browser = browser_key(request)
    draft = await load(request, browser)
    if browser is None or draft is None or Confirmation.from_draft(draft) is None:
        return
    await save(request, browser, {**draft, CHECK: typed})


def checked_last4(draft: Draft) -> str | None:
    """What the check was last given (None: not checked since the code was shown)."""
    typed = draft.get(CHECK)
    return typed if isinstance(typed, str) else None
