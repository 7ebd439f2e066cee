"""Rotating the encryption keys re-encrypts every sealed value (issue 6, docs/deploy.md)."""

from __future__ import annotations

import base64
import json
import secrets

import aiohttp
import asyncpg

from confide.crypto import Keyring
from confide.settings import parse_keyring
from tests.conftest import Stack, StaffAccount, confide_cli
from tests.journeys import reporter_submits, staff_acts, staff_logs_in


async def test_ops_rotate_the_encryption_key_without_losing_a_word(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    caseworker: StaffAccount,
) -> None:
    sent = await reporter_submits(http, "Rotate me", location="Somewhere")
    assert sent.reference
    async with aiohttp.ClientSession(
        base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as staff:
        await staff_logs_in(staff, caseworker.email, caseworker.password)
        await staff_acts(staff, sent.reference, "reply", body="A reply")
        await staff_acts(staff, sent.reference, "note", note="A note")
    old = stack.env["CONFIDE_ENCRYPTION_KEYS"]
    new = "t2:" + base64.b64encode(secrets.token_bytes(32)).decode() + "," + old
    env_new = {"CONFIDE_ENCRYPTION_KEYS": new}
    result = confide_cli_env(stack, env_new, "keys", "rotate")
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)["re_encrypted"]
    assert counts["threads.description"] == 1 and counts["threads.location"] == 1
    assert counts["messages.body"] == 1 and counts["notes.body"] == 1
    again = json.loads(confide_cli_env(stack, env_new, "keys", "rotate").stdout)
    assert set(again["re_encrypted"].values()) == {0}  # idempotent
    ring = Keyring(parse_keyring(new)[:1])  # the new key alone opens everything now
    row = await db.fetchrow("SELECT id, description, location FROM threads")
    assert ring.open(row["description"], f"threads.description:{row['id']}") == "Rotate me"
    message = await db.fetchrow("SELECT id, body FROM messages")
    assert ring.open(message["body"], f"messages.body:{message['id']}") == "A reply"
    note = await db.fetchrow("SELECT id, body FROM notes")
    assert ring.open(note["body"], f"notes.body:{note['id']}") == "A note"


def confide_cli_env(stack: Stack, extra: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    original = dict(stack.env)
    stack.env.update(extra)
    try:
        return confide_cli(stack, *args)
    finally:
        stack.env.clear()
        stack.env.update(original)
