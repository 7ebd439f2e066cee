"""Attachments (issue 17, CONTRACTS §3 "Attachments", docs/attachments.md): uploads, attaching
them to a report or message, stripping them on the ``files`` worker, and serving them.

The life of a file:

1. :func:`receive_upload` streams it in (never whole in memory), judges its type by its first
   bytes, enforces the size limit while it streams, and stores it encrypted in chunks under a
   random file key. That key, the file's SHA-256 as uploaded and (only if given) its original
   name are sealed under a key derived from the upload id, which only the caller holds. The
   upload is bound to its caller (:class:`Uploader`) and expires after 60 minutes unless a
   reporter's draft holds it (:func:`hold_in_draft`).
2. :func:`claim_uploads` and :func:`attach` run inside the report's or message's own
   transaction (confide.services.reports / threads): the uploads are checked (unknown, used,
   expired or someone else's: 422; count and total size per report or message), the file key
   is rewrapped under the thread key, the upload row goes (an upload is usable once) and an
   ``attachments`` row in state ``preparing`` takes its place. That row is the stripping job's
   outbox row; the caller's ``ctx.after_commit()`` wakes the relay, which sends
   ``confide.strip_attachment(id)`` to the ``files`` queue.
3. :func:`prepare` (the worker) leases the row, decrypts the original into a private folder,
   strips it, stores the stripped copy (and for images a re-encoded preview), marks it
   ``ready`` and destroys the original, in one transaction; or marks it ``quarantined``.
4. :func:`staff_download`, :func:`staff_preview`, :func:`reporter_download` stream a copy out
   (staff's audited, the reporter's not); :func:`release` lets a manager release a quarantined file to staff.

Nothing here logs or sends a file's bytes, name or type beyond its id.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import hashlib
import json
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from asyncpg import Connection
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from confide import logs
from confide.context import Context
from confide.crypto import DecryptionError, ThreadKey, derive_key, keyed_hash
from confide.errors import ConfideError, FieldError, NotFound, ValidationFailed
from confide.files.errors import FileTooLarge, TooManyFiles, UploadTooSlow
from confide.files.limits import BODY_MIN_BYTES_PER_S, AttachmentLimits
from confide.files.sniff import SNIFF_BYTES, sniff
from confide.files.store import (
    ChunkStore,
    Copy,
    SealedWriter,
    default_store,
    new_file_key,
    read_copy,
)
from confide.files.structure import Checker
from confide.files.types import FileType
from confide.sql import attachments as sql
from confide.sql import audit as sql_audit

if TYPE_CHECKING:  # confide.services.threads imports this module
    from confide.services.threads import Staff

log = logs.get("confide.attachments")

UPLOAD_TTL_S = 60 * 60  # CONTRACTS §3: an upload expires after 60 minutes unused
# While it streams: the file limit at the slowest rate a body may keep (1 KiB/s,
# webapp.slow_clients; 20 MiB take under 6 hours), and a margin; a body cut off is purged then.
STREAMING_MARGIN_S = 10 * 60


def streaming_ttl_s(limits: AttachmentLimits) -> int:
    """How long an upload may take to stream in before the purge may take it."""
    return -(-limits.max_file_bytes // BODY_MIN_BYTES_PER_S) + STREAMING_MARGIN_S


UPLOAD_ID_BYTES = 16  # 128 bits
# A run holds its lease by renewing it every LEASE_S / 3 while it works, so a run that dies
# (SIGKILL, a lost host) lets go within LEASE_S, and a live one never loses it.
LEASE_S = 30.0
MAX_STRIP_ATTEMPTS = 5
PREVIEW_MAX_SIDE = 1600  # px: the preview is a re-encoded JPEG at most this wide or high
FIELD = "attachments"


class State(StrEnum):
    PREPARING = "preparing"
    READY = "ready"
    QUARANTINED = "quarantined"
    RELEASED = "released"


class Owner(StrEnum):
    ANONYMOUS = "anonymous"
    REPORTER = "reporter"
    STAFF = "staff"


@dataclass(frozen=True)
class Uploader:
    """Who an upload is bound to: an anonymous submitter (the upload id alone), the reporter of
    one thread (any of their sessions), or one staff member."""

    owner: Owner
    thread_id: UUID | None = None
    staff_id: int | None = None

    @classmethod
    def anonymous(cls) -> Uploader:
        return cls(Owner.ANONYMOUS)

    @classmethod
    def reporter(cls, thread_id: UUID) -> Uploader:
        return cls(Owner.REPORTER, thread_id=thread_id)

    @classmethod
    def staff(cls, staff_id: int) -> Uploader:
        return cls(Owner.STAFF, staff_id=staff_id)


class AttachmentNotReady(ConfideError):
    """409: the file is being prepared, or quarantined (and, for the reporter, released)."""

    def __init__(self, state: State) -> None:
        super().__init__(f"attachment {state.value}")
        self.state = state
        self.detail = {
            State.PREPARING: "This file is being prepared. Try again in a moment.",
            State.QUARANTINED: "This file could not be made safe, so it is not served.",
            State.RELEASED: "This file could not be made safe, so it is not served.",
            State.READY: "This file cannot be served.",
        }[state]


class AttachmentUnavailable(ConfideError):
    """409: a file's stored copy does not open (its chunks were changed or lost, or the key
    that seals its file key was removed too early). Raised only while serving a copy, and
    logged as ``attachment_unreadable`` with the attachment's id: a DecryptionError anywhere
    else stays an unexpected error (500, logged with an error id)."""

    detail = (
        "This file cannot be opened: its stored copy is damaged or its key is missing. "
        "This has been logged for the administrators."
    )

    def __init__(self, attachment_id: UUID) -> None:
        super().__init__("attachment unreadable")
        self.attachment_id = attachment_id


class NotManager(ConfideError):
    """403: only a manager releases a quarantined file."""

    detail = "Only a manager can release a file that could not be made safe."


@dataclass(frozen=True)
class Uploaded:
    """POST /api/v1/uploads's answer: ``{"upload_id", "size", "type"}``."""

    upload_id: str
    size: int
    type: FileType


