"""The whole report journey in a real Chromium, with JavaScript on and off, at 375 px wide.

axe-core checks every page against WCAG 2.2 AA and must find 0 violations. These tests fail, and
never skip, when Chromium is missing (``make test`` installs Debian's chromium).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Route,
    ViewportSize,
    async_playwright,
)

from tests import leaks
from tests.conftest import Stack, kick_relay

AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    for candidate in (
        os.environ.get("CONFIDE_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and os.path.exists(candidate):
            return candidate
    pytest.fail(
        "Chromium is missing: run `make test` (it installs Debian's chromium) or set "
        "CONFIDE_CHROMIUM",
        pytrace=False,
    )


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS
        )
        yield browser
        await browser.close()


PHONE: ViewportSize = {"width": 375, "height": 812}


async def on_a_phone(browser: Browser, base_url: str, js: bool) -> BrowserContext:
    """A fresh browser the size of a small phone, with JavaScript on or off."""
    return await browser.new_context(viewport=PHONE, java_script_enabled=js, base_url=base_url)


async def send_a_safety_report_with_follow_up(page: Page) -> None:
    """Walk every report page as a reporter would (anonymous, a safety concern, follow-up)
    and send it: the page ends on "Report received"."""
    await page.goto("/report")
    await page.check("#how")
    await page.click("button:has-text('Continue')")
    await page.check("label:has-text('A safety concern on site')")
    await page.click("button:has-text('Continue')")
    await page.fill("#description", "The lift alarm does not work.")
    for _ in range(3):  # what happened, when, where
        await page.click("button:has-text('Continue')")
    await page.check("#follow_up")
    await page.click("button:has-text('Continue')")
    await page.click("button:has-text('Send report')")


class Auditor:
    """Runs axe on a page. A page rendered without JavaScript is audited as a snapshot (scripts
    removed) in a JavaScript-enabled tab on the same origin, since axe itself is JavaScript."""

    def __init__(self, browser: Browser, base_url: str) -> None:
        self.browser = browser
        self.base_url = base_url
        self.axe = Axe()
        self.audited: list[str] = []

    async def check(self, page: Page, js: bool) -> None:
        options: dict[str, Any] = {
            "runOnly": {"type": "tag", "values": AXE_TAGS},
            "resultTypes": ["violations"],
        }
        title = await page.title()
        if js:
            results = await self.axe.run(page, options=options)
        else:
            snapshot = re.sub(r"<script\b[^>]*>.*?</script>", "", await page.content(), flags=re.S)
            context = await self.browser.new_context(viewport={"width": 375, "height": 812})
            try:
                tab = await context.new_page()
                await tab.route(
                    f"{self.base_url}/__axe_snapshot__",
                    lambda route: route.fulfill(body=snapshot, content_type="text/html"),
                )
                await tab.goto(f"{self.base_url}/__axe_snapshot__")
                results = await self.axe.run(tab, options=options)
            finally:
                await context.close()
        self.audited.append(title)
        assert results.violations_count == 0, f"{title}:\n{results.generate_report()}"


@pytest.mark.parametrize("js", [True, False], ids=["javascript-on", "javascript-off"])
async def test_reporter_completes_the_journey_on_a_phone(
    stack: Stack, browser: Browser, db: asyncpg.Connection, js: bool
) -> None:
    auditor = Auditor(browser, stack.base_url)
    context = await on_a_phone(browser, stack.base_url, js)
    page = await context.new_page()
    try:
        await page.goto("/")
        assert "call 999" in await page.inner_text("main")
        assert await page.is_visible("#exit-this-page")
        await auditor.check(page, js)

        await page.click("text=Start now")
        await auditor.check(page, js)
        # Continue without choosing: the error summary, and the title says Error.
        await page.click("button:has-text('Continue')")
        assert (await page.title()).startswith("Error:")
        assert await page.is_visible(".error-summary")
        await auditor.check(page, js)

        await page.check("#how")
        await page.click("button:has-text('Continue')")
        await page.check("label:has-text('A safety concern on site')")
        await page.click("button:has-text('Continue')")
        await auditor.check(page, js)
        await page.fill("#description", "The fire door on level 2 does not close.")
        await page.click("button:has-text('Continue')")
        await page.fill("#occurred", "Last Tuesday")
        await page.click("button:has-text('Continue')")
        await page.fill("#location", "Library")
        await page.click("button:has-text('Continue')")
        await auditor.check(page, js)
        await page.check("#follow_up")
        await page.click("button:has-text('Continue')")

        assert (await page.title()).startswith("Check your answers")
        summary = await page.inner_text(".summary-list")
        assert "The fire door on level 2 does not close." in summary and "Library" in summary
        await auditor.check(page, js)

        await page.click("button:has-text('Send report')")
        assert await page.is_visible(".panel")
        reference = (await page.inner_text(".reference")).strip()
        code = (await page.inner_text("#code")).strip()
        assert re.fullmatch(r"R-[0-9A-Z]{8}", reference)
        assert re.fullmatch(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){3}", code)
        assert code not in page.url
        assert await page.is_visible("text=cannot be recovered")
        copy_visible = await page.is_visible("[data-copy-target]")
        assert copy_visible == js  # "Copy to clipboard" is progressive enhancement
        assert "We aim to reply by " in await page.inner_text("main")
        await auditor.check(page, js)
        assert await db.fetchval("SELECT count(*) FROM threads") == 1
        # The reporter downloads the calendar reminder (a POST form, so it works without JS).
        for _ in range(100):
            if await db.fetchval("SELECT count(*) FROM reminders WHERE ics IS NOT NULL"):
                break
            kick_relay(stack)
            await asyncio.sleep(0.3)
        async with page.expect_download() as download_info:
            await page.click("button:has-text('Add a reminder to your calendar')")
        download = await download_info.value
        saved = stack.artifacts / f"reminder-{'js' if js else 'nojs'}.ics"
        await download.save_as(str(saved))
        assert b"Check for a reply" in saved.read_bytes()

        assert len(auditor.audited) == 7
        await page.screenshot(
            path=str(stack.artifacts / f"confirmation-{'js' if js else 'nojs'}.png"), full_page=True
        )
    finally:
        await context.close()


async def test_reporter_can_leave_at_once_by_pressing_shift_three_times(
    stack: Stack, browser: Browser
) -> None:
    context = await browser.new_context(
        viewport={"width": 375, "height": 812}, base_url=stack.base_url
    )
    # The exit page is on another host, which this machine cannot reach: answer it locally.
    await context.route(
        "https://www.bbc.co.uk/**",
        lambda route: route.fulfill(body="<title>Weather</title>", content_type="text/html"),
    )
    page = await context.new_page()
    try:
        await page.goto("/")
        await page.goto("/report")
        for _ in range(3):
            await page.keyboard.press("Shift")
        await page.wait_for_url("https://www.bbc.co.uk/weather")
        # The report page was replaced in history, so Back does not return to it.
        await page.go_back()
        assert not page.url.endswith("/report")
    finally:
        await context.close()


@pytest.mark.parametrize("js", [True, False], ids=["javascript-on", "javascript-off"])
async def test_reporter_and_caseworker_talk_in_a_real_browser(
    stack: Stack, browser: Browser, db: asyncpg.Connection, js: bool
) -> None:
    from tests.conftest import add_staff

    worker_account = add_staff(stack, "casey@example.org", "safety")
    auditor = Auditor(browser, stack.base_url)

    async def new_page() -> tuple[Any, Page]:
        context = await on_a_phone(browser, stack.base_url, js)
        return context, await context.new_page()

    # 1. An anonymous report with follow-up shows a code.
    reporter_ctx, page = await new_page()
    await send_a_safety_report_with_follow_up(page)
    code = (await page.inner_text("#code")).strip()
    reference = (await page.inner_text(".reference")).strip()
    # 2. The reporter logs in, then out.
    await page.click("text=Log in now")
    await auditor.check(page, js)
    await page.fill("#code", code)
    await page.click("button:has-text('Log in')")
    assert "No one has replied yet" in await page.inner_text("main")
    await auditor.check(page, js)
    await page.click("button:has-text('Log out')")
    assert "You have logged out" in await page.inner_text("main")
    await reporter_ctx.close()

    # 3. A case worker finds the thread under "awaiting reply" and replies.
    staff_ctx, page = await new_page()
    await page.goto("/staff/login")
    await auditor.check(page, js)
    await page.fill("#email", worker_account.email)
    await page.fill("#password", worker_account.password)
    await page.click("button:has-text('Log in')")
    await auditor.check(page, js)
    await page.click(f"a:has-text('{reference}')")
    await auditor.check(page, js)
    await page.fill("#body", "Thank you, estates are fixing it today.")
    await page.click("button:has-text('Send reply')")
    assert "estates are fixing it" in await page.inner_text("main")
    await staff_ctx.close()

    # 4. The reporter logs in with the code typed in lower case with spaces, and reads the reply.
    reporter_ctx, page = await new_page()
    await page.goto("/login")
    await page.fill("#code", code.lower().replace("-", " "))
    await page.click("button:has-text('Log in')")
    main = await page.inner_text("main")
    assert "estates are fixing it" in main and "Case worker" in main
    # 5. The reporter answers.
    await page.fill("#body", "Thanks, I will check tomorrow.")
    await page.click("button:has-text('Send message')")
    assert "Your message was sent" in await page.inner_text("main")
    await auditor.check(page, js)
    await reporter_ctx.close()

    # 6. The thread is back under "awaiting reply".
    staff_ctx, page = await new_page()
    await page.goto("/staff/login")
    await page.fill("#email", worker_account.email)
    await page.fill("#password", worker_account.password)
    await page.click("button:has-text('Log in')")
    assert reference in await page.inner_text("main")
    await page.screenshot(
        path=str(stack.artifacts / f"inbox-{'js' if js else 'nojs'}.png"), full_page=True
    )
    await staff_ctx.close()


# --- The code first (issue 14 item 3) --------------------------------------------------------

BIGGEST_TEXT = """() => {
  const code = document.getElementById("code");
  let size = 0, words = "";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const element = node.parentElement;
    if (!node.textContent.trim() || code.contains(element) || !element.checkVisibility()) {
      continue;
    }
    const own = parseFloat(getComputedStyle(element).fontSize);
    if (own > size) { size = own; words = node.textContent.trim().slice(0, 60); }
  }
  return [parseFloat(getComputedStyle(code).fontSize), size, words];
}"""


@pytest.mark.parametrize("js", [True, False], ids=["javascript-on", "javascript-off"])
async def test_reporter_sees_the_code_first_and_can_keep_it(
    stack: Stack, browser: Browser, db: asyncpg.Connection, js: bool
) -> None:
    auditor = Auditor(browser, stack.base_url)
    context = await on_a_phone(browser, stack.base_url, js)
    page = await context.new_page()
    try:
        await send_a_safety_report_with_follow_up(page)
        code = (await page.inner_text("#code")).strip()
        assert re.fullmatch(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){3}", code)
        # The code is the biggest text on the page, above the title and the reference.
        code_px, other_px, other_words = await page.evaluate(BIGGEST_TEXT)
        assert code_px > other_px, (code_px, other_px, other_words)
        family = await page.locator("#code").evaluate("e => getComputedStyle(e).fontFamily")
        assert family.endswith("monospace")
        # In its groups, two to a line at most on this phone, and nothing scrolls sideways.
        box = await page.locator("#code").bounding_box()
        assert box is not None and box["height"] <= 2 * 1.2 * code_px + 2
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        # The reference is smaller, for the records, and on one line.
        panel = await page.inner_text(".panel")
        assert "for your records" in panel
        reference = page.locator(".reference")
        ref_px = await reference.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
        ref_box = await reference.bounding_box()
        assert ref_px < code_px and ref_box is not None and ref_box["height"] < 2 * ref_px
        main = await page.inner_text("main")
        assert (
            "Anyone who finds the file, the printout or the receipt learns that a report was made."
            in main
        )
        assert "Log in at" in main and f"{stack.settings.base_url}/login" in main
        # "Log in now" is secondary, and says where it goes.
        login = page.locator("a:has-text('Log in now to open your messages')")
        assert "button--secondary" in (await login.get_attribute("class") or "")
        # Copy and Print need JavaScript, so they are shown only with it; Download never does.
        assert await page.is_visible("[data-copy-target]") == js
        assert await page.is_visible("[data-print]") == js
        assert await page.is_visible("button:has-text('Download as a text file')")
        await auditor.check(page, js)
        await page.screenshot(
            path=str(stack.artifacts / f"code-first-{'js' if js else 'nojs'}.png"), full_page=True
        )

        # Download: a text file with exactly the code and the login address.
        async with page.expect_download() as download_info:
            await page.click("button:has-text('Download as a text file')")
        download = await download_info.value
        saved = stack.artifacts / f"code-{'js' if js else 'nojs'}.txt"
        await download.save_as(str(saved))
        assert saved.read_text() == f"{code}\n{stack.settings.base_url}/login\n"
        assert download.suggested_filename == "code.txt" and code not in download.url
        assert page.url.endswith("/report/confirmation")

        # Printing shows the code and the login address, and nothing else.
        await page.emulate_media(media="print")
        for hidden in ("#exit-this-page", ".footer", ".header", ".panel", ".help-now"):
            assert not await page.is_visible(hidden), hidden
        assert await page.locator("button:visible").count() == 0
        assert await page.locator("a:visible").count() == 0
        assert await page.is_visible("#code") and await page.is_visible(".login-address")
        printed = await page.evaluate("document.body.innerText")
        assert code in printed and "Report received" not in printed
        # No reference (R-…); a code may hold "R-" inside a group ("2AVR-T0G6"), never at a word start.
        assert not re.search(r"\bR-[0-9A-Z]", printed)
        await page.screenshot(path=str(stack.artifacts / "code-first-print.png"), full_page=True)
        await page.emulate_media(media="screen")

        if js:  # Copy puts the code on the clipboard, and says so politely.
            await context.grant_permissions(
                ["clipboard-read", "clipboard-write"], origin=stack.base_url
            )
            await page.click("[data-copy-target]")
            await page.wait_for_selector("[data-copy-status]:has-text('Copied')")
            assert await page.evaluate("navigator.clipboard.readText()") == code

        # The last-4 check: a kind "no", then a "yes"; with JavaScript without a request.
        wrong = "".join("Z" if ch != "Z" else "Y" for ch in code[-4:])
        for typed, answer in ((wrong, "does not match"), (code[-4:].lower(), "That matches")):
            await page.fill("#last4", typed)
            await page.click("#saved-check button")
            await page.wait_for_selector(f"#last4-result:has-text('{answer}')")
            assert (await page.inner_text("#code")).strip() == code  # never hidden by it
            # Without JavaScript the check posts, then redirects to the confirmation's GET.
            shown_at = "/report/confirmation" if js else "/report/confirmation#saved-check"
            assert page.url.endswith(shown_at)
        if not js:  # a reload is a GET: it asks nothing, and shows the same answer
            await page.reload()
            assert "That matches" in await page.inner_text("#last4-result")
        await auditor.check(page, js)

        # A check, never a gate: after a wrong answer everything still works.
        await page.fill("#last4", wrong)
        await page.click("#saved-check button")
        await page.wait_for_selector("#last4-result:has-text('does not match')")
        await page.click("button:has-text('I have saved my code')")
        assert not await page.is_visible("#code")
        # Back from there is a GET too (no "Confirm Form Resubmission"), and the code and the
        # check's answer are gone from it.
        back = await page.go_back()
        assert back is not None and back.status == 200
        assert (await page.title()).startswith("Report received")
        assert not await page.is_visible("#code")
        assert "does not match" not in await page.inner_text("main")
        await page.goto("/login")
        await page.fill("#code", code)
        await page.click("main button[type=submit]")
        assert page.url.endswith("/messages")
        assert leaks.hits(stack.logs(), {"code": code}) == []
    finally:
        await context.close()


@pytest.mark.parametrize("js", [True, False], ids=["javascript-on", "javascript-off"])
async def test_a_browser_that_refuses_cookies_still_gets_its_code(
    stack: Stack, browser: Browser, db: asyncpg.Connection, js: bool
) -> None:
    """Every Set-Cookie is dropped on the way to the browser (and the context's jar emptied), as
    in a browser that blocks cookies: the whole report still works, with nothing alarming."""
    auditor = Auditor(browser, stack.base_url)
    context = await on_a_phone(browser, stack.base_url, js)
    offered: list[str] = []

    async def refuse_cookies(route: Route) -> None:
        response = await route.fetch(max_redirects=0)
        await context.clear_cookies()  # the fetch's own jar keeps nothing either
        headers = {k: v for k, v in response.headers.items() if k.lower() != "set-cookie"}
        if len(headers) != len(response.headers):
            offered.append(route.request.url)
        await route.fulfill(response=response, headers=headers)

    await context.route(f"{stack.base_url}/**", refuse_cookies)
    page = await context.new_page()
    try:
        await send_a_safety_report_with_follow_up(page)
        assert offered  # the server did offer its draft cookie, and it was refused
        assert await context.cookies() == []
        assert (await page.title()).startswith("Report received")
        code = (await page.inner_text("#code")).strip()
        assert re.fullmatch(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){3}", code)
        main = (await page.inner_text("main")).casefold()
        for alarming in ("cookie", "error", "expired", "not sent", "problem"):
            assert alarming not in main, alarming
        assert not await page.is_visible(".error-summary")
        assert await db.fetchval("SELECT count(*) FROM threads") == 1
        assert await db.fetchval("SELECT count(*) FROM report_drafts") == 0
        # "I have saved my code" belongs to the draft; without one the last-4 check is the
        # page's script's alone.
        assert not await page.is_visible("button:has-text('I have saved my code')")
        assert await page.is_visible("#last4") == js
        await auditor.check(page, js)
        # The download works without a draft: the page posts back the code it shows.
        async with page.expect_download() as download_info:
            await page.click("button:has-text('Download as a text file')")
        download = await download_info.value
        saved = stack.artifacts / f"code-no-cookies-{'js' if js else 'nojs'}.txt"
        await download.save_as(str(saved))
        assert saved.read_text() == f"{code}\n{stack.settings.base_url}/login\n"
        assert code not in download.url
        if js:
            await page.fill("#last4", code[-4:])
            await page.click("#saved-check button")
            await page.wait_for_selector("#last4-result:has-text('That matches')")
        # And the code logs in (a login needs its cookie: this browser now allows them).
        await context.unroute(f"{stack.base_url}/**", refuse_cookies)
        await page.goto("/login")
        await page.fill("#code", code)
        await page.click("main button[type=submit]")
        assert page.url.endswith("/messages")
        assert leaks.hits(leaks.redis_dump(stack.env["REDIS_URL"]), {"code": code}) == []
    finally:
        await context.close()
