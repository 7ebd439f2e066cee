"""A receipt the reporter can prove (issue 14, item 8; docs/security.md "Receipts")."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st
from playwright.async_api import Browser

from confide import receipts
from confide.errors import ConfigError, ReceiptInvalid
from confide.settings import Settings
from tests import html, leaks
from tests.conftest import ROOT, Stack, StaffAccount, add_staff
from tests.journeys import (
    form_page,
    post,
    reporter_logs_in,
    reporter_sends,
    reporter_submits,
    staff_acts,
    staff_logs_in,
)
from tests.test_browser import (  # browser: the fixture
    Auditor,
    browser,  # noqa: F401
    on_a_phone,
    send_a_safety_report_with_follow_up,
)
from webapp.handlers.reporter import SUBMIT_PURPOSE
from webapp.security import new_form_token


def canary(label: str) -> str:
    return f"CANARY{label.upper()}{secrets.token_hex(6).upper()}"


def client(stack: Stack) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True))


def verify_cli(stack: Stack, path: Path | str, **env: str) -> subprocess.CompletedProcess[str]:
    """``confide receipt verify FILE`` as an integrator runs it, with the server's settings."""
    return subprocess.run(
        [sys.executable, "-m", "confide.cli", "receipt", "verify", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**stack.env, **env},
        timeout=60,
        check=False,
    )


async def download(http: aiohttp.ClientSession, page: str) -> bytes:
    """Press "Download a receipt" on the confirmation page."""
    form = next(f for f in html.forms(page) if f.action == "/receipt.json")
    async with http.post(form.action, data=form.fields) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "application/json"
        assert resp.headers["Content-Disposition"].startswith("attachment")
        assert resp.headers["Cache-Control"] == "no-store"
        return await resp.read()


async def check_page(http: aiohttp.ClientSession, text: str) -> tuple[int, str]:
    """Paste a receipt on the "Check a receipt" page, as a browser without JavaScript does."""
    page = await form_page(http, "/check-receipt")
    form = next(f for f in html.forms(page) if f.action == "/check-receipt")
    return await post(http, form.action, form.data(receipt=text))


def seed_of(stack: Stack) -> bytes:
    return base64.b64decode(stack.env["CONFIDE_RECEIPT_KEY"])


