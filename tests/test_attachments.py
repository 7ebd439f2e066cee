"""Stories: reporters and case workers attach files through the API; the ``files`` worker strips
them before anyone opens them; downloads are sandboxed, audited and visible only to those who
see the thread (issue 17, CONTRACTS §3 "Attachments")."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import aiohttp
import asyncpg
import pikepdf
import redis
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from confide import receipts
from confide.context import Context
from confide.files.store import CHUNK_BYTES
from confide.files.types import FileType
from confide.services import attachments, housekeeping
from confide.services.workdays import WorkingCalendar
from confide.sql import lifecycle as sql_lifecycle
from tests import attachment_files as make
from tests.conftest import Proc, Stack, StaffAccount, add_staff, kick_relay, wait_worker
from workers.tasks.files import strip_into

JSON = dict[str, Any]


async def upload(
    http: aiohttp.ClientSession,
    data: bytes,
    filename: str = "photo.jpg",
    headers: dict[str, str] | None = None,
) -> tuple[int, JSON]:
    form = aiohttp.FormData()
    # A stream, as a browser sends a file (bytes over 1 MiB make aiohttp warn).
    form.add_field(
        "file", io.BytesIO(data), filename=filename, content_type="application/octet-stream"
    )
    async with http.post("/api/v1/uploads", data=form, headers=headers or {}) as resp:
        return resp.status, await resp.json(content_type=None)


async def uploaded(http: aiohttp.ClientSession, data: bytes, filename: str, **kw: Any) -> str:
    status, body = await upload(http, data, filename, **kw)
    assert status == 201, body
    return str(body["upload_id"])


async def report_with(
    http: aiohttp.ClientSession, ids: list[str], headers: dict[str, str] | None = None
) -> tuple[int, JSON]:
    body = {
        "category": "safety",
        "description": "The fire door on level 2 is broken",
        "anonymous": True,
        "follow_up": True,
        "attachments": ids,
    }
    async with http.post("/api/v1/reports", json=body, headers=headers or {}) as resp:
        return resp.status, await resp.json()


async def bearer(http: aiohttp.ClientSession, account: StaffAccount) -> dict[str, str]:
    async with http.post(
        "/api/v1/staff/session", json={"email": account.email, "password": account.password}
    ) as resp:
        assert resp.status == 200, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def reporter_bearer(http: aiohttp.ClientSession, code: str) -> dict[str, str]:
    async with http.post("/api/v1/reporter/session", json={"code": code}) as resp:
        assert resp.status == 200, await resp.text()
        return {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def thread_files(
    http: aiohttp.ClientSession, reference: str, headers: dict[str, str]
) -> list[JSON]:
    async with http.get(f"/api/v1/staff/threads/{reference}", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        files: list[JSON] = (await resp.json())["attachments"]
        return files


async def wait_state(
    db: asyncpg.Connection, attachment_id: str, *states: str, timeout: float = 60
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = await db.fetchval(
            "SELECT state FROM attachments WHERE id = $1", UUID(attachment_id)
        )
        if state in states:
            return str(state)
        await asyncio.sleep(0.2)
    raise AssertionError(f"attachment still {state}")


async def download(
    http: aiohttp.ClientSession, path: str, headers: dict[str, str]
) -> tuple[int, bytes, Any]:
    async with http.get(path, headers=headers) as resp:
        return resp.status, await resp.read(), resp.headers


def canaries_in(data: bytes) -> list[str]:
    return [c for c in make.CANARIES if c.encode() in data]


async def count(db: asyncpg.Connection, rows: str, *args: object) -> int:
    """How many rows ``rows`` names: a table, or a table and its ``WHERE``."""
    return int(await db.fetchval(f"SELECT count(*) FROM {rows}", *args))


async def assert_nothing_kept(db: asyncpg.Connection, *tables: str) -> None:
    """Nothing of a refused or erased file is left: no upload row (or those ``tables``
    name), and no chunk."""
    for table in tables or ("uploads",):
        assert await count(db, table) == 0, table
    assert await count(db, "attachment_chunks") == 0


async def database_canaries(db: asyncpg.Connection) -> list[str]:
    """A pg_dump-equivalent scan: every value of every table, as bytes and as text."""
    found: set[str] = set()
    tables = await db.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    )
    for t in tables:
        for row in await db.fetch(f'SELECT * FROM "{t["tablename"]}"'):
            for value in row.values():
                raw = value if isinstance(value, bytes) else str(value).encode()
                found.update(canaries_in(raw))
    return sorted(found)


def redis_canaries(stack: Stack) -> list[str]:
    """Every Redis value, and the base64 bodies of Celery messages decoded."""
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    found: set[str] = set()
    for key in client.scan_iter():
        kind = client.type(key)
        values: list[Any] = []
        if kind == b"string":
            values = [client.get(key)]
        elif kind == b"list":
            values = list(client.lrange(key, 0, -1))
        elif kind == b"hash":
            values = list(client.hgetall(key).values())
        elif kind == b"set":
            values = list(client.smembers(key))
        elif kind == b"zset":
            values = list(client.zrange(key, 0, -1))
        for value in values:
            if not isinstance(value, bytes):
                continue
            found.update(canaries_in(value))
            try:
                body = json.loads(value).get("body")
                if isinstance(body, str):
                    found.update(canaries_in(base64.b64decode(body)))
            except (ValueError, AttributeError, TypeError):
                pass
    return sorted(found)


async def test_reporter_attaches_photo_and_pdf_and_caseworker_gets_them_without_metadata(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    caseworker: StaffAccount,
    worker: Proc,
    tmp_path: Path,
) -> None:
    photo = make.jpeg(tmp_path / "IMG_0042.jpg").read_bytes()
    letter = make.pdf(tmp_path / "letter.pdf", pages=3).read_bytes()
    assert make.GPS.encode() in photo and make.AUTHOR.encode() in letter
    status, first = await upload(http, photo, "IMG_0042.jpg")
    assert status == 201 and first["type"] == "jpeg" and first["size"] == len(photo)
    status, second = await upload(http, letter, "CANARY-NAME-letter.pdf")
    assert status == 201 and second["type"] == "pdf"
    ids = [first["upload_id"], second["upload_id"]]
    assert len(base64.urlsafe_b64decode(ids[0] + "==")) == 16  # 128 bits
    status, receipt = await report_with(http, ids, headers={"Idempotency-Key": "k" * 20})
    assert status == 201, receipt
    # The same request again is a repeat: the same reference, the files not attached twice.
    status, again = await report_with(http, ids, headers={"Idempotency-Key": "k" * 20})
    assert status == 200 and again["reference"] == receipt["reference"]
    staff = await bearer(http, caseworker)
    files = await thread_files(http, receipt["reference"], staff)
    assert [f["name"] for f in files] == ["attachment-1.jpg", "attachment-2.pdf"]
    assert [f["size"] for f in files] == [len(photo), len(letter)]
    assert all(f["state"] in ("preparing", "ready") for f in files)
    assert all(f["original_name"] is None for f in files)  # names were not kept
    for f in files:
        await wait_state(db, f["id"], "ready")
    status, got_photo, headers = await download(
        http, f"/api/v1/staff/attachments/{files[0]['id']}", staff
    )
    assert status == 200
    assert headers["Content-Disposition"] == 'attachment; filename="attachment-1.jpg"'
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"].startswith("sandbox")
    assert headers["Content-Type"] == "image/jpeg"
    status, got_letter, _ = await download(
        http, f"/api/v1/staff/attachments/{files[1]['id']}", staff
    )
    assert status == 200
    assert canaries_in(got_photo) == []
    (tmp_path / "got.pdf").write_bytes(got_letter)
    assert canaries_in(make.pdf_text(tmp_path / "got.pdf")) == []
    with Image.open(io.BytesIO(got_photo)) as im:
        im.load()
        assert im.size == (64, 32)
    with pikepdf.open(tmp_path / "got.pdf") as doc:
        assert len(doc.pages) == 3
    # The preview: a re-encoded JPEG, inline, sandboxed.
    status, preview, headers = await download(
        http, f"/api/v1/staff/attachments/{files[0]['id']}/preview", staff
    )
    assert status == 200 and headers["Content-Disposition"].startswith("inline")
    assert headers["Content-Security-Policy"].startswith("sandbox")
    assert canaries_in(preview) == []
    Image.open(io.BytesIO(preview)).verify()
    # The originals are destroyed; only stripped and preview copies remain.
    copies = await db.fetch("SELECT DISTINCT file_id, copy FROM attachment_chunks ORDER BY copy")
    assert {c["copy"] for c in copies} == {"stripped", "preview"}
    # The reporter downloads their own files too.
    code = receipt["code"]
    reporter = await reporter_bearer(http, code)
    async with http.get("/api/v1/reporter/thread", headers=reporter) as resp:
        mine = (await resp.json())["attachments"]
    assert [f["name"] for f in mine] == ["attachment-1.jpg", "attachment-2.pdf"]
    status, theirs, _ = await download(
        http, f"/api/v1/reporter/attachments/{files[0]['id']}", reporter
    )
    assert status == 200 and theirs == got_photo
    # Every staff download and preview is audited; the reporter's download is not (its time
    # would tell staff when the reporter was online).
    rows = await db.fetch("SELECT action, staff_id FROM audit_log WHERE action LIKE 'attachment_%'")
    actions = [r["action"] for r in rows]
    assert actions.count("attachment_download") == 2 and actions.count("attachment_preview") == 1
    assert None not in {r["staff_id"] for r in rows}
    # The receipt's commitment covers each file's SHA-256 as uploaded (the receipt lists none).
    row = await db.fetchrow(
        "SELECT id, data_key, receipt_salt, commitment FROM threads WHERE reference = $1",
        receipt["reference"],
    )
    key = stack.keyring.thread_key(row["id"], row["data_key"])
    salt = receipts.decode_salt(key.open(row["receipt_salt"], f"threads.receipt_salt:{row['id']}"))
    canonical = receipts.canonical_report(
        category="safety",
        description="The fire door on level 2 is broken",
        occurred=None,
        location=None,
        anonymous=True,
        follow_up=True,
        contact=None,
        attachments=[hashlib.sha256(photo).hexdigest(), hashlib.sha256(letter).hexdigest()],
    )
    assert receipts.commitment(salt, canonical) == row["commitment"]
    # No canary anywhere at rest: not in the database, not in Redis, not in the logs.
    assert await database_canaries(db) == []
    assert redis_canaries(stack) == []
    logs = stack.logs()
    assert canaries_in(logs.encode()) == [] and "CANARY-NAME" not in logs


async def test_uploads_that_cannot_be_taken_get_a_clear_answer(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection, tmp_path: Path
) -> None:
    big = b"\xff\xd8\xff\xe0" + b"\x00" * (25 * 1024 * 1024)
    status, body = await upload(http, big, "big.jpg")
    assert status == 413 and body["type"].endswith("/file-too-large"), body
    status, body = await upload(http, b"GIF89a" + b"\x00" * 100, "pic.jpg")
    assert status == 415 and body["type"].endswith("/type-not-allowed"), body
    program = Path(shutil.which("ls") or "/bin/ls").read_bytes()
    status, body = await upload(http, program, "holiday.jpg")
    assert status == 415 and "cannot be attached" in body["detail"], body
    bomb = make.png_bomb(tmp_path / "bomb.png").read_bytes()
    status, body = await upload(http, bomb, "bomb.png")
    assert status == 422 and body["type"].endswith("/image-too-large"), body
    assert "megapixels" in body["detail"]
    async with http.post("/api/v1/uploads", json={"file": "x"}) as resp:
        assert resp.status == 415
    form = aiohttp.FormData()
    form.add_field("other", b"x", filename="x.txt")
    async with http.post("/api/v1/uploads", data=form) as resp:
        assert resp.status == 400
    # Nothing of a refused file is kept.
    await assert_nothing_kept(db)


async def test_an_upload_is_usable_once_and_only_by_its_uploader(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    caseworker: StaffAccount,
    tmp_path: Path,
) -> None:
    text = b"Notes about the door, written down at the time.\n"
    status, body = await report_with(http, ["A" * 22])
    assert status == 422 and body["errors"][0]["field"] == "attachments.0", body
    one = await uploaded(http, text, "notes.txt")
    status, receipt = await report_with(http, [one])
    assert status == 201, receipt
    status, body = await report_with(http, [one])
    assert status == 422 and body["errors"][0]["field"] == "attachments.0"
    # A staff member's upload is theirs alone: not for a report, nor for a colleague.
    staff = await bearer(http, caseworker)
    theirs = await uploaded(http, text, "n.txt", headers=staff)
    status, body = await report_with(http, [theirs])
    assert status == 422
    colleague = await bearer(http, add_staff(stack, "cole@example.org", "safety"))
    reference = receipt["reference"]
    async with http.post(
        f"/api/v1/staff/threads/{reference}/messages",
        json={"body": "See attached", "attachments": [theirs]},
        headers=colleague,
    ) as resp:
        assert resp.status == 422, await resp.text()
    async with http.post(
        f"/api/v1/staff/threads/{reference}/messages",
        json={"body": "See attached", "attachments": [theirs]},
        headers=staff,
    ) as resp:
        assert resp.status == 201, await resp.text()
    # The reporter attaches their own file to a message; an anonymous upload is not theirs.
    reporter = await reporter_bearer(http, receipt["code"])
    anonymous = await uploaded(http, text, "a.txt")
    async with http.post(
        "/api/v1/reporter/messages",
        json={"body": "And this", "attachments": [anonymous]},
        headers=reporter,
    ) as resp:
        assert resp.status == 422
    own = await uploaded(http, text, "mine.txt", headers=reporter)
    async with http.post(
        "/api/v1/reporter/messages",
        json={"body": "And this", "attachments": [own], "keep_file_names": True},
        headers=reporter,
    ) as resp:
        assert resp.status == 201, await resp.text()
    async with http.get(f"/api/v1/staff/threads/{reference}", headers=staff) as resp:
        thread = await resp.json()
    by_message = [m["attachments"] for m in thread["messages"]]
    assert [[f["name"] for f in files] for files in by_message if files] == [
        ["attachment-2.txt"],
        ["attachment-3.txt"],
    ]
    assert thread["messages"][-1]["attachments"][0]["original_name"] == "mine.txt"
    # Over the count per message: 422.
    many = [await uploaded(http, text, f"{n}.txt", headers=reporter) for n in range(11)]
    async with http.post(
        "/api/v1/reporter/messages", json={"body": "Lots", "attachments": many}, headers=reporter
    ) as resp:
        assert resp.status == 422, await resp.text()


async def test_staff_of_another_team_get_404_and_a_reporter_waits_for_stripping(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    caseworker: StaffAccount,
    tmp_path: Path,
) -> None:
    one = await uploaded(http, make.jpeg(tmp_path / "p.jpg").read_bytes(), "p.jpg")
    status, receipt = await report_with(http, [one])
    assert status == 201
    staff = await bearer(http, caseworker)
    (file,) = await thread_files(http, receipt["reference"], staff)
    path = f"/api/v1/staff/attachments/{file['id']}"
    other = await bearer(http, add_staff(stack, "hana@example.org", "hr"))
    status, _, _ = await download(http, path, other)
    assert status == 404
    status, _, _ = await download(http, path + "/preview", other)
    assert status == 404
    ops = await bearer(http, add_staff(stack, "otto@example.org", "safety", role="ops"))
    status, _, _ = await download(http, path, ops)
    assert status == 403
    await wait_state(db, file["id"], "ready")
    reporter = await reporter_bearer(http, receipt["code"])
    mine = f"/api/v1/reporter/attachments/{file['id']}"
    # While it is (again) being prepared, nobody gets it.
    await db.execute(
        "UPDATE attachments SET state = 'preparing', next_attempt_at = now() + interval '1 hour'"
    )
    status, body, _ = await download(http, mine, reporter)
    assert status == 409 and b"being prepared" in body
    status, _, _ = await download(http, path, staff)
    assert status == 409
    await db.execute("UPDATE attachments SET state = 'ready'")
    # Another report's reporter does not see it.
    _, other_receipt = await report_with(http, [])
    stranger = await reporter_bearer(http, other_receipt["code"])
    status, _, _ = await download(http, mine, stranger)
    assert status == 404
    status, _, _ = await download(http, "/api/v1/reporter/attachments/not-a-uuid", reporter)
    assert status == 404


async def test_a_file_that_cannot_be_stripped_is_quarantined_and_released_only_by_a_manager(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    caseworker: StaffAccount,
    tmp_path: Path,
) -> None:
    # Whole to the upload's checks; its image data stops halfway, as only decoding finds.
    damaged = make.png_cut_inside(tmp_path / "p.png").read_bytes()
    one = await uploaded(http, damaged, "p.png")
    status, receipt = await report_with(http, [one])
    assert status == 201
    staff = await bearer(http, caseworker)
    (file,) = await thread_files(http, receipt["reference"], staff)
    assert await wait_state(db, file["id"], "quarantined", "ready") == "quarantined"
    path = f"/api/v1/staff/attachments/{file['id']}"
    status, _, _ = await download(http, path, staff)
    assert status == 409
    async with http.post(path + "/release", json={"reason": "Needed"}, headers=staff) as resp:
        assert resp.status == 403
    manager = await bearer(http, add_staff(stack, "mia@example.org", "safety", role="manager"))
    async with http.post(path + "/release", json={"reason": ""}, headers=manager) as resp:
        assert resp.status == 422
    async with http.post(
        path + "/release", json={"reason": "Evidence needed as it is"}, headers=manager
    ) as resp:
        assert resp.status == 200 and (await resp.json())["state"] == "released"
    (file,) = await thread_files(http, receipt["reference"], staff)
    assert file["state"] == "released"
    status, got, headers = await download(http, path, staff)
    assert status == 200 and got == damaged  # unstripped, to staff only
    assert headers["Content-Security-Policy"].startswith("sandbox")
    reporter = await reporter_bearer(http, receipt["code"])
    status, _, _ = await download(http, f"/api/v1/reporter/attachments/{file['id']}", reporter)
    assert status == 409
    audited = await count(db, "audit_log WHERE action = 'attachment_release'")
    assert audited == 1
    sealed = await db.fetchval("SELECT release_reason FROM attachments")
    assert sealed is not None and b"Evidence" not in sealed  # the reason is sealed


async def test_an_interrupted_stripping_ends_with_one_stripped_copy_and_a_rerun_does_nothing(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    caseworker: StaffAccount,
    worker: Proc,
    tmp_path: Path,
) -> None:
    worker.stop()  # nobody strips until the crash is staged
    letter = make.pdf(tmp_path / "letter.pdf").read_bytes()
    one = await uploaded(http, letter, "letter.pdf")
    status, _ = await report_with(http, [one])
    assert status == 201
    attachment_id = await db.fetchval("SELECT id FROM attachments")
    # A run that died mid-file: it took the lease and wrote part of a stripped copy.
    await db.execute(
        "UPDATE attachments SET attempts = 1, leased_until = now() - interval '1 second' "
        "WHERE id = $1",
        attachment_id,
    )
    for idx in range(3):
        await db.execute(
            "INSERT INTO attachment_chunks (file_id, copy, idx, data) VALUES ($1, 'stripped', $2, $3)",
            attachment_id,
            idx,
            b"partial" * 10,
        )
    worker.start()
    wait_worker(stack.env["REDIS_URL"], worker)
    kick_relay(stack)
    await wait_state(db, str(attachment_id), "ready")
    row = await db.fetchrow("SELECT attempts, stripped_size FROM attachments")
    assert row["attempts"] == 2
    chunks = await db.fetch(
        "SELECT idx, data FROM attachment_chunks WHERE file_id = $1 AND copy = 'stripped' ORDER BY idx",
        attachment_id,
    )
    assert len(chunks) == max(1, math.ceil(row["stripped_size"] / CHUNK_BYTES))
    assert await count(db, "attachment_chunks WHERE copy = 'original'") == 0
    before = [bytes(c["data"]) for c in chunks]
    # A redelivery after success is a no-op.
    from celery import Celery

    client = Celery("again", broker=stack.env["REDIS_URL"])
    try:
        client.send_task("confide.strip_attachment", args=[str(attachment_id)], queue="files")
    finally:
        client.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and worker.log_text().count("skipped") < 1:
        await asyncio.sleep(0.2)
    after = await db.fetch(
        "SELECT data FROM attachment_chunks WHERE file_id = $1 AND copy = 'stripped' ORDER BY idx",
        attachment_id,
    )
    assert [bytes(c["data"]) for c in after] == before
    staff = await bearer(http, caseworker)
    status, got, _ = await download(http, f"/api/v1/staff/attachments/{attachment_id}", staff)
    assert status == 200
    (tmp_path / "got.pdf").write_bytes(got)
    assert canaries_in(make.pdf_text(tmp_path / "got.pdf")) == []
    # What is logged of a file is its id and outcomes, never its type (nor its name).
    events = ("upload_received", "attachment_prepared", "attachment_not_strippable")
    logged = [line for line in stack.logs().splitlines() if any(e in line for e in events)]
    assert any(str(attachment_id) in line for line in logged)
    types = re.compile(r"\b(pdf|jpeg|png|heic|docx|odt|mp3|m4a|application/\w+|image/\w+)\b")
    assert not [line for line in logged if types.search(line)]


async def test_a_run_whose_lease_was_taken_over_is_refused_and_the_file_is_ready_once(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    caseworker: StaffAccount,
    worker: Proc,
    tmp_path: Path,
) -> None:
    worker.stop()  # the two runs are staged here, in this process
    one = await uploaded(http, make.pdf(tmp_path / "letter.pdf").read_bytes(), "letter.pdf")
    status, _ = await report_with(http, [one])
    assert status == 201
    attachment_id = await db.fetchval("SELECT id FROM attachments")
    pool = await asyncpg.create_pool(stack.env["DATABASE_URL"], min_size=1, max_size=4)
    ctx = Context(pool, stack.settings, stack.keyring, WorkingCalendar())
    stripping, go = threading.Event(), threading.Event()

    def slow(original: Path, file_type: FileType, folder: Path) -> tuple[Path, Path | None]:
        stripping.set()  # run A has decrypted the original and is stripping it
        assert go.wait(60)
        return strip_into(original, file_type, folder)

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    try:
        first = asyncio.create_task(attachments.prepare(ctx, attachment_id, slow, tmp_path / "a"))
        assert await asyncio.to_thread(stripping.wait, 60)
        # Run A's lease is taken from it (its renewals lost, say) and the file is due again.
        await db.execute(
            "UPDATE attachments SET leased_until = now() - interval '1 second', "
            "next_attempt_at = now()"
        )
        second = await attachments.prepare(ctx, attachment_id, strip_into, tmp_path / "b")
        assert second.state is attachments.State.READY
        go.set()
        refused = await first  # A finishes stripping: its writes are refused, and no error
        assert refused.state is None and refused.reason == attachments.LEASE_LOST
    finally:
        go.set()
        await pool.close()
    row = await db.fetchrow("SELECT state, attempts, stripped_size, lease_id FROM attachments")
    assert row["state"] == "ready" and row["attempts"] == 2 and row["lease_id"] is None
    stripped = await count(
        db, "attachment_chunks WHERE file_id = $1 AND copy = 'stripped'", attachment_id
    )
    assert stripped == max(1, math.ceil(row["stripped_size"] / CHUNK_BYTES))
    assert await count(db, "attachment_chunks WHERE copy = 'original'") == 0
    staff = await bearer(http, caseworker)
    status, got, _ = await download(http, f"/api/v1/staff/attachments/{attachment_id}", staff)
    assert status == 200
    (tmp_path / "got.pdf").write_bytes(got)
    assert canaries_in(make.pdf_text(tmp_path / "got.pdf")) == []


RELAY_ONCE = """
from workers import context
from workers.celery_app import app
from workers.tasks.delivery import relay_outbox
context.init()
app.loader.import_default_modules()
print(relay_outbox())
"""


async def test_the_relays_strip_sends_expire_so_a_backed_up_queue_does_not_pile_up(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection, worker: Proc
) -> None:
    worker.stop()  # the files queue is backed up: nobody consumes it
    one = await uploaded(http, b"Plain notes.\n", "notes.txt")
    status, _ = await report_with(http, [one])
    assert status == 201
    attachment_id = await db.fetchval("SELECT id FROM attachments")
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    try:
        client.delete("files")
        env = {**stack.env, "CONFIDE_WORKER_METRICS_PORT": ""}
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", RELAY_ONCE],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        sent = [json.loads(m) for m in client.lrange("files", 0, -1)]
    finally:
        client.close()
    mine = [m for m in sent if str(attachment_id) in base64.b64decode(m["body"]).decode()]
    assert len(mine) == 1
    assert mine[0]["headers"]["task"] == "confide.strip_attachment"
    assert mine[0]["headers"]["expires"]  # a copy still queued after 30 s is dropped


async def test_chunks_of_no_upload_or_attachment_are_swept_by_housekeeping(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    one = await uploaded(http, b"Plain notes.\n", "notes.txt")
    status, _ = await report_with(http, [one])
    assert status == 201
    attachment_id = await db.fetchval("SELECT id FROM attachments")
    await wait_state(db, str(attachment_id), "ready")
    kept = await count(db, "attachment_chunks")
    # Left behind: a file whose thread was erased mid-strip, or a deleted member's upload.
    orphan = uuid4()
    for idx in range(3):
        await db.execute(
            "INSERT INTO attachment_chunks (file_id, copy, idx, data) VALUES ($1, 'stripped', $2, $3)",
            orphan,
            idx,
            os.urandom(64),
        )
    pool = await asyncpg.create_pool(stack.env["DATABASE_URL"], min_size=1, max_size=2)
    ctx = Context(pool, stack.settings, stack.keyring, WorkingCalendar())
    try:
        await housekeeping.purge_expired(ctx)  # (beat's minutely purge may have run first)
        assert await attachments.sweep_orphan_chunks(ctx, batch=1) == 0
    finally:
        await pool.close()
    assert await count(db, "attachment_chunks WHERE file_id = $1", orphan) == 0
    assert await count(db, "attachment_chunks") == kept


async def test_erasing_a_thread_erases_its_files(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection, tmp_path: Path
) -> None:
    one = await uploaded(http, b"Plain notes.\n", "notes.txt")
    status, receipt = await report_with(http, [one])
    assert status == 201
    row = await db.fetchrow(
        "SELECT id, team_id FROM threads WHERE reference = $1", receipt["reference"]
    )
    attachment_id = await db.fetchval("SELECT id FROM attachments")
    await wait_state(db, str(attachment_id), "ready")
    async with db.transaction():
        await sql_lifecycle.erase(db, [row["id"]], ["E-TESTERASURE0"], [row["team_id"]])
    await assert_nothing_kept(db, "attachments")


async def test_a_worker_killed_while_stripping_leaves_the_file_stripped_exactly_once(
    stack: Stack,
    http: aiohttp.ClientSession,
    db: asyncpg.Connection,
    caseworker: StaffAccount,
    worker: Proc,
) -> None:
    # A screenshot-sized PNG of noise: re-encoding it takes seconds, time enough to kill.
    side = 2400
    noise = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    info = PngInfo()
    info.add_text("Author", make.AUTHOR)
    buf = io.BytesIO()
    noise.save(buf, "PNG", pnginfo=info, compress_level=1)
    one = await uploaded(http, buf.getvalue(), "screen.png")
    status, _ = await report_with(http, [one])
    assert status == 201
    attachment_id = await db.fetchval("SELECT id FROM attachments")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if await db.fetchval(
            "SELECT leased_until IS NOT NULL FROM attachments WHERE state = 'preparing'"
        ):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the worker never took the file")
    await asyncio.sleep(0.5)  # mid-file: decrypted, being re-encoded
    assert await db.fetchval("SELECT state FROM attachments") == "preparing"
    worker.stop(signal.SIGKILL)
    # The killed run could not clean up: its decrypted original is still in the strip folder.
    strip_folder = stack.settings.strip_folder
    assert strip_folder.stat().st_mode & 0o777 == 0o700
    left = [f for f in strip_folder.glob("confide-strip-*") if (f / "original.png").exists()]
    assert left
    # The claim pushed the next attempt back: a crash loop backs off without any retry_strip.
    assert await db.fetchval("SELECT next_attempt_at > now() FROM attachments")
    worker.start()
    wait_worker(stack.env["REDIS_URL"], worker)
    assert not any(f.exists() for f in left)  # swept as the worker started
    await wait_state(db, str(attachment_id), "ready", timeout=180)
    row = await db.fetchrow("SELECT attempts, stripped_size FROM attachments")
    assert row["attempts"] == 2  # the killed run, then one that finished
    # The finishing run removes its own folder just after its commit made the file ready.
    gone_by = time.monotonic() + 10
    while list(strip_folder.glob("confide-strip-*")) and time.monotonic() < gone_by:
        await asyncio.sleep(0.05)
    assert not list(strip_folder.glob("confide-strip-*"))
    stripped = await count(
        db, "attachment_chunks WHERE file_id = $1 AND copy = 'stripped'", attachment_id
    )
    assert stripped == math.ceil(row["stripped_size"] / CHUNK_BYTES)
    assert await count(db, "attachment_chunks WHERE copy = 'original'") == 0
    staff = await bearer(http, caseworker)
    status, got, _ = await download(http, f"/api/v1/staff/attachments/{attachment_id}", staff)
    assert status == 200 and make.AUTHOR.encode() not in got
    with Image.open(io.BytesIO(got)) as im:
        assert im.size == (side, side)


async def test_an_upload_held_by_a_draft_outlives_its_hour_and_goes_with_the_draft(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    pool = await asyncpg.create_pool(stack.env["DATABASE_URL"], min_size=1, max_size=2)
    ctx = Context(pool, stack.settings, stack.keyring, WorkingCalendar())
    try:
        anonymous = attachments.Uploader.anonymous()
        held = await uploaded(http, b"Kept in the draft.\n", "a.txt")
        loose = await uploaded(http, b"Not kept.\n", "b.txt")
        draft_id = secrets.token_bytes(32)
        await db.execute(
            "INSERT INTO report_drafts (id, ciphertext, expires_at) "
            "VALUES ($1, $2, now() + interval '1 hour')",
            draft_id,
            b"sealed",
        )
        stranger = attachments.Uploader.staff(1)
        assert not await attachments.hold_in_draft(ctx, stranger, held, draft_id)
        assert await attachments.hold_in_draft(ctx, anonymous, held, draft_id)
        await db.execute("UPDATE uploads SET expires_at = now() - interval '1 second'")
        await housekeeping.purge_expired(ctx)  # (beat's minutely purge may have run first)
        listed = await attachments.describe_uploads(ctx, anonymous, [loose, held])
        assert [u.upload_id for u in listed] == [held]
        assert await db.fetchval("SELECT count(DISTINCT file_id) FROM attachment_chunks") == 1
        # "Remove": gone at once; and once the draft goes, so does what it held.
        again = await uploaded(http, b"Another.\n", "c.txt")
        assert await attachments.discard_upload(ctx, anonymous, again)
        assert not await attachments.discard_upload(ctx, anonymous, again)
        await db.execute("DELETE FROM report_drafts")
        await housekeeping.purge_expired(ctx)
        await assert_nothing_kept(db)
        status, body = await report_with(http, [held])
        assert status == 422, body
    finally:
        await pool.close()


async def test_a_flood_of_uploads_from_one_reporter_is_refused_before_it_is_stored(
    stack: Stack, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    """Reporters' files have a budget of their own (CONFIDE_UPLOAD_PER_CLIENT_PER_HOUR): past
    it, 429 with Retry-After, and nothing of the refused file is kept. Staff are not counted."""
    _, base = stack.start_web("web-uploads", CONFIDE_UPLOAD_PER_CLIENT_PER_HOUR="3")
    text = b"A note about the broken door.\n"
    async with aiohttp.ClientSession(base_url=base) as client:
        for n in range(3):
            status, body = await upload(client, text, f"note-{n}.txt")
            assert status == 201, body
        status, body = await upload(client, text, "note-4.txt")
        assert status == 429 and body["status"] == 429, body
        async with client.post("/api/v1/uploads", data=b"") as resp:
            assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
        staff = await bearer(client, caseworker)
        status, body = await upload(client, text, "staff-note.txt", headers=staff)
        assert status == 201, body
    assert await count(db, "uploads") == 4


async def test_a_reporter_sending_many_bytes_is_refused_past_their_budget_of_bytes(
    stack: Stack, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    """Besides files, reporters' bytes are budgeted per client (here 1 MiB an hour): a body
    declared larger than what is left is refused before a byte is stored, and one that does
    not say is cut off as it streams; 429 with Retry-After, nothing of it kept."""
    _, base = stack.start_web("web-upload-bytes", CONFIDE_UPLOAD_MIB_PER_CLIENT_PER_HOUR="1")
    part = make.notes(600)
    async with aiohttp.ClientSession(base_url=base) as client:
        status, body = await upload(client, part, "one.txt")
        assert status == 201, body
        form = aiohttp.FormData()
        form.add_field("file", part, filename="two.txt", content_type="text/plain")
        async with client.post("/api/v1/uploads", data=form) as resp:  # declares its length
            assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 60, resp.status
        status, body = await upload(client, part, "three.txt")  # a stream: cut off midway
        assert status == 429 and body["status"] == 429, body
        staff = await bearer(client, caseworker)
        status, body = await upload(client, part, "staff.txt", headers=staff)
        assert status == 201, body  # staff are not counted
    assert await count(db, "uploads") == 2
    files = await db.fetchval("SELECT count(DISTINCT file_id) FROM attachment_chunks")
    assert files == 2


async def test_uploads_waiting_to_be_attached_are_capped_in_all(
    stack: Stack, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    """What reporters' unattached uploads hold in all is capped (here 1 MiB): past it a file is
    refused before it is stored, or cut off as it streams, 429 with Retry-After; once uploads
    are attached (or purged) files are taken again. Staff uploads neither count nor wait."""
    _, base = stack.start_web("web-upload-cap", CONFIDE_PENDING_UPLOADS_MAX_MIB="1")
    part = make.notes(680)
    async with aiohttp.ClientSession(base_url=base) as client:
        first = await uploaded(client, part, "one.txt")
        status, body = await upload(client, part, "two.txt")  # would go over: cut off
        assert status == 429 and body["status"] == 429, body
        small = await uploaded(client, b"A short note.\n" * 1000, "small.txt")  # still fits
        status, body = await upload(client, make.notes(400), "three.txt")
        assert status == 429, body
        staff = await bearer(client, caseworker)
        status, body = await upload(client, part, "staff.txt", headers=staff)
        assert status == 201, body
        form = aiohttp.FormData()
        form.add_field("file", make.notes(400), filename="four.txt", content_type="text/plain")
        async with client.post("/api/v1/uploads", data=form) as resp:
            assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
        status, receipt = await report_with(client, [first, small])
        assert status == 201, receipt
        status, body = await upload(client, part, "two.txt")  # attached: room again
        assert status == 201, body
    assert await count(db, "uploads") == 2  # staff's, and the last


async def test_a_damaged_file_is_a_logged_409_and_damage_elsewhere_a_500(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    """A stored copy that does not open is refused with words of its own and logged as
    ``attachment_unreadable`` with the file's id; a value that does not open anywhere else is
    no quiet 409 but an unexpected error, with an error id in the log."""
    one = await uploaded(http, b"Notes about the door.\n", "notes.txt")
    status, receipt = await report_with(http, [one])
    assert status == 201, receipt
    staff = await bearer(http, caseworker)
    (file,) = await thread_files(http, receipt["reference"], staff)
    await wait_state(db, file["id"], "ready")
    await db.execute(
        "UPDATE attachment_chunks SET data = overlay(data PLACING '\\x00'::bytea FROM 20 FOR 1) "
        "WHERE file_id = $1 AND copy = 'stripped'",
        UUID(file["id"]),
    )
    status, body, _ = await download(http, f"/api/v1/staff/attachments/{file['id']}", staff)
    problem = json.loads(body)
    assert status == 409 and problem["type"].endswith("/attachment-unavailable"), problem
    assert "cannot be opened" in problem["detail"]
    deadline = time.monotonic() + 10
    while "attachment_unreadable" not in stack.logs() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    line = next(ln for ln in stack.logs().splitlines() if "attachment_unreadable" in ln)
    assert file["id"] in line
    # A report whose text does not open: an unexpected error, not "this file cannot be served".
    await db.execute(
        "UPDATE threads SET description = overlay(description PLACING '\\x00'::bytea "
        "FROM 20 FOR 1) WHERE reference = $1",
        receipt["reference"],
    )
    async with http.get(f"/api/v1/staff/threads/{receipt['reference']}", headers=staff) as resp:
        assert resp.status == 500, await resp.text()


async def test_the_purge_skips_an_upload_a_claim_holds_and_leaves_its_chunks(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    """An upload that expires while a report's transaction holds it (as claim_uploads does):
    the purge skips it at once instead of deleting its chunks and then waiting for the row,
    so the claim that commits has a file that strips and downloads."""
    pool = await asyncpg.create_pool(stack.env["DATABASE_URL"], min_size=1, max_size=2)
    ctx = Context(pool, stack.settings, stack.keyring, WorkingCalendar())
    text = b"Kept while the report is being sent.\n"
    try:
        one = await uploaded(http, text, "notes.txt")
        file_id = await db.fetchval("SELECT id FROM uploads")
        async with db.transaction():
            await db.fetchval("SELECT id FROM uploads WHERE id = $1 FOR UPDATE", file_id)
            await db.execute(
                "UPDATE uploads SET expires_at = now() - interval '1 second' WHERE id = $1",
                file_id,
            )
            purged = await asyncio.wait_for(attachments.purge_expired_uploads(ctx), 10)
            assert purged == 0
            chunks = await pool.fetchval(
                "SELECT count(*) FROM attachment_chunks WHERE file_id = $1", file_id
            )
            assert chunks >= 1
            # The claim goes on and commits (here: the upload is left usable, then attached).
            await db.execute(
                "UPDATE uploads SET expires_at = now() + interval '1 hour' WHERE id = $1", file_id
            )
    finally:
        await pool.close()
    status, receipt = await report_with(http, [one])
    assert status == 201, receipt
    staff = await bearer(http, caseworker)
    (file,) = await thread_files(http, receipt["reference"], staff)
    await wait_state(db, file["id"], "ready")
    status, got, _ = await download(http, f"/api/v1/staff/attachments/{file['id']}", staff)
    assert status == 200 and got == text


async def test_a_head_request_for_a_file_is_405_and_audits_nothing(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection, caseworker: StaffAccount
) -> None:
    """HEAD would run the download: an audit row and a whole file decrypted for no body. Every
    route that serves a file answers it 405."""
    one = await uploaded(http, make.jpeg(Path(stack.artifacts) / "head.jpg").read_bytes(), "p.jpg")
    status, receipt = await report_with(http, [one])
    assert status == 201, receipt
    staff = await bearer(http, caseworker)
    (file,) = await thread_files(http, receipt["reference"], staff)
    await wait_state(db, file["id"], "ready")
    reporter = await reporter_bearer(http, receipt["code"])
    fid = file["id"]
    for path, headers in [
        (f"/api/v1/staff/attachments/{fid}", staff),
        (f"/api/v1/staff/attachments/{fid}/preview", staff),
        (f"/api/v1/reporter/attachments/{fid}", reporter),
        (f"/staff/attachments/{fid}", {}),
        (f"/staff/attachments/{fid}/preview", {}),
        (f"/messages/attachments/{fid}", {}),
    ]:
        async with http.head(path, headers=headers) as resp:
            assert resp.status == 405, (path, resp.status)
            assert "GET" in resp.headers["Allow"]
    assert await count(db, "audit_log WHERE action LIKE 'attachment_%'") == 0
    async with http.get(f"/api/v1/staff/attachments/{fid}", headers=staff) as resp:
        assert resp.status == 200  # GET still serves it


async def test_an_upload_purged_while_it_streams_gets_a_clear_408(
    stack: Stack, db: asyncpg.Connection
) -> None:
    """While it streams an upload may take the file limit at the slowest body rate allowed
    (1 KiB/s) and a margin, not a fixed 8 hours; one purged before it finished is told it took
    too long (408), never a 500, and nothing of it is kept."""
    from confide.files.errors import UploadTooSlow
    from confide.files.limits import MIB, AttachmentLimits
    from webapp.errors import status_of

    pool = await asyncpg.create_pool(stack.env["DATABASE_URL"], min_size=1, max_size=2)
    ctx = Context(pool, stack.settings, stack.keyring, WorkingCalendar())
    limits = AttachmentLimits(max_file_bytes=MIB)
    seen: list[float] = []

    async def slow_body() -> Any:
        yield make.notes(300)
        seen.append(
            float(await db.fetchval("SELECT extract(epoch FROM expires_at - now()) FROM uploads"))
        )
        await db.execute("DELETE FROM uploads")  # the purge takes it: it was past its time
        yield make.notes(10)

    try:
        try:
            await attachments.receive_upload(
                ctx, attachments.Uploader.anonymous(), slow_body(), limits=limits
            )
        except UploadTooSlow as exc:
            assert status_of(exc) == 408 and "took too long" in exc.detail
        else:
            raise AssertionError("the purged upload was answered as received")
    finally:
        await pool.close()
    expected = MIB / 1024 + attachments.STREAMING_MARGIN_S
    assert expected - 30 <= seen[0] <= expected + 1, seen
    assert await count(db, "attachment_chunks") == 0


async def test_an_upload_id_has_one_spelling_only(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    """22 base64 characters carry 4 spare bits: another spelling of the same 128 bits is an
    unknown id (422), and the upload stays usable with the one it was given."""
    one = await uploaded(http, b"Notes about the door.\n", "notes.txt")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(one[-1])
    other = one[:-1] + alphabet[last ^ 1]  # differs only in a spare bit
    assert base64.urlsafe_b64decode(other + "==") == base64.urlsafe_b64decode(one + "==")
    status, body = await report_with(http, [other])
    assert status == 422 and body["errors"][0]["field"] == "attachments.0", body
    status, receipt = await report_with(http, [one])
    assert status == 201, receipt


async def test_a_repeat_while_the_first_holds_its_files_gets_409_at_once(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    """An API report with files and an Idempotency-Key, sent again while the first request
    still holds its uploads (here: a transaction holding their rows, as the first's claim
    does): 409 with Retry-After at once, not a wait on the rows (CONTRACTS §3); once the first
    is done, the same request goes through."""
    one = await uploaded(http, b"Notes about the door.\n", "notes.txt")
    key = {"Idempotency-Key": "repeat-" + "r" * 20}
    async with db.transaction():
        await db.execute("SELECT id FROM uploads FOR UPDATE")
        status, body = await asyncio.wait_for(report_with(http, [one], headers=key), 10)
        assert status == 409 and body["status"] == 409, body
    status, receipt = await report_with(http, [one], headers=key)
    assert status == 201, receipt
    status, again = await report_with(http, [one], headers=key)
    assert status == 200 and again["reference"] == receipt["reference"]
