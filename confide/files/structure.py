"""The upload-time check that a file's body is whole and parses as its type (docs/attachments.md
"Damaged files"), run on each block as it streams in: a truncated photo, a PDF cut in half or a
document whose zip has no end is refused at once (422 ``/file-damaged``), with a clear message,
instead of being accepted and quarantined later by the ``files`` worker.

Never the whole file in memory: a :class:`Checker` keeps cheap incremental state (a marker or
chunk walk, a running CRC, an incremental decoder) and, for the types whose end matters, the last
:data:`TAIL_BYTES` bytes. It decodes no pixels and inflates nothing: the worker still opens the
whole file when it strips it, and quarantines what only a full decode finds.

Per type (the walk accepts what follows a format's own end, as the strippers drop it):

- JPEG: the marker walk the stripper does: start of image, whole segments, a scan, then an end
  of image. What follows the first end of image (a phone's second picture, a motion photo's
  video, padding) is not read.
- PNG: the signature, IHDR first, each chunk whole with its CRC right, an IDAT, then IEND.
- HEIC, M4A: the top-level boxes (``ftyp`` first) each whole, ending exactly at the file's end.
- PDF: ``%PDF-`` in the first 1 KiB; ``%%EOF`` in the last 2 KiB (after trailing whitespace and
  NULs), after a ``startxref`` whose offset lies inside the file.
- DOCX, ODT: the zip's end-of-central-directory record (or its ZIP64 one) in the last 64 KiB,
  with its central directory ending where that record starts and beginning with a central
  directory header.
- plain text: with a UTF-16 or UTF-32 BOM, that encoding throughout (nothing malformed, no lone
  surrogate, nothing cut at the end); otherwise 8-bit text (UTF-8, or an older encoding such as
  Windows-1252 that a reporter's notes may be in) with no NUL byte anywhere, where binary data
  after a text-like start would show one.
- MP3: what libmagic said (no cheap check of a frame stream that has no end marker).
"""

from __future__ import annotations

import codecs
import re
import struct
import zlib

from confide.files.errors import AttachmentError
from confide.files.types import FileType

# What the end checks need: a zip's end record (22 bytes) with the longest comment it can carry.
TAIL_BYTES = 22 + 0xFFFF
PDF_HEADER_WITHIN = 1024
PDF_EOF_WITHIN = 2048
_PDF_PADDING = b"\x00\t\n\r\f "

WORDS = {
    FileType.JPEG: "a JPEG image",
    FileType.PNG: "a PNG image",
    FileType.HEIC: "a HEIC image",
    FileType.PDF: "a PDF document",
    FileType.DOCX: "a Word (DOCX) document",
    FileType.ODT: "an OpenDocument text (ODT) document",
    FileType.TEXT: "plain text",
    FileType.MP3: "an MP3 recording",
    FileType.M4A: "an M4A recording",
}


class FileDamaged(AttachmentError):
    """The file is of an allowed type by its first bytes, but its body does not parse as that
    type (truncated, a bad checksum, no end, not valid text): 422."""

    def __init__(self, file_type: FileType) -> None:
        super().__init__(f"damaged {file_type.value}")
        self.file_type = file_type
        self.detail = (
            f"This file could not be read as {WORDS[file_type]}. It may be damaged or "
            "incomplete; please try saving it again."
        )


class Checker:
    """Fed a file's blocks in order (:meth:`feed`), then :meth:`finish`; either raises
    FileDamaged. Holds at most 2 × TAIL_BYTES of the file."""

    def __init__(self, file_type: FileType) -> None:
        self.file_type = file_type
        self.size = 0
        self._walk = _WALKS[file_type](self) if file_type in _WALKS else None
        self._tail: bytearray | None = bytearray() if file_type in _ENDS else None
        self.head = bytearray()  # the first PDF_HEADER_WITHIN bytes, for the PDF header

    def damaged(self) -> FileDamaged:
        return FileDamaged(self.file_type)

    def feed(self, block: bytes) -> None:
        if len(self.head) < PDF_HEADER_WITHIN and self.file_type is FileType.PDF:
            self.head += block[: PDF_HEADER_WITHIN - len(self.head)]
        self.size += len(block)
        if self._tail is not None:
            self._tail += block
            if len(self._tail) > 2 * TAIL_BYTES:
                del self._tail[:-TAIL_BYTES]
        if self._walk is not None:
            self._walk.feed(block)

    def finish(self) -> None:
        if self._walk is not None:
            self._walk.finish()
        if self.file_type in _ENDS:
            tail = bytes(self._tail or b"")[-TAIL_BYTES:]
            _ENDS[self.file_type](self, tail)

    @property
    def image_data_reached(self) -> bool:
        """Whether the walk got past the header to the image data (a JPEG's scan, a PNG's
        IDAT): a header that Pillow cannot open is then damaged, not merely long."""
        return isinstance(self._walk, _Jpeg | _Png) and self._walk.image_data


