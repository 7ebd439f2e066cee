"""Reporters' drafts, pure: a browser-held key and draft id, and the draft's sealing under them.

The key and the draft id live only in a cookie of the reporter's browser (docs/security.md
"Drafts"). The server stores the SHA-256 of the draft id as the row's id and AES-256-GCM
ciphertext under the browser's key, with associated data naming the row, so a ciphertext
copied to another row does not open. Nothing the server holds can open a draft.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"
_ID_BYTES = 32
_KEY_BYTES = 32
_NONCE_BYTES = 12


class DraftUnreadable(Exception):
    """A draft's ciphertext did not open under the browser's key (another key, or tampering)."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class BrowserKey:
    """What the draft cookie holds: the random draft id and the 32-byte AES key."""

    draft_id: bytes
    key: bytes

    def __repr__(self) -> str:  # never the key, in a traceback or a log
        return "BrowserKey(<redacted>)"

    @property
    def row_id(self) -> bytes:
        """The row's id in ``report_drafts``: a hash, so the table alone names no cookie."""
        return hashlib.sha256(self.draft_id).digest()

    def cookie_value(self) -> str:
        return f"{_b64(self.draft_id)}.{_b64(self.key)}"


def new_key() -> BrowserKey:
    return BrowserKey(secrets.token_bytes(_ID_BYTES), secrets.token_bytes(_KEY_BYTES))


def from_cookie(value: str | None) -> BrowserKey | None:
    """The browser key from its cookie's value; None for anything that is not one."""
    if not value or len(value) > 200 or value.count(".") != 1:
        return None
    draft_id, key = (_unb64(part) for part in value.split("."))
    if draft_id is None or key is None or len(draft_id) != _ID_BYTES or len(key) != _KEY_BYTES:
        return None
    return BrowserKey(draft_id, key)


def _aad(browser: BrowserKey, column: str) -> bytes:
    return f"report_drafts.{column}:".encode() + browser.row_id.hex().encode()


def seal(browser: BrowserKey, payload: dict[str, Any], column: str = "ciphertext") -> bytes:
    """``0x01 | nonce | ciphertext+tag`` of the payload's JSON, bound to its row and column."""
    nonce = os.urandom(_NONCE_BYTES)
    plaintext = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return _VERSION + nonce + AESGCM(browser.key).encrypt(nonce, plaintext, _aad(browser, column))


def open_sealed(browser: BrowserKey, blob: bytes, column: str = "ciphertext") -> dict[str, Any]:
    if len(blob) < 1 + _NONCE_BYTES + 16 or blob[:1] != _VERSION:
        raise DraftUnreadable("unknown format")
    nonce, body = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
    try:
        payload = json.loads(AESGCM(browser.key).decrypt(nonce, body, _aad(browser, column)))
    except (InvalidTag, ValueError):
        raise DraftUnreadable("authentication failed") from None
    if not isinstance(payload, dict):
        raise DraftUnreadable("not a draft")
    return payload
