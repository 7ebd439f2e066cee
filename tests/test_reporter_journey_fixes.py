"""Fixes from walking the reporter's and the case worker's pages in a real browser (issue 14,
items 4-6): Exit this page stays in view, the messaging page says what changed, and small fixes.

The browser stories run Debian's Chromium at 375 px with JavaScript on and off, and axe must find
0 violations on every page they change (tests/test_browser.py has the set-up).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests import html
from tests.conftest import Stack, StaffAccount
from tests.journeys import (
    form_page,
    post,
    reach_check_answers,
    reporter_logs_in,
    reporter_sends,
    send_report,
    staff_acts,
    staff_logs_in,
)
from tests.test_browser import CHROMIUM_ARGS, Auditor, chromium_path, on_a_phone

LONG_REPORT = "\n".join(f"Line {n}: the fire door on level {n} does not close." for n in range(60))


def client(stack: Stack) -> aiohttp.ClientSession:
    """A browser-like client of its own (its own cookies): another person."""
    return aiohttp.ClientSession(base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True))


async def api_report(stack: Stack, description: str) -> tuple[str, str]:
    """An anonymous report with follow-up, sent through the API: its reference and code."""
    async with (
        client(stack) as http,
        http.post(
            "/api/v1/reports",
            json={
                "category": "safety",
                "description": description,
                "anonymous": True,
                "follow_up": True,
            },
        ) as resp,
    ):
        assert resp.status == 201
        body = await resp.json()
    return body["reference"], body["code"]


async def caseworker_does(
    stack: Stack, caseworker: StaffAccount, reference: str, action: str, **fields: str
) -> str:
    async with client(stack) as staff:
        await staff_logs_in(staff, caseworker.email, caseworker.password)
        status, page = await staff_acts(staff, reference, action, **fields)
        assert status == 200, html.text(page)[:500]
    return page


def notice(page: str) -> str:
    """The text of the success or "New reply" notices at the top of a page ("" if none)."""
    found = re.findall(r'<div class="notice[^"]*"[^>]*>(.*?)</div>', page, flags=re.S)
    return " ".join(html.text(f) for f in found)


def count(page: str, state: str) -> int:
    match = re.search(rf'href="/staff\?state={state}"[^>]*>[^<]*<span class="count">(\d+)<', page)
    assert match, state
    return int(match.group(1))


# --- The messaging page ---------------------------------------------------------------------


async def test_reporter_is_told_of_a_new_reply_once_and_led_to_it(
    stack: Stack, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    reference, code = await api_report(stack, "The stairwell light is broken.")
    async with client(stack) as reporter:
        _status, page = await reporter_logs_in(reporter, code)
        assert "New reply" not in page and "Thank you for your patience" in page

    page = await caseworker_does(stack, caseworker, reference, "reply", body="Estates will look.")
    assert "Reply sent" in notice(page)

    async with client(stack) as reporter:
        _status, page = await reporter_logs_in(reporter, code)
        # At the top, before the heading, with a link to the reply's own anchor.
        assert "New reply" in notice(page) and page.index("New reply") < page.index("<h1")
        assert 'href="#message-1"' in page and 'id="message-1"' in page
        assert "Estates will look." in page
        page = await form_page(reporter, "/messages")
        assert "New reply" not in page  # seen: a reload does not announce it again
        _status, page = await reporter_sends(reporter, "Thank you, it is on the second floor.")
        assert "Your message was sent" in page and "New reply" not in page

    await caseworker_does(stack, caseworker, reference, "reply", body="Fixed this morning.")
    async with client(stack) as reporter:
        _status, page = await reporter_logs_in(reporter, code)
        assert "New reply" in notice(page)
        assert 'href="#message-3"' in page  # the latest reply, after the reporter's message
    # What is kept is the reply's own time, not when the reporter looked.
    seen, last = await db.fetchrow(
        "SELECT t.reporter_seen_reply_at, max(m.sent_at) FROM threads t "
        "JOIN messages m ON m.thread_id = t.id AND m.author = 'caseworker' GROUP BY t.id"
    )
    assert seen == last
    # The JSON API reads the thread without moving the mark.
    await db.execute("UPDATE threads SET reporter_seen_reply_at = NULL")
    async with client(stack) as api:
        async with api.post("/api/v1/reporter/session", json={"code": code}) as resp:
            token = (await resp.json())["token"]
        async with api.get(
            "/api/v1/reporter/thread", headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            assert resp.status == 200
    assert await db.fetchval("SELECT reporter_seen_reply_at FROM threads") is None


async def test_reporter_of_a_report_closed_without_a_reply_is_told_so(
    stack: Stack, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    reference, code = await api_report(stack, "A duplicate of an earlier report.")
    page = await caseworker_does(stack, caseworker, reference, "status", status="closed")
    assert "Thread closed" in notice(page)
    async with client(stack) as reporter:
        _status, page = await reporter_logs_in(reporter, code)
    assert "This report was closed without a reply" in page
    assert "Thank you for your patience" not in page and "New reply" not in page
    assert "We aim to reply by" not in page


# --- Check answers: changing how you are reporting --------------------------------------------


async def test_reporter_switching_how_they_report_gets_fresh_questions_and_no_stale_details(
    http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    check = await reach_check_answers(
        http,
        description="The gate does not lock.",
        anonymous=False,
        name="Sam Canary",
        email="sam.canary@example.org",
    )
    assert "sam.canary@example.org" in check
    # Change to anonymous: the follow-up question opens as a question, without errors...
    status, page = await post(http, "/report", dict(html.main_form(check).fields, change="how"))
    assert status == 200 and "How would you like to report?" in html.title(page)
    status, page = await post(http, "/report", html.main_form(page).data(how="anonymous"))
    assert status == 200 and "further communication" in html.title(page)
    assert "There is a problem" not in page and not html.title(page).startswith("Error:")
    # ...and the contact details are gone from the page itself, not only from the server.
    assert "sam.canary@example.org" not in page and "Sam Canary" not in page
    status, check = await post(http, "/report", html.main_form(page).data(follow_up="no"))
    assert html.title(check).startswith("Check your answers")
    assert "sam.canary@example.org" not in check and "Sam Canary" not in check

    # Change back to contact details: the contact page asks, without an error...
    status, page = await post(http, "/report", dict(html.main_form(check).fields, change="how"))
    status, page = await post(http, "/report", html.main_form(page).data(how="contact"))
    assert status == 200 and "How can we contact you?" in html.title(page)
    assert "There is a problem" not in page
    # ...until it is sent without an address or phone number.
    status, page = await post(http, "/report", html.main_form(page).fields)
    assert status == 422 and "There is a problem" in page
    status, check = await post(
        http, "/report", html.main_form(page).data(contact_email="new.canary@example.org")
    )
    assert html.title(check).startswith("Check your answers")
    sent = await send_report(http, check)
    assert sent.status == 200 and sent.code is None
    assert await db.fetchval("SELECT anonymous FROM threads") is False


# --- Staff pages --------------------------------------------------------------------------


async def test_caseworker_sees_due_time_status_words_and_what_each_action_did(
    stack: Stack, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    reference, _code = await api_report(stack, "The lift alarm is silent.")
    async with client(stack) as staff:
        await staff_logs_in(staff, caseworker.email, caseworker.password)
        inbox = await form_page(staff, "/staff?state=awaiting")
        assert count(inbox, "awaiting") == 1 and count(inbox, "closed") == 0

        page = await form_page(staff, f"/staff/threads/{reference}")
        details = html.text(page)
        assert "Reply due" in details and "working time left" in details
        assert "Open · waiting for a reply" in details
        assert ">open<" not in page and ">Saved.<" not in page and notice(page) == ""

        async with staff.get(f"/staff/threads/{reference}") as resp:
            form = next(f for f in html.forms(await resp.text()) if f.action.endswith("/reply"))
        async with staff.post(
            form.action, data=form.data(body="On it."), allow_redirects=False
        ) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == f"/staff/threads/{reference}?done=reply#done"
        page = await form_page(staff, f"/staff/threads/{reference}?done=reply")
        assert notice(page) == "Reply sent" and 'id="done"' in page
        # Their own counts are recounted for the next page, not up to 5 seconds later.
        inbox = await form_page(staff, "/staff?state=awaiting")
        assert count(inbox, "awaiting") == 0

        for action, fields, said in (
            ("note", {"note": "Checked with estates."}, "Note added"),
            ("assign", {"email": caseworker.email}, "Assigned to Casey"),
            ("assign", {"email": ""}, "Thread unassigned"),
            ("status", {"status": "closed"}, "Thread closed"),
        ):
            _status, page = await staff_acts(staff, reference, action, **fields)
            assert notice(page) == said, (action, notice(page))
        details = html.text(page)
        assert "Status Closed" in details and "No reply is due" in details
        inbox = await form_page(staff, "/staff?state=closed")
        assert count(inbox, "closed") == 1  # at once
        start = inbox.index(f'href="/staff/threads/{reference}"')
        row = inbox[start : inbox.index("</tr>", start)]
        assert '<span class="tag tag--grey">Closed</span>' in row and ">closed<" not in row
        _status, page = await staff_acts(staff, reference, "status", status="open")
        assert notice(page) == "Thread reopened"

        # The notice is a fixed word's sentence: nothing from the query is ever shown.
        for done in ("Saved", "<script>alert(1)</script>", "assigned"):
            async with staff.get(f"/staff/threads/{reference}", params={"done": done}) as resp:
                page = await resp.text()
            assert resp.status == 200 and notice(page) == "" and "alert(1)" not in page


async def test_forgotten_inbox_counts_are_counted_afresh_not_from_an_older_count() -> None:
    """webapp.categories.InboxCounts.forget: what a staff member's own action calls."""
    from webapp.categories import InboxCounts

    values = iter(range(1, 100))
    release = asyncio.Event()

    async def recount() -> dict[str, int]:
        return {"awaiting": next(values)}

    async def slow_recount() -> dict[str, int]:
        counts = {"awaiting": next(values)}  # read before the change...
        await release.wait()
        return counts

    counts = InboxCounts(ttl_s=60)
    assert await counts.get("member", recount) == {"awaiting": 1}
    assert await counts.get("member", recount) == {"awaiting": 1}  # fresh for a minute
    counts.forget("member")
    assert await counts.get("member", recount) == {"awaiting": 2}  # at once

    stale = InboxCounts(ttl_s=60)
    early = asyncio.ensure_future(stale.get("member", slow_recount))
    await asyncio.sleep(0.01)
    stale.forget("member")  # ...and the change committed while it ran
    assert await stale.get("member", recount) == {"awaiting": 4}  # not waiting for the old one
    release.set()
    assert await early == {"awaiting": 3}  # who asked before the change gets what it read
    assert await stale.get("member", recount) == {"awaiting": 4}  # and the old count is not kept


