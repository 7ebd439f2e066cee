"""Encryption at rest (AES-256-GCM with a rotating keyring) and keyed hashes.

A sealed value is ``0x01 | len(key id) | key id | 12-byte nonce | ciphertext+tag``. The associated data
binds it to its table, column and row, so a ciphertext copied to another row does not decrypt.
"""

from __future__ import annotations

import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from confide.settings import Secret, parse_keyring

_VERSION = 1


class DecryptionError(Exception):
    """A sealed value could not be opened (unknown key id, tampering, wrong row)."""


class Keyring:
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        self._keys = {key_id: AESGCM(raw) for key_id, raw in keys}
        self.primary_id = keys[0][0]
        self._primary = self._keys[self.primary_id]
        self._primary_prefix = bytes([_VERSION, len(self.primary_id)]) + self.primary_id.encode()

    @classmethod
    def from_secret(cls, secret: Secret) -> Keyring:
        return cls(parse_keyring(secret.get()))

    @property
    def primary_prefix(self) -> bytes:
        return self._primary_prefix

    def seal(self, plaintext: str, context: str) -> bytes:
        nonce = os.urandom(12)
        sealed = self._primary.encrypt(nonce, plaintext.encode("utf-8"), context.encode())
        return self._primary_prefix + nonce + sealed

    def seal_optional(self, plaintext: str | None, context: str) -> bytes | None:
        return None if plaintext is None else self.seal(plaintext, context)

    def open(self, blob: bytes, context: str) -> str:
        if len(blob) < 2 or blob[0] != _VERSION:
            raise DecryptionError("unknown format")
        id_len = blob[1]
        key_id = blob[2 : 2 + id_len].decode("ascii", "replace")
        aead = self._keys.get(key_id)
        if aead is None:
            raise DecryptionError(f"unknown key id {key_id!r}")
        nonce = blob[2 + id_len : 14 + id_len]
        try:
            return aead.decrypt(nonce, blob[14 + id_len :], context.encode()).decode("utf-8")
        except InvalidTag:
            raise DecryptionError("authentication failed") from None

    def open_optional(self, blob: bytes | None, context: str) -> str | None:
        return None if blob is None else self.open(blob, context)

    def key_id_of(self, blob: bytes) -> str:
        return blob[2 : 2 + blob[1]].decode("ascii", "replace")


def hmac_sha256(key: Secret | bytes, data: str | bytes) -> bytes:
    """Plain HMAC-SHA256, as CONTRACTS §2 specifies for the code's lookup id and secret."""
    raw_key = key if isinstance(key, bytes) else key.bytes()
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hmac.digest(raw_key, raw, "sha256")


def same_text(presented: str, expected: str) -> bool:
    """Constant-time equality of two strings, whatever they hold.

    ``hmac.compare_digest`` raises TypeError on a non-ASCII ``str``, and a header aiohttp decoded
    with ``surrogateescape`` holds lone surrogates; compared as bytes, a stranger's token is just
    unequal.
    """
    return hmac.compare_digest(
        presented.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def keyed_hash(key: Secret | bytes, *parts: str | bytes) -> bytes:
    """HMAC-SHA256 over the parts, each length-prefixed so that boundaries cannot shift."""
    raw_key = key if isinstance(key, bytes) else key.bytes()
    message = bytearray()
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        message += len(data).to_bytes(4, "big")
        message += data
    return hmac.digest(raw_key, message, "sha256")


def derive_key(secret: Secret | bytes, label: str) -> bytes:
    """A 32-byte key of its own for one purpose, derived from ``secret`` with HKDF-SHA256 and
    ``label`` as the info: knowing it tells nothing of ``secret`` or of another label's key."""
    raw = secret if isinstance(secret, bytes) else secret.bytes()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label.encode()).derive(raw)
