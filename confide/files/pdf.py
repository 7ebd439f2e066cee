"""PDF with pikepdf (qpdf): the document information (author, creator tool, producer, dates),
XMP metadata streams on any object, embedded and associated files, JavaScript and other actions
that run on their own, annotation authors and dates, and signatures (which name their signer and
would no longer verify) are removed. The file is rewritten whole, so earlier revisions kept by
incremental saves are gone too, and it gets a new identifier derived from its content."""

from __future__ import annotations

from pathlib import Path

import pikepdf
from pikepdf import Dictionary, Name

from confide.files.errors import CannotStrip, StripFailure
from confide.files.types import FileType

# Keys removed wherever they appear: metadata streams, application data, actions run on events,
# associated files (PDF 2.0, PDF/A-3), and modification dates.
_ANYWHERE = ("/Metadata", "/PieceInfo", "/AA", "/AF", "/LastModified")
# From the catalogue: what opens with the document, portfolios, usage rights, forms in XFA.
_FROM_ROOT = ("/OpenAction", "/Collection", "/Perms", "/SpiderInfo", "/Threads")
_FROM_NAMES = ("/EmbeddedFiles", "/JavaScript")
# Markup annotations' author, dates and unique name (form widgets keep /T: it is the field's name).
_FROM_ANNOTATIONS = ("/T", "/M", "/CreationDate", "/NM", "/RC", "/Popup")
# Actions a link may keep: moving within the document, and a web address shown on hover.
_SAFE_ACTIONS = frozenset({"/GoTo", "/URI", "/Named"})


def strip_pdf(src: Path, dst: Path) -> None:
    try:
        # No reconstruction: a damaged cross-reference table means a file we cannot vouch for.
        with pikepdf.open(src, attempt_recovery=False) as pdf:
            pages = len(pdf.pages)
            _clean(pdf)
            pdf.save(dst, encryption=False, deterministic_id=True, fix_metadata_version=False)
        with pikepdf.open(dst) as check:
            if len(check.pages) != pages or "/Info" in check.trailer:
                raise CannotStrip(StripFailure.LEFT_OVER, FileType.PDF)
    except pikepdf.PasswordError:
        raise CannotStrip(StripFailure.ENCRYPTED, FileType.PDF) from None
    except (pikepdf.PdfError, OSError, ValueError, RecursionError):
        raise CannotStrip(StripFailure.DAMAGED, FileType.PDF) from None


def _clean(pdf: pikepdf.Pdf) -> None:
    if "/Info" in pdf.trailer:
        del pdf.trailer["/Info"]
    root = pdf.Root
    for key in _FROM_ROOT:
        if key in root:
            del root[key]
    names = root.get("/Names")
    if isinstance(names, Dictionary):
        for key in _FROM_NAMES:
            if key in names:
                del names[key]
    form = root.get("/AcroForm")
    if isinstance(form, Dictionary) and "/XFA" in form:
        del form["/XFA"]
    for obj in pdf.objects:
        if isinstance(obj, (Dictionary, pikepdf.Stream)):
            _clean_object(obj)
    for page in pdf.pages:
        annots = page.obj.get("/Annots")
        if isinstance(annots, pikepdf.Array):
            kept = [a for a in annots if not _is_attachment(a)]
            if len(kept) != len(annots):
                page.obj["/Annots"] = pikepdf.Array(kept)


def _clean_object(obj: pikepdf.Object) -> None:
    for key in _ANYWHERE:
        if key in obj:
            del obj[key]
    if obj.get("/FT") == Name.Sig and "/V" in obj:
        del obj["/V"]  # the signature names its signer, and no longer verifies after a rewrite
    subtype = obj.get("/Subtype")
    if isinstance(subtype, Name) and "/Rect" in obj and subtype != Name.Widget:
        for key in _FROM_ANNOTATIONS:
            if key in obj:
                del obj[key]
    action = obj.get("/A")
    if isinstance(action, Dictionary) and str(action.get("/S")) not in _SAFE_ACTIONS:
        del obj["/A"]
    if obj.get("/Type") == Name.EmbeddedFile or obj.get("/Type") == Name.Filespec:
        for key in ("/EF", "/RF", "/Desc", "/Params"):
            if key in obj:
                del obj[key]


def _is_attachment(annot: pikepdf.Object) -> bool:
    return isinstance(annot, Dictionary) and annot.get("/Subtype") in (
        Name.FileAttachment,
        Name.Sound,
        Name.Movie,
        Name.RichMedia,
        Name.Screen,
    )
