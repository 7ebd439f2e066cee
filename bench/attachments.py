"""Attachments (issue 17): upload throughput, the web's memory while files stream in, stripping.

**Uploads.** 20 MiB JPEGs sent to Confide's ``POST /api/v1/uploads`` (CONTRACTS §3: typed by
libmagic, limits, SHA-256, AES-GCM chunks in PostgreSQL) and to the bare baseline
(:mod:`bench.bare_upload`: the same multipart bytes streamed into a bytea chunks table of the same
chunk size on the same server), 4 uploads at a time for ``--secs`` seconds, in ABBA order.
Target: Confide's MiB/s at least 0.50 of the bare handler's. The uploads are deleted (untimed)
after each run.

**Web memory.** A fresh web process per measurement: idle RSS after two small uploads, then 8
files (4 at a time) of 20 MiB, or of 1 MiB, with the process's peak RSS (``VmHWM``, reset through
``/proc/PID/clear_refs`` just before) read after the last. Target: the growth over idle with
20 MiB files under 2× the growth with 1 MiB files (an upload is streamed, never held whole). The
bare handler's figures are printed beside, for scale.

**Stripping.** A JPEG (lossless path), a PDF of scanned pages and a PNG (re-encoded), each of
20 MiB, stripped by the worker's own ``strip_in_private_dir`` in a fresh child process per run
(:mod:`bench.strip_child`): time per MiB, and the RSS growth over idle. Targets: growth under 3×
the file size for JPEG and PDF, and under 2× the decoded size (width × height × bands) for PNG.

**The files worker, end to end.** A fresh Celery worker on the ``files`` queue (one pool process)
per run; a report with one 20 MiB JPEG, PDF or PNG attached through the API; then, with the pool
process's ``VmHWM`` reset, the stripping task sent for it and timed until the attachment is no
longer ``preparing``: decrypting the original to disk, the task's own checks, stripping, the
preview, storing the copies. Same targets as the stripping part. (After a warm-up attachment of
the same type, so that the libraries' set-up counts as idle.) The stripping itself runs in a
child of the pool process (workers.strip_child, under a memory limit), whose peak is sampled
while it lives: the figure judged is the pool process's growth plus the child's peak beyond what
the child takes for the 64 KiB warm-up file (its own interpreter and libraries, printed apart).

The test files are made deterministically and cached (:mod:`bench.attachment_files`).
``CONFIDE_BENCH_ATTACHMENT_MIB`` changes the large files' size (default 20) and
``CONFIDE_BENCH_ATTACHMENT_PARTS`` picks parts (``upload,memory,strip,worker``, the default). Alone:
``python -m bench --only attachments``, or ``python -m bench.attachments --parts strip --mib 4``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench import attachment_files as files
from bench import bare_upload
from bench.common import (
    Context,
    Result,
    Target,
    database_cpu_s,
    log_tail,
    open_context,
    process_cpu_s,
    say,
    settle,
)
from bench.fixtures import (
    Web,
    connect,
    drop_bench_rows,
    read_child_json,
    start_web,
    wait_idle,
)

NAME = "attachments"
TITLE = "Attachments: 20 MiB uploads against a bare streaming handler, web memory, stripping"
MIB = files.MIB
PARTS = ("upload", "memory", "strip", "worker")
UPLOAD_PATH = "/api/v1/uploads"
CONCURRENCY = 4
MEMORY_FILES = 8
SMALL = 64 * 1024  # the warm-up files
THROUGHPUT_TARGET = Target(">=", 0.5)
FLAT_TARGET = Target("<", 2.0)
FILE_SIZE_TARGET = Target("<", 3.0)
DECODED_TARGET = Target("<", 2.0)
BOUNDARY = "confide-bench-attachment-boundary"
# Anonymous uploads count against the submission limits, which the bench's context raises
# (bench.common._new_secrets): uploads are measured, not the abuse limits.
# What Confide's uploads leave (att-core's migration): emptied between runs.
CONFIDE_UPLOAD_TABLES = ("uploads", "attachment_chunks")


@dataclass
class Config:
    large_mib: float = float(os.environ.get("CONFIDE_BENCH_ATTACHMENT_MIB", "20"))
    parts: tuple[str, ...] = tuple(
        p for p in os.environ.get("CONFIDE_BENCH_ATTACHMENT_PARTS", ",".join(PARTS)).split(",") if p
    )

    @property
    def large(self) -> int:
        return int(self.large_mib * MIB)


CONFIG = Config()


def run(ctx: Context) -> list[Result]:
    unknown = set(CONFIG.parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"CONFIDE_BENCH_ATTACHMENT_PARTS: unknown {', '.join(sorted(unknown))}")
    started = time.monotonic()
    made = {kind: files.cached(kind, CONFIG.large) for kind in ("jpeg", "pdf", "png")}
    say(
        f"  test files ({files.CACHE}, {time.monotonic() - started:.1f} s): "
        + ", ".join(f"{k} {p.stat().st_size / MIB:.2f} MiB" for k, p in made.items())
    )
    results: list[Result] = []
    if {"upload", "memory", "worker"} & set(CONFIG.parts):
        results += _uploads(ctx)
    if "strip" in CONFIG.parts:
        results += _stripping(ctx)
    return results


# --- Uploads -------------------------------------------------------------------------------------


def multipart(data: bytes, name: str = "photo.jpg", content_type: str = "image/jpeg") -> bytes:
    """One part named ``file``, as a browser sends it."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


