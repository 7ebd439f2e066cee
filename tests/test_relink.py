"""A reporter who lost their code says a new report is about one they made before (issue 14,
item 7). Stories:

- The case worker of the new thread sees a "Possibly linked" panel with the reporter's words. It
  names the earlier thread, and offers "Link these reports", only to one who may see that thread:
  never to a case worker of another team, nor of a restricted thread; for them the panel is the
  same whether the reference exists or not.
- Linking is audited on both threads, and both then show the link to those who may see both.
- The new code opens only the new thread: the messaging page and the API show the new report.
- A malformed or unknown reference gives no error and no oracle to the reporter.
- The API takes the new fields; their words are sealed at rest.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import aiohttp
import asyncpg
import pytest
from playwright.async_api import Browser

from tests import html
from tests.conftest import Stack, StaffAccount, add_staff
from tests.journeys import form_page, post, reporter_logs_in, staff_acts, staff_logs_in
from tests.test_browser import Auditor, browser, on_a_phone  # noqa: F401 - browser: the session's Chromium


def canary(label: str) -> str:
    return f"CANARY{label.upper()}{secrets.token_hex(6).upper()}"


def client(stack: Stack) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True))


async def api_report(http: aiohttp.ClientSession, category: str, **extra: Any) -> dict[str, Any]:
    body = {"category": category, "description": "An earlier report", "anonymous": True}
    body.update({"follow_up": True, **extra})
    async with http.post("/api/v1/reports", json=body) as resp:
        assert resp.status == 201, await resp.text()
        found: dict[str, Any] = await resp.json()
        return found


async def check_page_about_earlier(
    http: aiohttp.ClientSession,
    *,
    category: str,
    description: str,
    tick: bool = True,
    reference: str = "",
    details: str = "",
) -> str:
    """The question pages as a browser without JavaScript walks them, saying on "What happened"
    that the report is about an earlier one; the check answers page."""
    page = await form_page(http, "/report")
    what: dict[str, str] = {"description": description}
    what.update({"earlier_reference": reference, "earlier_details": details})
    if tick:
        what["made_before"] = "yes"
    for answers in (
        {"how": "anonymous"},
        {"category": category},
        what,
        {"occurred": ""},
        {"location": ""},
        {"follow_up": "yes"},
    ):
        form = html.main_form(page)
        status, page = await post(http, form.action, form.data(**answers))
        assert status == 200, (status, html.text(page)[:500])
    assert html.title(page).startswith("Check your answers"), html.title(page)
    return page


async def send(http: aiohttp.ClientSession, check_page: str) -> tuple[str, str]:
    form = html.main_form(check_page)
    status, page = await post(http, form.action, form.fields)
    assert status == 200 and "Report received" in page, html.text(page)[:500]
    match = re.search(r'class="reference">(R-[0-9A-Z]{8})<', page)
    code = html.code_on(page)
    assert match and code
    return match.group(1), code


async def thread_page(stack: Stack, account: StaffAccount, reference: str) -> str:
    async with client(stack) as b:
        await staff_logs_in(b, account.email, account.password)
        return await form_page(b, f"/staff/threads/{reference}")


def panel(page: str) -> str:
    start = page.index('id="possibly-linked"')
    return page[start : page.index("</section>", start)]


def typed(reference: str) -> str:
    """The reference as a reporter copied it from a scrap of paper."""
    return reference.lower().replace("-", " ").replace("0", "o")


async def test_caseworker_who_may_see_the_earlier_report_links_them_and_both_show_it(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    casey = add_staff(stack, "casey@example.org", "wellbeing")
    earlier = (await api_report(http, "harassment"))["reference"]
    details = canary("details")
    async with client(stack) as reporter:
        check = await check_page_about_earlier(
            reporter,
            category="sexual-misconduct",
            description="It happened again",
            reference=typed(earlier),
            details=details,
        )
        # Check answers shows what they wrote, as they wrote it.
        assert typed(earlier) in html.text(check) and details in html.text(check)
        new, _code = await send(reporter, check)

    page = await thread_page(stack, casey, new)
    shown = panel(page)
    assert "Possibly linked" in shown and details in shown and typed(earlier) in shown
    assert f'href="/staff/threads/{earlier}"' in shown and "Link these reports" in shown

    async with client(stack) as b:
        await staff_logs_in(b, casey.email, casey.password)
        status, page = await staff_acts(b, new, "link")
        assert status == 200 and "Reports linked" in page
        assert "Link these reports" not in page  # linked once: the panel says so
        linked = page[page.index('id="linked-reports"') :]
        assert f'href="/staff/threads/{earlier}"' in linked
        other = await form_page(b, f"/staff/threads/{earlier}")
        assert f'href="/staff/threads/{new}"' in other[other.index('id="linked-reports"') :]
        assert 'id="possibly-linked"' not in other  # the earlier reporter said nothing
        # Linking again (a double click) adds nothing.
        page = await form_page(b, f"/staff/threads/{new}")
        csrf = next(f for f in html.forms(page) if f.action.endswith("/note")).fields
        fields = {"csrf_token": csrf["csrf_token"], "other": earlier}
        await post(b, f"/staff/threads/{new}/link", fields)
    assert await db.fetchval("SELECT count(*) FROM thread_links") == 1
    audited = await db.fetch(
        """SELECT t.reference, a.detail FROM audit_log a JOIN threads t ON t.id = a.thread_id
           WHERE a.action = 'link' ORDER BY t.reference"""
    )
    assert sorted(r["reference"] for r in audited) == sorted([earlier, new])
    assert audited[0]["detail"] == audited[1]["detail"]  # one link id, no reference in it
    assert earlier not in audited[0]["detail"] and new not in audited[0]["detail"]
    # Once the earlier thread is restricted, Casey sees neither the link nor any hint of it.
    wanda = add_staff(stack, "wanda@example.org", "wellbeing", role="manager")
    async with client(stack) as b:
        await staff_logs_in(b, wanda.email, wanda.password)
        status, _page = await staff_acts(b, earlier, "restrict", restricted="1")
        assert status == 200
    page = await thread_page(stack, casey, new)
    assert 'id="linked-reports"' not in page and earlier not in page.replace(typed(earlier), "")
    # The manager, who sees both, unlinks them from the earlier thread's page: audited too, and
    # gone from both pages.
    async with client(stack) as b:
        await staff_logs_in(b, wanda.email, wanda.password)
        status, page = await staff_acts(b, earlier, "unlink")
        assert status == 200 and "Link removed" in page and 'id="linked-reports"' not in page
        page = await form_page(b, f"/staff/threads/{new}")
        assert 'id="linked-reports"' not in page and "Link these reports" in panel(page)
    assert await db.fetchval("SELECT count(*) FROM thread_links") == 0
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'unlink'") == 2
    # Sealed at rest: the reporter's words are not in the thread's row.
    row = await db.fetchrow(
        "SELECT made_before, earlier_reference, earlier_details FROM threads WHERE reference = $1",
        new,
    )
    assert row["made_before"] is True
    assert details.encode() not in row["earlier_details"]
    assert typed(earlier).encode() not in row["earlier_reference"]


async def test_no_hint_of_the_earlier_report_for_one_who_may_not_see_it(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    casey = add_staff(stack, "casey@example.org", "wellbeing")
    tam = add_staff(stack, "tam@example.org", "wellbeing")
    wanda = add_staff(stack, "wanda@example.org", "wellbeing", role="manager")
    other_team = (await api_report(http, "discrimination"))["reference"]  # HR's
    restricted = (await api_report(http, "harassment"))["reference"]
    async with client(stack) as b:
        await staff_logs_in(b, wanda.email, wanda.password)
        await staff_acts(b, restricted, "assign", email=tam.email)
        status, _page = await staff_acts(b, restricted, "restrict", restricted="1")
        assert status == 200
    unknown = "R-" + "".join(secrets.choice("0123456789ABCDEFGHJKMNPQRSTVWXYZ") for _ in range(8))
    assert await db.fetchval("SELECT count(*) FROM threads WHERE reference = $1", unknown) == 0
    new: dict[str, str] = {}
    for earlier in (other_team, restricted, unknown):
        async with client(stack) as reporter:
            check = await check_page_about_earlier(
                reporter, category="sexual-misconduct", description="Again", reference=earlier
            )
            new[earlier], _code = await send(reporter, check)

    # Casey may not see HR's thread nor the restricted one: the panel is the reporter's words
    # only, the same as for a reference that names no report at all.
    panels = {}
    for earlier, reference in new.items():
        shown = panel(await thread_page(stack, casey, reference))
        assert "Link these reports" not in shown and "/staff/threads/" not in shown
        panels[earlier] = shown.replace(earlier, "R-XXXXXXXX")
    assert panels[other_team] == panels[unknown] == panels[restricted]
    # Forging the link is refused as for a missing thread, and links nothing.
    async with client(stack) as b:
        await staff_logs_in(b, casey.email, casey.password)
        answers = set()
        for earlier in (other_team, restricted, unknown):
            page = await form_page(b, f"/staff/threads/{new[earlier]}")
            csrf = next(f for f in html.forms(page) if f.action.endswith("/note")).fields
            fields = {"csrf_token": csrf["csrf_token"], "other": earlier}
            status, page = await post(b, f"/staff/threads/{new[earlier]}/link", fields)
            answers.add((status, html.title(page)))
        assert len(answers) == 1 and next(iter(answers))[0] == 404
    assert await db.fetchval("SELECT count(*) FROM thread_links") == 0
    # The manager, who may see the restricted thread, is offered the link.
    shown = panel(await thread_page(stack, wanda, new[restricted]))
    assert f'href="/staff/threads/{restricted}"' in shown and "Link these reports" in shown


async def test_new_code_opens_only_the_new_report_even_once_linked(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    casey = add_staff(stack, "casey@example.org", "wellbeing")
    old_words = canary("old")
    earlier = (await api_report(http, "harassment", description=old_words))["reference"]
    new_words = canary("new")
    async with client(stack) as reporter:
        check = await check_page_about_earlier(
            reporter, category="sexual-misconduct", description=new_words, reference=earlier
        )
        new, code = await send(reporter, check)
    async with client(stack) as b:
        await staff_logs_in(b, casey.email, casey.password)
        status, _page = await staff_acts(b, new, "link")
        assert status == 200
    async with client(stack) as reporter:
        status, page = await reporter_logs_in(reporter, code)
        assert status == 200 and new in page and new_words in page
        assert earlier not in page and old_words not in page
    async with http.post("/api/v1/reporter/session", json={"code": code}) as resp:
        token = (await resp.json())["token"]
    headers = {"Authorization": f"Bearer {token}"}
    async with http.get("/api/v1/reporter/thread", headers=headers) as resp:
        thread = await resp.json()
        assert thread["reference"] == new and thread["description"] == new_words
        assert earlier not in await resp.text() and old_words not in await resp.text()


async def test_reporter_gets_no_error_and_no_oracle_from_any_reference(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    existing = (await api_report(http, "harassment"))["reference"]
    unknown = "R-" + "".join(secrets.choice("0123456789ABCDEFGHJKMNPQRSTVWXYZ") for _ in range(8))
    pages = {}
    for reference in (existing, unknown, "my old one, from March!!"):
        async with client(stack) as reporter:
            check = await check_page_about_earlier(
                reporter, category="sexual-misconduct", description="Again", reference=reference
            )
            assert reference in html.text(check)
            pages[reference] = html.text(check).replace(reference, "REF")
            await send(reporter, check)
    assert pages[existing] == pages[unknown] == pages["my old one, from March!!"]
    # Words without the tick still count as about an earlier report: nothing typed is lost.
    async with client(stack) as reporter:
        check = await check_page_about_earlier(
            reporter,
            category="sexual-misconduct",
            description="Again",
            tick=False,
            details="In May",
        )
        assert "About a report you made before" in check and "In May" in check
    # No tick, no words: an ordinary report.
    async with client(stack) as reporter:
        check = await check_page_about_earlier(
            reporter, category="sexual-misconduct", description="Again", tick=False
        )
        assert "About a report you made before" not in check
        new, _code = await send(reporter, check)
    assert await db.fetchval("SELECT made_before FROM threads WHERE reference = $1", new) is False


async def test_api_takes_the_earlier_report_fields(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    casey = add_staff(stack, "casey@example.org", "wellbeing")
    earlier = (await api_report(http, "harassment"))["reference"]
    other_team = (await api_report(http, "discrimination"))["reference"]
    details = canary("details")
    new = await api_report(
        http,
        "sexual-misconduct",
        made_before=True,
        earlier_reference=earlier.lower(),
        earlier_details=details,
    )
    shown = panel(await thread_page(stack, casey, new["reference"]))
    assert details in shown and f'href="/staff/threads/{earlier}"' in shown
    body = {"category": "sexual-misconduct", "description": "x", "anonymous": True}
    async with http.post(
        "/api/v1/reports", json={**body, "earlier_reference": earlier, "made_before": False}
    ) as resp:
        assert resp.status == 422
        assert [e["field"] for e in (await resp.json())["errors"]] == ["earlier_reference"]
    async with http.post("/api/v1/reports", json={**body, "made_before": "yes"}) as resp:
        assert resp.status == 422
    # The staff API says the same as the panel, by the same rule.
    async with http.post(
        "/api/v1/staff/session", json={"email": casey.email, "password": casey.password}
    ) as resp:
        headers = {"Authorization": f"Bearer {(await resp.json())['token']}"}
    async with http.get(f"/api/v1/staff/threads/{new['reference']}", headers=headers) as resp:
        found = await resp.json()
        assert found["earlier"] == {
            "reference": earlier.lower(),
            "details": details,
            "names": earlier,
        }
        assert found["linked"] == []
    hidden = await api_report(
        http, "sexual-misconduct", made_before=True, earlier_reference=other_team
    )
    async with http.get(f"/api/v1/staff/threads/{hidden['reference']}", headers=headers) as resp:
        assert (await resp.json())["earlier"] == {
            "reference": other_team,
            "details": None,
            "names": None,
        }
    async with http.get("/api/v1/openapi.json") as resp:
        schema = (await resp.json())["components"]["schemas"]["NewReport"]["properties"]
        assert {"made_before", "earlier_reference", "earlier_details"} <= set(schema)


async def test_receipt_covers_what_was_said_of_the_earlier_report(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    casey = add_staff(stack, "casey@example.org", "wellbeing")
    async with client(stack) as reporter:
        check = await check_page_about_earlier(
            reporter,
            category="sexual-misconduct",
            description="Again",
            reference="R-ABCD EFGH",
            details="In May",
        )
        form = html.main_form(check)
        status, confirmation = await post(reporter, form.action, form.fields)
        new = re.search(r'class="reference">(R-[0-9A-Z]{8})<', confirmation)
        assert status == 200 and new
        form = next(f for f in html.forms(confirmation) if f.action == "/receipt.json")
        async with reporter.post(form.action, data=form.fields) as resp:
            receipt = await resp.text()
    assert "In May" not in receipt  # a receipt holds no report text
    thread_id = await db.fetchval("SELECT id FROM threads WHERE reference = $1", new.group(1))
    async with client(stack) as b:
        await staff_logs_in(b, casey.email, casey.password)
        status, page = await staff_acts(b, new.group(1), "receipt", receipt=receipt)
        assert status == 200 and "The receipt matches." in page
        # Someone with database access rewrites the reporter's words, sealed for their row.
        await db.execute(
            "UPDATE threads SET earlier_details = $2 WHERE id = $1",
            thread_id,
            stack.keyring.seal("In June", f"threads.earlier_details:{thread_id}"),
        )
        status, page = await staff_acts(b, new.group(1), "receipt", receipt=receipt)
        assert status == 200 and "The receipt does not match" in page


@pytest.mark.parametrize("js", [True, False], ids=["javascript-on", "javascript-off"])
async def test_changed_pages_pass_axe_on_a_phone(
    stack: Stack,
    browser: Browser,  # noqa: F811 - the fixture imported from tests.test_browser
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    js: bool,
) -> None:
    casey = add_staff(stack, "casey@example.org", "wellbeing")
    earlier = (await api_report(http, "harassment"))["reference"]
    auditor = Auditor(browser, stack.base_url)
    context = await on_a_phone(browser, stack.base_url, js)
    page = await context.new_page()
    try:
        await page.goto("/report")
        await page.check("#how")
        await page.click("button:has-text('Continue')")
        await page.check("label:has-text('Sexual harassment or misconduct')")
        await page.click("button:has-text('Continue')")
        await auditor.check(page, js)  # "What happened?", with the earlier-report questions
        await page.screenshot(
            path=str(stack.artifacts / f"relink-what-{'js' if js else 'nojs'}.png"), full_page=True
        )
        await page.fill("#description", "It happened again.")
        await page.check("#made_before")
        await page.fill("#earlier_reference", earlier.lower())
        await page.fill("#earlier_details", "Sent in March")
        await page.click("button:has-text('Continue')")
        for _ in range(2):  # when, where
            await page.click("button:has-text('Continue')")
        await page.check("#follow_up")
        await page.click("button:has-text('Continue')")
        assert "About a report you made before" in await page.inner_text(".summary-list")
        await auditor.check(page, js)
        await page.click("button:has-text('Send report')")
        new = (await page.inner_text(".reference")).strip()

        await page.goto("/staff/login")
        await page.fill("#email", casey.email)
        await page.fill("#password", casey.password)
        await page.click("button:has-text('Log in')")
        await page.goto(f"/staff/threads/{new}")
        assert "Possibly linked" in await page.inner_text("#possibly-linked")
        await auditor.check(page, js)
        await page.click("button:has-text('Link these reports')")
        assert "Reports linked" in await page.inner_text("main")
        await auditor.check(page, js)
        await page.screenshot(
            path=str(stack.artifacts / f"relink-{'js' if js else 'nojs'}.png"), full_page=True
        )
    finally:
        await context.close()
