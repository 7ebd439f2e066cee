"""Reading request bodies safely: clear 400/415 answers instead of exceptions."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar
from urllib.parse import unquote

from aiohttp import web

from confide.errors import FieldError, ValidationFailed
from webapp.errors import BadRequest, UnsupportedMediaType
from webapp.keys import FORM

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# A code point no UTF-8 text can hold: a lone surrogate (from a JSON "\ud800" escape, or bytes
# decoded with surrogateescape). It would fail later, when the text is encoded to be stored.
_SURROGATE = re.compile("[\ud800-\udfff]")
# No field takes a number this long; beyond 4,300 digits Python refuses to convert it at all.
MAX_NUMBER_DIGITS = 30
NOT_UNICODE = "The text holds a character that is not valid Unicode (a lone surrogate)."
MAX_FORM_FIELDS = 200


def is_unicode_text(text: str) -> bool:
    """True when ``text`` can be stored as UTF-8 (it holds no lone surrogate)."""
    return _SURROGATE.search(text) is None


async def read_form(request: web.Request) -> dict[str, str]:
    """A form as ``{name: text}``; the first value wins, files are refused (except on the
    routes of ``webapp.form_files``, where they wait, unread, for its ``receive_files``).

    Read once a request (the form policy may have read it before the handler), and kept on the
    request so that the error middleware can draw the form again with what was typed."""
    form = request.get(FORM)
    if form is None:
        form = request[FORM] = await _read_form(request)
    return form


def confirmed(form: dict[str, str], field: str, again: str, message: str) -> str:
    """``form[field]``, when the field typed a second time (``again``) matches it."""
    if form.get(field, "") != form.get(again, ""):
        raise ValidationFailed([FieldError(again, message)])
    return form.get(field, "")


async def _read_form(request: web.Request) -> dict[str, str]:
    content_type = request.content_type  # parsed from the header on every access
    if content_type not in FORM_TYPES:
        raise UnsupportedMediaType("a form (application/x-www-form-urlencoded)")
    if content_type == FORM_TYPES[0]:
        # Parsed here, strictly: aiohttp would quietly replace invalid UTF-8.
        raw = await request.read()
        try:
            return urlencoded(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise BadRequest("The form was not valid UTF-8 text.") from None
        except ValueError:
            raise BadRequest("The form could not be read.") from None
    from webapp import form_files  # it reads fields with this module's checks

    if form_files.carries_files(request):  # streamed: the files wait for the handler
        return await form_files.read_fields(request)
    try:
        data = await request.post()
    except UnicodeDecodeError:
        raise BadRequest("The form was not valid UTF-8 text.") from None
    except (ValueError, AssertionError, LookupError):
        raise BadRequest("The form could not be read.") from None
    form: dict[str, str] = {}
    for key, posted in data.items():
        if not isinstance(posted, str):
            raise BadRequest("Files cannot be uploaded here.")
        form.setdefault(key, posted)
    return _unicode_form(form)


def urlencoded(text: str) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as ``{name: value}``, the first value of a
    name winning: what ``parse_qsl(text, keep_blank_values=True, errors="strict",
    max_num_fields=200)`` gives, with ValueError beyond 200 fields and UnicodeDecodeError for
    a %-escape that is not UTF-8. No lone surrogate can come out: strict UTF-8 decoding, of the
    body and of each %-escape, never yields one (Python's decoder refuses encoded surrogates).

    Speed-up for ``make bench`` ``submit`` (req/s ÷ bare ≥ 0.50): a part is unquoted only when
    it holds a ``%``, where ``parse_qsl`` calls ``unquote`` on every name and value. The
    benchmark's form: 8.2 → 3.6 µs a request (timeit, docs/benchmarks.md 2026-12-04).
    tests/test_forms.py holds it to ``parse_qsl``'s answers.
    """
    if text.count("&") >= MAX_FORM_FIELDS:
        raise ValueError("too many fields")
    form: dict[str, str] = {}
    for part in text.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = unquote(name, errors="strict")
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = unquote(value, errors="strict")
        form.setdefault(name, value)
    return form


def _unicode_form(form: dict[str, str]) -> dict[str, str]:
    if not all(is_unicode_text(key) and is_unicode_text(value) for key, value in form.items()):
        raise BadRequest(NOT_UNICODE)
    return form


class _NotJson(ValueError):
    """Valid JSON syntax that no field of ours can hold; carries the 400's detail."""


def _number(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(digits: str) -> int | float:
        if len(digits) > MAX_NUMBER_DIGITS:
            raise _NotJson(f"The body holds a number longer than {MAX_NUMBER_DIGITS} characters.")
        return kind(digits)

    return parse


def _no_constant(name: str) -> NoReturn:
    raise _NotJson(f"The body holds {name}, which is not JSON.")


_T = TypeVar("_T")


def _unicode_strings(value: _T) -> _T:
    """Every string of the parsed body, keys included, checked for lone surrogates."""
    if isinstance(value, str):
        if not is_unicode_text(value):
            raise _NotJson(NOT_UNICODE)
    elif isinstance(value, list):
        for item in value:
            _unicode_strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _unicode_strings(key)
            _unicode_strings(item)
    return value


async def read_json(request: web.Request) -> Any:  # Any: JSON, whose shape the caller checks
    """The body as JSON, or a 400 problem: never an exception from deep inside a handler.

    Beyond syntax, it refuses what Python's parser accepts but nothing of ours can use: lone
    surrogates (``"\\ud800"``, which cannot be stored as UTF-8), numbers too long to convert
    (``int`` refuses over 4,300 digits with a ValueError) and ``NaN``/``Infinity``.
    """
    if request.content_type != "application/json":
        raise UnsupportedMediaType("application/json")
    raw = await request.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The body is not valid UTF-8.") from None
    try:
        return _unicode_strings(
            json.loads(
                text,
                parse_int=_number(int),
                parse_float=_number(float),
                parse_constant=_no_constant,
            )
        )
    except _NotJson as exc:
        raise BadRequest(str(exc)) from None
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        raise BadRequest("The body is not valid JSON.") from None
