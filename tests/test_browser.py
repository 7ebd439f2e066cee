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
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright

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
