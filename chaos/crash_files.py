"""Attachments in the crash run (issue 17, item 6): what the harness watches, and what it counts.

Reporters upload files (:mod:`chaos.files`) and send them with their reports and messages while
the workers, the ``files`` worker included, are SIGKILLed (some of those kills land while a file
is being stripped), Redis is restarted and PostgreSQL stops. At the end every attachment that
was accepted must have been stripped exactly once: ``ready`` (or ``quarantined``, for the file
damaged on purpose), none lost, none stripped twice, each ready one downloadable by the case
worker, still opening as its type, without its canaries; and no file canary in any sink.

"Exactly once" is observed in PostgreSQL, by triggers the harness adds to its private database
after the migrations (they exist nowhere in the product):

- ``chaos_strip_outcomes``: one row each time an attachment's state leaves ``preparing``, in the
  transaction that commits it, so only committed outcomes count;
- ``chaos_late_copies``: a stripped or preview chunk written or deleted while its attachment is
  no longer ``preparing``: a second stripping run touching a finished file.

A SIGKILLed stripping run leaves its lease behind (30 s; a live run renews it), a run that failed
otherwise a back-off. After the outbox drain the harness waits, moving nothing forward, until no
attachment is ``preparing`` (at most the drain limit), and prints how many were leased or backing
off when it began.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import asyncpg

from chaos import files as chaos_files

if TYPE_CHECKING:
    from chaos.crash import System

OBSERVERS = """
CREATE TABLE chaos_strip_outcomes (
    attachment_id uuid NOT NULL, to_state text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION chaos_strip_outcome() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.state = 'preparing' AND NEW.state <> 'preparing' THEN
        INSERT INTO chaos_strip_outcomes (attachment_id, to_state) VALUES (NEW.id, NEW.state);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER chaos_strip_outcome AFTER UPDATE OF state ON attachments
    FOR EACH ROW EXECUTE FUNCTION chaos_strip_outcome();
CREATE TABLE chaos_late_copies (
    file_id uuid NOT NULL, copy text NOT NULL, idx integer NOT NULL, op text NOT NULL,
    state text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION chaos_late_copy() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    chunk attachment_chunks;
    found text;
BEGIN
    chunk := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    IF chunk.copy IN ('stripped', 'preview') THEN
        SELECT state INTO found FROM attachments WHERE id = chunk.file_id;
        IF found IS NOT NULL AND found <> 'preparing' THEN
            INSERT INTO chaos_late_copies (file_id, copy, idx, op, state)
            VALUES (chunk.file_id, chunk.copy, chunk.idx, TG_OP, found);
        END IF;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER chaos_late_copy AFTER INSERT OR UPDATE OR DELETE ON attachment_chunks
    FOR EACH ROW EXECUTE FUNCTION chaos_late_copy();
"""
UPLOAD_PATH = "/api/v1/uploads"
CHUNK_BYTES = 256 * 1024  # confide.files.store.CHUNK_BYTES
# What a file's type in the attachments table says it was made as.
KIND_OF_TYPE = {"jpeg": "photo", "pdf": "letter", "png": "scan"}


async def available(system: System, files: chaos_files.FileSet) -> str | None:
    """None when this build takes attachments (the table and the upload endpoint are there);
    else why the crash run goes without them."""
    conn = await asyncpg.connect(system.pg.url)
    try:
        if not await conn.fetchval("SELECT to_regclass('attachments') IS NOT NULL"):
            return "no attachments table"
    finally:
        await conn.close()
    body, content_type = chaos_files.multipart(files.data["letter"], "probe.pdf", "application/pdf")
    async with (
        aiohttp.ClientSession(base_url=system.base_url) as http,
        http.post(UPLOAD_PATH, data=body, headers={"Content-Type": content_type}) as resp,
    ):
        if resp.status != 201:
            return f"POST {UPLOAD_PATH} answered {resp.status}"
    return None


async def install_observers(system: System) -> None:
    conn = await asyncpg.connect(system.pg.url)
    try:
        await conn.execute(OBSERVERS)
    finally:
        await conn.close()


class LeaseWatch:
    """Whether a stripping run holds an attachment right now, on one connection kept open
    between polls (and opened again after PostgreSQL's outage)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: asyncpg.Connection | None = None
        self.errors = 0

    async def leased(self) -> bool:
        try:
            if self.conn is None or self.conn.is_closed():
                self.conn = await asyncpg.connect(self.url, timeout=2)
            return bool(
                await self.conn.fetchval(
                    """SELECT count(*) FROM attachments
                       WHERE state = 'preparing' AND leased_until > now()""",
                    timeout=2,
                )
            )
        except Exception:
            # A probe: after PostgreSQL's restart asyncpg can also raise InternalClientError
            # ("another operation is in progress"). Start afresh.
            self.errors += 1
            await self.close()
            return False

    async def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                await self.conn.close()
            self.conn = None


@dataclass
class Drained:
    seconds: float = 0.0
    leased: int = 0  # preparing, with a run's lease, when the drain began
    backing_off: int = 0  # preparing, due again only later
    left: int = 0


async def drain(system: System, limit_s: float) -> Drained:
    """Until nothing is ``preparing``: a killed run's lease runs out (30 s), the relay sends the
    id again, and a run that failed waits out its back-off. Nothing is moved forward."""
    conn = await asyncpg.connect(system.pg.url)
    try:
        row = await conn.fetchrow(
            """SELECT count(*) FILTER (WHERE leased_until > now()) AS leased,
                      count(*) FILTER (WHERE next_attempt_at > now()) AS backing_off
               FROM attachments WHERE state = 'preparing'"""
        )
    finally:
        await conn.close()
    started = time.monotonic()
    left: int | None = None  # None: PostgreSQL did not answer the last look
    while time.monotonic() - started < limit_s:
        left = await system.pg.count("SELECT count(*) FROM attachments WHERE state = 'preparing'")
        if left == 0:
            break
        await asyncio.sleep(1)
    return Drained(time.monotonic() - started, row["leased"], row["backing_off"], left or 0)


@dataclass
class FileFigures:
    missing: int = 0  # accepted attachments without their row
    duplicated: int = 0  # rows beyond the files sent for a thread
    not_prepared: int = 0  # still preparing after the drain
    stripped_twice: int = 0
    wrong_outcome: int = 0  # an intact file quarantined, or the damaged one ready
    unservable: int = 0  # ready but not downloadable as its stripped self; quarantined served
    refused: int = 0  # uploads or attachments the product refused
    canary_hits: int = 0
    folders_left: int = 0  # stripping folders of killed runs: decrypted originals on disk
    control_missing: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)

    def judged(self) -> dict[str, int]:
        return {
            "attachments_missing": self.missing,
            "attachments_duplicated": self.duplicated,
            "attachments_not_prepared": self.not_prepared,
            "attachments_stripped_twice": self.stripped_twice,
            "attachments_wrong_outcome": self.wrong_outcome,
            "attachments_unservable": self.unservable,
            "attachment_requests_refused": self.refused,
            "file_canary_hits": self.canary_hits,
            "stripping_folders_left": self.folders_left,
        }

    def ok(self) -> bool:
        return not any(self.judged().values()) and not self.control_missing


async def figures(
    system: System,
    files: chaos_files.FileSet,
    sent: dict[str, list[str]],
    refused: Counter[str],
    uploads: Counter[str],
    drained: Drained,
) -> FileFigures:
    """``sent``: reference -> kinds of the files in its acknowledged report and messages."""
    out = FileFigures(refused=sum(refused.values()))
    conn = await asyncpg.connect(system.pg.url)
    try:
        rows = await conn.fetch(
            """SELECT a.id, t.reference, a.file_type, a.state, a.strip_failure, a.attempts,
                      a.stripped_size,
                      (SELECT count(*) FROM attachment_chunks c
                       WHERE c.file_id = a.id AND c.copy = 'original') AS originals,
                      (SELECT count(*) FROM attachment_chunks c
                       WHERE c.file_id = a.id AND c.copy = 'stripped') AS stripped_chunks,
                      (SELECT count(*) FROM chaos_strip_outcomes o
                       WHERE o.attachment_id = a.id) AS outcomes
               FROM attachments a JOIN threads t ON t.id = a.thread_id"""
        )
        late = await conn.fetch("SELECT DISTINCT file_id FROM chaos_late_copies")
        late_ops = await conn.fetch(
            "SELECT op, copy, count(*) AS n FROM chaos_late_copies GROUP BY 1, 2"
        )
    finally:
        await conn.close()
    by_thread: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        by_thread.setdefault(row["reference"], []).append(row)
    for reference, kinds in sent.items():
        stored = by_thread.get(reference, [])
        out.missing += max(0, len(kinds) - len(stored))
        out.duplicated += max(0, len(stored) - len(kinds))
        damaged = kinds.count(chaos_files.DAMAGED)
        quarantined = sum(1 for r in stored if r["state"] == "quarantined")
        out.wrong_outcome += abs(damaged - quarantined) if len(stored) == len(kinds) else 0
    out.not_prepared = sum(1 for r in rows if r["state"] == "preparing")
    out.stripped_twice = sum(max(0, r["outcomes"] - 1) for r in rows) + len(late)
    for row in rows:
        if row["state"] == "ready":
            expected = max(1, -(-int(row["stripped_size"] or 0) // CHUNK_BYTES))
            if row["originals"] or row["stripped_chunks"] != expected:
                out.unservable += 1
    out.unservable += await _downloads(system, files, rows)
    states = Counter(r["state"] for r in rows)
    out.details = {
        "uploads": dict(uploads),
        "attachments accepted": sum(len(k) for k in sent.values()),
        "attachments stored": len(rows),
        "by state": dict(states),
        "quarantine reasons": dict(Counter(r["strip_failure"] for r in rows if r["strip_failure"])),
        "stripping runs per attachment": dict(sorted(Counter(r["attempts"] for r in rows).items())),
        "preparing when the drain began (leased, backing off)": [
            drained.leased,
            drained.backing_off,
        ],
        "file drain time s": round(drained.seconds, 1),
        "late writes to finished copies": {f"{r['op']} {r['copy']}": r["n"] for r in late_ops},
        "refused": dict(refused),
    }
    return out


async def _downloads(system: System, files: chaos_files.FileSet, rows: list[asyncpg.Record]) -> int:
    """Each ready attachment through the case worker's API: 200, its stripped size, opens as
    its type, no canary; each quarantined one 409. Returns how many were not so."""
    from chaos.crash import STAFF_EMAIL

    bad = 0
    raw = [v.encode() for _, v in files.all_canaries()]
    async with aiohttp.ClientSession(base_url=system.base_url) as http:
        async with http.post(
            "/api/v1/staff/session", json={"email": STAFF_EMAIL, "password": system.staff_password}
        ) as resp:
            token = (await resp.json())["token"]
        auth = {"Authorization": f"Bearer {token}"}
        for row in rows:
            if row["state"] not in ("ready", "quarantined"):
                continue
            async with http.get(f"/api/v1/staff/attachments/{row['id']}", headers=auth) as resp:
                body = await resp.read()
                if row["state"] == "quarantined":
                    bad += resp.status != 409
                    continue
                kind = KIND_OF_TYPE.get(row["file_type"], "")
                if (
                    resp.status != 200
                    or len(body) != row["stripped_size"]
                    or any(c in body for c in raw)
                    or not chaos_files.opens(kind, body)
                ):
                    bad += 1
    return bad


def sinks(system: System) -> dict[str, bytes]:
    """What the canary scan reads, as it reads it (chaos.canary): a pg_dump, every Redis key and
    its DUMP, Redis's files, every log, and the temporary folders of every process."""
    import redis

    dump = subprocess.run(  # noqa: S603 - Debian's or the wheel's pg_dump, our own server
        [str(system.pg.bin / "pg_dump"), "-h", "127.0.0.1", "-p", str(system.pg.port), "-U",
         "postgres", "confide"],
        capture_output=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    client = redis.Redis.from_url(system.redis.url)
    keys = []
    try:
        for key in client.scan_iter(count=500):
            keys.append(key)
            with contextlib.suppress(redis.RedisError):
                dumped = client.dump(key)
                if isinstance(dumped, bytes):
                    keys.append(dumped)
    finally:
        client.close()
    return {
        "pg_dump": dump,
        "redis keys": b"\n".join(keys),
        "redis AOF/RDB": _files(system.redis.dir),
        "logs": _files(system.root / "logs"),
        "temporary files": _files(system.root / "tmp"),
    }


def _files(folder: Path) -> bytes:
    parts = []
    for path in sorted(folder.rglob("*")) if folder.exists() else ():
        if path.is_file():
            with contextlib.suppress(OSError):
                parts.append(path.read_bytes())
    return b"\n".join(parts)


async def plant(system: System, value: str) -> None:
    """The positive control: ``value`` put where each sink keeps data."""
    import redis

    conn = await asyncpg.connect(system.pg.url)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS chaos_planted_file (value text)")
        await conn.execute("INSERT INTO chaos_planted_file VALUES ($1)", value)
    finally:
        await conn.close()
    client = redis.Redis.from_url(system.redis.url)
    try:
        client.set("chaos-planted-file", base64.b64encode(value.encode()))
        client.bgrewriteaof()
    finally:
        client.close()
    with (system.root / "logs" / "web.log").open("a") as log:
        log.write(json.dumps({"event": "planted", "value": value}) + "\n")
    (system.root / "tmp").mkdir(exist_ok=True)
    (system.root / "tmp" / "chaos-planted").write_text(value)


def leftovers(system: System) -> list[str]:
    """Stripping folders a killed run left behind (``confide-strip-*``)."""
    folder = system.root / "tmp"
    return sorted(p.name for p in folder.glob("confide-strip-*")) if folder.exists() else []


async def scan(system: System, files: chaos_files.FileSet, out: FileFigures) -> None:
    from chaos import canary

    planted = chaos_files.tag("PlantedFile")
    await plant(system, planted)
    await asyncio.sleep(2)  # the AOF rewrite
    started = time.monotonic()
    found = await asyncio.to_thread(sinks, system)
    lowered = {name: blob.lower() for name, blob in found.items()}
    for kind, value in files.all_canaries():
        for name, blob in found.items():
            hits = canary.scan(blob, value, lower=lowered[name])
            if hits:
                out.canary_hits += len(hits)
                out.hits.append(f"{kind} in {name}: {hits}")
    out.control_missing = [
        name for name, blob in found.items() if not canary.scan(blob, planted, lower=lowered[name])
    ]
    out.details["sinks scanned"] = {name: len(blob) for name, blob in found.items()}
    out.details["file scan s"] = round(time.monotonic() - started, 1)
    out.folders_left = len(leftovers(system))
