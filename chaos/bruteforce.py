"""Code brute force: guesses from 1 address, then from 200, against the production limits.

A private system with the default limits and argon2 parameters (10 logins per client per
15 minutes, 1,200 argon2 verifications a minute in all). Guesses are well-formed 16-character
codes: half with unknown lookup ids (which must never reach argon2), half with the lookup id of
a real code and a wrong secret. During the distributed attack, genuine reporters log in with
their real codes, each from an address of its own, and their latency is measured.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from chaos.crash import Plan, System
from confide import codes

ATTACKERS = 200
GENUINE = 20
GENUINE_ATTEMPTS = 5


@dataclass
class Attack:
    name: str
    seconds: float
    statuses: Counter[int] = field(default_factory=Counter)
    per_address_admitted: Counter[str] = field(default_factory=Counter)
    argon2_runs: float = 0.0
    web_cpu_s: float = 0.0
    worker_cpu_s: float = 0.0
    web_rss_mb: float = 0.0
    worker_rss_mb: float = 0.0
    genuine_ms: list[float] = field(default_factory=list)
    genuine_failed: int = 0
    genuine_retries: int = 0  # after a 429, as the page asks
    genuine_failures: Counter[int] = field(default_factory=Counter)  # last status of each
    known_admitted: int = 0  # admitted guesses that carried a real lookup id

    def describe(self) -> str:
        admitted = sum(n for s, n in self.statuses.items() if s != 429)
        per_client = sorted(self.per_address_admitted.values()) or [0]
        unknown = admitted - self.known_admitted
        by_unknown = self.argon2_runs - self.known_admitted - len(self.genuine_ms)
        lines = [
            f"== code brute force: {self.name}, {self.seconds:.0f} s",
            f"  responses                    {dict(sorted(self.statuses.items()))}",
            f"  guesses admitted (not 429)   {admitted} in all, {admitted * 60 / self.seconds:.0f}"
            " per minute",
            f"  admitted per client          max {per_client[-1]}, median "
            f"{per_client[len(per_client) // 2]} in {self.seconds:.0f} s (limit: 10 per 15 min)",
            f"  argon2 verifications         {self.argon2_runs:.0f}: {self.known_admitted} guesses"
            f" at a real lookup id, {len(self.genuine_ms)} genuine logins; {unknown} guesses at"
            f" unknown ids caused {max(0.0, by_unknown):.0f}",
            f"  web CPU, worker CPU          {self.web_cpu_s / self.seconds:.2f} and "
            f"{self.worker_cpu_s / self.seconds:.2f} cores",
            f"  RSS web, worker (after)      {self.web_rss_mb:.0f} MB, {self.worker_rss_mb:.0f} MB",
        ]
        if self.genuine_ms or self.genuine_failed:
            ordered = sorted(self.genuine_ms)
            p95 = ordered[int(0.95 * (len(ordered) - 1))] if ordered else float("nan")
            lines.append(
                f"  genuine logins               {len(ordered)} ok, {self.genuine_failed} failed,"
                f" {self.genuine_retries} tries again after a 429;"
                f" p95 {p95:.0f} ms from the first try (target < 3000 ms)"
                + (f"; failed with {dict(self.genuine_failures)}" if self.genuine_failed else "")
            )
        return "\n".join(lines)


def _guess(known_lookup: str) -> str:
    secret = "".join(secrets.choice(codes.ALPHABET) for _ in range(10))
    if secrets.randbelow(2):
        return known_lookup + secret
    return "".join(secrets.choice(codes.ALPHABET) for _ in range(6)) + secret


def _cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        for task in _tree(pid):
            try:
                fields = Path(f"/proc/{task}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / 100
            except (OSError, IndexError, ValueError):
                pass
    return total


def _rss_mb(pid: int) -> float:
    total = 0.0
    for task in _tree(pid):
        try:
            for line in Path(f"/proc/{task}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def _tree(pid: int) -> list[int]:
    found = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            pass
    return found


async def _argon2_runs(port: str) -> float:
    """check_code tasks the worker ran (its own metrics port)."""
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/metrics") as resp,
        ):
            text = await resp.text()
    except aiohttp.ClientError:
        return 0.0
    pattern = r'^celery_task_(?:succeeded|failed)_total\{name="confide\.check_code"\} (\S+)$'
    return sum(float(m) for m in re.findall(pattern, text, re.M))


async def _attacker(
    system: System, address: str, known_lookup: str, until: float, attack: Attack
) -> None:
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with aiohttp.ClientSession(base_url=system.base_url, connector=connector) as http:
        while time.monotonic() < until:
            try:
                guess = _guess(known_lookup)
                async with http.post("/api/v1/reporter/session", json={"code": guess}) as resp:
                    await resp.read()
                    attack.statuses[resp.status] += 1
                    if resp.status != 429:
                        attack.per_address_admitted[address] += 1
                        attack.known_admitted += guess.startswith(known_lookup)
                    if resp.status == 429:
                        retry = float(resp.headers.get("Retry-After", "1"))
                        await asyncio.sleep(min(retry, max(0.0, until - time.monotonic())))
            except aiohttp.ClientError:
                attack.statuses[0] += 1
                await asyncio.sleep(0.1)


async def _genuine(system: System, code: str, address: str, attack: Attack) -> None:
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with aiohttp.ClientSession(base_url=system.base_url, connector=connector) as http:
        started = time.monotonic()
        ok = False
        status = 0  # no answer
        # As a person would: after "too many attempts, try again in N seconds", try again once
        # N seconds have passed (the global argon2 budget answers a burst with a short wait).
        for _ in range(GENUINE_ATTEMPTS):
            try:
                async with http.post("/api/v1/reporter/session", json={"code": code}) as resp:
                    await resp.read()
                    ok = resp.status == 200
                    status = resp.status
                    retry = float(resp.headers.get("Retry-After", "0") or 0)
                    limited = resp.status == 429
            except aiohttp.ClientError:
                break
            if ok or not limited:
                break
            attack.genuine_retries += 1
            await asyncio.sleep(min(retry, 10.0))
        if ok:
            attack.genuine_ms.append(1000 * (time.monotonic() - started))
        else:
            attack.genuine_failed += 1
            attack.genuine_failures[status] += 1


async def _measure(
    system: System, name: str, seconds: float, addresses: list[str], code: str, genuine: bool
) -> Attack:
    attack = Attack(name, seconds)
    web = system.procs["web"].proc
    worker = system.procs["worker"].proc
    assert web is not None and worker is not None
    port = system.env["CONFIDE_WORKER_METRICS_PORT"]
    runs_before = await _argon2_runs(port)
    cpu_before = _cpu_s([web.pid]), _cpu_s([worker.pid])
    until = time.monotonic() + seconds
    lookup = codes.normalise(code)[:6]
    tasks = [_attacker(system, a, lookup, until, attack) for a in addresses]
    if genuine:

        async def genuine_reporters() -> None:
            for n in range(GENUINE):
                await asyncio.sleep(seconds / (GENUINE + 1))
                await _genuine(system, code, f"127.0.2.{n + 1}", attack)

        tasks.append(genuine_reporters())
    await asyncio.gather(*tasks)
    await asyncio.sleep(1)
    attack.argon2_runs = await _argon2_runs(port) - runs_before
    attack.web_cpu_s = _cpu_s([web.pid]) - cpu_before[0]
    attack.worker_cpu_s = _cpu_s([worker.pid]) - cpu_before[1]
    attack.web_rss_mb = _rss_mb(web.pid)
    attack.worker_rss_mb = _rss_mb(worker.pid)
    return attack


async def run(root: Path, *, seconds: float) -> list[Attack]:
    system = System(root, Plan(0, 0, 0))
    # Production limits and argon2 parameters: only these overrides of the crash run are undone.
    system.env_overrides = {
        "CONFIDE_LOGIN_PER_CLIENT_PER_15MIN": None,
        "CONFIDE_ARGON2_TIME_COST": None,
        "CONFIDE_ARGON2_MEMORY_KIB": None,
    }
    try:
        await asyncio.to_thread(system.start)
        async with (
            aiohttp.ClientSession(base_url=system.base_url) as http,
            http.post(
                "/api/v1/reports",
                json={
                    "category": "safety",
                    "description": "A genuine report",
                    "anonymous": True,
                    "follow_up": True,
                },
            ) as resp,
        ):
            body: dict[str, Any] = await resp.json()
        code = body["code"]
        one = await _measure(system, "1 client", seconds, ["127.0.0.1"], code, genuine=False)
        many = await _measure(
            system,
            f"{ATTACKERS} loopback addresses",
            seconds,
            [f"127.0.1.{n}" for n in range(1, ATTACKERS + 1)],
            code,
            genuine=True,
        )
        return [one, many]
    finally:
        await asyncio.to_thread(system.stop)
