"""The staff inbox page (``GET /staff?state=awaiting``) with 100,000 threads across 50 teams.

The bench creates 50 teams (one category each) and bulk-loads 100k ``threads`` rows in SQL: 2,000
per team, received over the last year, about 43 % awaiting a reply (the reporter wrote last),
10 % closed, 14 % anonymous without follow-up; deadlines and escalation as the app would set
them. A case worker of one team (``confide staff add``) logs in through the API and wrk fetches
the inbox page with the session cookie. Then the same for a manager who belongs to all 50 teams.

Baseline: benchmark 1's bare form handler (:mod:`bench.bare_server`, ``POST /report/submit``: an
INSERT and a small jinja2 page) in the same run, 1 process each, wrk -c64, alternating.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime
from urllib.parse import urlencode

import aiohttp

from bench import bare_server
from bench.common import Context, Result, Target, say
from bench.fixtures import (
    LOAD_CLOCKS,
    Team,
    Web,
    connect,
    create_teams,
    drop_bench_rows,
    staff_pages_against_bare,
    start_bare,
    start_web,
)

NAME = "inbox"
TITLE = "Staff inbox page, 100,000 threads across 50 teams: case worker and manager"
TEAMS = 50
THREADS = 100_000
CONNECTIONS = 64
INBOX = "/staff?state=awaiting"
CASEWORKER = "bench@example.org"
MANAGER = "bench-manager@example.org"
P99_TARGET = Target("<=", 1.5)
# The manager's page is slow enough that 64 connections wait longer than wrk's default 2 s;
# requests wrk gives up on would drop out of its latency figures.
WRK_TIMEOUT_S = 30
BARE_BODY = urlencode({"category": "safety", "description": "Benchmark report, bare baseline."})

LOAD_THREADS = """
INSERT INTO threads (id, reference, category_slug, team_id, anonymous, follow_up, status,
                     received_at, description, last_reporter_message_at,
                     last_caseworker_message_at, last_activity_at, awaiting_since, reply_due_at)
SELECT gen_random_uuid(), 'R-' || lpad(g::text, 8, '0'), ($2::text[])[k], ($3::int[])[k],
       true, follow_up, CASE WHEN g % 10 = 0 THEN 'closed' ELSE 'open' END,
       received, '\\x00'::bytea, last_rep, last_cw,
       greatest(received, last_rep, last_cw),
       CASE WHEN awaiting THEN last_rep END,
       CASE WHEN awaiting THEN last_rep + interval '2 days' END