HEADERS = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


@dataclass
class Sent:
    statuses: dict[int, int]
    ok_bytes: int
    wall_s: float
    errors: list[str]
    ids: list[str]

    @property
    def mib_s(self) -> float:
        return self.ok_bytes / MIB / max(1e-6, self.wall_s)

    @property
    def ok(self) -> int:
        return self.statuses.get(201, 0)


async def _send(url: str, body: bytes, size: int, *, secs: float | None, count: int | None) -> Sent:
    """``CONCURRENCY`` clients posting ``body`` until ``secs`` have passed (the uploads under way
    then finish and count) or ``count`` uploads are done."""
    statuses: dict[int, int] = {}
    errors: list[str] = []
    ids: list[str] = []
    ok = 0
    started = time.monotonic()
    left = [count if count is not None else -1]
    timeout = aiohttp.ClientTimeout(total=300)

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal ok
        while True:
            if secs is not None and time.monotonic() - started >= secs:
                return
            if count is not None:
                if left[0] <= 0:
                    return
                left[0] -= 1
            try:
                async with http.post(url, data=body, headers=HEADERS) as resp:
                    text = await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                    if resp.status == 201:
                        ok += size
                        ids.append(str(json.loads(text)["upload_id"]))
                    elif len(errors) < 3:
                        errors.append(f"{resp.status} {text[:200]!r}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                statuses[0] = statuses.get(0, 0) + 1
                if len(errors) < 3:
                    errors.append(f"{type(exc).__name__}: {exc}")

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        await asyncio.gather(*(client(http) for _ in range(CONCURRENCY)))
    return Sent(statuses, ok, time.monotonic() - started, errors, ids)


def send(
    url: str, body: bytes, size: int, *, secs: float | None = None, count: int | None = None
) -> Sent:
    return asyncio.run(_send(url, body, size, secs=secs, count=count))


def _probe(web: Web) -> str | None:
    """None when Confide answers an upload with 201; else why the upload figures are skipped."""
    got = send(
        web.url(UPLOAD_PATH), multipart(files.cached("jpeg", SMALL).read_bytes()), SMALL, count=1
    )
    if got.ok == 1:
        return None
    return f"POST {UPLOAD_PATH} answered {got.errors or got.statuses}"


def _start_bare(ctx: Context, name: str) -> Web:
    from bench.common import free_port, wait_http

    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "bench.bare_upload",
        "--port",
        str(port),
        "--dsn",
        ctx.database_url,
    ]
    proc = ctx.processes.start(name, argv, ctx.base_env())
    wait_http(f"http://127.0.0.1:{port}/healthz", [proc])
    return Web(port, [proc], ctx.base_env())


