"""What metrics and logging cost report submission (issue 6).

Benchmark 1's load (anonymous form POSTs to ``/report/submit``, one web process, ``wrk -t1 -c64``,
a fresh form token per request) against two Confide web processes that differ only in this:

- **A, both on** (the default): ``CONFIDE_LOG_LEVEL=INFO`` (an access line and a
  ``report_submitted`` line per submission) and a Prometheus-like scraper that GETs ``/metrics``
  once a second throughout the run.
- **B, both off:** ``CONFIDE_LOG_LEVEL=ERROR`` and no scraper.

Both processes run side by side; their timed runs alternate A-B-B-A (and so on), so each ratio is
taken within a pair of neighbouring runs. Target: A serves at least 0.90 of B's requests per
second (metrics and logging cost at most 10 %).
"""

from __future__ import annotations

import http.client
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench import submit
from bench.common import (
    Context,
    Result,
    Target,
    free_port,
    log_tail,
    post_form,
    say,
    wait_http,
)
from bench.fixtures import drop_bench_rows, ensure_schema, percentile, wait_idle
from confide.settings import Settings
from webapp.security import new_form_token

NAME = "observability"
TITLE = "Cost of metrics and logging on report submission: A (INFO + scraper) vs B (ERROR, none)"
RPS_RATIO_TARGET = Target(">=", 0.90)
SCRAPE_EVERY_S = 1.0


@dataclass
class Timed:
    run: submit.Run
    log_lines: int  # lines the process wrote to its log during the run
    scrapes: list[float]  # latency of each /metrics scrape during the run, ms


def run(ctx: Context) -> list[Result]:
    ensure_schema(ctx)
    settings = Settings.from_env(ctx.confide_env(port=8080))  # only its session key is used
    try:
        return _run(ctx, settings)
    finally:
        drop_bench_rows(ctx)


def _run(ctx: Context, settings: Settings) -> list[Result]:
    say(
        f"\n  1 process each, wrk -t1 -c{submit.CONNECTIONS}, {ctx.secs:g} s × {ctx.runs} runs each"
    )
    a = _start(ctx, "A", "INFO")
    b = _start(ctx, "B", "ERROR")
    try:
        for server in (a, b):
            _check_sample(ctx, settings, server)
            submit._warm_up(ctx, settings, server, None)
        a_runs: list[Timed] = []
        b_runs: list[Timed] = []
        for i in range(ctx.runs):
            for which in ("A", "B") if i % 2 == 0 else ("B", "A"):
                server = a if which == "A" else b
                done = _timed(ctx, settings, server, scrape=which == "A")
                (a_runs if which == "A" else b_runs).append(done)
                say(f"    run {i + 1} {which}  {_describe(done)}")
    finally:
        ctx.processes.stop(a.procs + b.procs)

    pairs = list(zip(a_runs, b_runs, strict=True))
    name = "observability:"
    scrapes = [ms for t in a_runs for ms in t.scrapes]
    return [
        Result(
            f"{name} req/s A (on) ÷ B (off)",
            tuple(x.run.wrk.rps / y.run.wrk.rps for x, y in pairs),
            target=RPS_RATIO_TARGET,
        ),
        Result(f"{name} p99 A ÷ B", tuple(x.run.wrk.p99_ms / y.run.wrk.p99_ms for x, y in pairs)),
        Result(f"{name} A req/s", tuple(t.run.wrk.rps for t in a_runs), "req/s", digits=0),
        Result(f"{name} B req/s", tuple(t.run.wrk.rps for t in b_runs), "req/s", digits=0),
        Result(f"{name} A p99 latency", tuple(t.run.wrk.p99_ms for t in a_runs), "ms", digits=1),
        Result(f"{name} B p99 latency", tuple(t.run.wrk.p99_ms for t in b_runs), "ms", digits=1),
        Result(f"{name} A p50 latency", tuple(t.run.wrk.p50_ms for t in a_runs), "ms", digits=1),
        Result(f"{name} B p50 latency", tuple(t.run.wrk.p50_ms for t in b_runs), "ms", digits=1),
        Result(
            f"{name} CPU ms/req A ÷ B",
            tuple(x.run.cpu_ms_per_request / y.run.cpu_ms_per_request for x, y in pairs),
        ),
        Result(f"{name} A log lines per request", (_lines_per_request(a_runs),)),
        Result(f"{name} B log lines per request", (_lines_per_request(b_runs),)),
        Result(f"{name} /metrics scrapes during A's runs", (float(len(scrapes)),), digits=0),
        Result(
            f"{name} /metrics p99 under the submission load",
            (percentile(scrapes, 99),),
            "ms",
            digits=1,
        ),
        Result(
            f"{name} CPU used by other processes",
            tuple(t.run.other_cpus for t in a_runs + b_runs),
            "CPUs",
        ),
    ]


def _lines_per_request(runs: list[Timed]) -> float:
    return sum(t.log_lines for t in runs) / max(1, sum(t.run.wrk.requests for t in runs))


def _start(ctx: Context, which: str, level: str) -> submit.Server:
    port = free_port()
    proc = ctx.processes.start(
        f"observability-{which}",
        [sys.executable, "-m", "webapp"],
        ctx.confide_env(port, CONFIDE_LOG_LEVEL=level),
    )
    # One after the other: the first migrates the bench database; the second finds it done.
    wait_http(f"http://127.0.0.1:{port}/healthz", [proc])
    return submit.Server(which, port, [proc], "threads")


def _check_sample(ctx: Context, settings: Settings, server: submit.Server) -> None:
    body = submit._body(new_form_token(settings, submit.SUBMIT_PURPOSE))
    status, page = post_form(server.url, body)
    if status != 200 or "Report received" not in page:
        raise RuntimeError(
            f"{server.name} answered a sample submission with {status}, not 200 'Report "
            f"received'. Its log ends:\n{log_tail(server.procs[0])}"
        )


def _log_lines(server: submit.Server) -> int:
    path: Path | None = getattr(server.procs[0], "bench_log", None)
    if path is None or not path.exists():
        return 0
    with path.open("rb") as log:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: log.read(1 << 20), b""))


def _timed(ctx: Context, settings: Settings, server: submit.Server, *, scrape: bool) -> Timed:
    bodies = submit._write_bodies(ctx, settings, "bodies.txt", submit._bodies_needed(ctx.secs))
    wait_idle(ctx)
    lines_before = _log_lines(server)
    scraper = _Scraper(server.port) if scrape else None
    try:
        done = submit._timed(ctx, server, bodies)
    finally:
        latencies = scraper.stop() if scraper else []
    lines = _log_lines(server) - lines_before
    submit._warn_if_not_real(server.name, done)
    return Timed(done, lines, latencies)


class _Scraper:
    """GET /metrics once a second in a thread, as Prometheus would, until stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.latencies: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                try:
                    conn.request("GET", "/metrics")
                    response = conn.getresponse()
                    response.read()
                    ok = response.status == 200
                finally:
                    conn.close()
            except OSError:
                ok = False
            elapsed = time.perf_counter() - started
            if ok:
                self.latencies.append(1000 * elapsed)
            else:
                self.errors += 1
            self._stop.wait(max(0.0, SCRAPE_EVERY_S - elapsed))

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join(15)
        if self.errors:
            say(f"    WARNING: {self.errors} /metrics scrapes failed during the run")
        return self.latencies


def _describe(done: Timed) -> str:
    text = submit._describe(done.run) + f"  log lines +{done.log_lines}"
    if done.scrapes:
        text += f"  scrapes {len(done.scrapes)} (max {max(done.scrapes):.0f} ms)"
    return text
