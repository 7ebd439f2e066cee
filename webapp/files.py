"""Files over HTTP: a streamed multipart file part in, a streamed file out. (The body limits of
the routes that carry files are in ``webapp.body_limits``.)

- **In.** :func:`file_part` yields the ``file`` part of a multipart body a block at a time, so a
  20 MiB upload is never held whole in memory or written to disk in the clear. A declared
  ``Content-Length`` over the limit is refused before a byte is read; otherwise the service
  counts the bytes as they come.
- **Out.** :func:`send_file` streams a decrypted copy with ``Content-Disposition``, ``nosniff``
  and ``Content-Security-Policy: sandbox``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from confide.files.errors import FileTooLarge
from confide.files.limits import AttachmentLimits
from confide.services.attachments import Download
from webapp.body_limits import FORM_OVERHEAD
from webapp.errors import BadRequest, UnsupportedMediaType
from webapp.security import SANDBOX_CSP

READ_BYTES = 64 * 1024
# What aiohttp's multipart reader raises on a body that is not well-formed multipart (a bad
# boundary, part headers that do not parse, a broken transfer encoding).
MALFORMED = (ValueError, AssertionError, LookupError, HttpProcessingError)


async def file_part(
    request: web.Request, limits: AttachmentLimits
) -> tuple[AsyncIterator[bytes], str | None]:
    """The ``file`` part of a ``multipart/form-data`` body, as blocks, and its file name as
    sent (kept, sealed, only if the caller later asks to keep names). 415 for another body, 400
    for a multipart body without a ``file`` part first; 413 at once for a declared length over
    the limit (the service counts the bytes themselves as they come)."""
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaType("multipart/form-data with one part named file")
    declared = request.content_length
    if declared is not None and declared > limits.max_file_bytes + FORM_OVERHEAD:
        raise FileTooLarge(limits.max_file_bytes)
    try:
        reader = await request.multipart()
        part = await reader.next()
    except MALFORMED:
        raise BadRequest("The form could not be read.") from None
    if not isinstance(part, BodyPartReader) or part.name != "file":
        raise BadRequest("Send the file as the first part, named file.")
    return part_blocks(part), file_name(part)


def file_name(part: BodyPartReader) -> str | None:
    """A file part's name as sent, without any folder (the API's and the pages' files)."""
    try:
        name = part.filename
    except (ValueError, UnicodeDecodeError):
        return None
    if not name:
        return None
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()  # a Windows path, from old IE
    return name[:255] or None


async def part_blocks(part: BodyPartReader) -> AsyncIterator[bytes]:
    """A part's bytes a block at a time; a body that is not well-formed multipart is 400."""
    while True:
        try:
            block = await part.read_chunk(READ_BYTES)
        except MALFORMED:
            raise BadRequest("The form could not be read.") from None
        if not block:
            return
        yield block


async def send_file(request: web.Request, download: Download) -> web.StreamResponse:
    """Stream a decrypted copy. ``attachment`` (or ``inline`` for a preview) with its neutral
    name, nosniff, and a sandboxing CSP (which ``webapp.security.security_headers`` keeps). The first chunk is decrypted before the headers go, so a copy
    that does not open is an error answer, not a cut-off file."""
    chunks = download.chunks
    first = await anext(chunks, b"")
    disposition = "inline" if download.inline else "attachment"
    response = web.StreamResponse(
        headers={
            "Content-Type": download.content_type,
            "Content-Disposition": f'{disposition}; filename="{download.filename}"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": SANDBOX_CSP,
        }
    )
    response.content_length = download.size
    await response.prepare(request)
    await response.write(first)
    async for block in chunks:
        await response.write(block)
    await response.write_eof()
    return response
