"""Files in HTML forms: a ``multipart/form-data`` form with ``<input type="file" multiple>``,
read as a stream (docs/attachments.md "What people see").

The form's text fields are read first, up to its first file part, so the policy middleware can
check the form's token before any file is received (the pages put their hidden fields first).
The handler then calls :func:`receive_files`, which streams each chosen file into
:func:`confide.services.attachments.receive_upload` (never held whole in memory) and reads any
text fields after the files. A file that is refused (too large, a type not allowed, an image too
large to open safely, a damaged one, one too many) is drained and named in a message for the page's error
summary; the other files are still received, and what was typed is kept.

Nothing here logs a file's name or content.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from aiohttp import BodyPartReader, MultipartReader, web

from confide.errors import FieldError, NotFound, RateLimited, ValidationFailed
from confide.files.errors import FileTooLarge, TypeNotAllowed, UploadTooSlow
from confide.files.limits import MIB, AttachmentLimits
from confide.files.sniff import ImageTooLarge
from confide.files.structure import FileDamaged
from confide.files.types import FileType
from confide.services import attachments
from confide.services.attachments import Uploaded, Uploader, UploadInfo
from webapp.body_limits import BodyLimit, allow_files, limit_bytes
from webapp.errors import BadRequest
from webapp.files import file_name, part_blocks
from webapp.i18n import N_, _, ngettext
from webapp.keys import CTX, ORG, UPLOAD_LIMITS
from webapp.security import UploadMeter, UploadsFull

TEXT_FIELD_MAX = 200_000  # far above any text field's own limit; the model gives the message
MAX_PARTS = 300
FILES_FIELD = "files"  # the file input's name, and its id for the error summary's link
KEEP_NAMES_FIELD = "keep_file_names"
UPLOADS_FIELD = "uploads"  # a page without a draft carries its received uploads' ids here
# The HTML routes whose forms carry files: larger bodies (webapp.body_limits) and a streamed read.
FILE_ROUTES = ("report_step", "report_submit", "messages_submit", "staff_thread_reply")
for _route in FILE_ROUTES:
    allow_files(_route)

_PENDING = web.RequestKey("pending_files", tuple)  # (MultipartReader, BodyPartReader)

TYPE_WORDS = {
    FileType.JPEG: "JPEG",
    FileType.PNG: "PNG",
    FileType.HEIC: "HEIC",
    FileType.PDF: "PDF",
    FileType.DOCX: "Word (DOCX)",
    FileType.ODT: "OpenDocument text (ODT)",
    FileType.TEXT: "plain text",
    FileType.MP3: "MP3",
    FileType.M4A: "M4A",
}


def carries_files(request: web.Request) -> bool:
    return (request.match_info.route.name or "") in FILE_ROUTES


async def read_fields(request: web.Request) -> dict[str, str]:
    """The text fields before the form's first file part (the first value of each name wins).
    The rest of the body waits for :func:`receive_files`. A body declared larger than the
    organisation's limits allow is refused (413) before a byte is read."""
    most = limit_bytes(request.app[ORG].attachments, BodyLimit.ALL_FILES)
    declared = request.content_length
    if declared is not None and declared > most:
        raise web.HTTPRequestEntityTooLarge(max_size=most, actual_size=declared)
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError, LookupError):
        raise BadRequest("The form could not be read.") from None
    form: dict[str, str] = {}
    async for part in _parts(reader):
        if part.filename is not None:
            request[_PENDING] = (reader, part)
            break
        await _text_into(form, part)
    return form


async def _parts(reader: MultipartReader) -> AsyncIterator[BodyPartReader]:
    for _n in range(MAX_PARTS):
        try:
            part = await reader.next()
        except (ValueError, AssertionError, LookupError):
            raise BadRequest("The form could not be read.") from None
        if part is None:
            return
        if not isinstance(part, BodyPartReader):
            raise BadRequest("The form could not be read.")
        yield part
    raise BadRequest("The form has too many fields.")