def _empty(ctx: Context) -> None:
    """Delete every upload either side kept (untimed), and checkpoint, so that one run's writes
    are not flushed during the next."""

    async def go() -> None:
        async with connect(ctx) as conn:
            for table in CONFIDE_UPLOAD_TABLES:
                if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
                    await conn.execute(f"TRUNCATE {table}")
            if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", bare_upload.UPLOADS):
                await conn.execute(bare_upload.EMPTY)

    asyncio.run(go())
    settle(ctx)


def _drop_bare(ctx: Context) -> None:
    async def go() -> None:
        async with connect(ctx) as conn:
            await conn.execute(bare_upload.DROP)

    with contextlib.suppress(OSError):
        asyncio.run(go())


@dataclass
class Timed:
    sent: Sent
    web_cpu_ms_per_mib: float
    db_cpu_ms_per_mib: float | None

    def describe(self) -> str:
        db = "–" if self.db_cpu_ms_per_mib is None else f"{self.db_cpu_ms_per_mib:.1f}"
        text = (
            f"{self.sent.mib_s:7.1f} MiB/s  {self.sent.ok} uploads in {self.sent.wall_s:.1f} s  "
            f"statuses {self.sent.statuses}  CPU ms/MiB web {self.web_cpu_ms_per_mib:.1f}, "
            f"PostgreSQL {db}"
        )
        if self.sent.errors:
            text += f"  errors: {self.sent.errors}"
        return text


def _timed(ctx: Context, server: Web, body: bytes, size: int) -> Timed:
    wait_idle(ctx)
    pid = server.procs[0].pid
    cpu, db = process_cpu_s(pid), database_cpu_s(ctx)
    got = send(server.url(UPLOAD_PATH), body, size, secs=ctx.secs)
    mib = max(1e-6, got.ok_bytes / MIB)
    web_ms = 1000 * (process_cpu_s(pid) - cpu) / mib
    db_after = database_cpu_s(ctx)
    db_ms = None if db is None or db_after is None else 1000 * (db_after - db) / mib
    _empty(ctx)
    return Timed(got, web_ms, db_ms)


def _uploads(ctx: Context) -> list[Result]:
    probe_web = start_web(ctx, "web-attachments-probe")
    try:
        why = _probe(probe_web)
    finally:
        ctx.processes.stop(probe_web.procs)
    if why is not None:
        say(f"  uploads: skipped, Confide's upload endpoint is not there yet ({why})")
        _empty(ctx)
        return []
    results: list[Result] = []
    try:
        if "upload" in CONFIG.parts:
            results += _throughput(ctx)
        if "memory" in CONFIG.parts:
            results += _memory(ctx)
        if "worker" in CONFIG.parts:
            results += _worker(ctx)
    finally:
        _empty(ctx)
        _drop_bare(ctx)
        drop_bench_rows(ctx)
    return results


