"""Attachment stripping on the ``files`` queue (CONTRACTS §6), so that large files never delay
mail, escalation or logins.

The task takes an attachment id only, and re-reads the row: the attachment is its own outbox row
(state ``preparing`` with a lease), so a redelivery, a worker SIGKILLed mid-file or a Redis
restart all end with the file stripped exactly once (``confide.services.attachments.prepare``).
The relay (``workers.tasks.delivery.relay_outbox``) sends the due ones again.

The decrypted original only ever lies in the strip folder (``CONFIDE_STRIP_DIR``, by default
``<data dir>/strip``; mount it as tmpfs, docs/deploy.md "Strip folder"), in a 0700 folder of its
own per run, ``confide-strip-*``, which the run holds an exclusive ``flock`` on. A run that is
killed (the hard time limit, the OOM killer, SIGKILL) cannot remove its folder, but the kernel
drops its lock: :func:`sweep_strip_folders` deletes every such folder nobody holds, when a
worker or a pool child starts and before every run.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import shutil
import stat
import subprocess
import sys
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
RUN_PREFIX = "confide-strip-"
# The stripping child gets this long (under the task's soft limit of 240 s) before it is killed.
CHILD_TIMEOUT_S = 200.0


@shared_task(name=jobs.STRIP_ATTACHMENT, acks_late=True, ignore_result=True)
def strip_attachment(attachment_id: str) -> None:
    """Idempotent; safe to retry. Claims the attachment with a lease, decrypts its original
    into a private 0700 folder, strips it, stores the stripped copy (and for images a preview)
    encrypted, marks it ``ready`` and destroys the original; or quarantines it on CannotStrip.
    A second run after success does nothing."""
    found = UUID(attachment_id)  # ids only ever travel; anything else is a bug and fails loudly

    async def run() -> attachments.PrepareOutcome:
        ctx = await context.current()
        root = strip_root(ctx.settings.strip_folder)
        swept = sweep_strip_folders(root)
        if swept:
            log.info("strip_folders_swept", count=swept)
        limited = functools.partial(
            strip_in_child,
            memory_bytes=ctx.settings.strip_memory_mib << 20,
            log_level=ctx.settings.log_level,
        )
        with run_folder(root) as folder:
            return await attachments.prepare(ctx, found, limited, folder)

    outcome = db.run(run())
    done = outcome.reason or ("skipped" if outcome.state is None else outcome.state.value)
    log.info("attachment_prepared", attachment_id=attachment_id, outcome=done)


def strip_root(root: Path) -> Path:
    """The strip folder, created 0700 if missing. One that is not a folder of this user (a
    symlink, another owner) is refused rather than used."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    found = root.lstat()
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid():
        raise RuntimeError("the strip folder is not a folder owned by this user")
    if stat.S_IMODE(found.st_mode) != 0o700:
        os.chmod(root, 0o700)
    return root


@contextmanager
def run_folder(root: Path) -> Iterator[Path]:
    """A new 0700 ``confide-strip-*`` folder in ``root``, locked (``flock``) by this run while
    it lasts and removed afterwards; if the process dies, the lock goes with it and the next
    sweep removes the folder."""
    while True:
        path = Path(tempfile.mkdtemp(prefix=RUN_PREFIX, dir=root))  # mode 0700
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:  # a sweep between mkdtemp and flock may have taken it: then make another
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def sweep_strip_folders(root: Path) -> int:
    """Delete the ``confide-strip-*`` folders in ``root`` that no live run holds locked (left by
    a run that was killed): how many. Folders in use are never touched."""
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return 0
    swept = 0
    for entry in entries:
        if not entry.name.startswith(RUN_PREFIX) or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # a live run's
        try:
            shutil.rmtree(entry.path, ignore_errors=True)
            swept += 1
        finally:
            os.close(fd)
    return swept


def sweep_at_start(root: Path) -> None:
    """At worker and pool-child start (workers.celery_app): what killed runs left. Never
    stops a worker from starting (one that consumes no files never needs the folder)."""
    try:
        swept = sweep_strip_folders(strip_root(root))
    except (OSError, RuntimeError) as exc:
        log.warning("strip_folder_unusable", exc_type=type(exc).__name__)
        return
    if swept:
        log.info("strip_folders_swept", count=swept)


class StripChildFailed(Exception):
    """The stripping child died without an outcome (killed, crashed): retried like any error,
    and after the last attempt the file is quarantined as ``worker_failed``."""


def strip_in_child(
    original: Path,
    file_type: FileType,
    folder: Path,
    *,
    memory_bytes: int,
    log_level: str = "INFO",
    timeout_s: float = CHILD_TIMEOUT_S,
) -> tuple[Path, Path | None]:
    """:func:`strip_into` in a child process limited to ``memory_bytes`` of address space
    (``CONFIDE_STRIP_MEMORY_MIB``; workers.strip_child). A file that needs more fails as
    CannotStrip(``too_large_inside``) rather than the OOM killer taking the worker."""
    result = folder / "result.json"
    argv = [sys.executable, "-m", "workers.strip_child", str(original), file_type.value]
    argv += [str(folder), str(memory_bytes), log_level]
    # Our own interpreter and module; the rest are paths in the run's folder and the type name.
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, timeout=timeout_s, check=False)  # noqa: S603
    if done.returncode != 0 or not result.is_file():
        raise StripChildFailed(str(done.returncode))
    outcome = json.loads(result.read_text())
    result.unlink()
    if "cannot_strip" in outcome:
        raise CannotStrip(StripFailure(outcome["cannot_strip"]), file_type)
    stripped = Path(outcome["stripped"])
    preview = outcome.get("preview")
    # Only paths inside the run's own folder are taken.
    for path in (stripped, *([Path(preview)] if preview else [])):
        if path.parent != folder:
            raise StripChildFailed("path")
    return stripped, Path(preview) if preview else None


def strip_into(original: Path, file_type: FileType, folder: Path) -> tuple[Path, Path | None]:
    """The stripped copy of ``original`` in ``folder`` and, for images, a preview: a JPEG
    re-encoded from the stripped copy's pixels, at most PREVIEW_MAX_SIDE, with no metadata.
    Raises CannotStrip (the caller quarantines)."""
    from confide.files.strip import strip_file
    from confide.files.types import identify

    # The whole file must still be what its first bytes said at upload.
    if identify(original) is not file_type:
        log.info("attachment_not_strippable", outcome="type_changed")
        raise CannotStrip(StripFailure.DAMAGED, file_type)
    stripped = folder / f"stripped{file_type.extension}"
    try:
        strip_file(original, stripped, file_type)
    except CannotStrip as exc:
        log.info("attachment_not_strippable", outcome=exc.reason.value)
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
            log.info("attachment_not_strippable", outcome=exc.reason.value)
            raise
        yield stripped
