"""Fuzzing with figures: generated requests against a private system, counted per endpoint.

schemathesis generates requests for every operation of the OpenAPI document; hypothesis adds what
a schema cannot express (raw bytes under every content type, odd codes and form fields, odd
paths, JSON that Python parses but nothing can store, non-ASCII header values). Every response is
held to the same rule as ``tests/test_fuzz.py``: no 5xx but 503, no traceback, and every 4xx our
friendly HTML page or problem JSON.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyStrategyDefinition

from chaos.crash import STAFF_EMAIL, Plan, System

PATHS = [
    "/report",
    "/report/submit",
    "/login",
    "/messages",
    "/logout",
    "/staff/login",
    "/reminder.ics",
    "/api/v1/reports",
    "/api/v1/reporter/session",
    "/api/v1/reporter/messages",
]
CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/json",
    "text/plain",
    "application/xml",
    "",
    "application/x-www-form-urlencoded; charset=latin-1",
]
ODD_CODES = [
    "",
    "0" * 15,
    "0" * 17,
    "X" * 10_000,
    "７ＱＫＭ２ＸＲＤ９ＨＷＢＴ４ＮＦ",
    "7QKM-2XRD\x00",
    "%00",
]
ODD_PATHS = ["../", "..%2f", "%00", "%2e%2e/", "%ff", "//", "\\..\\", "R-%00", "?q=%00"]

# --- What a schema cannot generate: JSON Python accepts but nothing can store, odd headers -----
# (issue 12, finding 11: each of these was once a 500.)
JSON_PATHS = [
    "/api/v1/reports",
    "/api/v1/reporter/session",
    "/api/v1/reporter/messages",
    "/api/v1/staff/session",
    "/api/v1/staff/threads/{reference}/notes",  # a real one, from the fuzzer's sessions
]
JSON_FIELDS = [
    "category",
    "description",
    "anonymous",
    "follow_up",
    "occurred",
    "location",
    "made_before",
    "earlier_reference",
    "earlier_details",
    "code",
    "body",
    "email",
    "password",
    "status",
    "team",
]
HEADER_PATHS = [
    "/metrics",
    "/api/v1/staff/threads",
    "/api/v1/reporter/thread",
    "/staff",
    "/messages",
    "/ops",
]
HEADER_NAMES = [b"Authorization", b"Origin", b"Cookie", b"Idempotency-Key", b"Sec-Fetch-Site"]
ODD_HEADER_VALUES = [
    "Bearer é".encode("latin-1"),
    "Bearer é€".encode(),
    b"Bearer \xff\xfe",
    b"\xff",
    "http://évil.example".encode(),
    "confide_reporter=\u00e9\u20ac".encode(),
    "Bearer ２５６".encode(),
]


def _json_string(text: str) -> str:
    return json.dumps(text)


def _with_surrogate(pair: tuple[str, int, bool]) -> str:
    """A JSON string holding a lone surrogate escape (before or after other text)."""
    text, code_point, first = pair
    escape = f"\\u{code_point:04x}"
    body = _json_string(text)[1:-1]
    return f'"{escape}{body}"' if first else f'"{body}{escape}"'


def odd_json_values() -> st.SearchStrategy[str]:
    """JSON text of values Python's parser takes but no field can hold: lone surrogates,
    numbers past the 4,300-digit conversion limit, NaN and Infinity, next to ordinary ones."""
    surrogate = st.tuples(st.text(max_size=20), st.integers(0xD800, 0xDFFF), st.booleans()).map(
        _with_surrogate
    )
    huge = st.tuples(st.integers(4301, 6000), st.sampled_from(["", "-", "0.", "1e"])).map(
        lambda t: (t[1] + "9" * t[0]) if t[1] != "1e" else "1e" + "9" * t[0]
    )
    long_number = st.integers(10**30, 10**60).map(str)
    constants = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-0"])
    ordinary = st.one_of(
        st.text(max_size=40).map(_json_string), st.booleans().map(json.dumps), st.just("null")
    )
    return st.one_of(surrogate, huge, long_number, constants, ordinary)


def odd_json_bodies() -> st.SearchStrategy[str]:
    """Whole JSON documents: an object of our field names (values odd or not, keys sometimes a
    lone surrogate), a nested contact, or a bare odd value."""
    key = st.one_of(st.sampled_from(JSON_FIELDS).map(_json_string), st.just('"\\ud800"'))
    member = st.tuples(key, odd_json_values()).map(lambda kv: f"{kv[0]}: {kv[1]}")
    contact = odd_json_values().map(lambda v: f'"contact": {{"name": {v}, "email": {v}}}')
    obj = st.lists(st.one_of(member, contact), max_size=6).map(lambda m: "{" + ", ".join(m) + "}")
    array = st.lists(odd_json_values(), max_size=4).map(lambda v: "[" + ", ".join(v) + "]")
    return st.one_of(obj, array, odd_json_values())


def odd_header_values() -> st.SearchStrategy[bytes]:
    """Header values with bytes beyond ASCII (aiohttp hands them on with surrogateescape)."""
    raw = st.binary(min_size=1, max_size=40).map(
        lambda b: bytes(c for c in b if c not in b"\r\n\x00") or b"\xff"
    )
    return st.one_of(
        st.sampled_from(ODD_HEADER_VALUES),
        raw,
        raw.map(lambda b: b"Bearer " + b),
        st.text(min_size=1, max_size=20).map(lambda t: b"Bearer " + t.encode("utf-8", "replace")),
    )


# Requests aiohttp's own parser rejects (CANARY marks bytes that must not come back).
MALFORMED = [
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Bad\x01Header: CANARY\r\n\r\n",
    b"GET /CANARY\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"BLAH /CANARY HTTP/1.1\r\n\r\n",
    b"POST /api/v1/reports HTTP/1.1\r\nHost: x\r\nContent-Length: CANARY\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: CANARY\r\n\r\n",
    b"POST /report HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nCANARY\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"CANARY" * 2000 + b"\r\n\r\n",
]


def raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the answer: (status, lower-cased headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except OSError:
            pass
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


@dataclass
class RawAnswer:
    status_code: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def raw_request(
    port: int, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> RawAnswer:
    """One request with header bytes exactly as given (requests would re-encode them)."""
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if body or method == "POST":
        lines.append(b"Content-Length: " + str(len(body)).encode())
    status, answer_headers, answer = raw_exchange(port, b"\r\n".join(lines) + b"\r\n\r\n" + body)
    return RawAnswer(status, answer_headers, answer.decode("utf-8", "replace"))


def odd_header_request(
    port: int, path: str, name: bytes, value: bytes, tokens: dict[str, str] | None = None
) -> RawAnswer:
    """A GET (or, for /messages, a form POST) carrying one odd header value."""
    headers = [(name, value)]
    if name != b"Authorization" and tokens and path.startswith("/api/v1/"):
        side = "staff" if path.startswith("/api/v1/staff/") else "reporter"
        headers.append((b"Authorization", f"Bearer {tokens[side]}".encode()))
    if path == "/messages":
        headers.append((b"Content-Type", b"application/x-www-form-urlencoded"))
        return raw_request(port, "POST", path, headers, b"body=Hello&csrf_token=x")
    return raw_request(port, "GET", path, headers)


def json_auth(path: str, tokens: dict[str, str]) -> dict[str, str]:
    """The session a JSON path needs to get past its 401 (none for logins and reports)."""
    for side in ("staff", "reporter"):
        if path.startswith(f"/api/v1/{side}/") and not path.endswith("/session"):
            return {"Authorization": f"Bearer {tokens[side]}"}
    return {}


def post_json_text(
    base_url: str, path: str, text: str, tokens: dict[str, str] | None = None
) -> requests.Response:
    """JSON text sent as written (``requests`` would re-encode a parsed value)."""
    headers = {"Content-Type": "application/json", **json_auth(path, tokens or {})}
    return requests.post(base_url + path, data=text.encode(), headers=headers, timeout=30)


def header(response: Any, name: str) -> str:
    """requests and schemathesis responses spell headers differently."""
    value = response.headers.get(name) or response.headers.get(name.lower()) or ""
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value)


def problems(response: Any) -> list[str]:
    """What is wrong with an answer to generated input (nothing, for a clear answer)."""
    found = []
    body = response.text
    status = response.status_code
    if status >= 500 and status != 503:
        found.append(f"status {status}")
    if "Traceback" in body or 'File "/' in body:
        found.append("traceback in body")
    if 400 <= status < 500:
        kind = header(response, "Content-Type")
        if kind.startswith("application/problem+json"):
            try:
                problem = response.json()
                if problem.get("status") != status or not problem.get("title"):
                    found.append("problem JSON without status/title")
            except ValueError:
                found.append("problem JSON that does not parse")
        elif kind.startswith("text/html"):
            if '<main id="main"' not in body:
                found.append("4xx HTML that is not our page")
        elif kind.startswith("text/plain"):
            found.append("4xx text/plain (aiohttp's own parser error)")
        else:
            found.append(f"4xx as {kind or 'no content type'}")
    return found


@dataclass
class FuzzResult:
    per_endpoint: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    rss_mb: tuple[float, float] = (0.0, 0.0)
    seconds: float = 0.0
    stateful_steps: int = 0
    stateful_batches_cut: int = 0  # ended early by Hypothesis's replay check (see _stateful)
    stateful_chains: dict[str, int] = field(default_factory=dict)

    def record(self, endpoint: str, response: Any) -> None:
        self.per_endpoint[endpoint] += 1
        self.statuses[response.status_code] += 1
        for problem in problems(response):
            self.problems[problem] += 1
            self.examples.setdefault(problem, f"{endpoint} -> {response.status_code}")

    def describe(self) -> str:
        total = sum(self.per_endpoint.values())
        fewest = (
            min(self.per_endpoint.items(), key=lambda kv: kv[1]) if self.per_endpoint else ("", 0)
        )
        server_errors = sum(n for s, n in self.statuses.items() if s >= 500 and s != 503)
        lines = [
            f"== fuzzing: {total:,} generated requests in {self.seconds:.0f} s, "
            f"{len(self.per_endpoint)} endpoints",
            f"  fewest per endpoint          {fewest[1]} ({fewest[0]})",
            f"  responses of 5xx (not 503)   {server_errors}",
            f"  tracebacks in bodies         {self.problems['traceback in body']}",
            f"  unclear 4xx                  "
            f"{sum(n for p, n in self.problems.items() if p.startswith('4xx') or 'problem' in p)}",
            f"  statuses                     {dict(sorted(self.statuses.items()))}",
            f"  web RSS at start, at end     {self.rss_mb[0]:.0f} MB, {self.rss_mb[1]:.0f} MB",
            f"  stateful steps (links)       {self.stateful_steps:,} "
            f"({self.stateful_batches_cut} batches of 10 scenarios ended early): "
            + ", ".join(f"{k} ×{v}" for k, v in sorted(self.stateful_chains.items())),
        ]
        for problem, n in self.problems.most_common():
            lines.append(f"  PROBLEM {problem}: {n} (e.g. {self.examples[problem]})")
        return "\n".join(lines)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _label(operation: Any) -> str:
    return f"{operation.method.upper()} {operation.path}"


def _auth(operation: Any, tokens: dict[str, str]) -> dict[str, str]:
    """A valid session for the operation's side, so generation reaches past the 401."""
    path = operation.path
    if path.endswith("/session"):
        return {}  # logging in or out: no session, or it would end ours
    for side in ("staff", "reporter"):
        if path.startswith(f"/api/v1/{side}/"):
            return {"Authorization": f"Bearer {tokens[side]}"}
    return {}