@dataclass(frozen=True)
class UploadInfo:
    """A pending upload as the reporter's draft page lists it (no name: the draft keeps that
    under its browser-held key, if at all)."""

    upload_id: str
    size: int
    type: FileType


@dataclass(frozen=True)
class Claimed:
    """An upload checked and locked for attaching (inside the caller's transaction)."""

    row: sql.UploadRow
    file_key: bytes
    sha256: str  # lowercase hex, of the bytes as uploaded: for the receipt's commitment
    name: str | None  # the original file name, if the uploader gave one
    file_type: FileType
    size: int


@dataclass(frozen=True)
class AttachmentInfo:
    """One attached file as a thread shows it (CONTRACTS §3)."""

    id: UUID
    message_id: UUID | None  # None: the report's own
    name: str  # neutral: attachment-N.ext
    size: int  # as uploaded
    type: FileType
    state: State
    original_name: str | None = None  # staff only, and only when the reporter kept names
    has_preview: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "id": str(self.id),
            "name": self.name,
            "size": self.size,
            "type": self.type.value,
            "state": self.state.value,
        }


@dataclass
class Download:
    """A copy being served: its headers' values and its plaintext, a chunk at a time."""

    filename: str
    content_type: str
    size: int
    chunks: AsyncIterator[bytes]
    inline: bool = False


@dataclass(frozen=True)
class PrepareOutcome:
    attachment_id: UUID
    state: State | None  # None: nothing done (not due, leased, or finished already)
    reason: str | None = None


# --- Upload ids and their seals -------------------------------------------------------------


def new_upload_id() -> tuple[str, bytes]:
    raw = secrets.token_bytes(UPLOAD_ID_BYTES)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii"), raw


def _raw_upload_id(upload_id: object) -> bytes | None:
    if not isinstance(upload_id, str) or len(upload_id) != 22:
        return None
    try:
        raw = base64.urlsafe_b64decode(upload_id + "==")
    except (binascii.Error, ValueError):
        return None
    if len(raw) != UPLOAD_ID_BYTES:
        return None
    # 22 characters carry 132 bits: the last one's 4 spare bits give each id 16 spellings, and
    # the decoder skips characters outside the alphabet. Only the one spelling we gave counts.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != upload_id:
        return None
    return raw


def _lookup(ctx: Context, raw: bytes) -> bytes:
    return keyed_hash(ctx.settings.lookup_key, "upload-id", raw)


def _upload_aead(raw: bytes) -> AESGCM:
    return AESGCM(derive_key(raw, "confide upload file key"))


def _seal_upload(raw: bytes, file_id: UUID, members: dict[str, Any]) -> bytes:
    nonce = secrets.token_bytes(12)
    plain = json.dumps(members, separators=(",", ":")).encode()
    return nonce + _upload_aead(raw).encrypt(nonce, plain, f"uploads.sealed:{file_id}".encode())


def _open_upload(raw: bytes, file_id: UUID, sealed: bytes) -> dict[str, Any]:
    try:
        plain = _upload_aead(raw).decrypt(
            sealed[:12], sealed[12:], f"uploads.sealed:{file_id}".encode()
        )
    except InvalidTag:
        raise DecryptionError("upload does not open") from None
    opened: dict[str, Any] = json.loads(plain)
    return opened


