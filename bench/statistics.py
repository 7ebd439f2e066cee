"""The statistics page (``GET /staff/statistics``) over the facts of 1,000,000 threads.

The bench creates 50 teams (one category each) and loads 1,000,000 ``statistics_facts`` rows in
one ``INSERT … SELECT … generate_series`` (one row per thread, as the refresh pass and the
erasure leave them: received over the last 24 months, two thirds anonymous, half of those with
follow-up, a fifth open, first replies for nine in ten threads with a promise). It marks every
(month, team, category) group dirty and runs the refresh's own recount
(``confide.services.statistics.recount_dirty``) to write the monthly summaries, which is all the
page reads: nothing is counted at request time. A manager of one team and an admin (all 50
teams: 600 rows for the default 12 months, of which the page's detailed table shows the last
month's 50 and the CSV all) log in through the API; wrk fetches the page.

Baseline: benchmark 1's bare form handler (:mod:`bench.bare_server`, ``POST /report/submit``: an
INSERT and a small jinja2 page) in the same run, 1 process each, wrk -c64, alternating.
Target: the page's p99 at most 1.5 × the bare form's, for the manager and for the admin.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from bench import bare_server
from bench.common import Context, Result, Target, say
from bench.fixtures import (
    Team,
    Web,
    connect,
    create_teams,
    drop_bench_rows,
    staff_pages_against_bare,
    start_bare,
    start_web,
)
from bench.inbox import BARE_BODY, _add_staff, _log_in

NAME = "statistics"
TITLE = "Statistics page over the facts of 1,000,000 threads: manager (1 team) and admin (50)"
TEAMS = 50
THREADS = 1_000_000
CONNECTIONS = 64
PAGE = "/staff/statistics"
MANAGER = "bench-stats-manager@example.org"
ADMIN = "bench-stats-admin@example.org"
P99_TARGET = Target("<=", 1.5)
WRK_TIMEOUT_S = 30
STATISTICS_TABLES = "statistics_facts, statistics_monthly, statistics_dirty, statistics_watermark"

LOAD_FACTS = """
INSERT INTO statistics_facts (month, team_id, category_slug, anonymous, follow_up, is_open,
                              overdue, first_reply_hours, within_target)
SELECT month, team_id, category, anonymous, follow_up, is_open, is_open AND r3 < 0.1, hours,
       coalesce(hours <= 16, false)
