"""Erasure and key rotation (issue 16, docs/lifecycle.md).

**Erasure.** 1,000,000 closed threads in 20 teams, each with its outbox row (its new-report mail);
a tenth of them past their erasure date, each with two messages and two audit rows. One
:func:`confide.services.lifecycle.run_pass` (the whole pass: inactivity closes, rewraps,
warnings, erasure in batches of 1,000 keeping audit rows under erasure ids) against a bare
``DELETE FROM threads`` of the same rows with the same cascades, in one transaction, each in a
fresh worker-like child (:mod:`bench.erasure_child`) that reports wall time and peak RSS.
Confide and the bare delete alternate; the erased rows are put back between runs (untimed). Run
at a tenth of the size too, to show that memory stays flat. Target: time ≤ 3× the bare delete.

**Rotation.** 1,000,000 threads whose data keys are wrapped by key ``b1`` and whose report is
also sealed by ``b1`` the way it was before thread keys. With ``b2`` put first: rewrapping every
thread key (:func:`confide.services.keys.rewrap_all`) against re-encrypting every report
(:func:`confide.services.keys.reencrypt`, one value a thread: the least content a thread has).
Both are printed; the runs alternate ``b1``/``b2`` so each starts from the other's state.

``CONFIDE_BENCH_ERASURE_THREADS`` and ``CONFIDE_BENCH_ROTATION_THREADS`` shrink the runs for a
quick look (defaults 1,000,000 each).
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import Context, Result, Target, say
from bench.fixtures import (
    Team,
    connect,
    create_teams,
    drop_bench_rows,
    ensure_schema,
    median,
    read_child_json,
)
from confide.crypto import Keyring, quarter_of
from confide.settings import parse_keyring

NAME = "erasure"
TITLE = "Erasure of 100,000 expired threads among 1,000,000, and key rotation over 1,000,000"
TEAMS = 20
ERASURE_THREADS = int(os.environ.get("CONFIDE_BENCH_ERASURE_THREADS", "1000000"))
ROTATION_THREADS = int(os.environ.get("CONFIDE_BENCH_ROTATION_THREADS", "1000000"))
AS_OF = datetime(2027, 6, 16, 12, 0, tzinfo=UTC)
RATIO_TARGET = Target("<=", 3.0)
COPIES = ("bench_erase_threads", "bench_erase_outbox", "bench_erase_messages", "bench_erase_audit")

# Every tenth thread expired (due before AS_OF), the others due well after the warning period.
LOAD_THREADS = """
INSERT INTO threads (id, reference, category_slug, team_id, anonymous, follow_up, status,
                     received_at, description, last_activity_at, closed_at, erasure_due_at,
                     data_key, data_key_id, data_key_quarter)
SELECT id, 'R-' || lpad(g::text, 8, '0'), ($2::text[])[k], ($3::int[])[k], true, true, 'closed',
       due - interval '2 years', '\\x02'::bytea || sha512(g::text::bytea) || sha256(id::text::bytea),
       due - interval '1 year', due - interval '1 year', due,
       '\\x0102'::bytea || sha512(id::text::bytea), 'b1',
       extract(year FROM due AT TIME ZONE 'UTC')::int || 'q'
           || extract(quarter FROM due AT TIME ZONE 'UTC')::int
FROM (SELECT g, gen_random_uuid() AS id, 1 + g % $4 AS k,
             CASE WHEN g % 10 = 0 THEN $5::timestamptz - interval '1 day' - g * interval '1 s'
                  ELSE $5::timestamptz + interval '200 days' + g * interval '1 s' END AS due
      FROM generate_series(1, $1) g) s
"""
LOAD_OUTBOX = """INSERT INTO outbox (id, kind, thread_id, team_id, sent_at)
SELECT gen_random_uuid(), 'new_report', id, team_id, received_at FROM threads"""
LOAD_MESSAGES = """INSERT INTO messages (id, thread_id, author, body, sent_at)
SELECT gen_random_uuid(), t.id, 'reporter', '\\x02'::bytea || sha512(t.id::text::bytea),
       t.closed_at - n * interval '1 day'
