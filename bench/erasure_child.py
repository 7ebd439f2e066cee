"""One erasure or key-rotation run in a fresh, worker-like process: wall time and peak memory.

``python -m bench.erasure_child --mode MODE --as-of ISO`` with Confide's settings from the
environment:

- ``confide``: :func:`confide.services.lifecycle.run_pass` at ``as-of``, as the beat task runs it
  (auto-close, inactivity closes, rewraps, warnings, erasure in batches);
- ``bare``: one ``DELETE FROM threads`` of the same rows (its ON DELETE CASCADEs included), in one
  transaction: the least any erasure can cost;
- ``rewrap``: :func:`confide.services.keys.rewrap_all` (thread keys rewrapped under the new key);
- ``reencrypt``: :func:`confide.services.keys.reencrypt` (every keyring-sealed value re-encrypted
  under the new key, as rotation worked before thread keys).

The peak RSS (``VmHWM``) is reset just before the timed part (see :mod:`bench.escalation_child`).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import datetime
from typing import Any

from bench.escalation_child import Meter
from confide import db
from confide import org as org_file
from confide.context import Context
from confide.crypto import Keyring
from confide.services import keys, lifecycle
from confide.services.workdays import WorkingCalendar
from confide.settings import Settings

BARE_TIMEOUT_S = 3600.0


async def _run(meter: Meter, mode: str, as_of: datetime) -> dict[str, Any]:
    settings = Settings.from_env()
    calendar = WorkingCalendar.for_org(org_file.load(settings.org_file))
    pool = await db.create_pool(settings.require_database(), min_size=0, max_size=2)
    ctx = Context(pool, settings, Keyring.from_secret(settings.encryption_keys), calendar)
    try:
        async with pool.acquire() as conn:  # a warm pool, as in the worker
            await conn.fetchval("SELECT 1")
        meter.start()
        if mode == "confide":
            report = await lifecycle.run_pass(ctx, as_of)
            detail: dict[str, Any] = {"erased": report.erased}
        elif mode == "bare":
            async with pool.acquire() as conn, conn.transaction():
                # One statement for every row: not bound by the pool's 30 s command timeout,
                # which a busy machine's embedded server exceeded.
                done = await conn.execute(
                    "DELETE FROM threads WHERE erasure_due_at <= $1", as_of, timeout=BARE_TIMEOUT_S
                )
            detail = {"erased": int(done.split()[-1])}
        elif mode == "rewrap":
            detail = {"rewrapped": await keys.rewrap_all(ctx)}
        else:
            counts = await keys.reencrypt(ctx)
            detail = {"re_encrypted": sum(counts.values())}
        meter.stop()
    finally:
        await pool.close()
    return detail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("confide", "bare", "rewrap", "reencrypt"), required=True)
    parser.add_argument("--as-of", required=True)
    args = parser.parse_args()
    meter = Meter()
    detail = asyncio.run(_run(meter, args.mode, datetime.fromisoformat(args.as_of)))
    print(json.dumps({**meter.as_json(), **detail}), flush=True)


if __name__ == "__main__":
    main()
