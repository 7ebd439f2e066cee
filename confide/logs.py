"""Structured JSON logs with an allow-list of fields (docs/logging.md).

Nothing identifying may reach a log line: no IP, user agent, code, report or message text, e-mail
address or query string. Three layers make sure of that:
- our own code logs ids and outcomes only (``log.info("report_submitted", thread_id=…)``);
- a processor drops every field that is not on the allow-list;
- records from other libraries (aiohttp, asyncpg, Celery) keep their logger name and a fixed event,
  and exceptions keep their type and frames but never their message, which can quote user values.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import threading
import time
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import TextIO

import orjson
import structlog
from structlog.typing import EventDict, FilteringBoundLogger, WrappedLogger

ALLOWED_FIELDS = frozenset(
    {
        "event",
        "level",
        "timestamp",
        "logger",
        "component",
        "request_id",
        "route",
        "method",
        "status",
        "duration_ms",
        "task",
        "task_id",
        "thread_id",
        "outbox_id",
        "attachment_id",
        "file_type",
        "queue",
        "attempts",
        "exc_type",
        "traceback",
        "error_id",
        "count",
        "applied",
        "fallback",
        "outcome",
    }
)

# Third-party messages we keep verbatim: they are fixed strings without user data.
_SAFE_FOREIGN_MESSAGES = {
    "celery.worker.consumer.connection": True,
    "celery.apps.worker": True,
    "celery.beat": True,
    "celery.worker.strategy": True,  # "Task <name>[<id>] received"
}


def safe_traceback(
    exc_info: tuple[type[BaseException], BaseException, TracebackType | None],
) -> str:
    """Frames and exception types only: messages can carry user values, so they are left out."""
    exc_type, _exc, tb = exc_info
    frames = traceback.extract_tb(tb)
    where = " < ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in frames[-8:])
    return f"{exc_type.__name__} at {where}" if where else exc_type.__name__


def _allow_list(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    exc_info = event.pop("exc_info", None)
    if exc_info:
        if exc_info is True:
            exc_info = sys.exc_info()
        elif isinstance(exc_info, BaseException):
            exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
        if exc_info and exc_info[0] is not None:
            event["exc_type"] = exc_info[0].__name__
            event["traceback"] = safe_traceback(exc_info)
    for key in [k for k in event if k not in ALLOWED_FIELDS]:
        del event[key]
    return event


def _foreign_record(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """Records from the standard library logging of other packages."""
    record: logging.LogRecord | None = event.get("_record")
    if record is None or record.name.startswith("confide"):
        return event
    if not _SAFE_FOREIGN_MESSAGES.get(record.name):
        # aiohttp writes "Error handling request from <client address>" and parser errors with the
        # address; asyncpg and Celery can quote values. Keep a fixed event name only.
        event["event"] = "library_message"
    if record.exc_info and record.exc_info[0] is not None:
        event["exc_info"] = record.exc_info
    return event


class LineWriter:
    """structlog's output: one JSON line per call, written to ``stream``.

    With ``coalesce`` (the web process, whose loop runs for its whole life), lines logged on the
    event loop's thread are written together at the end of the loop iteration, in one write and
    one flush: a busy web process logs thousands of lines a second, and a system call per line
    cost it more than rendering them. Other threads, and processes that run loops only briefly
    (worker, beat, CLI), write and flush each line at once. Lines still waiting are written at exit.

    Serves ``make bench`` ``observability`` (req/s with logging and a scraper ÷ both off ≥ 0.90)
    and ``submit``: it was one of the second round's changes that took web CPU per submission
    from 0.56 to 0.39–0.41 ms, and observability has been at 0.92–0.98 since
    (docs/benchmarks.md). Its share was not measured apart.
    """

    def __init__(self, stream: TextIO, *, coalesce: bool = False) -> None:
        self._stream = stream
        self._coalesce = coalesce
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._scheduled = False
        atexit.register(self.flush)

    def msg(self, message: str) -> None:
        try:
            if not self._coalesce:
                raise RuntimeError
            loop = asyncio.get_running_loop()
        except RuntimeError:
            with self._lock:
                self._stream.write(message + "\n")
                self._stream.flush()
            return
        with self._lock:
            self._pending.append(message)
            if self._scheduled:
                return
            self._scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        with self._lock:
            lines, self._pending = self._pending, []
            self._scheduled = False
            if lines:
                self._stream.write("\n".join(lines) + "\n")
                self._stream.flush()

    debug = info = warning = warn = error = err = critical = exception = fatal = log = msg


class _Timestamp:
    """``timestamp``: ISO 8601 UTC with microseconds and ``Z``, as structlog's TimeStamper writes
    it, with the date and time up to the second formatted once per second."""

    def __init__(self) -> None:
        self._cached = (-1, "")  # one tuple, so threads never see a second with another's text

    def __call__(self, _: WrappedLogger, __: str, event: EventDict) -> EventDict:
        now = time.time()
        second = int(now)
        cached_second, prefix = self._cached
        if second != cached_second:
            prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._cached = (second, prefix)
        event["timestamp"] = f"{prefix}.{int((now - second) * 1_000_000):06d}Z"
        return event


def _render(_: WrappedLogger, __: str, event: EventDict) -> str:
    """One JSON object, keys sorted; values orjson cannot encode become their ``str``."""
    return orjson.dumps(event, default=str, option=orjson.OPT_SORT_KEYS).decode()


def _logger_name(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    event["logger"] = event.pop("logger_name", "confide")
    return event


def configure(
    component: str, level: str = "INFO", stream: TextIO | None = None, *, coalesce: bool = False
) -> None:
    """JSON lines on stdout (or ``stream``) for every logger in the process.

    Our own loggers are structlog's native filtering loggers writing straight to the stream: a
    call below the level costs nothing and one that passes skips the stdlib ``LogRecord``
    machinery. Records of other libraries go through the stdlib root handler and end in the same
    allow-list and JSON renderer.
    """
    out = stream or sys.stdout
    writer = LineWriter(out, coalesce=coalesce)
    timestamp = _Timestamp()
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            timestamp,
            _foreign_record,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _allow_list,
            _render,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access logger is never used (our own access log has no client address).
    logging.getLogger("aiohttp.access").disabled = True
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _logger_name,
            structlog.processors.add_log_level,
            timestamp,
            _allow_list,
            _render,
        ],
        logger_factory=lambda *_: writer,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(component=component)
    global _access
    _access = _AccessLine(writer, timestamp, component, logging.getLevelName(level.upper()))


class _AccessLine:
    """The web's access line, written without structlog's processor chain: the same JSON
    object (sorted keys, the allow-listed fields only, the same timestamp) that
    ``get("confide.access").info("request", ...)`` writes.

    Serves ``make bench`` ``submit`` (req/s ÷ bare ≥ 0.50): in the running web process the
    chain cost about 20 µs a request (``GET /healthz`` 88 → 67 µs of web CPU without the line);
    this writes it for about 3 µs (docs/benchmarks.md, 2026-12-03).
    """

    def __init__(self, writer: LineWriter, timestamp: _Timestamp, component: str, level: int):
        self._writer = writer
        self._timestamp = timestamp
        self._component = component
        self._on = level <= logging.INFO

    def __call__(
        self, request_id: str, route: str, method: str, status: int, duration_ms: float
    ) -> None:
        if not self._on:
            return
        event = {
            "component": self._component,
            "duration_ms": duration_ms,
            "event": "request",
            "level": "info",
            "logger": "confide.access",
            "method": method,
            "request_id": request_id,
            "route": route,
            "status": status,
        }
        self._timestamp(None, "", event)
        self._writer.msg(orjson.dumps(event, option=orjson.OPT_SORT_KEYS).decode())


_access: _AccessLine | None = None


def access(request_id: str, route: str, method: str, status: int, duration_ms: float) -> None:
    """One access line (the web's ``access_middleware``); nothing before :func:`configure`."""
    if _access is not None:
        _access(request_id, route, method, status, duration_ms)


def get(name: str = "confide") -> FilteringBoundLogger:
    # An initial value, not ``.bind()``: bind would build the logger now, before ``configure``.
    # (``logger`` itself is a parameter name of ``get_logger``, hence ``logger_name``.)
    logger: FilteringBoundLogger = structlog.get_logger(logger_name=name)  # a lazy proxy of one
    return logger
