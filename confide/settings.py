"""One frozen settings object, built from the environment (CONTRACTS §1).

A secret comes from ``NAME`` or from the file named in ``NAME_FILE``. In development a missing key is
generated once into the data dir; in production that is refused.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from confide.errors import ConfigError

DEFAULT_ORG_FILE = Path(__file__).parent / "data" / "demo-org.toml"
MIN_KEY_BYTES = 32  # production: HMAC and signing keys (CONTRACTS §1)
# OWASP's argon2id minimums: (memory KiB, time cost); any parallelism (CONTRACTS §1).
ARGON2_MINIMUMS = ((19456, 2), (47104, 1))

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Secret:
    """A secret value whose ``repr`` never shows it."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "env") -> None:
        self._value = value
        self.source = source  # "env", "file:<path>" or "generated"

    def get(self) -> str:
        return self._value

    def bytes(self) -> bytes:
        return self._value.encode("utf-8")

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and secrets.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash("secret")


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    redis_url: str | None
    smtp_url: str | None
    mail_from: str
    port: int
    data_dir: Path
    env: str
    org_file: Path
    encryption_keys: Secret
    lookup_key: Secret
    code_pepper: Secret
    session_key: Secret
    metrics_token: Secret | None
    trust_proxy: bool
    # The Ed25519 seed that signs reporters' receipts, and the public keys of retired receipt
    # keys, which still verify (docs/deploy.md "Receipt key").
    receipt_key: Secret
    receipt_retired_keys: tuple[bytes, ...] = ()
    trusted_proxies: tuple[Network, ...] = ()
    # Not in CONTRACTS §1, documented in docs/configuration.md.
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    hash_timeout_s: float = 3.0
    local_hash_threads: int = 2
    per_client_limits: bool = True
    submit_per_client_per_hour: int = 20
    submit_global_per_minute: int = 120
    upload_per_client_per_hour: int = 60  # files sent by reporters (docs/configuration.md)
    upload_global_per_minute: int = 240
    upload_mib_per_client_per_hour: int = 200  # bytes of reporters' files, as they stream in
    pending_uploads_max_mib: int = 2048  # reporters' unattached uploads, in all
    reply_target_workdays: int = 2
    login_per_client_per_15min: int = 10
    argon2_global_per_minute: int = 1200
    # Staff password sign-in (docs/security.md "Staff sign-in limits"), per web process:
    # attempts per (client, e-mail typed) and per client per 15 minutes, and the global budget a
    # minute that only clients with a failure in the last 15 minutes spend. A correct password
    # gives its attempt back.
    staff_login_per_client_account_per_15min: int = 5
    staff_login_per_client_per_15min: int = 20
    staff_login_global_per_minute: int = 60
    reporter_idle_minutes: int = 30
    draft_idle_minutes: int = 60
    reporter_max_hours: int = 8
    staff_idle_minutes: int = 30
    staff_max_hours: int = 12
    show_staff_names: bool = False
    # The public address: links in mails, and the passkeys' relying party (its host, never an
    # IP address, is the RP id). Required in production (CONTRACTS §1).
    base_url: str = "http://localhost:8080"
    escalation_interval_s: int = 300
    digest_time: str = "09:00"
    nearing_working_hours: float = 8.0
    outbox_max_attempts: int = 8
    dev_mail_dir: Path | None = None
    worker_heartbeat_s: float = 10.0
    worker_down_after_s: float = 45.0
    # Where the files worker decrypts an original to strip it (docs/deploy.md "Strip folder"):
    # CONFIDE_STRIP_DIR, by default <data dir>/strip. Mount it as tmpfs.
    strip_dir: Path | None = None
    # The address space a stripping child may take (CONFIDE_STRIP_MEMORY_MIB).
    strip_memory_mib: int = 2048
    bind_host: str = "127.0.0.1"
    onion_location: str | None = None
    db_timeout_s: float = 30.0
    db_pool_size: int = 12  # connections per web process (docs/configuration.md)
    log_level: str = "INFO"
    generated_keys: tuple[str, ...] = field(default=())
    # Staff single sign-on through OpenID Connect (CONTRACTS §1): all three or none.
    oidc: OidcClient | None = None

    @property
    def strip_folder(self) -> Path:
        return self.strip_dir if self.strip_dir is not None else self.data_dir / "strip"

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        mode = env.get("CONFIDE_ENV", "development").strip() or "development"
        if mode not in ("development", "production"):
            raise ConfigError("CONFIDE_ENV must be 'development' or 'production'")
        data_dir = Path(env.get("CONFIDE_DATA_DIR", "./var")).resolve()
        generated: list[str] = []

        def secret(name: str, maker: str = "token") -> Secret:
            value = _read_secret(env, name, data_dir, production=mode == "production")
            if value is not None:
                return value
            if mode == "production":
                raise ConfigError(f"{name} is not set (required in production)")
            generated.append(name)
            return _generated_secret(data_dir, name, maker)

        keys = secret("CONFIDE_ENCRYPTION_KEYS", maker="keyring")
        parse_keyring(keys.get())  # fail early with a clear line

        def receipt_key() -> Secret:
            value = secret("CONFIDE_RECEIPT_KEY", maker="seed")
            receipt_seed(value.get())  # fail early with a clear line
            return value

        settings = cls(
            database_url=_url(env, "DATABASE_URL", ("postgres", "postgresql")),
            redis_url=_url(env, "REDIS_URL", ("redis", "rediss", "redis+socket", "unix")),
            smtp_url=_url(env, "SMTP_URL", ("smtp", "smtps")),
            mail_from=env.get("MAIL_FROM", "confide@localhost"),
            port=_int(env, "PORT", 8080, 1, 65535),
            data_dir=data_dir,
            env=mode,
            org_file=Path(env.get("CONFIDE_ORG_FILE") or DEFAULT_ORG_FILE),
            encryption_keys=keys,
            lookup_key=secret("CONFIDE_LOOKUP_KEY"),
            code_pepper=secret("CONFIDE_CODE_PEPPER"),
            session_key=secret("CONFIDE_SESSION_KEY"),
            metrics_token=_read_secret(env, "CONFIDE_METRICS_TOKEN", data_dir, production=False),
            trust_proxy=_bool(env, "CONFIDE_TRUST_PROXY", False),
            receipt_key=receipt_key(),  # after the keys above, so their errors come first
            receipt_retired_keys=_public_keys(env, "CONFIDE_RECEIPT_RETIRED_KEYS"),
            trusted_proxies=_networks(env, "CONFIDE_TRUSTED_PROXIES"),
            argon2_time_cost=_int(env, "CONFIDE_ARGON2_TIME_COST", 2, 1, 20),
            argon2_memory_kib=_int(env, "CONFIDE_ARGON2_MEMORY_KIB", 19456, 8, 4_194_304),
            argon2_parallelism=_int(env, "CONFIDE_ARGON2_PARALLELISM", 1, 1, 16),
            hash_timeout_s=_float(env, "CONFIDE_HASH_TIMEOUT", 3.0, 0.1, 60.0),
            local_hash_threads=_int(env, "CONFIDE_LOCAL_HASH_THREADS", 2, 1, 64),
            per_client_limits=_bool(env, "CONFIDE_PER_CLIENT_LIMITS", True),
            submit_per_client_per_hour=_int(
                env, "CONFIDE_SUBMIT_PER_CLIENT_PER_HOUR", 20, 1, 10**9
            ),
            submit_global_per_minute=_int(env, "CONFIDE_SUBMIT_GLOBAL_PER_MINUTE", 120, 1, 10**9),
            upload_per_client_per_hour=_int(
                env, "CONFIDE_UPLOAD_PER_CLIENT_PER_HOUR", 60, 1, 10**9
            ),
            upload_global_per_minute=_int(env, "CONFIDE_UPLOAD_GLOBAL_PER_MINUTE", 240, 1, 10**9),
            upload_mib_per_client_per_hour=_int(
                env, "CONFIDE_UPLOAD_MIB_PER_CLIENT_PER_HOUR", 200, 1, 10**6
            ),
            pending_uploads_max_mib=_int(env, "CONFIDE_PENDING_UPLOADS_MAX_MIB", 2048, 1, 10**9),
            reply_target_workdays=_int(env, "CONFIDE_REPLY_TARGET_WORKDAYS", 2, 1, 30),
            login_per_client_per_15min=_int(
                env, "CONFIDE_LOGIN_PER_CLIENT_PER_15MIN", 10, 1, 10**9
            ),
            argon2_global_per_minute=_int(env, "CONFIDE_ARGON2_GLOBAL_PER_MINUTE", 1200, 1, 10**9),
            staff_login_per_client_account_per_15min=_int(
                env, "CONFIDE_STAFF_LOGIN_PER_CLIENT_ACCOUNT_PER_15MIN", 5, 1, 10**9
            ),
            staff_login_per_client_per_15min=_int(
                env, "CONFIDE_STAFF_LOGIN_PER_CLIENT_PER_15MIN", 20, 1, 10**9
            ),
            staff_login_global_per_minute=_int(
                env, "CONFIDE_STAFF_LOGIN_GLOBAL_PER_MINUTE", 60, 1, 10**9
            ),
            reporter_idle_minutes=_int(env, "CONFIDE_REPORTER_IDLE_MINUTES", 30, 1, 24 * 60),
            draft_idle_minutes=_int(env, "CONFIDE_DRAFT_IDLE_MINUTES", 60, 1, 24 * 60),
            reporter_max_hours=_int(env, "CONFIDE_REPORTER_MAX_HOURS", 8, 1, 24 * 7),
            staff_idle_minutes=_int(env, "CONFIDE_STAFF_IDLE_MINUTES", 30, 1, 24 * 60),
            staff_max_hours=_int(env, "CONFIDE_STAFF_MAX_HOURS", 12, 1, 24 * 7),
            show_staff_names=_bool(env, "CONFIDE_SHOW_STAFF_NAMES", False),
            base_url=_base_url(env, mode),
            escalation_interval_s=_int(env, "CONFIDE_ESCALATION_INTERVAL_S", 300, 10, 86400),
            digest_time=_hhmm(env, "CONFIDE_DIGEST_TIME", "09:00"),
            nearing_working_hours=_float(env, "CONFIDE_NEARING_WORKING_HOURS", 8.0, 0.25, 200.0),
            outbox_max_attempts=_int(env, "CONFIDE_OUTBOX_MAX_ATTEMPTS", 8, 1, 100),
            worker_heartbeat_s=_float(env, "CONFIDE_WORKER_HEARTBEAT_S", 10.0, 0.2, 300.0),
            worker_down_after_s=_float(env, "CONFIDE_WORKER_DOWN_AFTER_S", 45.0, 1.0, 3600.0),
            bind_host=env.get("CONFIDE_BIND")
            or ("0.0.0.0" if mode == "production" else "127.0.0.1"),  # noqa: S104
            db_timeout_s=_float(env, "CONFIDE_DB_TIMEOUT_S", 30.0, 0.5, 600.0),
            db_pool_size=_int(env, "CONFIDE_DB_POOL_SIZE", 12, 1, 200),
            onion_location=(env.get("CONFIDE_ONION_LOCATION") or "").rstrip("/") or None,
            dev_mail_dir=(
                Path(env["CONFIDE_DEV_MAIL_DIR"])
                if env.get("CONFIDE_DEV_MAIL_DIR") and mode == "development"
                else None
            ),
            log_level=env.get("CONFIDE_LOG_LEVEL", "INFO").upper(),
            strip_memory_mib=_int(env, "CONFIDE_STRIP_MEMORY_MIB", 2048, 256, 1 << 20),
            strip_dir=(
                Path(env["CONFIDE_STRIP_DIR"]).resolve() if env.get("CONFIDE_STRIP_DIR") else None
            ),
            generated_keys=tuple(generated),
            oidc=_oidc(env, data_dir, production=mode == "production"),
        )
        if not settings.org_file.is_file():
            raise ConfigError(f"CONFIDE_ORG_FILE: no such file: {settings.org_file}")
        if settings.is_production:
            settings._check_production()
        return settings

    def _check_production(self) -> None:
        """What production refuses beyond missing keys (CONTRACTS §1), one line each."""
        for name, value in (
            ("CONFIDE_LOOKUP_KEY", self.lookup_key),
            ("CONFIDE_CODE_PEPPER", self.code_pepper),
            ("CONFIDE_SESSION_KEY", self.session_key),
        ):
            if len(decoded_key(value.get())) < MIN_KEY_BYTES:
                raise ConfigError(
                    f"{name} must hold at least {MIN_KEY_BYTES} random bytes in production "
                    "(e.g. `openssl rand -base64 32`)"
                )
        if not any(
            self.argon2_memory_kib >= memory and self.argon2_time_cost >= time_cost
            for memory, time_cost in ARGON2_MINIMUMS
        ):
            raise ConfigError(
                "CONFIDE_ARGON2_MEMORY_KIB and CONFIDE_ARGON2_TIME_COST are below OWASP's minimum "
                "in production (19456 KiB with time cost 2, or 47104 KiB with time cost 1)"
            )
        if self.trust_proxy and self.per_client_limits and not self.trusted_proxies:
            raise ConfigError(
                "CONFIDE_TRUSTED_PROXIES must name the proxy when CONFIDE_TRUST_PROXY=1 and "
                "per-client limits are on: every reporter would share the proxy's bucket"
            )

    def require_database(self) -> str:
        if not self.database_url:
            raise ConfigError("DATABASE_URL is not set (`confide run` starts an embedded server)")
        return self.database_url

    def require_redis(self) -> str:
        if not self.redis_url:
            raise ConfigError("REDIS_URL is not set (`confide run` starts an embedded server)")
        return self.redis_url


