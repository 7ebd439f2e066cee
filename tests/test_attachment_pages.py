"""Files as people see them (issue 17; docs/attachments.md "What people see"): a reporter adds
photos and documents to a report in a real Chromium, with JavaScript on and off, and the case
worker downloads them only once their hidden data is gone."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

import aiohttp
import asyncpg
import pikepdf
import pytest
from PIL import Image
from playwright.async_api import Browser, Page, Route

from tests import attachment_files as make
from tests import html, leaks
from tests.conftest import Stack, StaffAccount, add_staff, kick_relay, wait_worker
from tests.test_browser import Auditor, browser, on_a_phone

__all__ = ["browser"]  # the session's Chromium (tests/test_browser.py)
MIB = 1024 * 1024


def evidence(folder: Path) -> tuple[Path, Path]:
    """A phone photo (GPS, camera serial and artist canaries) and a two-page PDF letter (an
    author canary), as the reporter's own files."""
    photo = make.jpeg(folder / "PXL_0417.jpg")
    letter = make.pdf(folder / "letter-to-me.pdf", pages=2)
    return photo, letter


async def answer_first_questions(page: Page, category: str = "A safety concern on site") -> None:
    await page.goto("/report")
    await page.check("#how")
    await page.click("button:has-text('Continue')")
    await page.check(f"label:has-text('{category}')")
    await page.click("button:has-text('Continue')")


async def continue_to_check_answers(page: Page) -> None:
    for _ in range(3):  # what happened, when, where
        await page.click("button:has-text('Continue')")
    await page.check("#follow_up-no")  # no further communication: no code to make
    await page.click("button:has-text('Continue')")
    assert (await page.title()).startswith("Check your answers")


async def staff_logs_in(page: Page, account: StaffAccount) -> None:
    await page.goto("/staff/login")
    await page.fill("#email", account.email)
    await page.fill("#password", account.password)
    await page.click("button:has-text('Log in')")


async def download(page: Page, link: str, folder: Path) -> bytes:
    async with page.expect_download() as info:
        await page.click(link)
    got = await info.value
    target = folder / f"downloaded-{got.suggested_filename}"
    await got.save_as(str(target))
    return target.read_bytes()


def assert_clean(data: bytes) -> None:
    for canary in make.CANARIES:
        assert canary.encode() not in data, canary


async def wait_for_text(page: Page, text: str, timeout_s: float = 60) -> None:
    for _ in range(int(timeout_s * 2)):
        await page.reload()
        if text in await page.inner_text("main"):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"never saw {text!r}")


