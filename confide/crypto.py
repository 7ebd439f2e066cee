"""Encryption at rest (AES-256-GCM with a rotating keyring, and a data key per thread) and keyed
hashes.

A value sealed by the keyring is ``0x01 | len(key id) | key id | 12-byte nonce | ciphertext+tag``.
The associated data binds it to its table, column and row, so a ciphertext copied to another row
does not decrypt.

A thread's content (report, messages, notes, contact details) is sealed under the thread's own
random data key instead: ``0x02 | 12-byte nonce | ciphertext+tag``, with associated data that names
the row and the thread (``<table>.<column>:<row id>|thread:<thread id>``), so a row moved to
another thread does not decrypt either. The data key is kept only wrapped (sealed by the keyring,
``0x01`` format) in ``threads.data_key``, under the keyring key of the quarter in which the
thread's erasure is due (:meth:`Keyring.key_id_for_quarter`). Erasure deletes the wrapped key with
the row; retiring that quarter's keyring key makes every old copy (WAL, replica, backup) useless
(docs/lifecycle.md).
"""

from __future__ import annotations

import hmac
import os
import re
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from confide.settings import Secret, parse_keyring

_VERSION = 1
_THREAD_VERSION = 2
# A key id that carries a quarter tag (``2027q3``, ``k-2027q3``, ``2027Q3-b``) serves that quarter.
QUARTER_TAG = re.compile(r"(\d{4})[qQ]([1-4])")


def quarter_of(moment: datetime) -> str:
    """The quarter tag (``2027q3``) of a moment, in UTC."""
    utc = moment.astimezone(UTC)
    return f"{utc.year}q{(utc.month - 1) // 3 + 1}"


def quarter_tag(key_id: str) -> str | None:
    """The quarter a key id names, lower-cased (``2027q3``), or None for an untagged key."""
    found = QUARTER_TAG.search(key_id)
    return None if found is None else f"{found.group(1)}q{found.group(2)}"


class DecryptionError(Exception):
    """A sealed value could not be opened (unknown key id, tampering, wrong row)."""


class Keyring:
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        self._keys = {key_id: AESGCM(raw) for key_id, raw in keys}
        self.primary_id = keys[0][0]
        self._primary = self._keys[self.primary_id]
        self._primary_prefix = bytes([_VERSION, len(self.primary_id)]) + self.primary_id.encode()
        self.ids = [key_id for key_id, _ in keys]
        # The first key of each quarter tag, in keyring order (so a newer key put before an
        # older one of the same quarter takes over its new wraps and `keys rotate`).
        self._by_quarter: dict[str, str] = {}
        for key_id in self.ids:
            tag = quarter_tag(key_id)
            if tag is not None:
                self._by_quarter.setdefault(tag, key_id)

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

    # --- Thread data keys ------------------------------------------------------------------

    def key_id_for_quarter(self, quarter: str | None) -> str:
        """The key that wraps thread keys whose erasure is due in ``quarter``: the first key
        tagged with it, else the first key (so a one-key keyring serves every quarter). None
        (no due date: a legal hold) is the first key too."""
        if quarter is None:
            return self.primary_id
        return self._by_quarter.get(quarter, self.primary_id)

    def wrap(self, thread_id: object, raw: bytes, quarter: str | None) -> tuple[str, bytes]:
        """A thread's data key sealed by its quarter's key: (key id, wrapped)."""
        key_id = self.key_id_for_quarter(quarter)
        prefix = bytes([_VERSION, len(key_id)]) + key_id.encode()
        nonce = os.urandom(12)
        sealed = self._keys[key_id].encrypt(nonce, raw, _wrap_context(thread_id))
        return key_id, prefix + nonce + sealed

    def new_thread_key(
        self, thread_id: object, quarter: str | None
    ) -> tuple[ThreadKey, str, bytes]:
        """A fresh data key for a new thread: the key, and its wrap (key id, wrapped)."""
        raw = os.urandom(32)
        key_id, wrapped = self.wrap(thread_id, raw, quarter)
        return ThreadKey(self, str(thread_id), raw), key_id, wrapped

    def unwrap(self, thread_id: object, wrapped: bytes) -> bytes:
        """The raw data key; DecryptionError once its keyring key is retired (or it was moved)."""
        if len(wrapped) < 2 or wrapped[0] != _VERSION:
            raise DecryptionError("unknown format")
        id_len = wrapped[1]
        aead = self._keys.get(wrapped[2 : 2 + id_len].decode("ascii", "replace"))
        if aead is None:
            raise DecryptionError("unknown key id")
        nonce = wrapped[2 + id_len : 14 + id_len]
        try:
            return aead.decrypt(nonce, wrapped[14 + id_len :], _wrap_context(thread_id))
        except InvalidTag:
            raise DecryptionError("authentication failed") from None

    def rewrap(self, thread_id: object, wrapped: bytes, quarter: str | None) -> tuple[str, bytes]:
        """The same data key wrapped for ``quarter``: no content is re-encrypted."""
        return self.wrap(thread_id, self.unwrap(thread_id, wrapped), quarter)

    def thread_key(self, thread_id: object, wrapped: bytes | None) -> ThreadKey:
        """The cipher of one thread's content. ``wrapped`` None: a thread not yet migrated to a
        data key (``confide keys migrate-threads``), whose content the keyring seals."""
        raw = None if wrapped is None else self.unwrap(thread_id, wrapped)
        return ThreadKey(self, str(thread_id), raw)


def _wrap_context(thread_id: object) -> bytes:
    return f"threads.data_key:{thread_id}".encode()


class ThreadKey:
    """Seals and opens one thread's content under its data key, with associated data naming the
    row (``context``) and the thread. It still opens keyring-sealed values (``0x01``), written
    before the thread had a data key."""

    __slots__ = ("_aead", "_keyring", "thread_id")

    def __init__(self, keyring: Keyring, thread_id: str, raw: bytes | None) -> None:
        self._keyring = keyring
        self.thread_id = thread_id
        self._aead = None if raw is None else AESGCM(raw)

    @property
    def has_data_key(self) -> bool:
        return self._aead is not None

    def _aad(self, context: str) -> bytes:
        return f"{context}|thread:{self.thread_id}".encode()

    def seal(self, plaintext: str, context: str) -> bytes:
        if self._aead is None:
            return self._keyring.seal(plaintext, context)
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), self._aad(context))
        return bytes([_THREAD_VERSION]) + nonce + sealed

    def seal_optional(self, plaintext: str | None, context: str) -> bytes | None:
        return None if plaintext is None else self.seal(plaintext, context)

    def open(self, blob: bytes, context: str) -> str:
        if not blob or blob[0] != _THREAD_VERSION:
            return self._keyring.open(blob, context)
        if self._aead is None:
            raise DecryptionError("the thread has no data key")
        try:
            return self._aead.decrypt(blob[1:13], blob[13:], self._aad(context)).decode("utf-8")
        except InvalidTag:
            raise DecryptionError("authentication failed") from None

    def open_optional(self, blob: bytes | None, context: str) -> str | None:
        return None if blob is None else self.open(blob, context)


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