async def _text_into(form: dict[str, str], part: BodyPartReader) -> None:
    charset = part.get_charset("utf-8").lower().replace("_", "-")
    if charset not in ("utf-8", "utf8"):  # browsers send UTF-8; another charset is refused
        raise BadRequest("The form was not valid UTF-8 text.")
    data = bytearray()
    async for block in part_blocks(part):
        data += block
        if len(data) > TEXT_FIELD_MAX:
            raise BadRequest("A field of the form is too long.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The form was not valid UTF-8 text.") from None
    from webapp.forms import is_unicode_text  # webapp.forms calls this module

    if not is_unicode_text(text) or not is_unicode_text(part.name or ""):
        raise BadRequest("The form holds a character that is not valid Unicode.")
    form.setdefault(part.name or "", text)


@dataclass(frozen=True)
class Room:
    """What a report or message may still take: files and bytes (after those held already)."""

    files: int
    bytes: int

    @classmethod
    def left(cls, limits: AttachmentLimits, held: list[UploadInfo]) -> Room:
        return cls(limits.max_files - len(held), limits.max_total_bytes - sum(u.size for u in held))


@dataclass
class Received:
    """The files a form brought: those received, and a message for each one refused."""

    uploaded: list[Uploaded] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def receive_files(request: web.Request, uploader: Uploader, room: Room) -> Received:
    """Stream in the files the form carries (after :func:`read_fields`), bound to ``uploader``,
    and read the text fields that follow them into the form. Never raises for one file."""
    from webapp.forms import read_form

    form = await read_form(request)
    pending = request.pop(_PENDING, None)
    got = Received()
    if pending is None:
        return got
    reader, first = pending
    limits: AttachmentLimits = request.app[ORG].attachments
    await _one(request, first, uploader, limits, room, got, form)
    async for part in _parts(reader):
        await _one(request, part, uploader, limits, room, got, form)
    return got


async def _one(
    request: web.Request,
    part: BodyPartReader,
    uploader: Uploader,
    limits: AttachmentLimits,
    room: Room,
    got: Received,
    form: dict[str, str],
) -> None:
    if part.filename is None:
        await _text_into(form, part)
        return
    name = file_name(part)
    if name is None:  # the empty part of a file input left empty
        await _drain(part)
        return
    taken = len(got.uploaded)
    used = sum(u.size for u in got.uploaded)
    if taken >= room.files:
        await _drain(part)
        got.errors.append(too_many(name, limits.max_files))
        return
    left = room.bytes - used
    each = dataclasses.replace(limits, max_file_bytes=min(limits.max_file_bytes, left))
    meter: UploadMeter | None = None
    try:
        if uploader.owner is not attachments.Owner.STAFF:  # reporters' budgets (UploadLimits)
            pending = await attachments.pending_upload_bytes(request.app[CTX])
            meter = request.app[UPLOAD_LIMITS].check(request, pending)
    except RateLimited as exc:
        await _drain(part)
        got.errors.append(refused_for_budget(name, exc))
        return
    try:
        if left <= 0:
            raise FileTooLarge(0)
        blocks = part_blocks(part)
        done = await attachments.receive_upload(
            request.app[CTX],
            uploader,
            blocks if meter is None else meter.blocks(blocks),
            limits=each,
            filename=name,
        )
    except RateLimited as exc:  # past the client's bytes, or uploads hold too much: mid-file
        await _drain(part)
        got.errors.append(refused_for_budget(name, exc))
        return
    except FileTooLarge:
        await _drain(part)
        got.errors.append(too_large(name, limits, whole=left < limits.max_file_bytes))
        return
    except TypeNotAllowed:
        await _drain(part)
        got.errors.append(not_allowed(name, limits))
        return
    except ImageTooLarge:
        await _drain(part)
        got.errors.append(image_too_large(name))
        return
    except FileDamaged as exc:
        await _drain(part)
        got.errors.append(damaged(name, exc.file_type))
        return
    except UploadTooSlow:
        await _drain(part)
        got.errors.append(too_slow(name))
        return
    finally:
        if meter is not None:
            meter.done()
    got.uploaded.append(done)


async def _drain(part: BodyPartReader) -> None:
    async for _block in part_blocks(part):
        pass


def in_words(size: int) -> str:
    """A size as people say it: "3.2 MB", "20 MB", "480 KB"."""
    if size >= MIB:
        mib = size / MIB
        return _("%(n)s MB") % {"n": f"{mib:.0f}" if mib >= 10 else f"{mib:.1f}"}
    return _("%(n)s KB") % {"n": max(1, round(size / 1024))}


