"""The bare baseline for code logins: argon2-cffi verifications flat out in one process.

``python -m bench.argon2_bare --secs S --start-at EPOCH`` verifies one code against its argon2id
hash (time_cost=2, memory_cost=19456, parallelism=1: Confide's defaults) as often as it can for
S seconds, from EPOCH on (so that N copies run at the same time), then prints one JSON line:
``{"verifies": n, "secs": s, "p50_ms": …, "cpu_ms": …}`` (CPU time per verification).
Nothing else: no HMAC, no Celery, no PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from argon2 import PasswordHasher

CODE = b"7QKM2XRD9H"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secs", type=float, required=True)
    parser.add_argument("--start-at", type=float, required=True, help="time.time() to start at")
    args = parser.parse_args()
    hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
    stored = hasher.hash(CODE)
    hasher.verify(stored, CODE)  # warm-up
    time.sleep(max(0.0, args.start_at - time.time()))
    calls: list[float] = []
    cpu_started = time.process_time()
    started = time.perf_counter()
    while time.perf_counter() - started < args.secs:
        before = time.perf_counter()
        hasher.verify(stored, CODE)
        calls.append(time.perf_counter() - before)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    print(
        json.dumps(
            {
                "verifies": len(calls),
                "secs": elapsed,
                "p50_ms": 1000 * statistics.median(calls),
                "cpu_ms": 1000 * cpu / max(1, len(calls)),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
