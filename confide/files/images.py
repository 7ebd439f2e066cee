"""Images: JPEG losslessly (metadata segments dropped, the compressed image data copied as is),
PNG and HEIC re-encoded from their pixels alone (Pillow, pillow-heif).

An EXIF orientation other than "upright" is applied to the pixels before the EXIF goes, so a photo
stays the right way up; for a JPEG that means a re-encode (quality 92) instead of the lossless copy.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import pillow_heif
from PIL import Image, ImageCms, ImageOps

from confide.files.errors import CannotStrip, StripFailure
from confide.files.types import FileType

pillow_heif.register_heif_opener()

# Larger than any phone's default photo (48 MP is 8064 x 6048), below Pillow's own bomb limit
# (89 MP): what a worker decodes stays under ~320 MB for RGBA.
MAX_PIXELS = 80_000_000
ORIENTATION = 0x0112
CHUNK = 1 << 16
JPEG_QUALITY = 92
HEIC_QUALITY = 90
# Colour profiles kept because they are the same file on every device that ships them (their
# description names the colour space, not a person, a machine or a calibration). Any other
# profile (a calibrated monitor's, named by its owner) is dropped, and the image is read as sRGB.
STANDARD_PROFILES = frozenset(
    {
        "sRGB IEC61966-2.1",
        "sRGB IEC61966-2-1 black scaled",
        "sRGB",
        "sRGB built-in",
        "Display P3",
        "Adobe RGB (1998)",
        "ProPhoto RGB",
    }
)
_FORMATS = {FileType.JPEG: "JPEG", FileType.PNG: "PNG", FileType.HEIC: "HEIF"}


def standard_profile(icc: bytes | None) -> bytes | None:
    """The ICC profile when it is one of the standard ones, else None (dropped)."""
    if not icc:
        return None
    try:
        name = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None
    return icc if name.strip() in STANDARD_PROFILES else None


@contextmanager
def _opened(src: Path, file_type: FileType, max_pixels: int) -> Iterator[Image.Image]:
    """Opens the image (headers only), refusing another format and image bombs before decoding."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(src, formats=[_FORMATS[file_type]])
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise CannotStrip(StripFailure.TOO_MANY_PIXELS, file_type) from None
    except (OSError, ValueError, SyntaxError, EOFError):
        raise CannotStrip(StripFailure.DAMAGED, file_type) from None
    with im:
        if im.width * im.height > max_pixels:
            raise CannotStrip(StripFailure.TOO_MANY_PIXELS, file_type)
        try:
            yield im
        except CannotStrip:
            raise
        except (OSError, ValueError, SyntaxError, EOFError, KeyError) as exc:
            raise CannotStrip(StripFailure.DAMAGED, file_type) from exc


def _orientation(im: Image.Image) -> int:
    value = im.getexif().get(ORIENTATION, 1)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _upright_without_metadata(im: Image.Image, keep: tuple[str, ...] = ()) -> Image.Image:
    """The decoded pixels turned upright, with no metadata left in ``info`` (Pillow's and
    pillow-heif's writers copy EXIF, XMP, comments and text from there)."""
    im.load()  # a truncated or corrupt file fails here
    kept: dict[str | tuple[int, int], object] = {k: im.info[k] for k in keep if k in im.info}
    out = ImageOps.exif_transpose(im) if _orientation(im) != 1 else im
    out.info = kept
    return out


def strip_jpeg(src: Path, dst: Path, *, max_pixels: int = MAX_PIXELS) -> None:
    with _opened(src, FileType.JPEG, max_pixels) as im:
        icc = standard_profile(im.info.get("icc_profile"))
        if _orientation(im) != 1:
            out = _upright_without_metadata(im)
            out.save(dst, "JPEG", quality=JPEG_QUALITY, icc_profile=icc, exif=b"")
            return
        # Decode at 1/8 scale (cheap for JPEG): the entropy-coded data must decode, so a damaged
        # or truncated file is refused rather than copied.
        im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
        im.load()
    with src.open("rb") as fin, dst.open("wb") as fout:
        _copy_jpeg(fin, fout, keep_icc=icc is not None)


def strip_png(src: Path, dst: Path, *, max_pixels: int = MAX_PIXELS) -> None:
    """Re-encoded: only the pixels, the palette and its transparency (no tEXt, iTXt, zTXt, eXIf,
    tIME, pHYs...); an animated PNG keeps its first frame."""
    with _opened(src, FileType.PNG, max_pixels) as im:
        icc = standard_profile(im.info.get("icc_profile"))
        out = _upright_without_metadata(im, keep=("transparency",))
        out.save(dst, "PNG", icc_profile=icc)


