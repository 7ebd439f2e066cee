"""Reporters' receipts: downloading them, checking their signature, and the tamper check.

The signing, canonical forms and commitments are :mod:`confide.receipts`; the commitment and its
sealed salt are written by the submission and message services themselves, in their own
statement (``reports.submit_report``, ``threads.add_reporter_message``).
"""

from __future__ import annotations

import hmac
import json
from enum import StrEnum
from uuid import UUID

from asyncpg import Connection

from confide import receipts
from confide.context import Context
from confide.crypto import DecryptionError, Keyring, ThreadKey
from confide.errors import NotFound, ReceiptInvalid
from confide.receipts import Verified
from confide.services import attachments, threads
from confide.services.reports import field_context
from confide.services.threads import Staff
from confide.sql import audit as sql_audit
from confide.sql import receipts as sql_receipts
from confide.sql.threads import ThreadDetail

AUDIT_ACTION = "receipt_check"


class TamperCheck(StrEnum):
    """What the tamper check found, as the staff page says it and the audit log records it."""

    MATCHES = "matches"
    DOES_NOT_MATCH = "does_not_match"
    OTHER_REPORT = "other_report"  # signed for another thread: says nothing about this one
    INVALID = "invalid"  # the receipt itself does not verify (audited, then raised)


def jwks(ctx: Context) -> dict[str, list[dict[str, str]]]:
    """The public keys that verify receipts: the current one first, then the retired ones."""
    return receipts.keys_for(ctx.settings).jwks


def check(ctx: Context, text: str) -> Verified:
    """A receipt's signature, for anyone (the "Check a receipt" page): what it says if it
    verifies, else :class:`ReceiptInvalid`. Reads nothing stored: the page tells nobody whether
    a report exists beyond what the signed receipt already says."""
    return receipts.verify(receipts.keys_for(ctx.settings), text)


async def report_receipt(ctx: Context, thread_id: UUID) -> bytes:
    """The signed receipt of the reporter's own report (NotFound if it has none)."""
    async with ctx.pool.acquire() as conn:
        row = await sql_receipts.report(conn, thread_id)
    return _signed(ctx, row)


async def confirmation_receipt(ctx: Context, reference: str) -> bytes:
    """The receipt for the confirmation page, whose signed token names the reference."""
    async with ctx.pool.acquire() as conn:
        row = await sql_receipts.report_by_reference(conn, reference)
    return _signed(ctx, row)


def _signed(ctx: Context, row: sql_receipts.ReportReceipt | None) -> bytes:
    """A report's receipt, signed with the current key; NotFound when there is none."""
    if row is None:
        raise NotFound()
    return receipts.report_receipt(
        receipts.keys_for(ctx.settings),
        reference=row.reference,
        received_at=row.received_at,
        commitment=row.commitment,
    )


async def message_receipt(ctx: Context, thread_id: UUID, message_id: str) -> bytes:
    """The signed receipt of one of the reporter's own messages in their thread (NotFound for
    anything else: another thread's message, a case worker's, an id that is not one)."""
    try:
        wanted = UUID(message_id[:64])
    except ValueError:
        raise NotFound() from None
    async with ctx.pool.acquire() as conn:
        row = await sql_receipts.message(conn, thread_id, wanted)
    if row is None:
        raise NotFound()
    return receipts.message_receipt(
        receipts.keys_for(ctx.settings),
        reference=row.reference,
        message_id=row.id,
        sent_at=row.sent_at,
        commitment=row.commitment,
    )