FROM (
    SELECT g, k, follow_up, awaiting, received, last_rep,
           CASE WHEN follow_up AND NOT awaiting THEN last_rep + (now() - last_rep) * r3
                WHEN awaiting AND r3 < 0.5 THEN received + (last_rep - received) * r3
           END AS last_cw
    FROM (
        SELECT g, k, follow_up, awaiting, r3,
               CASE WHEN awaiting THEN now() - r1 * interval '20 days' - r2 * interval '300 days'
                    ELSE now() - r1 * interval '365 days' END AS received,
               CASE WHEN NOT follow_up THEN NULL
                    WHEN awaiting THEN now() - r1 * interval '20 days'
                    ELSE now() - r1 * interval '365 days' * (1 - 0.5 * r2) END AS last_rep
        FROM (
            SELECT g, 1 + (g / 2) % $4 AS k, g % 7 <> 0 AS follow_up,
                   g % 2 = 1 AND g % 7 <> 0 AS awaiting,
                   random() AS r1, random() AS r2, random() AS r3
            FROM generate_series(1, $1) g
        ) a
    ) b
) c
"""


def run(ctx: Context) -> list[Result]:
    ctx.execute(bare_server.CREATE_TABLE)
    try:
        return _run(ctx)
    finally:
        drop_bench_rows(ctx)
        ctx.execute(f"DROP TABLE IF EXISTS {bare_server.TABLE}")


def _run(ctx: Context) -> list[Result]:
    confide = start_web(ctx, "inbox-web")
    bare = start_bare(ctx, "inbox-bare")
    try:
        teams = asyncio.run(_load(ctx))
        password = "bench-" + "x" * 18
        _add_staff(confide, CASEWORKER, "Bench", teams[0], "caseworker", password)
        _add_staff(confide, MANAGER, "Bench Manager", teams[0], "manager", password)
        asyncio.run(_join_all_teams(ctx, MANAGER))
        cookies = {
            who: "staff=" + asyncio.run(_log_in(confide, email, password))
            for who, email in (("caseworker", CASEWORKER), ("manager", MANAGER))
        }
        for who, cookie in cookies.items():
            listed = asyncio.run(_check_page(confide, cookie))
            say(f"  sample inbox page for the {who}: 200, 'Team inbox', {listed} threads listed")
        runs = staff_pages_against_bare(
            ctx,
            "inbox",
            confide,
            bare,
            INBOX,
            cookies,
            bare_body=BARE_BODY,
            connections=CONNECTIONS,
            timeout_s=WRK_TIMEOUT_S,
        )
    finally:
        ctx.processes.stop(confide.procs + bare.procs)

    bare_runs, worker_runs, manager_runs = runs["bare"], runs["caseworker"], runs["manager"]
    name = "inbox, 1 process:"
    return [
        Result(
            f"{name} p99 case worker ÷ bare form",
            tuple(c.wrk.p99_ms / b.wrk.p99_ms for c, b in zip(worker_runs, bare_runs, strict=True)),
            target=P99_TARGET,
        ),
        Result(
            f"{name} p99 manager (50 teams) ÷ bare form",
            tuple(
                m.wrk.p99_ms / b.wrk.p99_ms for m, b in zip(manager_runs, bare_runs, strict=True)
            ),
        ),
        Result(f"{name} case worker req/s", tuple(r.wrk.rps for r in worker_runs), digits=0),
        Result(f"{name} manager req/s", tuple(r.wrk.rps for r in manager_runs), digits=0),
        Result(f"{name} bare form req/s", tuple(r.wrk.rps for r in bare_runs), digits=0),
        Result(f"{name} case worker p50", tuple(r.wrk.p50_ms for r in worker_runs), "ms", digits=0),
        Result(f"{name} case worker p99", tuple(r.wrk.p99_ms for r in worker_runs), "ms", digits=0),
        Result(f"{name} manager p50", tuple(r.wrk.p50_ms for r in manager_runs), "ms", digits=0),
        Result(f"{name} manager p99", tuple(r.wrk.p99_ms for r in manager_runs), "ms", digits=0),
        Result(f"{name} bare form p50", tuple(r.wrk.p50_ms for r in bare_runs), "ms", digits=1),
        Result(f"{name} bare form p99", tuple(r.wrk.p99_ms for r in bare_runs), "ms", digits=1),
        Result(
            f"{name} web CPU ms per page: case worker",
            tuple(r.cpu_ms_per_request for r in worker_runs),
            "ms",
        ),
        Result(
            f"{name} web CPU ms per page: manager",
            tuple(r.cpu_ms_per_request for r in manager_runs),
            "ms",
        ),
        Result(
            f"{name} CPU used by other processes",
            tuple(r.other_cpus for rs in runs.values() for r in rs),
            "CPUs",
        ),
    ]


async def _load(ctx: Context) -> list[Team]:
    async with connect(ctx) as conn:
        teams = await create_teams(conn, TEAMS)
        await conn.execute(
            LOAD_THREADS,
            THREADS,
            [t.category for t in teams],
            [t.id for t in teams],
            len(teams),
        )
        await conn.execute(LOAD_CLOCKS, datetime.now(UTC))
        await conn.execute("VACUUM ANALYZE threads, thread_clocks")
        counts = await conn.fetchrow(
            """SELECT count(*) AS total,
                      count(*) FILTER (WHERE status = 'open' AND follow_up
                                       AND last_reporter_message_at > coalesce(
                                           last_caseworker_message_at, '-infinity')) AS awaiting
               FROM threads"""
        )
    say(
        f"  {counts['total']:,} threads in {len(teams)} teams, {counts['awaiting']:,} awaiting a "
        "reply"
    )
    return teams


def _add_staff(web: Web, email: str, name: str, team: Team, role: str, password: str) -> None:
    """``confide staff add``, the password on stdin, with the web process's environment."""
    argv = [sys.executable, "-m", "confide.cli", "staff", "add", "--email", email]
    argv += ["--name", name, "--team", team.slug, "--role", role]
    done = subprocess.run(
        argv, input=password + "\n", env=web.env, capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"confide staff add failed: {done.stderr.strip() or done.stdout}")


async def _join_all_teams(ctx: Context, email: str) -> None:
    async with connect(ctx) as conn:
        await conn.execute(
            """INSERT INTO staff_teams (staff_id, team_id)
               SELECT s.id, t.id FROM staff s, teams t
               WHERE lower(s.email) = $1 AND t.slug LIKE 'bench-team-%'
               ON CONFLICT DO NOTHING""",
            email,
        )


async def _log_in(web: Web, email: str, password: str) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            web.url("/api/v1/staff/session"), json={"email": email, "password": password}
        ) as response,
    ):
        body = await response.json(content_type=None)
        if response.status != 200 or not body.get("token"):
            raise RuntimeError(f"staff login answered {response.status}: {body}")
        return str(body["token"])


async def _check_page(web: Web, cookie: str) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.get(web.url(INBOX), headers={"Cookie": cookie}, allow_redirects=False) as response,
    ):
        page = await response.text()
        if response.status != 200 or "Team inbox" not in page:
            raise RuntimeError(f"the inbox answered {response.status}, without 'Team inbox'")
        return page.count('href="/staff/threads/R-')
