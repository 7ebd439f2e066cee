"""Today's path, callable without a server: ``webapp.forms.read_json`` on bytes, then
``validation.report_from_json``; and the HTML form's ``report_flow.draft_or_first_bad_step``."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, cast

from aiohttp import web

from bench.models import legacy_validation as validation
from bench.models.legacy_validation import ReportDraft
from webapp.forms import read_json


class _Body:
    content_type = "application/json"

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def read(self) -> bytes:
        return self._body


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (no event loop: it would cost more than the work)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the coroutine suspended")


def parse(body: bytes) -> Any:
    """``read_json``: raises ``webapp.errors.BadRequest`` (400) as it does for a request."""
    return run(read_json(cast(web.Request, _Body(body))))


def report_from_bytes(body: bytes, categories: set[str]) -> ReportDraft:
    return validation.report_from_json(parse(body), categories)