async def check_stored(ctx: Context, staff: Staff, reference: str, text: str) -> TamperCheck:
    """Tamper evidence: does the stored report (or reporter's message) still match the receipt's
    commitment? Recomputed from the stored salt and the decrypted text, never from the stored
    commitment. Only for staff who may see the thread (else NotFound, like a missing thread;
    Forbidden for ops). Every check is audited, a receipt that does not verify included (then
    :class:`ReceiptInvalid` is raised once the audit row is committed)."""
    invalid: ReceiptInvalid | None = None
    verified: Verified | None = None
    try:
        verified = receipts.verify(receipts.keys_for(ctx.settings), text)
    except ReceiptInvalid as exc:
        invalid = exc
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await threads.visible_thread(conn, staff, reference)
        result = TamperCheck.INVALID
        detail: dict[str, str] = {}
        if verified is not None:
            result = await _compare(conn, ctx.keyring, row, verified)
            detail["kind"] = verified.kind
        await sql_audit.record(conn, staff.id, row.id, AUDIT_ACTION, {"result": result, **detail})
    if invalid is not None:
        raise invalid
    return result


async def _compare(
    conn: Connection, keyring: Keyring, row: ThreadDetail, verified: Verified
) -> TamperCheck:
    if verified.reference != row.reference:
        return TamperCheck.OTHER_REPORT
    try:
        key = keyring.thread_key(row.id, row.data_key)
        if verified.kind == receipts.KIND_MESSAGE:
            assert verified.message_id is not None
            canonical, salt = await _stored_message(conn, key, row.id, verified.message_id)
        else:
            canonical, salt = await _stored_report(conn, key, row)
    except (DecryptionError, ValueError, TypeError):
        # A sealed value that no longer opens, or a salt or contact that is not what was
        # written: the stored report was changed (JSONDecodeError is a ValueError).
        return TamperCheck.DOES_NOT_MATCH
    if salt is None:
        return TamperCheck.DOES_NOT_MATCH  # a receipt was signed for it: its salt was removed
    recomputed = receipts.commitment(salt, canonical)
    if hmac.compare_digest(recomputed, verified.commitment):
        return TamperCheck.MATCHES
    return TamperCheck.DOES_NOT_MATCH


async def _stored_report(
    conn: Connection, keyring: ThreadKey, row: ThreadDetail
) -> tuple[bytes, bytes | None]:
    sealed_salt = await sql_receipts.report_salt(conn, row.id)
    if sealed_salt is None:
        return b"", None
    salt = receipts.decode_salt(keyring.open(sealed_salt, field_context(row.id, "receipt_salt")))
    contact = keyring.open_optional(row.contact, field_context(row.id, "contact"))
    canonical = receipts.canonical_report(
        category=row.category_slug,
        description=keyring.open(row.description, field_context(row.id, "description")),
        occurred=keyring.open_optional(row.occurred, field_context(row.id, "occurred")),
        location=keyring.open_optional(row.location, field_context(row.id, "location")),
        anonymous=row.anonymous,
        follow_up=row.follow_up,
        contact=None if contact is None else json.loads(contact),
        attachments=await attachments.hashes_of(conn, keyring, row.id, None),
        earlier=_earlier(keyring, row),
    )
    return canonical, salt


def _earlier(keyring: ThreadKey, row: ThreadDetail) -> dict[str, str | None] | None:
    """What the reporter said of an earlier report, as committed (only when they said it)."""
    if not row.made_before:
        return None
    return {
        "reference": keyring.open_optional(
            row.earlier_reference, field_context(row.id, "earlier_reference")
        ),
        "details": keyring.open_optional(
            row.earlier_details, field_context(row.id, "earlier_details")
        ),
    }


async def _stored_message(
    conn: Connection, keyring: ThreadKey, thread_id: UUID, message_id: UUID
) -> tuple[bytes, bytes | None]:
    stored = await sql_receipts.stored_message(conn, thread_id, message_id)
    if stored is None or stored.receipt_salt is None:
        return b"", None  # a message signed for this thread is gone, or its salt is
    salt = receipts.decode_salt(
        keyring.open(stored.receipt_salt, f"messages.receipt_salt:{message_id}")
    )
    body = keyring.open(stored.body, f"messages.body:{message_id}")
    files = await attachments.hashes_of(conn, keyring, thread_id, message_id)
    return receipts.canonical_message(body, files), salt
