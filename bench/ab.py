"""``python -m bench.ab OTHER_TREE [--runs N] [--secs S]``: submission A/B between two checkouts.

Whole bench runs of the same code move by up to ±0.08 in the submission ratio between rounds, so a
change worth a few per cent cannot be judged from them. This harness runs one Confide web process
from ``OTHER_TREE`` (a git worktree of an older commit, say) and one from this checkout against the
same bench database, and alternates wrk runs between them (ABBA), each with bodies signed by its own
tree's form-token code. It prints req/s and web, PostgreSQL and whole-machine CPU per submission for
each side: the medians are comparable to a per cent or two on a quiet machine.

Both trees must share the database schema (the same migrations); the older one starts first.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bench import submit
from bench.common import Context, free_port, open_context, run_wrk, say, wait_http

HERE = Path(__file__).resolve().parent.parent
WARMUP_S = 3.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other checkout (e.g. a git worktree)")
    parser.add_argument("--runs", type=int, default=4, help="timed runs per side (4)")
    parser.add_argument("--secs", type=int, default=8, help="seconds per timed run (8)")
    args = parser.parse_args(argv)
    trees = {"other": args.other.resolve(), "this": HERE}
    with open_context(secs=args.secs, runs=args.runs, warmup=WARMUP_S) as ctx:
        servers = {name: _start(ctx, name, tree) for name, tree in trees.items()}
        for name, server in servers.items():
            bodies = _bodies(ctx, trees[name], submit._bodies_needed(WARMUP_S))
            run_wrk(server.url, WARMUP_S, connections=submit.CONNECTIONS, script=submit.LUA,
                    script_args=[str(bodies)])  # fmt: skip
        runs: dict[str, list[submit.Run]] = {name: [] for name in servers}
        for i in range(args.runs):
            for name in ("other", "this") if i % 2 == 0 else ("this", "other"):
                bodies = _bodies(ctx, trees[name], submit._bodies_needed(args.secs))
                runs[name].append(submit._timed(ctx, servers[name], bodies))
                say(f"  {name:<5} {submit._describe(runs[name][-1])}")
        ctx.processes.stop([p for s in servers.values() for p in s.procs])
    for name, done in runs.items():
        say(f"{name} ({trees[name]}): {_medians(done)}")
    return 0


def _start(ctx: Context, name: str, tree: Path) -> submit.Server:
    port = free_port()
    code = (
        f"import sys, runpy; sys.path.insert(0, {str(tree)!r}); "
        "runpy.run_module('webapp', run_name='__main__', alter_sys=True)"
    )
    proc = ctx.processes.start(f"ab-{name}", [sys.executable, "-c", code], ctx.confide_env(port))
    wait_http(f"http://127.0.0.1:{port}/healthz", [proc])
    return submit.Server(name, port, [proc], "threads")


def _bodies(ctx: Context, tree: Path, count: int) -> Path:
    """Request bodies signed by ``tree``'s own form-token code (its signing may differ)."""
    path = ctx.path("ab-bodies.txt")
    code = (
        "import os, sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
        "from bench import submit as s; from confide.settings import Settings; "
        "st = Settings.from_env(dict(os.environ)); "
        "Path(sys.argv[2]).write_text(''.join(s._body(s.new_form_token(st, s.SUBMIT_PURPOSE)) "
        "+ chr(10) for _ in range(int(sys.argv[3]))))"
    )
    argv = [sys.executable, "-c", code, str(tree), str(path), str(count)]
    subprocess.run(argv, env=ctx.confide_env(port=8080), check=True, cwd="/")
    return path


def _medians(done: list[submit.Run]) -> str:
    def median(value: Callable[[submit.Run], float]) -> float:
        return statistics.median(value(r) for r in done)

    return (
        f"req/s {median(lambda r: r.wrk.rps):.0f}, CPU ms per submission: "
        f"web {median(lambda r: r.cpu_ms_per_request):.3f}, "
        f"PostgreSQL {median(lambda r: r.db_cpu_ms_per_request or 0.0):.3f}, "
        f"machine {median(lambda r: r.machine_cpu_ms_per_request):.3f}"
    )


if __name__ == "__main__":
    sys.exit(main())
