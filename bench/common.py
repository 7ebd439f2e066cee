"""Shared plumbing for the benchmarks: results, processes, wrk, RSS, PostgreSQL and Redis.

Everything a benchmark starts goes through :class:`Processes`, so that ``bench.__main__`` can stop
it on success, on error and on Ctrl-C alike.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import http.client
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from confide import devservices

ROOT = Path(__file__).resolve().parent.parent
# Two benches on one shared server set these apart (like CONFIDE_TEST_DB for the tests); the
# names never start with confide_test, so a bench never touches a test database.
BENCH_DATABASE = os.environ.get("CONFIDE_BENCH_DB", "confide_bench")
BENCH_REDIS_DB = int(os.environ.get("CONFIDE_BENCH_REDIS_DB", "12"))
if not re.fullmatch(r"[a-z0-9_]+", BENCH_DATABASE) or BENCH_DATABASE.startswith("confide_test"):
    raise SystemExit("CONFIDE_BENCH_DB: letters, digits and _, not starting with confide_test")
# Settings that would leak from the caller's shell into the processes we start are dropped by
# devservices.foreign_environ().


# --- Results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    op: str  # ">=", "<=" or "<"
    limit: float

    def is_met(self, value: float) -> bool:
        if self.op == ">=":
            return value >= self.limit
        if self.op == "<=":
            return value <= self.limit
        if self.op == "<":
            return value < self.limit
        raise ValueError(f"unknown target operator {self.op!r}")

    def __str__(self) -> str:
        shown = {">=": "≥", "<=": "≤", "<": "<"}[self.op]
        return f"{shown} {self.limit:g}"


@dataclass(frozen=True)
class Result:
    """One printed figure: the median of ``values`` with their range, and its target if any."""

    name: str
    values: tuple[float, ...]
    unit: str = ""
    target: Target | None = None
    digits: int = 2

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def is_met(self) -> bool | None:
        return None if self.target is None else self.target.is_met(self.median)

    def line(self, width: int = 52) -> str:
        fmt = f"{{:.{self.digits}f}}"
        text = fmt.format(self.median)
        if len(self.values) > 1:
            text += f" ({fmt.format(min(self.values))}–{fmt.format(max(self.values))})"
        if self.unit:
            text += f" {self.unit}"
        line = f"  {self.name:<{width}} {text:<26}"
        if self.target is not None:
            verdict = "target met" if self.is_met else "target missed"
            line += f" target {self.target} {self.unit}".rstrip() + f"  {verdict}"
        return line.rstrip()


def say(text: str = "") -> None:
    print(text, flush=True)


# --- Processes ---------------------------------------------------------------------------------


class Processes:
    """Every process a benchmark starts, each in its own session so Ctrl-C reaches us first."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                list(argv),
                env=env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc.bench_log = log_path  # type: ignore[attr-defined]
        self._procs.append(proc)
        return proc

    def running(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self._procs if p.poll() is None]

    def stop(self, procs: Sequence[subprocess.Popen[bytes]] | None = None) -> None:
        """SIGTERM to each process group we started, then SIGKILL what is left after 10 s."""
        targets = list(self._procs if procs is None else procs)
        for proc in targets:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in targets:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            if proc in self._procs:
                self._procs.remove(proc)


def log_tail(proc: subprocess.Popen[bytes], lines: int = 15) -> str:
    path: Path | None = getattr(proc, "bench_log", None)
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, procs: Sequence[subprocess.Popen[bytes]], timeout: float = 60) -> None:
    """Poll ``url`` until it answers 200; fail at once if one of ``procs`` has died."""
    parts = urlsplit(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"process {proc.args!r} exited with {proc.returncode}:\n{log_tail(proc)}"
                )
        try:
            conn = http.client.HTTPConnection(_host(parts.hostname), parts.port, timeout=1)
            conn.request("GET", parts.path or "/")
            if conn.getresponse().status == 200:
                conn.close()
                return
            conn.close()
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s:\n{log_tail(procs[0])}")


def _host(hostname: str | None) -> str:
    if not hostname:
        raise ValueError("a bench URL names its host")
    return hostname