def _api_cases(
    system: System, fuzz: settings, operation: Any, result: FuzzResult, tokens: dict[str, str]
) -> Any:
    label = _label(operation)

    @fuzz
    @given(case=operation.as_strategy())
    def api_case(case: Any) -> None:
        call = case.call(base_url=system.base_url, headers=_auth(operation, tokens), timeout=30)
        result.record(label, call)

    return api_case


def _top_up(
    system: System, operation: Any, result: FuzzResult, tokens: dict[str, str], wanted: int
) -> None:
    """Operations with a small input space (no parameters at all) run out of new examples;
    their remaining requests are drawn from the same strategy, repeats allowed."""
    label = _label(operation)
    strategy = operation.as_strategy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        while result.per_endpoint[label] < wanted:
            case = strategy.example()
            call = case.call(base_url=system.base_url, headers=_auth(operation, tokens), timeout=30)
            result.record(label, call)


def post_raw(base_url: str, path: str, kind: str, body: bytes) -> requests.Response:
    """Arbitrary bytes under a claimed content type, as a broken client would send them."""
    return requests.post(
        base_url + path,
        data=body,
        headers={"Content-Type": kind},
        timeout=30,
        allow_redirects=False,
    )


def _raw_bodies(system: System, fuzz: settings, path: str, result: FuzzResult) -> Any:
    @fuzz
    @given(kind=st.sampled_from(CONTENT_TYPES), body=st.binary(max_size=2000))
    def raw_body(kind: str, body: bytes) -> None:
        response = post_raw(system.base_url, path, kind, body)
        result.record(f"POST {path} (raw bytes)", response)

    return raw_body