def allowed_words(limits: AttachmentLimits) -> str:
    return ", ".join(TYPE_WORDS[t] for t in FileType if t in limits.allowed_types)


def too_large(name: str, limits: AttachmentLimits, *, whole: bool) -> str:
    if whole:
        return _(
            "“%(name)s” was not added: all the files together can be up to %(total)s, "
            "and this one would go over that. Remove a file or send a smaller copy."
        ) % {"name": name, "total": in_words(limits.max_total_bytes)}
    return _(
        "“%(name)s” is larger than %(limit)s, the most one file can be. "
        "Send a smaller copy, for example a screenshot or a photo taken at a lower size."
    ) % {"name": name, "limit": in_words(limits.max_file_bytes)}


def not_allowed(name: str, limits: AttachmentLimits) -> str:
    return _(
        "“%(name)s” cannot be added: it is not a kind of file we accept (we look at what is "
        "inside a file, not at its name). You can add: %(types)s."
    ) % {"name": name, "types": allowed_words(limits)}


def too_slow(name: str) -> str:
    return _(
        "“%(name)s” was not added: it took too long to arrive. Add it again, "
        "if you can on a faster connection."
    ) % {"name": name}


def image_too_large(name: str) -> str:
    return _(
        "“%(name)s” is too large a picture to open safely (more than 80 megapixels). "
        "Send a smaller copy or a screenshot of it."
    ) % {"name": name}


# What a damaged file could not be read as (confide.files.structure.WORDS, in the page's language).
READ_AS = {
    FileType.JPEG: N_("a JPEG image"),
    FileType.PNG: N_("a PNG image"),
    FileType.HEIC: N_("a HEIC image"),
    FileType.PDF: N_("a PDF document"),
    FileType.DOCX: N_("a Word (DOCX) document"),
    FileType.ODT: N_("an OpenDocument text (ODT) document"),
    FileType.TEXT: N_("plain text"),
    FileType.MP3: N_("an MP3 recording"),
    FileType.M4A: N_("an M4A recording"),
}


def damaged(name: str, file_type: FileType) -> str:
    return _(
        "“%(name)s” could not be read as %(kind)s. It may be damaged or incomplete: "
        "save it again, or send another copy, and add it once more."
    ) % {"name": name, "kind": _(READ_AS[file_type])}


def refused_for_budget(name: str, exc: RateLimited) -> str:
    if isinstance(exc, UploadsFull):
        return too_busy(name, exc.retry_after)
    return too_often(name, exc.retry_after)


