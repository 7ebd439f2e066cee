"""The attachment errors. Their messages name no file, no content and no path: they may reach
logs and task results."""

from __future__ import annotations

from enum import StrEnum

from confide.errors import ConfideError


class AttachmentError(ConfideError):
    """Base class for what goes wrong with one attached file."""


class TypeNotAllowed(AttachmentError):
    """The content is not one of the allowed types (judged by content, never by name): 415."""

    def __init__(self, detected: str) -> None:
        super().__init__(f"type not allowed: {detected}")
        self.detected = detected  # libmagic's MIME type, e.g. "application/x-pie-executable"


class FileTooLarge(AttachmentError):
    """One file, or the files together, exceed the organisation's limits: 413."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"over the limit of {limit_bytes} bytes")
        self.limit_bytes = limit_bytes


class UploadTooSlow(AttachmentError):
    """The upload was purged before it finished streaming (it took longer than its streaming
    time, derived from the file limit at the slowest body rate allowed): 408."""

    detail = "The upload took too long and was not kept. Send the file again."


class TooManyFiles(AttachmentError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} files")
        self.limit = limit


class StripFailure(StrEnum):
    """Why a file could not be made safe (recorded with the quarantined file; never content)."""

    DAMAGED = "damaged"  # does not parse as the type its content claims
    ENCRYPTED = "encrypted"  # a password-protected PDF: its metadata cannot be reached
    TOO_MANY_PIXELS = "too_many_pixels"  # an image that decodes to more pixels than allowed
    TOO_LARGE_INSIDE = "too_large_inside"  # a document whose parts unpack beyond the limits
    LEFT_OVER = "left_over"  # stripping ran, but the check afterwards still found metadata


class CannotStrip(AttachmentError):
    """The file cannot be made safe: the caller quarantines it (a manager may release it)."""

    def __init__(self, reason: StripFailure, file_type: str) -> None:
        super().__init__(f"cannot strip {file_type}: {reason.value}")
        self.reason = reason
        self.file_type = file_type
