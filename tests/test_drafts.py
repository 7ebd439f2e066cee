"""Reporters' drafts: answers kept between pages, readable only with the key in the reporter's
browser (issue 14 items 1, 2 and 4; docs/security.md "Drafts")."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from confide import drafts as draft_keys
from confide.context import Context
from confide.crypto import DecryptionError, Keyring
from confide.org import load as load_org
from confide.services import drafts, housekeeping
from confide.services.workdays import WorkingCalendar
from confide.settings import parse_keyring
from tests import leaks
from tests.conftest import Stack


def canary(label: str) -> str:
    return f"CANARY{label.upper()}{secrets.token_hex(6).upper()}"


@pytest.fixture
async def ctx(stack: Stack, db: asyncpg.Connection) -> AsyncIterator[Context]:
    """The service context a web process builds, on the test database."""
    pool = await asyncpg.create_pool(stack.env["DATABASE_URL"], min_size=1, max_size=2)
    calendar = WorkingCalendar.for_org(load_org(stack.settings.org_file))
    try:
        yield Context(pool, stack.settings, stack.keyring, calendar)
    finally:
        await pool.close()


def server_keys(stack: Stack) -> Iterator[tuple[str, bytes]]:
    """Every key the server holds, raw and as SHA-256 (a 32-byte AES key made of it)."""
    settings = stack.settings
    named = [(f"keyring:{kid}", raw) for kid, raw in parse_keyring(settings.encryption_keys.get())]
    for name in ("lookup_key", "code_pepper", "session_key", "receipt_key"):
        secret = getattr(settings, name)
        named.append((name, secret.bytes()))
        padded = secret.get() + "=" * (-len(secret.get()) % 4)
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            with contextlib.suppress(ValueError):
                named.append((f"{name}:decoded", decode(padded)))
    for name, raw in named:
        yield name, raw
        yield f"{name}:sha256", hashlib.sha256(raw).digest()


async def test_a_draft_is_ciphertext_that_no_server_key_opens(
    stack: Stack, ctx: Context, db: asyncpg.Connection
) -> None:
    words = canary("draft")
    browser = draft_keys.new_key()
    await drafts.save(ctx, browser, {"answers": {"description": f"The lift is broken. {words}"}})

    # The reporter's browser reads it back.
    loaded = await drafts.load(ctx, browser)
    assert loaded is not None and words in loaded["answers"]["description"]

    # The row holds a hash of the draft id and ciphertext, nothing else about anyone.
    row = await db.fetchrow("SELECT * FROM report_drafts")
    assert set(row.keys()) == {"id", "ciphertext", "updated_at", "expires_at"}
    assert row["id"] == hashlib.sha256(browser.draft_id).digest() != browser.draft_id
    assert browser.key not in row["ciphertext"] and browser.draft_id not in row["ciphertext"]

    # No dump, Redis key or log line holds the words, nor the browser's key.
    server_major = int(await db.fetchval("SHOW server_version_num")) // 10000
    secrets_ = {"draft": words, "key": browser.cookie_value().split(".")[1]}
    for sink, content in {
        "pg_dump": leaks.pg_dump(stack.env["DATABASE_URL"], server_major),
        "redis": leaks.redis_dump(stack.env["REDIS_URL"]),
        "logs": stack.logs(),
    }.items():
        assert leaks.hits(content, secrets_) == [], sink

    # Every key the server holds fails to open it: tried, not assumed.
    blob = row["ciphertext"]
    nonce, body = blob[1:13], blob[13:]
    aad = b"report_drafts.ciphertext:" + row["id"].hex().encode()
    tried = set()
    for name, raw in server_keys(stack):
        if len(raw) not in (16, 24, 32):
            continue
        for associated in (aad, b"", None):
            with pytest.raises(InvalidTag):
                AESGCM(raw).decrypt(nonce, body, associated)
        tried.add(name.split(":")[0])
    assert tried >= {"lookup_key", "code_pepper", "session_key", "receipt_key"}
    assert any(name.startswith("keyring") for name in tried)
    with pytest.raises(DecryptionError):
        stack.keyring.open(blob, "report_drafts.ciphertext")
    for kid, raw in parse_keyring(stack.settings.encryption_keys.get()):
        with pytest.raises(DecryptionError):
            Keyring([(kid, raw)]).open(bytes([1, len(kid)]) + kid.encode() + blob[1:], aad.decode())
    # Nor does another browser's key, or the right key on another row.
    assert await drafts.load(ctx, draft_keys.new_key()) is None
    with pytest.raises(draft_keys.DraftUnreadable):
        draft_keys.open_sealed(draft_keys.BrowserKey(secrets.token_bytes(32), browser.key), blob)


async def test_drafts_expire_when_left_idle_and_are_deleted(
    ctx: Context, db: asyncpg.Connection
) -> None:
    left = draft_keys.new_key()
    kept = draft_keys.new_key()
    await drafts.save(ctx, left, {"answers": {"description": "left"}})
    await drafts.save(ctx, kept, {"answers": {"description": "kept"}})
    expires = await db.fetchval("SELECT expires_at - updated_at FROM report_drafts LIMIT 1")
    assert expires.total_seconds() == 60 * 60  # the default idle timeout

    # An hour without a save: loading finds nothing, and deletes the row there and then.
    await db.execute("UPDATE report_drafts SET expires_at = now() - interval '1 second'")
    assert await drafts.load(ctx, left) is None
    assert await db.fetchval("SELECT count(*) FROM report_drafts") == 1
    # The periodic purge deletes the rest, never a live one.
    fresh = draft_keys.new_key()
    await drafts.save(ctx, fresh, {"answers": {}})
    purged = await housekeeping.purge_expired(ctx)
    assert purged.drafts == 1
    assert await drafts.load(ctx, kept) is None
    assert await drafts.load(ctx, fresh) == {"answers": {}}

    # Saving again moves the expiry on; deleting forgets it.
    assert await drafts.delete(ctx, fresh)
    assert await drafts.load(ctx, fresh) is None
    assert await db.fetchval("SELECT count(*) FROM report_drafts") == 0


def test_a_draft_cookie_holds_the_id_and_the_key_and_nothing_else() -> None:
    browser = draft_keys.new_key()
    value = browser.cookie_value()
    assert draft_keys.from_cookie(value) == browser
    assert "redacted" in repr(browser)
    for bad in ("", "x", "a.b", value + ".x", value[:-2], "é" * 80, value.replace(".", "")):
        assert draft_keys.from_cookie(bad) is None
