"""Idempotency keys (CONTRACTS §3): scoped to their author and endpoint, bound to their request.

A client-chosen key is never stored. PostgreSQL keeps ``HMAC(key)`` under a scope that names the
endpoint and the author (the anonymous submitter, the reporter's thread, or the staff member), so
two authors choosing the same key never touch each other's data, and ``HMAC(request)`` of the
canonical request (method, path, body), so that a repeat with a different request is refused
(422 ``/idempotency-key-reused``) instead of being answered with someone else's receipt.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from confide.crypto import keyed_hash
from confide.errors import FieldError, ValidationFailed
from confide.settings import Settings

KEY_MIN, KEY_MAX = 16, 255
KEPT_FOR_S = 24 * 3600
"""How long a key answers repeats (CONTRACTS §3); the purge forgets it afterwards."""


@dataclass(frozen=True)
class Idempotency:
    """What a write stores beside its row: both HMACs, never the key or the request."""

    key_hmac: bytes
    request_hmac: bytes


def check_header(value: str | None) -> str | None:
    """The ``Idempotency-Key`` header: 16–255 visible ASCII characters, else 422."""
    if value is None:
        return None
    if not (KEY_MIN <= len(value) <= KEY_MAX and all("!" <= ch <= "~" for ch in value)):
        raise ValidationFailed(
            [FieldError("Idempotency-Key", f"{KEY_MIN} to {KEY_MAX} visible ASCII characters")]
        )
    return value


def canonical(data: object) -> bytes:
    """A canonical body: JSON with sorted keys and no spaces, so key order and whitespace of
    the same request do not count as a different request."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def bind(
    settings: Settings,
    key: str | None,
    *,
    endpoint: str,
    author: str,
    method: str,
    path: str,
    body: bytes,
) -> Idempotency | None:
    """The HMACs of a key scoped to (endpoint, author) and of its canonical request."""
    if key is None:
        return None
    return Idempotency(
        key_hmac=key_hmac(settings, key, endpoint=endpoint, author=author),
        request_hmac=keyed_hash(settings.session_key, "idempotency-request", method, path, body),
    )


def key_hmac(settings: Settings, key: str, *, endpoint: str, author: str) -> bytes:
    """The HMAC under which a key scoped to (endpoint, author) is kept."""
    return keyed_hash(settings.session_key, "idempotency-key", endpoint, author, key)