class _Walk:
    """An incremental walk over a file's structure: ``feed`` each block, then ``finish``."""

    def __init__(self, checker: Checker) -> None:
        self.damaged = checker.damaged
        self.pending = bytearray()  # a header cut by a block boundary

    def feed(self, block: bytes) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError

    def _take(self, block: bytes, i: int, want: int) -> tuple[bytes | None, int]:
        """``want`` bytes from ``pending`` and ``block[i:]``, or None (kept) when too few."""
        need = want - len(self.pending)
        if len(block) - i < need:
            self.pending += block[i:]
            return None, len(block)
        if self.pending:
            got = bytes(self.pending) + block[i : i + need]
            self.pending.clear()
        else:
            got = block[i : i + need]
        return got, i + need


SOI, EOI, SOS = 0xD8, 0xD9, 0xDA
# In a scan: 0xFF then anything but a stuffed 0x00, a restart (D0–D7) or another 0xFF (a fill).
_SCAN_MARKER = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")


class _Jpeg(_Walk):
    START, MARKER, LENGTH, SKIP, SCAN, SCAN_FF, DONE = range(7)

    def __init__(self, checker: Checker) -> None:
        super().__init__(checker)
        self.state = self.START
        self.skip = 0
        self.marker = 0
        self.image_data = False  # a scan was reached

    def feed(self, block: bytes) -> None:
        i, n = 0, len(block)
        while i < n and self.state != self.DONE:
            state = self.state
            if state == self.SKIP:
                step = min(self.skip, n - i)
                self.skip -= step
                i += step
                if not self.skip:
                    self.state = self.SCAN if self.marker == SOS else self.MARKER
                    self.image_data = self.image_data or self.marker == SOS
                    self.pending.clear()
                continue
            if state == self.SCAN:
                found = _SCAN_MARKER.search(block, i)
                if found is None:
                    self.state = self.SCAN_FF if block.endswith(b"\xff") else self.SCAN
                    return
                self._marker(block[found.start() + 1])
                i = found.end()
                continue
            if state == self.SCAN_FF:  # the block before ended with 0xFF
                byte = block[i]
                i += 1
                if byte == 0xFF:
                    continue
                if byte == 0x00 or 0xD0 <= byte <= 0xD7:
                    self.state = self.SCAN
                else:
                    self._marker(byte)
                continue
            if state == self.START:
                got, i = self._take(block, i, 2)
                if got is None:
                    return
                if got != b"\xff\xd8":
                    raise self.damaged()
                self.state = self.MARKER
                continue
            if state == self.MARKER:
                got, i = self._take(block, i, 2)
                if got is None:
                    return
                if got[0] != 0xFF:
                    raise self.damaged()
                if got[1] == 0xFF:  # a fill byte: the marker follows
                    self.pending += b"\xff"
                    continue
                self._marker(got[1])
                continue
            got, i = self._take(block, i, 2)  # LENGTH
            if got is None:
                return
            size = int.from_bytes(got, "big")
            if size < 2:
                raise self.damaged()
            self.skip = size - 2
            self.state = self.SKIP
            if not self.skip:
                self.state = self.SCAN if self.marker == SOS else self.MARKER
                self.image_data = self.image_data or self.marker == SOS

    def _marker(self, marker: int) -> None:
        if marker == EOI:
            if not self.image_data:
                raise self.damaged()
            self.state = self.DONE
            return
        if marker in (SOI, 0x00, 0x01) or 0xD0 <= marker <= 0xD7:
            raise self.damaged()  # a restart or second start outside a scan
        self.marker = marker
        self.state = self.LENGTH

    def finish(self) -> None:
        if self.state != self.DONE:
            raise self.damaged()


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_MAX_CHUNK = (1 << 31) - 1


