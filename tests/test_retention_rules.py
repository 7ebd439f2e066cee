"""The rules behind retention, without the stack: durations, the lifecycle table of the
organisation file, which keyring key wraps a thread key, and what a thread key's AAD binds."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest

from confide import org
from confide.crypto import DecryptionError, Keyring, quarter_of, quarter_tag
from confide.errors import ConfigError
from confide.org import Duration, parse_duration
from confide.settings import Settings, parse_keyring


def key(key_id: str) -> str:
    return f"{key_id}:" + base64.b64encode(secrets.token_bytes(32)).decode()


def test_durations_read_as_people_write_them_and_add_calendar_months() -> None:
    assert parse_duration("12 months", "x") == Duration(months=12)
    assert parse_duration("1 year", "x") == Duration(months=12)
    assert parse_duration("2 weeks", "x") == Duration(days=14)
    assert parse_duration(" 30 days ", "x") == Duration(days=30)
    for bad in ("12", "twelve months", "12 fortnights", "", 12, "-1 days", "0 days"):
        with pytest.raises(ConfigError, match="'x' must look like"):
            parse_duration(bad, "x")
    assert parse_duration("100 years", "x") == Duration(months=1200)
    for too_long in ("101 years", "9999 years", "9999 weeks"):  # no date overflows, no 500
        with pytest.raises(ConfigError, match="'x' must be at most 100 years"):
            parse_duration(too_long, "x")
    jan31 = datetime(2027, 1, 31, 10, tzinfo=UTC)
    assert Duration(months=1).after(jan31) == datetime(2027, 2, 28, 10, tzinfo=UTC)
    assert Duration(months=12).after(jan31) == datetime(2028, 1, 31, 10, tzinfo=UTC)
    assert str(Duration(months=24)) == "2 years" and str(Duration(days=14)) == "2 weeks"


def test_the_organisation_file_sets_retention_per_category(tmp_path: Path) -> None:
    demo = (Path(org.__file__).parent / "data" / "demo-org.toml").read_text()
    assert org.load(Path(org.__file__).parent / "data" / "demo-org.toml").lifecycle == (
        org.Lifecycle()
    )
    path = tmp_path / "org.toml"
    path.write_text(
        demo.replace('id = "staff-conduct"', 'id = "staff-conduct"\nretention = "6 years"')
        + '\n[lifecycle]\nretention = "2 years"\nerasure_warning_days = 5\nclocks = []\n'
    )
    rules = org.load(path).lifecycle
    assert rules.retention_for("staff-conduct") == Duration(months=72)
    assert rules.retention_for("safety") == Duration(months=24)
    assert rules.erasure_warning_days == 5
    assert rules.close_inactive_after == Duration(months=12)
    path.write_text(demo + '\n[lifecycle]\nretention = "for ever"\n')
    with pytest.raises(ConfigError, match=r"lifecycle\.retention"):
        org.load(path)
    path.write_text(demo + "\n[lifecycle]\nerasure_warning_days = -1\n")
    with pytest.raises(ConfigError, match="erasure_warning_days"):
        org.load(path)


def test_thread_keys_are_wrapped_by_their_quarter_else_by_the_first_key() -> None:
    ring = Keyring(parse_keyring(",".join([key("k1"), key("k-2027q3"), key("2027Q3-b")])))
    assert quarter_tag("k-2027q3") == "2027q3" and quarter_tag("k1") is None
    assert quarter_of(datetime(2027, 9, 30, 23, 59, tzinfo=UTC)) == "2027q3"
    assert ring.key_id_for_quarter("2027q3") == "k-2027q3"  # the first of that quarter
    assert ring.key_id_for_quarter("2027q4") == "k1"  # no key for it: the first key
    assert ring.key_id_for_quarter(None) == "k1"  # a legal hold: no date at all
    one = Keyring(parse_keyring(key("only")))  # a one-key deployment keeps working
    assert one.key_id_for_quarter("2031q1") == "only"

    thread = uuid4()
    cipher, key_id, wrapped = ring.new_thread_key(thread, "2027q3")
    assert key_id == "k-2027q3" and ring.key_id_of(wrapped) == "k-2027q3"
    sealed = cipher.seal("Words", f"messages.body:{thread}")
    assert ring.thread_key(thread, wrapped).open(sealed, f"messages.body:{thread}") == "Words"
    # Rewrapped for another quarter: the same key, so the content needs no re-encryption.
    moved_id, moved = ring.rewrap(thread, wrapped, "2027q4")
    assert moved_id == "k1"
    assert ring.thread_key(thread, moved).open(sealed, f"messages.body:{thread}") == "Words"
    # The AAD names the row and the thread: a row moved to another thread does not open.
    other = uuid4()
    _, _, other_wrapped = ring.new_thread_key(other, "2027q3")
    with pytest.raises(DecryptionError):
        ring.thread_key(other, other_wrapped).open(sealed, f"messages.body:{thread}")
    with pytest.raises(DecryptionError):
        ring.thread_key(other, wrapped)  # a wrap moved to another thread does not unwrap
    # Without the quarter's key (retired), the wrap is noise.
    retired = Keyring(parse_keyring(key("k1")))
    with pytest.raises(DecryptionError):
        retired.thread_key(thread, wrapped)


def test_development_generates_a_key_per_quarter_after_an_untagged_first_key(
    tmp_path: Path,
) -> None:
    settings = Settings.from_env({"CONFIDE_DATA_DIR": str(tmp_path)})
    ring = Keyring.from_secret(settings.encryption_keys)
    assert ring.primary_id == "dev1"
    now = quarter_of(datetime.now(UTC))
    assert ring.key_id_for_quarter(now) == f"dev-{now}"
    assert len(ring.ids) == 1 + 17
    again = Keyring.from_secret(
        Settings.from_env({"CONFIDE_DATA_DIR": str(tmp_path)}).encryption_keys
    )
    assert again.ids == ring.ids  # kept, not made again