def _key_context(attachment_id: UUID) -> str:
    return f"attachments.file_key:{attachment_id}"


def _name_context(attachment_id: UUID) -> str:
    return f"attachments.name:{attachment_id}"


def neutral_name(position: int, file_type: FileType) -> str:
    return f"attachment-{position}{file_type.extension}"


def store_of(ctx: Context) -> ChunkStore:
    return default_store(ctx.pool)


# --- 1. Uploads ------------------------------------------------------------------------------


async def receive_upload(
    ctx: Context,
    uploader: Uploader,
    chunks: AsyncIterator[bytes],
    *,
    limits: AttachmentLimits,
    filename: str | None = None,
    max_pixels: int | None = None,
) -> Uploaded:
    """Stream one file in: encrypted chunk by chunk as it arrives, its type judged on its first
    256 KiB (libmagic, never the name), its body checked block by block to parse as that type
    (confide.files.structure), the per-file limit enforced while it streams.

    Raises FileTooLarge (413), TypeNotAllowed (415), ImageTooLarge (422), FileDamaged (422) or
    UploadTooSlow (408: purged before it finished, past :func:`streaming_ttl_s`); nothing of the
    file is kept then. ``filename`` is kept sealed with the upload (it becomes the attachment's
    original name only if the report or message asks to keep names). The upload id returned is
    the only way to the file; the server keeps its HMAC only.
    """
    from confide.files.images import MAX_PIXELS

    store = store_of(ctx)
    upload_id, raw = new_upload_id()
    file_id = uuid4()
    async with ctx.pool.acquire() as conn:
        await sql.insert_upload(
            conn,
            file_id,
            _lookup(ctx, raw),
            owner=uploader.owner.value,
            thread_id=uploader.thread_id,
            staff_id=uploader.staff_id,
            ttl_s=streaming_ttl_s(limits),
        )
    key = new_file_key()
    writer = SealedWriter(store, key, file_id, Copy.ORIGINAL)
    digest = hashlib.sha256()
    prefix = bytearray()
    loop = asyncio.get_running_loop()
    pixels = max_pixels or MAX_PIXELS
    checker: Checker | None = None  # the body's structure, block by block, once typed
    try:
        async for data in chunks:
            if writer.size + len(prefix) + len(data) > limits.max_file_bytes:
                raise FileTooLarge(limits.max_file_bytes)
            digest.update(data)
            if checker is None:
                prefix += data
                if len(prefix) < SNIFF_BYTES:
                    continue
                head = bytes(prefix)
                file_type = await loop.run_in_executor(
                    None, functools.partial(sniff, head, limits.allowed_types, max_pixels=pixels)
                )
                checker = Checker(file_type)
                checker.feed(head)
                await writer.write(head)
                prefix.clear()
            else:
                checker.feed(data)
                await writer.write(data)
        if checker is None:
            head = bytes(prefix)
            file_type = await loop.run_in_executor(
                None, functools.partial(sniff, head, limits.allowed_types, max_pixels=pixels)
            )
            checker = Checker(file_type)
            checker.feed(head)
            await writer.write(head)
        checker.finish()
        await writer.close()
        sealed = _seal_upload(
            raw, file_id, {"key": key.hex(), "sha256": digest.hexdigest(), "name": filename}
        )
        async with ctx.pool.acquire() as conn:
            try:
                await sql.complete_upload(
                    conn,
                    file_id,
                    file_type=checker.file_type.value,
                    size=writer.size,
                    sealed=sealed,
                    ttl_s=UPLOAD_TTL_S,
                )
            except LookupError:  # purged while it streamed: it took longer than it may
                raise UploadTooSlow() from None
    except BaseException:
        await _discard(ctx, store, file_id)
        raise
    log.info("upload_received", upload=str(file_id))
    return Uploaded(upload_id, writer.size, checker.file_type)


async def _discard(ctx: Context, store: ChunkStore, file_id: UUID) -> None:
    # Shielded: a client that hangs up cancels the handler, and the chunks must still go.
    async def discard() -> None:
        async with ctx.pool.acquire() as conn, conn.transaction():
            await store.delete(file_id, conn=conn)
            await sql.delete_upload(conn, file_id)

    await asyncio.shield(discard())


async def pending_upload_bytes(ctx: Context) -> int:
    """The bytes reporters' unattached uploads hold now (complete ones; staff's not counted)."""
    async with ctx.pool.acquire() as conn:
        return await sql.pending_upload_bytes(conn)


