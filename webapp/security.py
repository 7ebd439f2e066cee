"""Security headers, signed form tokens, same-origin checks and rate limits.

Rate limits keep no client address: a per-client bucket is keyed by an HMAC of the address under a
key that exists only in this process's memory, and the buckets themselves live only in memory.
Behind a trusted proxy the address is the one it forwarded (:func:`client_address`).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import ipaddress
import math
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from aiohttp import web
from itsdangerous import BadData, BadSignature, TimestampSigner
from itsdangerous.encoding import base64_decode, base64_encode, bytes_to_int, int_to_bytes

from confide.crypto import keyed_hash, same_text
from confide.errors import RateLimited
from confide.settings import Network, Settings

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'; frame-ancestors 'none'"
)
FORM_TOKEN_MAX_AGE_S = 24 * 3600
# The receipts' public keys (a JWKS), the one answer besides static files that may be cached.
RECEIPT_KEYS_PATH = "/.well-known/confide-receipt-key"


SANDBOX_CSP = "sandbox; default-src 'none'"
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
    # A file download or preview (webapp.files) keeps its sandbox: scripts, forms and plugins in
    # a served file never run as this origin, even if a browser were to render it.
    sandboxed = headers.get("Content-Security-Policy", "").startswith("sandbox")
    headers.update(_STATIC_HEADERS)
    if sandboxed:
        headers["Content-Security-Policy"] = SANDBOX_CSP
    cacheable = request.path.startswith("/static/") or request.path == RECEIPT_KEYS_PATH
    if not (cacheable and response.status < 400):
        # Only a static file that was found may be cached: a 404 for one is an answer like any.
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
    """Reject cross-site form posts. Works without Referer, which reporter pages never send.

    Every form this guards also carries a signed token (CSRF or form token): where this answers
    True for want of evidence, the token decides.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # a non-browser client or an old browser: the token decides
    if origin == "null":
        # Our own Referrer-Policy: no-referrer makes browsers send "null" on our own forms, and
        # so do sandboxed frames and data: pages anywhere. Only Fetch metadata tells them apart;
        # without it (old browsers) the token decides.
        return site is None or site == "same-origin"
    scheme = "https" if is_tls(request, settings) else "http"
    return same_text(origin, f"{scheme}://{request.host}")


# --- Signed form tokens ------------------------------------------------------------------------


def new_form_token(settings: Settings, purpose: str, *, now: float | None = None) -> str:
    """``nonce.timestamp.signature``, signed by itsdangerous for this purpose: proves the form
    came from us, and its nonce doubles as the idempotency key of the submission it guards.

    ``now`` backdates the token (tests of the 2 h window for new reports).
    """
    nonce = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=")
    issued = int(time.time() if now is None else now)
    return _signer(settings.session_key.bytes(), purpose).sign_at(nonce, issued).decode("ascii")


def check_form_token(settings: Settings, purpose: str, token: str) -> str | None:
    """The nonce if the token is ours, for this purpose and at most 24 h old; None otherwise.

    itsdangerous also refuses a token dated in the future: the web processes' clocks would
    have to disagree by more than the time it takes to fill in a form. Never raises on what a
    client sent: anything non-ASCII, over-long or malformed is refused.
    """
    if len(token) > _TOKEN_MAX_LEN or not token.isascii():
        return None  # itsdangerous encodes a str as UTF-8, which a lone surrogate would break
    try:
        nonce = _signer(settings.session_key.bytes(), purpose).unsign(
            token, max_age=FORM_TOKEN_MAX_AGE_S
        )
    except BadSignature:  # also expired, without a timestamp, or for another purpose
        return None
    return nonce.decode("ascii")


# What this request's form token was found to be: ((purpose, token), nonce or None).
_CHECKED_TOKEN = web.RequestKey("checked_form_token", tuple)


def checked_form_token(
    request: web.Request, settings: Settings, purpose: str, token: str
) -> str | None:
    """:func:`check_form_token`, once a request: the policy middleware checks a signed form's
    token before the handler, which asks again for its nonce (the same answer, not signed
    again: about 5 µs of a submission, for ``make bench`` ``submit``)."""
    asked = (purpose, token)
    done = request.get(_CHECKED_TOKEN)
    if done is not None and done[0] == asked:
        nonce: str | None = done[1]
        return nonce
    nonce = check_form_token(settings, purpose, token)
    request[_CHECKED_TOKEN] = (asked, nonce)
    return nonce


def form_token_age_s(token: str) -> float:
    """Seconds since a token (already checked with :func:`check_form_token`) was issued;
    infinite for anything that is not a token."""
    return time.time() - _issued_at(token)


