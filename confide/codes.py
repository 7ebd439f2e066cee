"""The reporter's code (CONTRACTS §2): format, input normalisation and its two keyed hashes.

A code is 16 Crockford base32 characters (80 bits from ``secrets``): a 6-character lookup id and a
10-character secret. Neither the code nor its parts are ever stored, logged or sent to Redis; only
``HMAC(lookup key, lookup id)`` and an argon2id verifier of ``HMAC(pepper, secret)`` are kept.
"""

from __future__ import annotations

import base64
import secrets
import unicodedata
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from confide.crypto import hmac_sha256, keyed_hash, same_text
from confide.errors import CodeMalformed
from confide.settings import Settings

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 16
LOOKUP_LENGTH = 6
_ALLOWED = frozenset(ALPHABET)
_DROP = dict.fromkeys(map(ord, " -\u2010\u2011\u2012\u2013\u2014\u2212\t\r\n\u00a0"), None)
_CONFUSABLE = str.maketrans({"O": "0", "I": "1", "L": "1"})


@dataclass(frozen=True)
class CodeParts:
    """A normalised code's keyed hashes: all that ever leaves the web process."""

    lookup_hmac: bytes
    prehash: bytes

    @property
    def prehash_b64(self) -> str:
        return base64.b64encode(self.prehash).decode("ascii")


def generate() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def display(code: str) -> str:
    """``7QKM2XRD9HWBT4NF`` -> ``7QKM-2XRD-9HWB-T4NF``."""
    return "-".join(code[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def squeeze(raw: str) -> str:
    """NFKC, without spaces and hyphens, upper-case, O->0 and I/L->1 (Crockford's reading)."""
    return unicodedata.normalize("NFKC", raw).translate(_DROP).upper().translate(_CONFUSABLE)


def is_crockford(text: str) -> bool:
    return _ALLOWED.issuperset(text)


def normalise(raw: str) -> str:
    """NFKC, drop spaces and hyphens, upper-case, O->0, I/L->1; else :class:`CodeMalformed`."""
    if len(raw) > 200:
        raise CodeMalformed()
    text = squeeze(raw)
    if len(text) != CODE_LENGTH or not _ALLOWED.issuperset(text):
        raise CodeMalformed()
    return text


def split(settings: Settings, code: str) -> CodeParts:
    return CodeParts(
        lookup_hmac=hmac_sha256(settings.lookup_key, code[:LOOKUP_LENGTH]),
        prehash=hmac_sha256(settings.code_pepper, code[LOOKUP_LENGTH:]),
    )


def hasher(settings: Settings) -> PasswordHasher:
    return PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        type=Type.ID,
    )


def make_verifier(ph: PasswordHasher, prehash: bytes) -> str:
    """argon2id of the peppered pre-hash, with a fresh random salt. CPU-bound: run off the loop."""
    return ph.hash(prehash)


def check_verifier(ph: PasswordHasher, verifier: str, prehash: bytes) -> bool:
    try:
        return ph.verify(verifier, prehash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def decode_prehash(prehash_b64: str) -> bytes:
    raw = base64.b64decode(prehash_b64, validate=True)
    if len(raw) != 32:
        raise ValueError("pre-hash must be 32 bytes")
    return raw


# --- Hashing results on Redis (CONTRACTS §2) ----------------------------------------------------
# A worker's answer travels through Redis, which anyone able to write to Redis could forge. So
# the answer carries an HMAC over the task's name, its id and the answer, under a key derived
# from the pepper that Redis never sees. An answer that does not verify counts as no answer.


def result_key(settings: Settings) -> bytes:
    return keyed_hash(settings.code_pepper, "hashing-result")


def _result_mac(key: bytes, task_name: str, task_id: str, answer: bool) -> str:
    mac = keyed_hash(key, task_name, task_id, "true" if answer else "false")
    return base64.b64encode(mac).decode("ascii")


def seal_result(key: bytes, task_name: str, task_id: str, answer: bool) -> dict[str, object]:
    """What a hashing task returns: the boolean and its HMAC, bound to this very task."""
    return {"answer": answer, "mac": _result_mac(key, task_name, task_id, answer)}


def open_result(key: bytes, task_name: str, task_id: str, result: object) -> bool | None:
    """The boolean of a sealed result, or None when it does not verify (treat as no answer)."""
    if not isinstance(result, dict):
        return None
    answer, mac = result.get("answer"), result.get("mac")
    if not isinstance(answer, bool) or not isinstance(mac, str):
        return None
    if not same_text(mac, _result_mac(key, task_name, task_id, answer)):
        return None
    return answer
