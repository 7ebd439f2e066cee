"""Code logins per second with 2 argon2 hashing worker processes (production argon2 parameters).

One Confide web process and one Celery worker on the ``hashing`` queue with 2 pool processes.
The bench creates reports with codes through the API (each code's verifier is hashed on the
worker), then wrk sends ``POST /api/v1/reporter/session`` cycling those real codes. Each login
costs one argon2id verification on the worker, sent by the web through Redis and awaited.

Baseline: raw argon2-cffi ``PasswordHasher.verify`` in 2 processes (:mod:`bench.argon2_bare`),
flat out, with the same parameters. Confide and the baseline alternate (ABBA). Then a constant-rate
client sends logins at half the measured rate and reports the latency of each request from the
moment it was due (so a stall is not hidden by the client waiting: no coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench import staff_totp
from bench.common import (
    Context,
    OtherLoad,
    Result,
    Target,
    WrkResult,
    process_cpu_s,
    say,
)
from bench.fixtures import (
    LOGIN_LIMITS_RAISED,
    Statuses,
    Web,
    drop_bench_rows,
    group_cpu_s,
    log_count,
    median,
    percentile,
    read_child_json,
    start_hashing_worker,
    start_web,
    wrk_statuses,
)

NAME = "logins"
TITLE = "Code logins: POST /api/v1/reporter/session, argon2id on 2 hashing worker processes"
CODES = 100
WORKER_PROCESSES = 2
# Enough requests in flight to keep both workers busy, few enough that none waits near the web's
# 3 s hashing timeout (after which it would hash locally instead).
CONNECTIONS = 16
RATIO_TARGET = Target(">=", 0.70)
REPORT = {"category": "safety", "description": "x", "anonymous": True, "follow_up": True}
FALLBACK = "hashing_fallback"


@dataclass
class ConfideRun:
    wrk: WrkResult
    statuses: Statuses
    ok_per_s: float
    web_cpu_ms: float  # per successful login
    worker_cpu_ms: float  # the worker's pool processes (argon2 and the task), per successful login
    worker_main_cpu_ms: float  # the worker's main process (Celery's consumer), per login
    fallbacks: int  # logins the web hashed itself because no worker answered in time
    other_cpus: float


@dataclass
class BareRun:
    per_s: float
    p50_ms: float
    cpu_ms: float  # CPU time per verification
    other_cpus: float


def run(ctx: Context) -> list[Result]:
    try:
        return _run(ctx)
    finally:
        drop_bench_rows(ctx)


def _run(ctx: Context) -> list[Result]:
    web = start_web(ctx, "logins-web", **LOGIN_LIMITS_RAISED, **staff_totp.STAFF_LIMITS_RAISED)
    worker = None
    try:
        worker = start_hashing_worker(ctx, web.env, WORKER_PROCESSES)
        started = time.monotonic()
        codes = asyncio.run(_create_codes(web, CODES))
        say(f"  {len(codes)} reports with codes created in {time.monotonic() - started:.1f} s")
        bodies = ctx.path("login-bodies.txt")
        bodies.write_text("".join(json.dumps({"code": c}) + "\n" for c in codes))
        asyncio.run(_check_sample(web, codes[0]))
        say(
            f"  1 web process + Celery worker -c{WORKER_PROCESSES}; wrk -t1 -c{CONNECTIONS}, "
            f"{ctx.secs:g} s × {ctx.runs} runs each; bare: {WORKER_PROCESSES} processes verifying"
        )
        wrk_statuses(
            web.url("/api/v1/reporter/session"),
            ctx.warmup,
            connections=CONNECTIONS,
            method="POST",
            bodies=bodies,
        )
        confide_runs: list[ConfideRun] = []
        bare_runs: list[BareRun] = []
        for i in range(ctx.runs):
            order = ("bare", "confide") if i % 2 == 0 else ("confide", "bare")
            for which in order:
                if which == "bare":
                    bare = _bare_run(ctx, f"r{i + 1}")
                    bare_runs.append(bare)
                    say(
                        f"    run {i + 1} bare     {bare.per_s:6.1f} verifies/s  p50 "
                        f"{bare.p50_ms:.1f} ms per verify  CPU ms/verify {bare.cpu_ms:.1f}  "
                        f"other load {bare.other_cpus:.2f} CPUs"
                    )
                else:
                    confide = _confide_run(ctx, web, worker, bodies)
                    confide_runs.append(confide)
                    say(f"    run {i + 1} confide  {_describe(confide)}")
        half = median([r.ok_per_s for r in confide_runs]) / 2
        duration = max(10.0, 2 * ctx.secs)
        say(f"  constant rate {half:.1f} logins/s for {duration:g} s (half the measured rate)")
        latencies, statuses, achieved = asyncio.run(
            _constant_rate(web.url("/api/v1/reporter/session"), codes, half, duration)
        )
        say(
            f"    {len(latencies)} logins at {achieved:.1f}/s: p50 {percentile(latencies, 50):.0f} "
            f"ms, p99 {percentile(latencies, 99):.0f} ms, max {max(latencies):.0f} ms; "
            f"statuses {dict(sorted(statuses.items()))}"
        )
        if set(statuses) != {200}:
            say("    WARNING: not every constant-rate login answered 200")
        say("  staff sign-ins: password (argon2id in the web's local executor) + TOTP code")
        staff, flood, genuine = staff_totp.run(ctx, web, CONNECTIONS)
    finally:
        ctx.processes.stop(web.procs + ([worker] if worker is not None else []))

    pairs = list(zip(confide_runs, bare_runs, strict=True))
    name = "logins, 2 hashing processes:"
    bare_median = median([r.per_s for r in bare_runs])
    return [
        Result(
            "staff sign-ins, password + TOTP: sign-ins/s ÷ bare argon2 verifies/s",
            (staff.ok_per_s / bare_median,),
            target=RATIO_TARGET,
        ),
        Result("staff sign-ins, password + TOTP: sign-ins/s", (staff.ok_per_s,), "/s", digits=1),
        Result(
            "staff sign-ins: wrong-code flood answered 429 after 5, another account signed in",
            (float(flood[5:] == [429] * 5 and genuine == 200),),
            target=Target(">=", 1.0),
        ),
        Result(
            f"{name} logins/s Confide ÷ bare verifies/s",
            tuple(c.ok_per_s / b.per_s for c, b in pairs),
            target=RATIO_TARGET,
        ),
        Result(f"{name} Confide logins/s", tuple(r.ok_per_s for r in confide_runs), "/s", digits=1),
        Result(f"{name} bare verifies/s", tuple(r.per_s for r in bare_runs), "/s", digits=1),
        Result(
            f"{name} bare ms per verify (p50)", tuple(r.p50_ms for r in bare_runs), "ms", digits=1
        ),
        Result(
            f"{name} bare CPU ms per verify", tuple(r.cpu_ms for r in bare_runs), "ms", digits=1
        ),
        Result(
            f"{name} worker pool CPU ms per login",
            tuple(r.worker_cpu_ms for r in confide_runs),
            "ms",
            digits=1,
        ),
        Result(
            f"{name} worker main process CPU ms per login",
            tuple(r.worker_main_cpu_ms for r in confide_runs),
            "ms",
            digits=1,
        ),
        Result(
            f"{name} web CPU ms per login",
            tuple(r.web_cpu_ms for r in confide_runs),
            "ms",
            digits=2,
        ),
        Result(f"{name} logins at half rate", (achieved,), "/s", digits=1),
        Result(f"{name} p50 latency at half rate", (percentile(latencies, 50),), "ms", digits=0),
        Result(f"{name} p99 latency at half rate", (percentile(latencies, 99),), "ms", digits=0),
        Result(
            f"{name} CPU used by other processes",
            (*(r.other_cpus for r in confide_runs), *(r.other_cpus for r in bare_runs)),
            "CPUs",
        ),
    ]


# --- Setup -------------------------------------------------------------------------------------


async def _create_codes(web: Web, count: int, concurrency: int = 4) -> list[str]:
    """``count`` anonymous follow-up reports through the API; their codes, as displayed."""
    codes: list[str] = []
    failures: list[str] = []
    limit = asyncio.Semaphore(concurrency)

    async def one(session: aiohttp.ClientSession) -> None:
        async with limit, session.post(web.url("/api/v1/reports"), json=REPORT) as response:
            body = await response.text()
            if response.status == 201:
                codes.append(json.loads(body)["code"])
            else:
                failures.append(f"{response.status} {body[:200]}")

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(one(session) for _ in range(count)))
    if failures or len(codes) != count:
        raise RuntimeError(f"creating reports failed ({len(failures)} of {count}): {failures[:3]}")
    return codes


async def _check_sample(web: Web, code: str) -> None:
    """A real code logs in (200 and a token); a well-formed wrong one is refused (401)."""
    url = web.url("/api/v1/reporter/session")
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"code": code}) as response:
            body = await response.json(content_type=None)
            if response.status != 200 or not body.get("token"):
                raise RuntimeError(f"a real code answered {response.status}: {body}")
        async with session.post(url, json={"code": "0000-0000-0000-0000"}) as response:
            if response.status != 401:
                raise RuntimeError(f"a wrong code answered {response.status}, not 401")


# --- Runs --------------------------------------------------------------------------------------


def _confide_run(
    ctx: Context, web: Web, worker: subprocess.Popen[bytes], bodies: Path
) -> ConfideRun:
    fallbacks = log_count(web.procs[0], FALLBACK)
    web_cpu, worker_cpu, other = process_cpu_s(web.procs[0].pid), group_cpu_s([worker]), OtherLoad()
    result, statuses = wrk_statuses(
        web.url("/api/v1/reporter/session"),
        ctx.secs,
        connections=CONNECTIONS,
        method="POST",
        bodies=bodies,
    )
    other_cpus = other.cpus()
    web_cpu = process_cpu_s(web.procs[0].pid) - web_cpu
    used = {pid: cpu - worker_cpu.get(pid, 0.0) for pid, cpu in group_cpu_s([worker]).items()}
    main_cpu = used.pop(worker.pid, 0.0)
    ok = statuses.counts.get(200, 0)
    runtime = result.requests / result.rps if result.rps else ctx.secs
    return ConfideRun(
        result,
        statuses,
        ok / runtime,
        1000 * web_cpu / max(1, ok),
        1000 * sum(used.values()) / max(1, ok),
        1000 * main_cpu / max(1, ok),
        log_count(web.procs[0], FALLBACK) - fallbacks,
        other_cpus,
    )


def _bare_run(ctx: Context, label: str) -> BareRun:
    start_at = time.time() + 1.5  # after both children have imported argon2 and hashed once
    argv = [sys.executable, "-m", "bench.argon2_bare", "--secs", str(ctx.secs)]
    argv += ["--start-at", str(start_at)]
    procs = [
        ctx.processes.start(f"argon2-bare-{label}-{n}", argv, ctx.base_env())
        for n in range(WORKER_PROCESSES)
    ]
    try:
        time.sleep(max(0.0, start_at - time.time()))
        other = OtherLoad()
        results = [read_child_json(p, ctx.secs + 60) for p in procs]
        other_cpus = other.cpus()
    finally:
        ctx.processes.stop(procs)
    return BareRun(
        sum(r["verifies"] / r["secs"] for r in results),
        median([r["p50_ms"] for r in results]),
        median([r["cpu_ms"] for r in results]),
        other_cpus,
    )


def _describe(run: ConfideRun) -> str:
    text = (
        f"{run.ok_per_s:6.1f} logins/s  p50 {run.wrk.p50_ms:.0f} ms  p99 {run.wrk.p99_ms:.0f} ms  "
        f"statuses {run.statuses}  CPU ms/login: worker pool {run.worker_cpu_ms:.1f}, "
        f"worker main {run.worker_main_cpu_ms:.1f}, web {run.web_cpu_ms:.1f}  "
        f"other load {run.other_cpus:.2f} CPUs"
    )
    if run.fallbacks:
        text += f"  WARNING: {run.fallbacks} logins hashed in the web process (worker timeout)"
    if not run.statuses.only(200):
        text += "  WARNING: not every login answered 200"
    if run.other_cpus > 0.2:
        text += "  (busy machine: treat this run with care)"
    return text


# --- Constant-rate client ----------------------------------------------------------------------


async def _constant_rate(
    url: str, codes: list[str], rate: float, secs: float
) -> tuple[list[float], Counter[int], float]:
    """Send a login every 1/rate s, whatever the answers; each latency runs from when the request
    was due, so a slow answer that delays the next send still counts against the server."""
    count = max(1, int(rate * secs))
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    sent: list[float] = []
    statuses: Counter[int] = Counter()
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = loop.time() + 0.2

        async def one(i: int) -> None:
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            sent.append(loop.time())
            async with session.post(url, json={"code": codes[i % len(codes)]}) as response:
                await response.read()
                statuses[response.status] += 1
            latencies.append(1000 * (loop.time() - due))

        await asyncio.gather(*(one(i) for i in range(count)))
    span = max(sent) - min(sent)
    return latencies, statuses, (count - 1) / span if span > 0 else rate
