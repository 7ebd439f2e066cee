"""Slow clients (finding 12 of issue 12): headers within 10 s, bodies at 1 KiB/s or more.

A raw socket trickles bytes at the web process, as a slowloris attack does. The bounds are 10 s;
the tests only check that the connection ends well before the 100 s the attack used to get.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from urllib.parse import urlsplit

import asyncpg

from tests.conftest import Stack

PATIENCE_S = 40  # far above the 10 s bounds, far below the 100 s the review saw


async def connect(stack: Stack) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    url = urlsplit(stack.base_url)
    assert url.hostname and url.port
    return await asyncio.open_connection(url.hostname, url.port)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


async def trickle_until_closed(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes, every_s: float
) -> bytes:
    """Send ``data`` one byte per ``every_s``; whatever the server answered once it hangs up."""
    try:
        return await _trickle(reader, writer, data, every_s)
    finally:
        await close(writer)


async def _trickle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes, every_s: float
) -> bytes:
    answer = b""
    deadline = time.monotonic() + 2 * PATIENCE_S
    for byte in data:
        if time.monotonic() > deadline:
            break
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except (ConnectionError, OSError):
            break
        try:
            chunk = await asyncio.wait_for(reader.read(65536), every_s)
        except TimeoutError:
            continue
        except (ConnectionError, OSError):
            return answer
        if not chunk:
            return answer
        answer += chunk
    try:
        rest = await asyncio.wait_for(reader.read(), 5)
    except (TimeoutError, ConnectionError, OSError):
        rest = b""
    return answer + rest


async def test_slow_client_cannot_hold_a_connection_by_trickling_headers(stack: Stack) -> None:
    reader, writer = await connect(stack)
    started = time.monotonic()
    writer.write(b"POST /login HTTP/1.1\r\nHost: confide\r\n")
    answer = await trickle_until_closed(reader, writer, b"X-Slow: " + b"a" * 200, every_s=1.0)
    assert time.monotonic() - started < PATIENCE_S
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:100]
    # Closed by the server: a clean end, or a reset when unread bytes were still in flight.
    assert reader.at_eof() or isinstance(reader.exception(), ConnectionResetError)


async def test_slow_client_cannot_hold_a_connection_by_trickling_a_body(
    stack: Stack, db: asyncpg.Connection
) -> None:
    logged_before = len(stack.web.log_text())
    reader, writer = await connect(stack)
    writer.write(
        b"POST /api/v1/reports HTTP/1.1\r\nHost: confide\r\nContent-Type: application/json\r\n"
        b"Content-Length: 5000\r\n\r\n"
    )
    started = time.monotonic()
    answer = await trickle_until_closed(reader, writer, b'{"description": "' + b"a" * 4000, 1.0)
    assert time.monotonic() - started < PATIENCE_S
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert b"application/problem+json" in answer
    assert await db.fetchval("SELECT count(*) FROM threads") == 0
    await asyncio.sleep(0.5)
    log = stack.web.log_text()[logged_before:]
    assert "dependency_down" not in log and "unhandled_error" not in log


async def test_reporter_on_a_slow_but_steady_line_can_send_a_long_report(
    stack: Stack, db: asyncpg.Connection
) -> None:
    """About 3 KiB/s for longer than the 10 s window, with headers in three pieces: accepted."""
    report = {
        "category": "safety",
        "description": "The loading bay door does not close. " * 20,
        "anonymous": True,
        "follow_up": True,
    }
    # Valid JSON padded with whitespace, so the body is long without a long report.
    body = json.dumps(report).replace(", ", "," + " " * 11_000, 3).encode()
    assert len(body) > 33_000
    head = (
        b"POST /api/v1/reports HTTP/1.1\r\nHost: confide\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    reader, writer = await connect(stack)
    for piece in (head[:20], head[20:60], head[60:]):
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(1.0)
    started = time.monotonic()
    for offset in range(0, len(body), 1536):
        writer.write(body[offset : offset + 1536])
        await writer.drain()
        await asyncio.sleep(0.5)
    assert time.monotonic() - started > 10  # longer than one window: the rate is what counts
    answer = await asyncio.wait_for(reader.read(), 30)
    await close(writer)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 201 Created", answer[:300]
    payload = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert payload["reference"].startswith("R-") and payload["code"]
    assert await db.fetchval("SELECT count(*) FROM threads") == 1
