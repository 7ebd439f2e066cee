"""The code scheme (CONTRACTS §2), settings (§1) and the confide command (§4)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from confide import codes
from confide.crypto import DecryptionError, Keyring
from confide.errors import CodeMalformed, ConfigError
from confide.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def env(tmp_path: Path, **extra: str) -> dict[str, str]:
    base = {
        "CONFIDE_DATA_DIR": str(tmp_path),
        "CONFIDE_ENCRYPTION_KEYS": "k1:" + base64.b64encode(b"\x01" * 32).decode(),
        "CONFIDE_LOOKUP_KEY": "lookup-key-for-tests",
        "CONFIDE_CODE_PEPPER": "pepper-for-tests",
        "CONFIDE_SESSION_KEY": "session-key-for-tests",
    }
    base.update(extra)
    return base


def test_codes_are_16_crockford_characters_shown_in_four_groups() -> None:
    seen = {codes.generate() for _ in range(200)}
    assert len(seen) == 200
    for code in seen:
        assert len(code) == 16 and set(code) <= set(codes.ALPHABET)
        shown = codes.display(code)
        assert len(shown) == 19 and shown.replace("-", "") == code
        assert shown.split("-") == [code[0:4], code[4:8], code[8:12], code[12:16]]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("7qkm-2xrd-9hwb-t4nf", "7QKM2XRD9HWBT4NF"),
        (" 7QKM 2XRD 9HWB T4NF ", "7QKM2XRD9HWBT4NF"),
        ("oIlL-2XRD-9HWB-T4NF", "0111" + "2XRD9HWBT4NF"),
        ("７ＱＫＭ２ＸＲＤ９ＨＷＢＴ４ＮＦ", "7QKM2XRD9HWBT4NF"),  # full-width, NFKC
    ],
)
def test_reporter_can_type_a_code_loosely(typed: str, expected: str) -> None:
    assert codes.normalise(typed) == expected


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "7QKM2XRD9HWBT4N",
        "7QKM2XRD9HWBT4NFX",
        "U" * 16,
        "7QKM2XRD9HWBT4N!",
        "0" * 10_000,
        "7QKM2XRD9HWB\x00T4N",
    ],
)
def test_malformed_codes_are_told_apart(typed: str) -> None:
    with pytest.raises(CodeMalformed):
        codes.normalise(typed)


def test_code_hashes_follow_the_contract(tmp_path: Path) -> None:
    settings = Settings.from_env(env(tmp_path))
    parts = codes.split(settings, "7QKM2XRD9HWBT4NF")
    assert (
        parts.lookup_hmac == hmac.new(b"lookup-key-for-tests", b"7QKM2X", hashlib.sha256).digest()
    )
    assert parts.prehash == hmac.new(b"pepper-for-tests", b"RD9HWBT4NF", hashlib.sha256).digest()
    hasher = codes.hasher(
        Settings.from_env(
            env(tmp_path, CONFIDE_ARGON2_MEMORY_KIB="64", CONFIDE_ARGON2_TIME_COST="1")
        )
    )
    one, two = (
        codes.make_verifier(hasher, parts.prehash),
        codes.make_verifier(hasher, parts.prehash),
    )
    assert one.startswith("$argon2id$") and one != two  # a per-row random salt
    assert codes.check_verifier(hasher, one, parts.prehash)
    assert not codes.check_verifier(hasher, one, b"x" * 32)


def test_settings_hide_secrets_and_name_what_is_wrong(tmp_path: Path) -> None:
    settings = Settings.from_env(env(tmp_path))
    assert "pepper-for-tests" not in repr(settings)
    with pytest.raises(ConfigError, match=r"^PORT must be between"):
        Settings.from_env(env(tmp_path, PORT="99999"))
    with pytest.raises(ConfigError, match=r"^CONFIDE_ENCRYPTION_KEYS"):
        Settings.from_env(env(tmp_path, CONFIDE_ENCRYPTION_KEYS="nope"))
    with pytest.raises(ConfigError, match=r"^DATABASE_URL must start with"):
        Settings.from_env(env(tmp_path, DATABASE_URL="mysql://x"))
    with pytest.raises(ConfigError, match=r"^CONFIDE_ENV"):
        Settings.from_env(env(tmp_path, CONFIDE_ENV="staging"))
    with pytest.raises(ConfigError, match=r"^CONFIDE_DB_POOL_SIZE must be between"):
        Settings.from_env(env(tmp_path, CONFIDE_DB_POOL_SIZE="0"))
    assert Settings.from_env(env(tmp_path, CONFIDE_DB_POOL_SIZE="30")).db_pool_size == 30


def test_secrets_can_come_from_files(tmp_path: Path) -> None:
    secret_file = tmp_path / "pepper"
    secret_file.write_text("from-a-file\n")
    values = env(tmp_path / "data", CONFIDE_CODE_PEPPER_FILE=str(secret_file))
    del values["CONFIDE_CODE_PEPPER"]
    assert Settings.from_env(values).code_pepper.get() == "from-a-file"


def test_development_generates_keys_once_and_production_refuses_them(tmp_path: Path) -> None:
    first = Settings.from_env({"CONFIDE_DATA_DIR": str(tmp_path)})
    again = Settings.from_env({"CONFIDE_DATA_DIR": str(tmp_path)})
    assert first.code_pepper == again.code_pepper
    assert "CONFIDE_CODE_PEPPER" in first.generated_keys
    assert oct((tmp_path / "secrets" / "CONFIDE_CODE_PEPPER").stat().st_mode)[-3:] == "600"
    with pytest.raises(ConfigError, match=r"CONFIDE_ENCRYPTION_KEYS is not set"):
        Settings.from_env({"CONFIDE_DATA_DIR": str(tmp_path), "CONFIDE_ENV": "production"})
    inside = env(
        tmp_path,
        CONFIDE_ENV="production",
        CONFIDE_LOOKUP_KEY_FILE=str(tmp_path / "secrets" / "CONFIDE_CODE_PEPPER"),
    )
    del inside["CONFIDE_LOOKUP_KEY"]
    with pytest.raises(ConfigError, match=r"must not point into CONFIDE_DATA_DIR"):
        Settings.from_env(inside)


def test_keyring_rotates_and_binds_ciphertext_to_its_row() -> None:
    old = ("old", secrets.token_bytes(32))
    new = ("new", secrets.token_bytes(32))
    sealed_old = Keyring([old]).seal("words", "threads.description:1")
    ring = Keyring([new, old])
    assert ring.open(sealed_old, "threads.description:1") == "words"
    sealed_new = ring.seal("words", "threads.description:1")
    assert ring.key_id_of(sealed_new) == "new"
    with pytest.raises(DecryptionError):
        ring.open(sealed_new, "threads.description:2")
    with pytest.raises(DecryptionError):
        Keyring([old]).open(sealed_new, "threads.description:1")


def run_confide(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "confide.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
        env={**os.environ, **extra},
    )


def test_confide_command_answers_usage_errors_with_status_2_and_one_line() -> None:
    result = run_confide("frobnicate")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_confide_command_names_a_bad_setting_in_one_line(tmp_path: Path) -> None:
    result = run_confide(
        "migrate",
        CONFIDE_DATA_DIR=str(tmp_path),
        PORT="nope",
        DATABASE_URL="postgresql://127.0.0.1:1/x",
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "confide: PORT must be a whole number"
    result = run_confide(
        "migrate",
        CONFIDE_DATA_DIR=str(tmp_path),
        DATABASE_URL="postgresql://postgres@127.0.0.1:1/x",
    )
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def production(tmp_path: Path, **extra: str) -> dict[str, str]:
    values = env(
        tmp_path,
        CONFIDE_ENV="production",
        CONFIDE_LOOKUP_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        CONFIDE_CODE_PEPPER=secrets.token_hex(32),
        CONFIDE_SESSION_KEY=secrets.token_urlsafe(32),
        CONFIDE_RECEIPT_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        CONFIDE_BASE_URL="https://report.example.org",
    )
    values.update(extra)
    return values


def test_production_refuses_short_keys(tmp_path: Path) -> None:
    assert Settings.from_env(production(tmp_path)).is_production
    short = {
        "CONFIDE_LOOKUP_KEY": base64.b64encode(secrets.token_bytes(31)).decode(),
        "CONFIDE_CODE_PEPPER": secrets.token_hex(16),  # 32 characters, 16 bytes
        "CONFIDE_SESSION_KEY": "session-key-for-tests",
    }
    for name, value in short.items():
        with pytest.raises(ConfigError, match=rf"^{name} must hold at least 32 random bytes"):
            Settings.from_env(production(tmp_path, **{name: value}))
        Settings.from_env(env(tmp_path, **{name: value}))  # development takes what it is given


@pytest.mark.parametrize(
    ("memory_kib", "time_cost", "accepted"),
    [
        (19456, 2, True),
        (47104, 1, True),
        (65536, 3, True),
        (19456, 1, False),
        (47103, 1, False),
        (19455, 5, False),
    ],
)
def test_production_refuses_argon2_below_owasp(
    tmp_path: Path, memory_kib: int, time_cost: int, accepted: bool
) -> None:
    values = production(
        tmp_path,
        CONFIDE_ARGON2_MEMORY_KIB=str(memory_kib),
        CONFIDE_ARGON2_TIME_COST=str(time_cost),
        CONFIDE_ARGON2_PARALLELISM="4",
    )
    if accepted:
        Settings.from_env(values)
    else:
        with pytest.raises(ConfigError, match=r"^CONFIDE_ARGON2_MEMORY_KIB and .* OWASP"):
            Settings.from_env(values)


def test_production_behind_a_proxy_refuses_to_pool_every_reporter(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^CONFIDE_TRUSTED_PROXIES must name the proxy"):
        Settings.from_env(production(tmp_path, CONFIDE_TRUST_PROXY="1"))
    named = Settings.from_env(
        production(tmp_path, CONFIDE_TRUST_PROXY="1", CONFIDE_TRUSTED_PROXIES="172.28.0.1, ::1")
    )
    assert [str(n) for n in named.trusted_proxies] == ["172.28.0.1/32", "::1/128"]
    # An onion service: per-client limits off, nothing to name.
    Settings.from_env(production(tmp_path, CONFIDE_TRUST_PROXY="1", CONFIDE_PER_CLIENT_LIMITS="0"))
    for bad in ("10.0.0.0/33", "proxy.example", "10.0.0.1/24"):
        with pytest.raises(ConfigError, match=r"^CONFIDE_TRUSTED_PROXIES must be"):
            Settings.from_env(env(tmp_path, CONFIDE_TRUSTED_PROXIES=bad))


def test_web_names_a_bad_trusted_proxies_setting_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "webapp"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
        env={**os.environ, **env(tmp_path, CONFIDE_TRUSTED_PROXIES="nginx")},
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("confide: CONFIDE_TRUSTED_PROXIES must be")
    assert len(result.stderr.strip().splitlines()) == 1


def test_base_url_is_localhost_in_development_and_required_in_production(tmp_path: Path) -> None:
    """Passkeys' relying party id is its host, which cannot be an IP address (CONTRACTS §1)."""
    development = Settings.from_env({"CONFIDE_DATA_DIR": str(tmp_path), "PORT": "8123"})
    assert development.base_url == "http://localhost:8123"
    values = production(tmp_path)
    del values["CONFIDE_BASE_URL"]
    with pytest.raises(ConfigError, match=r"^CONFIDE_BASE_URL is not set \(required in production"):
        Settings.from_env(values)
    with pytest.raises(ConfigError, match=r"^CONFIDE_BASE_URL must be http\(s\)://host"):
        Settings.from_env(production(tmp_path, CONFIDE_BASE_URL="https://example.org/confide"))
    given = Settings.from_env(production(tmp_path, CONFIDE_BASE_URL="https://report.example.org/"))
    assert given.base_url == "https://report.example.org"