def one_line_failure(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and words in result.stderr, result.stderr
    assert result.stdout == ""


async def test_reporter_proves_a_report_with_its_receipt_which_holds_no_salt_or_text(
    stack: Stack, db: asyncpg.Connection, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    words = canary("report")
    sent = await reporter_submits(http, f"Broken fire door on level 2. {words}")
    assert sent.reference and "Download a receipt" in sent.page
    # The reference never breaks across lines, in the receipt's words either.
    assert f'report <span class="reference-inline">{sent.reference}</span> and when' in sent.page
    data = await download(http, sent.page)

    receipt = json.loads(data)
    assert set(receipt) == {
        "v",
        "kid",
        "kind",
        "reference",
        "received_at",
        "commitment",
        "signature",
    }
    assert receipt["v"] == 1 and receipt["kind"] == "report"
    assert receipt["reference"] == sent.reference
    assert data == rfc8785.dumps(receipt)  # the file is its own RFC 8785 canonical form

    # Neither the words nor the salt: the receipt cannot be used to test a guessed text.
    row = await db.fetchrow(
        """SELECT id, received_at, receipt_salt, commitment, data_key FROM threads
           WHERE reference = $1""",
        sent.reference,
    )
    salt_text = stack.keyring.thread_key(row["id"], row["data_key"]).open(
        row["receipt_salt"], f"threads.receipt_salt:{row['id']}"
    )
    salt = receipts.decode_salt(salt_text)
    text = data.decode()
    assert not leaks.hits(text, {"report": words, "salt": salt_text})
    assert (
        salt not in data and salt.hex() not in text and base64.b64encode(salt).decode() not in text
    )
    assert words.encode() not in row["receipt_salt"]  # sealed, like the report's other fields
    assert receipts.b64url(row["commitment"]) == receipt["commitment"]
    assert receipt["received_at"] == receipts.timestamp(row["received_at"])

    # An outside verifier needs only the published keys: the JWKS and RFC 8032.
    async with http.get("/.well-known/confide-receipt-key") as resp:
        assert resp.status == 200 and resp.content_type == "application/json"
        assert resp.headers["Cache-Control"] == "public, max-age=300"
        jwks = await resp.json()
    (key,) = jwks["keys"]
    assert key | {"x": "", "kid": ""} == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": "",
        "kid": "",
        "use": "sig",
        "alg": "EdDSA",
    }
    assert key["kid"] == receipt["kid"]
    public = Ed25519PublicKey.from_public_bytes(receipts.b64url_decode(key["x"], 32))
    unsigned = {k: v for k, v in receipt.items() if k != "signature"}
    public.verify(receipts.b64url_decode(receipt["signature"], 64), rfc8785.dumps(unsigned))

    path = tmp_path / "receipt.json"
    path.write_bytes(data)
    result = verify_cli(stack, path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{sent.reference} received {receipt['received_at']}"

    async with client(stack) as someone:  # no login, no cookies: only the receipt
        status, page = await check_page(someone, text)
    assert status == 200 and "This receipt is genuine" in page
    assert sent.reference in page and words not in page
    assert words not in stack.logs()


async def test_a_changed_byte_or_another_key_never_verifies(
    stack: Stack, db: asyncpg.Connection, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    sent = await reporter_submits(http, "A light is out in the stairwell", wants_replies=False)
    data = await download(http, sent.page)
    keys = receipts.keys_for(stack.settings)
    assert receipts.verify(keys, data).reference == sent.reference

    # Every single changed byte fails, wherever it is.
    for index in range(len(data)):
        flipped = bytearray(data)
        flipped[index] ^= 0x01
        with pytest.raises(ReceiptInvalid):
            receipts.verify(keys, bytes(flipped))

    at = data.index(b'"reference":"R-') + len('"reference":"R-')
    changed = data[:at] + (b"A" if data[at : at + 1] != b"A" else b"B") + data[at + 1 :]
    (tmp_path / "changed.json").write_bytes(changed)
    one_line_failure(verify_cli(stack, tmp_path / "changed.json"), "signature does not match")
    status, page = await check_page(http, changed.decode())
    assert status == 422 and "This receipt is not genuine" in page
    assert html.main_form(page).fields["receipt"] == changed.decode()  # kept what was pasted

    # The same words signed by a key that is not the service's.
    impostor = receipts.ReceiptKeys.from_seed(secrets.token_bytes(32))
    forged = receipts.report_receipt(
        impostor,
        reference=sent.reference or "",
        received_at=datetime.now(UTC),
        commitment=secrets.token_bytes(32),
    )
    (tmp_path / "forged.json").write_bytes(forged)
    one_line_failure(verify_cli(stack, tmp_path / "forged.json"), "key this service does not know")
    status, page = await check_page(http, forged.decode())
    assert status == 422 and "not signed by this service" in page
    # ... and the impostor's kid in our receipt: the signature is what fails.
    swapped = dict(json.loads(forged), kid=json.loads(data)["kid"])
    (tmp_path / "swapped.json").write_bytes(rfc8785.dumps(swapped))
    one_line_failure(verify_cli(stack, tmp_path / "swapped.json"), "signature does not match")

    # Not a receipt at all, or no file: one line, status 1; no FILE: a usage error.
    for name, content in (("broken.json", b'{"v": 1, "kid"'), ("list.json", b"[1, 2]")):
        (tmp_path / name).write_bytes(content)
        one_line_failure(verify_cli(stack, tmp_path / name), "not a receipt")
        status, page = await check_page(http, content.decode())
        assert status == 422 and "This is not a receipt" in page
    one_line_failure(verify_cli(stack, tmp_path / "absent.json"), "cannot read")
    usage = subprocess.run(
        [sys.executable, "-m", "confide.cli", "receipt", "verify"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=stack.env,
        timeout=60,
        check=False,
    )
    assert usage.returncode == 2 and len(usage.stderr.strip().splitlines()) == 1
    status, page = await check_page(http, "")
    assert status == 422 and "Paste the text of your receipt" in page

    # A forged or expired submit token, a genuine one that sent nothing, or neither and no
    # draft (this browser's confirmation ended): no receipt, and a page that says why.
    unused = new_form_token(stack.settings, SUBMIT_PURPOSE)
    http.cookie_jar.clear()
    for fields in ({"form_token": "R-00000000.x.y"}, {"form_token": unused}, {}):
        async with http.post("/receipt.json", data=fields) as resp:
            assert resp.status == 403, fields
            assert "receipt link has expired" in await resp.text()


async def test_a_receipt_signed_by_a_retired_key_still_verifies(
    stack: Stack, db: asyncpg.Connection, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    sent = await reporter_submits(http, "The side gate does not lock")
    data = await download(http, sent.page)
    (tmp_path / "receipt.json").write_bytes(data)
    old = receipts.ReceiptKeys.from_seed(seed_of(stack))
    old_public = base64.b64encode(old.signing.public_key().public_bytes_raw()).decode()
    rotated = {
        "CONFIDE_RECEIPT_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "CONFIDE_RECEIPT_RETIRED_KEYS": old_public,
    }

    result = verify_cli(stack, tmp_path / "receipt.json", **rotated)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{sent.reference} received ")
    # Without the retired key listed, the old receipt's key is unknown.
    alone = {"CONFIDE_RECEIPT_KEY": rotated["CONFIDE_RECEIPT_KEY"]}
    one_line_failure(verify_cli(stack, tmp_path / "receipt.json", **alone), "does not know")

    _, base = stack.start_web("web-rotated-receipts", **rotated)
    async with aiohttp.ClientSession(base_url=base) as other:
        async with other.get("/.well-known/confide-receipt-key") as resp:
            kids = [k["kid"] for k in (await resp.json())["keys"]]
        assert kids == [receipts.keys_for(Settings.from_env({**stack.env, **rotated})).kid, old.kid]
        status, page = await check_page(other, data.decode())
        assert status == 200 and "This receipt is genuine" in page
        assert "earlier key" in page


async def test_caseworker_tamper_check_finds_an_altered_report_and_is_audited(
    stack: Stack, db: asyncpg.Connection, http: aiohttp.ClientSession, caseworker: StaffAccount
) -> None:
    sent = await reporter_submits(http, "Wet floor sign missing by the lifts")
    receipt = (await download(http, sent.page)).decode()
    other = await reporter_submits(http, "A second, separate report")
    other_receipt = (await download(http, other.page)).decode()
    # The first confirmation, left in this browser's history, no longer offers a receipt: the
    # draft now confirms the second report, and never hands out the wrong one.
    form = next(f for f in html.forms(sent.page) if f.action == "/receipt.json")
    async with http.post(form.action, data=form.fields) as resp:
        assert resp.status == 403 and "receipt link has expired" in await resp.text()
    assert sent.reference
    thread_id = await db.fetchval("SELECT id FROM threads WHERE reference = $1", sent.reference)

    async with client(stack) as staff:
        await staff_logs_in(staff, caseworker.email, caseworker.password)
        status, page = await staff_acts(staff, sent.reference, "receipt", receipt=receipt)
        assert status == 200 and "The receipt matches." in page
        status, page = await staff_acts(staff, sent.reference, "receipt", receipt=other_receipt)
        assert status == 200 and "This receipt is for another report." in page
        assert other.reference and other.reference not in page

        # Someone with database access rewrites the report, sealed properly for its row.
        await db.execute(
            "UPDATE threads SET description = $2 WHERE id = $1",
            thread_id,
            stack.keyring.seal("Nothing happened", f"threads.description:{thread_id}"),
        )
        page = await form_page(staff, f"/staff/threads/{sent.reference}")
        assert "Nothing happened" in page  # the page itself cannot tell
        status, page = await staff_acts(staff, sent.reference, "receipt", receipt=receipt)
        assert status == 200 and "The receipt does not match" in page

        status, page = await staff_acts(staff, sent.reference, "receipt", receipt="{}")
        assert status == 422 and "This is not a receipt" in html.text(page)

    rows = await db.fetch(
        "SELECT thread_id, staff_id, detail FROM audit_log WHERE action = 'receipt_check' "
        "ORDER BY at, id"
    )
    results = [json.loads(r["detail"])["result"] for r in rows]
    assert results == ["matches", "other_report", "does_not_match", "invalid"]
    assert {r["thread_id"] for r in rows} == {thread_id} and None not in {
        r["staff_id"] for r in rows
    }
    assert all(receipt not in r["detail"] for r in rows)


async def test_message_receipts_prove_a_message_and_notice_a_change(
    stack: Stack,
    db: asyncpg.Connection,
    http: aiohttp.ClientSession,
    caseworker: StaffAccount,
    tmp_path: Path,
) -> None:
    words = canary("message")
    sent = await reporter_submits(http, "Someone keeps propping the fire door open")
    assert sent.code and sent.reference
    status, page = await reporter_logs_in(http, sent.code)
    assert status == 200
    status, page = await reporter_sends(http, f"It happened again today. {words}")
    assert status == 200 and "Download a receipt for your report" in page
    message_id = await db.fetchval("SELECT id FROM messages WHERE author = 'reporter'")
    assert f"/messages/receipt.json?message={message_id}" in page

    async with http.get("/messages/receipt.json") as resp:
        assert resp.status == 200
        report_receipt = await resp.read()
    assert json.loads(report_receipt)["reference"] == sent.reference
    async with http.get(f"/messages/receipt.json?message={message_id}") as resp:
        assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
        data = await resp.read()
    receipt = json.loads(data)
    assert receipt["kind"] == "message" and receipt["message"] == str(message_id)
    assert receipt["reference"] == sent.reference and set(receipt) == {
        "v",
        "kid",
        "kind",
        "reference",
        "message",
        "sent_at",
        "commitment",
        "signature",
    }
    assert not leaks.hits(data.decode(), {"message": words})
    (tmp_path / "message.json").write_bytes(data)
    result = verify_cli(stack, tmp_path / "message.json")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{sent.reference} message sent {receipt['sent_at']}"
    for wrong in ("not-a-uuid", str(secrets.token_hex(16))):
        async with http.get(f"/messages/receipt.json?message={wrong}") as resp:
            assert resp.status == 404

    async with client(stack) as staff:
        await staff_logs_in(staff, caseworker.email, caseworker.password)
        status, page = await staff_acts(staff, sent.reference, "receipt", receipt=data.decode())
        assert "The receipt matches." in page
        await db.execute(
            "UPDATE messages SET body = $2 WHERE id = $1",
            message_id,
            stack.keyring.seal("It is fine now", f"messages.body:{message_id}"),
        )
        status, page = await staff_acts(staff, sent.reference, "receipt", receipt=data.decode())
        assert "The receipt does not match" in page
        await db.execute("DELETE FROM messages WHERE id = $1", message_id)
        status, page = await staff_acts(staff, sent.reference, "receipt", receipt=data.decode())
        assert "The receipt does not match" in page  # a message removed is a change too


async def test_caseworker_of_another_team_cannot_run_the_tamper_check(
    stack: Stack, db: asyncpg.Connection, http: aiohttp.ClientSession
) -> None:
    sent = await reporter_submits(http, "Cables across the corridor", category="safety")
    receipt = (await download(http, sent.page)).decode()
    harper = add_staff(stack, "harper@example.org", "hr")
    ops = add_staff(stack, "olly@example.org", "", role="ops")
    async with client(stack) as staff:
        await staff_logs_in(staff, harper.email, harper.password)
        inbox = await form_page(staff, "/staff")
        form = next(f for f in html.forms(inbox) if f.action == "/staff/logout")
        token = form.fields["csrf_token"]
        action = f"/staff/threads/{sent.reference}/receipt"
        status, page = await post(staff, action, {"csrf_token": token, "receipt": receipt})
        assert status == 404 and "The receipt" not in page
    async with client(stack) as staff:
        await staff_logs_in(staff, ops.email, ops.password)
        page = await form_page(staff, "/ops")
        form = next(f for f in html.forms(page) if f.action == "/staff/logout")
        status, _ = await post(
            staff, action, {"csrf_token": form.fields["csrf_token"], "receipt": receipt}
        )
        assert status == 403
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'receipt_check'") == 0


@pytest.mark.parametrize("js", [True, False], ids=["javascript-on", "javascript-off"])
async def test_reporter_downloads_a_receipt_and_checks_it_in_a_real_browser(
    stack: Stack,
    browser: Browser,  # noqa: F811  (the fixture of tests/test_browser.py)
    db: asyncpg.Connection,
    js: bool,
) -> None:
    auditor = Auditor(browser, stack.base_url)
    context = await on_a_phone(browser, stack.base_url, js)
    page = await context.new_page()
    try:
        await send_a_safety_report_with_follow_up(page)
        reference = (await page.inner_text(".reference")).strip()
        async with page.expect_download() as download_info:
            await page.click("button:has-text('Download a receipt')")
        download = await download_info.value
        saved = stack.artifacts / f"receipt-{'js' if js else 'nojs'}.json"
        await download.save_as(str(saved))
        data = saved.read_text()
        assert json.loads(data)["reference"] == reference

        await page.click("main >> text=Check a receipt")
        assert (await page.title()).startswith("Check a receipt")
        await auditor.check(page, js)
        await page.fill("#receipt", data.replace(reference, "R-00000000"))
        await page.click("button:has-text('Check the receipt')")
        assert (await page.title()).startswith("Error:")
        assert "This receipt is not genuine" in await page.inner_text(".error-summary")
        await auditor.check(page, js)
        await page.fill("#receipt", data)
        await page.click("button:has-text('Check the receipt')")
        main = await page.inner_text("main")
        assert "This receipt is genuine" in main and reference in main
        await auditor.check(page, js)
    finally:
        await context.close()


# --- The parts, without the stack --------------------------------------------------------------


TEXT = st.text(st.characters(codec="utf-8"), max_size=200)


@given(
    description=TEXT,
    occurred=st.none() | TEXT,
    name=st.none() | TEXT,
    anonymous=st.booleans(),
)
def test_the_committed_forms_are_rfc8785(
    description: str, occurred: str | None, name: str | None, anonymous: bool
) -> None:
    contact: dict[str, Any] = {"name": name, "email": "a@example.org", "phone": None}
    report = receipts.canonical_report(
        category="safety",
        description=description,
        occurred=occurred,
        location=None,
        anonymous=anonymous,
        follow_up=not anonymous,
        contact=contact,
        attachments=["0" * 64],
    )
    assert report == rfc8785.dumps(json.loads(report))
    message = receipts.canonical_message(description)
    assert message == rfc8785.dumps({"attachments": [], "body": description})


def test_production_needs_a_receipt_key_of_32_bytes(tmp_path: Path) -> None:
    base = {
        "CONFIDE_DATA_DIR": str(tmp_path),
        "CONFIDE_ENV": "production",
        "CONFIDE_ENCRYPTION_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode(),
        "CONFIDE_LOOKUP_KEY": secrets.token_urlsafe(32),
        "CONFIDE_CODE_PEPPER": secrets.token_urlsafe(32),
        "CONFIDE_SESSION_KEY": secrets.token_urlsafe(32),
        "CONFIDE_BASE_URL": "https://report.example.org",
    }
    with pytest.raises(ConfigError, match=r"^CONFIDE_RECEIPT_KEY is not set"):
        Settings.from_env(base)
    for short in (base64.b64encode(os.urandom(31)).decode(), "not base64 at all"):
        with pytest.raises(ConfigError, match=r"^CONFIDE_RECEIPT_KEY must be the base64"):
            Settings.from_env({**base, "CONFIDE_RECEIPT_KEY": short})
    seed = base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(ConfigError, match=r"^CONFIDE_RECEIPT_RETIRED_KEYS must be"):
        Settings.from_env(
            {**base, "CONFIDE_RECEIPT_KEY": seed, "CONFIDE_RECEIPT_RETIRED_KEYS": "abc"}
        )
    assert Settings.from_env({**base, "CONFIDE_RECEIPT_KEY": seed}).receipt_key.get() == seed
    development = Settings.from_env({"CONFIDE_DATA_DIR": str(tmp_path / "dev")})
    assert "CONFIDE_RECEIPT_KEY" in development.generated_keys
    assert len(base64.b64decode(development.receipt_key.get())) == 32
