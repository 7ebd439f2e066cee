"""The reporter's whole post/redirect/get journey, with a draft (issue 14's benchmark).

One walk, as a browser with cookies on does it: the start page, each question's POST and the
303 to the next page's GET, check answers, the send, and the confirmation's GET. The report is
anonymous without follow-up, as in the single-POST submission figure, so no code (and no
argon2) is part of it. :func:`walk` does it once over ``http.client`` and counts the bytes a
browser would receive (every page, plus each stylesheet and script once: a browser caches them),
and every address a page would load something from. ``bench/journey.lua`` does the same walk
under wrk, one connection per wrk thread, so each connection keeps its own draft cookie.
"""

from __future__ import annotations

import gzip
import http.client
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin, urlsplit

# Synthetic text only (the same as bench.submit's).
DESCRIPTION = (
    "Benchmark report. The fire door at the end of the level 2 corridor is propped open with a "
    "chair most afternoons, and the corridor light by the stairs has been out for a week. "
    "Someone could trip on the cable running across the floor near the printer."
)
# Each question page's answers, in the order the journey asks them (templates/reporter/step-*).
STEPS: tuple[tuple[str, dict[str, str]], ...] = (
    ("how", {"how": "anonymous"}),
    ("category", {"category": "safety"}),
    ("what", {"description": DESCRIPTION}),
    ("when", {"occurred": "Tuesday afternoon"}),
    ("where", {"location": "Level 2 corridor"}),
    ("follow-up", {"follow_up": "no"}),
)
# Requests in one journey: the start page, a POST and a GET per question, the send and the
# confirmation (its stylesheet and script are fetched once per browser, not counted here).
REQUESTS_PER_JOURNEY = 1 + 2 * len(STEPS) + 2
# What a browser fetches for a page: these elements' addresses (links and forms are not fetched).
_LOADED = {
    "link": "href",
    "script": "src",
    "img": "src",
    "iframe": "src",
    "source": "src",
    "video": "src",
    "audio": "src",
    "embed": "src",
    "object": "data",
}
_NOT_FETCHED = frozenset({"canonical", "alternate", "next", "prev", "author", "license"})
_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)|@import\s+['"]([^'"]+)""")


@dataclass
class Walk:
    """What one journey received: bytes on the wire (bodies as sent, compressed or not) by
    kind, and every address a page or stylesheet loads from another host (should be none)."""

    html_bytes: int = 0
    css_bytes: int = 0
    js_bytes: int = 0
    header_bytes: int = 0
    requests: int = 0
    foreign: list[str] = field(default_factory=list)
    reference: str | None = None

    @property
    def total_bytes(self) -> int:
        return self.html_bytes + self.css_bytes + self.js_bytes


class _Loads(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []  # (tag, address)
        self.token: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        name = _LOADED.get(tag)
        links_only = tag == "link" and values.get("rel", "") in _NOT_FETCHED
        if name and values.get(name) and not links_only:
            self.urls.append((tag, values[name]))
        if tag == "input" and values.get("name") == "form_token":
            self.token = values.get("value")
        if "style" in values:
            self.urls += [("style", u or i) for u, i in _CSS_URL.findall(values["style"])]


class Browser:
    """A keep-alive connection with one cookie jar: enough for our own pages."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host = parts.hostname or "127.0.0.1"
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.conn = http.client.HTTPConnection(self.host, parts.port, timeout=30)
        self.cookies: dict[str, str] = {}
        self.walk = Walk()

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        headers = {"Accept-Encoding": "gzip", "Accept": "text/html,*/*"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Origin"] = self.origin
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        self.walk.requests += 1
        self.walk.header_bytes += sum(len(k) + len(v) + 4 for k, v in resp.getheaders()) + 17
        for name, value in resp.getheaders():
            if name.lower() == "set-cookie":
                pair = value.split(";", 1)[0]
                key, _, val = pair.partition("=")
                if val and "max-age=0" not in value.lower():
                    self.cookies[key.strip()] = val
                else:
                    self.cookies.pop(key.strip(), None)
        kind = (resp.getheader("Content-Type") or "").split(";")[0]
        if kind == "text/css":
            self.walk.css_bytes += len(raw)
        elif kind in ("application/javascript", "text/javascript"):
            self.walk.js_bytes += len(raw)
        else:
            self.walk.html_bytes += len(raw)
        text = gzip.decompress(raw) if resp.getheader("Content-Encoding") == "gzip" else raw
        return resp.status, resp.getheader("Location") or "", text.decode("utf-8", "replace")

    def close(self) -> None:
        self.conn.close()


def walk(base: str) -> Walk:
    """One journey as a browser with cookies does it; fails loudly if a step does not answer
    as the post/redirect/get flow should."""
    browser = Browser(base)
    fetched: set[str] = set()
    pages: list[str] = []
    try:
        status, _, page = browser.request("GET", "/report")
        _expect(status == 200 and "confide_draft" in browser.cookies, "GET /report", status)
        pages.append(page)
        for step, answers in STEPS:
            status, where, _ = browser.request("POST", "/report", {"step": step, **answers})
            _expect(status == 303, f"POST /report step={step}", status)
            status, _, page = browser.request("GET", where)
            _expect(status == 200, f"GET {where}", status)
            pages.append(page)
        _expect(where == "/report/check", "the last question's redirect", where)
        check = _Loads()
        check.feed(page)
        _expect(check.token is not None, "check answers' form token", check.token)
        status, where, _ = browser.request(
            "POST", "/report/submit", {"form_token": check.token or ""}
        )
        _expect(status == 303 and where == "/report/confirmation", "POST submit", status)
        status, _, page = browser.request("GET", where)
        _expect(status == 200 and "Report received" in page, "GET /report/confirmation", status)
        pages.append(page)
        found = re.search(r"R-[0-9A-Z]{8}", page)
        browser.walk.reference = found.group(0) if found else None
        for page in pages:
            parser = _Loads()
            parser.feed(page)
            for _tag, url in parser.urls:
                _fetch(browser, base, url, fetched)
        return browser.walk
    finally:
        browser.close()


def _fetch(browser: Browser, base: str, url: str, fetched: set[str]) -> None:
    address = urljoin(base + "/", url)
    if urlsplit(address).netloc != urlsplit(base).netloc:
        browser.walk.foreign.append(address)
        return
    if address in fetched:
        return
    fetched.add(address)
    status, _, text = browser.request("GET", urlsplit(address).path)
    _expect(status == 200, f"GET {address}", status)
    if address.endswith(".css"):
        for u, i in _CSS_URL.findall(text):
            _fetch(browser, base, u or i, fetched)


def _expect(ok: bool, what: str, got: object) -> None:
    if not ok:
        raise RuntimeError(f"journey: {what} answered {got!r}")
