"""The ``confide`` command (CONTRACTS §4). Exit 0 on success, 1 on failure, 2 on a usage error.

Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from confide import db, devservices
from confide import org as org_file
from confide.errors import ConfideError, ConfigError
from confide.services.org import sync_organisation
from confide.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="confide", description="Confide: anonymous incident reporting")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="web, worker and beat (plus embedded servers when unset)")
    run.add_argument("--no-worker", action="store_true", help=argparse.SUPPRESS)
    sub.add_parser("migrate", help="apply database migrations; safe to run twice")
    teams = sub.add_parser("teams", help="teams")
    teams_sub = teams.add_subparsers(dest="teams_command", required=True, parser_class=_Parser)
    teams_sub.add_parser("list", help="one team slug a line")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    try:
        if args.command == "run":
            return run(args)
        if args.command == "migrate":
            return asyncio.run(migrate_command())
        if args.command == "teams":
            return asyncio.run(teams_list())
    except ConfideError as exc:
        print(f"confide: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 1
    except Exception as exc:  # never a traceback on the command line
        print(f"confide: {type(exc).__name__}: failed", file=sys.stderr)
        return 1
    return 2


async def _connect(settings: Settings) -> Any:
    dsn = settings.require_database()
    try:
        if not settings.is_production:
            await db.ensure_database(dsn)
        return await db.create_pool(dsn, min_size=1, max_size=2)
    except (OSError, ConnectionError) as exc:
        raise ConfigError(
            f"cannot reach PostgreSQL at DATABASE_URL ({type(exc).__name__})"
        ) from None


async def migrate_command() -> int:
    settings = Settings.from_env()
    pool = await _connect(settings)
    try:
        async with pool.acquire() as conn:
            applied = await db.migrate(conn)
        await sync_organisation(pool, org_file.load(settings.org_file))
    finally:
        await pool.close()
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
    return 0


async def teams_list() -> int:
    settings = Settings.from_env()
    pool = await _connect(settings)
    try:
        async with pool.acquire() as conn:
            for slug in await _team_slugs(conn):
                print(slug)
    finally:
        await pool.close()
    return 0


async def _team_slugs(conn: Any) -> list[str]:
    from confide.sql import org as sql_org

    return await sql_org.team_slugs(conn)


def run(args: argparse.Namespace) -> int:
    """Start embedded servers (when unset), migrate, then web + worker + beat until Ctrl-C."""
    environ = dict(os.environ)
    data_dir = Path(environ.get("CONFIDE_DATA_DIR", "./var")).resolve()
    environ["CONFIDE_DATA_DIR"] = str(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    Settings.from_env(environ)  # fail fast, with one line, before anything starts
    print(
        "confide: starting embedded services where DATABASE_URL/REDIS_URL are unset …", flush=True
    )
    embedded = devservices.start_missing(data_dir, environ)
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        os.environ.update(environ)
        asyncio.run(migrate_command())
        settings = Settings.from_env(environ)
        python = sys.executable
        commands = [("web", [python, "-m", "webapp"])]
        if not args.no_worker:
            celery = [python, "-m", "celery", "-A", "workers.celery_app"]
            commands += [
                (
                    "worker",
                    [
                        *celery,
                        "worker",
                        "-Q",
                        "hashing,default",
                        "--concurrency",
                        "2",
                        "-n",
                        "worker@%h",
                        "--loglevel",
                        "INFO",
                    ],
                ),
                ("beat", [*celery, "beat", "--loglevel", "INFO"]),
            ]
        for name, cmd in commands:
            procs.append((name, subprocess.Popen(cmd, env=environ, cwd=ROOT)))  # noqa: S603
        url = f"http://127.0.0.1:{settings.port}/"
        print(f"confide: running at {url} (Ctrl-C stops everything)", flush=True)
        return _supervise(procs)
    finally:
        _stop(procs)
        embedded.stop()


def _supervise(procs: list[tuple[str, subprocess.Popen[bytes]]]) -> int:
    stopping = False

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stopping:
        for name, proc in procs:
            if proc.poll() is not None:
                print(
                    f"confide: {name} exited with status {proc.returncode}; stopping",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
        time.sleep(0.3)
    print("confide: stopping …", flush=True)
    return 0


def _stop(procs: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    for _, proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for _, proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())