async def describe_uploads(
    ctx: Context, uploader: Uploader, upload_ids: Sequence[str]
) -> list[UploadInfo]:
    """The uploads among ``upload_ids`` that are still usable by ``uploader`` (for a draft's
    list of files: one that expired or was removed is simply left out)."""
    wanted = {rid: uid for uid in upload_ids if (rid := _raw_upload_id(uid)) is not None}
    lookups = {_lookup(ctx, raw): raw for raw in wanted}
    async with ctx.pool.acquire() as conn:
        found = await sql.usable_uploads(conn, list(lookups), lock=False)
    out = []
    for lookup, row in found.items():
        if _owned_by(row, uploader) and row.file_type and row.size is not None:
            out.append(UploadInfo(wanted[lookups[lookup]], row.size, FileType(row.file_type)))
    order = {uid: i for i, uid in enumerate(upload_ids)}
    return sorted(out, key=lambda u: order[u.upload_id])


async def hold_in_draft(
    ctx: Context, uploader: Uploader, upload_id: str, draft_row_id: bytes | None
) -> bool:
    """Let a reporter's draft hold the upload: it then lives as long as the draft (``report_
    drafts.id``, the draft's row id), past its 60 minutes. None lets go again. False when the
    upload is unknown or not the uploader's. For the HTML report journey."""
    raw = _raw_upload_id(upload_id)
    if raw is None:
        return False
    async with ctx.pool.acquire() as conn, conn.transaction():
        found = await sql.usable_uploads(conn, [_lookup(ctx, raw)], lock=True)
        row = next(iter(found.values()), None)
        if row is None or not _owned_by(row, uploader):
            return False
        return await sql.hold_in_draft(conn, _lookup(ctx, raw), draft_row_id)


async def discard_upload(ctx: Context, uploader: Uploader, upload_id: str) -> bool:
    """The "Remove" button: the upload and its chunks are deleted at once. False when there was
    none usable by ``uploader``."""
    raw = _raw_upload_id(upload_id)
    if raw is None:
        return False
    store = store_of(ctx)
    async with ctx.pool.acquire() as conn, conn.transaction():
        found = await sql.usable_uploads(conn, [_lookup(ctx, raw)], lock=True)
        row = next(iter(found.values()), None)
        if row is None or not _owned_by(row, uploader):
            return False
        await store.delete(row.id, conn=conn)
        await sql.delete_upload(conn, row.id)
    return True


def _owned_by(row: sql.UploadRow, uploader: Uploader) -> bool:
    if row.owner != uploader.owner.value:
        return False
    if uploader.owner is Owner.REPORTER:
        return row.thread_id == uploader.thread_id
    if uploader.owner is Owner.STAFF:
        return row.staff_id == uploader.staff_id
    return True  # anonymous: holding the id is the binding


# --- 2. Attaching (inside the report's or message's transaction) -----------------------------


UNUSABLE = (
    "This file is not available any more (expired, used already, or not yours). Add it again."
)


async def claim_uploads(
    conn: Connection,
    ctx: Context,
    uploader: Uploader,
    upload_ids: Sequence[str],
    limits: AttachmentLimits,
    *,
    nowait: bool = False,
) -> list[Claimed]:
    """Lock and open the uploads to attach, in the order given. Raises ValidationFailed (422,
    field ``attachments.N``) for an id that is unknown, used, expired, still streaming or not
    the uploader's (all alike), or repeated; TooManyFiles (422) over the count, FileTooLarge
    (413) over the total size. Must run in the transaction that then calls :func:`attach`.
    ``nowait``: an upload another transaction holds (a concurrent request attaching it) raises
    asyncpg's LockNotAvailableError at once rather than waiting for it."""
    if not upload_ids:
        return []
    if len(upload_ids) > limits.max_files:
        raise TooManyFiles(limits.max_files)
    raws: list[bytes | None] = [_raw_upload_id(uid) for uid in upload_ids]
    lookups = [None if raw is None else _lookup(ctx, raw) for raw in raws]
    found = await sql.usable_uploads(
        conn, [lk for lk in lookups if lk is not None], lock=True, nowait=nowait
    )
    errors: list[FieldError] = []
    claimed: list[Claimed] = []
    seen: set[bytes] = set()
    for n, (raw, lookup) in enumerate(zip(raws, lookups, strict=True)):
        row = None if lookup is None else found.get(lookup)
        if raw is None or lookup is None or row is None or lookup in seen:
            errors.append(FieldError(f"{FIELD}.{n}", UNUSABLE))
            continue
        seen.add(lookup)
        if not _owned_by(row, uploader) or row.sealed is None or row.file_type is None:
            errors.append(FieldError(f"{FIELD}.{n}", UNUSABLE))
            continue
        opened = _open_upload(raw, row.id, bytes(row.sealed))
        file_type = FileType(row.file_type)
        if file_type not in limits.allowed_types:
            errors.append(FieldError(f"{FIELD}.{n}", UNUSABLE))
            continue
        claimed.append(
            Claimed(
                row,
                bytes.fromhex(opened["key"]),
                opened["sha256"],
                opened.get("name"),
                file_type,
                int(row.size or 0),
            )
        )
    if errors:
        raise ValidationFailed(errors)
    if sum(c.size for c in claimed) > limits.max_total_bytes:
        raise FileTooLarge(limits.max_total_bytes)
    return claimed


