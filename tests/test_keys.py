"""Rotating the encryption keys re-encrypts every sealed value (issue 6, docs/deploy.md)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets

import aiohttp
import asyncpg

from confide.crypto import Keyring
from confide.settings import parse_keyring
from tests.conftest import Stack, StaffAccount, confide_cli
from tests.journeys import form_page, reporter_submits, staff_acts, staff_logs_in
from tests.test_attachments import bearer, download, thread_files, uploaded, wait_state


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


async def test_a_file_on_a_thread_made_before_thread_keys_survives_rotation_and_retirement(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    """On a thread without a data key the keyring seals each file's key (and kept name):
    `keys` counts them, `keys rotate` re-encrypts them, `keys migrate-threads` moves them under
    the thread's new key, and once the old key is retired and gone the file still downloads
    and its SHA-256 as uploaded (what the receipt's commitment covers) still opens."""
    text = b"Written down the day it happened.\n"
    one = await uploaded(http, text, "diary.txt")
    async with http.post(
        "/api/v1/reports",
        json={
            "category": "safety",
            "description": "The fire door on level 2 is broken",
            "anonymous": True,
            "follow_up": True,
            "attachments": [one],
            "keep_file_names": True,
        },
    ) as resp:
        assert resp.status == 201, await resp.text()
        reference = (await resp.json())["reference"]
    staff = await bearer(http, caseworker)
    (file,) = await thread_files(http, reference, staff)
    await wait_state(db, file["id"], "ready")
    status, before, _ = await download(http, f"/api/v1/staff/attachments/{file['id']}", staff)
    assert status == 200
    # Make it as it was before thread keys: all of it sealed by the keyring, no data key.
    ring = stack.keyring
    tid = await db.fetchval("SELECT id FROM threads WHERE reference = $1", reference)
    await make_legacy(db, ring, tid)
    row = await db.fetchrow("SELECT file_key, name FROM attachments")
    assert bytes(row["file_key"])[0] == 1 and bytes(row["name"])[0] == 1
    old = stack.env["CONFIDE_ENCRYPTION_KEYS"]
    new_key = "t2:" + base64.b64encode(secrets.token_bytes(32)).decode()
    env_new = {"CONFIDE_ENCRYPTION_KEYS": new_key + "," + old}
    listing = json.loads(confide_cli_env(stack, env_new, "keys").stdout)["keys"]
    t1 = next(k for k in listing if k["id"] == "t1")
    assert not t1["retirable"]
    result = confide_cli_env(stack, env_new, "keys", "rotate")
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)["re_encrypted"]
    assert counts["attachments.file_key"] == 1 and counts["attachments.name"] == 1
    assert sum(counts.values()) == t1["values"]  # `keys` counted what rotation re-encrypts
    assert bytes(await db.fetchval("SELECT file_key FROM attachments"))[2:4] == b"t2"
    listing = json.loads(confide_cli_env(stack, env_new, "keys").stdout)["keys"]
    assert {k["id"]: k["retirable"] for k in listing} == {"t2": False, "t1": True}
    result = confide_cli_env(stack, env_new, "keys", "migrate-threads")
    assert json.loads(result.stdout) == {"migrated": 1, "left": 0}, result.stderr
    row = await db.fetchrow("SELECT file_key, name FROM attachments")
    assert bytes(row["file_key"])[0] == 2 and bytes(row["name"])[0] == 2
    result = confide_cli_env(stack, env_new, "keys", "retire", "--id", "t1")
    assert result.returncode == 0, result.stderr
    # The old key removed from the keyring: the file, its name and its hash still open.
    only_new = Keyring(parse_keyring(new_key))
    thread = await db.fetchrow("SELECT data_key, commitment FROM threads WHERE id = $1", tid)
    key = only_new.thread_key(tid, thread["data_key"])
    assert key.open(row["name"], f"attachments.name:{file['id']}") == "diary.txt"
    sealed = json.loads(key.open(row["file_key"], f"attachments.file_key:{file['id']}"))
    assert sealed["sha256"] == hashlib.sha256(text).hexdigest()
    _, base = stack.start_web("web-new-key", CONFIDE_ENCRYPTION_KEYS=new_key)
    async with aiohttp.ClientSession(base_url=base) as client:
        staff = await bearer(client, caseworker)
        status, after, _ = await download(client, f"/api/v1/staff/attachments/{file['id']}", staff)
        assert status == 200 and after == before
        async with client.get(f"/api/v1/staff/threads/{reference}", headers=staff) as resp:
            assert resp.status == 200
            got = (await resp.json())["attachments"]
        assert got[0]["original_name"] == "diary.txt"


async def make_legacy(db: asyncpg.Connection, ring: Keyring, tid: object) -> None:
    """Re-seal a thread's content, messages, notes and files under the keyring, and drop its
    data key, as a thread made before migrations/0022 was."""
    from confide.sql.keys import SEALED

    data_key = await db.fetchval("SELECT data_key FROM threads WHERE id = $1", tid)
    key = ring.thread_key(tid, data_key)
    where = {"threads": "id = $1", "messages": "thread_id = $1", "notes": "thread_id = $1"}
    where["attachments"] = "thread_id = $1"
    async with db.transaction():
        for table, id_col, column in SEALED:
            if table not in where:
                continue
            for r in await db.fetch(
                f"SELECT {id_col} AS id, {column} AS v FROM {table} WHERE {where[table]}", tid
            ):
                if r["v"] is None:
                    continue
                context = f"{table}.{column}:{r['id']}"
                await db.execute(
                    f"UPDATE {table} SET {column} = $2 WHERE {id_col} = $1",
                    r["id"],
                    ring.seal(key.open(r["v"], context), context),
                )
        await db.execute(
            "UPDATE threads SET data_key = NULL, data_key_id = NULL, data_key_quarter = NULL "
            "WHERE id = $1",
            tid,
        )
