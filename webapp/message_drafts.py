"""A message being written, kept across "Add these files", "Remove", Back and a reload
(docs/security.md "Drafts", docs/reporters.md "The messages page").

The reporter's message on ``/messages`` and a case worker's reply on ``/staff/threads/REF`` are
kept like a report's draft: AES-256-GCM ciphertext in a ``report_drafts`` row, under a key only
the browser holds, in its own cookie (``confide_message_draft`` for a reporter,
``confide_reply_draft`` for staff; HttpOnly, SameSite=Strict, a browser-session cookie). The
draft holds what was typed and the ids of the files waiting to be sent, never in a URL, a log or
Redis. It names the login session it was written in (a hash of the session's HMAC), so a draft
left from a session that ended (logout, expiry) never shows in the next one; sending the
message, or logging out, deletes it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from confide import drafts as keys
from confide.drafts import BrowserKey
from confide.services import drafts
from confide.services.attachments import Uploader
from webapp import form_files
from webapp.auth import Auth
from webapp.form_files import Files
from webapp.forms import read_form
from webapp.keys import CTX, SETTINGS
from webapp.security import is_tls

COOKIES = {"reporter": "confide_message_draft", "staff": "confide_reply_draft"}
BODY_MAX = 20_000  # far above a message's 10,000 characters: what was typed, kept as typed
_KEPT = web.RequestKey("message_draft_kept", BrowserKey)


def _cookie(request: web.Request, kind: str) -> str:
    name = COOKIES[kind]
    return f"__Host-{name}" if is_tls(request, request.app[SETTINGS]) else name


def _owner(auth: Auth) -> str:
    """The login session the draft belongs to, as a hash (the session's HMAC is not kept)."""
    return hashlib.sha256(b"message-draft:" + auth.session.token_hmac).hexdigest()


def _browser(request: web.Request, kind: str) -> BrowserKey | None:
    return keys.from_cookie(request.cookies.get(_cookie(request, kind)))


async def _load(request: web.Request, kind: str, auth: Auth) -> dict[str, Any]:
    """The draft's messages by place (a thread's reference, or ``messages``); empty without a
    draft, or when the draft was written in another session (then it is deleted)."""
    browser = _browser(request, kind)
    if browser is None:
        return {}
    held = await drafts.load(request.app[CTX], browser)
    if held is None:
        return {}
    if held.get("owner") != _owner(auth):
        await drafts.delete(request.app[CTX], browser)
        return {}
    places = held.get("messages")
    return places if isinstance(places, dict) else {}


async def kept(
    request: web.Request, kind: str, auth: Auth, place: str, uploader: Uploader
) -> tuple[str, Files]:
    """What was typed and the files waiting, for the page's GET ("" and none without a draft).
    A file that expired meanwhile is left out."""
    entry = (await _load(request, kind, auth)).get(place)
    if not isinstance(entry, dict):
        return "", Files()
    body = entry.get("body")
    ids = entry.get("uploads")
    held = [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []
    usable = await form_files.usable(request, uploader, held)
    files = Files(
        [u.upload_id for u in usable],
        entry.get("keep_file_names") is True,
        shown=form_files.shown_files(usable),
    )
    return (body if isinstance(body, str) else ""), files


async def held_ids(
    request: web.Request, kind: str, auth: Auth, place: str, form: dict[str, str]
) -> list[str]:
    """The files a message form holds already: the draft's while there is one (a page from
    before a "Remove", come back by Back, cannot bring a removed file back), else those the
    page carried."""
    entry = (await _load(request, kind, auth)).get(place)
    if isinstance(entry, dict) and isinstance(entry.get("uploads"), list):
        return [i for i in entry["uploads"] if isinstance(i, str)]
    return form_files.carried_ids(form)


async def keep(
    request: web.Request, kind: str, auth: Auth, place: str, body: str, files: Files
) -> None:
    """Save what was typed and the files into the draft; the cookie is set on the answer
    (:func:`set_cookie`) when the browser had none."""
    browser = _browser(request, kind)
    places = await _load(request, kind, auth) if browser is not None else {}
    if browser is None:
        browser = keys.new_key()
        request[_KEPT] = browser
    places = {
        **places,
        place: {"body": body[:BODY_MAX], **files.draft_fields()},
    }
    payload = {"owner": _owner(auth), "messages": places}
    await drafts.save(request.app[CTX], browser, payload)


def set_cookie(request: web.Request, kind: str, response: web.StreamResponse) -> None:
    """The new draft's cookie, if :func:`keep` made one for this request."""
    browser = request.get(_KEPT)
    if browser is None:
        return
    response.set_cookie(
        _cookie(request, kind),
        browser.cookie_value(),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=is_tls(request, request.app[SETTINGS]),
    )


async def sent(request: web.Request, kind: str, auth: Auth, place: str) -> None:
    """The message was sent: its draft goes (a reply drafted on another thread stays)."""
    browser = _browser(request, kind)
    if browser is None:
        return
    places = await _load(request, kind, auth)
    if place not in places:
        return
    rest = {k: v for k, v in places.items() if k != place}
    if rest:
        await drafts.save(request.app[CTX], browser, {"owner": _owner(auth), "messages": rest})
    else:
        await drafts.delete(request.app[CTX], browser)


async def forget(request: web.Request, kind: str, response: web.StreamResponse) -> None:
    """Logout: the draft and its cookie are deleted."""
    browser = _browser(request, kind)
    if browser is not None:
        await drafts.delete(request.app[CTX], browser)
    response.del_cookie(
        _cookie(request, kind),
        path="/",
        secure=is_tls(request, request.app[SETTINGS]),
        samesite="Strict",
    )


async def take_files(
    request: web.Request,
    kind: str,
    auth: Auth,
    place: str,
    uploader: Uploader,
    page_url: str,
) -> Files:
    """A message form's files: those the draft (or the page) held, with those it brings now.
    "Add these files" or "Remove": kept in the draft with what was typed, then 303 See Other
    to ``page_url``, whose GET shows them (post/redirect/get: Back and reload keep them). A
    refused file: kept likewise, and :class:`form_files.FilesToShow` draws the page again with
    its error summary (422)."""
    form = await read_form(request)
    held = await held_ids(request, kind, auth, place, form)
    files = request[form_files.FILES_KEY] = await form_files.take(request, uploader, form, held)
    if files.errors or files.changed:
        await keep(request, kind, auth, place, form.get("body", ""), files)
    if files.errors:
        raise form_files.FilesToShow(files)
    if files.changed:
        response = web.HTTPSeeOther(page_url)
        set_cookie(request, kind, response)
        raise response
    return files
