"""Stories: a file a reporter attaches keeps its content and loses what identifies them.

Every file is made here with real libraries and carries canaries (GPS, camera serial, author,
comment, embedded file, deleted text); after stripping, none is anywhere in the bytes, with
streams and zip parts decoded, and the file still opens as its type. Types are judged by content.
"""

from __future__ import annotations

import shutil
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pikepdf
import pytest
from lxml import etree
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from PIL import Image

from confide.errors import ConfigError
from confide.files import images
from confide.files.errors import CannotStrip, FileTooLarge, StripFailure, TypeNotAllowed
from confide.files.limits import MIB, AttachmentLimits, parse_limits
from confide.files.strip import prepare, strip_file
from confide.files.types import DEFAULT_TYPES, FileType, check_allowed, identify
from tests import attachment_files as make

LIMITS = AttachmentLimits()


def assert_no_canary(data: bytes) -> None:
    for canary in make.CANARIES:
        assert canary.encode() not in data, canary
        assert canary.encode("utf-16-le") not in data, canary  # PDF and ID3 may hold UTF-16


def strip(tmp_path: Path, src: Path) -> tuple[FileType, Path]:
    dst = tmp_path / f"clean-{src.name}"
    prepared = prepare(src, dst, LIMITS)
    assert prepared.size == dst.stat().st_size
    return prepared.file_type, dst


def test_reporter_photo_loses_gps_serial_artist_and_comment_losslessly(tmp_path: Path) -> None:
    src = make.jpeg(tmp_path / "IMG_0042.jpg", icc=make.standard_icc())
    assert make.SERIAL.encode() in src.read_bytes() and make.GPS.encode() in src.read_bytes()
    kind, clean = strip(tmp_path, src)
    assert kind is FileType.JPEG
    data = clean.read_bytes()
    assert_no_canary(data)
    assert b"Exif\x00\x00" not in data and b"http://ns.adobe.com/xap" not in data
    assert b"Photoshop 3.0" not in data and data.count(b"\xff\xd8") == 1  # no appended image
    with Image.open(src) as before, Image.open(clean) as after:
        assert after.format == "JPEG" and after.size == before.size
        assert not after.getexif() and "comment" not in after.info
        assert after.info.get("icc_profile") == make.standard_icc()  # a standard profile stays
        assert after.tobytes() == before.tobytes()  # lossless: the same compressed image data


def test_reporter_photo_taken_sideways_stays_upright(tmp_path: Path) -> None:
    src = make.jpeg(tmp_path / "sideways.jpg", orientation=6)  # "rotate 90° clockwise to view"
    _, clean = strip(tmp_path, src)
    assert_no_canary(clean.read_bytes())
    with Image.open(clean) as after:
        assert after.size == (32, 64) and not after.getexif()
        # The blue block was top-left in the sensor's frame: upright, it is top-right.
        blue = after.convert("RGB").getpixel((28, 2))
        assert isinstance(blue, tuple) and blue[2] > 150 and blue[0] < 100


def test_a_calibrated_monitor_profile_is_dropped(tmp_path: Path) -> None:
    from PIL import ImageCms

    own = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))  # not a standard colour space
    src = make.jpeg(tmp_path / "shot.jpg", icc=own.tobytes())
    _, clean = strip(tmp_path, src)
    with Image.open(clean) as after:
        assert "icc_profile" not in after.info


