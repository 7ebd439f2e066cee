"""Generated input never breaks Confide: no 5xx, no traceback, every 4xx a friendly page or
problem JSON (issue 7, short version for CI; `make chaos` runs many more examples)."""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis.core.errors import InvalidSchema
from schemathesis.core.result import Err, Ok
from schemathesis.schemas import APIOperation

from chaos.fuzz import (
    CONTENT_TYPES,
    HEADER_NAMES,
    HEADER_PATHS,
    JSON_PATHS,
    MALFORMED,
    PATHS,
    odd_header_request,
    odd_header_values,
    odd_json_bodies,
    post_json_text,
    post_raw,
    problems,
    raw_exchange,
)
from tests.conftest import Stack, add_staff

EXAMPLES = int(os.environ.get("CONFIDE_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)


def assert_clear_answer(response: Any) -> None:
    """No 5xx but 503, no traceback, every 4xx our HTML page or problem JSON (chaos.fuzz)."""
    found = problems(response)
    where = (response.status_code, getattr(response.request, "url", ""), response.text[:300])
    assert not found, (found, *where)


# Any: schemathesis leaves an operation's parameter, result and schema types open (its own code
# writes a bare APIOperation).
Operation = APIOperation[Any, Any, Any, Any]


def _operation(result: Ok[Operation] | Err[InvalidSchema]) -> Operation:
    """The operation, or the schema's error raised (``Err`` has no ``ok()``)."""
    if isinstance(result, Err):
        raise result.err()
    return result.ok()


def test_api_answers_generated_requests_clearly(stack: Stack) -> None:
    """schemathesis generates requests for every operation of our OpenAPI document."""
    api = schemathesis.openapi.from_url(f"{stack.base_url}/api/v1/openapi.json")
    operations = [_operation(result) for result in api.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy())
        def run(case: schemathesis.Case[Operation]) -> None:
            assert_clear_answer(case.call(timeout=30))

        run()


code_like = st.one_of(
    st.text(alphabet="0123456789ABCDEFGHJKMNPQRSTVWXYZabc-", min_size=0, max_size=20),
    st.sampled_from(
        [
            "",
            "0" * 15,
            "0" * 17,
            "X" * 10_000,
            "７ＱＫＭ２ＸＲＤ９ＨＷＢＴ４ＮＦ",
            "7QKM-2XRD-9HWB-T4N\x00",
            "../../etc/passwd",
            "%00",
        ]
    ),
)
any_text = st.one_of(
    st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))
)
content_types = st.sampled_from(CONTENT_TYPES)
paths = st.sampled_from(PATHS)


@given(path=paths, kind=content_types, body=st.binary(max_size=2000))
@FUZZ
def test_forms_and_api_answer_raw_bytes_clearly(
    stack: Stack, path: str, kind: str, body: bytes
) -> None:
    assert_clear_answer(post_raw(stack.base_url, path, kind, body))


@given(
    code=code_like,
    fields=st.dictionaries(
        st.sampled_from(
            [
                "code",
                "form_token",
                "pending_body",
                "pending_token",
                "step",
                "how",
                "category",
                "description",
                "contact_email",
                "contact_phone",
                "csrf_token",
                "body",
            ]
        ),
        any_text,
        max_size=6,
    ),
)
@FUZZ
def test_login_and_question_pages_answer_odd_input_clearly(
    stack: Stack, code: str, fields: dict[str, str]
) -> None:
    for path in ("/login", "/report", "/report/submit"):
        response = requests.post(
            stack.base_url + path, data={**fields, "code": code}, timeout=30, allow_redirects=False
        )
        assert_clear_answer(response)
    response = requests.post(
        stack.base_url + "/api/v1/reporter/session", json={"code": code}, timeout=30
    )
    assert response.status_code in (401, 422, 429), response.status_code
    assert_clear_answer(response)


