"""Slow clients (slowloris): request headers within 10 s, bodies at 1 KiB/s or more.

aiohttp has no header timeout (its keep-alive timeout, 75 s, starts again at each request) and
no minimum body rate. Here:

- **Headers.** From the connection's opening, and from the first byte of each later request on a
  kept-alive connection, the request line and headers must be complete within
  ``HEADER_TIMEOUT_S``. Otherwise the client gets ``408`` and the connection closes. An idle
  kept-alive connection that sends nothing is left to the keep-alive timeout.
- **Bodies.** While a handler runs and the body is not complete, at least
  ``BODY_MIN_BYTES_PER_S`` × ``BODY_WINDOW_S`` bytes must have arrived in every ``BODY_WINDOW_S``
  window; the body stops with ``408``. There is no cap on the total time, so a large upload over
  Tor that keeps moving always gets through.

Both act on bytes and times only: nothing of the request is read or logged.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from confide.files.limits import BODY_MIN_BYTES_PER_S as MIN_RATE

HEADER_TIMEOUT_S = 10.0
BODY_WINDOW_S = 10.0
BODY_MIN_BYTES_PER_S = MIN_RATE  # confide.files.limits: the uploads' streaming time uses it
_CHECK_EVERY_S = 1.0

_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"Content-Length: 0\r\n"
    b"Connection: close\r\n"
    b"Cache-Control: no-store\r\n"
    b"Server: Confide\r\n"
    b"\r\n"
)


class SlowBody(asyncio.TimeoutError):
    """The body arrived slower than the minimum rate (raised into the handler's body read)."""


# --- Headers: a timer per connection, on aiohttp's protocol ---------------------------------------

_header_timers: dict[RequestHandler, asyncio.TimerHandle] = {}


def _arm(protocol: RequestHandler) -> None:
    loop = asyncio.get_running_loop()
    _header_timers[protocol] = loop.call_later(HEADER_TIMEOUT_S, _headers_due, protocol)


def _disarm(protocol: RequestHandler) -> None:
    timer = _header_timers.pop(protocol, None)
    if timer is not None:
        timer.cancel()


def _headers_due(protocol: RequestHandler) -> None:
    _header_timers.pop(protocol, None)
    if protocol._request_in_progress or protocol._messages:
        return  # the headers came in time (the timer lost a race with them)
    transport = protocol.transport
    if transport is None or transport.is_closing():
        return
    transport.write(_TIMEOUT_RESPONSE)
    protocol.force_close()
    transport.close()


def install_header_timeout() -> None:
    """Wrap aiohttp's request handler once per process (as webapp.errors does for its errors)."""
    handler_class = RequestHandler
    if getattr(handler_class.data_received, "_confide", False):
        return
    connection_made = handler_class.connection_made
    connection_lost = handler_class.connection_lost
    data_received = handler_class.data_received

    def on_connection_made(self: RequestHandler, transport: asyncio.BaseTransport) -> None:
        connection_made(self, transport)
        _arm(self)

    def on_connection_lost(self: RequestHandler, exc: BaseException | None) -> None:
        _disarm(self)
        connection_lost(self, exc)

    def on_data_received(self: RequestHandler, data: bytes) -> None:
        requests_before = self._request_count
        data_received(self, data)
        if self._request_count != requests_before:
            _disarm(self)  # a request's headers are complete
        elif (
            data
            and self not in _header_timers
            and not self._request_in_progress
            and not self._messages
            and not self._force_close
        ):
            _arm(self)  # the first bytes of another request on a kept-alive connection

    on_data_received._confide = True  # type: ignore[attr-defined]
    # Wrapping aiohttp's class in place is the point (its handler has no hook for this).
    handler_class.connection_made = on_connection_made  # type: ignore[method-assign]
    handler_class.connection_lost = on_connection_lost  # type: ignore[method-assign]
    handler_class.data_received = on_data_received  # type: ignore[method-assign]


# --- Bodies: a rate check while the handler runs --------------------------------------------------


class _BodyWatch:
    """Samples how much of the body has arrived, once a second, until it is complete."""

    def __init__(self, request: web.Request) -> None:
        self.content = request.content
        self.loop = asyncio.get_running_loop()
        self.samples: deque[tuple[float, int]] = deque()
        self.samples.append((self.loop.time(), self.content.total_bytes))
        self.tripped = False
        self.timer: asyncio.TimerHandle | None = self.loop.call_later(_CHECK_EVERY_S, self.check)

    def check(self) -> None:
        self.timer = None
        if self.content.is_eof() or self.content.exception() is not None:
            return
        now, received = self.loop.time(), self.content.total_bytes
        self.samples.append((now, received))
        while len(self.samples) > 1 and self.samples[1][0] <= now - BODY_WINDOW_S:
            self.samples.popleft()
        since, then = self.samples[0]
        if now - since >= BODY_WINDOW_S and received - then < BODY_MIN_BYTES_PER_S * BODY_WINDOW_S:
            self.tripped = True
            self.content.set_exception(SlowBody())
            return
        self.timer = self.loop.call_later(_CHECK_EVERY_S, self.check)

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def body_rate_middleware(
    on_slow: Callable[[web.Request], web.StreamResponse],
) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not request.body_exists or request.content.is_eof():
            return await handler(request)  # the usual case: the body came with the headers
        watch = _BodyWatch(request)
        try:
            return await handler(request)
        except Exception:
            if watch.tripped:  # whatever the handler made of the failed read
                response = on_slow(request)
                response.force_close()
                return response
            raise
        finally:
            watch.stop()

    return middleware