def _throughput(ctx: Context) -> list[Result]:
    size = CONFIG.large
    body = multipart(files.cached("jpeg", size).read_bytes())
    say(f"\n  upload throughput: {size / MIB:g} MiB JPEGs, {CONCURRENCY} at a time, ABBA")
    confide = start_web(ctx, "web-attachments")
    bare = _start_bare(ctx, "bare-upload")
    try:
        for server in (bare, confide):  # warm-up: pools, imports, the first chunks
            send(server.url(UPLOAD_PATH), body, size, count=CONCURRENCY)
        _empty(ctx)
        pairs: list[tuple[Timed, Timed]] = []
        for i in range(ctx.runs):
            done: dict[str, Timed] = {}
            for which in ("bare", "confide") if i % 2 == 0 else ("confide", "bare"):
                done[which] = _timed(ctx, bare if which == "bare" else confide, body, size)
                say(f"    run {i + 1} {which:<8} {done[which].describe()}")
                if done[which].sent.ok == 0:
                    raise RuntimeError(f"{which}: no upload succeeded: {done[which].sent.errors}")
            pairs.append((done["confide"], done["bare"]))
    finally:
        ctx.processes.stop([*confide.procs, *bare.procs])
    label = f"uploads of {size / MIB:g} MiB, {CONCURRENCY} at a time:"
    return [
        Result(
            f"{label} MiB/s Confide ÷ bare",
            tuple(c.sent.mib_s / b.sent.mib_s for c, b in pairs),
            target=THROUGHPUT_TARGET,
        ),
        Result(f"{label} Confide", tuple(c.sent.mib_s for c, _ in pairs), "MiB/s", digits=1),
        Result(f"{label} bare", tuple(b.sent.mib_s for _, b in pairs), "MiB/s", digits=1),
        Result(
            f"{label} web CPU per MiB Confide ÷ bare",
            tuple(c.web_cpu_ms_per_mib / b.web_cpu_ms_per_mib for c, b in pairs),
        ),
    ]


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


@dataclass(frozen=True)
class Growth:
    idle_mib: float
    peak_mib: float
    ok: int

    @property
    def growth_mib(self) -> float:
        return self.peak_mib - self.idle_mib


def _growth(ctx: Context, which: str, size: int, run: int) -> Growth:
    """One fresh server: idle RSS after two small uploads, then the peak while MEMORY_FILES of
    ``size`` stream in."""
    name = f"{which}-rss-{size}-{run}"
    server = start_web(ctx, name) if which == "confide" else _start_bare(ctx, name)
    try:
        url = server.url(UPLOAD_PATH)
        small = multipart(files.cached("jpeg", SMALL).read_bytes())
        send(url, small, SMALL, count=2)
        body = multipart(files.cached("jpeg", size).read_bytes())
        wait_idle(ctx)
        pid = server.procs[0].pid
        idle = _status_kb(pid, "VmRSS") / 1024
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        got = send(url, body, size, count=MEMORY_FILES)
        peak = _status_kb(pid, "VmHWM") / 1024
    finally:
        ctx.processes.stop(server.procs)
    if got.ok != MEMORY_FILES:
        raise RuntimeError(f"{which}: {got.ok} of {MEMORY_FILES} uploads succeeded: {got.errors}")
    return Growth(idle, peak, got.ok)


def _memory(ctx: Context) -> list[Result]:
    sizes = (1 * MIB, CONFIG.large)
    say(
        f"\n  web memory: {MEMORY_FILES} files of 1 MiB, then of {CONFIG.large / MIB:g} MiB, "
        f"{CONCURRENCY} at a time, a fresh process each"
    )
    grown: dict[tuple[str, int], list[Growth]] = {}
    for i in range(ctx.runs):
        for which in ("confide", "bare"):
            order = sizes if i % 2 == 0 else sizes[::-1]
            for size in order:
                g = _growth(ctx, which, size, i)
                grown.setdefault((which, size), []).append(g)
                say(
                    f"    run {i + 1} {which:<8} {size / MIB:5g} MiB files: idle {g.idle_mib:.1f} "
                    f"MiB, peak {g.peak_mib:.1f} MiB, growth {g.growth_mib:.1f} MiB"
                )
        _empty(ctx)
    small, large = sizes
    label = f"web RSS growth over idle, {MEMORY_FILES} uploads {CONCURRENCY} at a time:"

    def values(which: str, size: int) -> tuple[float, ...]:
        return tuple(g.growth_mib for g in grown[(which, size)])

    return [
        Result(
            f"{label} {large / MIB:g} MiB ÷ 1 MiB files, Confide",
            tuple(
                a.growth_mib / max(0.1, b.growth_mib)
                for a, b in zip(grown[("confide", large)], grown[("confide", small)], strict=True)
            ),
            target=FLAT_TARGET,
        ),
        Result(f"{label} Confide, 1 MiB files", values("confide", small), "MiB", digits=1),
        Result(
            f"{label} Confide, {large / MIB:g} MiB files", values("confide", large), "MiB", digits=1
        ),
        Result(f"{label} bare, 1 MiB files", values("bare", small), "MiB", digits=1),
        Result(f"{label} bare, {large / MIB:g} MiB files", values("bare", large), "MiB", digits=1),
        Result(
            f"{label} Confide idle RSS",
            tuple(g.idle_mib for g in grown[("confide", large)]),
            "MiB",
            digits=1,
        ),
    ]