def test_reporter_screenshot_png_is_reencoded_without_text_chunks(tmp_path: Path) -> None:
    src = make.png(tmp_path / "screenshot.png")
    assert make.AUTHOR.encode() in src.read_bytes()
    kind, clean = strip(tmp_path, src)
    assert kind is FileType.PNG
    assert_no_canary(clean.read_bytes())
    for chunk in (b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"):
        assert chunk not in clean.read_bytes()
    with Image.open(src) as before, Image.open(clean) as after:
        assert after.format == "PNG" and after.tobytes() == before.tobytes()


def test_reporter_heic_photo_is_reencoded_without_exif_or_xmp(tmp_path: Path) -> None:
    src = make.heic(tmp_path / "IMG_0001.HEIC")
    assert make.SERIAL.encode() in src.read_bytes()
    kind, clean = strip(tmp_path, src)
    assert kind is FileType.HEIC
    assert_no_canary(clean.read_bytes())
    with Image.open(clean) as after:
        assert after.format == "HEIF" and after.size == (64, 32)
        assert not after.getexif() and not after.info.get("xmp")


def test_reporter_pdf_loses_author_xmp_embedded_file_javascript_and_comment_author(
    tmp_path: Path,
) -> None:
    src = make.pdf(tmp_path / "letter.pdf", pages=3)
    for canary in (make.AUTHOR, make.ARTIST, make.SECRET, make.SERIAL, make.GPS):
        assert canary.encode() in make.pdf_text(src), canary
    kind, clean = strip(tmp_path, src)
    assert kind is FileType.PDF
    assert_no_canary(clean.read_bytes())
    assert_no_canary(make.pdf_text(clean))  # with every stream decoded
    assert b"CANARY" not in make.pdf_text(clean)  # creator and producer tools too
    with pikepdf.open(clean) as doc:
        assert len(doc.pages) == 3
        assert "/Info" not in doc.trailer and "/Metadata" not in doc.Root
        assert "/OpenAction" not in doc.Root and len(doc.attachments) == 0
        assert make.VISIBLE.encode() in doc.pages[0].Contents.read_bytes()  # the content stays
        (note,) = doc.pages[0].Annots
        assert "/T" not in note and str(note.Contents) == "looks fine"


def test_reporter_word_document_loses_properties_comments_and_revision_authors(
    tmp_path: Path,
) -> None:
    photo = make.jpeg(tmp_path / "pasted.jpg")
    src = make.docx(tmp_path / "statement.docx", photo=photo)
    assert make.AUTHOR.encode() in make.unzipped(src)
    kind, clean = strip(tmp_path, src)
    assert kind is FileType.DOCX
    assert_no_canary(make.unzipped(clean))
    with zipfile.ZipFile(clean) as z:
        names = set(z.namelist())
        assert not any(n.startswith("docProps/") for n in names)
        assert "word/comments.xml" not in names
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in z.infolist())
        body = etree.fromstring(z.read("word/document.xml"))
        text = "".join(body.itertext())
        assert make.VISIBLE in text and "added later" in text  # the insertion is accepted
        assert "kept row" in text  # and the deleted table row is gone (no canary left)
        assert b"rsid" not in z.read("word/document.xml")
        assert b"comments.xml" not in z.read("word/_rels/document.xml.rels")
        assert b"docProps" not in z.read("[Content_Types].xml") + z.read("_rels/.rels")
        for name in names - {"word/media/image1.jpeg"}:
            etree.fromstring(z.read(name))  # every XML part still parses
        with z.open("word/media/image1.jpeg") as picture, Image.open(picture) as im:
            assert not im.getexif()  # the pasted photo is stripped too
    assert identify(clean) is FileType.DOCX


def test_reporter_odt_loses_meta_settings_comments_and_tracked_changes(tmp_path: Path) -> None:
    src = make.odt(tmp_path / "statement.odt")
    kind, clean = strip(tmp_path, src)
    assert kind is FileType.ODT
    assert_no_canary(make.unzipped(clean))
    with zipfile.ZipFile(clean) as z:
        first = z.infolist()[0]
        assert first.filename == "mimetype" and first.compress_type == zipfile.ZIP_STORED
        assert {"meta.xml", "settings.xml"}.isdisjoint(z.namelist())
        assert b"meta.xml" not in z.read("META-INF/manifest.xml")
        text = "".join(etree.fromstring(z.read("content.xml")).itertext())
        assert text == f"{make.VISIBLE} now."  # the words around the comment are kept
    assert identify(clean) is FileType.ODT


def test_reporter_voice_recording_mp3_loses_id3_tags(tmp_path: Path) -> None:
    src = make.mp3(tmp_path / "memo.mp3")
    assert make.ARTIST.encode() in src.read_bytes()
    kind, clean = strip(tmp_path, src)
    assert kind is FileType.MP3
    assert_no_canary(clean.read_bytes())
    assert b"ID3" not in clean.read_bytes()[:3] and b"TAG" not in clean.read_bytes()[-128:]
    audio = MP3(clean)
    assert audio.tags is None and audio.info is not None and audio.info.sample_rate == 44100