@pytest.mark.parametrize("js", [True, False], ids=["javascript-on", "javascript-off"])
async def test_reporter_attaches_evidence_and_caseworker_downloads_it_clean(
    stack: Stack, browser: Browser, db: asyncpg.Connection, js: bool, tmp_path: Path
) -> None:
    caseworker = add_staff(stack, "casey@example.org", "safety")
    auditor = Auditor(browser, stack.base_url)
    photo, letter = evidence(tmp_path)
    context = await on_a_phone(browser, stack.base_url, js)
    page = await context.new_page()
    # 1. On "What happened" the reporter types, chooses both files and adds them.
    await answer_first_questions(page, "Bullying or harassment")
    await page.fill("#description", "The lift alarm does not work.")
    main = await page.inner_text("main")
    assert "can identify you" in main and "a face, a name on a letter" in main
    assert not await page.is_checked("#keep_file_names")
    await page.set_input_files("#files", [str(photo), str(letter)])
    await page.click("button:has-text('Add these files')")
    # With JavaScript the files go with their progress shown, then the page is the same one.
    await page.wait_for_selector(".file-list:has-text('attachment-2.pdf')")
    main = await page.inner_text("main")
    assert "attachment-1.jpg" in main and "attachment-2.pdf" in main
    assert "PXL_0417" not in main  # neutral names only
    assert await page.input_value("#description") == "The lift alarm does not work."
    await auditor.check(page, js)
    # 2. They go on, then back to change what it is about: the files are still there.
    await page.click("button:has-text('Continue')")
    await page.click("button:has-text('Back')")
    await page.click("button:has-text('Back')")
    await page.check("label:has-text('A safety concern on site')")
    await page.click("button:has-text('Continue')")
    main = await page.inner_text("main")
    assert "attachment-1.jpg" in main and "attachment-2.pdf" in main
    await page.reload()
    assert "attachment-2.pdf" in await page.inner_text("main")
    await continue_to_check_answers(page)
    main = await page.inner_text("main")
    assert "attachment-1.jpg" in main and "attachment-2.pdf" in main
    # 3. The worker is stopped, so the case worker sees the files being prepared.
    stack.worker.stop()
    await page.click("button:has-text('Send report')")
    assert (await page.title()).startswith("Report received")
    reference = (await page.inner_text(".reference")).strip()
    await context.close()
    assert await db.fetchval("SELECT count(*) FROM attachments WHERE state = 'preparing'") == 2

    staff_context = await on_a_phone(browser, stack.base_url, js)
    page = await staff_context.new_page()
    await staff_logs_in(page, caseworker)
    await page.goto(f"/staff/threads/{reference}")
    main = await page.inner_text("main")
    assert main.count("being prepared") == 2
    assert await page.locator("a:has-text('Download attachment-1.jpg')").count() == 0
    # 4. The files worker strips them; the case worker downloads both.
    stack.worker.start()
    wait_worker(stack.env["REDIS_URL"], stack.worker)
    kick_relay(stack)
    await wait_for_text(page, "Download attachment-2.pdf")
    await page.wait_for_selector("a:has-text('Download attachment-1.jpg')")
    preview = page.locator("img.attachment__preview")
    assert await preview.get_attribute("alt") == "Preview of attachment-1.jpg"
    await auditor.check(page, js)
    jpeg = await download(page, "a:has-text('Download attachment-1.jpg')", tmp_path)
    pdf = await download(page, "a:has-text('Download attachment-2.pdf')", tmp_path)
    await staff_context.close()
    assert_clean(jpeg)
    assert_clean(pdf)
    with Image.open(io.BytesIO(jpeg)) as im:
        assert im.format == "JPEG" and im.size == (64, 32)
        assert not im.getexif()
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        assert len(doc.pages) == 2
    # Names were not kept: neither they nor a canary is in a dump, in Redis or in the logs.
    server_major = int(await db.fetchval("SHOW server_version_num")) // 10000
    secrets = {
        "photo": "PXL_0417",
        "letter": "letter-to-me",
        "gps": make.GPS,
        "author": make.AUTHOR,
    }
    for sink, content in {
        "pg_dump": leaks.pg_dump(stack.env["DATABASE_URL"], server_major),
        "redis": leaks.redis_dump(stack.env["REDIS_URL"]),
        "logs": stack.logs(),
    }.items():
        assert leaks.hits(content, secrets) == [], sink


async def test_a_browser_without_cookies_sends_its_files_with_the_report(
    stack: Stack, browser: Browser, db: asyncpg.Connection, tmp_path: Path
) -> None:
    photo, letter = evidence(tmp_path)
    context = await on_a_phone(browser, stack.base_url, False)

    async def refuse_cookies(route: Route) -> None:
        if route.request.method == "POST":  # a fetched POST would lose its files' bytes
            await route.continue_()
            return
        response = await route.fetch(max_redirects=0)
        await context.clear_cookies()
        headers = {k: v for k, v in response.headers.items() if k.lower() != "set-cookie"}
        await route.fulfill(response=response, headers=headers)

    await context.route(f"{stack.base_url}/**", refuse_cookies)
    page = await context.new_page()
    await answer_first_questions(page)
    await page.fill("#description", "The lift alarm does not work.")
    assert "add them on the last page" in await page.inner_text("main")
    assert await page.locator("#files").count() == 0
    await continue_to_check_answers(page)
    assert "they are sent with your report" in await page.inner_text("main")
    await page.set_input_files("#files", [str(photo), str(letter)])
    await page.click("button:has-text('Send report')")
    assert (await page.title()).startswith("Report received"), await page.inner_text("main")
    assert await context.cookies() == []
    await context.unroute_all(behavior="ignoreErrors")
    await context.close()
    assert await db.fetchval("SELECT count(*) FROM attachments") == 2
    assert await db.fetchval("SELECT count(*) FROM report_drafts") == 0


# --- Refusals, on the same page, with what was typed kept ------------------------------------


def exe_named_jpg(path: Path) -> Path:
    """A Linux program with a photo's name."""
    import sys

    path.write_bytes(Path(sys.executable).read_bytes()[: 256 * 1024])
    return path


