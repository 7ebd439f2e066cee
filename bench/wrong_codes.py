"""Wrong-code rejections per second: well-formed codes whose lookup id is unknown.

Confide answers them 401 after one indexed SELECT on ``reporter_codes.lookup_hmac`` and no argon2
work (CONTRACTS §2). The bench fills ``reporter_codes`` with real-looking rows first, so the index
is not empty, and sends random codes (16 characters of the code alphabet) that match none of them.

Baseline: ``POST /api/v1/reporter/session`` of :mod:`bench.bare_server`: JSON body, an HMAC of the
first 6 characters, ONE indexed SELECT on the same table, a small JSON 401. One process each, wrk
-c64, alternating (ABBA). Every response is counted by status: the figure is real only when all
of them are 401s.
"""

from __future__ import annotations

import asyncio
import json
import secrets

import aiohttp

from bench.common import Context, Result, Target, say
from bench.fixtures import (
    LOGIN_LIMITS_RAISED,
    ServerRun,
    Web,
    connect,
    drop_bench_rows,
    start_bare,
    start_web,
    timed_wrk,
)

NAME = "wrong_codes"
TITLE = "Wrong-code rejections: well-formed unknown codes → 401 with no argon2 work"
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # confide.codes.ALPHABET
PATH = "/api/v1/reporter/session"
CONNECTIONS = 64
KNOWN_CODES = 10_000  # rows in reporter_codes, so the lookup index is realistic
BODIES = 20_000
RATIO_TARGET = Target(">=", 0.50)


def run(ctx: Context) -> list[Result]:
    try:
        return _run(ctx)
    finally:
        drop_bench_rows(ctx)


def _run(ctx: Context) -> list[Result]:
    confide = start_web(ctx, "wrong-codes-web", **LOGIN_LIMITS_RAISED)
    bare = start_bare(ctx, "wrong-codes-bare")
    try:
        asyncio.run(_seed_codes(ctx, KNOWN_CODES))
        bodies = ctx.path("wrong-codes.txt")
        bodies.write_text(
            "".join(json.dumps({"code": _random_code()}) + "\n" for _ in range(BODIES))
        )
        asyncio.run(_check_sample(confide, bare))
        say(
            f"  {KNOWN_CODES:,} codes in reporter_codes; {BODIES:,} random wrong codes; "
            f"1 process each, wrk -t1 -c{CONNECTIONS}, {ctx.secs:g} s × {ctx.runs} runs each"
        )
        for server in (bare, confide):
            timed_wrk(
                ctx, server, PATH, ctx.warmup, connections=CONNECTIONS, method="POST", bodies=bodies
            )
        runs: dict[str, list[ServerRun]] = {"bare": [], "confide": []}
        for i in range(ctx.runs):
            order = ("bare", "confide") if i % 2 == 0 else ("confide", "bare")
            for which in order:
                server = bare if which == "bare" else confide
                result = timed_wrk(
                    ctx,
                    server,
                    PATH,
                    ctx.secs,
                    connections=CONNECTIONS,
                    method="POST",
                    bodies=bodies,
                )
                runs[which].append(result)
                note = "" if result.statuses.only(401) else "  WARNING: not all 401"
                say(f"    run {i + 1} {which:<8} {result.describe()}{note}")
    finally:
        ctx.processes.stop(confide.procs + bare.procs)

    pairs = list(zip(runs["confide"], runs["bare"], strict=True))
    counts = [r.statuses.counts for r in runs["confide"] + runs["bare"]]
    share_401 = sum(c.get(401, 0) for c in counts) / max(1, sum(sum(c.values()) for c in counts))
    say(f"  share of all responses that were 401: {share_401:.4f}")
    name = "wrong codes, 1 process:"
    return [
        Result(
            f"{name} rejections/s Confide ÷ bare",
            tuple(c.wrk.rps / b.wrk.rps for c, b in pairs),
            target=RATIO_TARGET,
        ),
        Result(f"{name} Confide rejections/s", tuple(r.wrk.rps for r in runs["confide"]), digits=0),
        Result(f"{name} bare rejections/s", tuple(r.wrk.rps for r in runs["bare"]), digits=0),
        Result(
            f"{name} Confide p99 latency",
            tuple(r.wrk.p99_ms for r in runs["confide"]),
            "ms",
            digits=1,
        ),
        Result(
            f"{name} bare p99 latency", tuple(r.wrk.p99_ms for r in runs["bare"]), "ms", digits=1
        ),
        Result(
            f"{name} CPU ms/req Confide ÷ bare",
            tuple(c.cpu_ms_per_request / b.cpu_ms_per_request for c, b in pairs),
        ),
        Result(
            f"{name} Confide web CPU per request",
            tuple(r.cpu_ms_per_request for r in runs["confide"]),
            "ms",
        ),
        Result(f"{name} share of responses that were 401", (share_401,), digits=4),
        Result(
            f"{name} CPU used by other processes",
            tuple(r.other_cpus for r in runs["confide"] + runs["bare"]),
            "CPUs",
        ),
    ]


def _random_code() -> str:
    code = "".join(secrets.choice(ALPHABET) for _ in range(16))
    return "-".join(code[i : i + 4] for i in range(0, 16, 4))


async def _seed_codes(ctx: Context, count: int) -> None:
    """``count`` threads in the demo ``safety`` category, each with a code row (random lookup
    HMAC, a placeholder verifier): what a busy service's table holds."""
    async with connect(ctx) as conn:
        await conn.execute(
            """WITH t AS (
                   INSERT INTO threads (id, reference, category_slug, team_id, anonymous,
                                        follow_up, description)
                   SELECT gen_random_uuid(), 'R-' || lpad(g::text, 8, '0'), c.slug, c.team_id,
                          true, true, '\\x00'::bytea
                   FROM generate_series(1, $1) g, categories c WHERE c.slug = 'safety'
                   RETURNING id)
               INSERT INTO reporter_codes (thread_id, lookup_hmac, issue_id, verifier)
               SELECT id, sha256(id::text::bytea), gen_random_uuid(), 'bench' FROM t""",
            count,
        )
        await conn.execute("ANALYZE threads, reporter_codes")


async def _check_sample(confide: Web, bare: Web) -> None:
    """Before timing: a wrong code gets 401 from both, and a malformed one 422 from Confide."""
    async with aiohttp.ClientSession() as session:
        for server in (confide, bare):
            async with session.post(server.url(PATH), json={"code": _random_code()}) as response:
                if response.status != 401:
                    raise RuntimeError(f"a wrong code answered {response.status}, not 401")
        async with session.post(confide.url(PATH), json={"code": "too short"}) as response:
            if response.status != 422:
                raise RuntimeError(f"a malformed code answered {response.status}, not 422")