def post_form(url: str, body: str) -> tuple[int, str]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(_host(parts.hostname), parts.port, timeout=10)
    try:
        conn.request(
            "POST",
            parts.path,
            body=body.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def rss_mb(pid: int) -> float:
    """Resident set size from /proc/<pid>/status (VmRSS, in kB) as MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def database_cpu_s(ctx: Context) -> float | None:
    """CPU seconds used so far by the live PostgreSQL backends of the bench's database (its
    connection pools), read from /proc; None when the server is not on this host. A backend's
    CPU is its own: walwriter, checkpointer and autovacuum are not counted."""
    pids = ctx.fetchval(
        """SELECT array_agg(pid) FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid()"""
    )
    total, found = 0.0, False
    for pid in pids or ():
        try:
            total += process_cpu_s(int(pid))
            found = True
        except OSError:  # gone meanwhile, or another host's
            continue
    return total if found else None


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all CPUs, everything but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / _CLK_TCK


_CLK_TCK = os.sysconf("SC_CLK_TCK")
# The servers our load runs through; their CPU belongs to the benchmark, not to other load.
_SERVICE_NAMES = ("postgres", "redis-server")


class OtherLoad:
    """CPU used by processes that are not the bench's during an interval, in CPUs (cores).

    The VM is shared: this makes a run that overlapped someone else's test suite visible, its
    PostgreSQL backends included (those serving another database than the bench's, on a shared
    server). Processes that start and end inside the interval are missed, so it is a lower bound.
    """

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._before = _other_cpu()

    def cpus(self) -> float:
        after = _other_cpu()
        used = sum(cpu - self._before.get(pid, 0.0) for pid, cpu in after.items())
        return max(0.0, used) / max(1e-3, time.monotonic() - self._started)


# "postgres: [<cluster>: ]<user> <database> <client> <state>"; background processes
# ("postgres: 15/main: checkpointer") have no client.
_BACKEND_TITLE = re.compile(r"postgres: (?:\S+: )?\S+ (\S+) (?:\[local\]|[0-9a-fA-F.:]+\(\d+\)) ")


def _foreign_backend(pid: int) -> bool:
    """A PostgreSQL backend serving another database than the bench's: on a shared server,
    other sessions' test suites."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return False
    match = _BACKEND_TITLE.match(title)
    return match is not None and match.group(1) != BENCH_DATABASE


def _other_cpu() -> dict[int, float]:
    me = os.getpid()
    stats: dict[int, tuple[str, list[str]]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        stats[int(entry.name)] = (name, stat.rsplit(")", 1)[1].split())
    # Each child of the bench runs in its own session: its own children (a Celery worker's pool
    # processes) share that session id and are the bench's too.
    ours = {pid for pid, (_, fields) in stats.items() if int(fields[1]) == me}
    found: dict[int, float] = {}
    for pid, (name, fields) in stats.items():
        ppid, session = int(fields[1]), int(fields[3])
        # Skip the bench itself and its children (wrk, our servers), kernel threads and the
        # services our requests go to.
        if pid == me or ppid in (me, 2) or pid == 2:
            continue
        if name.startswith(_SERVICE_NAMES) and not _foreign_backend(pid):
            continue
        if session in ours:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return found


# --- wrk ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: str
    output: str

    @property
    def ok(self) -> int:
        return self.requests - self.non_2xx

    def summary(self) -> str:
        text = f"{self.rps:7.0f} req/s  p50 {self.p50_ms:6.1f} ms  p99 {self.p99_ms:6.1f} ms"
        if self.non_2xx:
            text += f"  non-2xx {self.non_2xx}"
        if self.socket_errors:
            text += f"  socket errors: {self.socket_errors}"
        return text


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"^\s*(\d+) requests in", output, re.M)
    latency = dict(re.findall(r"^\s+(50|99)(?:\.000)?%\s+(\S+)", output, re.M))
    if not (rps and total and "50" in latency and "99" in latency):
        raise RuntimeError(f"could not read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:\s+(.*)", output)
    return WrkResult(
        rps=float(rps.group(1)),
        requests=int(total.group(1)),
        p50_ms=_ms(latency["50"]),
        p99_ms=_ms(latency["99"]),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=errors.group(1).strip() if errors else "",
        output=output,
    )


