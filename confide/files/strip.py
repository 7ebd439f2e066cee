"""Stripping a file on disk, by the type its content was identified as.

``strip_file`` is what the ``files`` worker runs (workers/tasks/files.py) on a decrypted copy:
it reads ``src`` and writes ``dst``, streaming where the format allows (JPEG segments, zip parts,
audio boxes; qpdf reads PDF objects as it needs them), and raises ``CannotStrip`` for a file
that does not parse as its type or cannot be made safe, so that the caller quarantines it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confide.files.audio import strip_m4a, strip_mp3
from confide.files.errors import CannotStrip, FileTooLarge, StripFailure
from confide.files.images import strip_heic, strip_jpeg, strip_png
from confide.files.limits import AttachmentLimits
from confide.files.office import strip_docx, strip_odt
from confide.files.pdf import strip_pdf
from confide.files.types import FileType, check_allowed, identify

CHUNK = 1 << 16


def copy_text(src: Path, dst: Path) -> None:
    """Plain text is kept as it is: nothing normalised (line endings, encoding, spacing)."""
    shutil.copyfile(src, dst)


STRIPPERS: dict[FileType, Callable[[Path, Path], None]] = {
    FileType.JPEG: strip_jpeg,
    FileType.PNG: strip_png,
    FileType.HEIC: strip_heic,
    FileType.PDF: strip_pdf,
    FileType.DOCX: strip_docx,
    FileType.ODT: strip_odt,
    FileType.TEXT: copy_text,
    FileType.MP3: strip_mp3,
    FileType.M4A: strip_m4a,
}


def strip_file(src: Path, dst: Path, file_type: FileType) -> None:
    """Writes the stripped copy of ``src`` to ``dst``; raises CannotStrip (``dst`` then removed).

    Safe to retry: the same input gives the same kind of output, and ``dst`` is overwritten.
    """
    try:
        STRIPPERS[file_type](src, dst)
    except CannotStrip:
        dst.unlink(missing_ok=True)
        raise
    except MemoryError:
        dst.unlink(missing_ok=True)
        raise CannotStrip(StripFailure.TOO_LARGE_INSIDE, file_type) from None
    # What was written must still be what it claims: a stripper that produced something else is
    # a bug, and the file is not served.
    if identify(dst) is not file_type:
        dst.unlink(missing_ok=True)
        raise CannotStrip(StripFailure.LEFT_OVER, file_type)


@dataclass(frozen=True)
class Prepared:
    file_type: FileType
    size: int  # of the stripped copy


def prepare(src: Path, dst: Path, limits: AttachmentLimits) -> Prepared:
    """Checks one file against the limits, by content, and strips it into ``dst``.

    Raises FileTooLarge, TypeNotAllowed or CannotStrip; the first two are the uploader's mistake
    (413, 415), the last means quarantine.
    """
    if src.stat().st_size > limits.max_file_bytes:
        raise FileTooLarge(limits.max_file_bytes)
    file_type = check_allowed(src, limits.allowed_types)
    strip_file(src, dst, file_type)
    return Prepared(file_type, dst.stat().st_size)
