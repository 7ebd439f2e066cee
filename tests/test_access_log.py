"""Ops read one JSON line per request: the web's short way of writing it (confide.logs.access)
writes exactly what the structlog chain writes for the same request, and nothing else."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from confide import logs


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:], root.level = handlers, level
    logs._access = None


def _line(write: str) -> dict[str, object]:
    out = io.StringIO()
    logs.configure("web", "INFO", out)
    structlog.contextvars.bind_contextvars(request_id="0123456789abcdef")
    try:
        if write == "short":
            logs.access("0123456789abcdef", "report_submit", "POST", 200, 1.23)
        else:
            logs.get("confide.access").info(
                "request",
                request_id="0123456789abcdef",
                route="report_submit",
                method="POST",
                status=200,
                duration_ms=1.23,
            )
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    (text,) = out.getvalue().splitlines()
    line: dict[str, object] = json.loads(text)
    return line


def test_the_access_line_is_the_same_object_however_it_is_written() -> None:
    short, chain = _line("short"), _line("chain")
    assert short.pop("timestamp") != ""  # the instants differ; the format is checked below
    assert str(chain.pop("timestamp")).endswith("Z")
    assert (
        short
        == chain
        == {
            "component": "web",
            "duration_ms": 1.23,
            "event": "request",
            "level": "info",
            "logger": "confide.access",
            "method": "POST",
            "request_id": "0123456789abcdef",
            "route": "report_submit",
            "status": 200,
        }
    )


def test_no_access_line_is_written_above_info() -> None:
    out = io.StringIO()
    logs.configure("web", "WARNING", out)
    logs.access("0123456789abcdef", "healthz", "GET", 200, 0.01)
    assert out.getvalue() == ""
