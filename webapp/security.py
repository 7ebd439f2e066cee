"""Security headers, signed form tokens, same-origin checks and rate limits.

Rate limits keep no client address: a per-client bucket is keyed by an HMAC of the address under a
key that exists only in this process's memory, and the buckets themselves live only in memory.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass, field

from aiohttp import web

from confide.crypto import keyed_hash, same_text
from confide.errors import RateLimited
from confide.settings import Settings

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'; frame-ancestors 'none'"
)
FORM_TOKEN_MAX_AGE_S = 24 * 3600


_STATIC_HEADERS = {
    "Server": "Confide",  # no versions
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}


def static_security_headers() -> dict[str, str]:
    """The headers every response carries whatever its request, plus ``no-store``."""
    return {**_STATIC_HEADERS, "Cache-Control": "no-store", "Pragma": "no-cache"}


def security_headers(
    request: web.Request, response: web.StreamResponse, *, tls: bool, onion: str | None = None
) -> None:
    """Strict headers on every response, errors and static files included."""
    headers = response.headers
    headers.update(_STATIC_HEADERS)
    if not request.path.startswith("/static/"):
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
    if tls:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        if onion and response.content_type == "text/html":
            # Tor Browser offers the onion service instead (docs/deploy.md).
            headers["Onion-Location"] = onion + request.rel_url.path


def is_tls(request: web.Request, settings: Settings) -> bool:
    if request.secure:
        return True
    return settings.trust_proxy and request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def same_origin(request: web.Request, settings: Settings) -> bool:
    """Reject cross-site form posts. Works without Referer, which reporter pages never send."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        # No Origin: a non-browser client or an old browser. A browser that sends "null" for
        # our own pages does so only under no-referrer on some versions, so accept it.
        return True
    scheme = "https" if is_tls(request, settings) else "http"
    return same_text(origin, f"{scheme}://{request.host}")


# --- Signed form tokens ------------------------------------------------------------------------


def new_form_token(settings: Settings, purpose: str) -> str:
    """``nonce.timestamp.signature``: proves the form came from us, and doubles as the
    idempotency key of the submission it guards."""
    nonce = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    ts = str(int(time.time()))
    sig = _sign(settings, purpose, nonce, ts)
    return f"{nonce}.{ts}.{sig}"


def check_form_token(settings: Settings, purpose: str, token: str) -> str | None:
    """The nonce if the token is ours, unexpired and for this purpose; None otherwise."""
    parts = token.split(".")
    if len(parts) != 3 or len(token) > 200:
        return None
    nonce, ts, sig = parts
    if not (ts.isascii() and ts.isdigit()) or not same_text(
        sig, _sign(settings, purpose, nonce, ts)
    ):
        return None
    if time.time() - int(ts) > FORM_TOKEN_MAX_AGE_S:
        return None
    return nonce


def _sign(settings: Settings, purpose: str, nonce: str, ts: str) -> str:
    mac = keyed_hash(settings.session_key, "form-token", purpose, nonce, ts)
    return base64.urlsafe_b64encode(mac[:24]).decode()


# --- Rate limits -------------------------------------------------------------------------------


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class TokenBuckets:
    """Token buckets in memory. ``capacity`` requests, refilled evenly over ``period_s``."""

    capacity: int
    period_s: float
    max_keys: int = 100_000
    _buckets: dict[bytes, _Bucket] = field(default_factory=dict)

    def take(self, key: bytes, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        rate = self.capacity / self.period_s
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._evict(now)
            bucket = self._buckets[key] = _Bucket(float(self.capacity), now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens < 1:
            raise RateLimited(int((1 - bucket.tokens) / rate) + 1)
        bucket.tokens -= 1

    def _evict(self, now: float) -> None:
        full_after = self.period_s
        for key in [k for k, b in self._buckets.items() if now - b.updated > full_after]:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:  # still full: forget the oldest half
            oldest = sorted(self._buckets, key=lambda k: self._buckets[k].updated)
            for key in oldest[: len(oldest) // 2]:
                del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)

    def keys(self) -> list[bytes]:
        return list(self._buckets)


class SubmissionLimits:
    """Per-client and global limits on report submissions (issue 3)."""

    def __init__(self, settings: Settings) -> None:
        self.enabled_per_client = settings.per_client_limits
        self._client_key = secrets.token_bytes(32)  # never leaves this process's memory
        self.per_client = TokenBuckets(settings.submit_per_client_per_hour, 3600.0)
        self.global_ = TokenBuckets(settings.submit_global_per_minute, 60.0)

    def client_key(self, request: web.Request) -> bytes:
        # The only place that reads the client address: it is HMACed at once and never kept.
        address = request.remote or ""
        return keyed_hash(self._client_key, "client", address)

    def check(self, request: web.Request) -> None:
        if self.enabled_per_client:
            self.per_client.take(self.client_key(request))
        self.global_.take(b"global")


class LoginLimits:
    """Code logins: per-client buckets (keyed as above) and a global budget that counts argon2
    verifications only, so a flood of guesses at unknown codes cannot lock genuine reporters out."""

    def __init__(self, settings: Settings) -> None:
        self.enabled_per_client = settings.per_client_limits
        self._client_key = secrets.token_bytes(32)
        self.per_client = TokenBuckets(settings.login_per_client_per_15min, 900.0)
        # The per-minute budget as a rate, with a burst of at most what the workers could verify
        # at that rate before the web stops waiting for them (hash_timeout_s). A full minute's
        # burst let 200 addresses queue a thousand verifications in a second: the queue then
        # outlived the timeout, the web hashed locally as well, and genuine logins waited 8 s.
        per_second = settings.argon2_global_per_minute / 60.0
        burst = max(1, int(per_second * settings.hash_timeout_s))
        self.argon2 = TokenBuckets(burst, burst / per_second)
        self.limited = 0  # for confide_login_rate_limited_total (issue 6)

    def guard(self, request: web.Request) -> LoginGuard:
        return LoginGuard(self, request)


@dataclass
class LoginGuard:
    limits: LoginLimits
    request: web.Request

    def per_client(self) -> None:
        if not self.limits.enabled_per_client:
            return
        address = self.request.remote or ""  # HMACed at once, never kept
        try:
            self.limits.per_client.take(keyed_hash(self.limits._client_key, "login", address))
        except RateLimited:
            self.limits.limited += 1
            raise

    def argon2_budget(self) -> None:
        try:
            self.limits.argon2.take(b"argon2")
        except RateLimited:
            self.limits.limited += 1
            raise
