"""Stories: a file whose body does not parse as its type (a photo cut off, a PNG with a bad CRC, a
PDF cut in half, a Word document cut short, text with binary data inside) is refused as it streams in,
422 ``/file-damaged`` with words that say what to do, and nothing of it is kept (issue 17,
docs/attachments.md "Damaged files"). Every well-formed file still goes through.

The checker itself (confide.files.structure) is tested on small crafted files fed in blocks of 1
byte, 7 bytes and whole, so that a header cut by a block boundary is read as well as a whole one.
"""

from __future__ import annotations

import codecs
import io
import random
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from PIL import Image

from confide.files.sniff import SNIFF_BYTES
from confide.files.structure import Checker, FileDamaged
from confide.files.types import FileType
from tests import attachment_files as make
from tests import html
from tests.conftest import Stack
from tests.journeys import post
from tests.test_attachments import assert_nothing_kept, upload

BLOCKS = (1, 7, None)  # None: the whole file in one block


def fed(data: bytes, file_type: FileType, block: int | None) -> None:
    checker = Checker(file_type)
    step = block or max(1, len(data))
    for i in range(0, len(data), step):
        checker.feed(data[i : i + step])
    checker.finish()


def whole(data: bytes, file_type: FileType) -> None:
    for block in BLOCKS:
        fed(data, file_type, block)


def refused(data: bytes, file_type: FileType) -> None:
    for block in BLOCKS:
        with pytest.raises(FileDamaged) as caught:
            fed(data, file_type, block)
        assert caught.value.file_type is file_type


# --- Small files, made here --------------------------------------------------------------------


def small_jpeg() -> bytes:
    buf = io.BytesIO()
    make.picture((16, 8)).save(buf, "JPEG", quality=80)
    return buf.getvalue()


def small_png() -> bytes:
    buf = io.BytesIO()
    make.picture((16, 8)).save(buf, "PNG")
    return buf.getvalue()


def small_pdf(tmp_path: Path) -> bytes:
    return make.pdf(tmp_path / "letter.pdf", pages=1).read_bytes()


def small_zip(comment: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document/>" * 20)
        z.comment = comment
    return buf.getvalue()


def as_zip64(data: bytes) -> bytes:
    """The zip with a ZIP64 end record and locator before its end record, whose fields then say
    "see ZIP64", as some writers do for any size."""
    pos = data.rfind(b"PK\x05\x06")
    entries, cd_size, cd_offset = struct.unpack_from("<HII", data, pos + 10)
    record = struct.pack(
        "<4sQ2H2I4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, cd_size, cd_offset
    )
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, pos, 1)
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return data[:pos] + record + locator + end


def boxes(*parts: tuple[bytes, bytes]) -> bytes:
    return b"".join(struct.pack(">I", 8 + len(body)) + kind + body for kind, body in parts)


# --- The checker, per type ---------------------------------------------------------------------


def test_whole_jpegs_pass_with_what_phones_add_after_the_end() -> None:
    jpeg = small_jpeg()
    whole(jpeg, FileType.JPEG)
    whole(jpeg + b"\x00" * 5000, FileType.JPEG)  # padding after the end of image
    whole(jpeg + small_jpeg(), FileType.JPEG)  # a second picture (MPF)
    whole(jpeg + b"ftypmp42" + bytes(range(256)) * 40, FileType.JPEG)  # a motion photo's video
    filled = jpeg[:2] + b"\xff\xff\xff" + jpeg[2:]  # fill bytes before a marker
    whole(filled, FileType.JPEG)
    scan_end = jpeg.rfind(b"\xff\xd9")
    whole(jpeg[:scan_end] + b"\xff\xff\xd9", FileType.JPEG)  # a fill byte before the end


