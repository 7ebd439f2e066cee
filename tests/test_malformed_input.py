"""Input that once made Confide answer 500 (issue 12, finding 11), replayed: a lone surrogate in
JSON or a form, a 5,000-digit integer, and non-ASCII bytes in credentials. Each gets a clear 4xx,
and the genuine request beside it still works."""

from __future__ import annotations

import json
import socket
from typing import Any

import aiohttp
import asyncpg
import requests

from tests.conftest import Stack, StaffAccount, add_staff
from tests.journeys import reporter_logs_in, staff_logs_in

SURROGATE = '"\\ud800"'  # JSON text of a lone high surrogate: no Unicode character at all
HUGE = "9" * 5000  # past Python's int-string conversion limit (4,300 digits)
REPORT = {"category": "safety", "description": "Broken handrail", "anonymous": True}


def post_json_text(base: str, path: str, text: str, token: str | None = None) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(base + path, data=text.encode(), headers=headers, timeout=30)


def assert_problem(response: requests.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["status"] == response.status_code and problem["title"]
    assert "Traceback" not in response.text
    return problem


def report_text(description: str = '"Broken handrail"', follow_up: str = "true") -> str:
    return (
        f'{{"category": "safety", "description": {description}, "anonymous": true, '
        f'"follow_up": {follow_up}}}'
    )


def staff_token(stack: Stack, account: StaffAccount) -> str:
    answer = requests.post(
        stack.base_url + "/api/v1/staff/session",
        json={"email": account.email, "password": account.password},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["token"]
    return token


async def test_reporter_cannot_crash_a_report_with_a_lone_surrogate(
    stack: Stack, db: asyncpg.Connection
) -> None:
    base = stack.base_url
    for text in (
        report_text(SURROGATE),
        report_text('"Broken \\udc00 handrail"'),
        report_text('"\\ud800\\u0041"'),  # a high surrogate followed by no low one
        report_text().replace('"safety"', SURROGATE),
        '{"category": "safety", "description": "x", "anonymous": false, "follow_up": false, '
        '"contact": {"name": "\\udfff", "email": "a@example.org"}}',
        '{"\\ud800": 1, ' + report_text()[1:],  # in a key
    ):
        problem = assert_problem(post_json_text(base, "/api/v1/reports", text), 400)
        assert "Unicode" in problem["detail"]
    assert await db.fetchval("SELECT count(*) FROM threads") == 0
    # A genuine surrogate pair is one character (an emoji), and is accepted as typed.
    genuine = post_json_text(base, "/api/v1/reports", report_text('"Trip hazard \\ud83d\\ude00"'))
    assert genuine.status_code == 201, genuine.text
    session = requests.post(
        base + "/api/v1/reporter/session", json={"code": genuine.json()["code"]}, timeout=30
    ).json()["token"]
    thread = requests.get(
        base + "/api/v1/reporter/thread",
        headers={"Authorization": f"Bearer {session}"},
        timeout=30,
    ).json()
    assert thread["description"] == "Trip hazard \U0001f600"


async def test_reporter_cannot_crash_messages_with_a_lone_surrogate(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    base = stack.base_url
    receipt = post_json_text(base, "/api/v1/reports", report_text()).json()
    token = requests.post(
        base + "/api/v1/reporter/session", json={"code": receipt["code"]}, timeout=30
    ).json()["token"]
    assert_problem(
        post_json_text(base, "/api/v1/reporter/messages", f'{{"body": {SURROGATE}}}', token), 400
    )
    assert_problem(
        post_json_text(base, "/api/v1/reporter/session", f'{{"code": {SURROGATE}}}'), 400
    )
    # The HTML form: a surrogate percent-encoded, and one in a multipart part.
    status, _ = await reporter_logs_in(http, receipt["code"])
    assert status == 200
    async with http.post(
        "/messages",
        data=b"body=%ED%A0%80",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as resp:
        assert resp.status == 400, resp.status
        assert '<main id="main"' in await resp.text()
    # A multipart part in UTF-7, whose decoder yields a lone surrogate for "+2AA-".
    multipart = (
        b"--xyz\r\nContent-Disposition: form-data; name=body\r\n"
        b"Content-Type: text/plain; charset=utf-7\r\n\r\n+2AA-\r\n--xyz--\r\n"
    )
    async with http.post(
        "/messages", data=multipart, headers={"Content-Type": "multipart/form-data; boundary=xyz"}
    ) as resp:
        assert resp.status == 400, resp.status
        assert '<main id="main"' in await resp.text()
    sent = post_json_text(base, "/api/v1/reporter/messages", '{"body": "Any news?"}', token)
    assert sent.status_code == 201, sent.text


async def test_staff_cannot_crash_login_or_notes_with_a_lone_surrogate(
    stack: Stack, db: asyncpg.Connection
) -> None:
    base = stack.base_url
    account = add_staff(stack, "sam@example.org", "safety")
    for text in (
        f'{{"email": {SURROGATE}, "password": "x"}}',
        f'{{"email": "sam@example.org", "password": {SURROGATE}}}',
    ):
        assert_problem(post_json_text(base, "/api/v1/staff/session", text), 400)
    token = staff_token(stack, account)
    reference = post_json_text(base, "/api/v1/reports", report_text()).json()["reference"]
    for action in ("notes", "messages"):
        assert_problem(
            post_json_text(
                base,
                f"/api/v1/staff/threads/{reference}/{action}",
                f'{{"body": {SURROGATE}}}',
                token,
            ),
            400,
        )
    note = post_json_text(
        base, f"/api/v1/staff/threads/{reference}/notes", '{"body": "Called facilities"}', token
    )
    assert note.status_code == 201, note.text


async def test_client_cannot_crash_confide_with_a_five_thousand_digit_integer(
    stack: Stack, db: asyncpg.Connection, http: aiohttp.ClientSession
) -> None:
    base = stack.base_url
    for text in (
        report_text().replace('"safety"', HUGE),
        report_text(follow_up=HUGE),
        report_text(follow_up=f"-{HUGE}"),
        report_text(follow_up=f"1{HUGE}e5"),  # a huge float's digits too
        HUGE,
    ):
        assert_problem(post_json_text(base, "/api/v1/reports", text), 400, 422)
    assert_problem(post_json_text(base, "/api/v1/reporter/session", f'{{"code": {HUGE}}}'), 400)
    account = add_staff(stack, "sam@example.org", "safety")
    assert_problem(
        post_json_text(base, "/api/v1/staff/session", f'{{"email": {HUGE}, "password": 1}}'),
        400,
        422,
    )
    token = staff_token(stack, account)
    listing = requests.get(
        base + f"/api/v1/staff/threads?page={HUGE}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert_problem(listing, 422)
    # Forms: a huge number where a choice or a page is expected.
    async with http.post("/report", data={"how": HUGE}) as resp:
        assert resp.status < 500 and '<main id="main"' in await resp.text(), resp.status
    status, _ = await staff_logs_in(http, account.email, account.password)
    assert status == 200
    async with http.get(f"/staff?page={HUGE}") as resp:
        assert resp.status == 200, resp.status
    assert post_json_text(base, "/api/v1/reports", report_text()).status_code == 201


def raw_get(port: int, path: str, headers: bytes) -> tuple[int, bytes]:
    request = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers
    request += b"Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_client_cannot_crash_metrics_or_the_api_with_a_non_ascii_token(
    stack: Stack, db: asyncpg.Connection
) -> None:
    _, base = stack.start_web("web-metrics-token", CONFIDE_METRICS_TOKEN="s3cret-metrics-token")
    port = int(base.rsplit(":", 1)[1])
    for value in ("Bearer é".encode("latin-1"), "Bearer é€".encode(), b"Bearer \xff\xfe", b"\xff"):
        status, body = raw_get(port, "/metrics", b"Authorization: " + value + b"\r\n")
        assert status == 401, (value, status, body[:300])
        assert b"Traceback" not in body
        for path in ("/api/v1/staff/threads", "/api/v1/reporter/thread"):
            status, body = raw_get(port, path, b"Authorization: " + value + b"\r\n")
            assert status == 401, (path, value, status, body[:300])
            assert json.loads(body)["status"] == 401
    wrong = requests.get(
        base + "/metrics", headers={"Authorization": "Bearer not-the-token"}, timeout=30
    )
    assert wrong.status_code == 401
    right = requests.get(
        base + "/metrics", headers={"Authorization": "Bearer s3cret-metrics-token"}, timeout=30
    )
    assert right.status_code == 200 and "confide_threads_overdue" in right.text


async def test_forged_origin_and_csrf_values_in_non_ascii_are_refused_not_crashed(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    port = int(stack.base_url.rsplit(":", 1)[1])
    body = b"code=0000-0000-0000-0000"
    request = (
        b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://\xc3\xa9vil.example\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert int(data.split()[1]) == 403, data[:300]
    # A cookie session's form with a non-ASCII CSRF token.
    receipt = post_json_text(stack.base_url, "/api/v1/reports", report_text()).json()
    status, _ = await reporter_logs_in(http, receipt["code"])
    assert status == 200
    async with http.post("/messages", data={"body": "Hello", "csrf_token": "é€"}) as resp:
        assert resp.status == 403, resp.status
        assert '<main id="main"' in await resp.text()