def strip_heic(src: Path, dst: Path, *, max_pixels: int = MAX_PIXELS) -> None:
    """Re-encoded from the primary image's pixels (HEVC, quality 90): no EXIF, XMP, thumbnails,
    depth maps or other images of a burst."""
    with _opened(src, FileType.HEIC, max_pixels) as im:
        icc = standard_profile(im.info.get("icc_profile"))
        out = _upright_without_metadata(im)
        out.save(dst, "HEIF", quality=HEIC_QUALITY, icc_profile=icc, exif=None, xmp=None)


# JPEG markers (ITU T.81 B.1.1.3).
SOI, EOI, SOS, COM = 0xD8, 0xD9, 0xDA, 0xFE
APP0, APP2, APP14, APP15 = 0xE0, 0xE2, 0xEE, 0xEF


def _segment_to_keep(marker: int, payload: bytes, keep_icc: bool) -> bytes | None:
    """The payload to write for a segment, or None to drop it. Kept: the frame, tables, scans,
    restart interval, JFIF (without its thumbnail), Adobe's colour-transform flag, and a
    standard ICC profile. Dropped: EXIF and XMP (APP1), MPF and FlashPix (APP2), IPTC and
    Photoshop (APP13), every other application segment, and comments."""
    if 0xC0 <= marker <= 0xDF:
        return payload
    if marker == APP0:
        # JFIF's 14 bytes without its thumbnail; JFXX (thumbnails only) goes.
        return (
            payload[:12] + b"\x00\x00"
            if payload[:5] == b"JFIF\x00" and len(payload) >= 14
            else None
        )
    if marker == APP2 and keep_icc and payload[:12] == b"ICC_PROFILE\x00":
        return payload
    if marker == APP14 and payload[:5] == b"Adobe":
        return payload[:12]  # version, flags0, flags1, transform: nothing else is defined
    return None


def _copy_jpeg(fin: BinaryIO, fout: BinaryIO, *, keep_icc: bool) -> None:
    """Copies a JPEG segment by segment, dropping metadata, and stops at the first end-of-image
    (what follows it, such as a phone's second image with its own EXIF, is dropped)."""
    damaged = CannotStrip(StripFailure.DAMAGED, FileType.JPEG)
    if fin.read(2) != b"\xff\xd8":
        raise damaged
    fout.write(b"\xff\xd8")
    marker = _read_marker(fin, damaged)
    seen_scan = False
    while marker != EOI:
        if marker == SOI or 0xD0 <= marker <= 0xD7 or marker == 0x01:
            raise damaged  # a restart or second start outside a scan
        length = fin.read(2)
        size = int.from_bytes(length, "big")
        payload = fin.read(size - 2) if len(length) == 2 and size >= 2 else b""
        if len(length) != 2 or size < 2 or len(payload) != size - 2:
            raise damaged
        kept = _segment_to_keep(marker, payload, keep_icc)
        if kept is not None:
            fout.write(bytes((0xFF, marker)) + (len(kept) + 2).to_bytes(2, "big") + kept)
        if marker == SOS:
            seen_scan = True
            marker = _copy_scan(fin, fout, damaged)
        else:
            marker = _read_marker(fin, damaged)
    if not seen_scan:
        raise damaged
    fout.write(b"\xff\xd9")


def _read_marker(fin: BinaryIO, damaged: CannotStrip) -> int:
    byte = fin.read(1)
    if byte != b"\xff":
        raise damaged
    while byte == b"\xff":  # fill bytes
        byte = fin.read(1)
    if not byte:
        raise damaged
    return byte[0]


def _copy_scan(fin: BinaryIO, fout: BinaryIO, damaged: CannotStrip) -> int:
    """Copies entropy-coded data in blocks until a marker that is not a stuffed 0xFF00 or a
    restart; returns that marker, with the file positioned after it."""
    while True:
        offset = fin.tell()
        block = fin.read(CHUNK)
        if len(block) < 2:
            raise damaged  # no end of image
        start = 0
        while True:
            i = block.find(b"\xff", start)
            if i == -1 or i + 1 >= len(block):
                end = len(block) if i == -1 else i
                fout.write(block[:end])
                fin.seek(offset + end)
                break
            following = block[i + 1]
            if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
                start = i + 1 if following == 0xFF else i + 2
                continue
            fout.write(block[:i])
            fin.seek(offset + i + 2)
            return following
