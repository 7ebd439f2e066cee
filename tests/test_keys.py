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
from tests.journeys import form_page, reporter_submits, staff_acts, staff_logs_in


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
    out = json.loads(result.stdout)
    # The report, the reply and the note are under the thread's own key: its wrap moves, once,
    # and no row of content is re-encrypted (docs/lifecycle.md "Keys").
    assert out["rewrapped"] == 1
    counts = out["re_encrypted"]
    assert counts["threads.description"] == 0 and counts["messages.body"] == 0
    assert set(out["seconds"]) == {"re_encrypt", "rewrap"}
    again = json.loads(confide_cli_env(stack, env_new, "keys", "rotate").stdout)
    assert set(again["re_encrypted"].values()) == {0} and again["rewrapped"] == 0  # idempotent
    ring = Keyring(parse_keyring(new)[:1])  # the new key alone opens everything now
    row = await db.fetchrow("SELECT id, data_key, data_key_id, description, location FROM threads")
    assert row["data_key_id"] == "t2"
    key = ring.thread_key(row["id"], row["data_key"])
    assert key.open(row["description"], f"threads.description:{row['id']}") == "Rotate me"
    message = await db.fetchrow("SELECT id, body FROM messages")
    assert key.open(message["body"], f"messages.body:{message['id']}") == "A reply"
    note = await db.fetchrow("SELECT id, body FROM notes")
    assert key.open(note["body"], f"notes.body:{note['id']}") == "A note"
    listing = json.loads(confide_cli_env(stack, env_new, "keys").stdout)["keys"]
    assert {k["id"]: k["retirable"] for k in listing} == {"t2": False, "t1": True}


async def test_threads_made_before_thread_keys_are_migrated_to_their_own(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    caseworker: StaffAccount,
) -> None:
    """A thread whose content the keyring sealed (before migrations/0022) still reads, and
    `keys migrate-threads` gives it its own key, resumably."""
    sent = await reporter_submits(http, "Made long ago")
    assert sent.reference
    async with aiohttp.ClientSession(
        base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as staff:
        await staff_logs_in(staff, caseworker.email, caseworker.password)
        await staff_acts(staff, sent.reference, "reply", body="An old reply")
    # Make it as it was before thread keys: keyring-sealed content, no data key.
    ring = stack.keyring
    row = await db.fetchrow("SELECT id, data_key FROM threads")
    key = ring.thread_key(row["id"], row["data_key"])
    tid = row["id"]
    old = key.open(
        await db.fetchval("SELECT description FROM threads"), f"threads.description:{tid}"
    )
    msg = await db.fetchrow("SELECT id, body FROM messages")
    reply = key.open(msg["body"], f"messages.body:{msg['id']}")
    await db.execute(
        """UPDATE threads SET data_key = NULL, data_key_id = NULL, data_key_quarter = NULL,
                              description = $1, receipt_salt = NULL""",
        ring.seal(old, f"threads.description:{tid}"),
    )
    await db.execute(
        "UPDATE messages SET body = $1", ring.seal(reply, f"messages.body:{msg['id']}")
    )
    async with aiohttp.ClientSession(
        base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as staff:
        await staff_logs_in(staff, caseworker.email, caseworker.password)
        page = await form_page(staff, f"/staff/threads/{sent.reference}")
        assert "Made long ago" in page and "An old reply" in page
        result = confide_cli(stack, "keys", "migrate-threads")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"migrated": 1, "left": 0}
        again = json.loads(confide_cli(stack, "keys", "migrate-threads").stdout)
        assert again == {"migrated": 0, "left": 0}
        page = await form_page(staff, f"/staff/threads/{sent.reference}")
        assert "Made long ago" in page and "An old reply" in page
    row = await db.fetchrow("SELECT data_key, description FROM threads")
    assert row["data_key"] is not None and bytes(row["description"])[0] == 2
    assert bytes(await db.fetchval("SELECT body FROM messages"))[0] == 2


def confide_cli_env(stack: Stack, extra: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    original = dict(stack.env)
    stack.env.update(extra)
    try:
        return confide_cli(stack, *args)
    finally:
        stack.env.clear()
        stack.env.update(original)
