"""Canary scans: look for a reporter's words or code in every place they must never be."""

from __future__ import annotations

import base64
import binascii
import contextlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import redis


def variants(secret: str) -> set[str]:
    """The forms a secret could take in a sink: as typed, without hyphens, folded, base64."""
    plain = {secret, secret.replace("-", ""), secret.casefold(), secret.replace("-", "").casefold()}
    out = set(plain)
    for value in plain:
        out.add(base64.b64encode(value.encode()).decode().rstrip("="))
        out.add(value.encode().hex())
    return {v for v in out if len(v) >= 6}


def hits(haystack: str, secrets_: dict[str, str]) -> list[str]:
    folded = haystack.casefold()
    found = []
    for label, secret in secrets_.items():
        if any(v.casefold() in folded for v in variants(secret)):
            found.append(label)
    return found


def _pg_dump_binary(server_major: int) -> str:
    candidates = [f"/usr/lib/postgresql/{server_major}/bin/pg_dump"]
    spec = importlib.util.find_spec("pgserver")  # found without importing it
    if spec is not None and spec.origin:
        candidates.append(str(Path(spec.origin).parent / "pginstall" / "bin" / "pg_dump"))
    for path in candidates:
        if os.path.exists(path):
            return path
    found = shutil.which("pg_dump")
    if found:
        return found
    raise RuntimeError(f"no pg_dump for PostgreSQL {server_major}")


def pg_dump(database_url: str, server_major: int) -> str:
    """A real ``pg_dump`` of the test database, as an attacker with a backup would see it."""
    parts = urlsplit(database_url)
    env = dict(os.environ)
    result = subprocess.run(
        [_pg_dump_binary(server_major), "--no-owner", "--data-only", "--dbname", database_url],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    del parts
    return result.stdout


def _decode_nested(value: str, depth: int = 0) -> str:
    """Celery message bodies are base64 inside JSON: decode every layer we can find."""
    out = [value]
    if depth > 3:
        return value
    try:
        data = json.loads(value)
    except (ValueError, TypeError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("body"), str):
        with contextlib.suppress(binascii.Error, ValueError):
            out.append(
                _decode_nested(base64.b64decode(data["body"]).decode("utf-8", "replace"), depth + 1)
            )
    for token in re.findall(r"[A-Za-z0-9+/=_-]{16,}", value):
        for decoder in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                padded = token + "=" * (-len(token) % 4)
                out.append(decoder(padded).decode("utf-8", "replace"))
            except (binascii.Error, ValueError):
                pass
    return "\n".join(out)


def _text(value: bytes | str) -> str:
    """A Redis reply as text (bytes here: the client does not decode responses)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def redis_dump(redis_url: str) -> str:
    """Every key and value in the test Redis db, with Celery bodies decoded."""
    client = redis.Redis.from_url(redis_url)
    chunks = []
    for key in client.scan_iter(count=1000):
        kind = _text(client.type(key))
        chunks.append(_text(key))
        values: list[bytes | str] = []
        if kind == "string":
            values = [client.get(key) or b""]
        elif kind == "list":
            values = list(client.lrange(key, 0, -1))
        elif kind == "hash":
            for k, v in client.hgetall(key).items():
                values += [k, v]
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            # The members, without scores (redis-py types zrange for every form of its reply).
            values = [m for m in client.zrange(key, 0, -1) if isinstance(m, bytes | str)]
        for value in values:
            chunks.append(_decode_nested(_text(value)))
    return "\n".join(chunks)
