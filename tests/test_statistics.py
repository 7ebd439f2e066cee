"""Statistics for managers and admins (issue 16, item 5), and the printable case record (item 6).

The stories run on the real stack: reports go in through the API, the refresh runs in the Celery
worker (the task beat sends every five minutes, sent here by name), and managers, an admin and a
case worker read the page, the CSV and the API. Whether a suppressed number can be worked out is
checked by an exhaustive search: every table of true counts that would publish exactly what the
page and the CSV show is enumerated, and each suppressed cell must take at least two values.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import fields, replace
from datetime import date, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest

from confide.services import statistics
from confide.services.statistics import Counts, Figures, publish_cell, publish_sum
from confide.sql.statistics import NamedSummary, Summary
from tests import html
from tests.conftest import Stack, StaffAccount, add_staff
from tests.journeys import form_page, staff_logs_in

HIDDEN_COUNTS = ("anonymous", "follow_up", "open", "overdue", "replied_within_target")
SEARCH_BOUND = 12  # a whole suppressed row: received is searched over 1..12


# --- The exhaustive search ---------------------------------------------------------------------


Publisher = Callable[[Counts], Figures]


def candidates(
    shown: Figures, bound: int = SEARCH_BOUND, publisher: Publisher = publish_cell
) -> Iterator[Counts]:
    """Every cell of true counts (received up to ``bound`` when it is hidden) that publishes
    exactly ``shown``. The number of replied threads is not published: only whether it reaches
    5 (a median is shown) and that it lies between those answered in time and those the promise
    applies to matter, so one representative value is tried for each."""
    received_values = [shown.received] if shown.received is not None else range(1, bound + 1)
    for received in received_values:
        assert received is not None
        anonymous_values = [shown.anonymous] if shown.anonymous is not None else range(received + 1)
        open_values = [shown.open] if shown.open is not None else range(received + 1)
        for anonymous, is_open in itertools.product(anonymous_values, open_values):
            assert anonymous is not None and is_open is not None
            contact = received - anonymous
            follow_values = (
                [shown.follow_up] if shown.follow_up is not None else range(anonymous + 1)
            )
            overdue_values = [shown.overdue] if shown.overdue is not None else range(is_open + 1)
            for follow_up, overdue in itertools.product(follow_values, overdue_values):
                assert follow_up is not None and overdue is not None
                if follow_up > anonymous or overdue > is_open:
                    continue
                promise = follow_up + contact
                within_values = (
                    [shown.replied_within_target]
                    if shown.replied_within_target is not None
                    else range(promise + 1)
                )
                for within in within_values:
                    assert within is not None
                    replied = max(within, 5) if shown.median_hours is not None else within
                    if replied > promise or (shown.median_hours is None and replied >= 5):
                        continue
                    cell = Counts(
                        received,
                        anonymous,
                        contact,
                        follow_up,
                        is_open,
                        received - is_open,
                        overdue,
                        replied,
                        within,
                        shown.median_hours,
                        shown.p90_hours,
                    )
                    if publisher(cell) == shown:
                        yield cell


def pinned_cells(shown: Figures) -> list[str]:
    """The suppressed counts of a published cell that only one value is consistent with."""
    hidden = [f.name for f in fields(Figures) if getattr(shown, f.name) is None]
    hidden = [h for h in hidden if h in statistics.COUNTS]
    seen: dict[str, set[int]] = {h: set() for h in hidden}
    found_any = False
    for cell in candidates(shown):
        found_any = True
        for h in hidden:
            seen[h].add(getattr(cell, h))
        if all(len(v) >= 2 for v in seen.values()):
            return []
    assert found_any, f"no table publishes {shown}"
    return [h for h, values in seen.items() if len(values) < 2]


def assert_nothing_recoverable(
    rows: list[Figures], sums: list[tuple[Figures, list[Figures]]]
) -> None:
    """Every suppressed cell keeps two values; every published sum adds up published cells only
    (so it says nothing about a hidden one), and is suppressed otherwise."""
    for shown in rows:
        for name in statistics.COUNTS:
            value = shown.count(name)
            assert value is None or value >= statistics.SUPPRESSED_BELOW, (name, shown)
        assert pinned_cells(shown) == [], shown
    for total, parts in sums:
        for name in statistics.COUNTS:
            values = [p.count(name) for p in parts]
            if None in values:
                assert total.count(name) is None, (name, total)
            else:
                assert total.count(name) == sum(v for v in values if v is not None), (name, total)


def cell(
    received: int,
    anonymous: int,
    follow_up: int,
    is_open: int,
    overdue: int,
    replied: int,
    within: int,
) -> Counts:
    return Counts(
        received,
        anonymous,
        received - anonymous,
        follow_up,
        is_open,
        received - is_open,
        overdue,
        replied,
        within,
        3.5 if replied >= 5 else None,
        9.0 if replied >= 5 else None,
    )


# Cells chosen to hit every rule, including the ones where a careless rule leaks.
TABLE = [
    cell(1, 1, 1, 1, 0, 0, 0),  # one report: everything hidden
    cell(4, 2, 1, 3, 1, 1, 1),
    cell(5, 5, 5, 5, 0, 5, 5),  # no contact at all
    cell(8, 4, 4, 4, 4, 4, 4),  # both halves of each pair small
    cell(10, 10, 10, 2, 0, 10, 10),  # all anonymous, all followed up
    cell(12, 3, 0, 12, 2, 9, 3),
    cell(20, 12, 6, 10, 5, 12, 7),  # all shown (each part and its rest 5 or more)
    cell(9, 5, 2, 9, 9, 6, 5),
    cell(6, 6, 0, 0, 0, 0, 0),  # anonymous without follow-up, all closed
    # Parts whose rest is small: 1 anonymous without follow-up, 1 open and not overdue, 3
    # answered late would follow by subtraction, so the parts are withheld.
    cell(12, 7, 6, 6, 5, 10, 8),
]


def test_no_suppressed_cell_of_the_test_tables_can_be_worked_out() -> None:
    rng = random.Random(16)
    table = list(TABLE)
    for _ in range(150):
        received = rng.randint(1, 12)
        anonymous = rng.randint(0, received)
        follow_up = rng.randint(0, anonymous)
        is_open = rng.randint(0, received)
        promise = follow_up + received - anonymous
        replied = rng.randint(0, promise)
        table.append(
            cell(
                received,
                anonymous,
                follow_up,
                is_open,
                rng.randint(0, is_open),
                replied,
                rng.randint(0, replied),
            )
        )
    shown = [publish_cell(c) for c in table]
    assert shown[0] == Figures(*([None] * 11))
    assert shown[6].received == 20 and shown[6].replied_within_target == 7
    assert shown[6].follow_up == 6 and shown[6].overdue == 5
    rests = shown[9]
    assert rests.anonymous == 7 and rests.open == 6  # the wholes are shown...
    assert rests.follow_up is None and rests.overdue is None  # ...their parts are not
    assert rests.replied_within_target is None and rests.share_within_target is None
    histograms = [tuple([1] * statistics.BUCKETS) for _ in shown]
    sums = [
        (publish_sum(shown, histograms), shown),
        (publish_sum(shown[6:7], histograms[:1]), shown[6:7]),
    ]
    assert_nothing_recoverable(shown, sums)


def test_a_careless_rule_is_caught_by_the_search() -> None:
    """The positive control: publishing follow-up while the anonymous / contact pair is
    withheld gives the pair away (all 10 followed up, so all 10 anonymous)."""
    shown = publish_cell(cell(10, 10, 10, 2, 0, 10, 10))
    leaky = replace(shown, follow_up=10)

    def publish_leaky(c: Counts) -> Figures:
        f = publish_cell(c)
        return (
            replace(f, follow_up=c.follow_up) if f.received is not None and c.follow_up >= 5 else f
        )

    found = {c.anonymous for c in candidates(leaky, publisher=publish_leaky)}
    assert found == {10}  # pinned: the search sees it
    assert len({c.anonymous for c in candidates(shown)}) >= 2  # the real rule keeps it open


def summary(month: date, team: int, category: str, c: Counts) -> NamedSummary:
    histogram = [0] * statistics.BUCKETS
    histogram[statistics.bucket_of(3.5)] = c.replied
    s = Summary(
        month,
        team,
        category,
        c.received,
        c.anonymous,
        c.with_contact,
        c.follow_up,
        c.open,
        c.closed,
        c.overdue,
        c.replied,
        c.replied_within_target,
        c.median_hours,
        c.p90_hours,
        tuple(histogram),
    )
    return NamedSummary(s, f"team-{team}", f"Team {team}", category)


def test_a_range_shows_only_sums_of_its_published_months() -> None:
    """Two overlapping ranges: each figure of each is the sum of its published monthly cells or
    is withheld, so their difference is a sum of published cells too, never a hidden month."""
    months = [date(2026, m, 1) for m in range(1, 7)]
    big = cell(12, 7, 6, 6, 5, 10, 8)
    small = cell(2, 1, 1, 1, 0, 1, 1)
    rows = [summary(m, 1, "safety", big) for m in months] + [summary(months[3], 1, "other", small)]
    everything = statistics.publish(months[0], months[-1], rows)
    early = statistics.publish(
        months[0], months[2], [r for r in rows if r.summary.month <= months[2]]
    )
    assert early.totals.received == 36 and early.totals.median_hours is not None
    assert everything.totals.received is None  # April has a hidden cell
    for stats in (everything, early):
        sums = [(stats.totals, [r.figures for r in stats.rows])]
        sums += [
            (m.figures, [r.figures for r in stats.rows if r.month.isoformat()[:7] == m.key])
            for m in stats.months
        ]
        assert_nothing_recoverable([r.figures for r in stats.rows], sums)
    april = next(m for m in everything.months if m.key == "2026-04")
    assert april.figures.received is None
    assert [m.figures.received for m in everything.months if m.key != "2026-04"] == [12] * 5


# --- The stories, on the real stack ------------------------------------------------------------


def refresh_now(stack: Stack) -> None:
    from celery import Celery

    client = Celery("kick", broker=stack.env["REDIS_URL"])
    try:
        client.send_task("confide.refresh_statistics", queue="default")
    finally:
        client.close()


async def refreshed(stack: Stack, db: asyncpg.Connection, expected: int) -> None:
    """Ask the worker for a refresh pass and wait for one that began after now to finish (the
    worker's own pass, not a sleep standing in for one); it counts ``expected`` reports."""
    mark = await db.fetchval("SELECT now()")
    refresh_now(stack)
    deadline = time.monotonic() + 60
    asked = time.monotonic()
    while time.monotonic() < deadline:
        done = await db.fetchval(
            "SELECT changed_after >= $1 FROM statistics_watermark WHERE name = 'facts'", mark
        )
        if done and await db.fetchval("SELECT count(*) FROM statistics_dirty") == 0:
            total = await db.fetchval("SELECT coalesce(sum(received), 0) FROM statistics_monthly")
            assert total == expected
            return
        await asyncio.sleep(0.1)
        if time.monotonic() - asked > 3:  # a beat's pass held the lock: ask again
            refresh_now(stack)
            asked = time.monotonic()
    raise AssertionError("no refresh pass finished")


async def submit(http: aiohttp.ClientSession, category: str, **extra: Any) -> str:
    body = {
        "category": category,
        "description": "A statistics test report",
        "anonymous": True,
        "follow_up": True,
        **extra,
    }
    async with http.post("/api/v1/reports", json=body) as resp:
        assert resp.status == 201, await resp.text()
        reference: str = (await resp.json())["reference"]
        return reference


def signed_in(stack: Stack) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True))