def test_damaged_jpegs_are_refused() -> None:
    jpeg = small_jpeg()
    refused(jpeg[: len(jpeg) // 2], FileType.JPEG)  # cut in its image data
    refused(jpeg[:-2], FileType.JPEG)  # no end of image
    refused(jpeg[:40], FileType.JPEG)  # cut in a segment
    refused(b"\xff\xd8\xff\xd9", FileType.JPEG)  # an end without a scan
    refused(b"\x00" + jpeg[1:], FileType.JPEG)  # no start of image
    sos = jpeg.find(b"\xff\xda")
    refused(jpeg[:sos] + b"\x00\x00" + jpeg[sos:], FileType.JPEG)  # junk between segments
    refused(jpeg[:sos] + b"\xff\xd8" + jpeg[sos:], FileType.JPEG)  # a second start
    in_scan = sos + 2 + int.from_bytes(jpeg[sos + 2 : sos + 4], "big") + 5
    refused(jpeg[:in_scan] + b"\xff\xd8" + jpeg[in_scan:], FileType.JPEG)  # a start in a scan
    refused(jpeg[:4] + b"\x00\x01" + jpeg[6:], FileType.JPEG)  # a segment length below 2


def test_whole_pngs_pass_and_a_bad_crc_or_a_missing_end_is_refused() -> None:
    png = small_png()
    whole(png, FileType.PNG)
    whole(png + b"after the end", FileType.PNG)  # not read: the re-encode drops it
    iend = png.rfind(b"IEND") - 4
    refused(png[:iend], FileType.PNG)  # no IEND
    refused(png[: len(png) // 2], FileType.PNG)
    idat = png.find(b"IDAT")
    flipped = bytearray(png)
    flipped[idat + 6] ^= 0x01  # one bit of the image data: the CRC no longer matches
    refused(bytes(flipped), FileType.PNG)
    bad_crc = bytearray(png)
    bad_crc[iend + 8] ^= 0xFF  # IEND's own CRC
    refused(bytes(bad_crc), FileType.PNG)
    ihdr_end = 8 + 25
    text = make.png_chunk(b"tEXt", b"Comment\x00hi")
    refused(png[:8] + text + png[8:], FileType.PNG)  # IHDR not first
    refused(png[:ihdr_end] + png[iend:], FileType.PNG)  # no IDAT
    refused(png[:7] + b"X" + png[8:], FileType.PNG)  # not the signature
    # The chunk walk does not inflate: damage only a decode finds passes (the worker's part).
    whole(_cut(), FileType.PNG)


def _cut() -> bytes:
    ihdr = struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\x10" * 12, 9)[:6]
    return (
        b"\x89PNG\r\n\x1a\n"
        + make.png_chunk(b"IHDR", ihdr)
        + make.png_chunk(b"IDAT", idat)
        + make.png_chunk(b"IEND", b"")
    )


def test_whole_pdfs_pass_with_trailing_whitespace_and_a_pdf_cut_short_is_refused(
    tmp_path: Path,
) -> None:
    pdf = small_pdf(tmp_path)
    whole(pdf, FileType.PDF)
    whole(pdf + b"\r\n\x00\x00  \n", FileType.PDF)
    refused(pdf[: len(pdf) // 2], FileType.PDF)
    refused(pdf[: pdf.rfind(b"%%EOF")], FileType.PDF)
    no_xref = pdf.replace(b"startxref", b"startxreg")
    refused(no_xref, FileType.PDF)
    eof = pdf.rfind(b"%%EOF")
    start = pdf.rfind(b"startxref")
    refused(pdf[:start] + b"startxref\n99999999\n" + pdf[eof:], FileType.PDF)  # beyond the end
    refused(b"%!PS-Adobe" + pdf[5:], FileType.PDF)  # no %PDF- header


def test_whole_zips_pass_and_one_cut_short_or_inconsistent_is_refused() -> None:
    for file_type in (FileType.DOCX, FileType.ODT):
        data = small_zip()
        whole(data, file_type)
        whole(small_zip(b"a comment"), file_type)
        whole(as_zip64(data), file_type)
        assert zipfile.ZipFile(io.BytesIO(as_zip64(data))).testzip() is None
        refused(data[: len(data) // 2], file_type)
        refused(data[:-1], file_type)  # the end record cut
        refused(data + b"\x00" * 10, file_type)  # not at the end
        pos = data.rfind(b"PK\x05\x06")
        moved = bytearray(data)
        struct.pack_into("<I", moved, pos + 16, 3)  # the central directory's offset
        refused(bytes(moved), file_type)
        refused(b"PK\x03\x04" + b"\x00" * 100 + data[-22:], file_type)  # the file is cut


def test_text_is_8_bit_without_nul_bytes_or_strict_utf16_or_utf32_after_a_bom() -> None:
    words = "Notes: the door on level 2, façade, 25 °C, ☂ and 😀.\n" * 3
    whole(words.encode(), FileType.TEXT)
    whole(codecs.BOM_UTF8 + words.encode(), FileType.TEXT)
    whole(words.encode("utf-16"), FileType.TEXT)
    whole(words.encode("utf-32"), FileType.TEXT)
    whole(b"ok", FileType.TEXT)  # shorter than any BOM
    whole(words.encode("cp1252", "replace"), FileType.TEXT)  # an older editor's notes
    whole(words.encode() + b"\xff", FileType.TEXT)  # 8-bit text of no one encoding
    refused(words.encode() + b"\x00\x01\x02" + words.encode(), FileType.TEXT)  # binary inside
    refused(words.encode("utf-16")[:-1], FileType.TEXT)  # an odd byte at the end
    refused(codecs.BOM_UTF16_LE + b"\x00\xd8A\x00", FileType.TEXT)  # a lone surrogate


def test_boxes_must_be_whole_and_end_with_the_file() -> None:
    for file_type in (FileType.HEIC, FileType.M4A):
        box = boxes((b"ftyp", b"M4A \x00\x00\x00\x00"), (b"mdat", b"\x01" * 100))
        whole(box, file_type)
        large = (
            boxes((b"ftyp", b"heic\x00\x00\x00\x00"))
            + struct.pack(">I4sQ", 1, b"mdat", 16 + 50)
            + b"\x02" * 50
        )
        whole(large, file_type)
        whole(box + struct.pack(">I4s", 0, b"mdat") + b"\x03" * 30, file_type)  # to the end
        refused(box[:-1], file_type)
        refused(box + b"\x00\x00", file_type)  # a box header cut
        refused(boxes((b"mdat", b"x")) + box, file_type)  # ftyp not first
        refused(box[:16] + struct.pack(">I4s", 4, b"free") + box[16:], file_type)  # below 8


def test_real_files_of_each_type_pass(tmp_path: Path) -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()  # for make.heic, as confide.files.images does
    made: list[tuple[Callable[[Path], Path], str, FileType]] = [
        (make.jpeg, "p.jpg", FileType.JPEG),
        (make.png, "p.png", FileType.PNG),
        (make.heic, "p.heic", FileType.HEIC),
        (make.pdf, "l.pdf", FileType.PDF),
        (make.docx, "d.docx", FileType.DOCX),
        (make.odt, "d.odt", FileType.ODT),
        (make.mp3, "a.mp3", FileType.MP3),
        (make.m4a, "a.m4a", FileType.M4A),
        (make.png_cut_inside, "cut.png", FileType.PNG),  # whole to the walk; the worker's case
    ]
    for maker, name, file_type in made:
        whole(maker(tmp_path / name).read_bytes(), file_type)
    whole(make.notes(40), FileType.TEXT)


# --- Through the API --------------------------------------------------------------------------


def noise_jpeg(side: int = 1000) -> bytes:
    """A photo of noise, larger than the sniffed prefix: its damage is found while it streams."""
    rng = random.Random(3)
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3)).save(
        buf, "JPEG", quality=90
    )
    assert len(buf.getvalue()) > 2 * SNIFF_BYTES
    return buf.getvalue()


def long_header_jpeg() -> bytes:
    """A whole JPEG whose header runs past the sniffed prefix (as a huge EXIF or many comments
    do): Pillow cannot open the prefix, and that is no damage."""
    jpeg = small_jpeg()
    comment = b"\xff\xfe" + struct.pack(">H", 65535) + b"c" * 65533
    return jpeg[:2] + comment * 5 + jpeg[2:]


def broken_frame_jpeg() -> bytes:
    """Whole segments, but a frame header that says 0 colour components."""
    jpeg = bytearray(small_jpeg())
    sof = jpeg.find(b"\xff\xc0")
    jpeg[sof + 9] = 0
    return bytes(jpeg)


async def test_damaged_files_are_refused_as_they_arrive_and_nothing_is_kept(
    stack: Stack, http: aiohttp.ClientSession, db: asyncpg.Connection, tmp_path: Path
) -> None:
    photo = make.jpeg(tmp_path / "p.jpg").read_bytes()
    big = noise_jpeg()
    png = bytearray(make.png(tmp_path / "p.png").read_bytes())
    idat = png.find(b"IDAT")
    png[idat + 10] ^= 0x01  # a bit of the image data flipped: the CRC does not match
    letter = make.pdf(tmp_path / "l.pdf").read_bytes()
    word = make.docx(tmp_path / "d.docx", photo=tmp_path / "p.jpg").read_bytes()
    latin = make.notes(2).decode().replace("saw", "saw at the façade").encode("latin-1")
    binary = make.notes(300)[:-2000] + bytes(range(256)) * 4  # text, then binary data
    cases = [
        (photo[: len(photo) // 2], "photo.jpg", "a JPEG image"),
        (big[: len(big) - 1000], "big.jpg", "a JPEG image"),  # found after the first chunks
        (broken_frame_jpeg(), "frame.jpg", "a JPEG image"),  # the header, within the prefix
        (bytes(png), "screen.png", "a PNG image"),
        (letter[: len(letter) // 2], "letter.pdf", "a PDF document"),
        (word[: len(word) - 40], "statement.docx", "a Word (DOCX) document"),
        (binary, "notes.txt", "plain text"),
    ]
    for data, name, words in cases:
        status, body = await upload(http, data, name)
        assert status == 422 and body["type"].endswith("/file-damaged"), (name, body)
        assert body["detail"] == (
            f"This file could not be read as {words}. It may be damaged or incomplete; "
            "please try saving it again."
        )
    await assert_nothing_kept(db)
    # Whole files still go through, with what phones and writers add.
    kept = [
        (photo, "p.jpg"),
        (photo + b"\x00" * 4096, "padded.jpg"),
        (big, "big.jpg"),
        (long_header_jpeg(), "long-header.jpg"),
        (make.png(tmp_path / "q.png").read_bytes(), "q.png"),
        (letter + b"\r\n", "letter.pdf"),
        (word, "statement.docx"),
        (make.odt(tmp_path / "d.odt").read_bytes(), "d.odt"),
        (latin, "notes-latin1.txt"),
        (latin.decode("latin-1").encode("utf-16"), "notes-utf16.txt"),
        (make.notes(300), "notes.txt"),
    ]
    for data, name in kept:
        status, body = await upload(http, data, name)
        assert status == 201, (name, body)
    assert await db.fetchval("SELECT count(*) FROM uploads") == len(kept)


# --- On a page --------------------------------------------------------------------------------


async def test_a_damaged_file_on_what_happened_is_named_on_the_same_page_and_the_rest_kept(
    stack: Stack, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """Without JavaScript: the photo cut off is named in the error summary, with what to do;
    the description typed and the whole photo sent with it stay on the page."""
    photo = make.jpeg(tmp_path / "PXL_0417.jpg").read_bytes()
    letter = make.pdf(tmp_path / "letter.pdf").read_bytes()
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(stack.base_url, cookie_jar=jar) as http:
        async with http.get("/report") as resp:
            page = await resp.text()
        for answers in ({"how": "anonymous"}, {"category": "safety"}):
            form = html.main_form(page)
            status, page = await post(http, form.action, form.data(**answers))
            assert status == 200, html.text(page)[:500]
        form = html.main_form(page)
        assert "description" in form.fields, html.title(page)
        data = aiohttp.FormData()
        for name, value in form.data(description="Typed before the files.").items():
            data.add_field(name, value)
        data.add_field("files", io.BytesIO(photo), filename="PXL_0417.jpg")
        data.add_field("files", io.BytesIO(letter[: len(letter) // 2]), filename="letter.pdf")
        async with http.post(form.action, data=data, headers={"Origin": stack.base_url}) as resp:
            status, page = resp.status, await resp.text()
    assert status == 422, html.text(page)[:1500]
    assert html.title(page).startswith("Error:"), html.title(page)
    words = html.text(page)
    assert (
        "“letter.pdf” could not be read as a PDF document. It may be damaged or incomplete" in words
    ), words[:1500]
    again = html.main_form(page)
    assert again.fields["description"] == "Typed before the files."
    assert "attachment-1.jpg" in words and "attachment-2" not in words
    assert await db.fetchval("SELECT count(*) FROM uploads") == 1
    assert await db.fetchval("SELECT count(DISTINCT file_id) FROM attachment_chunks") == 1
