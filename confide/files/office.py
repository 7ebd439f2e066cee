"""Word (DOCX) and OpenDocument text (ODT), by rewriting their zip parts one by one.

Removed: the document properties (DOCX ``docProps/``: author, last editor, company, template,
dates, custom properties, thumbnail; ODT ``meta.xml``), comments with their authors, the people
list, custom XML data, settings that name a template path, a printer or editing sessions (rsid),
macros (ODT ``Basic/``, ``Scripts/``), and tracked changes, which are accepted: deleted text goes,
inserted text stays, and no revision author or date is left. Pictures inside (JPEG, PNG) are
stripped like attachments. Every zip entry gets a fixed date and no extra fields, so the archive
says nothing about when or on which system it was written. XML is parsed without entities, DTDs
or network access, and comments in it are dropped.
"""

from __future__ import annotations

import posixpath
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from lxml import etree

from confide.files.errors import CannotStrip, StripFailure
from confide.files.types import FileType, identify

# Zip bombs: what the parts may unpack to, and how many there may be.
MAX_UNPACKED = 512 * 1024 * 1024
MAX_XML_PART = 64 * 1024 * 1024
MAX_PARTS = 5000
FIXED_DATE = (1980, 1, 1, 0, 0, 0)
CHUNK = 1 << 16

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
CT = "http://schemas.openxmlformats.org/package/2006/content-types"
REL = "http://schemas.openxmlformats.org/package/2006/relationships"
MANIFEST = "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"
OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"

_DOCX_DROP_PREFIXES = ("docProps/", "customXml/")
_DOCX_DROP = frozenset(
    {
        "word/comments.xml",
        "word/commentsExtended.xml",
        "word/commentsIds.xml",
        "word/commentsExtensible.xml",
        "word/people.xml",
        "word/vbaProject.bin",
        "word/vbaData.xml",
    }
)
# Tracked changes accepted: these go with what they hold...
_W_REMOVE = frozenset(
    f"{{{W}}}{name}"
    for name in (
        "del",
        "moveFrom",
        "moveFromRangeStart",
        "moveFromRangeEnd",
        "moveToRangeStart",
        "moveToRangeEnd",
        "rPrChange",
        "pPrChange",
        "sectPrChange",
        "tblPrChange",
        "tblPrExChange",
        "trPrChange",
        "tcPrChange",
        "tblGridChange",
        "numberingChange",
        "commentRangeStart",
        "commentRangeEnd",
        "commentReference",
        "rsids",
        "attachedTemplate",
        "docVars",
        "cellIns",
        "cellDel",
    )
)
# ... and these give way to what they hold (inserted or moved text stays).
_W_UNWRAP = frozenset({f"{{{W}}}ins", f"{{{W}}}moveTo"})
_W_ATTRIBUTES = frozenset({f"{{{W}}}author", f"{{{W}}}date", f"{{{W}}}initials"})

_ODT_DROP_PREFIXES = ("Thumbnails/", "Basic/", "Scripts/", "Dialogs/", "layout-cache")
_ODT_DROP_NAMES = frozenset({"meta.xml", "settings.xml"})  # in the document and its objects
_ODT_REMOVE = frozenset(
    {
        f"{{{OFFICE}}}annotation",
        f"{{{OFFICE}}}annotation-end",
        f"{{{TEXT}}}tracked-changes",
        f"{{{TEXT}}}change",
        f"{{{TEXT}}}change-start",
        f"{{{TEXT}}}change-end",
    }
)

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True
)


def strip_docx(src: Path, dst: Path) -> None:
    _rewrite(src, dst, FileType.DOCX, _docx_dropped, _docx_part)


def strip_odt(src: Path, dst: Path) -> None:
    _rewrite(src, dst, FileType.ODT, _odt_dropped, _odt_part)


def _docx_dropped(name: str) -> bool:
    if name in _DOCX_DROP or name.startswith(_DOCX_DROP_PREFIXES):
        return True
    # The relationships of a dropped part: word/_rels/comments.xml.rels
    folder, base = posixpath.split(name)
    if posixpath.basename(folder) == "_rels" and base.endswith(".rels"):
        return _docx_dropped(posixpath.join(posixpath.dirname(folder), base[: -len(".rels")]))
    return False


def _odt_dropped(name: str) -> bool:
    return posixpath.basename(name) in _ODT_DROP_NAMES or name.startswith(_ODT_DROP_PREFIXES)


def _docx_part(name: str, names: frozenset[str]) -> Callable[[etree._Element], None] | None:
    if name == "[Content_Types].xml":
        return lambda root: _remove_where(
            root, f"{{{CT}}}Override", lambda e: _docx_dropped(e.get("PartName", "").lstrip("/"))
        )
    if name.endswith(".rels"):
        source = _rels_source(name)
        return lambda root: _remove_where(
            root,
            f"{{{REL}}}Relationship",
            lambda e: (
                e.get("TargetMode") != "External"
                and _docx_dropped(_resolve(source, e.get("Target", "")))
            ),
        )
    if name.startswith("word/") and name.endswith(".xml"):
        return _clean_wordml
    return None


def _odt_part(name: str, names: frozenset[str]) -> Callable[[etree._Element], None] | None:
    if name == "META-INF/manifest.xml":
        attr = f"{{{MANIFEST}}}full-path"
        return lambda root: _remove_where(
            root, f"{{{MANIFEST}}}file-entry", lambda e: _odt_dropped(e.get(attr, ""))
        )
    if posixpath.basename(name) in ("content.xml", "styles.xml"):
        return lambda root: _remove_tags(root, _ODT_REMOVE)
    return None


