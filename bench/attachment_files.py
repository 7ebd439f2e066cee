"""Deterministic test files for the attachment benchmarks, made once and cached.

Each file is what a phone or a scanner would send, at a given size: a JPEG photo (EXIF with GPS,
camera serial and artist, XMP, comments), a PDF of scanned pages (each page one JPEG image, with
an author, a creator tool and XMP), and a photo-like PNG (text chunks and EXIF). The pixels come
from a seeded generator, so the same size gives the same picture on every run; the files are
cached under the system's temporary directory (``confide-bench-files``), keyed by kind, size and
format version, so a second run does not make them again.
"""

from __future__ import annotations

import io
import os
import random
import tempfile
from pathlib import Path

MIB = 1024 * 1024
VERSION = 1
CACHE = Path(tempfile.gettempdir()) / "confide-bench-files"
SEED = 17
# Strings that stripping removes: the bench checks that they are gone from its output.
GPS = "BENCH-GPS-51N"
SERIAL = "BENCH-SERIAL-0042"
ARTIST = "BENCH-ARTIST-Jo"
AUTHOR = "BENCH-AUTHOR-Sam"
CANARIES = (GPS, SERIAL, ARTIST, AUTHOR)
COM_MAX = 65533  # the most a JPEG comment segment's payload can hold


def cached(kind: str, size: int) -> Path:
    """The cached file of ``kind`` ("jpeg", "pdf", "png") of about ``size`` bytes (exactly, for
    JPEG), made on first use."""
    makers = {"jpeg": _jpeg, "pdf": _pdf, "png": _png}
    suffix = {"jpeg": ".jpg", "pdf": ".pdf", "png": ".png"}[kind]
    CACHE.mkdir(mode=0o700, exist_ok=True)
    path = CACHE / f"v{VERSION}-{kind}-{size}{suffix}"
    if not path.exists():
        data = makers[kind](size)
        scratch = path.with_name(f".{path.name}.{os.getpid()}")
        scratch.write_bytes(data)
        scratch.replace(path)  # atomic: two benches making the same file never see half of it
    return path


def _noise(width: int, height: int, seed: int, mode: str = "RGB") -> object:
    from PIL import Image

    bands = len(mode)
    # Smooth-ish noise (a gradient with random grain), so that a JPEG of it is photo-sized per
    # pixel rather than the worst case of white noise.
    rng = random.Random(seed)
    grain = rng.randbytes(width * height * bands)
    im = Image.frombytes(mode, (width, height), grain)
    gradient = Image.linear_gradient("L").resize((width, height)).convert(mode)
    return Image.blend(im, gradient, 0.35)


def _exif() -> object:
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x0110] = "Phone 12"
    exif[0x013B] = ARTIST
    exif.get_ifd(0x8769)[0xA431] = SERIAL
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (51.0, 30.0, 12.5)
    gps[0x12] = GPS
    return exif


def _xmp(text: str) -> bytes:
    return (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        b'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>'
        + text.encode()
        + b"</dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>"
    )


def _encode_jpeg(width: int, height: int, seed: int, *, metadata: bool) -> bytes:
    im = _noise(width, height, seed)
    buf = io.BytesIO()
    extra: dict[str, object] = {}
    if metadata:
        extra = {"exif": _exif(), "xmp": _xmp(AUTHOR), "comment": ARTIST.encode()}
    im.save(buf, "JPEG", quality=92, **extra)  # type: ignore[attr-defined]
    return buf.getvalue()


def _jpeg(size: int) -> bytes:
    """A photo of exactly ``size`` bytes: encoded a little smaller, then filled with comment
    segments (metadata too: stripping drops them)."""
    probe = _encode_jpeg(512, 384, SEED, metadata=False)
    per_pixel = len(probe) / (512 * 384)
    pixels = int(size * 0.97 / per_pixel)
    width = max(64, int((pixels * 4 / 3) ** 0.5))
    height = max(48, pixels // width)
    while True:
        data = _encode_jpeg(width, height, SEED, metadata=True)
        if len(data) <= size - 8:
            break
        width, height = int(width * 0.97), int(height * 0.97)
    return data[:2] + _comments(size - len(data)) + data[2:]


def _comments(fill: int) -> bytes:
    """COM segments of exactly ``fill`` bytes (at least 4, or 0)."""
    out = bytearray()
    while fill > 0:
        payload = min(COM_MAX, fill - 4)
        if 0 < fill - 4 - payload < 4:  # leave room for a last segment of at least 4 bytes
            payload -= 4
        out += b"\xff\xfe" + (payload + 2).to_bytes(2, "big") + b"c" * payload
        fill -= payload + 4
    return bytes(out)


def _pdf(size: int) -> bytes:
    """Scanned pages: each page one ~1 MiB JPEG image (DCT, as a scanner writes it), with a
    line of text, and the document's author, creator tool and XMP."""
    import pikepdf

    page_jpeg = _encode_jpeg(1400, 1000, SEED + 1, metadata=False)
    pages = max(1, round(size / len(page_jpeg)))
    doc = pikepdf.new()
    for n in range(pages):
        doc.add_blank_page(page_size=(595, 842))
        page = doc.pages[n]
        image = pikepdf.Stream(doc, page_jpeg)
        image.Type = pikepdf.Name.XObject
        image.Subtype = pikepdf.Name.Image
        image.Width, image.Height = 1400, 1000
        image.ColorSpace = pikepdf.Name.DeviceRGB
        image.BitsPerComponent = 8
        image.Filter = pikepdf.Name.DCTDecode
        page.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image))
        page.Contents = doc.make_stream(
            b"q 560 0 0 400 17 400 cm /Im0 Do Q BT /F1 12 Tf 20 380 Td (Page "
            + str(n + 1).encode()
            + b") Tj ET"
        )
    with doc.open_metadata(set_pikepdf_as_editor=False, update_docinfo=False) as meta:
        meta["dc:creator"] = [ARTIST]
    doc.docinfo["/Author"] = AUTHOR
    doc.docinfo["/Creator"] = "BENCH-Scanner"
    out = io.BytesIO()
    doc.save(out, deterministic_id=True)
    return out.getvalue()


def _png(size: int) -> bytes:
    """A photo-like PNG of about ``size`` bytes (grainy pixels hardly compress), with text
    chunks and EXIF."""
    from PIL.PngImagePlugin import PngInfo

    pixels = max(64 * 48, int(size / 3 * 0.95))
    width = max(64, int((pixels * 4 / 3) ** 0.5))
    height = max(48, pixels // width)
    info = PngInfo()
    info.add_text("Author", AUTHOR)
    info.add_itxt("XML:com.adobe.xmp", _xmp(ARTIST).decode())
    buf = io.BytesIO()
    _noise(width, height, SEED + 2).save(  # type: ignore[attr-defined]
        buf, "PNG", pnginfo=info, exif=_exif(), compress_level=6
    )
    return buf.getvalue()


def decoded_bytes(path: Path) -> int:
    """Width × height × bands of an image: what a decoder holds for its pixels."""
    from PIL import Image

    with Image.open(path) as im:
        return im.width * im.height * len(im.getbands())
