"""The ``confide`` command (CONTRACTS §4). Exit 0 on success, 1 on failure, 2 on a usage error.

Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from getpass import getpass
from pathlib import Path
from types import FrameType
from typing import NoReturn

from asyncpg import Connection

from confide import db, devservices, jobs, receipts
from confide import org as org_file
from confide.context import Context
from confide.crypto import Keyring
from confide.errors import ConfideError, ConfigError
from confide.org import REGIONS
from confide.services import deadlines, staff_sessions, support, workdays
from confide.services import staff as staff_service
from confide.services.org import sync_organisation
from confide.services.staff import ROLES
from confide.services.workdays import WorkingCalendar
from confide.settings import Settings
from confide.sql import org as sql_org
from confide.sql import staff as sql_staff

ROOT = Path(__file__).resolve().parent.parent


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="confide", description="Confide: anonymous incident reporting")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="web, worker and beat (plus embedded servers when unset)")
    run.add_argument("--no-worker", action="store_true", help=argparse.SUPPRESS)
    sub.add_parser("migrate", help="apply database migrations; safe to run twice")
    staff = sub.add_parser("staff", help="staff accounts")
    staff_sub = staff.add_subparsers(dest="staff_command", required=True, parser_class=_Parser)
    add = staff_sub.add_parser("add", help="add a staff member; the password is read from stdin")
    add.add_argument("--email", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--team", help="required for case workers and managers; refused for ops")
    add.add_argument("--role", default="caseworker", choices=ROLES)
    disable = staff_sub.add_parser("disable", help="disable an account and end its sessions")
    disable.add_argument("--email", required=True)
    reset = staff_sub.add_parser("reset", help="print a one-time set-password link (24 h)")
    reset.add_argument("--email", required=True)
    reset_factor = staff_sub.add_parser(
        "reset-second-factor",
        help="remove the account's second factors (authenticator, recovery codes) and end its "
        "sessions, once the organisation has checked who they are",
    )
    reset_factor.add_argument("--email", required=True)
    tokens = sub.add_parser("tokens", help="personal access tokens for the staff API")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", required=True, parser_class=_Parser)
    issue = tokens_sub.add_parser(
        "issue",
        help="print a personal access token once: a Bearer token for the staff API that needs "
        "no second factor, revocable on the staff member's sessions page",
    )
    issue.add_argument("--email", required=True)
    issue.add_argument("--name", required=True, help="what the token is for, shown on the page")
    issue.add_argument(
        "--expires",
        type=int,
        default=staff_sessions.TOKEN_DAYS,
        metavar="DAYS",
        help=f"days until it expires (default {staff_sessions.TOKEN_DAYS}, "
        f"at most {staff_sessions.TOKEN_MAX_DAYS})",
    )
    deadline = sub.add_parser("deadline", help="print the reply-due time for a start time")
    deadline.add_argument("start", help="ISO 8601; without an offset it means Europe/London")
    deadline.add_argument("--region", choices=sorted(REGIONS))
    escalate = sub.add_parser("escalate", help="run or preview one escalation pass")
    escalate.add_argument("--as-of", dest="as_of", help="ISO 8601 time (default: now)")
    escalate.add_argument("--dry-run", action="store_true")
    lifecycle = sub.add_parser(
        "lifecycle", help="run or preview one lifecycle pass (auto-close, warnings, erasure)"
    )
    lifecycle.add_argument("--as-of", dest="as_of", help="ISO 8601 time (default: now)")
    lifecycle.add_argument("--dry-run", action="store_true")
    keys = sub.add_parser(
        "keys", help="encryption keys: without a subcommand, which are in use and retirable"
    )
    keys_sub = keys.add_subparsers(dest="keys_command", parser_class=_Parser)
    keys_sub.add_parser(
        "rotate",
        help="rewrap thread keys under their quarter's current key; re-encrypt the values the "
        "keyring seals itself under the first key",
    )
    retire = keys_sub.add_parser(
        "retire", help="retire a key no live thread or value uses (refused otherwise)"
    )
    retire.add_argument("--id", dest="key_id", required=True)
    migrate_threads = keys_sub.add_parser(
        "migrate-threads", help="give threads made before thread keys their own (resumable)"
    )
    migrate_threads.add_argument("--limit", type=int, help="stop after this many threads")
    receipt = sub.add_parser("receipt", help="reporters' receipts")
    receipt_sub = receipt.add_subparsers(
        dest="receipt_command", required=True, parser_class=_Parser
    )
    verify = receipt_sub.add_parser(
        "verify", help="check a receipt's signature; print its reference and time received"
    )
    verify.add_argument("file", help="the receipt file (- for standard input)")
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
        return _dispatch(args)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    try:
        if args.command == "run":
            return run(args)
        if args.command == "migrate":
            return asyncio.run(migrate_command())
        if args.command == "teams":
            return asyncio.run(teams_list())
        if args.command == "staff":
            return asyncio.run(staff_command(args))
        if args.command == "keys":
            return asyncio.run(keys_command(args))
        if args.command == "lifecycle":
            return asyncio.run(lifecycle_command(args))
        if args.command == "tokens":
            return asyncio.run(tokens_issue(args))
        if args.command == "deadline":
            return deadline_command(args)
        if args.command == "receipt":
            return receipt_verify(args.file)
        if args.command == "escalate":
            return asyncio.run(escalate_command(args))
    except UsageError:
        raise
    except ConfideError as exc:
        print(f"confide: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 1
    except Exception as exc:  # never a traceback on the command line
        print(f"confide: {type(exc).__name__}: failed", file=sys.stderr)
        return 1
    return 2


async def _connect(settings: Settings) -> db.Pool:
    dsn = settings.require_database()
    try:
        if not settings.is_production:
            await db.ensure_database(dsn)
        return await db.create_pool(dsn, min_size=1, max_size=2)
    except (OSError, ConnectionError) as exc:
        raise ConfigError(
            f"cannot reach PostgreSQL at DATABASE_URL ({type(exc).__name__})"
        ) from None


def _context(settings: Settings, pool: db.Pool) -> Context:
    """The service context of one command: its own small pool; no outbox wake-up (the workers'
    relay finds every committed row)."""
    org = org_file.load(settings.org_file)
    return Context(
        pool,
        settings,
        Keyring.from_secret(settings.encryption_keys),
        WorkingCalendar.for_org(org),
        rules=org.clock_rules,
    )


async def migrate_command() -> int:
    settings = Settings.from_env()
    pool = await _connect(settings)
    ctx = _context(settings, pool)
    try:
        async with pool.acquire() as conn:
            applied = await db.migrate(conn)
        await sync_organisation(ctx, org_file.load(settings.org_file))
        await support.seed_defaults(ctx)
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


def _calendar(region: str | None = None) -> WorkingCalendar:
    settings = Settings.from_env()
    return WorkingCalendar.for_org(org_file.load(settings.org_file), region)


def deadline_command(args: argparse.Namespace) -> int:
    """The same function the product uses (CONTRACTS §5)."""
    settings = Settings.from_env()
    try:
        start = workdays.parse_start(args.start)
    except ValueError:
        raise UsageError(f"confide deadline: not an ISO 8601 time: {args.start!r}") from None
    calendar = _calendar(args.region)
    print(workdays.format_due(calendar.reply_due_by(start, settings.reply_target_workdays)))
    return 0


def receipt_verify(path: str) -> int:
    """``confide receipt verify FILE`` (CONTRACTS §4): against the configured current and
    retired receipt keys, as the server checks; a receipt that does not verify raises
    :class:`ReceiptInvalid`, one line on stderr and status 1."""
    settings = Settings.from_env()
    try:
        if path == "-":
            data = sys.stdin.buffer.read(receipts.MAX_RECEIPT_BYTES + 1)
        else:
            with open(path, "rb") as fh:
                data = fh.read(receipts.MAX_RECEIPT_BYTES + 1)
    except OSError as exc:
        raise ConfideError(f"cannot read {path} ({exc.strerror or type(exc).__name__})") from None
    verified = receipts.verify(receipts.keys_for(settings), data)
    what = "message sent" if verified.kind == receipts.KIND_MESSAGE else "received"
    print(f"{verified.reference} {what} {receipts.timestamp(verified.at)}")
    return 0


async def escalate_command(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if args.as_of:
        try:
            as_of = workdays.parse_start(args.as_of)
        except ValueError:
            raise UsageError(f"confide escalate: not an ISO 8601 time: {args.as_of!r}") from None
    else:
        as_of = datetime.now(UTC)
    pool = await _connect(settings)
    ctx = _context(settings, pool)
    try:
        report = await deadlines.escalation_pass(ctx, as_of, dry_run=args.dry_run)
    finally:
        await pool.close()
    print(json.dumps(report.as_json(), sort_keys=True))
    return 0


def _as_of(command: str, text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        return workdays.parse_start(text)
    except ValueError:
        raise UsageError(f"confide {command}: not an ISO 8601 time: {text!r}") from None


async def lifecycle_command(args: argparse.Namespace) -> int:
    """``confide lifecycle [--as-of TIME] [--dry-run]``: one pass, judged at ``as_of`` (the
    context's clock too), printed as CONTRACTS §4's JSON."""
    from confide.services import lifecycle

    settings = Settings.from_env()
    as_of = _as_of("lifecycle", args.as_of)
    pool = await _connect(settings)
    ctx = dataclasses.replace(_context(settings, pool), clock=lambda: as_of)
    try:
        report = await lifecycle.run_pass(ctx, as_of, dry_run=args.dry_run)
    finally:
        await pool.close()
    print(json.dumps(report.as_json(), sort_keys=True))
    return 0


async def keys_command(args: argparse.Namespace) -> int:
    """``confide keys`` (list), ``keys rotate``, ``keys retire --id ID``, ``keys
    migrate-threads``: JSON on stdout."""
    from confide.services import keys as key_service

    settings = Settings.from_env()
    if args.keys_command == "retire" and not args.key_id.strip():
        raise UsageError("confide keys retire: --id must name a key")
    pool = await _connect(settings)
    ctx = _context(settings, pool)
    try:
        out: dict[str, object]
        if args.keys_command == "rotate":
            started = time.monotonic()
            counts = await key_service.reencrypt(ctx)
            reencrypt_s = time.monotonic() - started
            started = time.monotonic()
            rewrapped = await key_service.rewrap_all(ctx)
            out = {
                "re_encrypted": counts,
                "rewrapped": rewrapped,
                "seconds": {
                    "re_encrypt": round(reencrypt_s, 3),
                    "rewrap": round(time.monotonic() - started, 3),
                },
            }
        elif args.keys_command == "retire":
            out = {"retired": (await key_service.retire(ctx, args.key_id.strip())).as_json()}
        elif args.keys_command == "migrate-threads":
            if args.limit is not None and args.limit < 1:
                raise UsageError("confide keys migrate-threads: --limit must be at least 1")
            out = dict(await key_service.migrate_threads(ctx, limit=args.limit))
        else:
            out = {"keys": [u.as_json() for u in await key_service.usage(ctx)]}
    finally:
        await pool.close()
    print(json.dumps(out, sort_keys=True))
    return 0


async def staff_command(args: argparse.Namespace) -> int:
    if args.staff_command == "add":
        # Usage errors before the password is read (CONTRACTS §4): ops belong to no team.
        if args.role not in staff_service.THREAD_READER_ROLES and args.team is not None:
            raise UsageError(
                f"confide staff add: --team is refused for --role {args.role} "
                f"({args.role} belong to no team)"
            )
        if args.role in staff_service.TEAM_ROLES and args.team is None:
            raise UsageError(f"confide staff add: --team is required for --role {args.role}")
    settings = Settings.from_env()
    password = ""
    if args.staff_command == "add":
        password = (
            sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass("Password: ")
        )
    pool = await _connect(settings)
    ctx = _context(settings, pool)
    try:
        if args.staff_command == "add":
            await staff_service.add(
                ctx,
                email=args.email,
                name=args.name,
                team=args.team,
                role=args.role,
                password=password,
            )
            team = f"team {args.team}" if args.team else "no team"
            print(f"added {args.email} ({args.role}, {team})")
        elif args.staff_command == "disable":
            await staff_service.disable(ctx, args.email)
            print(f"disabled {args.email}")
        elif args.staff_command == "reset-second-factor":
            await staff_service.reset_second_factor(ctx, args.email)
            print(f"removed the second factors of {args.email} and ended its sessions")
        elif args.staff_command == "reset":
            token = await staff_service.start_reset(ctx, args.email)
            print(f"{settings.base_url}/staff/set-password?token={token}")
    finally:
        await pool.close()
    return 0


async def tokens_issue(args: argparse.Namespace) -> int:
    """``confide tokens issue``: the token on stdout, once; it is kept only as its HMAC."""
    if not 1 <= args.expires <= staff_sessions.TOKEN_MAX_DAYS:
        raise UsageError(
            f"confide tokens issue: --expires must be from 1 to {staff_sessions.TOKEN_MAX_DAYS}"
        )
    settings = Settings.from_env()
    pool = await _connect(settings)
    try:
        issued = await staff_sessions.issue_token(
            _context(settings, pool), email=args.email, name=args.name, days=args.expires
        )
    finally:
        await pool.close()
    print(issued.token)
    print(f"expires {issued.expires_at.isoformat(timespec='seconds')}", file=sys.stderr)
    return 0


DEMO_STAFF = (
    ("caseworker@demo.confide", "Casey Worker", "caseworker"),
    ("manager@demo.confide", "Morgan Manager", "manager"),
    ("admin@demo.confide", "Ada Admin", "admin"),
)


async def seed_demo_staff(settings: Settings) -> list[str]:
    """Development only: demo accounts in every team, with a password kept in the data dir."""
    secret = settings.data_dir / "secrets" / "demo-staff-password"
    if not secret.exists():
        secret.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        secret.write_text(secrets.token_urlsafe(12))
        secret.chmod(0o600)
    password = secret.read_text().strip()
    pool = await _connect(settings)
    ctx = _context(settings, pool)
    try:
        async with pool.acquire() as conn:
            teams = await _team_slugs(conn)
            for email, name, role in DEMO_STAFF:
                if await sql_staff.by_email(conn, email) is not None:
                    continue
                staff_id = await staff_service.add(
                    ctx, email=email, name=name, team=teams[0], role=role, password=password
                )
                for slug in teams[1:]:
                    team_id = await sql_org.team_id(conn, slug)
                    if team_id is not None:
                        await sql_staff.add_to_team(conn, staff_id, team_id)
    finally:
        await pool.close()
    emails = ", ".join(email for email, _, _ in DEMO_STAFF)
    return [f"confide: demo staff ({emails}) log in at /staff/login with password {password}"]


async def _team_slugs(conn: Connection) -> list[str]:
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
    own_database = not environ.get("DATABASE_URL")
    embedded = devservices.start_missing(data_dir, environ)
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        os.environ.update(environ)
        asyncio.run(migrate_command())
        settings = Settings.from_env(environ)
        if not settings.is_production:
            for line in asyncio.run(seed_demo_staff(settings)):
                print(line, flush=True)
            if own_database:  # a local socket with no password: nothing secret in the line
                print(
                    "confide: for `confide` commands meanwhile (such as `confide staff add`), "
                    f"set DATABASE_URL='{environ['DATABASE_URL']}'",
                    flush=True,
                )
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
                        ",".join(jobs.QUEUES),
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
        # CONFIDE_BASE_URL (http://localhost:$PORT unless set): the address passkeys work on.
        url = f"{settings.base_url}/"
        print(f"confide: running at {url} (Ctrl-C stops everything)", flush=True)
        return _supervise(procs)
    finally:
        _stop(procs)
        embedded.stop()


def _supervise(procs: list[tuple[str, subprocess.Popen[bytes]]]) -> int:
    stopping = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
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
