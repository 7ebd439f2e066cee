"""Attachment stripping on the ``files`` queue (CONTRACTS §6), so that large files never delay
mail, escalation or logins.

The task takes an attachment id only, and re-reads the row: the attachment is its own outbox row
(state ``preparing`` with a lease), so a redelivery, a worker SIGKILLed mid-file or a Redis
restart all end with the file stripped exactly once (``confide.services.attachments.prepare``).
The relay (``workers.tasks.delivery.relay_outbox``) sends the due ones again.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID

from celery import shared_task

from confide import jobs, logs
from confide.files.errors import CannotStrip, StripFailure
from confide.files.types import FileType
from confide.services import attachments
from workers import context, db

log = logs.get("confide.worker.files")

PREVIEW_TYPES = frozenset({FileType.JPEG, FileType.PNG, FileType.HEIC})


@shared_task(name=jobs.STRIP_ATTACHMENT, acks_late=True, ignore_result=True)
def strip_attachment(attachment_id: str) -> None:
    """Idempotent; safe to retry. Claims the attachment with a lease, decrypts its original
    into a private 0700 folder, strips it, stores the stripped copy (and for images a preview)
    encrypted, marks it ``ready`` and destroys the original; or quarantines it on CannotStrip.
    A second run after success does nothing."""
    found = UUID(attachment_id)  # ids only ever travel; anything else is a bug and fails loudly

    async def run() -> attachments.PrepareOutcome:
        ctx = await context.current()
        with tempfile.TemporaryDirectory(prefix="confide-strip-") as folder:
            os.chmod(folder, 0o700)
            return await attachments.prepare(ctx, found, strip_into, Path(folder))

    outcome = db.run(run())
    done = "skipped" if outcome.state is None else outcome.reason or outcome.state.value
    log.info("attachment_prepared", attachment_id=attachment_id, outcome=done)


def strip_into(original: Path, file_type: FileType, folder: Path) -> tuple[Path, Path | None]:
    """The stripped copy of ``original`` in ``folder`` and, for images, a preview: a JPEG
    re-encoded from the stripped copy's pixels, at most PREVIEW_MAX_SIDE, with no metadata.
    Raises CannotStrip (the caller quarantines)."""
    from confide.files.strip import strip_file
    from confide.files.types import identify

    # The whole file must still be what its first bytes said at upload.
    if identify(original) is not file_type:
        log.info("attachment_not_strippable", file_type=file_type.value, outcome="type_changed")
        raise CannotStrip(StripFailure.DAMAGED, file_type)
    stripped = folder / f"stripped{file_type.extension}"
    try:
        strip_file(original, stripped, file_type)
    except CannotStrip as exc:
        log.info("attachment_not_strippable", file_type=file_type.value, outcome=exc.reason.value)
        raise
    preview = _preview(stripped, folder) if file_type in PREVIEW_TYPES else None
    return stripped, preview


def _preview(stripped: Path, folder: Path) -> Path | None:
    """A re-encoded JPEG of the stripped copy, at most ``side`` wide or high (a whole-factor
    reduction: 1,488 px for a 2,975 px picture). It holds the decoded image and the small one
    only (``make bench`` ``attachments``: the worker's memory for a 20 MiB image under 3× the
    file for JPEG and 2× the decoded size for PNG; with a transposed copy, a two-pass resize and
    an RGB copy beside the decoded pixels it was 3.8× both). The stripped copy has no
    orientation left (stripping applied it), so nothing is turned."""
    from PIL import Image

    side = attachments.PREVIEW_MAX_SIDE
    out = folder / "preview.jpg"
    try:
        with Image.open(stripped) as opened:
            # A JPEG is decoded at the smallest scale still at least ``side`` (draft); then the
            # pixels shrink by a whole factor in one pass (box average; nearest for a palette,
            # which has no average), so the decoded image and the small one are all that live.
            opened.draft("RGB", (side, side))
            opened.load()
            factor = -(-max(opened.size) // side)
            small: Image.Image = opened
            if factor > 1 and opened.mode in ("L", "LA", "RGB", "RGBA", "I", "F"):
                small = opened.reduce(factor)
            elif factor > 1:
                size = (max(1, opened.width // factor), max(1, opened.height // factor))
                small = opened.resize(size, Image.Resampling.NEAREST)
            im = small if small.mode == "RGB" else small.convert("RGB")
            # Only pixels, and the stripped copy's colour profile (a standard one, or none: see
            # docs/attachments.md "Colour profiles"); no EXIF, comments or text.
            profile = opened.info.get("icc_profile")
            im.save(out, "JPEG", quality=85, exif=b"", icc_profile=profile)
    except (OSError, ValueError) as exc:
        log.info("attachment_no_preview", exc_type=type(exc).__name__)
        return None
    return out


@contextmanager
def strip_in_private_dir(original: Path, file_type: FileType) -> Iterator[Path]:
    """Yields the stripped copy of ``original`` in a 0700 folder that is removed afterwards,
    whatever happens. Raises CannotStrip (the caller quarantines) with the reason only. (What
    ``make bench`` and the stripping tests call.)"""
    from confide.files.strip import strip_file

    with tempfile.TemporaryDirectory(prefix="confide-strip-") as folder:
        stripped = Path(folder) / f"stripped{file_type.extension}"
        try:
            strip_file(original, stripped, file_type)
        except CannotStrip as exc:
            log.info(
                "attachment_not_strippable", file_type=file_type.value, outcome=exc.reason.value
            )
            raise
        yield stripped
