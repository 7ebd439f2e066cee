"""Submitting a report: validated draft in, committed receipt out."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime
from uuid import UUID, uuid4

from asyncpg import Pool

from confide import codes
from confide.crypto import Keyring, keyed_hash
from confide.errors import FieldError, ValidationFailed
from confide.services import deadlines
from confide.services.validation import ReportDraft
from confide.services.workdays import WorkingCalendar
from confide.settings import Settings
from confide.sql import deadlines as sql_deadlines
from confide.sql import org as sql_org
from confide.sql import outbox as sql_outbox
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
    return REFERENCE_PREFIX + "".join(secrets.choice(codes.ALPHABET) for _ in range(8))


def field_context(thread_id: UUID, column: str) -> str:
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
    thread_id = uuid4()
    key_hmac = submission_key_hmac(settings, idempotency_key) if idempotency_key else None
    async with pool.acquire() as conn, conn.transaction():
        if key_hmac is not None and not await sql_reports.claim_submission_key(
            conn, key_hmac, thread_id
        ):
            first = await sql_reports.thread_for_submission_key(conn, key_hmac)
            assert first is not None  # the claim conflicted, so the first submission committed
            clock = await sql_deadlines.clock(conn, first["id"])
            return Receipt(
                first["id"],
                first["reference"],
                first["received_at"],
                first["anonymous"] and first["follow_up"],
                is_new=False,
                reply_due_by=clock["reply_due_at"] if clock else None,
            )
        category = await sql_org.category(conn, draft.category)
        if category is None:
            raise ValidationFailed([FieldError("category", "Choose one of the categories")])
        contact = None
        if draft.contact is not None:
            contact = json.dumps(asdict(draft.contact), ensure_ascii=False)
        for _ in range(10):
            row = await sql_reports.insert_thread(
                conn,
                thread_id=thread_id,
                reference=new_reference(),
                category_slug=category["slug"],
                team_id=category["team_id"],
                anonymous=draft.anonymous,
                follow_up=draft.anonymous and draft.follow_up,
                description=keyring.seal(
                    draft.description, field_context(thread_id, "description")
                ),
                occurred=keyring.seal_optional(
                    draft.occurred, field_context(thread_id, "occurred")
                ),
                location=keyring.seal_optional(
                    draft.location, field_context(thread_id, "location")
                ),
                contact=keyring.seal_optional(contact, field_context(thread_id, "contact")),
            )
            if row is not None:
                break
        else:  # pragma: no cover - 10 collisions in 40 bits of randomness
            raise RuntimeError("could not draw a free reference")
        due = None
        if not (draft.anonymous and not draft.follow_up):
            # Anonymous reports without follow-up have no deadline (CONTRACTS §5).
            due = await deadlines.start_clock(
                conn, calendar, settings, thread_id, row["received_at"]
            )
        await sql_outbox.enqueue(
            conn, "new_report", thread_id=thread_id, team_id=category["team_id"]
        )
        if draft.contact is not None and draft.contact.email:
            ack_id = uuid4()
            await sql_outbox.enqueue(
                conn,
                "acknowledgement",
                thread_id=thread_id,
                outbox_id=ack_id,
                recipient=keyring.seal(draft.contact.email, f"outbox.recipient:{ack_id}"),
            )
    return Receipt(
        thread_id,
        row["reference"],
        row["received_at"],
        draft.anonymous and draft.follow_up,
        is_new=True,
        reply_due_by=due,
    )
