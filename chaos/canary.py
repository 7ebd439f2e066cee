"""Canary scan: what a reporter typed, their address, user agent and code, and a staff member's
second-factor secrets, searched in every sink.

Ten reporters each send a report, log in, write a message and get a reply, with canaries of their
own in the report text, the message, the reply, the ``User-Agent`` and the source address
(127.0.3.n); the wrong codes tried and the real code are canaries too. The run also downloads the
reminder (.ics), runs the escalation pass at digest time (digest and alert mails), sends malformed
raw HTTP that carries canaries, and a request PostgreSQL rejects (a NUL in the report text). A
staff member enrols an authenticator app through the HTML pages, signs in with its code and with
a recovery code (in a browser and on the API), and makes new recovery codes: the app's key (as
shown, ungrouped and as raw bytes) and every recovery code shown (as shown and normalised) are
canaries.

Then every sink is collected and searched raw, case-folded, base64 (standard and URL-safe, each of
the three alignments), quoted-printable, URL-encoded, JSON-escaped and hex, and for the sha256 of
each address, code, key and recovery code. A canary planted on purpose in each sink that can take
one (PostgreSQL, Redis, the mail server, a log, Flower), and random bytes planted the same way,
must be found: that is the positive control.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import os
import quopri
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import aiohttp
import asyncpg
import pyotp
import redis

from chaos.crash import STAFF_EMAIL, Plan, System, _drain
from chaos.inspect_web import DUMP_ENV
from chaos.procs import Proc
from chaos.servers import free_port
from confide import jobs
from confide.crypto import keyed_hash
from confide.services.second_factor import normalise_recovery_code
from tests import html

REPORTERS = 10
FACTOR_EMAIL = "chaos-second-factor@example.org"  # the staff member who enrols an app
STATISTICS_EMAIL = "chaos-statistics@example.org"  # an admin who reads the statistics
SECRET_ON_PAGE = re.compile(r'id="totp-secret"[^>]*>([A-Z2-7 ]+)</p>')
RECOVERY_ON_PAGE = re.compile(r"<li><code>([a-z0-9-]{19})</code></li>")
# Where each kind of canary may appear. Every other (canary, sink) cell must stay empty; the code
# appears only on its one receipt page, which is an HTTP response and not a sink.
ALLOWED: dict[str, set[str]] = {"planted": {"*"}, "planted_bytes": {"*"}}


@dataclass
class Canaries:
    by_kind: dict[str, list[str | bytes]] = field(default_factory=dict)

    def add(self, kind: str, value: str) -> str:
        self.by_kind.setdefault(kind, []).append(value)
        return value

    def add_bytes(self, kind: str, value: bytes) -> bytes:
        self.by_kind.setdefault(kind, []).append(value)
        return value


def _tag(kind: str) -> str:
    return f"Cnry{kind}{secrets.token_hex(5).upper()}"


def variants(value: str | bytes) -> dict[str, bytes]:
    """The forms a string (or raw bytes, a key's) can take in a sink."""
    raw = value.encode() if isinstance(value, str) else value
    found = {
        "raw": raw,
        "url": quote_plus(value).encode(),
        "url-path": quote(value).encode(),
        "qp": quopri.encodestring(raw).rstrip(b"=\n"),
        "hex": binascii.hexlify(raw),
        "HEX": binascii.hexlify(raw).upper(),
    }
    if isinstance(value, str):  # JSON has no form for raw bytes: they would be base64 or hex
        found["json"] = json.dumps(value)[1:-1].encode()
    else:  # as Python prints them: b'\x9f...'
        found["repr"] = repr(value)[2:-1].encode()
    for name, encode in (("b64", base64.b64encode), ("b64url", base64.urlsafe_b64encode)):
        for shift in range(3):
            encoded = encode(b"\0" * shift + raw)
            # Drop the characters that depend on neighbouring bytes at either end.
            start = (shift * 4 + 2) // 3 + 1 if shift else 0
            inner = encoded[start : len(encoded) - 4]
            # Too little left of a short value (an address) would match unrelated text.
            if len(inner) >= 16:
                found[f"{name}+{shift}"] = inner
    return found


def _hashes(value: str | bytes) -> dict[str, bytes]:
    digest = hashlib.sha256(value.encode() if isinstance(value, str) else value)
    return {"sha256": digest.hexdigest().encode(), "sha256-raw": digest.digest()}


def scan(
    blob: bytes, value: str | bytes, *, hashed: bool = False, lower: bytes | None = None
) -> list[str]:
    """The forms of ``value`` found in ``blob`` (``lower``: ``blob.lower()``, if already made)."""
    lower = blob.lower() if lower is None else lower
    hits = [name for name, form in variants(value).items() if form and form in blob]
    folded = value.lower().encode() if isinstance(value, str) else value.lower()
    if folded in lower and "raw" not in hits:
        hits.append("casefold")
    if hashed:
        hits += [name for name, form in _hashes(value).items() if form in blob]
    return hits


# --- Driving every path --------------------------------------------------------------------------


async def _drive(system: System, canaries: Canaries) -> None:
    await _second_factor(system, canaries)
    references: list[str] = []
    async with aiohttp.ClientSession(base_url=system.base_url) as staff_http:
        async with staff_http.post(
            "/api/v1/staff/session", json={"email": STAFF_EMAIL, "password": system.staff_password}
        ) as resp:
            staff = {"Authorization": f"Bearer {(await resp.json())['token']}"}
        for n in range(1, REPORTERS + 1):
            address = canaries.add("address", f"127.0.3.{n}")
            agent = canaries.add("user_agent", _tag("UA"))
            connector = aiohttp.TCPConnector(local_addr=(address, 0))
            async with aiohttp.ClientSession(
                base_url=system.base_url, connector=connector, headers={"User-Agent": agent}
            ) as http:
                async with http.post(
                    "/api/v1/reports",
                    json={
                        "category": "safety",
                        "description": canaries.add("report", _tag("Report")),
                        "location": canaries.add("report", _tag("Where")),
                        "anonymous": True,
                        "follow_up": True,
                    },
                ) as resp:
                    receipt = await resp.json()
                code = canaries.add("code", receipt["code"])
                canaries.add("code", code.replace("-", ""))
                wrong = canaries.add("wrong_code", code[:-4] + "ZZZZ")
                async with http.post("/api/v1/reporter/session", json={"code": wrong}) as resp:
                    assert resp.status in (401, 429), resp.status
                async with http.post("/api/v1/reporter/session", json={"code": code}) as resp:
                    token = (await resp.json())["token"]
                reporter = {"Authorization": f"Bearer {token}"}
                async with http.post(
                    "/api/v1/reporter/messages",
                    json={"body": canaries.add("message", _tag("Msg"))},
                    headers=reporter,
                ) as resp:
                    assert resp.status == 201, resp.status
                async with staff_http.post(
                    f"/api/v1/staff/threads/{receipt['reference']}/messages",
                    json={"body": canaries.add("reply", _tag("Reply"))},
                    headers=staff,
                ) as resp:
                    assert resp.status == 201, resp.status
                references.append(receipt["reference"])
                for _ in range(30):  # the reminder is built by a worker
                    async with http.get("/api/v1/reporter/reminder.ics", headers=reporter) as resp:
                        if resp.status == 200:
                            ics = await resp.read()
                            (system.root / f"reminder-{n}.ics").write_bytes(ics)
                            break
                    await asyncio.sleep(0.5)
                # A request PostgreSQL would reject: a NUL byte in the text.
                async with http.post(
                    "/api/v1/reports",
                    json={
                        "category": "safety",
                        "description": canaries.add("report", _tag("Nul")) + "\u0000x",
                        "anonymous": True,
                        "follow_up": False,
                    },
                ) as resp:
                    assert resp.status < 500, resp.status
    await asyncio.to_thread(_malformed_http, system, canaries)
    await _forced_failures(system, canaries)
    await _statistics_and_print(system, references)
    system.cli("escalate", "--as-of", "2027-03-10T10:00")  # digests and alerts


async def _statistics_and_print(system: System, references: list[str]) -> None:
    """The statistics refresh in the worker (facts rows and summaries of every report), an
    admin's CSV download and API answer (kept as files: sinks), and the case worker's printable
    record of a thread with its notes, which leaves an audit row (in the sinks too)."""
    from celery import Celery

    password = secrets.token_urlsafe(16)
    system.cli(
        "staff", "add", "--email", STATISTICS_EMAIL, "--name", "Chaos Statistics", "--role",
        "admin", "--team", "safety", stdin=password + "\n",
    )  # fmt: skip
    conn = await asyncpg.connect(system.pg.url)
    try:
        mark = await conn.fetchval("SELECT now()")
        client = Celery("canary", broker=system.redis.url)
        try:
            for _ in range(60):
                client.send_task(jobs.REFRESH_STATISTICS, queue=jobs.DEFAULT_QUEUE)
                await asyncio.sleep(1)
                done = await conn.fetchval(
                    "SELECT changed_after >= $1 FROM statistics_watermark WHERE name = 'facts'",
                    mark,
                )
                if done and not await conn.fetchval("SELECT count(*) FROM statistics_dirty"):
                    break
            else:
                raise AssertionError("no statistics refresh pass finished")
        finally:
            client.close()
    finally:
        await conn.close()
    async with _browser(system) as http:
        form = html.main_form(await _page(http, "/staff/login"))
        status, _ = await _submit(http, form, email=STATISTICS_EMAIL, password=password)
        assert status == 200, status
        async with http.get("/staff/statistics.csv") as resp:
            assert resp.status == 200, resp.status
            (system.root / "statistics.csv").write_bytes(await resp.read())
        async with http.get("/api/v1/staff/statistics") as resp:
            assert resp.status == 401  # the API ignores cookies (CONTRACTS §3)
    async with _browser(system) as http:
        form = html.main_form(await _page(http, "/staff/login"))
        status, _ = await _submit(http, form, email=STAFF_EMAIL, password=system.staff_password)
        assert status == 200, status
        await _page(http, f"/staff/threads/{references[0]}/print?notes=1")
        async with http.get("/staff/statistics") as resp:
            assert resp.status == 403, resp.status


async def _statistics_sinks(system: System) -> dict[str, bytes]:
    """Statistics rows (facts and summaries), the CSV as downloaded, and the print view's audit
    rows, each as a sink of its own."""
    conn = await asyncpg.connect(system.pg.url)
    try:
        facts = await conn.fetch("SELECT * FROM statistics_facts")
        summaries = await conn.fetch("SELECT * FROM statistics_monthly")
        printed = await conn.fetch("SELECT * FROM audit_log WHERE action = 'print'")
    finally:
        await conn.close()
    assert facts and summaries and printed, "no statistics rows or print audit to search"
    return {
        "statistics rows": "\n".join(repr(dict(r)) for r in [*facts, *summaries]).encode(),
        "statistics CSV": (system.root / "statistics.csv").read_bytes(),
        "print audit": "\n".join(repr(dict(r)) for r in printed).encode(),
    }


def _browser(system: System) -> aiohttp.ClientSession:
    """A fresh browser without JavaScript: its own cookie jar (cookies for an IP host too)."""
    return aiohttp.ClientSession(
        base_url=system.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    )


async def _page(http: aiohttp.ClientSession, path: str) -> str:
    async with http.get(path) as resp:
        assert resp.status == 200, (path, resp.status)
        return await resp.text()


async def _submit(http: aiohttp.ClientSession, form: html.Form, **answers: str) -> tuple[int, str]:
    async with http.post(form.action, data=form.data(**answers)) as resp:
        return resp.status, await resp.text()


async def _staff_signs_in(http: aiohttp.ClientSession, password: str, code: str | None) -> str:
    """The login form, then (with ``code``) the second-factor page's; the page reached."""
    form = html.main_form(await _page(http, "/staff/login"))
    status, page = await _submit(http, form, email=FACTOR_EMAIL, password=password)
    assert status == 200, status
    if code is not None:
        assert 'name="code"' in page, "no second step asked for"
        status, page = await _submit(http, html.main_form(page), code=code)
        assert status == 200, status
    assert "inbox" in html.title(page), "not signed in"
    return page


def _shown_codes(canaries: Canaries, page: str) -> list[str]:
    """The ten recovery codes on the page, each a canary as shown and normalised."""
    codes = RECOVERY_ON_PAGE.findall(page)
    assert len(set(codes)) == 10, len(codes)
    for code in codes:
        canaries.add("recovery_code", code)
        canaries.add("recovery_code", normalise_recovery_code(code))
    return codes


async def _second_factor(system: System, canaries: Canaries) -> None:
    """A staff member enrols an authenticator app and uses it as a person would: the key read
    off the enrolment page, confirmed with the app's code; the ten recovery codes read off the
    next page; a sign-in with the app's code, ten new codes, a sign-in with one of them, and on
    the API one void code (refused) and one new one. The key and every code shown are canaries."""
    password = secrets.token_urlsafe(16)
    await asyncio.to_thread(
        system.cli, "staff", "add", "--email", FACTOR_EMAIL, "--name", "Chaos second factor",
        "--team", "safety", stdin=password + "\n",
    )  # fmt: skip
    async with _browser(system) as http:
        await _staff_signs_in(http, password, None)  # no factor yet: the password alone
        page = await _page(http, "/staff/security/authenticator")
        match = SECRET_ON_PAGE.search(page)
        assert match, "no key on the enrolment page"
        shown = canaries.add("totp_secret", match.group(1).strip())  # in groups of four
        secret = canaries.add("totp_secret", shown.replace(" ", ""))
        canaries.add_bytes("totp_secret", base64.b32decode(secret))
        app = pyotp.TOTP(secret)
        status, page = await _submit(http, html.main_form(page), code=app.now())
        assert status == 200, status
        first = _shown_codes(canaries, page)
    async with _browser(system) as http:
        # The app's next code: unused (the enrolment spent this step's), within the ±1 window.
        await _staff_signs_in(http, password, app.at(time.time() + 30))
        page = await _page(http, "/staff/security")
        form = next(f for f in html.forms(page) if f.action.endswith("/recovery-codes"))
        status, page = await _submit(http, form, codes_proof=password)
        assert status == 200, status
        second = _shown_codes(canaries, page)
    async with _browser(system) as http:
        await _staff_signs_in(http, password, second[0])
    async with aiohttp.ClientSession(base_url=system.base_url) as api:
        for otp, expected in ((first[0], 401), (second[1].upper(), 200)):
            body = {"email": FACTOR_EMAIL, "password": password, "otp": otp}
            async with api.post("/api/v1/staff/session", json=body) as resp:
                assert resp.status == expected, (resp.status, expected)


async def _canary_report(http: aiohttp.ClientSession, canaries: Canaries, tag: str) -> int:
    """An anonymous report without follow-up whose text is a canary; its HTTP status."""
    async with http.post(
        "/api/v1/reports",
        json={
            "category": "safety",
            "description": canaries.add("report", _tag(tag)),
            "anonymous": True,
            "follow_up": False,
        },
    ) as resp:
        return resp.status


async def _forced_failures(system: System, canaries: Canaries) -> None:
    """A database error and a task failure, each while a canary is in flight."""
    address = canaries.add("address", "127.0.3.201")
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with aiohttp.ClientSession(base_url=system.base_url, connector=connector) as http:
        # The database error: the threads table locked past the web's statement timeout.
        locker = await asyncpg.connect(system.pg.url)
        try:
            async with locker.transaction():
                await locker.execute("LOCK TABLE threads IN ACCESS EXCLUSIVE MODE")
                status = await _canary_report(http, canaries, "Locked")
                assert status == 503, status
        finally:
            await locker.close()
        # The task failure: the mail server away while a report's alert is sent.
        system.smtp.stop()
        try:
            status = await _canary_report(http, canaries, "SmtpDown")
            assert status == 201, status
            conn = await asyncpg.connect(system.pg.url)
            try:
                for _ in range(60):  # until a delivery attempt has failed and been recorded
                    if await conn.fetchval(
                        "SELECT count(*) FROM outbox WHERE last_error IS NOT NULL"
                    ):
                        break
                    await asyncio.sleep(0.5)
            finally:
                await conn.close()
        finally:
            system.smtp.start()


def _malformed_http(system: System, canaries: Canaries) -> None:
    """Broken requests that carry canaries, over a raw socket from a canary address."""
    address = canaries.add("address", "127.0.3.200")
    bodies = [
        f"POST /report/submit HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        f"User-Agent: {canaries.add('user_agent', _tag('UA'))}\r\n\r\n{_tag('Junk')}",
        f"GET /{canaries.add('report', _tag('Path'))}\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        f"POST /api/v1/reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f'Content-Length: 30\r\n\r\n{{"description": "{canaries.add("report", _tag("Bad"))}',
        f"GET / HTTP/1.1\r\nHost: x\r\nX-Bad\x01Header: {canaries.add('report', _tag('Hdr'))}\r\n\r\n",
    ]
    for body in bodies:
        with socket.create_connection(
            ("127.0.0.1", system.port), timeout=5, source_address=(address, 0)
        ) as sock:
            sock.sendall(body.encode("latin-1"))
            sock.shutdown(socket.SHUT_WR)
            try:
                while sock.recv(65536):
                    pass
            except OSError:
                pass


# --- Sinks ---------------------------------------------------------------------------------------


def _files(folder: Path) -> bytes:
    parts = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            try:
                parts.append(path.read_bytes())
            except OSError:
                continue
    return b"\n".join(parts)


async def _plant(system: System, planted: str, planted_bytes: bytes) -> None:
    """The positive control: the planted canary, and random bytes the size of an authenticator
    key (in the form each sink would keep bytes in), put where each sink keeps data."""
    conn = await asyncpg.connect(system.pg.url)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS chaos_planted (value text, raw bytea)")
        await conn.execute("INSERT INTO chaos_planted VALUES ($1, $2)", planted, planted_bytes)
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    client = redis.Redis.from_url(system.redis.url)
    client.set("chaos-planted", base64.b64encode(planted.encode()))
    client.set("chaos-planted-bytes", planted_bytes)
    client.bgrewriteaof()
    client.close()
    with (system.root / "logs" / "web.log").open("a") as log:
        log.write(json.dumps({"event": "planted", "value": planted}) + "\n")
        log.write(json.dumps({"event": "planted", "bytes": planted_bytes.hex()}) + "\n")
    # Flower shows a task's argsrepr: a relay run labelled with the canary (it does nothing more).
    from celery import Celery

    sender = Celery("chaos-planted", broker=system.redis.url)
    for label in (planted, base64.b64encode(planted_bytes).decode()):
        sender.send_task(
            jobs.RELAY_OUTBOX, argsrepr=label, kwargsrepr="{}", queue=jobs.DEFAULT_QUEUE,
            ignore_result=True,
        )  # fmt: skip
    sender.close()
    import smtplib

    with smtplib.SMTP("127.0.0.1", system.smtp.port) as smtp:
        smtp.sendmail(
            "a@chaos.example",
            ["b@chaos.example"],
            f"Subject: planted\r\nMessage-ID: <planted@x>\r\n\r\n{planted}\r\n"
            f"{base64.b64encode(planted_bytes).decode()}\r\n",
        )


class Flower:
    """Flower on the private system, as an operator would run it (docs/deploy.md)."""

    def __init__(self, system: System) -> None:
        self.port = free_port()
        self.auth = "chaos:" + secrets.token_urlsafe(12)
        self.proc = Proc(
            "flower",
            [
                sys.executable, "-m", "celery", "-A", "workers.celery_app", "flower",
                "--address=127.0.0.1", f"--port={self.port}", f"--basic-auth={self.auth}",
            ],
            system.env,
            system.root / "logs" / "flower.log",
        )  # fmt: skip

    def start(self) -> None:
        self.proc.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.get("/api/workers?refresh=1")
                return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("Flower did not answer within 60 s")

    def get(self, path: str) -> bytes:
        import urllib.request

        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            headers={"Authorization": "Basic " + base64.b64encode(self.auth.encode()).decode()},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
            body: bytes = resp.read()
            return body

    def collect(self) -> bytes:
        """Everything its API tells an operator: workers, every task it saw (and each task's
        own page), queue lengths."""
        parts = [self.get("/api/workers?refresh=1"), self.get("/api/queues/length")]
        tasks = self.get("/api/tasks")
        parts.append(tasks)
        for task_id in list(json.loads(tasks))[:500]:
            parts.append(self.get(f"/api/task/info/{task_id}"))
        return b"\n".join(parts)


def _limiter_state(system: System) -> bytes:
    """The web's rate limiters, dumped by chaos.inspect_web on SIGUSR2."""
    path = Path(system.env[DUMP_ENV])
    path.unlink(missing_ok=True)
    web = system.procs["web"].proc
    assert web is not None
    web.send_signal(signal.SIGUSR2)
    for _ in range(100):
        if path.exists():
            return path.read_bytes()
        time.sleep(0.1)
    raise RuntimeError("the web process did not dump its limiters")


def _limiter_control(state: bytes, addresses: list[str]) -> list[str]:
    """Addresses whose bucket the dump lacks: each must be there under its HMAC, or the dump
    would not show what the limiter keeps (the limiter sink's positive control)."""
    keys = {}
    for line in state.splitlines():
        label, _, rest = line.partition(b" ")
        if label in (b"submit._client_key", b"login._client_key"):
            keys[label.decode().split(".")[0]] = bytes.fromhex(rest.decode())
    missing = []
    for address in addresses:
        login = keyed_hash(keys.get("login", b""), "login", address).hex().encode()
        if login not in state:
            missing.append(address)
    return missing


def _sinks(system: System, flower: Flower) -> dict[str, bytes]:
    time.sleep(2)  # Redis's AOF rewrite and the last mails
    dump = subprocess.run(  # noqa: S603 - Debian's or the wheel's pg_dump, our own server
        [str(system.pg.bin / "pg_dump"), "-h", "127.0.0.1", "-p", str(system.pg.port), "-U",
         "postgres", "confide"],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout  # fmt: skip
    client = redis.Redis.from_url(system.redis.url)
    keys = []
    for key in client.scan_iter(count=500):
        keys.append(key)
        dumped = client.dump(key)
        if dumped:
            keys.append(dumped)
    client.close()
    metrics = b""
    try:
        import urllib.request

        with urllib.request.urlopen(system.base_url + "/metrics", timeout=5) as resp:  # noqa: S310
            metrics = resp.read()
    except OSError:
        pass
    return {
        "pg_dump": dump,
        "postgres data and WAL": _files(system.pg.dir),
        "postgres log": system.pg.log.read_bytes(),
        "redis keys": b"\n".join(keys),
        "redis AOF/RDB": _files(system.redis.dir),
        "logs": _files(system.root / "logs"),
        "mail": b"\n".join(system.smtp.raw()),
        "ics": b"\n".join(p.read_bytes() for p in sorted(system.root.glob("reminder-*.ics"))),
        "/metrics": metrics,
        "Flower API": flower.collect(),
        "rate limiter": _limiter_state(system),
    }


@dataclass
class ScanResult:
    hits: dict[tuple[str, str], Counter[str]]
    forbidden: int
    planted_missing: list[str]
    sinks: dict[str, int]
    canary_count: int
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lines = ["== canary scan"]
        lines.append("  sinks: " + ", ".join(f"{k} {v:,} B" for k, v in self.sinks.items()))
        lines.append(f"  canaries: {self.canary_count} values in {len(ALL_KINDS)} kinds")
        lines += [f"  {note}" for note in self.notes]
        header = f"  {'canary':<14}" + "".join(f"{s[:14]:>16}" for s in self.sinks)
        lines.append(header)
        for kind in (*ALL_KINDS, *PLANTED_KINDS):
            row = f"  {kind:<14}"
            for sink in self.sinks:
                found = self.hits.get((kind, sink))
                row += f"{sum(found.values()) if found else 0:>16}"
            lines.append(row)
        lines.append(f"  hits outside allowed cells    {self.forbidden}")
        lines.append(
            "  planted canary found in       "
            + (
                "every sink it was planted in"
                if not self.planted_missing
                else f"MISSING from {', '.join(self.planted_missing)}"
            )
        )
        for (kind, sink), forms in sorted(self.hits.items()):
            if kind not in PLANTED_KINDS:
                lines.append(f"  HIT {kind} in {sink}: {dict(forms)}")
        return "\n".join(lines)


ALL_KINDS = (
    "report", "message", "reply", "user_agent", "address", "code", "wrong_code", "totp_secret",
    "recovery_code",
)  # fmt: skip
HASHED_KINDS = ("address", "code", "totp_secret", "recovery_code")  # their sha256 is searched too
PLANTED_KINDS = ("planted", "planted_bytes")
PLANTED_IN = (
    "pg_dump", "postgres data and WAL", "redis keys", "redis AOF/RDB", "logs", "mail", "Flower API",
)  # fmt: skip


async def run(root: Path) -> ScanResult:
    system = System(root, Plan(0, 0, 0))
    system.env_overrides = {
        "CONFIDE_DB_TIMEOUT_S": "2",  # for the forced database error
        DUMP_ENV: str(root / "limiter-state"),
    }
    system.web_module = "chaos.inspect_web"
    flower: Flower | None = None
    try:
        await asyncio.to_thread(system.start)
        flower = Flower(system)
        await asyncio.to_thread(flower.start)  # before the traffic, so it sees every task
        canaries = Canaries()
        await _drive(system, canaries)
        planted, planted_bytes = _tag("Planted"), os.urandom(20)
        await _plant(system, planted, planted_bytes)
        await _drain(system, 90)  # the relay sends the digests and alerts
        sinks = await asyncio.to_thread(_sinks, system, flower)
        sinks.update(await _statistics_sinks(system))
    finally:
        if flower is not None:
            flower.proc.stop()
        await asyncio.to_thread(system.stop)
    hits: dict[tuple[str, str], Counter[str]] = {}
    forbidden = 0
    scan_started = time.monotonic()
    lowered = {sink: blob.lower() for sink, blob in sinks.items()}
    searched: list[tuple[str, list[str | bytes]]] = [
        *canaries.by_kind.items(),
        ("planted", [planted]),
        ("planted_bytes", [planted_bytes]),
    ]
    for kind, values in searched:
        hashed = kind in HASHED_KINDS
        for value in values:
            for sink, blob in sinks.items():
                found = scan(blob, value, hashed=hashed, lower=lowered[sink])
                if found:
                    hits.setdefault((kind, sink), Counter()).update(found)
                    allowed = ALLOWED.get(kind, set())
                    if "*" not in allowed and sink not in allowed:
                        forbidden += len(found)
    scan_s = time.monotonic() - scan_started
    missing = [
        s + ("" if kind == "planted" else " (bytes)")
        for kind in PLANTED_KINDS
        for s in PLANTED_IN
        if (kind, s) not in hits
    ]
    # The limiter cannot take a planted value; its control is a bucket for each canary client.
    addresses = [a for a in canaries.by_kind["address"][:REPORTERS] if isinstance(a, str)]
    missing += [
        f"rate limiter (no bucket for {a})"
        for a in _limiter_control(sinks["rate limiter"], addresses)
    ]
    tasks = sinks["Flower API"].count(b'"uuid"')
    buckets = sum(1 for line in sinks["rate limiter"].splitlines() if b"._client_key " not in line)
    return ScanResult(
        hits,
        forbidden,
        missing,
        {k: len(v) for k, v in sinks.items()},
        sum(len(v) for v in canaries.by_kind.values()),
        [
            f"Flower's API: {tasks:,} task records",
            f"rate limiter: {buckets} entries; each reporter's login bucket found under its HMAC",
            f"second factor: the app's key in {len(canaries.by_kind['totp_secret'])} forms, "
            f"{len(canaries.by_kind['recovery_code']) // 2} recovery codes in 2 forms each",
            f"search: {scan_s:.1f} s",
        ],
    )


def self_test() -> list[str]:
    """Every encoding of a canary (text, or raw bytes as of an authenticator key), embedded in
    other bytes, is found, and so are their sha256 (the scanner's own check)."""
    failures = []
    for value in (_tag("Self"), os.urandom(20)):
        raw = value.encode() if isinstance(value, str) else value
        label = "" if isinstance(value, str) else " (bytes)"
        for name, form in (*variants(value).items(), *_hashes(value).items()):
            blob = os.urandom(17) + form + os.urandom(13)
            if not scan(blob, value, hashed=True):
                failures.append(name + label)
        for shift in range(3):
            for encode in (base64.b64encode, base64.urlsafe_b64encode):
                blob = encode(os.urandom(shift) + raw + os.urandom(5))
                if not scan(blob, value):
                    failures.append(f"{encode.__name__} at offset {shift}{label}")
    return failures
