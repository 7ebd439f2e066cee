"""Submitting a report: a validated :class:`confide.models.NewReport` in, committed receipt out."""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg

from confide import codes, idempotency, logs, receipts
from confide.context import Context
from confide.crypto import quarter_of
from confide.db import Pool
from confide.errors import (
    CodeNotIssued,
    FieldError,
    FormExpired,
    IdempotencyKeyReused,
    RequestInProgress,
    ValidationFailed,
)
from confide.idempotency import Idempotency
from confide.models import NewReport
from confide.services import attachments, deadlines, retention
from confide.services import codes as code_service
from confide.settings import Settings
from confide.sql import deadlines as sql_deadlines
from confide.sql import reports as sql_reports

log = logs.get("confide.reports")

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


def recognise_reference(typed: str | None) -> str | None:
    """A reference as a reporter may have written it down (any case, with spaces or hyphens,
    O for 0 and I or L for 1, with or without its ``R-``) as ``R-XXXXXXXX``; None when it is not
    in that format. Format only: it never says whether such a report exists."""
    if not typed or len(typed) > 100:
        return None
    text = codes.squeeze(typed)
    if text.startswith("R") and len(text) == 9:
        text = text[1:]
    if len(text) != 8 or not codes.is_crockford(text):
        return None
    return REFERENCE_PREFIX + text


def field_context(thread_id: UUID | str, column: str) -> str:
    """Associated data that binds a ciphertext to its row and column."""
    return f"threads.{column}:{thread_id}"


ENDPOINT = "POST /api/v1/reports"
"""Reports submitted through the API and through the HTML form share the endpoint's scope, but
their authors differ (``api`` and ``form``), so a key of one never finds the other's report."""
WAIT_POLL_S = 0.2


# The pool's batches of new reports (confide.db.Batches): a submission without files is
# written and committed together with those that arrive while an earlier batch is in flight.
SUBMISSIONS = "submissions"


def _check_category(row: sql_reports.Submitted) -> None:
    if not row.category_ok:
        raise ValidationFailed([FieldError("category", "Choose one of the categories")])


def canonical_draft(draft: NewReport) -> bytes:
    """The canonical form of what was submitted, for the idempotency request HMAC. A report
    that says nothing of an earlier one has the form it had before those fields existed, so a
    retry across an upgrade is still a repeat."""
    body = draft.model_dump()
    if not draft.made_before:
        for name in ("made_before", "earlier_reference", "earlier_details"):
            del body[name]
    if not draft.attachments:  # likewise for a report without files
        del body["attachments"], body["keep_file_names"]
    return idempotency.canonical(body)


def submission_idempotency(
    settings: Settings, key: str | None, body: bytes, *, author: str
) -> Idempotency | None:
    """A report's key, scoped to the anonymous submitter's channel (``api`` or ``form``) and
    bound to the canonical body: the API's JSON, or the form's validated answers."""
    return idempotency.bind(
        settings,
        key,
        endpoint=ENDPOINT,
        author=author,
        method="POST",
        path="/api/v1/reports",
        body=body,
    )


async def reference_for_form_key(ctx: Context, key: str) -> str | None:
    """The reference of the report that the report form's key (its submit token's nonce) sent,
    while the key is kept (24 h, CONTRACTS §3); None when it sent nothing or is gone."""
    key_hmac = idempotency.key_hmac(ctx.settings, key, endpoint=ENDPOINT, author="form")
    async with ctx.pool.acquire() as conn:
        found = await sql_reports.thread_for_submission_key(conn, key_hmac)
    return None if found is None else found.reference


@dataclass(frozen=True)
class Submitted:
    """What the reporter is shown: the receipt and, for anonymous follow-up, a working code.

    ``code`` is None on a repeat that may not get an additional code (the first code still
    works) and when ``code_failed`` (the report is committed; a retry can still get one)."""

    receipt: Receipt
    code: str | None
    code_failed: bool = False


async def submit(
    ctx: Context,
    draft: NewReport,
    *,
    idempotency: Idempotency | None,
    store_verifier: code_service.VerifierStore,
    accept_new: bool = True,
    wait_for_first: bool = False,
) -> Submitted:
    """Commit a report and, for anonymous follow-up, issue its code (CONTRACTS §2 "Issuing").

    A repeat (same key, same request) returns the same reference; it gets an additional code
    only inside the rules of :func:`confide.services.codes.issue_code`, and nothing it does stops
    an earlier code from working. A repeat with another request raises
    :class:`IdempotencyKeyReused`. A repeat that arrives while the first is still issuing its
    code raises :class:`RequestInProgress`, or with ``wait_for_first`` (HTML forms) waits for
    it. ``accept_new=False`` (an HTML token too old for a new report) answers repeats only.
    """
    receipt = await submit_report(
        ctx, draft, idempotency=idempotency, accept_new=accept_new, wait_for_first=wait_for_first
    )
    if not receipt.wants_code:
        return Submitted(receipt, None)
    try:
        code = await code_service.issue_code(
            ctx, receipt.thread_id, store_verifier, additional=not receipt.is_new
        )
    except CodeNotIssued:
        return Submitted(receipt, None, code_failed=True)
    finally:
        if receipt.is_new and idempotency is not None:
            async with ctx.pool.acquire() as conn:
                await sql_reports.finish_submission_key(conn, idempotency.key_hmac)
    return Submitted(receipt, code)


