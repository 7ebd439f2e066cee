"""The files the crash run's reporters attach, each carrying canaries of this run.

- ``photo``: a phone photo (JPEG) whose EXIF holds a GPS datum, a camera serial and an artist;
- ``letter``: a two-page PDF whose document information names its author;
- ``scan``: a large, grainy PNG (a few MiB, re-encoded when stripped: the stripping takes long
  enough for the harness to SIGKILL the files worker in the middle of it), with an author text
  chunk;
- ``damaged``: the photo as a PNG (with the author text chunk) whose image data stops halfway.
  Every chunk is whole, its CRC right and IEND last, so the upload's checks accept it (a photo
  merely cut off is refused at upload, 422 ``/file-damaged``); only decoding finds the damage,
  and the worker must quarantine it (it cannot be stripped).

Every upload also sends a file name that is a canary, and the SHA-256 of each file as uploaded
is one too: none of them may appear in any sink (docs/reliability.md, "Attachments").
"""

from __future__ import annotations

import hashlib
import io
import random
import secrets
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

# Which files should end ready and which quarantined.
INTACT = ("photo", "letter", "scan")
DAMAGED = "damaged"
KINDS = (*INTACT, DAMAGED)
MIME = {
    "photo": "image/jpeg",
    "letter": "application/pdf",
    "scan": "image/png",
    "damaged": "image/png",
}
NAMES = 8
SCAN_SIDE = (1400, 1000)  # about 4 MiB of grain: a re-encode of a few hundred milliseconds


def tag(kind: str) -> str:
    """A canary in the form chaos.canary uses (``Cnry<kind><hex>``)."""
    return f"Cnry{kind}{secrets.token_hex(5).upper()}"


@dataclass
class FileSet:
    folder: Path
    canaries: dict[str, list[str]] = field(default_factory=dict)
    data: dict[str, bytes] = field(default_factory=dict)

    def add(self, kind: str, value: str) -> str:
        self.canaries.setdefault(kind, []).append(value)
        return value

    def name(self, kind: str, n: int) -> str:
        """A file name as a phone would give it: one of NAMES canaries (a few, so that the scan
        stays quick), with the kind's extension."""
        names = self.canaries.setdefault("file_name", [])
        if len(names) < NAMES:
            names.append(tag("Name"))
        suffix = {"image/jpeg": ".jpg", "application/pdf": ".pdf", "image/png": ".png"}[MIME[kind]]
        return names[n % len(names)] + suffix

    def all_canaries(self) -> Iterable[tuple[str, str]]:
        for kind, values in self.canaries.items():
            for value in values:
                yield kind, value


def make(folder: Path) -> FileSet:
    import pikepdf
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    folder.mkdir(parents=True, exist_ok=True)
    files = FileSet(folder)
    gps, serial = files.add("gps", tag("Gps")), files.add("serial", tag("Serial"))
    artist = files.add("artist", tag("Artist"))
    author = files.add("author", tag("Author"))

    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x013B] = artist
    exif.get_ifd(0x8769)[0xA431] = serial
    gps_ifd = exif.get_ifd(0x8825)
    gps_ifd[1], gps_ifd[2] = "N", (51.0, 30.0, 12.5)
    gps_ifd[0x12] = gps
    rng = random.Random(11)  # noqa: S311 - test pixels, not a secret
    photo = Image.frombytes("RGB", (480, 360), rng.randbytes(480 * 360 * 3))
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=90, exif=exif, comment=artist.encode())
    files.data["photo"] = buf.getvalue()
    info = PngInfo()
    info.add_text("Author", author)
    buf = io.BytesIO()
    photo.save(buf, "PNG", pnginfo=info, compress_level=1)
    files.data["damaged"] = cut_inside(buf.getvalue())

    doc = pikepdf.new()
    for _ in range(2):
        doc.add_blank_page(page_size=(200, 200))
    doc.pages[0].Contents = doc.make_stream(b"BT /F1 12 Tf 10 100 Td (The fire door) Tj ET")
    doc.docinfo["/Author"] = author
    doc.docinfo["/Creator"] = files.add("author", tag("Creator"))
    buf = io.BytesIO()
    doc.save(buf, compress_streams=False)
    files.data["letter"] = buf.getvalue()

    info = PngInfo()
    info.add_text("Author", author)
    width, height = SCAN_SIDE
    scan = Image.frombytes("RGB", SCAN_SIDE, rng.randbytes(width * height * 3))
    buf = io.BytesIO()
    scan.save(buf, "PNG", pnginfo=info, compress_level=1)
    files.data["scan"] = buf.getvalue()

    for kind, data in files.data.items():
        (folder / kind).write_bytes(data)  # kept with the run's scratch files, for a look
        files.add("original_sha256", hashlib.sha256(data).hexdigest())
    return files


def cut_inside(png: bytes) -> bytes:
    """The PNG with its image data cut halfway, in one IDAT, every chunk still whole."""
    pos, head, data, end = 8, bytearray(png[:8]), bytearray(), b""
    while pos < len(png):
        length, kind = struct.unpack_from(">I4s", png, pos)
        chunk = png[pos : pos + 12 + length]
        if kind == b"IDAT":
            data += chunk[8:-4]
        elif kind == b"IEND":
            end = chunk
        else:
            head += chunk
        pos += 12 + length
    cut = bytes(data[: len(data) // 2])
    crc = zlib.crc32(b"IDAT" + cut)
    return bytes(head) + struct.pack(">I", len(cut)) + b"IDAT" + cut + struct.pack(">I", crc) + end


def multipart(data: bytes, name: str, content_type: str) -> tuple[bytes, str]:
    """One part named ``file``, as a browser sends it; the body and its Content-Type."""
    boundary = "chaos" + secrets.token_hex(12)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), (
        f"multipart/form-data; boundary={boundary}"
    )


def opens(kind: str, data: bytes) -> bool:
    """A stripped copy still opens as what it is (Pillow, pikepdf)."""
    import pikepdf
    from PIL import Image

    try:
        if kind == "letter":
            with pikepdf.open(io.BytesIO(data)) as pdf:
                return len(pdf.pages) == 2
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.format in ("JPEG", "PNG")
    except Exception:
        return False