_TOKEN_MAX_LEN = 200
_SALT = "confide.form-token."


class _FormTokenSigner(TimestampSigner):
    """itsdangerous' :class:`TimestampSigner`, which can also sign for a given time."""

    def sign_at(self, value: bytes, issued: int) -> bytes:
        stamped = value + self.sep + base64_encode(int_to_bytes(issued))
        return stamped + self.sep + self.get_signature(stamped)


@functools.lru_cache(maxsize=64)
def _signer(session_key: bytes, purpose: str) -> _FormTokenSigner:
    """One signer per purpose (its salt): a token for one form is refused by every other.

    The signing key is ``HMAC-SHA256(CONFIDE_SESSION_KEY, salt)``, what itsdangerous' ``hmac``
    key derivation gives. Its message starts with a letter and every
    :func:`confide.crypto.keyed_hash` message with a zero length byte, so no other use of the
    session key derives the same key.

    Speed-up for ``make bench`` ``submit`` (req/s ≥ 0.50 of bare, met narrowly): the key is
    derived here, once per signer (``key_derivation="none"``), not by itsdangerous on every
    token, and signers are cached. Measured with timeit: a token issued 9.2 → 4.8 µs, checked
    10.1 → 7.5 µs. The login forms' purposes (one per browser) come and go in the LRU.
    """
    salt = (_SALT + purpose).encode("utf-8")
    return _FormTokenSigner(
        hmac.digest(session_key, salt, "sha256"),
        salt=salt,
        key_derivation="none",
        digest_method=hashlib.sha256,
    )


def _issued_at(token: str) -> float:
    """The timestamp of ``nonce.timestamp.signature``, unchecked; -inf if there is none.

    Read from the token rather than from a second :meth:`TimestampSigner.unsign`, which would
    sign it again (the submit handler has checked it already)."""
    parts = token.split(".")
    if len(parts) != 3 or not 0 < len(parts[1]) <= 11 or not parts[1].isascii():
        return -math.inf  # 11 base64 characters hold the 8 bytes itsdangerous can read
    try:
        return bytes_to_int(base64_decode(parts[1]))
    except BadData:
        return -math.inf