def too_busy(name: str, retry_after: int) -> str:
    minutes = max(1, -(-retry_after // 60))
    return ngettext(
        "“%(name)s” was not added: too many files are waiting to be sent just now. "
        "Wait %(num)d minute and add it again.",
        "“%(name)s” was not added: too many files are waiting to be sent just now. "
        "Wait %(num)d minutes and add it again.",
        minutes,
    ) % {"name": name, "num": minutes}


def too_often(name: str, retry_after: int) -> str:
    minutes = max(1, -(-retry_after // 60))
    return ngettext(
        "“%(name)s” was not added: many files were sent from here in a short time. "
        "Wait %(num)d minute and add it again.",
        "“%(name)s” was not added: many files were sent from here in a short time. "
        "Wait %(num)d minutes and add it again.",
        minutes,
    ) % {"name": name, "num": minutes}


def too_many(name: str, limit: int) -> str:
    return ngettext(
        "“%(name)s” was not added: you can add up to %(num)d file.",
        "“%(name)s” was not added: you can add up to %(num)d files.",
        limit,
    ) % {"name": name, "num": limit}


def carried_ids(form: dict[str, str]) -> list[str]:
    """The upload ids a page without a draft carries (space-separated, in order)."""
    return [uid for uid in form.get(UPLOADS_FIELD, "").split() if len(uid) <= 64][:100]


@dataclass(frozen=True)
class ShownFile:
    """One file in a form's list: its neutral name, size in words and type in words."""

    upload_id: str
    name: str
    size: str
    type: str


def shown_files(uploads: list[UploadInfo]) -> list[ShownFile]:
    return [
        ShownFile(
            u.upload_id,
            attachments.neutral_name(i, u.type),
            in_words(u.size),
            TYPE_WORDS[u.type],
        )
        for i, u in enumerate(uploads, start=1)
    ]


def limit_words(limits: AttachmentLimits) -> dict[str, Any]:
    """The limits as a file control's hint says them."""
    return {
        "file_limits": {
            "files": limits.max_files,
            "each": in_words(limits.max_file_bytes),
            "total": in_words(limits.max_total_bytes),
            "types": allowed_words(limits),
        },
        "files_on": limits.max_files > 0,
    }


@dataclass
class Files:
    """A report's or message's files after one form: the ids to keep (in order), the new ones,
    what was refused, and whether "Add these files" or "Remove" asked for the same page again."""

    ids: list[str] = field(default_factory=list)
    keep_names: bool = False
    new_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    changed: bool = False
    shown: list[ShownFile] = field(default_factory=list)

    def draft_fields(self) -> dict[str, Any]:
        return {"uploads": self.ids, "keep_file_names": self.keep_names}


async def usable(request: web.Request, uploader: Uploader, ids: list[str]) -> list[UploadInfo]:
    """The uploads among ``ids`` still usable by ``uploader`` (expired ones left out)."""
    if not ids:
        return []
    return await attachments.describe_uploads(request.app[CTX], uploader, ids)


async def take(
    request: web.Request, uploader: Uploader, form: dict[str, str], held_now: list[str]
) -> Files:
    """The files a form brought, added to ``held_now``, and the one its "Remove" button named,
    deleted. Refusals are messages; nothing raises for one file."""
    if not held_now and _PENDING not in request and not form.get("remove"):
        # A form without files (nothing streams in, so every field is read already).
        return Files(
            keep_names=form.get(KEEP_NAMES_FIELD) == "yes", changed=form.get("add_files") == "1"
        )
    held = await usable(request, uploader, held_now)
    room = Room.left(request.app[ORG].attachments, held)
    received = await receive_files(request, uploader, room)
    ids = [u.upload_id for u in held] + [u.upload_id for u in received.uploaded]
    removed = form.get("remove", "")
    if removed in ids:
        await attachments.discard_upload(request.app[CTX], uploader, removed)
        ids.remove(removed)
    shown = await usable(request, uploader, ids)
    return Files(
        [u.upload_id for u in shown],
        form.get(KEEP_NAMES_FIELD) == "yes",  # read after the files: fields that follow them
        [u.upload_id for u in received.uploaded],
        received.errors,
        bool(removed) or form.get("add_files") == "1",
        shown_files(shown),
    )


def page_context(
    request: web.Request, files: Files, shown: list[ShownFile] | None = None
) -> dict[str, Any]:
    """What a page with a file control shows: the list (neutral name, size, type), the ids a
    page without a draft carries, the tick box, and the limits in words."""
    shown = files.shown if shown is None else shown
    return {
        "files": shown,
        "uploads": " ".join(u.upload_id for u in shown),
        "keep_file_names": files.keep_names,
        **limit_words(request.app[ORG].attachments),
    }


class FilesToShow(ValidationFailed):
    """A message form drawn again with its files and what was typed: some files were refused
    (422, each a message under ``files``), or "Add these files" or "Remove" was pressed."""

    def __init__(self, files: Files) -> None:
        super().__init__([FieldError(FILES_FIELD, message) for message in files.errors])
        self.files = files


UNUSABLE_WORDS = (
    "One of your files is no longer available (files wait for an hour before they are sent). "
    "Add it again, or send the message without it."
)


def refused_files(exc: Exception) -> list[tuple[str, str]]:
    """A form's file errors: those refused on the way in, or an upload that could no longer be
    attached when the message was sent (``attachments.N``)."""
    if not isinstance(exc, ValidationFailed):
        return []
    if any(e.field.startswith("attachments") for e in exc.errors):
        return [(FILES_FIELD, _(UNUSABLE_WORDS))]
    return [(e.field, e.message) for e in exc.errors if e.field == FILES_FIELD]


FILES_KEY = web.RequestKey("form_files", Files)


def files_shown_again(request: web.Request) -> Files:
    """The files a message form brought, for its page drawn again (none if it brought none)."""
    return request.get(FILES_KEY) or Files()


def attachment_id(value: str) -> UUID:
    """An attachment's id from a URL or form; anything else is a 404 like a missing file."""
    try:
        return UUID(value)
    except ValueError:
        raise NotFound() from None
