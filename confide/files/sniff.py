"""The upload-time checks on a file's first bytes, before anything of it is kept for long: its
type by content (libmagic), and for images the pixel count the header declares (an image bomb
is refused at once, with a clear message, instead of being quarantined later).

The ``files`` worker checks the whole file again (``identify`` and the strippers): these checks
are the early, cheap answer, not the only one. Runs in an executor (libmagic and Pillow are C).
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib

from confide.files.errors import AttachmentError, TypeNotAllowed
from confide.files.structure import FileDamaged, header_within
from confide.files.types import _BY_MAGIC, _DOCX_MAIN, _ZIP, FileType

SNIFF_BYTES = 256 * 1024  # enough for libmagic and any image header but a JPEG's huge EXIF
_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_MAX_TYPES_XML = 1 << 20


class ImageTooLarge(AttachmentError):
    """The image's header says it decodes to more pixels than allowed (an image bomb): 422."""

    def __init__(self, max_pixels: int) -> None:
        super().__init__(f"image over {max_pixels} pixels")
        self.max_pixels = max_pixels


def sniff(prefix: bytes, allowed: frozenset[FileType], *, max_pixels: int) -> FileType:
    """The type of a file that starts with ``prefix`` (its first SNIFF_BYTES, or all of it), or
    TypeNotAllowed with libmagic's answer; ImageTooLarge for an image bomb; FileDamaged for an
    image whose header lies within the prefix and does not open."""
    import magic  # loaded on first use, as in confide.files.types

    mime = str(magic.from_buffer(prefix, mime=True))
    found = _BY_MAGIC.get(mime)
    if (found is None and mime in _ZIP) or found is FileType.DOCX:
        found = FileType.DOCX if _declares_docx(prefix) else None
    if found is None or found not in allowed:
        raise TypeNotAllowed(mime)
    if found in (FileType.JPEG, FileType.PNG):
        _check_pixels(prefix, found, max_pixels)
    return found


def _check_pixels(prefix: bytes, file_type: FileType, max_pixels: int) -> None:
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(prefix), formats=[file_type.name]) as im:
                width, height = im.size
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageTooLarge(max_pixels) from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error):
        if header_within(prefix, file_type):
            raise FileDamaged(file_type) from None
        return  # the header goes on beyond the prefix (a huge EXIF): the worker decides
    if width * height > max_pixels:
        raise ImageTooLarge(max_pixels)


def _declares_docx(prefix: bytes) -> bool:
    """Whether the zip's ``[Content_Types].xml``, found among the local entries at its start,
    declares a Word main part and no macros. Word and LibreOffice write it first; a package
    where it is not within the prefix (or whose sizes follow the data) is refused."""
    pos = 0
    while pos + _LOCAL.size <= len(prefix):
        sig, _, flags, method, _, _, _, csize, _, nlen, xlen = _LOCAL.unpack_from(prefix, pos)
        if sig != b"PK\x03\x04" or flags & 0x08:
            return False
        start = pos + _LOCAL.size + nlen + xlen
        name = prefix[pos + _LOCAL.size : pos + _LOCAL.size + nlen]
        if name == b"[Content_Types].xml":
            data = prefix[start : start + csize]
            if len(data) < csize or csize > _MAX_TYPES_XML:
                return False
            try:
                if method == 8:
                    inflater = zlib.decompressobj(-15)
                    declared = inflater.decompress(data, _MAX_TYPES_XML)
                elif method == 0:
                    declared = data
                else:
                    return False
            except zlib.error:
                return False
            return _DOCX_MAIN.encode() in declared and b"vbaProject" not in declared
        pos = start + csize
    return False