async def bearer(http: aiohttp.ClientSession, account: StaffAccount) -> dict[str, str]:
    async with http.post(
        "/api/v1/staff/session", json={"email": account.email, "password": account.password}
    ) as resp:
        assert resp.status == 200, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}


def parse_count(text: str) -> int | None:
    return None if text.startswith("fewer than 5") else int(text)


def parse_number(text: str) -> float | None:
    return None if text == "not shown" else float(text)


def csv_figures(row: dict[str, str]) -> Figures:
    return Figures(
        received=parse_count(row["received"]),
        anonymous=parse_count(row["anonymous"]),
        with_contact=parse_count(row["with_contact"]),
        follow_up=parse_count(row["follow_up"]),
        open=parse_count(row["open"]),
        closed=parse_count(row["closed"]),
        overdue=parse_count(row["overdue"]),
        replied_within_target=parse_count(row["replied_within_target"]),
        share_within_target=parse_number(row["share_within_target"]),
        median_hours=parse_number(row["median_first_reply_working_hours"]),
        p90_hours=parse_number(row["p90_first_reply_working_hours"]),
    )


def numbers_in_tables(page: str) -> list[int]:
    """Every count in the page's tables and on the chart's bars (not its axis)."""
    cells = re.findall(r"<td>(\d+)</td>", page) + re.findall(r"<dd[^>]*>(\d+)", page)
    bars = re.findall(r"<title>[^<:]+: (\d+)</title>", page)
    return [int(n) for n in cells + bars]