def run_wrk(
    url: str,
    secs: float,
    *,
    connections: int = 64,
    threads: int = 1,
    script: Path | None = None,
    script_args: Sequence[str] = (),
    timeout_s: int | None = None,
) -> WrkResult:
    """``wrk -t1 -c64`` with keep-alive (wrk's default) and the latency distribution.

    wrk gives up on a request after 2 s unless ``timeout_s`` says otherwise; a request it gave up
    on counts as a socket error "timeout", not in the latency figures."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(secs))}s", "--latency"]
    if timeout_s is not None:
        argv.append(f"--timeout={timeout_s}s")
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(url)
    if script_args:
        argv += ["--", *script_args]
    limit = secs + 60 + (timeout_s or 0)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=limit, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stderr}{done.stdout}")
    return parse_wrk(done.stdout)


def require_wrk() -> bool:
    if shutil.which("wrk"):
        return True
    print(
        "bench: wrk is not installed. Install it with `bash scripts/ensure-wrk` (Debian/Ubuntu) "
        "and run `make bench` again.",
        file=sys.stderr,
    )
    return False


# --- PostgreSQL, Redis and the run's context ---------------------------------------------------


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def with_redis_db(url: str, db: int) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


@dataclass
class Context:
    """What every benchmark gets: options, a scratch dir, services and process bookkeeping."""

    secs: float
    runs: int
    warmup: float
    tmp: Path
    database_url: str
    redis_url: str
    processes: Processes
    embedded: str = ""  # "", or which servers devservices started for this run
    secrets: dict[str, str] = field(default_factory=dict)

    def base_env(self) -> dict[str, str]:
        """The caller's environment without Confide's own settings."""
        return devservices.foreign_environ()

    def confide_env(self, port: int, **extra: str) -> dict[str, str]:
        """Environment for one Confide process; every process of a run shares its keys."""
        env = self.base_env()
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            PORT=str(port),
            CONFIDE_ENV="development",
            CONFIDE_DATA_DIR=str(self.tmp / "confide-data"),
            **self.secrets,
        )
        env.update(extra)
        return env

    def path(self, name: str) -> Path:
        return self.tmp / name

    # Small synchronous SQL helpers: each opens and closes its own connection.
    def fetchval(self, query: str, *args: Any) -> Any:
        return asyncio.run(_fetchval(self.database_url, query, *args))

    def execute(self, query: str) -> None:
        asyncio.run(_execute(self.database_url, query))


async def _fetchval(dsn: str, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def _execute(dsn: str, query: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(query)
    finally:
        await conn.close()


def _new_secrets() -> dict[str, str]:
    return {
        **devservices.fresh_keys("bench1"),
        # The bench measures the submission path, not the abuse limits (issue 3).
        "CONFIDE_SUBMIT_PER_CLIENT_PER_HOUR": "1000000000",
        "CONFIDE_SUBMIT_GLOBAL_PER_MINUTE": "1000000000",
        "CONFIDE_UPLOAD_PER_CLIENT_PER_HOUR": "1000000000",
        "CONFIDE_UPLOAD_GLOBAL_PER_MINUTE": "1000000000",
        "CONFIDE_UPLOAD_MIB_PER_CLIENT_PER_HOUR": "1000000",
        "CONFIDE_PENDING_UPLOADS_MAX_MIB": "1000000000",
    }


@contextlib.contextmanager
def open_context(*, secs: float, runs: int, warmup: float) -> Iterator[Context]:
    """Services and scratch space for one bench run; everything is undone on the way out.

    With ``DATABASE_URL``/``REDIS_URL`` set, the bench uses those servers but its own database
    (``confide_bench``) and Redis db 12. Otherwise it starts embedded servers and stops them after.
    """
    from confide import db, devservices

    tmp = Path(tempfile.mkdtemp(prefix="confide-bench-"))
    # Also at exit: the embedded PostgreSQL's own atexit hook (registered later, so run earlier)
    # writes a lock file under tmp after the `finally` below has removed it.
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    (tmp / "logs").mkdir()
    processes = Processes(tmp / "logs")
    embedded = None
    redis_url = ""
    try:
        env = {k: os.environ.get(k, "") for k in ("DATABASE_URL", "REDIS_URL")}
        missing = [k for k, v in env.items() if not v]
        if missing:
            say(f"bench: {' and '.join(missing)} unset: starting embedded servers")
            embedded = devservices.start_missing(tmp / "services", env)
        ctx = Context(
            secs=secs,
            runs=runs,
            warmup=warmup,
            tmp=tmp,
            database_url=with_database(env["DATABASE_URL"], BENCH_DATABASE),
            redis_url=with_redis_db(env["REDIS_URL"], BENCH_REDIS_DB),
            processes=processes,
            embedded=", ".join(missing),
            secrets=_new_secrets(),
        )
        redis_url = ctx.redis_url
        asyncio.run(db.ensure_database(ctx.database_url))
        yield ctx
    finally:
        processes.stop()
        if redis_url:
            _flush_redis(redis_url)
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def settle(ctx: Context) -> None:
    """Before each benchmark: a CHECKPOINT, so that the dirty pages of the one before (bulk loads
    of up to 1,000,000 rows, then their TRUNCATE) are written now rather than by the checkpointer
    during the next one's timed runs. Those writes fell on whichever side was being timed, and the
    "other load" figure does not see them (the server's processes are the bench's own). Skipped
    when the role may not checkpoint."""
    with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
        ctx.execute("CHECKPOINT")


def queued_messages(url: str, queues: Sequence[str]) -> int:
    """Messages waiting in these Celery queues (Redis lists) of the bench's Redis db."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        return sum(int(client.llen(queue)) for queue in queues)
    finally:
        client.close()


def _flush_redis(url: str) -> None:
    """Empty the bench's own Redis db: the web processes publish Celery messages (outbox kicks)
    that no worker consumes during the bench."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        say(f"bench: could not empty Redis db {BENCH_REDIS_DB} ({type(exc).__name__})")
    finally:
        client.close()
