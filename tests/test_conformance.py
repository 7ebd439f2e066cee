"""Every route answers with the security headers (issue 7, configuration conformance)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp import web
from multidict import CIMultiDictProxy

from tests.conftest import Stack, StaffAccount
from tests.journeys import staff_logs_in
from webapp.routes import setup

SAMPLE = {"{reference}": "R-00000000", "{action}": "note"}


def paths() -> list[tuple[str, str]]:
    app = web.Application()
    setup(app, Path(__file__).parent)
    found = []
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        info = route.resource.get_info()
        path = info.get("path") or info.get("formatter", "")
        if "prefix" in info:  # static files
            path = info["prefix"] + "/app.css"
        for key, value in SAMPLE.items():
            path = path.replace(key, value)
        found.append((route.method, path))
    return found


def check(headers: CIMultiDictProxy[str], path: str, tls: bool) -> None:
    csp = headers["Content-Security-Policy"]
    for directive in (
        "default-src 'none'",
        "base-uri 'none'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "script-src 'self'",
    ):
        assert directive in csp, (path, directive)
    assert "unsafe-inline" not in csp
    assert headers["Referrer-Policy"] == "no-referrer", path
    assert headers["X-Content-Type-Options"] == "nosniff", path
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin", path
    assert headers["Cross-Origin-Resource-Policy"] == "same-origin", path
    assert "aiohttp" not in headers.get("Server", ""), path
    if path == "/.well-known/confide-receipt-key":  # public keys, cached briefly on purpose
        assert headers["Cache-Control"] == "public, max-age=300", path
    elif not path.startswith("/static/"):
        assert headers["Cache-Control"] == "no-store", path
    assert ("Strict-Transport-Security" in headers) == tls, path


async def test_every_route_sends_the_security_headers(
    stack: Stack, caseworker: StaffAccount
) -> None:
    routes = paths()
    assert len(routes) > 40
    _, tls_base = stack.start_web("web-conformance", CONFIDE_TRUST_PROXY="1")
    for base, tls in ((stack.base_url, False), (tls_base, True)):
        jar = aiohttp.CookieJar(unsafe=True)
        extra = {"X-Forwarded-Proto": "https"} if tls else {}
        async with aiohttp.ClientSession(base_url=base, cookie_jar=jar, headers=extra) as http:
            if not tls:
                await staff_logs_in(http, caseworker.email, caseworker.password)
            for method, path in routes:
                async with http.request(method, path, allow_redirects=False) as resp:
                    assert resp.status < 500, (method, path, resp.status)
                    check(resp.headers, path, tls)


def test_debug_is_off_and_tracebacks_never_reach_a_page(stack: Stack) -> None:
    # The web process refuses to start in production with asyncio debug on (webapp/__main__.py),
    # and every error page in these tests was checked for tracebacks. The running stack:
    assert "PYTHONASYNCIODEBUG" not in stack.env
    assert "-X" not in stack.web.cmd


def test_production_refuses_asyncio_debug_mode(stack: Stack, tmp_path: Path) -> None:
    import subprocess
    import sys

    env = dict(
        stack.env,
        CONFIDE_ENV="production",
        CONFIDE_DATA_DIR=str(tmp_path / "data"),
        CONFIDE_ARGON2_MEMORY_KIB="19456",
        CONFIDE_ARGON2_TIME_COST="2",
    )
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-m", "webapp"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.returncode == 1
    assert "debug mode is on; refusing to run in production" in result.stderr
    assert "Traceback" not in result.stderr
