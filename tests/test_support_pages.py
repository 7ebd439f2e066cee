"""Support pages (issue 14, item 9): admins write them in Markdown, reporters read them without
logging in, and nothing an admin types can run in a reporter's browser.

- An edit full of script, event handlers and ``javascript:`` links is served inert.
- Each edit is a new version, audited with its editor; the history lists them all.
- Only admins edit: case workers, managers and ops get 403 and change nothing.
- The demo organisation's three pages exist, and are linked from the start page and the footer;
  "I need help now" is beside "Exit this page" on every reporter page.
- axe finds nothing on the support pages and the editor, with JavaScript on and off.
"""

from __future__ import annotations

import re
import secrets
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from playwright.async_api import Browser

from confide import markup
from confide import org as org_file
from confide.errors import ConfigError
from tests import html
from tests.conftest import Stack, StaffAccount, add_staff
from tests.journeys import form_page, post, reporter_logs_in, send_report, staff_logs_in
from tests.test_browser import Auditor, browser, on_a_phone  # noqa: F401 - browser: the session's Chromium

DEMO_PAGES = {
    "help": "I need help now",
    "after-you-report": "What happens after I report",
    "privacy": "Your privacy",
}
ATTACKS = "\n\n".join(
    [
        "Before <script>alert(1)</script> after",
        "<img src=x onerror=alert(2)>",
        "[a markdown link](javascript:alert(3))",
        '<a href="javascript:alert(4)">a raw link</a>',
        "[mixed case](JaVaScRiPt:alert(5)) <svg onload=alert(6)></svg>",
        "<iframe src=javascript:alert(7)></iframe>",
        "[a safe link](/support/help) and [a phone](tel:116123)",
    ]
)


def client(stack: Stack) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True))


