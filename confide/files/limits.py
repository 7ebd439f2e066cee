"""The organisation file's ``[attachments]`` table (docs/configuration.md): how many files, how
large, and which types. Plain values: the web checks uploads against them."""

from __future__ import annotations

from dataclasses import dataclass

from confide.errors import ConfigError
from confide.files.types import DEFAULT_TYPES, FileType

MIB = 1024 * 1024
# The slowest a request body may keep arriving (webapp.slow_clients stops a slower one with 408):
# what a file's streaming time is derived from.
BODY_MIN_BYTES_PER_S = 1024
KEYS = frozenset({"max_files", "max_total_mib", "max_file_mib", "allowed_types"})
# Beyond this a file is no longer "evidence from a phone" and the stripping limits would not hold.
MAX_FILE_MIB_CEILING = 200


@dataclass(frozen=True)
class AttachmentLimits:
    """Per report or per message. ``max_files = 0`` turns attachments off."""

    max_files: int = 10
    max_total_bytes: int = 50 * MIB
    max_file_bytes: int = 20 * MIB
    allowed_types: frozenset[FileType] = DEFAULT_TYPES


def parse_limits(value: object, where: str) -> AttachmentLimits:
    """``[attachments]``: max_files, max_total_mib, max_file_mib, allowed_types; each optional."""
    if value is None:
        return AttachmentLimits()
    if not isinstance(value, dict) or not set(value) <= KEYS:
        raise ConfigError(f"{where}: '[attachments]' may hold only {', '.join(sorted(KEYS))}")
    defaults = AttachmentLimits()

    def number(key: str, default: int, low: int, high: int) -> int:
        got = value.get(key, default)
        if isinstance(got, bool) or not isinstance(got, int) or not low <= got <= high:
            raise ConfigError(f"{where}: 'attachments.{key}' must be a whole number {low}–{high}")
        return got

    max_files = number("max_files", defaults.max_files, 0, 100)
    max_file = number("max_file_mib", defaults.max_file_bytes // MIB, 1, MAX_FILE_MIB_CEILING)
    max_total = number(
        "max_total_mib",
        max(defaults.max_total_bytes // MIB, max_file),
        1,
        100 * MAX_FILE_MIB_CEILING,
    )
    if max_total < max_file:
        raise ConfigError(f"{where}: 'attachments.max_total_mib' must be at least max_file_mib")
    return AttachmentLimits(
        max_files=max_files,
        max_total_bytes=max_total * MIB,
        max_file_bytes=max_file * MIB,
        allowed_types=_types(value.get("allowed_types"), where),
    )


def _types(value: object, where: str) -> frozenset[FileType]:
    if value is None:
        return DEFAULT_TYPES
    names = {t.value for t in FileType}
    if not isinstance(value, list) or not value or not all(v in names for v in value):
        raise ConfigError(
            f"{where}: 'attachments.allowed_types' must be a non-empty list of {', '.join(sorted(names))}"
        )
    return frozenset(FileType(v) for v in value)