def _base_url(env: Mapping[str, str], mode: str) -> str:
    """CONFIDE_BASE_URL: ``http://localhost:$PORT`` in development when unset; required in
    production. scheme://host[:port] with nothing after it but an optional slash."""
    value = (env.get("CONFIDE_BASE_URL") or "").strip()
    if not value:
        if mode == "production":
            raise ConfigError(
                "CONFIDE_BASE_URL is not set (required in production: the public https:// "
                "address, which passkeys are bound to)"
            )
        return f"http://localhost:{env.get('PORT') or 8080}"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError("CONFIDE_BASE_URL must be http(s)://host[:port], with no path")
    return value.rstrip("/")


@dataclass(frozen=True)
class OidcClient:
    """Confide as an OpenID Connect client of the organisation's identity provider."""

    issuer: str  # exactly as the provider's discovery document and ID tokens name it
    client_id: str
    client_secret: Secret


OIDC_NAMES = ("CONFIDE_OIDC_ISSUER", "CONFIDE_OIDC_CLIENT_ID", "CONFIDE_OIDC_CLIENT_SECRET")


def _oidc(env: dict[str, str], data_dir: Path, *, production: bool) -> OidcClient | None:
    """CONFIDE_OIDC_ISSUER, _CLIENT_ID and _CLIENT_SECRET (or _CLIENT_SECRET_FILE): all or none."""
    issuer = env.get("CONFIDE_OIDC_ISSUER", "").strip()
    client_id = env.get("CONFIDE_OIDC_CLIENT_ID", "").strip()
    secret = _read_secret(env, "CONFIDE_OIDC_CLIENT_SECRET", data_dir, production=production)
    given = [bool(issuer), bool(client_id), secret is not None]
    if not any(given):
        return None
    if not all(given):
        missing = next(name for name, ok in zip(OIDC_NAMES, given, strict=True) if not ok)
        raise ConfigError(
            f"{missing} is not set: single sign-on needs all three of {', '.join(OIDC_NAMES)}"
        )
    parts = urlsplit(issuer)
    allowed = ("https",) if production else ("https", "http")
    if parts.scheme not in allowed or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(
            "CONFIDE_OIDC_ISSUER must be the provider's https:// issuer address"
            + ("" if production else " (http:// is allowed in development)")
        )
    assert secret is not None
    return OidcClient(issuer, client_id, secret)