def test_reporter_m4a_loses_mp4_tags_user_data_and_recording_times(tmp_path: Path) -> None:
    src = make.m4a(tmp_path / "memo.m4a")
    assert make.GPS.encode() in src.read_bytes() and make.ARTIST.encode() in src.read_bytes()
    kind, clean = strip(tmp_path, src)
    assert kind is FileType.M4A
    data = clean.read_bytes()
    assert_no_canary(data)
    assert b"\x12\x34\x56\x78" not in data  # creation and modification times zeroed
    audio = MP4(clean)
    assert not audio.tags


def test_plain_text_is_kept_byte_for_byte(tmp_path: Path) -> None:
    src = tmp_path / "notes.txt"
    src.write_bytes("Line one\r\nLínea dos  \n\tend".encode())
    kind, clean = strip(tmp_path, src)
    assert kind is FileType.TEXT and clean.read_bytes() == src.read_bytes()


def test_a_renamed_file_is_judged_by_its_content(tmp_path: Path) -> None:
    pdf_as_jpg = make.pdf(tmp_path / "holiday.jpg")
    assert check_allowed(pdf_as_jpg, DEFAULT_TYPES) is FileType.PDF
    program = tmp_path / "photo.jpg"
    shutil.copyfile(sys.executable, program)
    with pytest.raises(TypeNotAllowed) as caught:
        prepare(program, tmp_path / "out", LIMITS)
    assert "executable" in caught.value.detected or "sharedlib" in caught.value.detected
    page = tmp_path / "notes.txt"
    page.write_text("<!doctype html><html><script>alert(1)</script></html>")
    with pytest.raises(TypeNotAllowed):
        check_allowed(page, DEFAULT_TYPES)
    assert not (tmp_path / "out").exists()


def test_a_type_the_organisation_does_not_allow_is_refused(tmp_path: Path) -> None:
    only_pictures = AttachmentLimits(allowed_types=frozenset({FileType.JPEG, FileType.PNG}))
    with pytest.raises(TypeNotAllowed):
        prepare(make.pdf(tmp_path / "a.pdf"), tmp_path / "out", only_pictures)


def test_a_file_over_the_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    with big.open("wb") as f:
        f.truncate(20 * MIB + 1)
    with pytest.raises(FileTooLarge):
        prepare(big, tmp_path / "out", LIMITS)


def _truncate(path: Path) -> Path:
    # An MP3 cut short is still MPEG frames (players stream them): cut inside its ID3 tag.
    keep = 60 if path.suffix == ".mp3" else path.stat().st_size * 2 // 3
    path.write_bytes(path.read_bytes()[:keep])
    return path


@pytest.mark.parametrize(
    ("file_type", "maker"),
    [
        (FileType.JPEG, lambda p: make.jpeg(p.with_suffix(".jpg"))),
        (FileType.PNG, lambda p: make.png(p.with_suffix(".png"))),
        (FileType.HEIC, lambda p: make.heic(p.with_suffix(".heic"))),
        (FileType.PDF, lambda p: make.pdf(p.with_suffix(".pdf"))),
        (FileType.DOCX, lambda p: make.docx(p.with_suffix(".docx"))),
        (FileType.ODT, lambda p: make.odt(p.with_suffix(".odt"))),
        (FileType.MP3, lambda p: make.mp3(p.with_suffix(".mp3"))),
        (FileType.M4A, lambda p: make.m4a(p.with_suffix(".m4a"))),
    ],
)
def test_a_truncated_file_cannot_be_stripped_and_leaves_nothing(
    tmp_path: Path, file_type: FileType, maker: Callable[[Path], Path]
) -> None:
    src = _truncate(maker(tmp_path / "f"))
    dst = tmp_path / "clean"
    with pytest.raises(CannotStrip) as caught:
        strip_file(src, dst, file_type)  # as detected before the damage showed
    assert caught.value.reason in (StripFailure.DAMAGED, StripFailure.LEFT_OVER)
    assert not dst.exists()
    assert "CANARY" not in str(caught.value)


def test_garbage_claiming_a_type_cannot_be_stripped(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"\xff\xd8\xff\xe0" + b"\x13" * 500)
    for file_type in (FileType.JPEG, FileType.PDF, FileType.DOCX, FileType.MP3, FileType.M4A):
        with pytest.raises(CannotStrip):
            strip_file(junk, tmp_path / "out", file_type)


