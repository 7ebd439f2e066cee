"""Staff sign-ins with password + authenticator code (issue 15), for :mod:`bench.logins`.

Each sign-in is one ``POST /api/v1/staff/session`` with the e-mail, the password and a fresh
TOTP code: one argon2id verification in the web's local executor (staff passwords are checked
there, not on the hashing workers), then the code's check and its step written in PostgreSQL,
then a new session. A code is accepted once per account and step, so the bench makes enough
accounts for the run: each signs in with the codes of the steps before, at and after now, in
that order (the ±1 window), so it can sign in three times before it must wait for a new step.

The closed-loop client is aiohttp in this process (wrk cannot make a fresh code per request);
its CPU is on the same machine as the server's, which makes the ratio a little pessimistic.
Then a flood of wrong codes against one account must get 429s, while a genuine sign-in to
another account from a fresh client still answers 200.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

import aiohttp
import asyncpg
import pyotp

from bench.common import Context, say
from bench.fixtures import Web
from confide.crypto import Keyring
from confide.services.staff import hasher
from confide.settings import Settings

ACCOUNTS_PER_SECOND = 30  # accounts made per second of run: 90 sign-ins/s before any waits
PASSWORD = "bench-staff-password-0123456789"
EMAIL = "bench-2fa-{n:05d}@example.org"
# Per-client and global staff sign-in limits out of the way: every request comes from loopback.
STAFF_LIMITS_RAISED = {
    "CONFIDE_STAFF_LOGIN_PER_CLIENT_ACCOUNT_PER_15MIN": "1000000000",
    "CONFIDE_STAFF_LOGIN_PER_CLIENT_PER_15MIN": "1000000000",
    "CONFIDE_STAFF_LOGIN_GLOBAL_PER_MINUTE": "1000000000",
}


@dataclass
class StaffRun:
    ok_per_s: float
    statuses: Counter[int]
    p50_ms: float


@dataclass
class Account:
    email: str
    totp: pyotp.TOTP
    next_offset: int = -1  # the step before now, now, the step after: then used up


async def make_accounts(web: Web, count: int) -> list[Account]:
    """``count`` case workers with the same password (one hash, made once: the cost of a check
    is the same) and each its own confirmed authenticator, sealed as Confide seals it."""
    settings = Settings.from_env(web.env)
    keyring = Keyring.from_secret(settings.encryption_keys)
    password_hash = await asyncio.get_running_loop().run_in_executor(
        None, hasher(settings).hash, PASSWORD
    )
    accounts = [Account(EMAIL.format(n=n), pyotp.TOTP(pyotp.random_base32())) for n in range(count)]
    conn = await asyncpg.connect(web.env["DATABASE_URL"])
    try:
        ids = await conn.fetch(
            """INSERT INTO staff (email, name, role, password_hash)
               SELECT e, 'Bench 2FA', 'caseworker', $2 FROM unnest($1::text[]) e
               ON CONFLICT (lower(email)) DO UPDATE SET password_hash = EXCLUDED.password_hash
               RETURNING id, email""",
            [a.email for a in accounts],
            password_hash,
        )
        by_email = {r["email"]: r["id"] for r in ids}
        await conn.executemany(
            """INSERT INTO staff_totp (staff_id, secret, confirmed_at) VALUES ($1, $2, now())
               ON CONFLICT (staff_id) DO UPDATE SET secret = EXCLUDED.secret, last_step = NULL,
                   confirmed_at = now()""",
            [
                (sid, keyring.seal(a.totp.secret, f"staff_totp.secret:{sid}"))
                for a in accounts
                for sid in (by_email[a.email],)
            ],
        )
    finally:
        await conn.close()
    return accounts


def _body(account: Account, now: float) -> dict[str, str] | None:
    if account.next_offset > 1:
        return None
    code = account.totp.at(now + 30 * account.next_offset)
    account.next_offset += 1
    return {"email": account.email, "password": PASSWORD, "otp": code}


async def closed_loop(web: Web, accounts: list[Account], secs: float, connections: int) -> StaffRun:
    """``connections`` clients signing in back to back for ``secs`` seconds."""
    url = web.url("/api/v1/staff/session")
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    queue = iter(a for _ in range(3) for a in accounts)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + secs

    async def client(session: aiohttp.ClientSession) -> None:
        while loop.time() < deadline:
            account = next(queue, None)
            body = _body(account, time.time()) if account is not None else None
            if body is None:
                statuses[0] += 1  # out of fresh codes: more accounts are needed
                return
            started = loop.time()
            async with session.post(url, json=body) as response:
                await response.read()
                statuses[response.status] += 1
            latencies.append(1000 * (loop.time() - started))

    started = loop.time()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as http:
        await asyncio.gather(*(client(http) for _ in range(connections)))
    span = loop.time() - started
    latencies.sort()
    p50 = latencies[len(latencies) // 2] if latencies else 0.0
    return StaffRun(statuses.get(200, 0) / span, statuses, p50)


async def flood_check(web: Web, victim: Account, other: Account) -> tuple[list[int], int]:
    """Ten wrong codes against one account, then a genuine sign-in to another from a fresh
    client (another loopback address). Returns the flood's statuses and the sign-in's."""
    url = web.url("/api/v1/staff/session")
    flood = []
    async with aiohttp.ClientSession() as attacker:
        for _ in range(10):
            body = {"email": victim.email, "password": PASSWORD, "otp": "000000"}
            async with attacker.post(url, json=body) as response:
                flood.append(response.status)
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as fresh:
        body = {"email": other.email, "password": PASSWORD, "otp": other.totp.now()}
        async with fresh.post(url, json=body) as response:
            return flood, response.status


def run(ctx: Context, web: Web, connections: int) -> tuple[StaffRun, list[int], int]:
    """Make the accounts, sign in flat out for ``ctx.secs``, then the flood check."""
    count = max(60, int(ACCOUNTS_PER_SECOND * ctx.secs))

    async def go() -> tuple[StaffRun, list[int], int]:
        accounts = await make_accounts(web, count + 2)
        victim, other = accounts[-2], accounts[-1]
        result = await closed_loop(web, accounts[:-2], ctx.secs, connections)
        flood, genuine = await flood_check(web, victim, other)
        return result, flood, genuine

    staff, flood, genuine = asyncio.run(go())
    say(
        f"    staff password + TOTP  {staff.ok_per_s:6.1f} sign-ins/s  p50 {staff.p50_ms:.0f} ms  "
        f"statuses {dict(sorted(staff.statuses.items()))}"
    )
    say(f"    flood of wrong codes on one account: {flood}; another account signs in: {genuine}")
    if 0 in staff.statuses:
        say("    WARNING: the run used every fresh code: raise ACCOUNTS_PER_SECOND")
    return staff, flood, genuine
