"""Reporters behind a reverse proxy (finding 2 of issue 12) and /metrics behind one (finding 13).

A real nginx stands in front of a web process with low login limits and
``CONFIDE_TRUSTED_PROXIES=127.0.0.1/32``. Clients reach it from distinct loopback addresses, as
distinct people reach a TLS proxy; the web sees every one of them arrive from the proxy.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aiohttp
import asyncpg
import pytest

from confide import codes
from tests.conftest import Proc, Stack
from tests.journeys import reporter_logs_in, reporter_submits
from tests.nginx import Nginx
from webapp.security import client_address

LOGIN_LIMIT = 5
METRICS_TOKEN = secrets.token_urlsafe(32)


@dataclass
class BehindProxy:
    web: Proc
    web_url: str
    proxy: Nginx


@pytest.fixture(scope="module")
def behind_proxy(stack: Stack) -> Iterator[BehindProxy]:
    web, web_url = stack.start_web(
        "web-behind-proxy",
        CONFIDE_TRUST_PROXY="1",
        CONFIDE_TRUSTED_PROXIES="127.0.0.1/32",
        CONFIDE_LOGIN_PER_CLIENT_PER_15MIN=str(LOGIN_LIMIT),
        CONFIDE_METRICS_TOKEN=METRICS_TOKEN,
    )
    proxy = Nginx(stack.artifacts / "nginx", int(web_url.rsplit(":", 1)[1]))
    try:
        yield BehindProxy(web, web_url, proxy)
    finally:
        proxy.stop()
        web.stop()


@pytest.fixture
async def clients(
    behind_proxy: BehindProxy, db: asyncpg.Connection
) -> AsyncIterator[dict[str, aiohttp.ClientSession]]:
    """Sessions named by their source address, to the proxy (``via``) or to the web itself."""
    sessions: dict[str, aiohttp.ClientSession] = {}

    def session(address: str, base: str) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(local_addr=(address, 0))
        return aiohttp.ClientSession(
            base_url=base, connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)
        )

    for address in ("127.0.0.2", "127.0.0.3"):
        sessions[address] = session(address, behind_proxy.proxy.base_url)
    sessions["127.0.0.4 direct"] = session("127.0.0.4", behind_proxy.web_url)
    try:
        yield sessions
    finally:
        for value in sessions.values():
            await value.close()


def wrong_code() -> str:
    return "".join(secrets.choice(codes.ALPHABET) for _ in range(16))


async def guess(http: aiohttp.ClientSession, headers: dict[str, str] | None = None) -> int:
    async with http.post(
        "/api/v1/reporter/session", json={"code": wrong_code()}, headers=headers or {}
    ) as resp:
        return resp.status


async def flood_until_limited(
    http: aiohttp.ClientSession, forged: str | None = None, rotate: bool = False
) -> int:
    """Wrong codes until 429; how many were answered 401 first."""
    for n in range(1, 4 * LOGIN_LIMIT):
        headers = {}
        if forged:
            headers["X-Forwarded-For"] = f"198.51.100.{n}" if rotate else forged
        status = await guess(http, headers)
        if status == 429:
            return n - 1
        assert status == 401, status
    raise AssertionError("never limited")


async def test_reporter_can_log_in_through_the_proxy_while_another_client_floods_it(
    behind_proxy: BehindProxy,
    http: aiohttp.ClientSession,
    clients: dict[str, aiohttp.ClientSession],
) -> None:
    sent = await reporter_submits(http, "The fire exit on level 3 is chained shut")
    assert sent.code
    attacker, reporter = clients["127.0.0.2"], clients["127.0.0.3"]
    assert await flood_until_limited(attacker) == LOGIN_LIMIT
    # A forged left-most X-Forwarded-For, through the proxy, is not a way into a fresh bucket:
    # the proxy appends the address it saw, and only that counts.
    assert await guess(attacker, {"X-Forwarded-For": "127.0.0.3"}) == 429
    assert await guess(attacker, {"X-Forwarded-For": "203.0.113.7, 127.0.0.1"}) == 429

    status, page = await reporter_logs_in(reporter, sent.code)
    assert status == 200, page[:300]
    assert "The fire exit on level 3 is chained shut" in page
    log = behind_proxy.web.log_text()
    assert "reporter_logged_in" in log
    assert "127.0.0.2" not in log and "127.0.0.3" not in log


async def test_client_cannot_escape_its_bucket_with_a_forged_header_sent_straight_to_the_web(
    clients: dict[str, aiohttp.ClientSession],
) -> None:
    """Not from a trusted proxy: X-Forwarded-For is ignored, so rotating it changes nothing."""
    direct = clients["127.0.0.4 direct"]
    assert await flood_until_limited(direct, forged="x", rotate=True) == LOGIN_LIMIT


async def test_ops_cannot_read_metrics_without_the_token_behind_a_proxy(
    behind_proxy: BehindProxy, clients: dict[str, aiohttp.ClientSession]
) -> None:
    """CONFIDE_TRUST_PROXY=1: loopback proves nothing, since the proxy is loopback too."""
    async with aiohttp.ClientSession() as loopback:
        for base in (behind_proxy.web_url, behind_proxy.proxy.base_url):
            async with loopback.get(base + "/metrics") as resp:
                assert resp.status == 403, base
            auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
            async with loopback.get(base + "/metrics", headers=auth) as resp:
                assert resp.status == 200, base
                assert "confide_threads_overdue" in await resp.text()


TRUSTED = (ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("2001:db8:ffff::/48"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # Not from a trusted proxy: the header is ignored.
        ("203.0.113.5", ["198.51.100.1"], "203.0.113.5"),
        # From one: the right-most address that is not a proxy, past chained proxies.
        ("10.0.0.2", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.2", ["127.0.0.9, 198.51.100.1, 10.0.0.7"], "198.51.100.1"),
        ("10.0.0.2", ["127.0.0.9", "198.51.100.1"], "198.51.100.1"),  # two header lines
        # Forged garbage to the left of the real client changes nothing.
        ("10.0.0.2", ["not an address, 198.51.100.1"], "198.51.100.1"),
        # Missing, malformed where it counts, or only proxies: the peer.
        ("10.0.0.2", [], "10.0.0.2"),
        ("10.0.0.2", ["198.51.100.1, bogus"], "10.0.0.2"),
        ("10.0.0.2", ["198.51.100.1:4711"], "10.0.0.2"),
        ("10.0.0.2", ["10.0.0.3, 10.0.0.4"], "10.0.0.2"),
        ("10.0.0.2", [""], "10.0.0.2"),
        # IPv6 clients by their /64; IPv4-mapped addresses as IPv4.
        ("10.0.0.2", ["2001:db8:1:2:aaaa::1"], "2001:db8:1:2::/64"),
        ("2001:db8:1:2::99", [], "2001:db8:1:2::/64"),
        ("2001:db8:ffff::1", ["2001:db8:5:6::7"], "2001:db8:5:6::/64"),
        ("::ffff:10.0.0.2", ["198.51.100.1"], "198.51.100.1"),
    ],
)
def test_client_address_is_the_right_most_untrusted_hop(
    peer: str, forwarded: list[str], client: str
) -> None:
    assert client_address(peer, forwarded, TRUSTED) == client


def test_client_address_is_the_peer_when_no_proxy_is_trusted() -> None:
    assert client_address("10.0.0.2", ["198.51.100.1"], ()) == "10.0.0.2"
    assert client_address(None, ["198.51.100.1"], TRUSTED) == ""
