"""Reporters submit a report and receive their one-time code (issue 3)."""

from __future__ import annotations

import asyncio
import io
import json
import re
import secrets
from uuid import UUID

import aiohttp
import asyncpg

from confide import codes
from confide.services.reports import field_context
from tests import html, leaks
from tests.conftest import Proc, Stack
from tests.journeys import post, reach_check_answers, reporter_submits, send_report


def canary(label: str) -> str:
    return f"CANARY{label.upper()}{secrets.token_hex(6).upper()}"


async def code_works(db: asyncpg.Connection, stack: Stack, code: str) -> bool:
    """What a login will do: find the row by the lookup HMAC, verify the argon2id verifier."""
    parts = codes.split(stack.settings, codes.normalise(code))
    row = await db.fetchrow(
        "SELECT verifier FROM reporter_codes WHERE lookup_hmac = $1", parts.lookup_hmac
    )
    if row is None or row["verifier"] is None:
        return False
    return codes.check_verifier(codes.hasher(stack.settings), row["verifier"], parts.prehash)


async def test_reporter_can_report_anonymously_and_leaves_no_trace(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    words = canary("report")
    place = canary("place")
    sent = await reporter_submits(
        http,
        f"Broken fire door on level 2. {words}",
        location=f"Library {place}",
        wants_replies=True,
    )

    assert sent.status == 200
    assert sent.reference and sent.reference.startswith("R-")
    assert sent.code is not None
    assert len(sent.code) == 19 and sent.code.count("-") == 3
    assert "cannot be recovered" in sent.page
    assert "Log in now" in sent.page
    assert sent.code not in (sent.check_form.action or "")
    # The code works: its verifier is committed, and it checks out.
    assert await code_works(db, stack, sent.code)
    assert await db.fetchval("SELECT count(*) FROM threads") == 1
    row = await db.fetchrow("SELECT * FROM threads")
    assert row["anonymous"] and row["follow_up"] and row["contact"] is None
    # Stored encrypted: ciphertext in PostgreSQL that opens only with the key and its row.
    assert words.encode() not in bytes(row["description"])
    opened = stack.keyring.thread_key(row["id"], row["data_key"]).open(
        row["description"], field_context(row["id"], "description")
    )
    assert words in opened

    await asyncio.sleep(0.5)  # let the worker finish writing its log line
    server_major = int(await db.fetchval("SHOW server_version_num")) // 10000
    sinks = {
        "pg_dump": leaks.pg_dump(stack.env["DATABASE_URL"], server_major),
        "redis": leaks.redis_dump(stack.env["REDIS_URL"]),
        "web log": stack.web.log_text(),
        "worker log": stack.worker.log_text(),
        "beat log": stack.beat.log_text(),
    }
    secrets_ = {
        "report text": words,
        "location": place,
        "code": sent.code,
        "code secret": sent.code.replace("-", "")[6:],
    }
    for sink, content in sinks.items():
        assert content, f"{sink} is empty: the scan would prove nothing"
        assert leaks.hits(content, secrets_) == [], f"found in {sink}"
    # Positive control: the scan does find a planted canary in each kind of sink.
    assert leaks.hits(sinks["pg_dump"] + words, secrets_) == ["report text"]
    assert "127.0.0.1" not in sinks["web log"]


async def test_reporter_with_contact_details_is_stored_encrypted(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    email = f"{canary('mail').lower()}@example.org"
    sent = await reporter_submits(
        http,
        "Repeated comments in team meetings",
        anonymous=False,
        category="discrimination",
        name="Sam Doe",
        email=email,
        phone="07700 900982",
    )
    assert sent.status == 200 and sent.reference
    assert sent.code is None
    row = await db.fetchrow("SELECT * FROM threads")
    assert not row["anonymous"] and not row["follow_up"]
    contact = json.loads(
        stack.keyring.thread_key(row["id"], row["data_key"]).open(
            row["contact"], field_context(row["id"], "contact")
        )
    )
    assert contact == {"name": "Sam Doe", "email": email, "phone": "+447700900982"}
    assert await db.fetchval("SELECT count(*) FROM reporter_codes") == 0
    server_major = int(await db.fetchval("SHOW server_version_num")) // 10000
    dump = leaks.pg_dump(stack.env["DATABASE_URL"], server_major)
    assert leaks.hits(dump, {"email": email, "phone": "+447700900982"}) == []


async def test_reporter_sees_readable_errors_for_email_and_phone(
    http: aiohttp.ClientSession,
) -> None:
    async with http.get("/report") as resp:
        page = await resp.text()
    for answers in (
        {"how": "contact"},
        {"category": "harassment"},
        {"description": "x"},
        {"occurred": ""},
        {"location": ""},
    ):
        status, page = await post(http, "/report", html.main_form(page).data(**answers))
    form = html.main_form(page)
    status, page = await post(
        http, "/report", form.data(contact_email="not-an-address@", contact_phone="12")
    )

    assert status == 422
    assert html.title(page).startswith("Error:")
    text = html.text(page)
    assert "There is a problem" in text
    assert "Enter an email address in the correct format" in text
    assert "Enter a UK phone number" in text
    assert 'href="#contact_email"' in page and 'href="#contact_phone"' in page
    assert 'aria-describedby="contact_email-error"' in page
    # What the reporter typed is kept.
    assert 'value="not-an-address@"' in page and 'value="12"' in page

    # Neither given: one clear message.
    status, page = await post(http, "/report", form.data())
    assert status == 422
    assert "Enter an email address or a phone number" in html.text(page)


async def test_api_client_gets_422_with_errors_for_bad_contact_details(
    http: aiohttp.ClientSession,
) -> None:
    async with http.post(
        "/api/v1/reports",
        json={
            "category": "safety",
            "description": "Loose cable",
            "anonymous": False,
            "contact": {"email": "nope", "phone": "abc"},
        },
    ) as resp:
        assert resp.status == 422
        assert resp.content_type == "application/problem+json"
        body = await resp.json()
    assert body["status"] == 422 and body["title"]
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"contact.email", "contact.phone"}

    async with http.post(
        "/api/v1/reports",
        json={
            "category": "safety",
            "description": "x",
            "anonymous": True,
            "contact": {"email": "a@example.org"},
        },
    ) as resp:
        assert resp.status == 422
        assert {e["field"] for e in (await resp.json())["errors"]} == {"contact"}

    async with http.post(
        "/api/v1/reports",
        json={
            "category": "safety",
            "description": "x",
            "anonymous": False,
            "follow_up": True,
            "contact": {"phone": "+44 7700 900982"},
        },
    ) as resp:
        assert resp.status == 422
        assert "follow_up" in {e["field"] for e in (await resp.json())["errors"]}


async def test_api_reporter_gets_a_reference_and_a_working_code(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    async with http.get("/api/v1/categories") as resp:
        categories = await resp.json()
    assert {"id": "safety", "name": "A safety concern on site"} in categories
    async with http.post(
        "/api/v1/reports",
        json={
            "category": "safety",
            "description": "Wet floor, no sign",
            "anonymous": True,
            "follow_up": True,
        },
    ) as resp:
        assert resp.status == 201
        body = await resp.json()
    assert body["reference"].startswith("R-") and len(body["reference"]) == 10
    assert "reply_due_by" in body
    assert await code_works(db, stack, body["code"])
    # Lower case, spaces and look-alike letters still work (CONTRACTS §2 input rules).
    typed = body["code"].lower().replace("-", " ").replace("0", "o").replace("1", "l")
    assert await code_works(db, stack, typed)

    async with http.post(
        "/api/v1/reports",
        json={
            "category": "safety",
            "description": "No follow-up",
            "anonymous": True,
            "follow_up": False,
        },
    ) as resp:
        assert resp.status == 201
        assert (await resp.json())["code"] is None


async def test_report_is_saved_and_its_code_works_while_every_worker_is_stopped(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection, worker: Proc
) -> None:
    worker.stop()
    async with http.post(
        "/api/v1/reports",
        json={
            "category": "harassment",
            "description": "Sent while workers are down",
            "anonymous": True,
            "follow_up": True,
        },
    ) as resp:
        assert resp.status == 201
        body = await resp.json()
    assert await code_works(db, stack, body["code"])
    assert "hashing_fallback" in stack.web.log_text()

    sent = await reporter_submits(http, "HTML form while workers are down")
    assert sent.code is not None and await code_works(db, stack, sent.code)


async def test_double_submitted_form_creates_one_report(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    check = await reach_check_answers(http, description="Double click on send")
    first, second = await asyncio.gather(send_report(http, check), send_report(http, check))

    assert await db.fetchval("SELECT count(*) FROM threads") == 1
    assert first.reference == second.reference
    third = await send_report(http, check)  # a later retry, e.g. the browser's refresh
    assert third.reference == first.reference
    assert await db.fetchval("SELECT count(*) FROM threads") == 1
    # Every code ever shown works: a retry adds a code (at most 3), never replaces one. The
    # later retry finds the confirmation in the draft and shows its code again, never a new one.
    assert third.code is not None and third.code in {first.code, second.code}
    shown = [s.code for s in (first, second, third) if s.code is not None]
    for code in shown:
        assert await code_works(db, stack, code)
    assert await db.fetchval("SELECT count(*) FROM reporter_codes") <= 3


async def test_api_retry_with_the_same_idempotency_key_returns_the_same_reference(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    report = {"category": "safety", "description": "Retried", "anonymous": True, "follow_up": True}
    headers = {"Idempotency-Key": secrets.token_hex(16)}
    async with http.post("/api/v1/reports", json=report, headers=headers) as resp:
        assert resp.status == 201
        first = await resp.json()
    async with http.post("/api/v1/reports", json=report, headers=headers) as resp:
        assert resp.status == 200
        again = await resp.json()
    assert again["reference"] == first["reference"]
    assert await db.fetchval("SELECT count(*) FROM threads") == 1
    # The retry's additional code works, and the first code was never stopped (CONTRACTS §2).
    assert await code_works(db, stack, again["code"])
    assert await code_works(db, stack, first["code"])


async def test_reporter_answers_are_kept_through_change_links_and_back(
    http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    check = await reach_check_answers(http, description="First words", location="Car park")
    form = html.main_form(check)
    assert ("change", "what", "/report") in form.buttons
    data = dict(form.fields, change="what")
    status, page = await post(http, "/report", data)
    assert status == 200 and "What happened?" in html.title(page)
    assert "First words" in page
    status, page = await post(
        http, "/report", html.main_form(page).data(description="Better words")
    )
    assert html.title(page).startswith("Check your answers")
    assert "Better words" in page and "Car park" in page
    # Nothing was stored before sending.
    assert await db.fetchval("SELECT count(*) FROM threads") == 0


async def test_hostile_input_gets_escaped_and_clear_answers(
    http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    script = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    check = await reach_check_answers(http, description=script, location=script)
    assert "<script>alert" not in check
    assert "&lt;script&gt;" in check
    sent = await send_report(http, check)
    assert sent.status == 200

    async def expect(resp: aiohttp.ClientResponse, status: int) -> str:
        body = await resp.text()
        assert resp.status == status, (resp.status, body[:300])
        assert "Traceback" not in body and 'File "' not in body
        return body

    big = io.BytesIO(b"step=what&description=" + b"a" * (3 * 1024 * 1024))
    async with http.post(
        "/report", data=big, headers={"Content-Type": "application/x-www-form-urlencoded"}
    ) as resp:
        body = await expect(resp, 413)
        assert "1 MiB" in body
    async with http.post(
        "/api/v1/reports",
        data=io.BytesIO(b"{" + b"x" * (3 * 1024 * 1024)),
        headers={"Content-Type": "application/json"},
    ) as resp:
        await expect(resp, 413)
        assert resp.content_type == "application/problem+json"
    async with http.post(
        "/api/v1/reports",
        data="category=safety",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as resp:
        await expect(resp, 415)
    async with http.post("/report", data=b"{}", headers={"Content-Type": "text/plain"}) as resp:
        await expect(resp, 415)
    async with http.post(
        "/report",
        data=b"step=what&description=%ff%fe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as resp:
        await expect(resp, 400)
    async with http.post(
        "/api/v1/reports",
        data=b'{"description": "\xff"}',
        headers={"Content-Type": "application/json"},
    ) as resp:
        await expect(resp, 400)
    async with http.post(
        "/api/v1/reports", data=b'{"description": ', headers={"Content-Type": "application/json"}
    ) as resp:
        await expect(resp, 400)
    async with http.post("/api/v1/reports", json=["not", "an", "object"]) as resp:
        await expect(resp, 422)
    async with http.post(
        "/api/v1/reports",
        json={
            "category": "safety",
            "description": "nul\x00byte",
            "anonymous": True,
            "location": "\x00",
            "occurred": 5,
        },
    ) as resp:
        body = await resp.json()
        assert resp.status == 422 and {e["field"] for e in body["errors"]} == {"occurred"}
    async with http.post("/report", data={"step": "what", "description": "\x00\x01"}) as resp:
        assert "Enter what happened" in await expect(resp, 422)
    async with http.post("/report", data={"step": "../../etc", "how": "x"}) as resp:
        await expect(resp, 200)
    async with http.get("/report/submit") as resp:
        await expect(resp, 405)
    async with http.get("/no/such/page%00") as resp:
        assert "Page not found" in await expect(resp, 404)
    http.cookie_jar.clear()  # cookies off: the answers ride in the form
    async with http.post(
        "/report/submit",
        data={
            "how": "anonymous",
            "category": "safety",
            "description": "x",
            "follow_up": "no",
            "form_token": "forged.1.x",
        },
    ) as resp:
        body = await expect(resp, 400)
        assert "not sent yet" in body
    async with http.post(
        "/report",
        data={"step": "how", "how": "anonymous"},
        headers={"Origin": "https://evil.example"},
    ) as resp:
        await expect(resp, 403)
    # Exactly one report came through all of that.
    assert await db.fetchval("SELECT count(*) FROM threads") == 1


async def test_flood_of_submissions_gets_429_with_retry_after(stack: Stack) -> None:
    _, base = stack.start_web(
        "web-limited",
        CONFIDE_SUBMIT_PER_CLIENT_PER_HOUR="3",
        CONFIDE_SUBMIT_GLOBAL_PER_MINUTE="1000",
    )
    report = {"category": "safety", "description": "flood", "anonymous": True}
    statuses = []
    async with aiohttp.ClientSession(base_url=base) as http:
        for _ in range(5):
            async with http.post("/api/v1/reports", json=report) as resp:
                statuses.append(resp.status)
                if resp.status == 429:
                    assert int(resp.headers["Retry-After"]) > 0
                    assert resp.content_type == "application/problem+json"
        check = await reach_check_answers(http, description="one more")
        sent = await send_report(http, check)
    assert statuses[:3] == [201, 201, 201] and statuses[3:] == [429, 429]
    # The form's reporter gets the check page again, with every answer, and is told to wait.
    assert sent.status == 429 and "has not been sent yet" in sent.page
    assert "one more" in sent.page and "Send report" in sent.page
    assert "Retry-After" not in sent.page


async def test_every_page_has_exit_999_notice_and_strict_headers(
    http: aiohttp.ClientSession,
) -> None:
    for path in ("/", "/report", "/login", "/accessibility", "/nope"):
        async with http.get(path) as resp:
            page = await resp.text()
            headers = resp.headers
        assert 'id="exit-this-page"' in page and 'rel="nofollow noreferrer"' in page
        assert "call 999" in page
        if path == "/":
            assert page.count("call 999") == 1  # in <main>, not in the banner as well
        assert '<main id="main"' in page and 'href="#main"' in page
        assert 'name="robots" content="noindex' in page
        csp = headers["Content-Security-Policy"]
        for directive in (
            "base-uri 'none'",
            "object-src 'none'",
            "frame-ancestors 'none'",
            "script-src 'self'",
        ):
            assert directive in csp
        assert "unsafe-inline" not in csp
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-store"
    async with http.get("/static/app.css") as resp:
        assert resp.status == 200 and resp.headers["X-Content-Type-Options"] == "nosniff"
    async with http.get("/") as resp:
        page = await resp.text()
    assert "2 working days" in page and "Monday to Friday" in page
    # Nothing is loaded from another host; the only outside link is the neutral exit page.
    for url in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert url.startswith(("/", "#")) or url == "https://www.bbc.co.uk/weather", url


async def test_health_endpoints_name_no_hosts(http: aiohttp.ClientSession) -> None:
    async with http.get("/healthz") as resp:
        assert resp.status == 200 and await resp.json() == {"status": "ok"}
    async with http.get("/readyz") as resp:
        body = await resp.json()
    assert resp.status == 200
    assert set(body["checks"]) == {"postgres", "redis", "workers", "beat"}
    assert body["checks"]["postgres"] == "ok" and body["checks"]["redis"] == "ok"
    assert "127.0.0.1" not in json.dumps(body)
    async with http.get("/api/v1/openapi.json") as resp:
        spec = await resp.json()
    assert spec["openapi"].startswith("3.1") and "/api/v1/reports" in spec["paths"]


async def test_thread_ids_are_not_sequential_references(
    http: aiohttp.ClientSession, db: asyncpg.Connection
) -> None:
    refs = set()
    for _ in range(5):
        async with http.post(
            "/api/v1/reports",
            json={
                "category": "safety",
                "description": "ref",
                "anonymous": True,
            },
        ) as resp:
            refs.add((await resp.json())["reference"])
    assert len(refs) == 5
    rows = await db.fetch("SELECT id FROM threads")
    assert all(isinstance(r["id"], UUID) for r in rows)


async def test_malformed_http_gets_400_and_the_log_keeps_no_address(stack: Stack) -> None:
    host, port = stack.base_url.removeprefix("http://").split(":")
    for raw in (
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\n\r\n",
    ):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(raw)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), 10)
        writer.close()
        assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request"), answer[:80]
        assert b"Traceback" not in answer
    await asyncio.sleep(0.3)
    log = stack.web.log_text()
    assert "127.0.0.1" not in log and "peername" not in log
