"""Reading request bodies safely: clear 400/415 answers instead of exceptions."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import MultiDictProxy

from webapp.errors import BadRequest, UnsupportedMediaType

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def read_form(request: web.Request) -> dict[str, str]:
    """A form as ``{name: text}``; the first value wins, files are refused."""
    content_type = request.content_type  # parsed from the header on every access
    if content_type not in FORM_TYPES:
        raise UnsupportedMediaType("a form (application/x-www-form-urlencoded)")
    if content_type == FORM_TYPES[0]:
        # Parsed here, strictly: aiohttp would quietly replace invalid UTF-8.
        raw = await request.read()
        try:
            pairs = parse_qsl(
                raw.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=200
            )
        except UnicodeDecodeError:
            raise BadRequest("The form was not valid UTF-8 text.") from None
        except ValueError:
            raise BadRequest("The form could not be read.") from None
        form: dict[str, str] = {}
        for key, value in pairs:
            form.setdefault(key, value)
        return form
    try:
        data: MultiDictProxy[Any] = await request.post()
    except UnicodeDecodeError:
        raise BadRequest("The form was not valid UTF-8 text.") from None
    except (ValueError, AssertionError, LookupError):
        raise BadRequest("The form could not be read.") from None
    form = {}
    for key, value in data.items():
        if not isinstance(value, str):
            raise BadRequest("Files cannot be uploaded here.")
        form.setdefault(key, value)
    return form


async def read_json(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise UnsupportedMediaType("application/json")
    raw = await request.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The body is not valid UTF-8.") from None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise BadRequest("The body is not valid JSON.") from None
