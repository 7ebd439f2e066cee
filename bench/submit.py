"""Benchmark 1 (issue 3): anonymous report submission without follow-up, to the PostgreSQL commit.

For 1 and then 2 web processes (SO_REUSEPORT), Confide and the bare baseline
(:mod:`bench.bare_server`) run side by side against the same PostgreSQL, and their wrk runs are
interleaved (ABBA order), so each Confide figure has a bare partner measured moments apart.
Every Confide request carries its own freshly signed form token: a repeated token would return
the earlier receipt without inserting, so the bench checks in SQL that rows match responses.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from bench import bare_server, journey
from bench.common import (
    Context,
    OtherLoad,
    Result,
    Target,
    WrkResult,
    database_cpu_s,
    free_port,
    log_tail,
    machine_busy_s,
    post_form,
    process_cpu_s,
    queued_messages,
    rss_mb,
    run_wrk,
    say,
    wait_http,
)
from confide import jobs
from confide.settings import Settings
from webapp.security import new_form_token

NAME = "submit"
TITLE = (
    "Report submission: anonymous form POST without follow-up, to the PostgreSQL commit; "
    "and the whole post/redirect/get journey with a draft"
)
PROCESS_COUNTS = (1, 2)
CONNECTIONS = 64
LUA = Path(__file__).resolve().parent / "post_bodies.lua"
JOURNEY_LUA = Path(__file__).resolve().parent / "journey.lua"
# One wrk thread per connection (each keeps its own draft cookie): enough to keep two web
# processes busy, with wrk's own threads still cheap beside them.
JOURNEY_CONNECTIONS = 16
SUBMIT_PURPOSE = "report-submit"  # webapp.handlers.reporter.SUBMIT_PURPOSE
# Synthetic text only: never real report text in the bench either.
DESCRIPTION = (
    "Benchmark report. The fire door at the end of the level 2 corridor is propped open with a "
    "chair most afternoons, and the corridor light by the stairs has been out for a week. "
    "Someone could trip on the cable running across the floor near the printer."
)
QUEUES = (jobs.DEFAULT_QUEUE, jobs.HASHING_QUEUE)
RPS_RATIO_TARGET = Target(">=", 0.50)
P99_RATIO_TARGET = Target("<=", 1.5)
RSS_TARGET_MB = Target("<", 150)
JOURNEY_KB_TARGET = Target("<", 60)  # issue 14: HTML + CSS + JS of one whole journey
FOREIGN_TARGET = Target("<=", 0)  # nothing loaded from another host


@dataclass
class Server:
    """N processes of one app sharing a port."""

    name: str
    port: int
    procs: list[subprocess.Popen[bytes]]
    table: str  # where its submissions land: truncated before, counted after each run

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/report/submit"

    def cpu_s(self) -> float:
        return sum(process_cpu_s(p.pid) for p in self.procs)


@dataclass
class Run:
    wrk: WrkResult
    rows: int
    cpu_ms_per_request: float  # the server's processes
    machine_cpu_ms_per_request: float  # the whole machine: server, PostgreSQL, wrk, kernel
    db_cpu_ms_per_request: float | None  # the PostgreSQL backends of the bench's database
    other_cpus: float  # CPU used meanwhile by processes that are not the bench's (shared VM)
    queued: int  # Celery messages the server published during the run (no worker consumes them)


def run(ctx: Context) -> list[Result]:
    settings = Settings.from_env(ctx.confide_env(port=8080))  # only its session key is used
    ctx.execute(bare_server.CREATE_TABLE)
    results: list[Result] = []
    try:
        for procs in PROCESS_COUNTS:
            results += _measure(ctx, settings, procs)
    finally:
        ctx.execute(f"DROP TABLE IF EXISTS {bare_server.TABLE}")
        if ctx.fetchval("SELECT to_regclass('threads') IS NOT NULL"):
            ctx.execute("TRUNCATE threads CASCADE")
    return results


def _measure(ctx: Context, settings: Settings, procs: int) -> list[Result]:
    label = f"{procs} process" + ("es" if procs > 1 else "")
    say(f"\n  {label}, wrk -t1 -c{CONNECTIONS}, {ctx.secs:g} s × {ctx.runs} runs each")
    bare = _start_bare(ctx, procs)
    confide = _start_confide(ctx, procs)
    try:
        bare_bodies = _write_bodies(ctx, settings, "bare-bodies.txt", 2000)
        _check_sample(ctx, settings, bare, confide)

        _warm_up(ctx, settings, bare, bare_bodies)
        _warm_up(ctx, settings, confide, None)
        bare_runs: list[Run] = []
        confide_runs: list[Run] = []
        for i in range(ctx.runs):
            order = ("bare", "confide") if i % 2 == 0 else ("confide", "bare")
            for which in order:
                if which == "bare":
                    result = _timed(ctx, bare, bare_bodies)
                    bare_runs.append(result)
                else:
                    bodies = _write_bodies(ctx, settings, "bodies.txt", _bodies_needed(ctx.secs))
                    result = _timed(ctx, confide, bodies)
                    confide_runs.append(result)
                say(f"    run {i + 1} {which:<8} {_describe(result)}")
                _warn_if_not_real(which, result)
        walked = journey.walk(f"http://127.0.0.1:{confide.port}")
        journey_pairs = _journeys(ctx, bare, confide, bare_bodies)
        rss = [rss_mb(p.pid) for p in confide.procs]
        bare_rss = [rss_mb(p.pid) for p in bare.procs]
    finally:
        ctx.processes.stop(confide.procs + bare.procs)

    say(f"    RSS after the runs: Confide {_mbs(rss)}, bare {_mbs(bare_rss)}")
    pairs = list(zip(confide_runs, bare_runs, strict=True))
    name = f"submit, {label}:"
    results = [
        Result(
            f"{name} req/s Confide ÷ bare",
            tuple(c.wrk.rps / b.wrk.rps for c, b in pairs),
            target=RPS_RATIO_TARGET,
        ),
        Result(
            f"{name} p99 Confide ÷ bare",
            tuple(c.wrk.p99_ms / b.wrk.p99_ms for c, b in pairs),
            target=P99_RATIO_TARGET,
        ),
        Result(f"{name} Confide req/s", tuple(r.wrk.rps for r in confide_runs), "req/s", digits=0),
        Result(f"{name} bare req/s", tuple(r.wrk.rps for r in bare_runs), "req/s", digits=0),
        Result(
            f"{name} Confide p50 latency", tuple(r.wrk.p50_ms for r in confide_runs), "ms", digits=1
        ),
        Result(f"{name} bare p50 latency", tuple(r.wrk.p50_ms for r in bare_runs), "ms", digits=1),
        Result(
            f"{name} Confide p99 latency", tuple(r.wrk.p99_ms for r in confide_runs), "ms", digits=1
        ),
        Result(f"{name} bare p99 latency", tuple(r.wrk.p99_ms for r in bare_runs), "ms", digits=1),
        Result(
            f"{name} CPU ms/req Confide ÷ bare",
            tuple(c.cpu_ms_per_request / b.cpu_ms_per_request for c, b in pairs),
        ),
    ]
    if all(r.db_cpu_ms_per_request for r in confide_runs + bare_runs):
        results.append(
            Result(
                f"{name} PostgreSQL CPU ms/req Confide ÷ bare",
                tuple(
                    (c.db_cpu_ms_per_request or 0) / (b.db_cpu_ms_per_request or 1)
                    for c, b in pairs
                ),
            )
        )
    results += _journey_results(f"journey, {label}:", walked, journey_pairs)
    runs = confide_runs + bare_runs + [r for pair in journey_pairs for r in pair]
    results.append(
        Result(f"{name} CPU used by other processes", tuple(r.other_cpus for r in runs), "CPUs")
    )
    for n, mb in enumerate(rss, start=1):
        results.append(
            Result(f"{name} RSS of Confide web process {n}", (mb,), "MB", RSS_TARGET_MB, digits=0)
        )
    return results


def _journeys(
    ctx: Context, bare: Server, confide: Server, bare_bodies: Path
) -> list[tuple[Run, Run]]:
    """Timed journey runs of Confide, each paired with a bare run moments apart (ABBA)."""
    say(f"    the whole journey, wrk -t{JOURNEY_CONNECTIONS} -c{JOURNEY_CONNECTIONS}")
    _timed_journey(ctx, confide, ctx.warmup)
    pairs: list[tuple[Run, Run]] = []
    for i in range(ctx.runs):
        runs: dict[str, Run] = {}
        for which in ("bare", "journey") if i % 2 == 0 else ("journey", "bare"):
            if which == "bare":
                runs[which] = _timed(ctx, bare, bare_bodies)
            else:
                runs[which] = _timed_journey(ctx, confide, ctx.secs)
            say(f"    run {i + 1} {which:<8} {_describe(runs[which])}")
        pairs.append((runs["journey"], runs["bare"]))
    return pairs


def _journey_results(name: str, walked: journey.Walk, pairs: list[tuple[Run, Run]]) -> list[Result]:
    per = journey.REQUESTS_PER_JOURNEY
    return [
        # Printed, as issue 14 asks, with no target of its own: a journey request is a page and a
        # draft read (or a read and a write), against the bare handler's one INSERT.
        Result(f"{name} req/s Confide ÷ bare", tuple(c.wrk.rps / b.wrk.rps for c, b in pairs)),
        Result(f"{name} journeys/s", tuple(c.wrk.rps / per for c, _ in pairs), "/s", digits=0),
        Result(
            f"{name} Confide p99 latency", tuple(c.wrk.p99_ms for c, _ in pairs), "ms", digits=1
        ),
        Result(
            f"{name} CPU ms/req Confide ÷ bare",
            tuple(c.cpu_ms_per_request / b.cpu_ms_per_request for c, b in pairs),
        ),
        Result(
            f"{name} KB per journey (HTML + CSS + JS, as sent)",
            (walked.total_bytes / 1024,),
            "KB",
            JOURNEY_KB_TARGET,
            digits=1,
        ),
        Result(
            f"{name} KB per journey with HTTP headers",
            ((walked.total_bytes + walked.header_bytes) / 1024,),
            "KB",
            JOURNEY_KB_TARGET,
            digits=1,
        ),
        Result(
            f"{name} things loaded from another host",
            (float(len(walked.foreign)),),
            target=FOREIGN_TARGET,
            digits=0,
        ),
    ]


def _timed_journey(ctx: Context, server: Server, secs: float) -> Run:
    """One wrk run of whole journeys; every complete journey must have committed its report."""
    ctx.execute("TRUNCATE report_drafts")

    def load() -> WrkResult:
        return run_wrk(
            f"http://127.0.0.1:{server.port}/report",
            secs,
            connections=JOURNEY_CONNECTIONS,
            threads=JOURNEY_CONNECTIONS,
            script=JOURNEY_LUA,
            script_args=[journey.DESCRIPTION],
        )

    run = _timed(ctx, server, None, load=load)
    complete = _journey_count(run.wrk.output)
    if not complete - JOURNEY_CONNECTIONS <= run.rows <= complete + JOURNEY_CONNECTIONS:
        say(f"    WARNING: journey: {run.rows} reports for {complete} complete journeys")
    if "0 broken" not in run.wrk.output:
        say(f"    WARNING: journey: {run.wrk.output.splitlines()[-1]}")
    return run


def _journey_count(output: str) -> int:
    for line in output.splitlines():
        if line.startswith("journeys: "):
            return int(line.split()[1])
    raise RuntimeError(f"journey.lua printed no count:\n{output}")


# --- Servers -----------------------------------------------------------------------------------


def _start_bare(ctx: Context, procs: int) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "bench.bare_server", "--port", str(port)]
    argv += ["--dsn", ctx.database_url]
    started = [
        ctx.processes.start(f"bare-{procs}p-{n}", argv, ctx.base_env()) for n in range(procs)
    ]
    server = Server("bare", port, started, bare_server.TABLE)
    _wait_listening(server)
    return server


def _start_confide(ctx: Context, procs: int) -> Server:
    port = free_port()
    started = []
    for n in range(procs):
        # One after the other: the first migrates the bench database; the rest find it done.
        started.append(
            ctx.processes.start(
                f"confide-{procs}p-{n}", [sys.executable, "-m", "webapp"], ctx.confide_env(port)
            )
        )
        wait_http(f"http://127.0.0.1:{port}/healthz", started)
    server = Server("confide", port, started, "threads")
    _wait_listening(server)
    return server


def _wait_listening(server: Server, timeout: float = 60) -> None:
    """Until each process of ``server`` has its own listening socket (SO_REUSEPORT)."""
    wait_http(f"http://127.0.0.1:{server.port}/healthz", server.procs, timeout)
    deadline = time.monotonic() + timeout
    while _listeners(server.port) < len(server.procs):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name}: not every process listens on {server.port}")
        for proc in server.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{server.name}: a process exited with {proc.returncode}")
        time.sleep(0.1)


def _listeners(port: int) -> int:
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


# --- Request bodies ----------------------------------------------------------------------------


def _body(token: str) -> str:
    return urlencode(
        {
            "how": "anonymous",
            "category": "safety",
            "description": DESCRIPTION,
            "occurred": "",
            "location": "",
            "follow_up": "no",
            "contact_name": "",
            "contact_email": "",
            "contact_phone": "",
            "step": "check",
            "form_token": token,
        }
    )


def _bodies_needed(secs: float) -> int:
    # Far above what this path can serve (~2k req/s on 2 cores), so tokens never repeat.
    return max(60_000, int(secs * 7_500))


def _write_bodies(ctx: Context, settings: Settings, name: str, count: int) -> Path:
    path = ctx.path(name)
    with path.open("w") as out:
        for _ in range(count):
            out.write(_body(new_form_token(settings, SUBMIT_PURPOSE)) + "\n")
    return path


# --- Checks and runs ---------------------------------------------------------------------------


def _check_sample(ctx: Context, settings: Settings, bare: Server, confide: Server) -> None:
    """Before timing: one real submission each, and a repeated token that must not insert."""
    body = _body(new_form_token(settings, SUBMIT_PURPOSE))
    before = ctx.fetchval("SELECT count(*) FROM threads")
    for attempt in ("first", "repeat"):
        status, page = post_form(confide.url, body)
        if status != 200 or "Report received" not in page:
            raise RuntimeError(
                f"Confide answered the {attempt} sample submission with {status}, "
                f"not 200 'Report received'. Its log ends:\n{log_tail(confide.procs[0])}"
            )
    added = ctx.fetchval("SELECT count(*) FROM threads") - before
    if added != 1:
        raise RuntimeError(f"sample: {added} threads rows for one token sent twice (expected 1)")
    status, page = post_form(bare.url, body)
    if status != 200 or "Report received" not in page:
        raise RuntimeError(f"bare server answered the sample with {status}")


def _warm_up(ctx: Context, settings: Settings, server: Server, bodies: Path | None) -> None:
    if bodies is None:
        bodies = _write_bodies(ctx, settings, "warmup.txt", _bodies_needed(ctx.warmup))
    run_wrk(server.url, ctx.warmup, connections=CONNECTIONS, script=LUA, script_args=[str(bodies)])


def _timed(
    ctx: Context,
    server: Server,
    bodies: Path | None,
    *,
    load: Callable[[], WrkResult] | None = None,
) -> Run:
    """One timed wrk run: of ``bodies`` posted to ``server``, or of ``load``."""
    ctx.execute(f"TRUNCATE {server.table} CASCADE")
    queued_before = queued_messages(ctx.redis_url, QUEUES)
    db_before = database_cpu_s(ctx)
    cpu_before, machine_before, other = server.cpu_s(), machine_busy_s(), OtherLoad()
    if load is None:
        result = run_wrk(
            server.url, ctx.secs, connections=CONNECTIONS, script=LUA, script_args=[str(bodies)]
        )
    else:
        result = load()
    time.sleep(0.5)  # requests in flight when wrk stopped still commit
    cpu, machine = server.cpu_s() - cpu_before, machine_busy_s() - machine_before
    other_cpus = other.cpus()
    db_after = database_cpu_s(ctx)
    rows = ctx.fetchval(f"SELECT count(*) FROM {server.table}")
    queued = queued_messages(ctx.redis_url, QUEUES) - queued_before
    requests = max(1, result.requests)
    db_ms = None
    if db_before is not None and db_after is not None:
        db_ms = 1000 * max(0.0, db_after - db_before) / requests
    return Run(
        result, rows, 1000 * cpu / requests, 1000 * machine / requests, db_ms, other_cpus, queued
    )


def _describe(run: Run) -> str:
    text = (
        f"{run.wrk.summary()}  CPU ms/req: server {run.cpu_ms_per_request:.2f}, "
        f"machine {run.machine_cpu_ms_per_request:.2f}, PostgreSQL {_ms(run.db_cpu_ms_per_request)}"
        f"  rows +{run.rows} for {run.wrk.ok} ok  "
        f"other load {run.other_cpus:.2f} CPUs"
    )
    if run.queued:
        text += f"  Celery messages +{run.queued}"
    if run.other_cpus > 0.2:
        text += "  (busy machine: treat this run with care)"
    return text


def _warn_if_not_real(which: str, run: Run) -> None:
    """Rows should match 2xx responses, plus at most one in flight per connection at the end."""
    sent = run.wrk.output.split("bodies: sent ", 1)
    if len(sent) == 2:
        used, _, size = sent[1].split()[:3]
        if which == "confide" and int(used) > int(size):
            say(f"    WARNING: {which} sent {used} bodies from a file of {size}: tokens repeated")
    if not run.wrk.ok - CONNECTIONS <= run.rows <= run.wrk.ok + CONNECTIONS:
        say(
            f"    WARNING: {which}: {run.rows} rows for {run.wrk.ok} successful responses; "
            "the figure may not measure real commits"
        )


def _ms(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def _mbs(values: list[float]) -> str:
    return ", ".join(f"{v:.0f} MB" for v in values)
