"""Content types of attachments, judged by their content through libmagic (python-magic and
Debian's libmagic1), never by a file's name or the type a browser declared."""

from __future__ import annotations

import zipfile
from enum import StrEnum
from pathlib import Path

from confide.files.errors import TypeNotAllowed


class FileType(StrEnum):
    """The types Confide can strip. The value is the name in the organisation file."""

    JPEG = "jpeg"
    PNG = "png"
    HEIC = "heic"
    PDF = "pdf"
    DOCX = "docx"
    ODT = "odt"
    TEXT = "text"
    MP3 = "mp3"
    M4A = "m4a"

    @property
    def mime(self) -> str:
        return _MIME[self]

    @property
    def extension(self) -> str:
        """For the neutral name a stored file gets (``attachment-1.jpg``)."""
        return _EXTENSION[self]


_MIME = {
    FileType.JPEG: "image/jpeg",
    FileType.PNG: "image/png",
    FileType.HEIC: "image/heic",
    FileType.PDF: "application/pdf",
    FileType.DOCX: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    FileType.ODT: "application/vnd.oasis.opendocument.text",
    FileType.TEXT: "text/plain",
    FileType.MP3: "audio/mpeg",
    FileType.M4A: "audio/mp4",
}
_EXTENSION = {
    FileType.JPEG: ".jpg",
    FileType.PNG: ".png",
    FileType.HEIC: ".heic",
    FileType.PDF: ".pdf",
    FileType.DOCX: ".docx",
    FileType.ODT: ".odt",
    FileType.TEXT: ".txt",
    FileType.MP3: ".mp3",
    FileType.M4A: ".m4a",
}
# What libmagic (file 5.44) answers for each, and nothing else: image/heif is HEIF with another
# codec, video/mp4 may hold a video track.
_BY_MAGIC = {
    "image/jpeg": FileType.JPEG,
    "image/png": FileType.PNG,
    "image/heic": FileType.HEIC,
    "application/pdf": FileType.PDF,
    _MIME[FileType.DOCX]: FileType.DOCX,
    _MIME[FileType.ODT]: FileType.ODT,
    "text/plain": FileType.TEXT,
    "audio/mpeg": FileType.MP3,
    "audio/x-m4a": FileType.M4A,
    "audio/mp4": FileType.M4A,
}
# libmagic names a Word file only when its zip entries come in Word's order; any other writer's
# DOCX is "application/zip", so the package's own declaration of its main part decides. A
# macro-enabled document (DOCM) declares another main part and is not a DOCX.
_DOCX_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
_ZIP = frozenset({"application/zip", "application/octet-stream"})

DEFAULT_TYPES = frozenset(FileType)


def detect(path: Path) -> str:
    """libmagic's MIME type for the file's content (it reads the first bytes only)."""
    import magic  # here, not at import: the organisation file's parsing needs no libmagic

    return str(magic.from_file(str(path), mime=True))


def identify(path: Path) -> FileType | None:
    """The file's type by content, or None when it is none of the types Confide can strip."""
    mime = detect(path)
    found = _BY_MAGIC.get(mime)
    if found is None and mime in _ZIP and _declares_docx(path):
        found = FileType.DOCX
    if found is FileType.DOCX and not _declares_docx(path):
        return None  # a DOCM, or a zip that only looks like Word
    return found


def check_allowed(path: Path, allowed: frozenset[FileType]) -> FileType:
    """The file's type, or TypeNotAllowed (with libmagic's answer, never the name)."""
    found = identify(path)
    if found is None or found not in allowed:
        raise TypeNotAllowed(detect(path))
    return found


def _declares_docx(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("[Content_Types].xml")
            if info.file_size > 1 << 20:
                return False
            declared = archive.read(info)
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, NotImplementedError):
        return False
    # Bytes, not a parse: a declaration is enough to pick the stripper, which parses properly.
    return _DOCX_MAIN.encode() in declared and b"vbaProject" not in declared
