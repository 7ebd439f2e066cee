"""``python -m bench [--only NAME] [--secs N] [--runs N]``: run the benchmarks, print ratios.

Figures are printed, never enforced: the exit status is non-zero only when the bench itself
fails (or wrk is missing). Every process the bench starts is stopped on the way out, Ctrl-C
included.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import signal
import sys
import time
from types import FrameType, ModuleType
from urllib.parse import urlsplit

from bench.common import Result, open_context, require_wrk, say, settle

# Name -> module with NAME, TITLE and run(ctx) -> list[Result]. Add later benchmarks here
# in the order they should run.
BENCHMARKS = {
    "submit": "bench.submit",
    "logins": "bench.logins",
    "wrong_codes": "bench.wrong_codes",
    "inbox": "bench.inbox",
    "statistics": "bench.statistics",
    "escalation": "bench.escalation",
    "deadlines": "bench.deadlines",
    "digest": "bench.digest",
    "metrics": "bench.metrics",
    "observability": "bench.observability",
    "erasure": "bench.erasure",
    "attachments": "bench.attachments",
}
WARMUP_S = 3.0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(BENCHMARKS), help="run one benchmark")
    parser.add_argument("--secs", type=int, default=8, help="seconds per timed run (8)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per figure (3)")
    args = parser.parse_args(argv)
    if args.secs <= 0 or args.runs < 1:
        parser.error("--secs must be positive and --runs at least 1")
    if not require_wrk():
        return 1
    # SIGTERM and SIGHUP take the same way out as Ctrl-C, through every `finally`
    # (unless ignored on purpose, as under nohup).
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _interrupt)

    names = [args.only] if args.only else list(BENCHMARKS)
    modules: list[ModuleType] = [importlib.import_module(BENCHMARKS[n]) for n in names]
    say(
        f"Confide bench: {', '.join(names)}; {args.runs} runs of {args.secs:g} s after a "
        f"{WARMUP_S:g} s warm-up; Python {platform.python_version()}, {_cpus()} CPUs"
    )
    say("Figures are medians over the runs, with (min–max). Expect ±20 % on a noisy VM.")
    started = time.monotonic()
    results: dict[str, list[Result]] = {}
    try:
        with open_context(secs=args.secs, runs=args.runs, warmup=WARMUP_S) as ctx:
            say(
                f"PostgreSQL database {urlsplit(ctx.database_url).path.lstrip('/')}, "
                f"Redis db {urlsplit(ctx.redis_url).path.lstrip('/')}"
                + (f" (embedded servers for {ctx.embedded})" if ctx.embedded else "")
            )
            for module in modules:
                settle(ctx)
                say(f"\n== {module.NAME}: {module.TITLE}")
                results[module.NAME] = module.run(ctx)
    except KeyboardInterrupt:
        print("\nbench: interrupted; every process it started has been stopped", file=sys.stderr)
        return 130
    _print_summary(results)
    say(f"\nDone in {time.monotonic() - started:.0f} s.")
    return 0


def _print_summary(results: dict[str, list[Result]]) -> None:
    say("\n== Summary (median (min–max) over the runs)")
    for name, rows in results.items():
        say(f"{name}:")
        for row in rows:
            say(row.line())


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main())