class _Png(_Walk):
    SIGNATURE, HEADER, DATA, CRC, DONE = range(5)

    def __init__(self, checker: Checker) -> None:
        super().__init__(checker)
        self.state = self.SIGNATURE
        self.left = 0
        self.kind = b""
        self.crc = 0
        self.chunks = 0
        self.image_data = False  # an IDAT was reached

    def feed(self, block: bytes) -> None:
        i, n = 0, len(block)
        while i < n and self.state != self.DONE:
            if self.state == self.DATA:
                step = min(self.left, n - i)
                self.crc = zlib.crc32(block[i : i + step], self.crc)
                self.left -= step
                i += step
                if not self.left:
                    self.state = self.CRC
                continue
            if self.state == self.SIGNATURE:
                got, i = self._take(block, i, 8)
                if got is None:
                    return
                if got != PNG_SIGNATURE:
                    raise self.damaged()
                self.state = self.HEADER
                continue
            if self.state == self.HEADER:
                got, i = self._take(block, i, 8)
                if got is None:
                    return
                self._header(got)
                continue
            got, i = self._take(block, i, 4)  # CRC
            if got is None:
                return
            if int.from_bytes(got, "big") != self.crc:
                raise self.damaged()
            self.state = self.DONE if self.kind == b"IEND" else self.HEADER

    def _header(self, got: bytes) -> None:
        length, kind = struct.unpack(">I4s", got)
        if length > _PNG_MAX_CHUNK or not kind.isalpha():
            raise self.damaged()
        first = self.chunks == 0
        if first != (kind == b"IHDR") or (first and length != 13):
            raise self.damaged()
        if kind == b"IEND" and (length or not self.image_data):
            raise self.damaged()
        self.chunks += 1
        self.image_data = self.image_data or kind == b"IDAT"
        self.kind = kind
        self.crc = zlib.crc32(kind)
        self.left = length
        self.state = self.DATA if length else self.CRC

    def finish(self) -> None:
        if self.state != self.DONE:
            raise self.damaged()


class _Boxes(_Walk):
    """ISO base media (HEIC, M4A): top-level boxes, ``ftyp`` first, ending at the file's end."""

    def __init__(self, checker: Checker) -> None:
        super().__init__(checker)
        self.skip = 0
        self.boxes = 0
        self.to_end = False  # a box of size 0: it runs to the end of the file
        self.header = 8

    def feed(self, block: bytes) -> None:
        i, n = 0, len(block)
        while i < n and not self.to_end:
            if self.skip:
                step = min(self.skip, n - i)
                self.skip -= step
                i += step
                continue
            got, i = self._take(block, i, self.header)
            if got is None:
                return
            size, kind = struct.unpack(">I4s", got[:8])
            if self.boxes == 0 and kind != b"ftyp":
                raise self.damaged()
            if size == 1 and self.header == 8:  # a 64-bit size follows
                self.pending += got
                self.header = 16
                continue
            if size == 1:
                size = int.from_bytes(got[8:16], "big")
            self.header, used = 8, len(got)
            self.boxes += 1
            if size == 0:
                self.to_end = True
            elif size < used:
                raise self.damaged()
            else:
                self.skip = size - used

    def finish(self) -> None:
        if self.to_end:
            return
        if self.skip or self.pending or not self.boxes:
            raise self.damaged()


class _Text(_Walk):
    """With a UTF-16 or UTF-32 BOM, that encoding decoded incrementally and strictly; otherwise
    8-bit text of any encoding (libmagic called its start text) with no NUL byte: refusing a
    Windows-1252 note, which every editor opens, would only turn a reporter away."""

    def __init__(self, checker: Checker) -> None:
        super().__init__(checker)
        self.decoder: codecs.IncrementalDecoder | None = None
        self.started = False

    def feed(self, block: bytes) -> None:
        if not self.started:
            self.pending += block
            if len(self.pending) < 4:
                return
            block = bytes(self.pending)
            self.pending.clear()
            self.started = True
            self.decoder = _wide_decoder(block)
        if self.decoder is None:
            if b"\x00" in block:
                raise self.damaged()
            return
        try:
            self.decoder.decode(block)
        except UnicodeDecodeError:
            raise self.damaged() from None

    def finish(self) -> None:
        if not self.started:
            self.started = True
            self.decoder = _wide_decoder(bytes(self.pending))
            self.feed(bytes(self.pending))
        if self.decoder is None:
            return
        try:
            self.decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise self.damaged() from None