def test_an_image_bomb_is_refused_without_decoding(tmp_path: Path) -> None:
    bomb = make.png_bomb(tmp_path / "tiny.png")
    assert bomb.stat().st_size < 1000
    with pytest.raises(CannotStrip) as caught:
        prepare(bomb, tmp_path / "out", LIMITS)
    assert caught.value.reason is StripFailure.TOO_MANY_PIXELS
    modest = make.png_bomb(tmp_path / "modest.png", side=9000)  # 81 MP: under Pillow's limit
    with pytest.raises(CannotStrip) as caught:
        images.strip_png(modest, tmp_path / "out2")
    assert caught.value.reason is StripFailure.TOO_MANY_PIXELS


def test_organisation_file_limits_default_and_validate() -> None:
    assert parse_limits(None, "f") == AttachmentLimits()
    assert AttachmentLimits().max_files == 10
    assert AttachmentLimits().max_total_bytes == 50 * MIB
    assert AttachmentLimits().max_file_bytes == 20 * MIB
    assert AttachmentLimits().allowed_types == frozenset(FileType)
    own = parse_limits(
        {"max_files": 3, "max_file_mib": 5, "max_total_mib": 12, "allowed_types": ["pdf", "jpeg"]},
        "f",
    )
    assert own == AttachmentLimits(3, 12 * MIB, 5 * MIB, frozenset({FileType.PDF, FileType.JPEG}))
    assert parse_limits({"max_file_mib": 80}, "f").max_total_bytes == 80 * MIB
    bad: object
    for bad in (
        {"max_files": -1},
        {"max_files": True},
        {"max_file_mib": 0},
        {"max_file_mib": 30, "max_total_mib": 20},
        {"allowed_types": ["exe"]},
        {"allowed_types": []},
        {"max_size": 3},
        "ten",
    ):
        with pytest.raises(ConfigError, match="attachments"):
            parse_limits(bad, "CONFIDE_ORG_FILE")


def test_organisation_file_carries_the_attachment_limits(tmp_path: Path) -> None:
    from confide import org

    demo = Path(org.__file__).parent / "data" / "demo-org.toml"
    assert org.load(demo).attachments == AttachmentLimits()
    own = tmp_path / "org.toml"
    own.write_text(
        demo.read_text(encoding="utf-8")
        + '\n[attachments]\nmax_files = 2\nallowed_types = ["pdf"]\n',
        encoding="utf-8",
    )
    assert org.load(own).attachments.max_files == 2
    assert org.load(own).attachments.allowed_types == frozenset({FileType.PDF})
    own.write_text(
        demo.read_text(encoding="utf-8") + "\n[attachments]\nmax_file_mib = 500\n", "utf-8"
    )
    with pytest.raises(ConfigError, match=r"attachments\.max_file_mib"):
        org.load(own)


def test_a_multi_picture_photo_keeps_only_its_first_picture(tmp_path: Path) -> None:
    src = tmp_path / "portrait.jpg"
    make.picture().save(
        src, "MPO", save_all=True, append_images=[make.picture()], exif=make.phone_exif()
    )
    assert src.read_bytes().count(make.SERIAL.encode()) == 2  # each picture has its EXIF
    kind, clean = strip(tmp_path, src)
    assert kind is FileType.JPEG
    data = clean.read_bytes()
    assert_no_canary(data)
    assert data.count(b"\xff\xd8") == 1 and b"MPF\x00" not in data
    with Image.open(clean) as after:
        assert after.format == "JPEG" and after.size == (64, 32)


def test_a_password_protected_pdf_is_quarantined_not_opened(tmp_path: Path) -> None:
    src = tmp_path / "locked.pdf"
    with pikepdf.open(make.pdf(tmp_path / "open.pdf")) as doc:
        doc.save(src, encryption=pikepdf.Encryption(user="secret", owner="owner"))
    with pytest.raises(CannotStrip) as caught:
        prepare(src, tmp_path / "out", LIMITS)
    assert caught.value.reason is StripFailure.ENCRYPTED


def test_a_document_that_unpacks_beyond_the_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from confide.files import office

    src = make.docx(tmp_path / "big.docx")
    monkeypatch.setattr(office, "MAX_UNPACKED", 1000)  # a zip bomb, at the scale of this test
    with pytest.raises(CannotStrip) as caught:
        prepare(src, tmp_path / "out", LIMITS)
    assert caught.value.reason is StripFailure.TOO_LARGE_INSIDE