async def attach(
    conn: Connection,
    key: ThreadKey,
    thread_id: UUID,
    message_id: UUID | None,
    claimed: Sequence[Claimed],
    *,
    keep_file_names: bool,
    staff_id: int | None = None,
) -> list[UUID]:
    """Turn claimed uploads into the thread's attachments, in state ``preparing`` (the caller
    holds the thread's lock and calls ``ctx.after_commit()`` after its commit, which sends the
    stripping). The file key goes under the thread key; the original name is kept (under the
    thread key too) only with ``keep_file_names``. The attachment keeps the upload's file id,
    so no chunk moves. The upload rows go: an upload is usable once."""
    if not claimed:
        return []
    position = await sql.next_position(conn, thread_id)
    rows = []
    for n, c in enumerate(claimed):
        aid = c.row.id
        sealed_key = key.seal(
            json.dumps({"key": c.file_key.hex(), "sha256": c.sha256}), _key_context(aid)
        )
        name = key.seal(c.name, _name_context(aid)) if keep_file_names and c.name else None
        rows.append(
            (
                aid,
                thread_id,
                message_id,
                position + n,
                "staff" if staff_id is not None else "reporter",
                staff_id,
                c.file_type.value,
                c.size,
                sealed_key,
                name,
            )
        )
        await sql.delete_upload(conn, aid)
    await sql.insert_attachments(conn, rows)
    return [r[0] for r in rows]


# --- Views -----------------------------------------------------------------------------------


async def of_thread(
    conn: Connection, key: ThreadKey, thread_id: UUID, *, for_staff: bool
) -> list[AttachmentInfo]:
    """The thread's files, in order (``message_id`` None: the report's). ``for_staff`` adds the
    original names that were kept."""
    out = []
    for row in await sql.of_thread(conn, thread_id):
        file_type = FileType(row.file_type)
        original = None
        if for_staff and row.name is not None:
            original = key.open(bytes(row.name), _name_context(row.id))
        out.append(
            AttachmentInfo(
                row.id,
                row.message_id,
                neutral_name(row.position, file_type),
                row.size,
                file_type,
                State(row.state),
                original,
                row.preview_size is not None,
            )
        )
    return out


async def hashes_of(
    conn: Connection, key: ThreadKey, thread_id: UUID, message_id: UUID | None
) -> list[str]:
    """The SHA-256 (hex) of each file of the report (``message_id`` None) or of one message, as
    uploaded, in order: what its receipt's commitment covers (empty for none, as before)."""
    return [
        str(json.loads(key.open(bytes(r.file_key), _key_context(r.id)))["sha256"])
        for r in await sql.of_thread(conn, thread_id)
        if r.message_id == message_id
    ]


# --- 3. Preparing (the files worker) ---------------------------------------------------------