def _clean_wordml(root: etree._Element) -> None:
    # A table row deleted with tracking on is marked in its properties: accepting it removes the
    # row, with the words in it.
    for marker in list(root.iter(f"{{{W}}}del")):
        props = marker.getparent()
        row = props.getparent() if props is not None and props.tag == f"{{{W}}}trPr" else None
        if row is not None:
            _drop(row)
    _remove_tags(root, _W_REMOVE)
    for element in list(root.iter(*_W_UNWRAP)):
        parent = element.getparent()
        if parent is None:
            continue
        index = parent.index(element)
        for offset, child in enumerate(list(element)):
            parent.insert(index + offset, child)
        _drop(element)
    for element in root.iter():
        for key in list(element.attrib):
            if key in _W_ATTRIBUTES or (
                key.startswith(f"{{{W}}}rsid")  # editing-session ids link a person's documents
            ):
                del element.attrib[key]


def _remove_tags(root: etree._Element, tags: frozenset[str]) -> None:
    for element in list(root.iter(*tags)):
        _drop(element)


def _remove_where(root: etree._Element, tag: str, drop: Callable[[etree._Element], bool]) -> None:
    for element in list(root.iter(tag)):
        if drop(element):
            _drop(element)


def _drop(element: etree._Element) -> None:
    """Removes an element, keeping the text that follows it (lxml keeps it on the element)."""
    parent = element.getparent()
    if parent is None:
        return
    tail = element.tail or ""
    previous = element.getprevious()
    if tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(element)


def _rels_source(name: str) -> str:
    """``word/_rels/document.xml.rels`` → ``word/document.xml``; ``_rels/.rels`` → the root."""
    folder, base = posixpath.split(name)
    return posixpath.join(posixpath.dirname(folder), base[: -len(".rels")])


def _resolve(source: str, target: str) -> str:
    if target.startswith("/"):
        return target.lstrip("/")
    return posixpath.normpath(posixpath.join(posixpath.dirname(source), target))


def _rewrite(
    src: Path,
    dst: Path,
    file_type: FileType,
    dropped: Callable[[str], bool],
    part: Callable[[str, frozenset[str]], Callable[[etree._Element], None] | None],
) -> None:
    damaged = CannotStrip(StripFailure.DAMAGED, file_type)
    try:
        with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
            infos = zin.infolist()
            names = frozenset(i.filename for i in infos)
            if len(names) != len(infos) or len(infos) > MAX_PARTS:
                raise damaged  # duplicate names would let two readers see two documents
            if sum(i.file_size for i in infos) > MAX_UNPACKED:
                raise CannotStrip(StripFailure.TOO_LARGE_INSIDE, file_type)
            if file_type is FileType.ODT and (not infos or infos[0].filename != "mimetype"):
                raise damaged
            for info in infos:
                if info.is_dir() or dropped(info.filename):
                    continue
                out = _entry(info.filename, stored=info.filename == "mimetype")
                transform = part(info.filename, names)
                if transform is not None:
                    zout.writestr(out, _transformed(zin, info, transform, file_type))
                elif _is_picture(info.filename):
                    _copy_picture(zin, info, zout, out)
                else:
                    with zin.open(info) as fin, zout.open(out, "w") as fout:
                        _copy_limited(fin, fout, info.file_size, file_type)
    except CannotStrip:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError):
        raise damaged from None
    except (etree.XMLSyntaxError, ValueError, KeyError):
        raise damaged from None


def _entry(name: str, *, stored: bool) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    info.create_system = 0  # no Unix mode or owner bits
    info.external_attr = 0
    return info


def _transformed(
    zin: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    transform: Callable[[etree._Element], None],
    file_type: FileType,
) -> bytes:
    if info.file_size > MAX_XML_PART:
        raise CannotStrip(StripFailure.TOO_LARGE_INSIDE, file_type)
    with zin.open(info) as fin:
        data = fin.read(MAX_XML_PART + 1)
    if len(data) > MAX_XML_PART:
        raise CannotStrip(StripFailure.TOO_LARGE_INSIDE, file_type)
    root = etree.fromstring(data, _PARSER)
    transform(root)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True))


def _copy_limited(fin: IO[bytes], fout: IO[bytes], declared: int, file_type: FileType) -> None:
    """Copies a part in blocks, refusing one that unpacks to more than it declared."""
    copied = 0
    while block := fin.read(CHUNK):
        copied += len(block)
        if copied > declared:
            raise CannotStrip(StripFailure.TOO_LARGE_INSIDE, file_type)
        fout.write(block)


def _is_picture(name: str) -> bool:
    return name.startswith(("word/media/", "Pictures/")) or "/Pictures/" in name


def _copy_picture(
    zin: zipfile.ZipFile, info: zipfile.ZipInfo, zout: zipfile.ZipFile, out: zipfile.ZipInfo
) -> None:
    """A picture inside the document, stripped like an attachment when it is a JPEG or PNG
    (a phone photo pasted into a letter keeps its GPS position otherwise); others are copied."""
    from confide.files.images import strip_jpeg, strip_png

    with tempfile.TemporaryDirectory(prefix="confide-part-") as tmp:
        raw, clean = Path(tmp) / "in", Path(tmp) / "out"
        with zin.open(info) as fin, raw.open("wb") as fraw:
            shutil.copyfileobj(fin, fraw, CHUNK)
        kind = identify(raw)
        if kind is FileType.JPEG:
            strip_jpeg(raw, clean)
        elif kind is FileType.PNG:
            strip_png(raw, clean)
        else:
            clean = raw
        with clean.open("rb") as fin, zout.open(out, "w") as fout:
            shutil.copyfileobj(fin, fout, CHUNK)
