"""Submitting a report: validated draft in, committed receipt out."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg

from confide import codes
from confide.crypto import Keyring, keyed_hash
from confide.db import Pool
from confide.errors import FieldError, ValidationFailed
from confide.services import deadlines
from confide.services.validation import ReportDraft
from confide.services.workdays import WorkingCalendar
from confide.settings import Settings
from confide.sql import deadlines as sql_deadlines
from confide.sql import reports as sql_reports

REFERENCE_PREFIX = "R-"


@dataclass(frozen=True)
class Receipt:
    thread_id: UUID
    reference: str
    received_at: datetime
    wants_code: bool
    is_new: bool
    reply_due_by: datetime | None = None


def new_reference() -> str:
    """``R-`` and 8 random Crockford characters: never sequential, never guessable in order."""
    # 32 symbols divide 256, so the low five bits of each random byte pick one uniformly.
    alphabet = codes.ALPHABET
    return REFERENCE_PREFIX + "".join(alphabet[b & 31] for b in secrets.token_bytes(8))


def field_context(thread_id: UUID | str, column: str) -> str:
    """Associated data that binds a ciphertext to its row and column."""
    return f"threads.{column}:{thread_id}"


def submission_key_hmac(settings: Settings, token: str) -> bytes:
    return keyed_hash(settings.session_key, "submission", token)


async def submit_report(
    pool: Pool,
    settings: Settings,
    keyring: Keyring,
    draft: ReportDraft,
    *,
    idempotency_key: str | None,
    calendar: WorkingCalendar,
) -> Receipt:
    """Commit a report, encrypted at rest. Idempotent per key: a retry returns the first receipt.

    The receipt is returned only after the commit, so "received" is never said of a lost report.
    """
    key_hmac = submission_key_hmac(settings, idempotency_key) if idempotency_key else None
    received_at = datetime.now(UTC)
    wants_code = draft.anonymous and draft.follow_up
    due = nearing = since = None
    if not (draft.anonymous and not draft.follow_up):
        # Anonymous reports without follow-up have no deadline (CONTRACTS §5).
        since = received_at
        due, nearing = deadlines.due_and_nearing(calendar, settings, received_at)
    contact = None
    if draft.contact is not None:
        contact = json.dumps(asdict(draft.contact), ensure_ascii=False)
    for _ in range(10):
        thread_id = uuid4()
        outbox: list[tuple[UUID, str, bytes | None]] = [(uuid4(), "new_report", None)]
        if wants_code and due is not None:
            outbox.append((uuid4(), "reminder", None))
        if draft.contact is not None and draft.contact.email:
            ack_id = uuid4()
            outbox.append(
                (
                    ack_id,
                    "acknowledgement",
                    keyring.seal(draft.contact.email, f"outbox.recipient:{ack_id}"),
                )
            )
        # Encrypt before taking a connection, so the connection is held only for the statement.
        tid = str(thread_id)  # once, not once per field
        description = keyring.seal(draft.description, field_context(tid, "description"))
        occurred = keyring.seal_optional(draft.occurred, field_context(tid, "occurred"))
        location = keyring.seal_optional(draft.location, field_context(tid, "location"))
        sealed_contact = keyring.seal_optional(contact, field_context(tid, "contact"))
        try:
            async with pool.acquire() as conn:
                # A single statement commits atomically: no BEGIN/COMMIT round trips needed.
                row = await sql_reports.submit(
                    conn,
                    key_hmac=key_hmac,
                    thread_id=thread_id,
                    reference=new_reference(),
                    category_slug=draft.category,
                    anonymous=draft.anonymous,
                    follow_up=wants_code,
                    description=description,
                    occurred=occurred,
                    location=location,
                    contact=sealed_contact,
                    received_at=received_at,
                    awaiting_since=since,
                    reply_due_at=due,
                    nearing_at=nearing,
                    outbox=outbox,
                )
                if not row["category_ok"]:
                    raise ValidationFailed([FieldError("category", "Choose one of the categories")])
                if not row["claimed"]:
                    # A repeat: the first submission with this key committed (we waited for it).
                    assert key_hmac is not None
                    first = await sql_reports.thread_for_submission_key(conn, key_hmac)
                    assert first is not None
                    clock = await sql_deadlines.clock(conn, first["id"])
                    return Receipt(
                        first["id"],
                        first["reference"],
                        first["received_at"],
                        first["anonymous"] and first["follow_up"],
                        is_new=False,
                        reply_due_by=clock["reply_due_at"] if clock else None,
                    )
        except asyncpg.ForeignKeyViolationError:
            continue  # the drawn reference was taken (1 in 2^40): nothing was kept; draw again
        if row["id"] is None:
            continue
        return Receipt(
            thread_id,
            row["reference"],
            row["received_at"],
            wants_code,
            is_new=True,
            reply_due_by=due,
        )
    raise RuntimeError("could not draw a free reference")  # pragma: no cover