async def prepare(
    ctx: Context,
    attachment_id: UUID,
    strip_into: Callable[[Path, FileType, Path], tuple[Path, Path | None]],
    workdir: Path,
) -> PrepareOutcome:
    """Strip one attachment, exactly once. Idempotent; safe to retry and to redeliver:

    - the row is claimed under a fresh lease token, and the lease renewed while the run works
      (a redelivery, or a second run while one is live, does nothing; a run that died is
      taken over once its lease runs out, within LEASE_S). Every later write names the token,
      so a run whose lease was taken over changes nothing (outcome ``lease_lost``);
    - the original is decrypted into ``workdir`` (the caller's private 0700 folder, removed
      afterwards), ``strip_into(original, type, workdir)`` writes the stripped copy and, for
      images, a preview;
    - then, in one transaction that first re-checks the lease and locks the row: the copies an
      interrupted run may have left are deleted, the new ones stored encrypted, the row marked
      ``ready`` and the original's chunks deleted. A second run after that finds the row ready
      and does nothing.

    ``CannotStrip`` quarantines the file (the original stays, encrypted, for a manager's
    release). Any other error leaves the row preparing and due again after a back-off, and is
    raised; after MAX_STRIP_ATTEMPTS the file is quarantined as ``worker_failed``. A run that
    committed ``ready`` never reports a failure.
    """
    from confide.files.errors import CannotStrip

    store = store_of(ctx)
    token = uuid4()
    async with ctx.pool.acquire() as conn:
        attempt = await sql.claim_strip(conn, attachment_id, LEASE_S, token)
        if attempt is None:
            return PrepareOutcome(attachment_id, None)
        row = await sql.get(conn, attachment_id)
    if row is None:  # erased with its thread just after the claim
        return PrepareOutcome(attachment_id, None)
    if attempt > MAX_STRIP_ATTEMPTS:
        async with ctx.pool.acquire() as conn:
            if not await sql.quarantine(conn, attachment_id, token, "worker_failed"):
                return PrepareOutcome(attachment_id, None, LEASE_LOST)
        return PrepareOutcome(attachment_id, State.QUARANTINED, "worker_failed")
    file_type = FileType(row.file_type)
    key = _file_key(ctx, row)
    lease = _Lease(attachment_id, token)
    renewal = asyncio.create_task(_keep_lease(ctx, lease))
    try:
        original = workdir / f"original{file_type.extension}"
        with original.open("wb") as out:
            async for data in read_copy(store, key, attachment_id, Copy.ORIGINAL):
                out.write(data)
        lease.check()
        loop = asyncio.get_running_loop()
        try:
            stripped, preview = await loop.run_in_executor(
                None, strip_into, original, file_type, workdir
            )
        except CannotStrip as exc:
            lease.check()
            async with ctx.pool.acquire() as conn:
                if not await sql.quarantine(conn, attachment_id, token, exc.reason.value):
                    raise LeaseLost() from None
            return PrepareOutcome(attachment_id, State.QUARANTINED, exc.reason.value)
        lease.check()
        await _stop(renewal)  # from here the finishing transaction holds the row locked
        async with ctx.pool.acquire() as conn, conn.transaction():
            if not await sql.renew_strip(conn, attachment_id, token, LEASE_S):
                raise LeaseLost()
            # An earlier run may have died while storing its copies: start clean.
            await store.delete(attachment_id, Copy.STRIPPED, conn=conn)
            await store.delete(attachment_id, Copy.PREVIEW, conn=conn)
            stripped_size = await _store_file(
                store, key, attachment_id, Copy.STRIPPED, stripped, conn
            )
            preview_size = None
            if preview is not None:
                preview_size = await _store_file(
                    store, key, attachment_id, Copy.PREVIEW, preview, conn
                )
            if not await sql.finish_strip(
                conn,
                attachment_id,
                token,
                stripped_size=stripped_size,
                preview_size=preview_size,
            ):
                raise LeaseLost()  # not reached while the row is locked; rolls the copies back
            await store.delete(attachment_id, Copy.ORIGINAL, conn=conn)
    except LeaseLost:
        await _stop(renewal)
        await _forget_if_gone(ctx, store, attachment_id)
        log.info("attachment_lease_lost", attachment_id=str(attachment_id))
        return PrepareOutcome(attachment_id, None, LEASE_LOST)
    except Exception:
        await _stop(renewal)
        try:
            async with ctx.pool.acquire() as conn:
                await sql.retry_strip(conn, attachment_id, token, float(min(30 * 2**attempt, 3600)))
        except Exception as exc:  # the claim already pushed the next attempt back
            log.warning("attachment_retry_not_recorded", exc_type=type(exc).__name__)
        raise
    finally:
        await _stop(renewal)
    return PrepareOutcome(attachment_id, State.READY)


LEASE_LOST = "lease_lost"  # PrepareOutcome.reason of a run whose lease was taken over


class LeaseLost(Exception):
    """This run no longer holds its stripping lease: it stops without writing anything."""


@dataclass
class _Lease:
    attachment_id: UUID
    token: UUID
    lost: bool = False

    def check(self) -> None:
        if self.lost:
            raise LeaseLost()