def parse_keyring(text: str) -> list[tuple[str, bytes]]:
    """Parse ``id:base64key[,id:base64key…]``; the first key encrypts."""
    keys: list[tuple[str, bytes]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key_id, sep, b64 = part.partition(":")
        if not sep or not key_id or len(key_id) > 32 or not key_id.isascii():
            raise ConfigError("CONFIDE_ENCRYPTION_KEYS must look like id:base64key[,id:base64key]")
        try:
            raw = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"CONFIDE_ENCRYPTION_KEYS: key {key_id!r} is not base64") from None
        if len(raw) != 32:
            raise ConfigError(f"CONFIDE_ENCRYPTION_KEYS: key {key_id!r} must be 32 bytes")
        if any(k == key_id for k, _ in keys):
            raise ConfigError(f"CONFIDE_ENCRYPTION_KEYS: key id {key_id!r} appears twice")
        keys.append((key_id, raw))
    if not keys:
        raise ConfigError("CONFIDE_ENCRYPTION_KEYS holds no key")
    return keys


RECEIPT_KEY_FORMAT = (
    "CONFIDE_RECEIPT_KEY must be the base64 of a 32-byte Ed25519 seed "
    "(e.g. `openssl rand -base64 32`)"
)


def _base64_32(text: str) -> bytes | None:
    """The 32 bytes of a base64 text (either alphabet, padding optional), else None."""
    value = text.strip()
    padded = value + "=" * (-len(value) % 4)
    for altchars in (b"+/", b"-_"):
        try:
            raw = base64.b64decode(padded, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
        return raw if len(raw) == 32 else None
    return None


def receipt_seed(text: str) -> bytes:
    """The 32-byte Ed25519 seed of ``CONFIDE_RECEIPT_KEY``; exactly that, in every mode."""
    raw = _base64_32(text)
    if raw is None:
        raise ConfigError(RECEIPT_KEY_FORMAT)
    return raw


def _public_keys(env: dict[str, str], name: str) -> tuple[bytes, ...]:
    """Comma-separated base64 Ed25519 public keys (32 bytes each)."""
    keys: list[bytes] = []
    for part in (p.strip() for p in env.get(name, "").split(",")):
        if not part:
            continue
        raw = _base64_32(part)
        if raw is None:
            raise ConfigError(
                f"{name} must be comma-separated base64 Ed25519 public keys of 32 bytes "
                f"(not {part[:60]!r})"
            )
        keys.append(raw)
    return tuple(keys)


def decoded_key(text: str) -> bytes:
    """The bytes a key stands for: hex, else base64 (either alphabet, padding optional), else its
    UTF-8 text. Hex first, so that 64 hex digits count as the 32 bytes they are."""
    value = text.strip()
    if value and len(value) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in value):
        return bytes.fromhex(value)
    padded = value + "=" * (-len(value) % 4)
    for altchars in (b"+/", b"-_"):
        try:
            return base64.b64decode(padded, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
    return value.encode("utf-8")


def _networks(env: dict[str, str], name: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs (a bare address is a /32 or /128)."""
    networks: list[Network] = []
    for part in (p.strip() for p in env.get(name, "").split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=True))
        except ValueError:
            raise ConfigError(
                f"{name} must be comma-separated CIDRs like 172.28.0.0/24 (not {part[:60]!r})"
            ) from None
    return tuple(networks)


def _read_secret(
    env: dict[str, str], name: str, data_dir: Path, *, production: bool
) -> Secret | None:
    value = env.get(name)
    if value:
        return Secret(value.strip(), "env")
    path_text = env.get(f"{name}_FILE")
    if not path_text:
        return None
    path = Path(path_text).resolve()
    if production and _is_within(path, data_dir):
        raise ConfigError(f"{name}_FILE must not point into CONFIDE_DATA_DIR in production")
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        raise ConfigError(f"{name}_FILE: cannot read {path}") from None
    if not text:
        raise ConfigError(f"{name}_FILE: {path} is empty")
    return Secret(text, f"file:{path}")


def _generated_secret(data_dir: Path, name: str, maker: str) -> Secret:
    """Development only: make a key once and keep it in ``<data dir>/secrets/NAME`` (mode 0600)."""
    folder = data_dir / "secrets"
    path = folder / name
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if maker == "keyring":
            value = "dev1:" + base64.b64encode(secrets.token_bytes(32)).decode()
        elif maker == "seed":  # an Ed25519 private key (CONFIDE_RECEIPT_KEY)
            value = base64.b64encode(secrets.token_bytes(32)).decode()
        else:
            value = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
    if maker == "keyring":
        _add_dev_quarter_keys(path)
    return Secret(path.read_text().strip(), "generated")


DEV_QUARTERS_AHEAD = 16  # four years: the longest retention plus inactivity, with room


def _add_dev_quarter_keys(path: Path) -> None:
    """Development only: a key for each quarter from this one to four years on (``dev-2027q3``),
    after the untagged first key, so thread keys are wrapped by quarter as in production
    (docs/lifecycle.md "Keys"). Missing quarters are appended as time goes by."""
    text = path.read_text().strip()
    have = {part.partition(":")[0] for part in text.split(",")}
    now = datetime.now(UTC)
    index = now.year * 4 + (now.month - 1) // 3
    added = []
    for i in range(index, index + DEV_QUARTERS_AHEAD + 1):
        key_id = f"dev-{i // 4}q{i % 4 + 1}"
        if key_id not in have:
            added.append(key_id + ":" + base64.b64encode(secrets.token_bytes(32)).decode())
    if added:
        path.write_text(",".join([text, *added]) + "\n")


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def _url(env: dict[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    scheme = urlsplit(value).scheme
    if scheme not in schemes:
        raise ConfigError(f"{name} must start with one of: {', '.join(s + '://' for s in schemes)}")
    return value


def _int(env: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}")
    return value


def _float(env: dict[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}")
    return value


def _hhmm(env: dict[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip() or default
    parts = raw.split(":")
    if (
        len(parts) != 2
        or not all(p.isdigit() for p in parts)
        or not (0 <= int(parts[0]) < 24 and 0 <= int(parts[1]) < 60)
    ):
        raise ConfigError(f"{name} must be a time like 09:00")
    return f"{int(parts[0]):02d}:{int(parts[1]):02d}"


def _bool(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 0 or 1")