def _wide_decoder(start: bytes) -> codecs.IncrementalDecoder | None:
    """A strict decoder for a UTF-32 or UTF-16 BOM's encoding; None for 8-bit text."""
    if start.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return codecs.getincrementaldecoder("utf-32")("strict")
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return codecs.getincrementaldecoder("utf-16")("strict")
    return None


_WALKS: dict[FileType, type[_Walk]] = {
    FileType.JPEG: _Jpeg,
    FileType.PNG: _Png,
    FileType.HEIC: _Boxes,
    FileType.M4A: _Boxes,
    FileType.TEXT: _Text,
}


def _pdf_end(checker: Checker, tail: bytes) -> None:
    if b"%PDF-" not in checker.head:
        raise checker.damaged()
    end = tail.rstrip(_PDF_PADDING)
    eof = end.rfind(b"%%EOF", max(0, len(end) - PDF_EOF_WITHIN))
    if eof < 0:
        raise checker.damaged()
    found = re.search(rb"startxref\s+(\d{1,12})\s*$", end[:eof])
    if found is None or int(found.group(1)) >= checker.size:
        raise checker.damaged()


_EOCD = struct.Struct("<4s4H2IH")  # signature, disks, entries, CD size and offset, comment
_ZIP64_LOCATOR = struct.Struct("<4sIQI")
_ZIP64_EOCD = struct.Struct("<4sQ2H2I4Q")


def _zip_end(checker: Checker, tail: bytes) -> None:
    """The end-of-central-directory record that ends the file (after its comment), and a
    central directory that ends where the record starts."""
    start = checker.size - len(tail)  # where the tail lies in the file
    pos = tail.rfind(b"PK\x05\x06")
    while pos >= 0:
        if pos + _EOCD.size <= len(tail):
            _, disk, cd_disk, here, entries, cd_size, cd_offset, comment = _EOCD.unpack_from(
                tail, pos
            )
            if pos + _EOCD.size + comment == len(tail):
                break
        pos = tail.rfind(b"PK\x05\x06", 0, pos)
    else:
        raise checker.damaged()
    record = start + pos
    if 0xFFFFFFFF in (cd_size, cd_offset) or 0xFFFF in (entries, here):
        record, entries, cd_size, cd_offset = _zip64_end(checker, tail, pos, start)
    elif disk or cd_disk or here != entries:
        raise checker.damaged()
    if not entries or cd_offset + cd_size != record:
        raise checker.damaged()
    at = cd_offset - start
    if at >= 0 and at + 4 <= len(tail) and tail[at : at + 4] != b"PK\x01\x02":
        raise checker.damaged()


def _zip64_end(checker: Checker, tail: bytes, pos: int, start: int) -> tuple[int, int, int, int]:
    at = pos - _ZIP64_LOCATOR.size
    if at < 0:
        raise checker.damaged()
    sig, disk, offset, disks = _ZIP64_LOCATOR.unpack_from(tail, at)
    record = offset - start
    if sig != b"PK\x06\x07" or disk or disks > 1 or record < 0:
        raise checker.damaged()
    if record + _ZIP64_EOCD.size > at:
        raise checker.damaged()
    fields = _ZIP64_EOCD.unpack_from(tail, record)
    sig, _, _, _, disk, cd_disk, here, entries, cd_size, cd_offset = fields
    if sig != b"PK\x06\x06" or disk or cd_disk or here != entries:
        raise checker.damaged()
    return offset, entries, cd_size, cd_offset


_ENDS = {FileType.PDF: _pdf_end, FileType.DOCX: _zip_end, FileType.ODT: _zip_end}


def header_within(prefix: bytes, file_type: FileType) -> bool:
    """Whether an image's header lies wholly within ``prefix`` (or is broken there): Pillow's
    failing to open it then means damage, not a header longer than the prefix (a huge EXIF)."""
    checker = Checker(file_type)
    try:
        checker.feed(prefix)
    except FileDamaged:
        return True
    return checker.image_data_reached
