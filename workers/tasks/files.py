"""Attachment stripping on the ``files`` queue (CONTRACTS §6), so that large files never delay
mail, escalation or logins.

The task takes an attachment id only. Until the attachment store exists (TODO(#17): storage,
lease and states), it checks the id and records that the file waits; ``strip_in_private_dir`` is
the work it will do between decrypting the original and storing the stripped copy, and is what
``make bench`` and the tests call today.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID

from celery import shared_task

from confide import jobs, logs
from confide.files.errors import CannotStrip
from confide.files.types import FileType

log = logs.get("confide.worker.files")


@shared_task(name=jobs.STRIP_ATTACHMENT, acks_late=True, ignore_result=True)
def strip_attachment(attachment_id: str) -> None:
    """Idempotent; safe to retry. Will claim the attachment with a lease, decrypt its original
    into a private folder, strip it (``strip_in_private_dir``), store the stripped copy
    encrypted, mark it ``ready`` (or ``quarantined`` on CannotStrip) and destroy the original.
    """
    UUID(attachment_id)  # ids only ever travel; anything else is a bug and fails loudly
    log.info("attachment_waiting_for_store", attachment_id=attachment_id)


@contextmanager
def strip_in_private_dir(original: Path, file_type: FileType) -> Iterator[Path]:
    """Yields the stripped copy of ``original`` in a 0700 folder that is removed afterwards,
    whatever happens. Raises CannotStrip (the caller quarantines) with the reason only."""
    # Imported here: every worker imports this module, and a hashing-only worker should not load
    # Pillow, pillow-heif, pikepdf and lxml.
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