FROM threads t, generate_series(1, 2) n WHERE t.erasure_due_at <= $1"""
LOAD_AUDIT = """INSERT INTO audit_log (staff_id, thread_id, action, at)
SELECT NULL, t.id, 'view', t.closed_at - n * interval '1 hour'
FROM threads t, generate_series(1, 2) n WHERE t.erasure_due_at <= $1"""
SAVE = (
    "CREATE TABLE bench_erase_threads AS SELECT * FROM threads WHERE erasure_due_at <= $1",
    """CREATE TABLE bench_erase_outbox AS SELECT o.* FROM outbox o
       JOIN bench_erase_threads t ON t.id = o.thread_id""",
    """CREATE TABLE bench_erase_messages AS SELECT m.* FROM messages m
       JOIN bench_erase_threads t ON t.id = m.thread_id""",
    """CREATE TABLE bench_erase_audit AS SELECT a.* FROM audit_log a
       JOIN bench_erase_threads t ON t.id = a.thread_id""",
)
RESTORE = (
    "DELETE FROM audit_log WHERE thread_id IS NULL",
    "TRUNCATE erasures",
    "INSERT INTO threads SELECT * FROM bench_erase_threads",
    "INSERT INTO outbox SELECT * FROM bench_erase_outbox",
    "INSERT INTO messages SELECT * FROM bench_erase_messages",
    "INSERT INTO audit_log SELECT * FROM bench_erase_audit",
)


def run(ctx: Context) -> list[Result]:
    ensure_schema(ctx)
    try:
        return _erasure(ctx) + _rotation(ctx)
    finally:
        drop_bench_rows(ctx)
        asyncio.run(_drop_copies(ctx))


def _child(ctx: Context, mode: str, ring: str | None = None) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.erasure_child", "--mode", mode]
    argv += ["--as-of", AS_OF.isoformat()]
    extra = {} if ring is None else {"CONFIDE_ENCRYPTION_KEYS": ring}
    proc = ctx.processes.start(f"erasure-{mode}", argv, ctx.confide_env(port=8080, **extra))
    try:
        return read_child_json(proc, timeout=3600)
    finally:
        ctx.processes.stop([proc])


def _describe(out: dict[str, Any]) -> str:
    counts = {k: v for k, v in out.items() if k not in ("wall_ms", "rss_before_mb", "maxrss_mb")}
    return (
        f"{out['wall_ms']:8.0f} ms  RSS {out['rss_before_mb']:.0f} MB before, growth "
        f"{out['pass_peak_mb'] - out['rss_before_mb']:.1f} MB  "
        + ", ".join(f"{k} {v:,.0f}" for k, v in counts.items() if k != "pass_peak_mb")
    )


# --- Erasure -----------------------------------------------------------------------------


def _erasure(ctx: Context) -> list[Result]:
    teams = asyncio.run(_teams(ctx))
    results: list[Result] = []
    growth: dict[int, float] = {}
    sizes = (max(ERASURE_THREADS // 10, 1000), ERASURE_THREADS)
    for size in sizes:
        started = time.monotonic()
        expired = asyncio.run(_load_erasure(ctx, teams, size))
        label = f"{expired:,} expired among {size:,}"
        say(f"\n  {label}: loaded and vacuumed in {time.monotonic() - started:.0f} s")
        confide: list[dict[str, Any]] = []
        bare: list[dict[str, Any]] = []
        runs = ctx.runs if size == sizes[-1] else max(1, ctx.runs - 1)
        for i in range(runs):
            for which in ("bare", "confide") if i % 2 == 0 else ("confide", "bare"):
                out = _child(ctx, which)
                assert out["erased"] == expired, out
                (bare if which == "bare" else confide).append(out)
                say(f"    run {i + 1} {which:<8} {_describe(out)}")
                asyncio.run(_restore(ctx))
        growth[size] = median([c["pass_peak_mb"] - c["rss_before_mb"] for c in confide])
        name = f"erasure, {label}:"
        results += [
            Result(
                f"{name} time Confide ÷ bare DELETE",
                tuple(c["wall_ms"] / b["wall_ms"] for c, b in zip(confide, bare, strict=True)),
                target=RATIO_TARGET if size == sizes[-1] else None,
            ),
            Result(f"{name} Confide pass", tuple(c["wall_ms"] for c in confide), "ms", digits=0),
            Result(f"{name} bare DELETE", tuple(b["wall_ms"] for b in bare), "ms", digits=0),
            Result(
                f"{name} peak RSS Confide ÷ bare",
                tuple(
                    c["pass_peak_mb"] / b["pass_peak_mb"]
                    for c, b in zip(confide, bare, strict=True)
                ),
            ),
            Result(
                f"{name} Confide RSS growth during the pass",
                tuple(c["pass_peak_mb"] - c["rss_before_mb"] for c in confide),
                "MB",
                digits=1,
            ),
        ]
    small, large = sizes
    say(f"  RSS growth {growth[small]:.1f} MB at {small:,}, {growth[large]:.1f} MB at {large:,}")
    return results


async def _teams(ctx: Context) -> list[Team]:
    async with connect(ctx) as conn:
        return await create_teams(conn, TEAMS)


async def _drop_copies(ctx: Context) -> None:
    async with connect(ctx) as conn:
        for table in COPIES:
            await conn.execute(f"DROP TABLE IF EXISTS {table}")


async def _load_erasure(ctx: Context, teams: list[Team], size: int) -> int:
    await _drop_copies(ctx)
    async with connect(ctx) as conn:
        await conn.execute("TRUNCATE threads CASCADE")
        await conn.execute("DELETE FROM outbox")
        await conn.execute("TRUNCATE erasures")
        await conn.execute(
            LOAD_THREADS,
            size,
            [t.category for t in teams],
            [t.id for t in teams],
            len(teams),
            AS_OF,
        )
        await conn.execute(LOAD_OUTBOX)
        await conn.execute(LOAD_MESSAGES, AS_OF)
        await conn.execute(LOAD_AUDIT, AS_OF)
        for statement in SAVE:
            await conn.execute(statement, *([AS_OF] if "$1" in statement else []))
        await conn.execute("VACUUM ANALYZE threads, outbox, messages, audit_log")
        expired: int = await conn.fetchval("SELECT count(*) FROM bench_erase_threads")
    return expired


async def _restore(ctx: Context) -> None:
    async with connect(ctx) as conn:
        for statement in RESTORE:
            await conn.execute(statement)
        await conn.execute("VACUUM ANALYZE threads, outbox, messages, audit_log, erasures")


# --- Rotation ----------------------------------------------------------------------------


def _rotation(ctx: Context) -> list[Result]:
    b1 = "b1:" + base64.b64encode(secrets.token_bytes(32)).decode()
    b2 = "b2:" + base64.b64encode(secrets.token_bytes(32)).decode()
    teams = asyncio.run(_teams_existing(ctx))
    started = time.monotonic()
    asyncio.run(_load_rotation(ctx, teams, ROTATION_THREADS, Keyring(parse_keyring(b1))))
    say(
        f"\n  rotation over {ROTATION_THREADS:,} threads: loaded in "
        f"{time.monotonic() - started:.0f} s"
    )
    rewrap: list[dict[str, Any]] = []
    reencrypt: list[dict[str, Any]] = []
    for i in range(ctx.runs):
        ring = f"{b2},{b1}" if i % 2 == 0 else f"{b1},{b2}"
        for mode, into in (("rewrap", rewrap), ("reencrypt", reencrypt)):
            out = _child(ctx, mode, ring)
            into.append(out)
            say(f"    run {i + 1} {mode:<9} {_describe(out)}")
    name = f"rotation, {ROTATION_THREADS:,} threads:"
    return [
        Result(f"{name} rewrap thread keys", tuple(r["wall_ms"] for r in rewrap), "ms", digits=0),
        Result(
            f"{name} re-encrypt one value a thread",
            tuple(r["wall_ms"] for r in reencrypt),
            "ms",
            digits=0,
        ),
        Result(
            f"{name} rewrap ÷ re-encrypt",
            tuple(a["wall_ms"] / b["wall_ms"] for a, b in zip(rewrap, reencrypt, strict=True)),
        ),
    ]


async def _teams_existing(ctx: Context) -> list[Team]:
    async with connect(ctx) as conn:
        rows = await conn.fetch(
            """SELECT t.id, t.slug, c.slug AS category FROM teams t
               JOIN categories c ON c.team_id = t.id WHERE t.slug LIKE 'bench-team-%'
               ORDER BY t.id"""
        )
    return [Team(r["id"], r["slug"], r["category"]) for r in rows]


async def _load_rotation(ctx: Context, teams: list[Team], size: int, ring: Keyring) -> None:
    """``size`` closed threads: a real data key wrapped by ``b1`` for its quarter (untagged
    keyring: ``b1``), and the report sealed by ``b1`` as before thread keys."""
    await _drop_copies(ctx)
    due = AS_OF + timedelta(days=200)
    quarter = quarter_of(due)
    async with connect(ctx) as conn:
        await conn.execute("TRUNCATE threads CASCADE")
        await conn.execute("DELETE FROM outbox")
        batch: list[tuple[Any, ...]] = []
        for n in range(size):
            tid = uuid.uuid4()
            team = teams[n % len(teams)]
            _, key_id, wrapped = ring.new_thread_key(tid, quarter)
            description = ring.seal(f"Report {n}", f"threads.description:{tid}")
            batch.append(
                (
                    tid,
                    f"R-{n:08d}",
                    team.category,
                    team.id,
                    True,
                    True,
                    "closed",
                    due - timedelta(days=500),
                    description,
                    due - timedelta(days=365),
                    due - timedelta(days=365),
                    due,
                    wrapped,
                    key_id,
                    quarter,
                )
            )
            if len(batch) == 20_000 or n == size - 1:
                await conn.copy_records_to_table(
                    "threads",
                    records=batch,
                    columns=[
                        "id",
                        "reference",
                        "category_slug",
                        "team_id",
                        "anonymous",
                        "follow_up",
                        "status",
                        "received_at",
                        "description",
                        "last_activity_at",
                        "closed_at",
                        "erasure_due_at",
                        "data_key",
                        "data_key_id",
                        "data_key_quarter",
                    ],
                )
                batch = []
        await conn.execute("VACUUM ANALYZE threads")