# --- Stripping -----------------------------------------------------------------------------------

# kind -> (FileType value, what the growth is compared with, its target)
STRIPPED = {
    "jpeg": ("jpeg", "file size", FILE_SIZE_TARGET),
    "pdf": ("pdf", "file size", FILE_SIZE_TARGET),
    "png": ("png", "decoded size", DECODED_TARGET),
}


def _strip_child(ctx: Context, kind: str, path: Path, warm: Path) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.strip_child", "--type", STRIPPED[kind][0]]
    argv += ["--file", str(path), "--warm", str(warm)]
    proc = ctx.processes.start(f"strip-{kind}", argv, ctx.confide_env(port=8080))
    try:
        return read_child_json(proc, timeout=600)
    finally:
        ctx.processes.stop([proc])


def _stripping(ctx: Context) -> list[Result]:
    size = CONFIG.large
    say(f"\n  stripping, {size / MIB:g} MiB files, a fresh child process each (bench.strip_child)")
    results: list[Result] = []
    for kind, (_, against, target) in STRIPPED.items():
        path = files.cached(kind, size)
        warm = files.cached(kind, SMALL)
        mib = path.stat().st_size / MIB
        base_mib = files.decoded_bytes(path) / MIB if against == "decoded size" else mib
        outs: list[dict[str, Any]] = []
        for i in range(ctx.runs):
            out = _strip_child(ctx, kind, path, warm)
            outs.append(out)
            growth = out["pass_peak_mb"] - out["rss_before_mb"]
            say(
                f"    run {i + 1} {kind:<5} {mib:.2f} MiB ({against} {base_mib:.2f} MiB): "
                f"{out['wall_ms']:7.0f} ms, {out['wall_ms'] / mib:6.1f} ms/MiB; RSS idle "
                f"{out['rss_before_mb']:.1f} MiB, growth {growth:.1f} MiB; stripped copy "
                f"{out['stripped_bytes'] / MIB:.2f} MiB"
                + (f"; CANARIES LEFT: {out['canaries_left']}" if out["canaries_left"] else "")
            )
        label = f"stripping {kind} ({mib:.1f} MiB):"
        growths = tuple(o["pass_peak_mb"] - o["rss_before_mb"] for o in outs)
        results += [
            Result(
                f"{label} time per MiB", tuple(o["wall_ms"] / mib for o in outs), "ms", digits=1
            ),
            Result(f"{label} RSS growth over idle", growths, "MiB", digits=1),
            Result(
                f"{label} RSS growth ÷ {against}",
                tuple(g / base_mib for g in growths),
                target=target,
            ),
            Result(
                f"{label} canaries left in the stripped copy",
                tuple(float(len(o["canaries_left"])) for o in outs),
                target=Target("<=", 0),
                digits=0,
            ),
        ]
    return results


# --- The files worker, end to end ---------------------------------------------------------------

KIND_MIME = {"jpeg": "image/jpeg", "pdf": "application/pdf", "png": "image/png"}