def _sessions(system: System) -> dict[str, str]:
    staff = requests.post(
        system.base_url + "/api/v1/staff/session",
        json={"email": STAFF_EMAIL, "password": system.staff_password},
        timeout=30,
    ).json()["token"]
    receipt = requests.post(
        system.base_url + "/api/v1/reports",
        json={"category": "safety", "description": "Fuzz", "anonymous": True, "follow_up": True},
        timeout=30,
    ).json()
    reporter = requests.post(
        system.base_url + "/api/v1/reporter/session", json={"code": receipt["code"]}, timeout=30
    ).json()["token"]
    return {"staff": staff, "reporter": reporter, "reference": receipt["reference"]}


def _stateful(system: System, api: Any, tokens: dict[str, str], result: FuzzResult, n: int) -> None:
    """Scenarios along the document's links: submit -> log in -> message, and the staff reply to
    the same report. The reporter's bearer token is the one the last successful login returned."""
    session = dict(tokens)
    chained: Counter[str] = Counter()

    class Scenarios(api.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Any) -> None:
            # Realistic data where a random one would stop the chain at its first step: a real
            # category, and (mostly) an anonymous report with follow-up, which has a code.
            if _label(case.operation) == "POST /api/v1/reports" and isinstance(case.body, dict):
                self.draws = getattr(self, "draws", 0) + 1
                if self.draws % 4:  # three in four
                    case.body.update(category="safety", anonymous=True, follow_up=True)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {
                "base_url": system.base_url,
                "headers": _auth(case.operation, session),
                "timeout": 30,
            }

        def after_call(self, response: Any, case: Any) -> None:
            label = _label(case.operation)
            result.record(label, response)
            result.stateful_steps += 1
            if label == "POST /api/v1/reporter/session" and response.status_code == 200:
                session["reporter"] = response.json()["token"]
            chained[f"{label} {response.status_code}"] += 1

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            pass  # held to FuzzResult's rule in after_call, like every other request

    # In batches: Hypothesis checks that replaying a scenario's choices draws the same steps,
    # and against a live server that has changed since (new reports, used codes) it sometimes
    # does not. That ends a batch, never the run: its requests are already recorded and judged.
    batch = 10
    for _ in range(max(1, -(-n // batch))):
        try:
            Scenarios.run(
                settings=settings(
                    max_examples=batch,
                    stateful_step_count=6,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
            )
        except FlakyStrategyDefinition:
            result.stateful_batches_cut += 1
    result.stateful_chains = dict(chained)


def _fuzz(system: System, per_endpoint: int, result: FuzzResult) -> None:
    fuzz = settings(
        max_examples=per_endpoint,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    api = schemathesis.openapi.from_url(f"{system.base_url}/api/v1/openapi.json")
    tokens = _sessions(system)
    for found in api.get_all_operations():
        operation = found.ok()  # type: ignore[union-attr]  # an invalid schema raises here
        _api_cases(system, fuzz, operation, result, tokens)()
        _top_up(system, operation, result, tokens, per_endpoint)
    _stateful(system, api, tokens, result, max(10, per_endpoint // 3))
    for path in PATHS:
        _raw_bodies(system, fuzz, path, result)()

    @fuzz
    @given(
        code=st.one_of(
            st.sampled_from(ODD_CODES),
            st.text(alphabet="0123456789ABCDEFGHJKMNPQRSTVWXYZ-", max_size=40),
        )
    )
    def odd_code(code: str) -> None:
        response = requests.post(
            system.base_url + "/api/v1/reporter/session", json={"code": code}, timeout=30
        )
        result.record("POST /api/v1/reporter/session (odd codes)", response)
        response = requests.post(
            system.base_url + "/login", data={"code": code}, timeout=30, allow_redirects=False
        )
        result.record("POST /login (odd codes)", response)

    odd_code()

    @fuzz
    @given(
        prefix=st.sampled_from(["/", "/static/", "/staff/threads/", "/api/v1/staff/threads/"]),
        suffix=st.one_of(st.sampled_from(ODD_PATHS), st.text(max_size=30)),
    )
    def odd_path(prefix: str, suffix: str) -> None:
        response = requests.get(
            system.base_url + prefix + suffix.replace("#", "%23"),
            timeout=30,
            allow_redirects=False,
        )
        result.record("GET (odd paths)", response)

    odd_path()

    @fuzz
    @given(path=st.sampled_from(JSON_PATHS), body=odd_json_bodies())
    def odd_json(path: str, body: str) -> None:
        response = post_json_text(system.base_url, path.format(**tokens), body, tokens)
        result.record(f"POST {path} (odd JSON)", response)

    odd_json()

    @fuzz
    @given(
        path=st.sampled_from(HEADER_PATHS),
        name=st.sampled_from(HEADER_NAMES),
        value=odd_header_values(),
    )
    def odd_header(path: str, name: bytes, value: bytes) -> None:
        response = odd_header_request(system.port, path, name, value, tokens)
        result.record(f"{path} (odd {name.decode()})", response)

    odd_header()
    _malformed(system, per_endpoint, result)


def _malformed(system: System, count: int, result: FuzzResult) -> None:
    """Raw malformed HTTP over a socket: our page, our headers, no echo of what was sent."""
    for n in range(count):
        template = MALFORMED[n % len(MALFORMED)]
        marker = f"Echo{n:05d}x".encode()
        status, headers, body = raw_exchange(system.port, template.replace(b"CANARY", marker))
        answer = RawAnswer(status, headers, body.decode("utf-8", "replace"))
        result.record("raw malformed HTTP", answer)
        if marker in body:
            result.problems["request bytes echoed back"] += 1
            result.examples.setdefault("request bytes echoed back", f"template {n % 7}")
        if headers.get("server") != "Confide" or "content-security-policy" not in headers:
            result.problems["missing security headers"] += 1
            result.examples.setdefault("missing security headers", f"template {n % 7}")


async def run(root: Path, *, per_endpoint: int) -> FuzzResult:
    system = System(root, Plan(0, 0, 0))
    # With a token, /metrics compares what the odd Authorization headers carry.
    system.env_overrides["CONFIDE_METRICS_TOKEN"] = secrets.token_urlsafe(32)
    result = FuzzResult()
    try:
        await asyncio.to_thread(system.start)
        web = system.procs["web"].proc
        assert web is not None
        before = _rss_mb(web.pid)
        started = time.monotonic()
        await asyncio.to_thread(_fuzz, system, per_endpoint, result)
        result.seconds = time.monotonic() - started
        result.rss_mb = (before, _rss_mb(web.pid))
    finally:
        await asyncio.to_thread(system.stop)
    return result
