"""``python -m chaos [--short] [--seed N]``: attack a private copy of the system, print figures.

The exit status is 0 only when the counting figures hold: nothing acknowledged is missing,
nothing is doubled, no 5xx other than 503, and the negative control (outbox and late acks off)
does count losses. Timings are printed, never judged.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

from chaos import bruteforce, canary, crash, fuzz


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the CI size (about 5 minutes)")
    parser.add_argument("--seed", type=int, default=7, help="the kill schedule's seed")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--only",
        choices=["crash", "canary", "fuzz", "bruteforce"],
        help="one part (default: all; --short leaves out fuzzing and the brute force)",
    )
    args = parser.parse_args(argv)
    size = (200, 40, 40) if args.short else (1000, 200, 200)
    duration = 60.0 if args.short else 240.0
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="confide-chaos-"))
    print(f"Confide chaos harness: seed {args.seed}; scratch {scratch}", flush=True)
    if args.only in (None, "crash"):
        print(
            f"crash and restart: {size[0]} reports, {size[1]} reporter messages, {size[2]} "
            "replies from 20 clients; about a quarter of the reports and half the messages carry "
            "files",
            flush=True,
        )
    failed = []
    try:
        if args.only in (None, "crash"):
            failed += _crash(args.seed, size, duration, args.short, scratch)
        if args.only in (None, "canary"):
            failed += _canary(scratch)
        if args.only == "fuzz" or (args.only is None and not args.short):
            failed += _fuzz(scratch, 30 if args.short else 320)
        if args.only == "bruteforce" or (args.only is None and not args.short):
            attacks = asyncio.run(
                bruteforce.run(scratch / "bruteforce", seconds=20.0 if args.short else 60.0)
            )
            for attack in attacks:
                print(attack.describe(), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"\nDone in {time.monotonic() - started:.0f} s.")
    for reason in failed:
        print(f"FAILED: {reason}")
    return 1 if failed else 0


def _fuzz(scratch: Path, per_endpoint: int) -> list[str]:
    result = asyncio.run(fuzz.run(scratch / "fuzz", per_endpoint=per_endpoint))
    print(result.describe(), flush=True)
    failed = [f"fuzzing: {problem} ({n})" for problem, n in result.problems.items()]
    total = sum(result.per_endpoint.values())
    if per_endpoint >= 300 and total < 10_000:
        failed.append(f"fuzzing sent only {total} requests (at least 10,000 asked)")
    return failed


def _canary(scratch: Path) -> list[str]:
    failed = []
    broken = canary.self_test()
    if broken:
        failed.append(f"the scanner misses encodings: {', '.join(broken)}")
    result = asyncio.run(canary.run(scratch / "canary"))
    print(result.describe(), flush=True)
    if result.forbidden:
        failed.append(f"{result.forbidden} canary hits outside their allowed cells")
    if result.planted_missing:
        failed.append(f"the planted canary was not found in {', '.join(result.planted_missing)}")
    return failed


def _crash(
    seed: int, size: tuple[int, int, int], duration: float, short: bool, scratch: Path
) -> list[str]:
    failed = []
    safe = asyncio.run(
        crash.run(crash.Plan(*size, seed=seed, duration_s=duration), scratch / "safe")
    )
    print(crash.describe("the product as built", safe), flush=True)
    if not safe.counting_ok():
        failed.append("the product lost or doubled something")
    # The negative control: the same attack with the outbox relay and late acks off.
    control = asyncio.run(
        crash.run(
            crash.Plan(
                max(100, size[0] // 2),
                0,
                0,
                seed=seed,
                unsafe=True,
                files=False,
                drain_timeout_s=45,
                duration_s=duration / 2 if short else 120.0,
            ),
            scratch / "control",
        )
    )
    print(crash.describe("negative control (outbox relay and late acks off)", control), flush=True)
    if control.losses() == 0:
        failed.append("the negative control counted no loss: the harness cannot see one")
    else:
        print(f"  the harness saw the control's losses: {control.losses()}", flush=True)
    return failed


if __name__ == "__main__":
    sys.exit(main())