@pytest.mark.parametrize(
    ("maker", "words"),
    [
        (lambda p: _big(p / "huge.jpg"), "larger than 20 MB, the most one file can be"),
        (lambda p: _gif(p / "cat.gif"), "You can add: JPEG, PNG, HEIC, PDF"),
        (lambda p: exe_named_jpg(p / "holiday.jpg"), "not a kind of file we accept"),
        (lambda p: make.png_bomb(p / "bomb.png"), "too large a picture to open safely"),
        (lambda p: _cut_off(p / "IMG_0311.jpg"), "“IMG_0311.jpg” could not be read as a JPEG"),
    ],
    ids=["25-mib", "type-not-allowed", "program-named-jpg", "image-bomb", "damaged"],
)
@pytest.mark.parametrize("js", [False, True], ids=["javascript-off", "javascript-on"])
async def test_reporter_sees_why_a_file_was_refused_on_the_same_page(
    stack: Stack,
    browser: Browser,
    db: asyncpg.Connection,
    tmp_path: Path,
    maker: object,
    words: str,
    js: bool,
) -> None:
    photo, _letter = evidence(tmp_path)
    bad = maker(tmp_path)  # type: ignore[operator]
    context = await on_a_phone(browser, stack.base_url, js)
    page = await context.new_page()
    await answer_first_questions(page)
    await page.fill("#description", "Typed before the files.")
    await page.set_input_files("#files", [str(photo), str(bad)])
    await page.click("button:has-text('Continue')")
    await page.wait_for_selector(".error-summary")
    assert (await page.title()).startswith("Error:")
    summary = await page.inner_text(".error-summary")
    assert words in summary, summary
    assert await page.input_value("#description") == "Typed before the files."
    assert "attachment-1.jpg" in await page.inner_text(".file-list")
    if words.startswith("not a kind"):
        await Auditor(browser, stack.base_url).check(page, js)
    await context.close()
    assert await db.fetchval("SELECT count(*) FROM uploads") == 1
    # Nothing of the refused file is stored: the chunks are the kept photo's alone.
    assert await db.fetchval("SELECT count(DISTINCT file_id) FROM attachment_chunks") == 1


def _big(path: Path) -> Path:
    with path.open("wb") as out:
        out.write(make.jpeg(path.with_name("seed.jpg")).read_bytes())
        out.write(b"\0" * (25 * MIB))
    return path