class Elements(HTMLParser):
    """Every element of a page with its attributes, as a browser would build them."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str]]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k.lower(): v or "" for k, v in attrs}))

    def named(self, tag: str) -> list[dict[str, str]]:
        return [attrs for name, attrs in self.found if name == tag]


def assert_inert(page: str) -> None:
    elements = Elements(page)
    # Our own script only, loaded from this site (the CSP allows nothing else either).
    assert elements.named("script") == [{"src": "/static/app.js", "defer": ""}]
    assert not [(t, a) for t, a in elements.found if any(k.startswith("on") for k in a)]
    for _tag, attrs in elements.found:
        for key in ("href", "src", "action", "formaction"):
            value = re.sub(r"\s", "", attrs.get(key, "")).lower()
            assert not value.startswith(("javascript:", "vbscript:", "data:")), attrs
    assert not {"img", "svg", "iframe", "object", "embed"} & {t for t, _ in elements.found}


def main_of(page: str) -> str:
    return page[page.index("<main") : page.index("</main>")]


def footer_of(page: str) -> str:
    return page[page.index("<footer") : page.index("</footer>")]


async def admin_saves(
    b: aiohttp.ClientSession, path: str, **fields: str
) -> tuple[int, str, html.Form]:
    """Open the editor at ``path``, type ``fields`` and save; the page after the redirect."""
    page = await form_page(b, path)
    form = next(f for f in html.forms(page) if f.action == "/staff/support")
    status, after = await post(b, form.action, form.data(**fields))
    return status, after, form


def test_the_sanitiser_keeps_only_its_allow_list_whatever_the_markdown_makes() -> None:
    made = markup.render(ATTACKS + "\n\n[data](data:text/html,x) [vb](vbscript:x) ![i](/x.png)")
    assert_inert(f'<script src="/static/app.js" defer></script>{made}')
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in made  # shown as the words typed
    # Even HTML that never came from Markdown keeps to the allow-list.
    raw = (
        '<p onclick="x()" style="position:fixed" class="x">a</p><script>alert(1)</script>'
        '<a href="java\tscript:alert(1)">b</a><a href="https://example.org" target="_blank">c</a>'
        "<!-- a comment --><form action=/x><input name=y></form><h1>d</h1>"
    )
    assert markup.sanitise(raw) == (
        '<p>a</p><a rel="noopener noreferrer">b</a>'
        '<a href="https://example.org" rel="noopener noreferrer">c</a>d'
    )
    # The page's title is its only h1: "#" is an h2, like "##".
    assert markup.render("# Title\n\n## Part\n\n### Detail") == (
        '<h2 class="heading-m">Title</h2>\n<h2 class="heading-m">Part</h2>\n'
        '<h3 class="heading-s">Detail</h3>\n'
    )


def test_organisation_file_names_its_support_services_or_says_what_is_wrong(
    tmp_path: Path,
) -> None:
    demo = org_file.load(Path(org_file.__file__).parent / "data" / "demo-org.toml")
    assert [s.name for s in demo.support_services] == [
        "Northbridge Student Wellbeing (demo)",
        "Northbridge Campus Security (demo)",
    ]
    assert demo.support_services[0].tel == "tel:01134960000"
    base = (Path(org_file.__file__).parent / "data" / "demo-org.toml").read_text()
    base = base[: base.index("[[support.services]]")]
    for extra, words in (
        ('[[support.services]]\nphone = "111"\n', "needs a name"),
        ('[[support.services]]\nname = "A"\n', "needs a phone or a url"),
        ('[[support.services]]\nname = "A"\nphone = "call us"\n', "digits and spaces"),
        ('[[support.services]]\nname = "A"\nurl = "javascript:alert(1)"\n', "https://"),
    ):
        path = tmp_path / "org.toml"
        path.write_text(base + extra)
        with pytest.raises(ConfigError, match=words):
            org_file.load(path)
    path.write_text(base)
    assert org_file.load(path).support_services == ()


async def test_admin_edit_with_scripts_and_javascript_links_is_served_inert(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    ada = add_staff(stack, "ada@example.org", "wellbeing", role="admin")
    slug = f"story-{secrets.token_hex(3)}"
    async with client(stack) as b:
        await staff_logs_in(b, ada.email, ada.password)
        status, page, _form = await admin_saves(
            b, "/staff/support/new", slug=slug, title="Getting <b>help</b>", body=ATTACKS
        )
        assert status == 200 and "Version 1 was saved." in html.text(page)
        # A second edit, started from version 1.
        status, page, form = await admin_saves(
            b, f"/staff/support/{slug}", title="Getting help", body="Second version.\n\n" + ATTACKS
        )
        assert form.fields["version"] == "1" and form.fields["slug"] == slug
        assert status == 200 and "Version 2 was saved." in html.text(page)
        # The history lists both versions, with their editor; the first can still be read.
        history = page[page.index("History") :]
        assert "Version 2" in history and "Version 1" in history
        assert history.count(ada.email) == 2
        first = await form_page(b, f"/staff/support/{slug}/versions/1")
        assert "Getting &lt;b&gt;help&lt;/b&gt;" in first and "Second version" not in first
        assert_inert(first)
        audit = await form_page(b, "/staff/audit")
    rows = audit[audit.index("<tbody>") : audit.index("</tbody>")]
    edits = [r for r in rows.split("<tr>") if "Edited a support page" in r]
    assert len(edits) == 2 and all(ada.email in r for r in edits)
    rows = await db.fetch(
        """SELECT v.version, v.edited_by = s.id AS by_ada FROM support_page_versions v
           JOIN support_pages p ON p.id = v.page_id, staff s
           WHERE p.slug = $1 AND s.email = $2 ORDER BY 1""",
        slug,
        ada.email,
    )
    assert [tuple(r) for r in rows] == [(1, True), (2, True)]

    # A reporter, without logging in, reads the latest version: every attack is only text.
    async with http.get(f"/support/{slug}") as resp:
        assert resp.status == 200
        page = await resp.text()
    assert_inert(page)
    text = html.text(main_of(page))
    assert "Second version." in text and "alert(1)" in text  # shown, as words
    assert '<a href="/support/help" rel="noopener noreferrer">a safe link</a>' in page
    assert '<a href="tel:116123" rel="noopener noreferrer">a phone</a>' in page
    assert html.title(page).startswith("Getting help")
    # The new page is linked from the footer and the list of pages.
    assert f'href="/support/{slug}"' in footer_of(page)
    assert f'href="/support/{slug}"' in main_of(await form_page(http, "/support"))


async def test_case_workers_managers_and_ops_cannot_edit_support_pages(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    before = await db.fetchval("SELECT count(*) FROM support_page_versions")
    for role in ("caseworker", "manager", "ops"):
        account = add_staff(stack, f"{role}@example.org", "wellbeing", role=role)
        async with client(stack) as b:
            _status, page = await staff_logs_in(b, account.email, account.password)
            assert 'href="/staff/support"' not in page  # not in their menu
            csrf = next(f for f in html.forms(page) if f.action == "/staff/logout").fields
            for path in ("/staff/support", "/staff/support/new", "/staff/support/help"):
                async with b.get(path) as resp:
                    assert resp.status == 403, (role, path)
                    assert "Your role cannot open this page" in await resp.text()
            fields = {**csrf, "slug": "help", "title": "Hijacked", "body": "x", "version": "1"}
            async with b.post("/staff/support", data=fields) as resp:
                assert resp.status == 403, role
    async with http.post("/staff/support", data={"slug": "help"}, allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/staff/login"  # no session
    assert await db.fetchval("SELECT count(*) FROM support_page_versions") == before
    async with http.get("/support/help") as resp:
        assert "Hijacked" not in await resp.text()


async def test_admin_gets_the_form_again_with_what_was_typed_when_it_is_not_valid(
    stack: Stack, db: asyncpg.Connection
) -> None:
    ada = add_staff(stack, "ada@example.org", "wellbeing", role="admin")
    grace = add_staff(stack, "grace@example.org", "wellbeing", role="admin")
    slug = f"story-{secrets.token_hex(3)}"
    async with client(stack) as b:
        await staff_logs_in(b, ada.email, ada.password)
        too_long = "Words. " * 7200  # 50,400 characters
        status, page, _form = await admin_saves(
            b, "/staff/support/new", slug="Not A Slug", title="  ", body=too_long
        )
        assert status == 422, html.text(page)[:800]
        assert html.title(page).startswith("Error:")
        text = html.text(page)
        assert "Enter an address of lower-case letters, digits and hyphens" in text
        assert "Enter a title" in text
        assert "The page's text must be 50,000 characters or fewer" in text
        again = next(f for f in html.forms(page) if f.action == "/staff/support")
        assert again.fields["slug"] == "Not A Slug" and again.fields["body"] == too_long
        assert 'aria-describedby="body-hint body-error"' in page
        # An address that is taken.
        status, page, _form = await admin_saves(
            b, "/staff/support/new", slug="help", title="Mine", body="Mine"
        )
        assert status == 422 and "A page with this address exists already" in html.text(page)

        # Two admins edit one page: the later save does not overwrite the earlier unseen.
        await admin_saves(b, "/staff/support/new", slug=slug, title="One", body="First text")
        stale = await form_page(b, f"/staff/support/{slug}")
        async with client(stack) as other:
            await staff_logs_in(other, grace.email, grace.password)
            status, _page, _form = await admin_saves(
                other, f"/staff/support/{slug}", body="Grace's text"
            )
            assert status == 200
        form = next(f for f in html.forms(stale) if f.action == "/staff/support")
        status, page = await post(b, form.action, form.data(body="Ada's text"))
        assert status == 422
        assert "Someone else saved this page (version 2) since you opened it" in html.text(page)
        again = next(f for f in html.forms(page) if f.action == "/staff/support")
        assert again.fields["body"] == "Ada's text" and again.fields["version"] == "2"
        # Saving again is then a choice, and works.
        status, page = await post(b, again.action, again.fields)
        assert status == 200 and "Version 3 was saved." in html.text(page)
    bodies = await db.fetch(
        """SELECT v.body FROM support_page_versions v JOIN support_pages p ON p.id = v.page_id
           WHERE p.slug = $1 ORDER BY v.version""",
        slug,
    )
    assert [r["body"] for r in bodies] == ["First text", "Grace's text", "Ada's text"]


async def test_reporter_finds_the_demo_pages_from_the_start_page_and_the_footer(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    start = await form_page(http, "/")
    for slug, title in DEMO_PAGES.items():
        link = f'<a href="/support/{slug}">{title}</a>'
        assert link in main_of(start), slug
        assert link in footer_of(start), slug
        page = await form_page(http, f"/support/{slug}")
        assert html.title(page).startswith(title)
        assert_inert(page)
    help_page = html.text(main_of(await form_page(http, "/support/help")))
    for words in ("Call 999", "NHS 111", "116 123", "Samaritans"):
        assert words in help_page, words
    # The organisation's own services, from the organisation file.
    help_html = await form_page(http, "/support/help")
    assert "Northbridge Student Wellbeing (demo)" in help_html
    assert '<a href="tel:01134960000">0113 496 0000</a>' in help_html
    assert "Northbridge Campus Security (demo)" in help_html
    privacy = html.text(await form_page(http, "/support/privacy"))
    assert "We never store or log your internet (IP) address" in privacy
    listing = await form_page(http, "/support")
    assert all(f'href="/support/{slug}"' in main_of(listing) for slug in DEMO_PAGES)
    # A page that does not exist is the normal 404 page.
    for path in ("/support/no-such-page", "/support/%3Cscript%3E", "/support/new"):
        async with http.get(path) as resp:
            assert resp.status == 404, path
            page = await resp.text()
            assert "Page not found" in html.title(page) and "Exit this page" in page


async def test_i_need_help_now_is_beside_exit_on_every_reporter_page(
    stack: Stack, http: aiohttp.ClientSession, caseworker: StaffAccount
) -> None:
    help_link = '<a href="/support/help" class="help-now__link">I need help now</a>'

    def beside_exit(page: str, where: str) -> None:
        assert help_link in page, where
        exit_at = page.index('id="exit-this-page"')
        assert exit_at < page.index(help_link) < page.index("<main"), where

    beside_exit(await form_page(http, "/"), "start")
    page = await form_page(http, "/report")
    steps = [
        {"how": "anonymous"},
        {"category": "safety"},
        {"description": "The fire door on level 2 does not close."},
        {"occurred": ""},
        {"location": ""},
        {"follow_up": "yes"},
    ]
    for answers in steps:
        beside_exit(page, f"step before {answers}")
        form = html.main_form(page)
        status, page = await post(http, form.action, form.data(**answers))
        assert status == 200
    beside_exit(page, "check answers")
    sent = await send_report(http, page)
    assert sent.code is not None
    beside_exit(sent.page, "confirmation")
    beside_exit(await form_page(http, "/login"), "login")
    status, page = await reporter_logs_in(http, sent.code)
    assert status == 200
    beside_exit(page, "messages")
    beside_exit(await form_page(http, "/support/privacy"), "a support page")
    # Staff pages are not reporter pages.
    async with client(stack) as b:
        _status, page = await staff_logs_in(b, caseworker.email, caseworker.password)
        assert help_link not in page


@pytest.mark.parametrize("js", [True, False], ids=["javascript-on", "javascript-off"])
async def test_support_pages_and_their_editor_pass_axe(
    stack: Stack,
    browser: Browser,  # noqa: F811 - the fixture imported from tests.test_browser
    db: asyncpg.Connection,
    js: bool,
) -> None:
    ada = add_staff(stack, "ada@example.org", "wellbeing", role="admin")
    auditor = Auditor(browser, stack.base_url)
    context = await on_a_phone(browser, stack.base_url, js)
    page = await context.new_page()
    try:
        await page.goto("/")
        await page.click("text=I need help now")
        assert (await page.title()).startswith("I need help now")
        await auditor.check(page, js)
        for path in ("/support", "/support/after-you-report", "/support/privacy", "/support/help"):
            await page.goto(path)
            await auditor.check(page, js)
            # Nothing, a long web address included, widens the page beyond the phone's screen.
            assert await page.evaluate("document.documentElement.scrollWidth") <= 375, path

        await page.goto("/staff/login")
        await page.fill("#email", ada.email)
        await page.fill("#password", ada.password)
        await page.click("button:has-text('Log in')")
        await page.click("a:has-text('Support pages')")
        await auditor.check(page, js)
        await page.click("text=Add a page")
        await auditor.check(page, js)
        await page.click("button:has-text('Save as a new version')")  # nothing typed
        assert (await page.title()).startswith("Error:")
        await auditor.check(page, js)
        await page.fill("#slug", f"axe-{secrets.token_hex(3)}")
        await page.fill("#title", "Checked by axe")
        await page.fill("#body", "## A heading\n\n- a list\n- [a link](/support/help)")
        await page.click("button:has-text('Save as a new version')")
        assert "Version 1 was saved." in await page.inner_text("main")
        await auditor.check(page, js)  # the editor with its history
        await page.click("a:has-text('Version 1')")
        await auditor.check(page, js)
        await page.goto("/staff/support/help")
        await auditor.check(page, js)
    finally:
        await context.close()