async def _repeat(
    pool: Pool, idem: Idempotency, *, wait_for_first: bool, wait_s: float
) -> Receipt | None:
    """The first submission's receipt for this key, or None if the key is unused."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        async with pool.acquire() as conn:
            first = await sql_reports.thread_for_submission_key(conn, idem.key_hmac)
            if first is None:
                return None
            if first.request_hmac is not None and not hmac.compare_digest(
                first.request_hmac, idem.request_hmac
            ):
                raise IdempotencyKeyReused()
            if first.pending:
                if not wait_for_first:
                    raise RequestInProgress(retry_after=1)
                if loop.time() < deadline:
                    await asyncio.sleep(WAIT_POLL_S)
                    continue
            clock = await sql_deadlines.clock(conn, first.id)
        return Receipt(
            first.id,
            first.reference,
            first.received_at,
            first.anonymous and first.follow_up,
            is_new=False,
            reply_due_by=clock.reply_due_at if clock else None,
        )


# The Directive's acknowledgement period: 7 calendar days from receipt (Art. 9(1)(b)).
ACKNOWLEDGE_WITHIN = timedelta(days=7)


async def _acknowledge_automatically(ctx: Context, thread_id: UUID) -> None:
    """The organisation's automatic acknowledgement, sent at once to the new thread, written
    like a case worker's message (confide.services.threads, which imports this module)."""
    from confide.services import threads

    try:
        await threads.acknowledge_automatically(ctx, thread_id)
    except (asyncpg.PostgresError, OSError) as exc:
        # The report is committed and its receipt must be shown: an acknowledgement that could
        # not be written leaves the statutory clock running, as if none was sent.
        log.warning(
            "auto_acknowledgement_failed", thread_id=str(thread_id), exc_type=type(exc).__name__
        )


async def _claim(
    ctx: Context,
    conn: asyncpg.Connection,
    draft: NewReport,
    idempotency: Idempotency | None,
    wait_for_first: bool,
) -> list[attachments.Claimed]:
    """The report's uploads, locked. An API request with an Idempotency-Key does not wait for
    uploads that a concurrent request holds (its first, most likely, not committed yet): 409
    with Retry-After, as for any repeat in progress (CONTRACTS §3). HTML forms wait instead."""
    nowait = idempotency is not None and not wait_for_first
    try:
        return await attachments.claim_uploads(
            conn,
            ctx,
            attachments.Uploader.anonymous(),
            draft.attachments,
            ctx.attachments,
            nowait=nowait,
        )
    except asyncpg.LockNotAvailableError:
        raise RequestInProgress(retry_after=1) from None