async def test_staff_password_form_asks_for_the_fields_left_empty(
    stack: Stack, caseworker: StaffAccount
) -> None:
    async with client(stack) as staff:
        await staff_logs_in(staff, caseworker.email, caseworker.password)
        page = await form_page(staff, "/staff/password")
        status, page = await post(
            staff, "/staff/password", html.main_form(page).data(current="", new="", confirm="")
        )
        assert status == 422
        assert "Enter your current password" in page and "Enter a new password" in page
        assert "not right" not in page
        status, page = await post(
            staff,
            "/staff/password",
            html.main_form(page).data(
                current="wrong", new="twelve chars ok", confirm="twelve chars ok"
            ),
        )
        assert status == 422 and "Your current password is not right" in page


# --- In a real browser ----------------------------------------------------------------------


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS
        )
        yield browser
        await browser.close()


async def reporter_in_browser(
    stack: Stack, browser: Browser, code: str, *, js: bool
) -> tuple[Any, Page]:
    context = await on_a_phone(browser, stack.base_url, js)
    page = await context.new_page()
    await page.goto("/login")
    await page.fill("#code", code)
    await page.click("button:has-text('Log in')")
    assert "Your report" in await page.title()
    return context, page


COVERED = """() => {
    const exit = document.getElementById("exit-this-page").getBoundingClientRect();
    const el = document.activeElement;
    if (!el || el === document.body || el.id === "exit-this-page") { return null; }
    const r = el.getBoundingClientRect();
    // Stricter than covering: nothing that has focus is even level with the control.
    const overlaps = r.top < exit.bottom && r.bottom > exit.top;
    return {overlaps, tag: el.tagName, text: (el.textContent || "").trim().slice(0, 40),
            top: r.top, exitBottom: exit.bottom};
}"""