# --- The client behind a trusted proxy ----------------------------------------------------------


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: Iterable[Network]
) -> bool:
    return any(address in network for network in trusted)


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted: Iterable[Network]
) -> str:
    """The client for per-client limits, as text that is HMACed at once (never kept).

    When the peer is a trusted proxy, the client is the right-most ``X-Forwarded-For`` address
    that is not a trusted proxy: a client can forge the left of the header, never what the
    proxies appended. A header that is missing, malformed where it matters, or that names only
    trusted proxies leaves the peer. IPv6 clients are bucketed by their /64, which one host
    usually holds whole.
    """
    trusted = tuple(trusted)
    if not trusted and peer and ":" not in peer:
        return peer  # an IPv4 socket peer, as the kernel wrote it: nothing to parse or bucket
    address = _parse_ip(peer or "")
    if address is not None and trusted and _is_trusted(address, trusted):
        hops = [hop for value in forwarded_for for hop in value.split(",")]
        for hop in reversed(hops):
            forwarded = _parse_ip(hop)
            if forwarded is None:
                break  # malformed before any client: the peer
            if not _is_trusted(forwarded, trusted):
                address = forwarded
                break
    if address is None:
        return peer or ""
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def client_key(
    request: web.Request, trusted: tuple[Network, ...], key: bytes, purpose: str
) -> bytes:
    """The one place that reads the client address: the key of its per-client bucket, an HMAC
    under a key that lives only in process memory. Every per-client limit goes through here."""
    address = client_address(request.remote, request.headers.getall("X-Forwarded-For", ()), trusted)
    return keyed_hash(key, purpose, address)


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

    def take(self, key: bytes, now: float | None = None, n: float = 1) -> None:
        """Take ``n`` tokens (one request; or bytes, for a budget of bytes), or raise
        RateLimited taking none."""
        now = time.monotonic() if now is None else now
        rate = self.capacity / self.period_s
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._evict(now)
            bucket = self._buckets[key] = _Bucket(float(self.capacity), now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens < n:
            raise RateLimited(int((n - bucket.tokens) / rate) + 1)
        bucket.tokens -= n

    def wait_s(self, key: bytes, now: float | None = None, n: float = 1) -> int:
        """0 if ``take`` would succeed now, else the seconds until it would; takes nothing."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0
        now = time.monotonic() if now is None else now
        rate = self.capacity / self.period_s
        tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * rate)
        return 0 if tokens >= n else int((n - tokens) / rate) + 1

    def give_back(self, key: bytes) -> None:
        """Return one token taken from ``key`` (its attempt turned out not to count)."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.tokens = min(float(self.capacity), bucket.tokens + 1)

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
        self.trusted_proxies = settings.trusted_proxies
        self.enabled_per_client = settings.per_client_limits
        self._client_key = secrets.token_bytes(32)  # never leaves this process's memory
        self.per_client = TokenBuckets(settings.submit_per_client_per_hour, 3600.0)
        self.global_ = TokenBuckets(settings.submit_global_per_minute, 60.0)

    def client_key(self, request: web.Request) -> bytes:
        return client_key(request, self.trusted_proxies, self._client_key, "client")

    def check(self, request: web.Request) -> None:
        if self.enabled_per_client:
            self.per_client.take(self.client_key(request))
        self.global_.take(b"global")


class UploadsFull(RateLimited):
    """429: reporters' unattached uploads hold ``CONFIDE_PENDING_UPLOADS_MAX_MIB`` already."""


UPLOADS_FULL_RETRY_S = 60  # the purge runs every minute; uploads expire after an hour


class UploadLimits:
    """Files sent by reporters, anonymous or signed in (issue 17), each with three budgets:

    - files: per-client buckets keyed as for submissions, and a global budget per web process;
      each file takes one token before a byte of it is read or stored;
    - bytes per client (``CONFIDE_UPLOAD_MIB_PER_CLIENT_PER_HOUR``): a body declared larger
      than what is left is refused before a byte is stored, and the bytes are charged as they
      stream in, so a client past it is cut off mid-file;
    - bytes held (``CONFIDE_PENDING_UPLOADS_MAX_MIB``): reporters' unattached uploads in the
      database plus those streaming into this process; checked before storing and while
      streaming.

    Past any of them the answer is 429 with ``Retry-After`` and nothing of the file is kept.
    Staff uploads are not counted: they come from signed-in accounts."""

    MIB = 1024 * 1024

    def __init__(self, settings: Settings) -> None:
        self.trusted_proxies = settings.trusted_proxies
        self.enabled_per_client = settings.per_client_limits
        self._client_key = secrets.token_bytes(32)  # never leaves this process's memory
        self.per_client = TokenBuckets(settings.upload_per_client_per_hour, 3600.0)
        self.global_ = TokenBuckets(settings.upload_global_per_minute, 60.0)
        self.bytes_per_client = TokenBuckets(
            settings.upload_mib_per_client_per_hour * self.MIB, 3600.0
        )
        self.pending_max = settings.pending_uploads_max_mib * self.MIB
        self.streaming = 0  # bytes of reporters' uploads streaming into this process now

    def check(self, request: web.Request, pending: int, declared: int | None = None) -> UploadMeter:
        """Admit one file (RateLimited, or UploadsFull, taking nothing): ``pending`` is what
        reporters' unattached uploads hold now, ``declared`` the bytes the file may have (a
        body's Content-Length) if known. The meter charges its bytes as they stream."""
        key = client_key(request, self.trusted_proxies, self._client_key, "upload")
        if pending + self.streaming >= self.pending_max:
            raise UploadsFull(UPLOADS_FULL_RETRY_S)
        if self.enabled_per_client:
            wanted = min(max(1, declared or 1), self.bytes_per_client.capacity)
            wait = self.bytes_per_client.wait_s(key, n=wanted)
            if wait:
                raise RateLimited(wait)
            self.per_client.take(key)
        self.global_.take(b"global")
        return UploadMeter(self, key, pending)


@dataclass
class UploadMeter:
    """One reporter's file as it streams in: each block is charged to the client's bytes and
    counted against the cap on what uploads hold, before it is stored. :meth:`done` once the
    file is stored or refused (its bytes are then in the database's sum, or gone)."""

    limits: UploadLimits
    key: bytes
    pending: int  # reporters' unattached uploads when the file was admitted
    counted: int = 0

    async def blocks(self, blocks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        limits = self.limits
        async for block in blocks:
            if self.pending + limits.streaming + len(block) > limits.pending_max:
                raise UploadsFull(UPLOADS_FULL_RETRY_S)
            if limits.enabled_per_client:
                limits.bytes_per_client.take(self.key, n=len(block))
            limits.streaming += len(block)
            self.counted += len(block)
            yield block

    def done(self) -> None:
        self.limits.streaming -= self.counted
        self.counted = 0


class LoginLimits:
    """Code logins: per-client buckets (keyed as above) and a global budget that counts argon2
    verifications only, so a flood of guesses at unknown codes cannot lock genuine reporters out."""

    def __init__(self, settings: Settings) -> None:
        self.trusted_proxies = settings.trusted_proxies
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
        key = client_key(
            self.request, self.limits.trusted_proxies, self.limits._client_key, "login"
        )
        try:
            self.limits.per_client.take(key)
        except RateLimited:
            self.limits.limited += 1
            raise

    def argon2_budget(self) -> None:
        try:
            self.limits.argon2.take(b"argon2")
        except RateLimited:
            self.limits.limited += 1
            raise


# --- Staff sign-in (docs/security.md "Staff sign-in limits") -------------------------------------


@dataclass
class RecentKeys:
    """Keys marked within the last ``period_s`` seconds, in memory and bounded."""

    period_s: float
    max_keys: int = 100_000
    _marked: dict[bytes, float] = field(default_factory=dict)

    def mark(self, key: bytes, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if key not in self._marked and len(self._marked) >= self.max_keys:
            self._evict(now)
        self._marked[key] = now

    def is_recent(self, key: bytes, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        marked = self._marked.get(key)
        return marked is not None and now - marked < self.period_s

    def _evict(self, now: float) -> None:
        for key in [k for k, t in self._marked.items() if now - t >= self.period_s]:
            del self._marked[key]
        if len(self._marked) >= self.max_keys:  # still full: forget the oldest half
            oldest = sorted(self._marked, key=self._marked.__getitem__)
            for key in oldest[: len(oldest) // 2]:
                del self._marked[key]


class StaffLoginLimits:
    """Staff password sign-in: buckets per (client, account) and per client, and a global budget
    of its own (not the reporters') that only clients with a failure in the last 15 minutes
    spend. Nothing is kept per account alone, so no one can lock a chosen account; and the keys
    are HMACs of what was typed, so an unknown e-mail address is limited exactly like a known
    one. An attempt takes its tokens before the password is checked (concurrent guesses cannot
    overrun a bucket) and a correct password gives them back."""

    def __init__(self, settings: Settings) -> None:
        self.trusted_proxies = settings.trusted_proxies
        self.enabled_per_client = settings.per_client_limits
        self._key = secrets.token_bytes(32)  # never leaves this process's memory
        self.per_account = TokenBuckets(settings.staff_login_per_client_account_per_15min, 900.0)
        self.per_client = TokenBuckets(settings.staff_login_per_client_per_15min, 900.0)
        self.global_ = TokenBuckets(settings.staff_login_global_per_minute, 60.0)
        self.failed_recently = RecentKeys(900.0)
        self.limited = 0
        # Sign-ins that start with no password (SSO, passkey without a password): each start
        # stores a short-lived row, so each client may start as many as it may try passwords.
        self.starts = TokenBuckets(settings.staff_login_per_client_per_15min, 900.0)
        self.starts_global = TokenBuckets(settings.staff_login_global_per_minute, 60.0)

    def guard(self, request: web.Request) -> StaffLoginGuard:
        return StaffLoginGuard(self, request)

    def start(self, request: web.Request) -> None:
        """RateLimited when this client (or everyone) started too many sign-ins lately."""
        if self.enabled_per_client:
            self.starts.take(client_key(request, self.trusted_proxies, self._key, "start"))
        self.starts_global.take(b"global")


@dataclass
class StaffLoginGuard:
    """One sign-in attempt's limits (``confide.services.staff.LoginGuard``)."""

    limits: StaffLoginLimits
    request: web.Request
    _taken: list[tuple[TokenBuckets, bytes]] = field(default_factory=list)
    _client: bytes | None = None

    def admit(self, account: str) -> None:
        """Take this attempt's tokens, or raise RateLimited taking none."""
        limits, now = self.limits, time.monotonic()
        steps: list[tuple[TokenBuckets, bytes]] = []
        if limits.enabled_per_client:
            self._client = client_key(
                self.request, limits.trusted_proxies, limits._key, "staff-client"
            )
            typed = account.encode("utf-8", "surrogatepass")
            steps.append(
                (limits.per_account, keyed_hash(limits._key, "staff-pair", self._client, typed))
            )
            steps.append((limits.per_client, self._client))
            if limits.failed_recently.is_recent(self._client, now):
                steps.append((limits.global_, b"staff"))
        else:
            # Every client shares one address (an onion service): the budget is all there is.
            steps.append((limits.global_, b"staff"))
        wait = max(buckets.wait_s(key, now) for buckets, key in steps)
        if wait:
            limits.limited += 1
            raise RateLimited(wait)
        for buckets, key in steps:
            buckets.take(key, now)
        self._taken = steps

    def failed(self) -> None:
        if self._client is not None:
            self.limits.failed_recently.mark(self._client)

    def succeeded(self) -> None:
        for buckets, key in self._taken:
            buckets.give_back(key)
        self._taken = []
