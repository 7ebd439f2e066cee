"""Real files with identifying metadata, made in the test (no fixtures on disk): what a phone, a
word processor or a recorder would leave in them, each carrying a canary string."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import pikepdf
from mutagen.id3 import COMM, ID3, TPE1, TXXX
from PIL import Image, ImageCms
from PIL.PngImagePlugin import PngInfo

GPS = "CANARY-GPS-51N"
SERIAL = "CANARY-SERIAL-0042"
ARTIST = "CANARY-ARTIST-Jo"
AUTHOR = "CANARY-AUTHOR-Sam"
COMMENT = "CANARY-COMMENT"
SECRET = "CANARY-EMBEDDED"
DELETED = "CANARY-DELETED-TEXT"
PRINTER = "CANARY-PRINTER"
VISIBLE = "The fire door on level 2 is broken"
CANARIES = (GPS, SERIAL, ARTIST, AUTHOR, COMMENT, SECRET, DELETED, PRINTER)


def phone_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "Phone 12"  # Model
    exif[0x013B] = ARTIST  # Artist
    exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0xA431] = SERIAL  # BodySerialNumber
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (51.0, 30.0, 12.5)
    gps[0x12] = GPS  # GPSMapDatum
    return exif


def _xmp(text: str) -> bytes:
    return (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>'
        + text.encode()
        + b"</dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>"
    )


def picture(size: tuple[int, int] = (64, 32)) -> Image.Image:
    im = Image.new("RGB", size, (200, 30, 30))
    im.paste((20, 20, 220), (0, 0, size[0] // 2, size[1] // 4))  # a blue block top-left
    return im


def jpeg(path: Path, *, orientation: int = 1, icc: bytes | None = None) -> Path:
    """A phone photo: EXIF (GPS, camera serial, artist, orientation), XMP, a comment, an IPTC
    segment, and a second image after the end (as multi-picture phones append)."""
    buf = io.BytesIO()
    picture().save(
        buf,
        "JPEG",
        exif=phone_exif(orientation),
        xmp=_xmp(AUTHOR),
        comment=COMMENT.encode(),
        icc_profile=icc,
        quality=95,
    )
    data = buf.getvalue()
    iptc = (
        b"Photoshop 3.0\x008BIM\x04\x04\x00\x00"
        + struct.pack(">I", 20)
        + b"\x1c\x02P"
        + ARTIST.encode()[:17]
    )
    app13 = b"\xff\xed" + struct.pack(">H", len(iptc) + 2) + iptc
    trailer = (
        b"\xff\xd8\xff\xfe" + struct.pack(">H", len(SERIAL) + 2) + SERIAL.encode() + b"\xff\xd9"
    )
    path.write_bytes(data[:2] + app13 + data[2:] + trailer)
    return path


def standard_icc() -> bytes:
    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def png(path: Path) -> Path:
    info = PngInfo()
    info.add_text("Author", AUTHOR)
    info.add_text("Comment", COMMENT, zip=True)
    info.add_itxt("XML:com.adobe.xmp", _xmp(ARTIST).decode())
    picture().save(path, "PNG", pnginfo=info, exif=phone_exif())
    return path


def heic(path: Path) -> Path:
    picture().save(path, "HEIF", exif=phone_exif(), xmp=_xmp(AUTHOR), quality=90)
    return path


def pdf(path: Path, pages: int = 2) -> Path:
    """Author, creator tool, XMP, an embedded file, JavaScript run on opening, and a comment with
    its author; streams left uncompressed so that the canaries are in the bytes."""
    doc = pikepdf.new()
    for _ in range(pages):
        doc.add_blank_page(page_size=(200, 200))
    doc.pages[0].Contents = doc.make_stream(
        b"BT /F1 12 Tf 10 100 Td (" + VISIBLE.encode() + b") Tj ET"
    )
    with doc.open_metadata(set_pikepdf_as_editor=False, update_docinfo=False) as meta:
        meta["dc:creator"] = [ARTIST]
    doc.docinfo["/Author"] = AUTHOR
    doc.docinfo["/Creator"] = "CANARY-CREATOR-Tool"
    doc.docinfo["/Producer"] = "CANARY-PRODUCER"
    doc.docinfo["/CreationDate"] = "D:20260101120000Z"
    doc.attachments["notes.txt"] = pikepdf.AttachedFileSpec(
        doc, SECRET.encode(), mime_type="text/plain"
    )
    js = doc.make_indirect(
        pikepdf.Dictionary(S=pikepdf.Name.JavaScript, JS=pikepdf.String("app.alert('" + GPS + "')"))
    )
    doc.Root.OpenAction = js
    note = pikepdf.Dictionary(
        Type=pikepdf.Name.Annot,
        Subtype=pikepdf.Name.Text,
        Rect=[10, 10, 30, 30],
        T=pikepdf.String(SERIAL),
        Contents=pikepdf.String("looks fine"),
    )
    doc.pages[0].Annots = doc.make_indirect(pikepdf.Array([doc.make_indirect(note)]))
    doc.save(path, compress_streams=False, object_stream_mode=pikepdf.ObjectStreamMode.disable)
    return path


def pdf_text(path: Path) -> bytes:
    """Every byte of a PDF with its streams decoded, so a canary cannot hide in compression."""
    out = io.BytesIO()
    with pikepdf.open(path) as doc:
        doc.save(
            out,
            compress_streams=False,
            stream_decode_level=pikepdf.StreamDecodeLevel.all,
            object_stream_mode=pikepdf.ObjectStreamMode.disable,
        )
    return out.getvalue()


_CT = "http://schemas.openxmlformats.org/package/2006/content-types"
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_R = "http://schemas.openxmlformats.org/package/2006/relationships"
_OD = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def docx(path: Path, photo: Path | None = None) -> Path:
    """A Word document: properties with author and company, a comment and its author, a
    tracked insertion and deletion by a named author, and (optionally) a pasted phone photo."""
    types = (
        f'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="{_CT}">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/><Default Extension="jpeg" ContentType="image/jpeg"/>'
        '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
        '<Override PartName="/word/comments.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.comments+xml"/>'
        '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
        '<Override PartName="/docProps/app.xml" ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>'
        "</Types>"
    )
    rels = (
        f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{_R}">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>'
        '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" Target="docProps/core.xml"/>'
        '<Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/extended-properties" Target="docProps/app.xml"/>'
        "</Relationships>"
    )
    doc_rels = (
        f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{_R}">'
        '<Relationship Id="rId5" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/comments" Target="comments.xml"/>'
        '<Relationship Id="rId6" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/image" Target="media/image1.jpeg"/>'
        "</Relationships>"
    )
    document = (
        f'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="{_W}" xmlns:r="{_OD}"><w:body>'
        f'<w:p w:rsidR="00AB12CD"><w:commentRangeStart w:id="0"/><w:r><w:t>{VISIBLE}</w:t></w:r>'
        '<w:commentRangeEnd w:id="0"/><w:r><w:commentReference w:id="0"/></w:r></w:p>'
        f'<w:p><w:ins w:id="1" w:author="{AUTHOR}" w:date="2026-01-01T10:00:00Z"><w:r><w:t>added later</w:t></w:r></w:ins>'
        f'<w:del w:id="2" w:author="{AUTHOR}" w:date="2026-01-01T10:00:00Z"><w:r><w:delText>{DELETED}</w:delText></w:r></w:del></w:p>'
        "<w:tbl><w:tr><w:tc><w:p><w:r><w:t>kept row</w:t></w:r></w:p></w:tc></w:tr>"
        f'<w:tr><w:trPr><w:del w:id="3" w:author="{AUTHOR}"/></w:trPr><w:tc><w:p><w:r><w:t>{DELETED} row</w:t></w:r></w:p></w:tc></w:tr></w:tbl>'
        "</w:body></w:document>"
    )
    comments = (
        f'<?xml version="1.0" encoding="UTF-8"?><w:comments xmlns:w="{_W}">'
        f'<w:comment w:id="0" w:author="{SERIAL}" w:initials="JS"><w:p><w:r><w:t>{COMMENT}</w:t></w:r></w:p></w:comment>'
        "</w:comments>"
    )
    core = (
        '<?xml version="1.0" encoding="UTF-8"?><cp:coreProperties '
        'xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<dc:creator>{AUTHOR}</dc:creator><cp:lastModifiedBy>{ARTIST}</cp:lastModifiedBy></cp:coreProperties>"
    )
    app = (
        '<?xml version="1.0" encoding="UTF-8"?><Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">'
        f"<Company>{PRINTER}</Company></Properties>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", types)
        z.writestr("_rels/.rels", rels)
        z.writestr("word/document.xml", document)
        z.writestr("word/_rels/document.xml.rels", doc_rels)
        z.writestr("word/comments.xml", comments)
        z.writestr("docProps/core.xml", core)
        z.writestr("docProps/app.xml", app)
        if photo is not None:
            z.write(photo, "word/media/image1.jpeg")
    return path


_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_DC = "http://purl.org/dc/elements/1.1/"
_MF = "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"


def odt(path: Path) -> Path:
    """An OpenDocument text: meta.xml with its creator, settings naming a printer, a comment
    with its author, and a tracked deletion."""
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="{_OFFICE}" '
        f'xmlns:text="{_TEXT}" xmlns:dc="{_DC}" office:version="1.3"><office:body><office:text>'
        '<text:tracked-changes><text:changed-region text:id="ct1"><text:deletion><office:change-info>'
        f"<dc:creator>{AUTHOR}</dc:creator><dc:date>2026-01-01T10:00:00</dc:date></office:change-info>"
        f"<text:p>{DELETED}</text:p></text:deletion></text:changed-region></text:tracked-changes>"
        f"<text:p>{VISIBLE}<office:annotation><dc:creator>{SERIAL}</dc:creator><text:p>{COMMENT}</text:p>"
        '</office:annotation> now<text:change text:change-id="ct1"/>.</text:p>'
        "</office:text></office:body></office:document-content>"
    )
    meta = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-meta xmlns:office="{_OFFICE}" '
        'xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0"><office:meta>'
        f"<meta:initial-creator>{ARTIST}</meta:initial-creator></office:meta></office:document-meta>"
    )
    settings = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-settings xmlns:office="{_OFFICE}">'
        f"<office:settings>{PRINTER}</office:settings></office:document-settings>"
    )
    manifest = (
        f'<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="{_MF}" manifest:version="1.3">'
        '<manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.text"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        '<manifest:file-entry manifest:full-path="meta.xml" manifest:media-type="text/xml"/>'
        '<manifest:file-entry manifest:full-path="settings.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.text")
        z.writestr("content.xml", content)
        z.writestr("meta.xml", meta)
        z.writestr("settings.xml", settings)
        z.writestr("META-INF/manifest.xml", manifest)
    return path


def unzipped(path: Path) -> bytes:
    """The archive's bytes followed by every part decompressed."""
    with zipfile.ZipFile(path) as z:
        return path.read_bytes() + b"".join(z.read(n) + n.encode() for n in z.namelist())


# MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, no padding: 417-byte frames of silence.
_MP3_FRAME = b"\xff\xfb\x90\x64" + b"\x00" * 413


def mp3(path: Path, frames: int = 40) -> Path:
    path.write_bytes(_MP3_FRAME * frames)
    tags = ID3()
    tags.add(TPE1(encoding=3, text=[ARTIST]))
    tags.add(COMM(encoding=3, lang="eng", desc="", text=[COMMENT]))
    tags.add(TXXX(encoding=3, desc="serial", text=[SERIAL]))
    tags.save(path, v1=2)
    return path


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full(kind: bytes, payload: bytes, version: int = 0) -> bytes:
    return _box(kind, bytes([version, 0, 0, 0]) + payload)


def m4a(path: Path) -> Path:
    """A minimal AAC-in-MP4 audio file (one empty sample table), then iTunes tags and a
    QuickTime user-data box added by mutagen and by hand."""
    from mutagen.mp4 import MP4

    created = struct.pack(">II", 0x12345678, 0x12345678)
    mvhd = _full(
        b"mvhd",
        created
        + struct.pack(">II", 44100, 44100)
        + b"\x00\x01\x00\x00\x01\x00"
        + b"\x00" * 70
        + struct.pack(">I", 2),
    )
    tkhd = _full(
        b"tkhd", created + struct.pack(">II", 1, 0) + struct.pack(">I", 44100) + b"\x00" * 60
    )
    mdhd = _full(b"mdhd", created + struct.pack(">II", 44100, 44100) + b"\x55\xc4\x00\x00")
    hdlr = _full(b"hdlr", b"\x00\x00\x00\x00soun" + b"\x00" * 12 + b"SoundHandler\x00")
    esds = _full(
        b"esds",
        b"\x03\x19\x00\x01\x00\x04\x11\x40\x15\x00\x00\x00\x00\x01\xf4\x00\x00\x01\xf4\x00\x05\x02\x12\x10\x06\x01\x02",
    )
    mp4a = _box(
        b"mp4a",
        b"\x00" * 6
        + b"\x00\x01"
        + b"\x00" * 8
        + b"\x00\x02\x00\x10\x00\x00\x00\x00"
        + struct.pack(">I", 44100 << 16)
        + esds,
    )
    stsd = _full(b"stsd", struct.pack(">I", 1) + mp4a)
    stbl = _box(
        b"stbl",
        stsd
        + _full(b"stts", struct.pack(">I", 0))
        + _full(b"stsc", struct.pack(">I", 0))
        + _full(b"stsz", struct.pack(">II", 0, 0))
        + _full(b"stco", struct.pack(">I", 0)),
    )
    dinf = _box(
        b"dinf",
        _full(
            b"dref", struct.pack(">I", 1) + _full(b"url ", b"", version=0)[:8] + b"\x00\x00\x00\x01"
        ),
    )
    minf = _box(b"minf", _full(b"smhd", b"\x00" * 4) + dinf + stbl)
    trak = _box(b"trak", tkhd + _box(b"mdia", mdhd + hdlr + minf))
    udta = _box(b"udta", _box(b"\xa9xyz", struct.pack(">HH", len(GPS), 0) + GPS.encode()))
    moov = _box(b"moov", mvhd + trak + udta)
    ftyp = _box(b"ftyp", b"M4A \x00\x00\x02\x00M4A mp42isom")
    path.write_bytes(ftyp + moov + _box(b"mdat", b"\x00" * 64))
    tags = MP4(path)
    tags["\xa9ART"] = [ARTIST]
    tags["\xa9cmt"] = [COMMENT]
    tags["----:com.apple.iTunes:serial"] = [SERIAL.encode()]
    tags.save()
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk, with its length and a right CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(path: Path, side: int = 100_000) -> Path:
    """A few hundred bytes that claim ``side`` x ``side`` pixels."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096, 9)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )
    return path


def png_cut_inside(path: Path) -> Path:
    """A PNG whose every chunk is whole, its CRC right and IEND last, but whose image data stops
    halfway: it passes the upload's checks, and only decoding it (the worker's stripping) finds
    the damage, so it is quarantined."""
    ihdr = struct.pack(">IIBBBBB", 64, 32, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + bytes((n * 7 % 256, 30, 200)) * 64 for n in range(32))
    idat = zlib.compress(rows, 9)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"tEXt", b"Author\x00" + AUTHOR.encode())
        + png_chunk(b"IDAT", idat[: len(idat) // 2])
        + png_chunk(b"IEND", b"")
    )
    return path


def notes(kib: int) -> bytes:
    """Plain text of about ``kib`` KiB, as libmagic sees text (lines that differ)."""
    lines = (f"On day {n} I wrote down what I saw and heard there.\n" for n in range(10**7))
    out = bytearray()
    while len(out) < kib * 1024:
        out += next(lines).encode()
    return bytes(out)