@pytest.mark.parametrize("js", [True, False], ids=["javascript-on", "javascript-off"])
async def test_exit_stays_in_view_and_never_covers_what_has_focus_on_a_phone(
    stack: Stack, chromium: Browser, db: asyncpg.Connection, caseworker: StaffAccount, js: bool
) -> None:
    reference, code = await api_report(stack, LONG_REPORT)
    await caseworker_does(stack, caseworker, reference, "reply", body="Thank you for this.")
    auditor = Auditor(chromium, stack.base_url)
    context, page = await reporter_in_browser(stack, chromium, code, js=js)
    try:
        assert await page.is_visible("text=New reply")
        await auditor.check(page, js)
        # The Shift shortcut is mentioned only while the script that makes it work runs.
        assert await page.is_visible("[data-exit-hint]") == js
        assert "Shift three times" not in await page.inner_text("footer") or js

        # Scrolled to the very end, the Exit control is still at the top, and on top.
        await page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        assert await page.evaluate("window.scrollY") > 1000
        box = await page.locator("#exit-this-page").bounding_box()
        assert box is not None and 0 <= box["y"] < 30 and box["x"] + box["width"] <= 375
        hit = await page.evaluate(
            f"document.elementFromPoint({box['x'] + box['width'] / 2}, {box['y'] + 10}).id"
        )
        assert hit == "exit-this-page"

        # Going back up with Shift+Tab, each element that takes focus is clear of the control.
        seen = []
        for _ in range(40):
            await page.keyboard.press("Shift+Tab")
            state = await page.evaluate(COVERED)
            if state is None:
                break
            seen.append(state["text"])
            assert not state["overlaps"], state
        assert "Send message" in seen and "Log out" in seen
        # Tab reaching a button that is half under the control scrolls it clear of it.
        await page.evaluate(
            """() => {
                document.querySelector("a[href^='#message-']").focus({preventScroll: true});
                const target = document.querySelector("form[action='/logout'] button");
                window.scrollBy(0, target.getBoundingClientRect().top - 20);
            }"""
        )
        await page.keyboard.press("Tab")
        state = await page.evaluate(COVERED)
        assert state is not None and state["text"] == "Log out" and not state["overlaps"], state

        # The notice's link leads to the reply, and the reply is not under the control either.
        await page.evaluate("window.scrollTo(0, 0)")
        await page.click("text=Read the latest message")
        reply = await page.locator("#message-1").bounding_box()
        assert reply is not None and reply["y"] >= box["y"] + box["height"]
        assert "Thank you for this." in await page.inner_text("#message-1")

        # The reference stays on one line, even at 320 px.
        await page.set_viewport_size({"width": 320, "height": 640})
        lines = await page.evaluate(
            "document.querySelector('.reference-inline').getClientRects().length"
        )
        assert lines == 1
    finally:
        await context.close()