FROM (
    SELECT date_trunc('month', now() - r1 * interval '730 days')::date AS month,
           ($2::int[])[k] AS team_id, ($3::text[])[k] AS category, anonymous,
           anonymous AND g % 2 = 0 AS follow_up, r2 < 0.2 AS is_open, r3,
           CASE WHEN (NOT anonymous OR g % 2 = 0) AND r3 < 0.9 THEN r2 * 40 END AS hours
    FROM (
        SELECT g, 1 + g % $4 AS k, g % 3 <> 0 AS anonymous,
               random() AS r1, random() AS r2, random() AS r3
        FROM generate_series(1, $1) g
    ) a
) b
"""
MARK_ALL_DIRTY = """INSERT INTO statistics_dirty (month, team_id, category_slug)
                    SELECT DISTINCT month, team_id, category_slug FROM statistics_facts
                    ON CONFLICT DO NOTHING"""


def run(ctx: Context) -> list[Result]:
    ctx.execute(bare_server.CREATE_TABLE)
    try:
        return _run(ctx)
    finally:
        ctx.execute(f"TRUNCATE {STATISTICS_TABLES}")
        drop_bench_rows(ctx)
        ctx.execute(f"DROP TABLE IF EXISTS {bare_server.TABLE}")


def _run(ctx: Context) -> list[Result]:
    confide = start_web(ctx, "statistics-web")
    bare = start_bare(ctx, "statistics-bare")
    try:
        teams = asyncio.run(_load(ctx))
        password = "bench-" + "x" * 18
        _add_staff(confide, MANAGER, "Bench Manager", teams[0], "manager", password)
        _add_staff(confide, ADMIN, "Bench Admin", teams[0], "admin", password)
        cookies = {
            who: "staff=" + asyncio.run(_log_in(confide, email, password))
            for who, email in (("manager", MANAGER), ("admin", ADMIN))
        }
        for who, cookie in cookies.items():
            rows = asyncio.run(_check_page(confide, cookie))
            say(f"  sample statistics page for the {who}: 200, {rows} table rows")
        runs = staff_pages_against_bare(
            ctx,
            "statistics",
            confide,
            bare,
            PAGE,
            cookies,
            bare_body=BARE_BODY,
            connections=CONNECTIONS,
            timeout_s=WRK_TIMEOUT_S,
        )
    finally:
        ctx.processes.stop(confide.procs + bare.procs)

    bare_runs, manager_runs, admin_runs = runs["bare"], runs["manager"], runs["admin"]
    name = "statistics, 1 process:"
    return [
        Result(
            f"{name} p99 manager ÷ bare form",
            tuple(
                m.wrk.p99_ms / b.wrk.p99_ms for m, b in zip(manager_runs, bare_runs, strict=True)
            ),
            target=P99_TARGET,
        ),
        Result(
            f"{name} p99 admin (50 teams, 600 rows, 50 a month) ÷ bare form",
            tuple(a.wrk.p99_ms / b.wrk.p99_ms for a, b in zip(admin_runs, bare_runs, strict=True)),
            target=P99_TARGET,
        ),
        Result(f"{name} manager req/s", tuple(r.wrk.rps for r in manager_runs), digits=0),
        Result(f"{name} admin req/s", tuple(r.wrk.rps for r in admin_runs), digits=0),
        Result(f"{name} bare form req/s", tuple(r.wrk.rps for r in bare_runs), digits=0),
        Result(f"{name} manager p99", tuple(r.wrk.p99_ms for r in manager_runs), "ms", digits=1),
        Result(f"{name} admin p99", tuple(r.wrk.p99_ms for r in admin_runs), "ms", digits=1),
        Result(f"{name} bare form p99", tuple(r.wrk.p99_ms for r in bare_runs), "ms", digits=1),
        Result(
            f"{name} web CPU ms per page: manager",
            tuple(r.cpu_ms_per_request for r in manager_runs),
            "ms",
        ),
        Result(
            f"{name} web CPU ms per page: admin",
            tuple(r.cpu_ms_per_request for r in admin_runs),
            "ms",
        ),
    ]


async def _load(ctx: Context) -> list[Team]:
    from confide.services import statistics

    async with connect(ctx) as conn:
        await conn.execute(f"TRUNCATE {STATISTICS_TABLES}")
        teams = await create_teams(conn, TEAMS)
        started = time.monotonic()
        await conn.execute(
            LOAD_FACTS, THREADS, [t.id for t in teams], [t.category for t in teams], len(teams)
        )
        loaded = time.monotonic()
        await conn.execute(MARK_ALL_DIRTY)
        async with conn.transaction():
            groups = await statistics.recount_dirty(conn)
        await conn.execute("VACUUM ANALYZE statistics_facts, statistics_monthly")
        counted = await conn.fetchval("SELECT sum(received) FROM statistics_monthly")
    say(
        f"  {counted:,} threads' facts in {groups:,} monthly cells: loaded in "
        f"{loaded - started:.1f} s, summarised in {time.monotonic() - loaded:.1f} s"
    )
    return teams


async def _check_page(web: Web, cookie: str) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.get(web.url(PAGE), headers={"Cookie": cookie}, allow_redirects=False) as response,
    ):
        page = await response.text()
        if response.status != 200 or "Per team and category in " not in page:
            raise RuntimeError(f"the statistics page answered {response.status}")
        return page.count("<tr><td>")