async def _stop(task: asyncio.Task[None]) -> None:
    """Stop the renewal; it never raises (what it met is on ``_Lease.lost``)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def _keep_lease(ctx: Context, lease: _Lease) -> None:
    """Renew every LEASE_S / 3. A renewal that finds the lease gone (another run claimed it,
    the row is done or erased) marks it lost at once; a failing one (the database restarting)
    is retried every second until the lease would have run out, and only then marked lost."""
    loop = asyncio.get_running_loop()
    held_until = loop.time() + LEASE_S
    while True:
        await asyncio.sleep(LEASE_S / 3)
        while True:
            started = loop.time()
            try:
                async with ctx.pool.acquire() as conn:
                    renewed = await sql.renew_strip(conn, lease.attachment_id, lease.token, LEASE_S)
            except Exception as exc:
                log.warning(
                    "attachment_lease_not_renewed",
                    attachment_id=str(lease.attachment_id),
                    exc_type=type(exc).__name__,
                )
                if loop.time() + 1.0 >= held_until - LEASE_S / 10:
                    lease.lost = True
                    return
                await asyncio.sleep(1.0)
                continue
            if not renewed:
                lease.lost = True
                return
            held_until = started + LEASE_S
            break


async def _forget_if_gone(ctx: Context, store: ChunkStore, attachment_id: UUID) -> None:
    """A run that lost its lease because the row is gone (its thread erased): any chunk a store
    outside the database kept of it goes now (PostgreSQL's were rolled back with the
    transaction; what is left otherwise is swept by housekeeping)."""
    try:
        async with ctx.pool.acquire() as conn:
            if await sql.get(conn, attachment_id) is None:
                await store.delete(attachment_id)
    except Exception as exc:
        log.warning("attachment_cleanup_failed", exc_type=type(exc).__name__)


async def _store_file(
    store: ChunkStore,
    key: bytes,
    file_id: UUID,
    copy: Copy,
    path: Path,
    conn: Connection | None = None,
) -> int:
    writer = SealedWriter(store, key, file_id, copy, conn=conn)
    with path.open("rb") as src:
        while data := src.read(1 << 20):
            await writer.write(data)
    await writer.close()
    return writer.size


async def sweep_orphan_chunks(ctx: Context, *, batch: int = 5_000, batches: int = 4) -> int:
    """Housekeeping: delete chunks that belong to no upload and no attachment any more (a staff
    member deleted with uploads in flight, a thread erased while its file was stripped), in at
    most ``batches`` short statements of ``batch`` chunks each (the rest in the next pass)."""
    store = store_of(ctx)
    swept = 0
    async with ctx.pool.acquire() as conn:
        for _ in range(batches):
            n = await store.sweep(conn, batch)
            swept += n
            if n < batch:
                break
    return swept


def _file_key(ctx: Context, row: sql.AttachmentRow) -> bytes:
    thread_key = ctx.keyring.thread_key(row.thread_id, row.data_key)
    opened = json.loads(thread_key.open(bytes(row.file_key), _key_context(row.id)))
    return bytes.fromhex(opened["key"])


def sha256_of(ctx: Context, row: sql.AttachmentRow) -> str:
    """The file's SHA-256 as uploaded (what the receipt's commitment covers)."""
    thread_key = ctx.keyring.thread_key(row.thread_id, row.data_key)
    return str(json.loads(thread_key.open(bytes(row.file_key), _key_context(row.id)))["sha256"])


async def due(ctx: Context, limit: int = 200) -> list[UUID]:
    """Attachments whose stripping is due (the relay sends them to the ``files`` queue)."""
    async with ctx.pool.acquire() as conn:
        return await sql.due_strips(conn, limit)


# --- 4. Serving ------------------------------------------------------------------------------


def _serve(ctx: Context, row: sql.AttachmentRow, copy: Copy, *, inline: bool) -> Download:
    file_type = FileType(row.file_type)
    size = {Copy.STRIPPED: row.stripped_size, Copy.PREVIEW: row.preview_size}.get(copy, row.size)
    name = neutral_name(row.position, file_type)
    content_type = file_type.mime
    if copy is Copy.PREVIEW:
        name, content_type = f"preview-{row.position}.jpg", "image/jpeg"
    try:
        key = _file_key(ctx, row)
    except DecryptionError:
        raise _unreadable(row.id) from None
    chunks = _readable(row.id, read_copy(store_of(ctx), key, row.id, copy))
    return Download(name, content_type, int(size or 0), chunks, inline)


def _unreadable(attachment_id: UUID) -> AttachmentUnavailable:
    log.error("attachment_unreadable", attachment_id=str(attachment_id))
    return AttachmentUnavailable(attachment_id)


async def _readable(attachment_id: UUID, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A copy's plaintext; a chunk that does not open is AttachmentUnavailable, logged."""
    try:
        async for block in chunks:
            yield block
    except DecryptionError:
        raise _unreadable(attachment_id) from None


async def _staff_row(
    conn: Connection, staff: Staff, attachment_id: UUID, *, lock: bool = False
) -> sql.AttachmentRow:
    """The attachment if its thread is visible to ``staff`` (the one thread visibility rule:
    team, restriction, role), else NotFound like a missing one."""
    from confide.services.threads import visible_thread

    row = await sql.get(conn, attachment_id, lock=lock)
    if row is None:
        raise NotFound()
    await visible_thread(conn, staff, row.reference)  # NotFound / Forbidden as for the thread
    return row