async def test_one_report_in_a_category_shows_fewer_than_5_and_cannot_be_worked_out(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    admin = add_staff(stack, "ada@example.org", "safety", role="admin")
    await submit(http, "safety")  # the one report in its category
    for _ in range(6):
        await submit(http, "staff-conduct")
    for _ in range(5):
        await submit(
            http,
            "discrimination",
            anonymous=False,
            follow_up=False,
            contact={"email": "r@example.net"},
        )
    await refreshed(stack, db, 12)
    async with signed_in(stack) as browser:
        await staff_logs_in(browser, admin.email, admin.password)
        async with browser.get("/staff/statistics") as resp:
            assert resp.status == 200
            page = await resp.text()
            csp = resp.headers["Content-Security-Policy"]
        async with browser.get("/staff/statistics.csv") as resp:
            assert resp.status == 200 and resp.content_type == "text/csv"
            assert resp.headers["Content-Disposition"].startswith("attachment;")
            table = list(csv.DictReader(io.StringIO(await resp.text())))
    # The page: the safety row says "fewer than 5", and the chart is an accessible SVG drawn on
    # the server, which the CSP allows as it is (no script, no inline style).
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    safety_row = re.search(r"<tr><td>\d{4}-\d{2}</td><td>Health and Safety</td>.*?</tr>", page)
    assert safety_row and "fewer than 5" in safety_row.group(0)
    assert re.search(r"<td>1</td>", safety_row.group(0)) is None
    assert (
        '<svg class="chart__svg" role="img" aria-labelledby="chart-months-title chart-months-desc"'
        in page
    )
    assert '<desc id="chart-months-desc">' in page and "<table" in page
    assert (
        " style=" not in page
        and "<script>" not in page
        and "<script " not in page.split("</head>")[1]
    )
    # The CSV: the same suppressed table, one row per cell plus the totals.
    rows = [r for r in table if r["month"] != "total"]
    by_category = {r["category"]: r for r in rows}
    assert set(by_category) == {"safety", "staff-conduct", "discrimination"}
    assert by_category["safety"]["received"] == "fewer than 5*"
    assert by_category["staff-conduct"]["received"] == "6"
    # all five gave contact details: "0 anonymous" would be a small number, so both are withheld
    assert by_category["discrimination"]["received"] == "5"
    assert by_category["discrimination"]["with_contact"] == "fewer than 5*"
    [total] = [r for r in table if r["month"] == "total"]
    assert total["received"] == "fewer than 5*"  # 12 - 6 - 5 would give the one away
    # No number in the page's tables or in the CSV is below 5, and no combination of them
    # recovers one.
    # (0 is the 11 months without any report: no cell stands behind them)
    assert [n for n in numbers_in_tables(page) if n < 5] == [0] * 11 * 5
    shown = [csv_figures(r) for r in rows]
    assert_nothing_recoverable(shown, [(csv_figures(total), shown)])
    # The API says the same, with null for every suppressed count.
    headers = await bearer(http, admin)
    async with http.get("/api/v1/staff/statistics", headers=headers) as resp:
        assert resp.status == 200
        answer = await resp.json()
    assert answer["suppressed_below"] == 5
    api_rows = {r["category"]: r for r in answer["rows"]}
    assert api_rows["safety"]["received"] is None and api_rows["staff-conduct"]["received"] == 6
    assert answer["totals"]["received"] is None
    counts = [
        v
        for r in answer["rows"] + [answer["totals"]]
        for k, v in r.items()
        if k in statistics.COUNTS
    ]
    assert all(v is None or v >= 5 for v in counts)
    assert "network" not in json.dumps(answer) and "onion" not in json.dumps(answer)


async def test_manager_of_team_a_sees_nothing_of_team_b(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    mo = add_staff(stack, "mo@example.org", "hr", role="manager")
    for _ in range(5):
        await submit(http, "staff-conduct")
    for _ in range(7):
        await submit(http, "harassment")  # team wellbeing: not Mo's
    await refreshed(stack, db, 12)
    async with signed_in(stack) as browser:
        await staff_logs_in(browser, mo.email, mo.password)
        page = await form_page(browser, "/staff/statistics")
        async with browser.get("/staff/statistics.csv") as resp:
            text = await resp.text()
    for words in ("Student Wellbeing", "wellbeing", "harassment", "Bullying"):
        assert words not in page.split("<main", 1)[1], words
        assert words not in text, words
    assert "Staff HR" in page and "staff-conduct" in text
    async with http.get("/api/v1/staff/statistics", headers=await bearer(http, mo)) as resp:
        answer = await resp.json()
    assert {r["team"] for r in answer["rows"]} == {"hr"} and answer["totals"]["received"] == 5


async def test_the_detailed_table_shows_one_month_at_a_time_and_the_csv_every_month(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    mo = add_staff(stack, "mo.months@example.org", "hr", role="manager")
    for _ in range(5):
        await submit(http, "staff-conduct")
    await refreshed(stack, db, 5)
    detail = re.compile(r'<h2 class="heading-m" id="detail">.*?</table>', re.S)
    async with signed_in(stack) as browser:
        await staff_logs_in(browser, mo.email, mo.password)
        page = await form_page(browser, "/staff/statistics")
        # By default the range's last month: this month, in the organisation's time zone.
        found = re.search(r'month=(\d{4}-\d{2})#detail" aria-current="page"', page)
        assert found
        this = date.fromisoformat(found.group(1) + "-01")
        this_key = this.isoformat()[:7]
        before_key = (this - timedelta(days=1)).isoformat()[:7]
        shown = detail.search(page)
        assert shown and f"in {this_key}" in shown.group(0) and "Staff HR" in shown.group(0)
        current = f'month={this_key}#detail" aria-current="page"'
        assert current in shown.group(0) and f"month={before_key}#detail" in page
        async with browser.get(f"/staff/statistics?month={before_key}") as resp:
            assert resp.status == 200
            earlier = await resp.text()
        table = detail.search(earlier)
        assert table and "No reports in this month." in table.group(0)
        assert "Staff HR" not in table.group(0) and "Staff HR" in earlier  # the per-team table
        for bad, words in (("2001-01", "A month from"), ("13", "A month as YYYY-MM")):
            async with browser.get(f"/staff/statistics?month={bad}") as resp:
                assert resp.status == 422
                assert words in html.text(await resp.text())
        async with browser.get("/staff/statistics.csv") as resp:
            rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [r["month"] for r in rows] == [this_key, "total"]


async def test_the_drawn_statistics_sit_once_in_a_whole_page_with_names_in_any_script(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    """The statistics are drawn once per refresh and put into each page already encoded
    (webapp.handlers.caseworker.render_spliced): the layout around them is this request's own
    (its sign-out form and token), and a name outside ASCII arrives as it was written."""
    ada = add_staff(stack, "ada@example.org", "safety", role="admin")
    name = "Santé – Sécurité ✓ «Ω»"
    await db.execute("UPDATE teams SET name = $1 WHERE slug = 'safety'", name)
    for _ in range(5):
        await submit(http, "safety")
    await refreshed(stack, db, 5)
    pages = []
    for _ in range(2):  # the second page is drawn from the kept statistics
        async with signed_in(stack) as browser:
            await staff_logs_in(browser, ada.email, ada.password)
            async with browser.get("/staff/statistics") as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
                raw = await resp.read()
                assert int(resp.headers["Content-Length"]) == len(raw)
        pages.append(raw.decode("utf-8"))
    for page in pages:
        assert page.count('<h1 class="heading-l">Statistics</h1>') == 1
        assert page.count("<p>Reports received from ") == 1
        assert page.count('<h2 class="heading-m" id="detail">Per team and category in ') == 1
        assert "<!--" not in page.split("</head>", 1)[1]  # no mark left where the body went
        assert page.rstrip().endswith("</html>")
        assert f"<td>{name}</td>" in page.replace("&#39;", "'")
        logout = [f for f in html.forms(page) if f.action == "/staff/logout"]
        assert len(logout) == 1 and logout[0].fields["csrf_token"]
        # the range form comes before the drawn statistics, the footer after them
        assert page.index('action="/staff/statistics"') < page.index("<p>Reports received")
        assert page.index("Per team and category in ") < page.index("</main>")
    # Each sign-in's page carries its own token around the same statistics.
    tokens = [f.fields["csrf_token"] for p in pages for f in html.forms(p) if "logout" in f.action]
    assert tokens[0] != tokens[1]
    bodies = [p.split("<p>Reports received", 1)[1].split("</main>", 1)[0] for p in pages]
    assert bodies[0] == bodies[1]


async def test_caseworker_cannot_read_statistics_and_bad_months_get_422(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    casey = add_staff(stack, "casey@example.org", "safety")
    ada = add_staff(stack, "ada@example.org", "safety", role="admin")
    async with signed_in(stack) as browser:
        await staff_logs_in(browser, casey.email, casey.password)
        for path in ("/staff/statistics", "/staff/statistics.csv"):
            async with browser.get(path) as resp:
                assert resp.status == 403, path
                assert "Your role cannot open this page" in await resp.text()
    async with http.get("/api/v1/staff/statistics", headers=await bearer(http, casey)) as resp:
        assert resp.status == 403 and resp.content_type == "application/problem+json"
    headers = await bearer(http, ada)
    for query in (
        "from=2026-13",
        "from=26-01",
        "from=2026-05&to=2026-01",
        "from=2000-01&to=2026-01",
        "to=9999-12",
        "from=0000-01",
        "from=2026-1x",
    ):
        async with http.get(f"/api/v1/staff/statistics?{query}", headers=headers) as resp:
            assert resp.status == 422, query
            problem = await resp.json()
            assert problem["errors"][0]["field"] in ("from", "to")
    async with signed_in(stack) as browser:
        await staff_logs_in(browser, ada.email, ada.password)
        async with browser.get("/staff/statistics?from=2026-13") as resp:
            assert resp.status == 422
            page = await resp.text()
        assert 'id="from-error"' in page and 'aria-describedby="from-error"' in page
        assert 'value="2026-13"' in page  # the form keeps what was typed


async def test_statistics_survive_the_erasure_of_their_threads(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    """capture_facts, as the erasure calls it in its transaction: the facts rows lose every
    link to their threads, and the summaries count the same after the threads are gone."""
    from confide.services.workdays import WorkingCalendar

    for _ in range(6):
        await submit(http, "safety")
    # Erasure comes after closure: the threads are closed first.
    await db.execute("UPDATE threads SET status = 'closed', last_activity_at = now()")
    await refreshed(stack, db, 6)
    before = await db.fetch("SELECT * FROM statistics_monthly ORDER BY 1, 2, 3")
    ids = [r["id"] for r in await db.fetch("SELECT id FROM threads")]
    async with db.transaction():
        await statistics.capture_facts(db, ids[1:], calendar=WorkingCalendar())
        await db.execute("DELETE FROM threads WHERE id = ANY($1::uuid[])", ids[1:])
    facts = await db.fetch("SELECT * FROM statistics_facts WHERE thread_id IS NULL")
    assert len(facts) == 5
    assert all(f["activity_at"] is None for f in facts)
    # A thread deleted some other way keeps its facts row; the next refresh forgets its time.
    await db.execute("DELETE FROM threads WHERE id = $1", ids[0])
    # No text and no reference: only these columns, none of them naming the case.
    assert set(facts[0].keys()) == {
        "id",
        "thread_id",
        "activity_at",
        "month",
        "team_id",
        "category_slug",
        "anonymous",
        "follow_up",
        "is_open",
        "overdue",
        "first_reply_hours",
        "within_target",
    }
    await refreshed(stack, db, 6)
    facts = await db.fetch("SELECT * FROM statistics_facts")
    assert len(facts) == 6
    assert all(f["thread_id"] is None and f["activity_at"] is None for f in facts)
    after = await db.fetch("SELECT * FROM statistics_monthly ORDER BY 1, 2, 3")
    assert [dict(r) for r in after] == [dict(r) for r in before]


async def test_facts_the_refresh_missed_are_written_at_erasure_already_detached(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    """A report answered after the last refresh, and one no refresh has seen, are erased: each
    keeps one facts row, written in its final form (the reply counted, the contact kept) and
    already cut loose from the thread, beside a report whose row was current."""
    from confide.services.workdays import WorkingCalendar

    casey = add_staff(stack, "casey@example.org", "safety")
    staff = await bearer(http, casey)
    answered_late = await submit(http, "safety")
    await submit(http, "safety")  # current at erasure
    await refreshed(stack, db, 2)
    async with http.post(
        f"/api/v1/staff/threads/{answered_late}/messages", json={"body": "Thanks"}, headers=staff
    ) as resp:
        assert resp.status == 201
    await submit(
        http, "safety", anonymous=False, follow_up=False, contact={"phone": "+447700900123"}
    )
    await db.execute("UPDATE threads SET status = 'closed'")
    ids = [r["id"] for r in await db.fetch("SELECT id FROM threads")]
    async with db.transaction():
        await statistics.capture_facts(db, ids, calendar=WorkingCalendar())
        await db.execute("DELETE FROM threads WHERE id = ANY($1::uuid[])", ids)
    facts = await db.fetch("SELECT * FROM statistics_facts ORDER BY anonymous, first_reply_hours")
    assert len(facts) == 3  # one row a report: the stale one updated, not added again
    assert all(f["thread_id"] is None and f["activity_at"] is None for f in facts)
    assert not any(f["is_open"] or f["overdue"] for f in facts)
    unseen, replied, current = facts
    assert not unseen["anonymous"] and not unseen["follow_up"]
    assert replied["first_reply_hours"] is not None and replied["within_target"]
    assert current["first_reply_hours"] is None
    assert await db.fetchval("SELECT count(*) FROM statistics_dirty") >= 1
    await refreshed(stack, db, 3)
    row = await db.fetchrow("SELECT * FROM statistics_monthly")
    assert (row["received"], row["anonymous"], row["closed"], row["open"]) == (3, 2, 3, 0)


async def test_a_case_worker_prints_a_case_record_and_it_is_audited(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    casey = add_staff(stack, "casey@example.org", "safety")
    hal = add_staff(stack, "hal@example.org", "hr")
    reference = await submit(http, "safety", description="Loose handrail on stairwell B")
    async with signed_in(stack) as browser:
        await staff_logs_in(browser, casey.email, casey.password)
        page = await form_page(browser, f"/staff/threads/{reference}")
        note = next(f for f in html.forms(page) if f.action.endswith("/note"))
        async with browser.post(note.action, data=note.data(note="Called facilities")) as resp:
            assert resp.status == 200
        assert f'href="/staff/threads/{reference}/print"' in page
        plain = await form_page(browser, f"/staff/threads/{reference}/print")
        with_notes = await form_page(browser, f"/staff/threads/{reference}/print?notes=1")
    assert "Loose handrail on stairwell B" in plain and "Case record" in plain
    assert "Called facilities" not in plain and "Called facilities" in with_notes
    assert "<form" not in plain.split("<main", 1)[1].split("</main>")[0]
    audited = await db.fetch(
        "SELECT action, detail FROM audit_log WHERE action = 'print' ORDER BY id"
    )
    assert [(r["action"], json.loads(r["detail"])) for r in audited] == [
        ("print", {"notes": False}),
        ("print", {"notes": True}),
    ]
    async with signed_in(stack) as browser:  # another team's case worker: not found
        await staff_logs_in(browser, hal.email, hal.password)
        async with browser.get(f"/staff/threads/{reference}/print") as resp:
            assert resp.status == 404
            assert "Loose handrail" not in await resp.text()
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'print'") == 2


@pytest.mark.parametrize("hours", [0.0, 0.1, 15.99, 16.0, 79.5, 399.0, 1000.0])
def test_a_histogram_percentile_lands_in_the_right_bucket(hours: float) -> None:
    histogram = [0] * statistics.BUCKETS
    histogram[statistics.bucket_of(hours)] = 9
    found = statistics.histogram_percentile(histogram, 0.5)
    low, high = statistics._bucket_bounds(statistics.bucket_of(hours))
    assert found is not None and low <= found <= max(high, low)


async def test_first_replies_are_counted_in_working_hours_and_against_the_promise(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    """Five anonymous reports answered by message and five contact-details reports marked
    contacted, at once: all ten within the promise, median and 90th percentile shown."""
    ada = add_staff(stack, "ada@example.org", "safety", role="admin")
    casey = add_staff(stack, "casey@example.org", "safety")
    staff = await bearer(http, casey)
    for _ in range(5):
        reference = await submit(http, "safety")
        async with http.post(
            f"/api/v1/staff/threads/{reference}/messages", json={"body": "Thanks"}, headers=staff
        ) as resp:
            assert resp.status == 201
        reference = await submit(
            http, "safety", anonymous=False, follow_up=False, contact={"phone": "+447700900123"}
        )
        async with http.post(
            f"/api/v1/staff/threads/{reference}/status",
            json={"status": "contacted"},
            headers=staff,
        ) as resp:
            assert resp.status == 200
    await refreshed(stack, db, 10)
    hours = await db.fetch("SELECT first_reply_hours, within_target FROM statistics_facts")
    assert len(hours) == 10 and all(h["within_target"] for h in hours)
    assert all(h["first_reply_hours"] is not None and h["first_reply_hours"] < 1 for h in hours)
    async with http.get("/api/v1/staff/statistics", headers=await bearer(http, ada)) as resp:
        [row] = (await resp.json())["rows"]
    assert row["received"] == 10 and row["anonymous"] == 5 and row["with_contact"] == 5
    assert row["follow_up"] == 5 and row["replied_within_target"] == 10
    assert row["share_within_target"] == 1.0
    assert row["median_first_reply_working_hours"] is not None
    assert row["median_first_reply_working_hours"] < 1
    assert row["open"] is None and row["closed"] is None  # ten open, none closed: withheld