async def test_character_count_is_grammatical_and_announced_once_typing_stops(
    stack: Stack, chromium: Browser, db: asyncpg.Connection
) -> None:
    _reference, code = await api_report(stack, "The car park barrier is stuck.")
    auditor = Auditor(chromium, stack.base_url)
    context, page = await reporter_in_browser(stack, chromium, code, js=True)
    try:
        await page.evaluate(
            """() => {
                const status = document.getElementById("body-count-status");
                window.announced = [];
                new MutationObserver(() => window.announced.push(status.textContent))
                    .observe(status, {childList: true, characterData: true, subtree: true});
            }"""
        )
        count_text = page.locator("#body-count")
        assert await count_text.inner_text() == "You have 10,000 characters left"
        await page.locator("#body").press_sequentially("abc", delay=150)
        assert await count_text.inner_text() == "You have 9,997 characters left"
        assert await page.evaluate("window.announced") == []  # not on every keystroke
        await page.wait_for_function("() => window.announced.length > 0", timeout=3000)
        await asyncio.sleep(1.2)
        assert await page.evaluate("window.announced") == ["You have 9,997 characters left"]
        assert await page.get_attribute("#body-count-status", "aria-live") == "polite"

        await page.fill("#body", "x" * 9_999)
        assert await count_text.inner_text() == "You have 1 character left"
        await page.fill("#body", "x" * 10_012)
        assert await count_text.inner_text() == "You have 12 characters too many"
        assert "character-count--error" in (await count_text.get_attribute("class") or "")
        assert "textarea--error" in (await page.get_attribute("#body", "class") or "")
        await page.wait_for_function(
            "() => document.getElementById('body-count-status').textContent"
            " === 'You have 12 characters too many'",
            timeout=3000,
        )
        await auditor.check(page, True)
        # Back within the limit: no longer an error.
        await page.fill("#body", "x" * 10_000)
        assert await count_text.inner_text() == "You have 0 characters left"
        assert "character-count--error" not in (await count_text.get_attribute("class") or "")
    finally:
        await context.close()


async def test_staff_pages_with_their_new_words_pass_axe(
    stack: Stack, chromium: Browser, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    reference, _code = await api_report(stack, "The kitchen tap leaks.")
    auditor = Auditor(chromium, stack.base_url)
    context = await chromium.new_context(
        viewport={"width": 375, "height": 812}, base_url=stack.base_url
    )
    page = await context.new_page()
    try:
        await page.goto("/staff/login")
        await page.fill("#email", caseworker.email)
        await page.fill("#password", caseworker.password)
        await page.click("button:has-text('Log in')")
        await page.goto(f"/staff/threads/{reference}")
        assert "Reply due" in await page.inner_text("main")
        await auditor.check(page, True)
        await page.click("button:has-text('Close')")
        assert await page.is_visible("text=Thread closed")
        await auditor.check(page, True)
        await page.goto("/staff?state=closed")
        assert await page.is_visible(".tag:has-text('Closed')")
        await auditor.check(page, True)
        await page.goto("/staff/password")
        await page.click("button:has-text('Change password')")
        assert await page.is_visible("text=Enter your current password")
        await auditor.check(page, True)
    finally:
        await context.close()