def _cut_off(path: Path) -> Path:
    """A phone photo cut off halfway (a copy that stopped early): refused as it arrives."""
    photo = make.jpeg(path.with_name("whole.jpg")).read_bytes()
    path.write_bytes(photo[: len(photo) // 2])
    return path


def _gif(path: Path) -> Path:
    Image.new("RGB", (8, 8)).save(path, "GIF")
    return path


# --- Release of a file that could not be made safe --------------------------------------------


async def test_only_a_manager_releases_a_file_that_could_not_be_made_safe(
    stack: Stack, browser: Browser, db: asyncpg.Connection, tmp_path: Path
) -> None:
    caseworker = add_staff(stack, "casey@example.org", "safety")
    manager = add_staff(stack, "morgan@example.org", "safety", role="manager")
    damaged = make.png_cut_inside(tmp_path / "scan.png")  # only decoding finds the damage
    context = await on_a_phone(browser, stack.base_url, False)
    page = await context.new_page()
    await answer_first_questions(page)
    await page.fill("#description", "A damaged scan.")
    await page.set_input_files("#files", [str(damaged)])
    await continue_to_check_answers(page)
    await page.click("button:has-text('Send report')")
    reference = (await page.inner_text(".reference")).strip()
    await context.close()
    kick_relay(stack)
    for _ in range(120):
        if await db.fetchval("SELECT state FROM attachments") == "quarantined":
            break
        await asyncio.sleep(0.5)
    attachment = str(await db.fetchval("SELECT id FROM attachments"))

    # The case worker is told, and offered no release.
    auditor = Auditor(browser, stack.base_url)
    staff_context = await on_a_phone(browser, stack.base_url, False)
    page = await staff_context.new_page()
    await staff_logs_in(page, caseworker)
    await page.goto(f"/staff/threads/{reference}")
    assert "This file could not be made safe" in await page.inner_text("main")
    assert await page.locator("button:has-text('Release file')").count() == 0
    # A release forged by the case worker (with their own valid CSRF token) is refused.
    token = await page.get_attribute("#note input[name=csrf_token]", "value") or ""
    forged = await page.request.post(
        f"/staff/threads/{reference}/release_file",
        form={"csrf_token": token, "attachment": attachment, "reason": "curious"},
        headers={"Origin": stack.base_url},
    )
    assert forged.status == 403
    assert await db.fetchval("SELECT state FROM attachments") == "quarantined"
    await staff_context.close()

    # The manager releases it, with a reason (required), and staff may then download it.
    staff_context = await on_a_phone(browser, stack.base_url, False)
    page = await staff_context.new_page()
    await staff_logs_in(page, manager)
    await page.goto(f"/staff/threads/{reference}")
    await auditor.check(page, False)
    await page.click("button:has-text('Release file')")
    assert "Enter why the file is released" in await page.inner_text(".error-summary")
    await page.fill("textarea[name=reason]", "Needed for the investigation")
    await page.click("button:has-text('Release file')")
    main = await page.inner_text("main")
    assert "File released" in main and "not made safe" in main
    data = await download(page, "a:has-text('(not made safe)')", tmp_path)
    assert data == damaged.read_bytes()
    await staff_context.close()
    assert await db.fetchval("SELECT state FROM attachments") == "released"
    assert (
        await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'attachment_release'") == 1
    )


# --- The reporter's own files on their messages page ------------------------------------------


async def test_reporter_downloads_their_own_files_once_ready(
    stack: Stack, db: asyncpg.Connection, tmp_path: Path
) -> None:
    from tests.journeys import reach_check_answers, reporter_logs_in, send_report

    photo, _letter = evidence(tmp_path)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(stack.base_url, cookie_jar=jar) as http:
        check = await reach_check_answers(http, description="Files in my messages")
        done = await send_report(http, check)
        assert done.code is not None
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(stack.base_url, cookie_jar=jar) as http:
        status, page = await reporter_logs_in(http, done.code)
        assert status == 200
        form = html.main_form(page)
        data = aiohttp.FormData()
        for name, value in form.data(body="Here is the photo.").items():
            data.add_field(name, value)
        data.add_field("files", photo.read_bytes(), filename="PXL_0417.jpg")
        async with http.post("/messages", data=data, headers={"Origin": stack.base_url}) as resp:
            assert resp.status == 200, html.text(await resp.text())[:1500]
        kick_relay(stack)
        for _ in range(120):
            async with http.get("/messages") as resp:
                page = await resp.text()
            if "Download attachment-1.jpg" in page:
                break
            assert "/messages/attachments/" not in page  # never a link before it is ready
            await asyncio.sleep(0.5)
        link = re.search(r'href="(/messages/attachments/[0-9a-f-]+)"', page)
        assert link is not None
        async with http.get(link.group(1)) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Disposition"].startswith("attachment")
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert "sandbox" in resp.headers["Content-Security-Policy"]
            assert_clean(await resp.read())


async def test_a_message_being_written_keeps_its_words_and_files_across_reload_and_back(
    stack: Stack, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """D2: type a message, add a photo, then reload or go elsewhere and come Back: "Add these
    files" answers 303 See Other to GET /messages, which shows the words and the file from the
    message's draft (sealed under the browser's key). Sending it sends the file and clears the
    draft; logging out deletes a draft left unsent."""
    from tests.journeys import reach_check_answers, reporter_logs_in, send_report

    photo, letter = evidence(tmp_path)
    words = "The lift door closes too fast: photo attached."
    origin = {"Origin": stack.base_url}
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(stack.base_url, cookie_jar=jar) as http:
        done = await send_report(http, await reach_check_answers(http, description="Lift"))
        assert done.code is not None
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(stack.base_url, cookie_jar=jar) as http:
        _status, page = await reporter_logs_in(http, done.code)
        before = await db.fetchval("SELECT count(*) FROM report_drafts")  # the report's own
        form = next(f for f in html.forms(page) if f.action == "/messages")
        fields = form.data(body=words, add_files="1")
        data = multipart(fields, [("PXL_0417.jpg", photo.read_bytes())])
        async with http.post("/messages", data=data, headers=origin, allow_redirects=False) as resp:
            assert resp.status == 303, html.text(await resp.text())[:1500]
            assert resp.headers["Location"] == "/messages#files"
        for _visit in range(2):  # the redirect's GET, then a reload (or Back from another page)
            async with http.get("/messages") as resp:
                page = await resp.text()
            assert words in page and "attachment-1.jpg" in html.text(page)
            assert "Remove" in html.text(page)
        async with http.get("/support/help") as resp:
            assert resp.status == 200
        # The draft is ciphertext: neither the words nor the file's name are in the table.
        rows = await db.fetch("SELECT ciphertext FROM report_drafts")
        assert rows and all(words.encode() not in bytes(r["ciphertext"]) for r in rows)
        assert all(b"PXL_0417" not in bytes(r["ciphertext"]) for r in rows)
        # A second file, then "Remove" on it: each a 303, the page drawn from the draft.
        form = next(f for f in html.forms(page) if f.action == "/messages")
        data = multipart(form.data(add_files="1"), [("letter.pdf", letter.read_bytes())])
        async with http.post("/messages", data=data, headers=origin) as resp:
            page = await resp.text()
        assert "attachment-2.pdf" in html.text(page) and words in page
        second = re.findall(r'name="remove" value="([^"]+)"', page)[1]
        form = next(f for f in html.forms(page) if f.action == "/messages")
        async with http.post(
            "/messages",
            data=multipart(form.data(remove=second), []),
            headers=origin,
            allow_redirects=False,
        ) as resp:
            assert resp.status == 303
        async with http.get("/messages") as resp:
            page = await resp.text()
        assert "attachment-2.pdf" not in html.text(page) and "attachment-1.jpg" in html.text(page)
        # Send: the message goes with its photo, and the draft is gone.
        form = next(f for f in html.forms(page) if f.action == "/messages")
        async with http.post("/messages", data=multipart(form.fields, []), headers=origin) as resp:
            page = await resp.text()
        assert resp.status == 200 and "?sent=1" in str(resp.url)
        assert await db.fetchval("SELECT count(*) FROM report_drafts") == before
        assert await db.fetchval("SELECT count(*) FROM attachments") == 1
        assert "Remove" not in html.text(page)
        form = next(f for f in html.forms(page) if f.action == "/messages")
        assert form.fields.get("body", "") == "" and not form.fields.get("uploads")
        # A draft left unsent is deleted at logout, and never shows in the next session.
        data = multipart(form.data(body="Unsent words", add_files="1"), [])
        async with http.post("/messages", data=data, headers=origin) as resp:
            assert "Unsent words" in await resp.text()
        assert await db.fetchval("SELECT count(*) FROM report_drafts") == before + 1
        page = await (await http.get("/messages")).text()
        logout = next(f for f in html.forms(page) if f.action == "/logout")
        async with http.post("/logout", data=logout.fields, headers=origin) as resp:
            assert resp.status == 200
        assert await db.fetchval("SELECT count(*) FROM report_drafts") == before
        _status, page = await reporter_logs_in(http, done.code)
        assert "Unsent words" not in page
        # A session that expires takes its draft along: the next session never sees it, and
        # opening the page deletes it.
        form = next(f for f in html.forms(page) if f.action == "/messages")
        data = multipart(form.data(body="Words before expiry", add_files="1"), [])
        async with http.post("/messages", data=data, headers=origin) as resp:
            assert "Words before expiry" in await resp.text()
        await db.execute(
            "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE kind = 'reporter'"
        )
        async with http.get("/messages") as resp:
            assert resp.url.path == "/login"
        _status, page = await reporter_logs_in(http, done.code)
        assert "Words before expiry" not in page
        assert await db.fetchval("SELECT count(*) FROM report_drafts") == before
    assert leaks.hits(stack.logs(), {"words": words}) == []


@pytest.mark.parametrize("js", [False, True], ids=["javascript-off", "javascript-on"])
async def test_in_a_browser_a_message_keeps_its_photo_across_reload_and_back(
    stack: Stack, browser: Browser, db: asyncpg.Connection, js: bool, tmp_path: Path
) -> None:
    """D2 as the browser walk found it, at 375 px: type, choose a JPEG, "Add these files",
    then reload, and go to a help page and press Back: the words and the photo are still
    there, and the message sent after that goes with the photo."""
    from tests.journeys import reach_check_answers, send_report

    photo, _letter = evidence(tmp_path)
    words = "The fire door is propped open again."
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(stack.base_url, cookie_jar=jar) as http:
        done = await send_report(http, await reach_check_answers(http, description="Fire door"))
        assert done.code is not None
    context = await on_a_phone(browser, stack.base_url, js)
    page = await context.new_page()
    try:
        await page.goto("/login")
        await page.fill("#code", done.code)
        await page.click("main button[type=submit]")
        assert page.url.endswith("/messages")
        await page.fill("#body", words)
        await page.set_input_files("#files", [str(photo)])
        await page.click("button:has-text('Add these files')")
        await page.wait_for_selector(".file-list:has-text('attachment-1.jpg')")
        # Without JavaScript the answer is a redirect to a GET (nothing to resubmit); with it,
        # the script draws that GET's page in place of the one it sent from.
        at = "/messages" if js else "/messages#files"
        assert page.url.endswith(at)
        await page.reload()
        assert await page.input_value("#body") == words
        assert "attachment-1.jpg" in await page.inner_text(".file-list")
        await page.goto("/support/help")
        answer = await page.go_back()
        assert answer is None or answer.status == 200
        assert page.url.endswith(at)
        assert await page.input_value("#body") == words
        assert "attachment-1.jpg" in await page.inner_text(".file-list")
        await page.click("button:has-text('Send message')")
        await page.wait_for_url("**/messages?sent=1")
        assert await db.fetchval("SELECT count(*) FROM attachments") == 1
        assert await page.input_value("#body") == ""
        assert await page.locator(".file-list").count() == 0
        await page.go_back()  # Back after sending: a GET again, the sent message not re-offered
        assert await page.input_value("#body") == ""
    finally:
        await context.close()


async def test_a_caseworkers_reply_keeps_its_words_and_files_after_add_these_files(
    stack: Stack, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """D2, staff side: "Add these files" on the reply form answers 303 to the thread page,
    which shows the typed reply and the file (a reload or Back keeps them); sending clears it."""
    from tests.journeys import reach_check_answers, send_report, staff_logs_in

    caseworker = add_staff(stack, "casey@example.org", "safety")
    photo, _letter = evidence(tmp_path)
    origin = {"Origin": stack.base_url}
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(stack.base_url, cookie_jar=jar) as http:
        done = await send_report(http, await reach_check_answers(http, description="Door"))
        assert done.reference is not None
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(stack.base_url, cookie_jar=jar) as http:
        await staff_logs_in(http, caseworker.email, caseworker.password)
        before = await db.fetchval("SELECT count(*) FROM report_drafts")
        thread = f"/staff/threads/{done.reference}"
        page = await (await http.get(thread)).text()
        form = next(f for f in html.forms(page) if f.action.endswith("/reply"))
        data = multipart(
            form.data(body="Is this the door?", add_files="1"), [("door.jpg", photo.read_bytes())]
        )
        async with http.post(form.action, data=data, headers=origin, allow_redirects=False) as resp:
            assert resp.status == 303, html.text(await resp.text())[:1500]
            assert resp.headers["Location"] == f"{thread}#files"
        for _visit in range(2):
            page = await (await http.get(thread)).text()
            assert "Is this the door?" in page and "attachment-1.jpg" in html.text(page)
        form = next(f for f in html.forms(page) if f.action.endswith("/reply"))
        async with http.post(form.action, data=multipart(form.fields, []), headers=origin) as resp:
            assert "Reply sent" in html.text(await resp.text())
        assert await db.fetchval("SELECT count(*) FROM attachments") == 1
        assert await db.fetchval("SELECT count(*) FROM report_drafts") == before
        page = await (await http.get(thread)).text()
        form = next(f for f in html.forms(page) if f.action.endswith("/reply"))
        assert form.fields.get("body", "") == ""
        # A reply left unsent goes when the case worker signs out.
        data = multipart(form.data(body="Not sent yet", add_files="1"), [])
        async with http.post(form.action, data=data, headers=origin) as resp:
            page = await resp.text()
        assert "Not sent yet" in page
        assert await db.fetchval("SELECT count(*) FROM report_drafts") == before + 1
        logout = next(f for f in html.forms(page) if f.action == "/staff/logout")
        async with http.post(logout.action, data=logout.fields, headers=origin) as resp:
            assert resp.status == 200
        assert await db.fetchval("SELECT count(*) FROM report_drafts") == before


# --- A case worker's reply with files; body limits -------------------------------------------


def multipart(fields: dict[str, str], files: list[tuple[str, bytes]]) -> aiohttp.FormData:
    """A browser's multipart form: its fields first (as the pages order them), then the files."""
    data = aiohttp.FormData()
    for name, value in fields.items():
        data.add_field(name, value)
    for filename, content in files:
        data.add_field("files", io.BytesIO(content), filename=filename)
    return data


async def test_caseworker_replies_with_a_photo_the_reporter_downloads_clean(
    stack: Stack, db: asyncpg.Connection, tmp_path: Path
) -> None:
    from tests.journeys import reach_check_answers, reporter_logs_in, send_report, staff_logs_in

    caseworker = add_staff(stack, "casey@example.org", "safety")
    photo, _letter = evidence(tmp_path)
    program = exe_named_jpg(tmp_path / "reply.jpg")
    origin = {"Origin": stack.base_url}
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(stack.base_url, cookie_jar=jar) as http:
        done = await send_report(http, await reach_check_answers(http, description="Door"))
        assert done.code is not None and done.reference is not None
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(stack.base_url, cookie_jar=jar) as http:
        await staff_logs_in(http, caseworker.email, caseworker.password)
        async with http.get(f"/staff/threads/{done.reference}") as resp:
            page = await resp.text()
        form = next(f for f in html.forms(page) if f.action.endswith("/reply"))
        # A program named .jpg is refused on the same page; the photo and the words stay.
        fields = form.data(body="Is this the door?")
        data = multipart(
            fields, [("door.jpg", photo.read_bytes()), ("x.jpg", program.read_bytes())]
        )
        async with http.post(form.action, data=data, headers=origin) as resp:
            assert resp.status == 422
            page = await resp.text()
        assert "not a kind of file we accept" in html.text(page)
        assert "Is this the door?" in page and "attachment-1.jpg" in html.text(page)
        form = next(f for f in html.forms(page) if f.action.endswith("/reply"))
        assert form.fields["uploads"]
        async with http.post(form.action, data=multipart(form.fields, []), headers=origin) as resp:
            assert resp.status == 200
            assert "Reply sent" in html.text(await resp.text())
        assert await db.fetchval("SELECT count(*) FROM attachments") == 1
    kick_relay(stack)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(stack.base_url, cookie_jar=jar) as http:
        await reporter_logs_in(http, done.code)
        for _ in range(120):
            async with http.get("/messages") as resp:
                page = await resp.text()
            if "/messages/attachments/" in page:
                break
            await asyncio.sleep(0.5)
        link = re.search(r'href="(/messages/attachments/[0-9a-f-]+)"', page)
        assert link is not None
        async with http.get(link.group(1)) as resp:
            assert resp.status == 200
            assert_clean(await resp.read())  # staff uploads are stripped too


async def test_only_pages_that_carry_files_take_large_bodies(
    stack: Stack, db: asyncpg.Connection
) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(stack.base_url, cookie_jar=jar) as http:
        async with http.get("/report") as resp:
            assert resp.status == 200
        origin = {"Origin": stack.base_url}
        over_a_mib = multipart({"step": "what", "description": "x"}, [("a.txt", b"a" * (2 * MIB))])
        async with http.post("/report", data=over_a_mib, headers=origin) as resp:
            assert resp.status == 200  # taken: a plain text file of 2 MiB
        plain_form = {**origin, "Content-Type": "application/x-www-form-urlencoded"}
        big_text = io.BytesIO(b"step=what&description=" + b"x" * (2 * MIB))
        async with http.post("/report", data=big_text, headers=plain_form) as resp:
            assert resp.status == 413  # a form without files keeps 1 MiB
    # A body declared over the organisation's limits is refused before a byte of it is read.
    host, port = stack.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /report HTTP/1.1\r\nHost: "
        + f"{host}:{port}".encode()
        + b"\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        + f"Content-Length: {60 * MIB}\r\nConnection: close\r\n\r\n".encode()
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(200_000), 30)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"too large" in answer


async def test_reporter_is_told_of_too_many_files_and_too_much_in_all_and_names_kept(
    stack: Stack, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """An organisation that takes 2 files of up to 1 MiB, 1 MiB in all; a reporter who ticks
    "keep the files' own names", which the case worker then sees."""
    from tests.journeys import post, staff_logs_in

    caseworker = add_staff(stack, "casey@example.org", "safety")
    org = tmp_path / "org.toml"
    org.write_text(
        Path("confide/data/demo-org.toml").read_text()
        + "\n[attachments]\nmax_files = 2\nmax_file_mib = 1\nmax_total_mib = 1\n"
    )
    _, base = stack.start_web("web-small-files", CONFIDE_ORG_FILE=str(org))
    text = b"A note from the reporter.\n"
    half = b"x" * (600 * 1024)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base, cookie_jar=jar) as http:
        async with http.get("/report") as resp:
            assert resp.status == 200
        await post(http, "/report", {"step": "how", "how": "anonymous"})
        await post(http, "/report", {"step": "category", "category": "safety"})
        what = {"step": "what", "description": "Three notes", "keep_file_names": "yes"}
        files = [("one.txt", text), ("two.txt", text), ("three.txt", text)]
        async with http.post("/report", data=multipart(what, files)) as resp:
            assert resp.status == 422
            page = html.text(await resp.text())
        assert "“three.txt” was not added: you can add up to 2 files." in page
        assert "attachment-2.txt" in page and "Three notes" in page
        # Remove both; then two files of 600 KB: the second would go over 1 MiB in all.
        async with http.get("/report/what") as resp:
            page = await resp.text()
        remove = re.findall(r'name="remove" value="([^"]+)"', page)
        assert len(remove) == 2
        for upload in remove:
            await post(http, "/report", {**what, "remove": upload})
        files = [("big-1.txt", half), ("big-2.txt", half)]
        async with http.post("/report", data=multipart(what, files)) as resp:
            page = html.text(await resp.text())
        assert "“big-2.txt” was not added: all the files together can be up to 1.0 MB" in page
        assert "attachment-1.txt 600 KB" in page and "big-1" not in page
        for step in ({"step": "when"}, {"step": "where"}, {"step": "follow-up", "follow_up": "no"}):
            await post(http, "/report", step)
        async with http.get("/report/check") as resp:
            check = await resp.text()
        _status, page = await post(http, "/report/submit", html.main_form(check).fields)
        assert "Report received" in page, html.text(page)[:500]
        reference = re.search(r'class="reference">(R-[0-9A-Z]{8})<', page)
        assert reference is not None
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(stack.base_url, cookie_jar=jar) as http:
        await staff_logs_in(http, caseworker.email, caseworker.password)
        async with http.get(f"/staff/threads/{reference.group(1)}") as resp:
            page = html.text(await resp.text())
        assert "attachment-1.txt (big-1.txt)" in page  # names kept: staff see them
        # The printable case record lists the files as text: names, sizes, no links.
        async with http.get(f"/staff/threads/{reference.group(1)}/print") as resp:
            printed = await resp.text()
        assert re.search(r"attachment-1\.txt \(big-1\.txt\)\s*, 600 KB", html.text(printed))
        assert "/staff/attachments/" not in printed


async def test_a_reporter_sending_many_files_quickly_is_asked_to_wait_and_keeps_the_rest(
    stack: Stack, db: asyncpg.Connection
) -> None:
    """Reporters' files have a budget per client (here 2 an hour): the file past it is named on
    the same page with how long to wait, and the words and the files already added stay."""
    from tests.journeys import post

    _, base = stack.start_web("web-upload-budget", CONFIDE_UPLOAD_PER_CLIENT_PER_HOUR="2")
    note = b"A note from the reporter.\n"
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base, cookie_jar=jar) as http:
        async with http.get("/report") as resp:
            assert resp.status == 200
        await post(http, "/report", {"step": "how", "how": "anonymous"})
        await post(http, "/report", {"step": "category", "category": "safety"})
        what = {"step": "what", "description": "Notes sent in a hurry"}
        files = [("one.txt", note), ("two.txt", note), ("three.txt", note)]
        async with http.post("/report", data=multipart(what, files)) as resp:
            assert resp.status == 422
            page = html.text(await resp.text())
    assert "“three.txt” was not added: many files were sent from here in a short time." in page
    assert re.search(r"Wait (30|31) minutes and add it again", page)  # half an hour: 2 an hour
    assert "attachment-1.txt" in page and "attachment-2.txt" in page
    assert "Notes sent in a hurry" in page
    assert await db.fetchval("SELECT count(*) FROM uploads") == 2


async def test_with_javascript_each_chosen_file_shows_its_progress_while_it_is_sent(
    stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    """The form is held on its way to the server, so the reporter's view of it can be seen:
    one progress bar per file, named after it, then the same page with the files added."""
    photo, letter = evidence(tmp_path)
    context = await on_a_phone(browser, stack.base_url, True)
    page = await context.new_page()
    await answer_first_questions(page)
    await page.fill("#description", "The lift alarm does not work.")
    await page.set_input_files("#files", [str(photo), str(letter)])
    release = asyncio.Event()

    async def hold(route: Route) -> None:
        if route.request.method == "POST":
            await release.wait()
        await route.continue_()

    await page.route("**/report", hold)
    await page.click("button:has-text('Add these files')")
    bars = page.locator("[data-file-progress] progress")
    await bars.first.wait_for()
    assert await bars.count() == 2
    names = [await bars.nth(i).get_attribute("aria-label") for i in range(2)]
    assert names == ["PXL_0417.jpg", "letter-to-me.pdf"]
    release.set()
    await page.wait_for_selector(".file-list:has-text('attachment-2.pdf')")
    assert await page.input_value("#description") == "The lift alarm does not work."
    await context.close()


async def test_a_file_past_what_uploads_may_hold_is_named_on_the_same_page(
    stack: Stack, db: asyncpg.Connection
) -> None:
    """When reporters' files waiting to be sent hold the cap (here 1 MiB), the file past it is
    named on the same page with how long to wait; what was typed and the other files stay."""
    from tests.journeys import post

    _, base = stack.start_web("web-upload-cap", CONFIDE_PENDING_UPLOADS_MAX_MIB="1")
    note = b"A note from the reporter.\n"
    big = make.notes(680)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base, cookie_jar=jar) as http:
        async with http.get("/report") as resp:
            assert resp.status == 200
        await post(http, "/report", {"step": "how", "how": "anonymous"})
        await post(http, "/report", {"step": "category", "category": "safety"})
        what = {"step": "what", "description": "Notes sent on a busy day"}
        files = [("one.txt", big), ("two.txt", big), ("three.txt", note)]
        async with http.post("/report", data=multipart(what, files)) as resp:
            assert resp.status == 422
            page = html.text(await resp.text())
    assert "“two.txt” was not added: too many files are waiting to be sent just now." in page
    assert "Wait 1 minute and add it again" in page
    assert "attachment-1.txt" in page and "attachment-2.txt" in page
    assert "Notes sent on a busy day" in page
    assert await db.fetchval("SELECT count(*) FROM uploads") == 2