async def staff_download(ctx: Context, staff: Staff, attachment_id: UUID) -> Download:
    """The stripped copy (``ready``), or the unstripped original of a file a manager released
    (``released``). 409 while preparing or quarantined; 404 if the thread is not visible.
    Audited as ``attachment_download`` (with the state served)."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await _staff_row(conn, staff, attachment_id)
        state = State(row.state)
        if state not in (State.READY, State.RELEASED):
            raise AttachmentNotReady(state)
        await sql_audit.record(
            conn,
            staff.id,
            row.thread_id,
            "attachment_download",
            {"released": state is State.RELEASED},
        )
    copy = Copy.STRIPPED if state is State.READY else Copy.ORIGINAL
    return _serve(ctx, row, copy, inline=False)


async def staff_preview(ctx: Context, staff: Staff, attachment_id: UUID) -> Download:
    """An image's preview: a re-encoded JPEG of the stripped copy, at most PREVIEW_MAX_SIDE,
    for inline display (served with nosniff and CSP sandbox). 404 for a file without a preview
    (not an image, or not visible); 409 while preparing or quarantined. A released file has no
    preview: it was never stripped. Audited as ``attachment_preview``."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await _staff_row(conn, staff, attachment_id)
        state = State(row.state)
        if state is State.PREPARING or state is State.QUARANTINED:
            raise AttachmentNotReady(state)
        if state is not State.READY or row.preview_size is None:
            raise NotFound()
        await sql_audit.record(conn, staff.id, row.thread_id, "attachment_preview", None)
    return _serve(ctx, row, Copy.PREVIEW, inline=True)


async def reporter_download(ctx: Context, thread_id: UUID, attachment_id: UUID) -> Download:
    """A file of the reporter's own thread, stripped: 404 for any other thread's; 409 while
    preparing, quarantined or released (the reporter is never served an unstripped file).
    Not audited: the audit log's exact time (and its order among staff actions) would tell
    staff when the reporter was online (docs/attachments.md)."""
    async with ctx.pool.acquire() as conn:
        row = await sql.get(conn, attachment_id)
        if row is None or row.thread_id != thread_id:
            raise NotFound()
        state = State(row.state)
        if state is not State.READY:
            raise AttachmentNotReady(state)
    return _serve(ctx, row, Copy.STRIPPED, inline=False)


async def release(ctx: Context, staff: Staff, attachment_id: UUID, reason: str) -> State:
    """A manager releases a quarantined file: staff may then download it unstripped (state
    ``released``). Audited as ``attachment_release``; the reason is kept with the file, sealed
    under the thread key. Idempotent: releasing a released file changes nothing.
    Forbidden for other roles (403); 404 if not visible; 409 if not quarantined."""
    from confide.services.threads import Forbidden

    if not staff.is_manager:
        raise Forbidden(NotManager.detail)
    if not reason.strip():
        raise ValidationFailed([FieldError("reason", "Say why this file is released")])
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await _staff_row(conn, staff, attachment_id, lock=True)
        state = State(row.state)
        if state is State.RELEASED:
            return state
        if state is not State.QUARANTINED:
            raise AttachmentNotReady(state)
        key = ctx.keyring.thread_key(row.thread_id, row.data_key)
        sealed_reason = key.seal(reason.strip()[:1000], f"attachments.release_reason:{row.id}")
        await sql.release(conn, attachment_id, staff.id, sealed_reason)
        await sql_audit.record(conn, staff.id, row.thread_id, "attachment_release", None)
    log.info("attachment_released", attachment_id=str(attachment_id))
    return State.RELEASED


# --- Housekeeping -----------------------------------------------------------------------------


async def purge_expired_uploads(ctx: Context, *, batch: int = 200) -> int:
    """Delete uploads past their 60 minutes that no live draft holds (and any half-streamed
    one), with their chunks; then chunks that belong to nothing. Idempotent."""
    store = store_of(ctx)
    done = 0
    async with ctx.pool.acquire() as conn:
        while True:
            # The rows first (skipping those a claim holds), then their chunks, in one
            # transaction: a claim waiting on nothing of ours never attaches a file whose
            # chunks are gone.
            async with conn.transaction():
                ids = await sql.delete_expired_uploads(conn, batch)
                for file_id in ids:
                    await store.delete(file_id, conn=conn)
            done += len(ids)
            if len(ids) < batch:
                break
    return done