def _start_files_worker(ctx: Context, env: dict[str, str], timeout: float = 60) -> Any:
    """Celery on the ``files`` queue with one pool process; returns (main process, pool pid)
    once it is ready (its heartbeat row, written on ``worker_ready``, appears)."""
    import secrets

    hostname = f"bench-files-{secrets.token_hex(4)}@localhost"
    argv = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", "files"]
    argv += ["-c", "1", "--without-mingle", "--without-gossip", "-n", hostname]
    proc = ctx.processes.start("celery-files", argv, env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the files worker exited with {proc.returncode}:\n{log_tail(proc)}")
        if ctx.fetchval("SELECT 1 FROM heartbeats WHERE name = $1", f"worker:{hostname}"):
            children = _children(proc.pid)
            if children:
                return proc, children[0]
        time.sleep(0.25)
    raise RuntimeError(f"the files worker was not ready within {timeout:.0f} s:\n{log_tail(proc)}")


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _attached(web: Web, path: Path, kind: str) -> str:
    """A report with ``path`` attached, through the API; the attachment's reference."""
    import urllib.request

    got = send(web.url(UPLOAD_PATH), multipart(path.read_bytes(), f"file.{kind}", KIND_MIME[kind]),
               path.stat().st_size, count=1)  # fmt: skip
    if got.ok != 1:
        raise RuntimeError(f"upload of {path.name}: {got.errors or got.statuses}")
    upload_id = got.ids[0]
    body = json.dumps({
        "category": "safety", "description": "Benchmark report with a file", "anonymous": True,
        "follow_up": False, "attachments": [upload_id],
    }).encode()  # fmt: skip
    request = urllib.request.Request(
        web.url("/api/v1/reports"), data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        reference: str = json.loads(resp.read())["reference"]
    return reference


def _attachment_of(ctx: Context, reference: str) -> str:
    return str(
        ctx.fetchval(
            """SELECT a.id FROM attachments a JOIN threads t ON t.id = a.thread_id
               WHERE t.reference = $1""",
            reference,
        )
    )


class _ChildPeaks(threading.Thread):
    """The highest ``VmHWM`` of any process the pool process starts meanwhile: the stripping
    runs in a child of its own (workers.strip_child, under a memory limit), which is gone by the
    time the attachment is ready. Sampled every 10 ms; ``VmHWM`` only rises, so the last sample
    before the child exits misses at most its last 10 ms."""

    def __init__(self, parent: int) -> None:
        super().__init__(daemon=True)
        self.parent = parent
        self.peak_mib = 0.0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            for pid in _children(self.parent):
                with contextlib.suppress(OSError, ValueError, IndexError, RuntimeError):
                    self.peak_mib = max(self.peak_mib, _status_kb(pid, "VmHWM") / 1024)
            self._done.wait(0.01)

    def stop(self) -> float:
        self._done.set()
        self.join()
        return self.peak_mib


def _strip_task(
    ctx: Context, attachment_id: str, timeout: float = 300, pool: int | None = None
) -> tuple[float, str, float]:
    """Send the stripping task for ``attachment_id``; (seconds until it is no longer preparing,
    the state it reached, the peak RSS in MiB of the strip child the pool process ran)."""
    from celery import Celery

    from confide import jobs

    client = Celery("bench-files", broker=ctx.redis_url)
    peaks = _ChildPeaks(pool) if pool is not None else None
    if peaks is not None:
        peaks.start()
    try:
        started = time.monotonic()
        client.send_task(jobs.STRIP_ATTACHMENT, args=[attachment_id], queue=jobs.FILES_QUEUE)
        while time.monotonic() - started < timeout:
            state = ctx.fetchval("SELECT state FROM attachments WHERE id = $1::uuid", attachment_id)
            if state != "preparing":
                child = peaks.stop() if peaks is not None else 0.0
                return time.monotonic() - started, str(state), child
            time.sleep(0.05)
    finally:
        client.close()
        if peaks is not None and peaks.is_alive():
            peaks.stop()
    raise RuntimeError(f"attachment {attachment_id} still preparing after {timeout:.0f} s")


def _worker(ctx: Context) -> list[Result]:
    size = CONFIG.large
    say(f"\n  the files worker, end to end: one {size / MIB:g} MiB file a run, a fresh worker each")
    web = start_web(ctx, "web-attachments-worker")
    results: list[Result] = []
    try:
        for kind, (_, against, target) in STRIPPED.items():
            path = files.cached(kind, size)
            mib = path.stat().st_size / MIB
            base_mib = files.decoded_bytes(path) / MIB if against == "decoded size" else mib
            # (seconds, pool growth, strip child's peak, the child's peak for a small file)
            runs: list[tuple[float, float, float, float]] = []
            for i in range(ctx.runs):
                proc, child = _start_files_worker(ctx, web.env)
                try:
                    warm = _attachment_of(ctx, _attached(web, files.cached(kind, SMALL), kind))
                    _, _, fixed = _strip_task(ctx, warm, pool=child)
                    attachment = _attachment_of(ctx, _attached(web, path, kind))
                    wait_idle(ctx)
                    idle = _status_kb(child, "VmRSS") / 1024
                    Path(f"/proc/{child}/clear_refs").write_text("5")
                    wall, state, stripper = _strip_task(ctx, attachment, pool=child)
                    peak = _status_kb(child, "VmHWM") / 1024
                finally:
                    ctx.processes.stop([proc])
                if state != "ready":
                    raise RuntimeError(f"the {kind} attachment ended {state}")
                runs.append((wall, peak - idle, stripper, fixed))
                say(
                    f"    run {i + 1} {kind:<5} {mib:.2f} MiB: {1000 * wall:7.0f} ms to ready, "
                    f"{1000 * wall / mib:6.1f} ms/MiB; pool process idle {idle:.1f} MiB, growth "
                    f"{peak - idle:.1f} MiB; strip child peak {stripper:.1f} MiB "
                    f"({fixed:.1f} MiB for a {SMALL // 1024} KiB file)"
                )
            label = f"files worker, {kind} ({mib:.1f} MiB):"
            # What the file costs: the pool process's growth, and the strip child's peak beyond
            # what the child takes for a small file (its interpreter and libraries).
            for_file = tuple(g + max(0.0, c - f) for _, g, c, f in runs)
            results += [
                Result(f"{label} time to ready per MiB", tuple(1000 * r[0] / mib for r in runs),
                       "ms", digits=1),
                Result(f"{label} pool process RSS growth over idle", tuple(r[1] for r in runs),
                       "MiB", digits=1),
                Result(f"{label} strip child's peak RSS", tuple(r[2] for r in runs), "MiB",
                       digits=1),
                Result(f"{label} strip child's peak RSS for a small file", tuple(r[3] for r in runs),
                       "MiB", digits=1),
                Result(f"{label} RSS growth for the file", for_file, "MiB", digits=1),
                Result(f"{label} RSS growth for the file ÷ {against}",
                       tuple(g / base_mib for g in for_file), target=target),
            ]  # fmt: skip
    finally:
        ctx.processes.stop(web.procs)
    return results


# --- Alone ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.attachments", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--parts", default=",".join(CONFIG.parts), help="upload,memory,strip")
    parser.add_argument(
        "--mib", type=float, default=CONFIG.large_mib, help="large files' size (20)"
    )
    parser.add_argument("--secs", type=int, default=8, help="seconds per timed upload run (8)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (3)")
    args = parser.parse_args(argv)
    CONFIG.parts = tuple(p for p in args.parts.split(",") if p)
    CONFIG.large_mib = args.mib
    with open_context(secs=args.secs, runs=args.runs, warmup=3.0) as ctx:
        say(f"== {NAME}: {TITLE}")
        results = run(ctx)
    say("\n== Summary (median (min–max) over the runs)")
    for row in results:
        say(row.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