@given(
    suffix=st.sampled_from(
        [
            "../",
            "..%2f",
            "%00",
            "%2e%2e/",
            "%ff",
            "~",
            "//",
            "\\..\\",
            "R-%00",
            "?q=%00",
            "static/../../pyproject.toml",
        ]
    )
)
@FUZZ
def test_odd_paths_answer_clearly(stack: Stack, suffix: str) -> None:
    for prefix in ("/", "/static/", "/staff/threads/", "/api/v1/staff/threads/"):
        response = requests.get(stack.base_url + prefix + suffix, timeout=30, allow_redirects=False)
        assert_clear_answer(response)
        assert not re.search(r"\[project\]|\[tool\.", response.text)  # no file outside static


@pytest.mark.parametrize("request_bytes", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_http_gets_our_page_and_headers_not_an_echo(
    stack: Stack, request_bytes: bytes
) -> None:
    """Requests aiohttp's parser rejects never reach a handler; they still get our 400 page, our
    security headers and no version, and nothing of what was sent comes back."""
    port = int(stack.base_url.rsplit(":", 1)[1])
    status, headers, body = raw_exchange(port, request_bytes.replace(b"CANARY", b"CanaryEcho"))
    assert status in (400, 413, 414, 431), (status, body[:200])
    assert headers["server"] == "Confide"
    assert "base-uri 'none'" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store"
    if headers["content-type"].startswith("application/problem+json"):
        assert json.loads(body)["status"] == status  # an /api/ path gets problem JSON
    else:
        assert headers["content-type"].startswith("text/html")
        assert b'<main id="main"' in body
    assert b"CanaryEcho" not in body


@pytest.fixture(scope="module")
def sessions(stack: Stack) -> Iterator[dict[str, str]]:
    """A staff and a reporter session and a real reference, so odd input reaches past the 401s;
    and a web with a metrics token, so /metrics compares the odd Authorization values."""
    account = add_staff(stack, f"fuzz-{secrets.token_hex(4)}@example.org", "safety")
    staff = requests.post(
        stack.base_url + "/api/v1/staff/session",
        json={"email": account.email, "password": account.password},
        timeout=30,
    ).json()["token"]
    receipt = requests.post(
        stack.base_url + "/api/v1/reports",
        json={"category": "safety", "description": "Fuzz", "anonymous": True, "follow_up": True},
        timeout=30,
    ).json()
    reporter = requests.post(
        stack.base_url + "/api/v1/reporter/session", json={"code": receipt["code"]}, timeout=30
    ).json()["token"]
    _, base = stack.start_web("web-fuzz-token", CONFIDE_METRICS_TOKEN=secrets.token_urlsafe(32))
    yield {"staff": staff, "reporter": reporter, "reference": receipt["reference"], "base": base}


@given(path=st.sampled_from(JSON_PATHS), body=odd_json_bodies())
@example(path="/api/v1/reports", body='{"category": "safety", "description": "\\ud800"}')
@example(path="/api/v1/reports", body='{"category": ' + "9" * 5000 + "}")
@example(path="/api/v1/staff/session", body='{"email": "\\udfff", "password": "x"}')
@FUZZ
def test_json_endpoints_answer_unstorable_json_clearly(
    sessions: dict[str, str], path: str, body: str
) -> None:
    """Lone surrogates, numbers past the conversion limit, NaN: valid to Python's parser, but
    nothing can store or convert them (each was a 500)."""
    response = post_json_text(sessions["base"], path.format(**sessions), body, sessions)
    assert_clear_answer(response)


@given(
    path=st.sampled_from(HEADER_PATHS),
    name=st.sampled_from(HEADER_NAMES),
    value=odd_header_values(),
)
@example(path="/metrics", name=b"Authorization", value="Bearer é".encode())
@FUZZ
def test_credentials_and_headers_with_non_ascii_bytes_answer_clearly(
    sessions: dict[str, str], path: str, name: bytes, value: bytes
) -> None:
    port = int(sessions["base"].rsplit(":", 1)[1])
    answer = odd_header_request(port, path, name, value, sessions)
    assert not problems(answer), (path, name, value, answer.status_code, answer.text[:300])
    if name == b"Authorization" and path == "/metrics":
        # 401 for a wrong token; 400 when aiohttp's parser refuses the header's bytes outright.
        assert answer.status_code in (400, 401)