async def submit_report(
    ctx: Context,
    draft: NewReport,
    *,
    idempotency: Idempotency | None,
    accept_new: bool = True,
    wait_for_first: bool = False,
) -> Receipt:
    """Commit a report, encrypted at rest. Idempotent per key: a retry returns the first receipt.

    The receipt is returned only after the commit, so "received" is never said of a lost report.
    """
    key_hmac = idempotency.key_hmac if idempotency else None
    wait_s = ctx.settings.hash_timeout_s + 2.0
    if not accept_new:
        assert idempotency is not None
        earlier = await _repeat(ctx.pool, idempotency, wait_for_first=wait_for_first, wait_s=wait_s)
        if earlier is None:
            raise FormExpired()
        return earlier
    received_at = datetime.now(UTC)
    wants_code = draft.anonymous and draft.follow_up
    due = nearing = since = acknowledge_by = None
    if not (draft.anonymous and not draft.follow_up):
        # Anonymous reports without follow-up have no deadline (CONTRACTS §5).
        since = received_at
        due, nearing = deadlines.due_and_nearing(ctx.calendar, ctx.settings, received_at)
        if ctx.rules.eu_directive:  # a channel back: the statutory clocks (docs/lifecycle.md)
            acknowledge_by = received_at + ACKNOWLEDGE_WITHIN
    contact = contact_fields = None
    if draft.contact is not None:
        contact_fields = draft.contact.model_dump()
        contact = json.dumps(contact_fields, ensure_ascii=False)
    # The receipt's commitment: one SHA-256 here and one seal below (docs/security.md "Receipts").
    # With files, it covers the SHA-256 of each as uploaded, known once they are claimed.
    salt = receipts.new_salt()

    def commit_to(files: Sequence[str]) -> bytes:
        return receipts.commitment(
            salt,
            receipts.canonical_report(
                category=draft.category,
                description=draft.description,
                occurred=draft.occurred,
                location=draft.location,
                anonymous=draft.anonymous,
                follow_up=wants_code,
                contact=contact_fields,
                attachments=files,
                earlier={"reference": draft.earlier_reference, "details": draft.earlier_details}
                if draft.made_before
                else None,
            ),
        )

    commitment = commit_to(())
    salt_text = receipts.encode_salt(salt)
    # The thread key is wrapped for the earliest quarter the thread could be erased in (one
    # wrap: docs/lifecycle.md "Thread keys"); rewrapped when its due date is fixed or moves.
    quarter = quarter_of(
        retention.projected_erasure(retention.rules(ctx), draft.category, received_at)
    )
    for _ in range(10):
        thread_id = uuid4()
        # Encrypt before taking a connection, so the connection is held only for the statement.
        tid = str(thread_id)  # once, not once per field
        key, key_id, wrapped = ctx.keyring.new_thread_key(tid, quarter)
        outbox: list[tuple[UUID, str, bytes | None]] = [(uuid4(), "new_report", None)]
        if wants_code and due is not None:
            outbox.append((uuid4(), "reminder", None))
        if draft.contact is not None and draft.contact.email:
            # Under the thread key like the rest of the report, so erasure destroys it too (the
            # delivery clears it once sent: confide.sql.outbox.mark_sent).
            ack_id = uuid4()
            recipient = key.seal(draft.contact.email, f"outbox.recipient:{ack_id}")
            outbox.append((ack_id, "acknowledgement", recipient))
        description = key.seal(draft.description, field_context(tid, "description"))
        occurred = key.seal_optional(draft.occurred, field_context(tid, "occurred"))
        location = key.seal_optional(draft.location, field_context(tid, "location"))
        sealed_contact = key.seal_optional(contact, field_context(tid, "contact"))
        sealed_salt = key.seal(salt_text, field_context(tid, "receipt_salt"))
        earlier_reference = earlier_details = None
        if draft.made_before:  # most reports: no seal, two NULLs in the same INSERT
            earlier_reference = key.seal_optional(
                draft.earlier_reference, field_context(tid, "earlier_reference")
            )
            earlier_details = key.seal_optional(
                draft.earlier_details, field_context(tid, "earlier_details")
            )
        new = sql_reports.NewThread(
            key_hmac=key_hmac,
            request_hmac=idempotency.request_hmac if idempotency else None,
            # A code follows: repeats wait (HTML) or get 409 (API) until it is issued.
            pending_s=wait_s if wants_code and idempotency else None,
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
            receipt_salt=sealed_salt,
            commitment=commitment,
            made_before=draft.made_before,
            earlier_reference=earlier_reference,
            earlier_details=earlier_details,
            data_key=(wrapped, key_id, quarter),
            acknowledge_by=acknowledge_by,
        )
        try:
            if draft.attachments:
                # Claiming the uploads and attaching them share the report's transaction.
                async with ctx.pool.acquire() as conn, conn.transaction():
                    claimed = await _claim(ctx, conn, draft, idempotency, wait_for_first)
                    new = replace(new, commitment=commit_to([c.sha256 for c in claimed]))
                    (row,) = await sql_reports.submit(conn, [new])
                    _check_category(row)
                    if row.claimed and row.inserted is not None:
                        await attachments.attach(
                            conn,
                            key,
                            thread_id,
                            None,
                            claimed,
                            keep_file_names=draft.keep_file_names,
                        )
            else:
                # Committed with the other submissions of the moment, in one statement.
                row = await ctx.pool.batches(SUBMISSIONS, sql_reports.submit).write(new)
                _check_category(row)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name not in sql_reports.TAKEN:
                raise
            continue  # the drawn reference was taken (1 in 2^40): nothing was kept; draw again
        except ValidationFailed:
            # A repeat whose first request used the files already: answered as a repeat.
            if idempotency is None or not draft.attachments:
                raise
            earlier = await _repeat(
                ctx.pool, idempotency, wait_for_first=wait_for_first, wait_s=wait_s
            )
            if earlier is None:
                raise
            return earlier
        if not row.claimed:
            # A repeat: the first submission with this key committed (we waited for it).
            assert idempotency is not None
            earlier = await _repeat(
                ctx.pool, idempotency, wait_for_first=wait_for_first, wait_s=wait_s
            )
            assert earlier is not None
            return earlier
        if row.inserted is None:
            continue
        ctx.after_commit()  # the new_report mail, the reminder, the acknowledgement, the files
        if wants_code and ctx.rules.auto_acknowledgement:  # off: not even a function call
            await _acknowledge_automatically(ctx, thread_id)
        return Receipt(
            thread_id,
            row.inserted.reference,
            row.inserted.received_at,
            wants_code,
            is_new=True,
            reply_due_by=due,
        )
    raise RuntimeError("could not draw a free reference")  # pragma: no cover
