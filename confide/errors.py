"""Domain exceptions. ``webapp.errors`` maps them to HTTP statuses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


class ConfideError(Exception):
    """Base class for every error the domain raises on purpose."""


class ConfigError(ConfideError):
    """A setting is missing or invalid. The message is one line naming it."""


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class ValidationFailed(ConfideError):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(f"{len(errors)} invalid field(s)")
        self.errors = errors


class CodeMalformed(ConfideError):
    """The text cannot be a code: wrong length or characters."""


class CodeNotRecognised(ConfideError):
    """No code matches; deliberately says nothing about whether a report exists."""


class RateLimited(ConfideError):
    def __init__(self, retry_after: int) -> None:
        super().__init__("rate limited")
        self.retry_after = max(1, int(retry_after))


class NotFound(ConfideError):
    pass


class ThreadClosed(ConfideError):
    pass


class CodeNotIssued(ConfideError):
    """The report is saved but no working code could be made yet; a retry issues one."""


class DatabaseUnavailable(ConfideError):
    """PostgreSQL did not answer: nothing was accepted."""


class IdempotencyKeyReused(ConfideError):
    """The same idempotency key came back with a different request (CONTRACTS §3): 422."""


class RequestInProgress(ConfideError):
    """The first request with this idempotency key is still running (CONTRACTS §3): 409."""

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class FormExpired(ConfideError):
    """An HTML submit token too old to start a new submission (it may still answer a repeat)."""


class ReminderNotReady(ConfideError):
    """The reminder file is still being made by a worker (503, try again in a moment)."""

    retry_after = 3


class ReminderLinkUsed(ConfideError):
    """A confirmation page's single-use reminder token was used already or has expired (403)."""


class ReceiptInvalid(ValidationFailed):
    """A pasted or uploaded receipt that does not verify (422), with why, in ``reason``. Its
    field is ``receipt``, the check forms' text area. One line, for ``confide receipt verify``."""

    EMPTY = "empty"
    MALFORMED = "malformed"
    MISSING = "missing"
    VERSION = "version"
    UNKNOWN_KEY = "unknown_key"
    SIGNATURE = "signature"
    REASONS: ClassVar[dict[str, str]] = {
        EMPTY: "there is no receipt",
        MALFORMED: "this is not a receipt (not the JSON object of one)",
        MISSING: "this is not a receipt (a member is missing or not what a receipt holds)",
        VERSION: "this receipt is of a version this service does not know",
        UNKNOWN_KEY: "this receipt was signed by a key this service does not know",
        SIGNATURE: "the signature does not match: the receipt was changed or is not ours",
    }

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.detail = f"receipt does not verify: {self.REASONS[reason]}"
        super().__init__([FieldError("receipt", self.REASONS[reason].capitalize())])
        self.args = (self.detail,)


class ReceiptLinkExpired(ConfideError):
    """The confirmation page's receipt token is forged or older than its 24 hours (403)."""
