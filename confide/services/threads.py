"""Threads: the reporter's view and messages, and everything staff do with a thread.

Message and note bodies are encrypted at rest. Every staff view and action is audited (without
text). A thread a staff member may not see raises :class:`NotFound`, exactly like a missing one.
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import NamedTuple
from uuid import UUID, uuid4

from asyncpg import Connection
from pydantic import ValidationError

from confide import idempotency, receipts
from confide.clock_rules import ClockRules
from confide.context import Context
from confide.crypto import Keyring, ThreadKey
from confide.domain import Author, Escalation, Role, ThreadStatus
from confide.errors import (
    ConfideError,
    FieldError,
    IdempotencyKeyReused,
    NotFound,
    ThreadClosed,
    ValidationFailed,
)
from confide.idempotency import Idempotency
from confide.models import NewMessage, field_errors
from confide.services import attachments, deadlines, retention, sessions
from confide.services.attachments import AttachmentInfo
from confide.services.reports import field_context, recognise_reference
from confide.services.staff import THREAD_READER_ROLES
from confide.settings import Settings
from confide.sql import audit as sql_audit
from confide.sql import deadlines as sql_deadlines
from confide.sql import links as sql_links
from confide.sql import org as sql_org
from confide.sql import outbox as sql_outbox
from confide.sql import sessions as sql_sessions
from confide.sql import staff as sql_staff
from confide.sql import statutory as sql_statutory
from confide.sql import threads as sql_threads
from confide.sql.links import Link, OtherThread
from confide.sql.org import TeamName
from confide.sql.staff import Member
from confide.sql.threads import InboxRow as InboxRow  # the web's inbox rows
from confide.sql.threads import ThreadDetail, ThreadSummary

PAGE_SIZE = 50
STATUSES: tuple[ThreadStatus, ...] = tuple(ThreadStatus)
ROLE_CANNOT_READ = "Your role cannot open this page."
RESTRICTED_NEEDS_MANAGER = (
    "Only managers can change the assignee, team or restriction of a restricted thread."
)


class Forbidden(ConfideError):
    """The action needs a role the staff member does not have (403)."""

    def __init__(self, detail: str = ROLE_CANNOT_READ) -> None:
        super().__init__(detail)
        self.detail = detail


class NoReplyPossible(ConfideError):
    """The thread has no anonymous follow-up: there is nobody to reply to in Confide."""


@dataclass(frozen=True)
class Staff:
    id: int
    email: str
    name: str
    role: Role
    team_ids: tuple[int, ...]

    @property
    def is_manager(self) -> bool:
        return self.role is Role.MANAGER

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def reads_threads(self) -> bool:
        return self.role in THREAD_READER_ROLES

    @property
    def can_read_audit(self) -> bool:
        return self.role in (Role.MANAGER, Role.ADMIN)


class Scope(NamedTuple):
    """Which threads a staff member may see, as the SQL visibility rule takes it
    (sql.threads.VISIBLE): their teams, and restricted threads only as assignee or manager."""

    team_ids: list[int]
    staff_id: int
    is_manager: bool


def visibility(staff: Staff) -> Scope:
    """The one place that turns a staff member into the threads they may see.

    Raises :class:`Forbidden` for a role that reads no thread (ops), whatever teams the account
    belongs to, so that no page, list, count or API call can show one of them a thread.
    """
    if not staff.reads_threads:
        raise Forbidden()
    return Scope(list(staff.team_ids), staff.id, staff.is_manager)


@dataclass(frozen=True)
class Message:
    author: Author
    body: str
    sent_at: datetime
    staff_name: str | None = None
    id: UUID | None = None
    has_receipt: bool = False  # the reporter can download its receipt (confide.receipts)
    feedback: bool = False  # sent with "This is our feedback" ticked
    automatic: bool = False  # the automatic acknowledgement (no case worker wrote it)


@dataclass(frozen=True)
class Note:
    author: str | None
    author_name: str | None
    body: str
    created_at: datetime


@dataclass(frozen=True)
class EarlierReport:
    """The "Possibly linked" panel: what the reporter wrote about a report they made before,
    and ``match``, the thread their reference names, only when the viewer may see it (never a
    hint otherwise: a missing thread and an invisible one read the same)."""

    reference: str | None  # as the reporter typed it
    details: str | None
    match: OtherThread | None = None
    linked: bool = False  # the match is linked to this thread already


@dataclass
class ThreadView:
    id: UUID
    reference: str
    category: str
    category_name: str
    team: str
    team_name: str
    anonymous: bool
    follow_up: bool
    status: ThreadStatus
    received_at: datetime
    last_reporter_message_at: datetime | None
    last_caseworker_message_at: datetime | None
    last_activity_at: datetime
    assignee: str | None
    assignee_name: str | None
    restricted: bool
    reply_due_by: datetime | None = None
    escalation: Escalation = Escalation.NONE
    awaiting_since: datetime | None = None
    # The statutory clocks (docs/lifecycle.md); all None on a thread without them.
    acknowledge_by: datetime | None = None
    acknowledged_at: datetime | None = None
    feedback_due_by: datetime | None = None
    feedback_at: datetime | None = None
    statutory: Escalation = Escalation.NONE
    statutory_due_at: datetime | None = None  # the running clock's deadline
    # When the thread closes for silence unless the reporter writes (None: it will not).
    auto_close_at: datetime | None = None
    description: str | None = None
    occurred: str | None = None
    location: str | None = None
    contact: dict[str, str | None] | None = None  # validation.Contact's fields
    has_receipt: bool = False  # the reporter's page only: the report has a receipt
    earlier: EarlierReport | None = None  # staff only: "about a report I made before"
    links: list[Link] = field(default_factory=list)  # staff only: to threads the viewer sees
    messages: list[Message] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    # Every attached file, in order; ``files_of(None)`` the report's, ``files_of(id)`` a message's.
    attachments: list[AttachmentInfo] = field(default_factory=list)
    # Staff only (docs/lifecycle.md): the coming erasure or inactivity close, and the
    # manager's extension and legal hold.
    warning: retention.Warning | None = None
    erasure_due_at: datetime | None = None
    legal_hold: bool = False
    extended: bool = False

    def files_of(self, message_id: UUID | None) -> list[AttachmentInfo]:
        """The files of the report (None) or of one message."""
        return [a for a in self.attachments if a.message_id == message_id]

    @property
    def awaiting_reply(self) -> bool:
        if self.status is not ThreadStatus.OPEN or (self.anonymous and not self.follow_up):
            return False
        if self.last_reporter_message_at is None:
            return False
        return (
            self.last_caseworker_message_at is None
            or self.last_reporter_message_at > self.last_caseworker_message_at
        )

    @property
    def has_statutory_clocks(self) -> bool:
        return self.acknowledge_by is not None

    @property
    def statutory_phase(self) -> str | None:
        """Which statutory clock runs: "acknowledgement", "feedback", or None."""
        if self.statutory_due_at is None:
            return None
        return "acknowledgement" if self.acknowledged_at is None else "feedback"

    @property
    def can_reply(self) -> bool:
        return self.anonymous and self.follow_up and self.status is not ThreadStatus.CLOSED


def _summary(row: ThreadSummary) -> ThreadView:
    return ThreadView(
        id=row.id,
        reference=row.reference,
        category=row.category_slug,
        category_name=row.category_name,
        team=row.team,
        team_name=row.team_name,
        anonymous=row.anonymous,
        follow_up=row.follow_up,
        status=row.status,
        received_at=row.received_at,
        last_reporter_message_at=row.last_reporter_message_at,
        last_caseworker_message_at=row.last_caseworker_message_at,
        last_activity_at=row.last_activity_at,
        assignee=row.assignee,
        assignee_name=row.assignee_name,
        restricted=row.restricted,
        reply_due_by=row.reply_due_at,
        escalation=row.escalation,
        awaiting_since=row.awaiting_since,
        acknowledge_by=row.acknowledge_by,
        acknowledged_at=row.acknowledged_at,
        feedback_due_by=row.feedback_due_by,
        feedback_at=row.feedback_at,
        statutory=row.statutory,
        statutory_due_at=row.statutory_due_at,
    )


def auto_close_at(view: ThreadView, rules: ClockRules) -> datetime | None:
    """When the thread closes for silence (confide.services.autoclose), or None."""
    return rules.auto_close_at(
        anonymous=view.anonymous,
        closed=view.status is ThreadStatus.CLOSED,
        last_caseworker_message_at=view.last_caseworker_message_at,
        last_reporter_message_at=view.last_reporter_message_at,
    )


def _open_report(view: ThreadView, row: ThreadDetail, key: ThreadKey, *, contact: bool) -> None:
    view.description = key.open(row.description, field_context(view.id, "description"))
    view.occurred = key.open_optional(row.occurred, field_context(view.id, "occurred"))
    view.location = key.open_optional(row.location, field_context(view.id, "location"))
    if contact and row.contact is not None:
        view.contact = json.loads(key.open(row.contact, field_context(view.id, "contact")))


async def _messages(conn: Connection, key: ThreadKey, thread_id: UUID) -> list[Message]:
    return [
        Message(
            r.author,
            key.open(r.body, f"messages.body:{r.id}"),
            r.sent_at,
            r.staff_name,
            r.id,
            r.has_receipt,
            r.feedback,
            r.automatic,
        )
        for r in await sql_threads.messages(conn, thread_id)
    ]


# --- Reporters -----------------------------------------------------------------------------


async def _reporter_view(conn: Connection, keyring: Keyring, thread_id: UUID) -> ThreadView:
    row = await sql_threads.reporter_thread(conn, thread_id)
    if row is None:
        raise NotFound()
    view = _summary(row)
    key = keyring.thread_key(thread_id, row.data_key)
    _open_report(view, row, key, contact=False)
    view.has_receipt = row.has_receipt
    view.messages = await _messages(conn, key, thread_id)
    view.attachments = await attachments.of_thread(conn, key, thread_id, for_staff=False)
    return view


async def reporter_view(ctx: Context, thread_id: UUID) -> ThreadView:
    async with ctx.pool.acquire() as conn:
        view = await _reporter_view(conn, ctx.keyring, thread_id)
    view.auto_close_at = auto_close_at(view, ctx.rules)
    return view


class ReporterPage(NamedTuple):
    """What the reporter's messaging page shows: the thread, and whether a case worker has
    written since the page last showed the messages (the "New reply" notice)."""

    thread: ThreadView
    new_reply: bool


async def reporter_page(ctx: Context, thread_id: UUID) -> ReporterPage:
    """The thread for the reporter's messaging page, its replies then marked as seen.

    The mark is the time of the last case-worker message shown (``threads.
    reporter_seen_reply_at``), never the time of the visit: nothing about when or how often the
    reporter looks is kept (docs/reporters.md). A reply that arrives while the page is drawn is
    not marked, so it is announced next time rather than missed.
    """
    async with ctx.pool.acquire() as conn:
        view = await _reporter_view(conn, ctx.keyring, thread_id)
        view.auto_close_at = auto_close_at(view, ctx.rules)
        shown = view.last_caseworker_message_at
        new_reply = shown is not None and await sql_threads.see_replies(conn, thread_id, shown)
    return ReporterPage(view, new_reply)


def message_body(text: object, field_name: str = "body") -> str:
    """A message's text by the rule of :class:`confide.models.NewMessage` (for the HTML forms,
    whose field may be named otherwise); else :class:`ValidationFailed` under ``field_name``."""
    try:
        return NewMessage.model_validate({"body": text}).body
    except ValidationError as exc:
        errors = field_errors(exc, NewMessage)
        raise ValidationFailed([FieldError(field_name, e.message) for e in errors]) from None


class Sent(NamedTuple):
    """A message's receipt: when it was sent, and whether this request sent it (False for a
    repeat of its idempotency key, answered 200 instead of 201)."""

    sent_at: datetime
    is_new: bool


def message_idempotency(
    settings: Settings,
    thread_id: UUID,
    key: str | None,
    body: str,
    *,
    author: str,
    files: Files | None = None,
) -> Idempotency | None:
    """A message's key, scoped to the thread and its author: the reporter, or one staff member
    (``staff:<id>``), so a reporter's key never finds a staff reply or the other way round. A
    message without files keeps the canonical form it had before files existed."""
    request: dict[str, object] = {"body": body}
    if files is not None and files.upload_ids:
        request["attachments"] = list(files.upload_ids)
        request["keep_file_names"] = files.keep_file_names
    return idempotency.bind(
        settings,
        key,
        endpoint=f"POST messages {thread_id}",
        author=author,
        method="POST",
        path="messages",
        body=idempotency.canonical(request),
    )


@dataclass(frozen=True)
class Files:
    """The uploads a message attaches (``attachments`` of the API, in order) and whether their
    original names are kept (encrypted, for staff)."""

    upload_ids: tuple[str, ...] = ()
    keep_file_names: bool = False


async def _add_message(
    ctx: Context,
    thread_id: UUID,
    body: str,
    *,
    author: Author,
    staff_id: int | None,
    idempotency_key: str | None,
    feedback: bool = False,
    automatic: bool = False,
    files: Files | None = None,
) -> Sent:
    """The one function that writes a message, sealed the same way whoever wrote it: the
    reporter, a case worker (``feedback``: "This is our feedback" was ticked), or Confide's
    automatic acknowledgement (``automatic``: it meets the statutory acknowledgement clock but
    is nobody's reply, so it stops no reply clock and starts no auto-close). ``files`` are
    attached in the same transaction (confide.services.attachments), bound to the author."""
    scope = "reporter" if author == Author.REPORTER else f"staff:{staff_id}"
    if automatic:
        scope = "automatic"
    idem = message_idempotency(
        ctx.settings, thread_id, idempotency_key, body, author=scope, files=files
    )
    message_id = uuid4()
    salt = commitment = sealed_salt = None
    if author == Author.REPORTER:  # the reporter's own words get a receipt (confide.receipts)
        salt = receipts.new_salt()
        commitment = receipts.commitment(salt, receipts.canonical_message(body))
    uploader = (
        attachments.Uploader.reporter(thread_id)
        if author == Author.REPORTER
        else attachments.Uploader.staff(staff_id or 0)
    )
    async with ctx.pool.acquire() as conn, conn.transaction():
        thread = await sql_threads.lock_thread(conn, thread_id)
        if thread is None:
            raise NotFound()
        # Sealed under the thread key read on the locked row, so a migration to a data key
        # (keys migrate-threads) never meets a message sealed under the keyring.
        key = ctx.keyring.thread_key(thread_id, thread.data_key)
        if salt is not None:
            sealed_salt = key.seal(
                receipts.encode_salt(salt), f"messages.receipt_salt:{message_id}"
            )
        if idem is not None:
            earlier = await sql_threads.message_by_key(conn, idem.key_hmac)
            if earlier is not None:
                if earlier.request_hmac is not None and not hmac.compare_digest(
                    earlier.request_hmac, idem.request_hmac
                ):
                    raise IdempotencyKeyReused()
                return Sent(earlier.sent_at, is_new=False)  # the same receipt, no second message
        if thread.status is ThreadStatus.CLOSED:
            raise ThreadClosed()
        if not (thread.anonymous and thread.follow_up):
            raise NoReplyPossible()
        claimed: list[attachments.Claimed] = []
        if files is not None and files.upload_ids:
            claimed = await attachments.claim_uploads(
                conn, ctx, uploader, files.upload_ids, ctx.attachments
            )
            if salt is not None:  # the receipt covers each file's SHA-256 as uploaded
                commitment = receipts.commitment(
                    salt, receipts.canonical_message(body, [c.sha256 for c in claimed])
                )
        sent_at = await sql_threads.insert_message(
            conn,
            message_id=message_id,
            thread_id=thread_id,
            author=author,
            staff_id=staff_id,
            body=key.seal(body, f"messages.body:{message_id}"),
            key_hmac=idem.key_hmac if idem else None,
            request_hmac=idem.request_hmac if idem else None,
            receipt_salt=sealed_salt,
            commitment=commitment,
            feedback=feedback and not automatic,
            automatic=automatic,
        )
        assert sent_at is not None
        if claimed:
            await attachments.attach(
                conn,
                key,
                thread_id,
                message_id,
                claimed,
                keep_file_names=files is not None and files.keep_file_names,
                staff_id=None if author == Author.REPORTER else staff_id,
            )
        if author == Author.REPORTER:
            await sql_threads.mark_reporter_message(conn, thread_id, sent_at)
            clock = await sql_deadlines.clock(conn, thread_id)
            if clock is not None and clock.awaiting_since is None:
                await deadlines.start_clock(conn, ctx.calendar, ctx.settings, thread_id, sent_at)
            await sql_outbox.enqueue(conn, "new_message", thread_id=thread_id)
        elif automatic:
            await sql_statutory.acknowledge(conn, thread_id, sent_at)
            await sql_audit.record(conn, None, thread_id, "auto_acknowledgement")
        else:
            await sql_threads.mark_caseworker_message(conn, thread_id, sent_at, feedback=feedback)
            await deadlines.stop_clock(conn, thread_id)  # only a reply stops the clock
            await sql_audit.record(conn, staff_id, thread_id, "reply")
    ctx.after_commit()  # the new_message mail, or the reminder the clock queued
    return Sent(sent_at, is_new=True)


async def add_reporter_message(
    ctx: Context,
    thread_id: UUID,
    body: str,
    *,
    idempotency_key: str | None,
    files: Files | None = None,
) -> Sent:
    """Commit the reporter's message (encrypted) before anyone is told it was sent, with the
    reporter's uploads in ``files`` attached (422 for any not theirs, used or expired).

    Idempotent per key: a retried POST returns the first message's time.
    """
    return await _add_message(
        ctx,
        thread_id,
        body,
        author=Author.REPORTER,
        staff_id=None,
        idempotency_key=idempotency_key,
        files=files,
    )


# --- Staff ---------------------------------------------------------------------------------


async def resume_staff(ctx: Context, token: str) -> tuple[sessions.ActiveSession, Staff] | None:
    """A live staff session (its idle clock restarted) and its active staff member, in one
    round trip; None if either is gone."""
    mac = sessions.presented_hmac(ctx.settings, token)
    if mac is None:
        return None
    async with ctx.pool.acquire() as conn:
        row = await sql_sessions.touch_staff(conn, mac)
    if row is None or not row.active:
        return None
    staff = Staff(row.staff_id, row.email, row.name, row.role, row.team_ids)
    active = sessions.active_from_row(mac, row.session)
    active = replace(
        active,
        methods=row.methods,
        has_second_factor=row.has_second_factor,
        personal_token=row.personal_token,
    )
    return active, staff


@dataclass(frozen=True)
class InboxPage:
    threads: list[InboxRow]
    counts: dict[str, int]
    next_page: int | None


async def inbox(
    ctx: Context,
    staff: Staff,
    *,
    state: str,
    page: int,
    reference: str | None,
    counts: dict[str, int] | None = None,
) -> InboxPage:
    """One page of the inbox. ``counts`` may come from a short-lived cache of the caller."""
    if reference is not None and not REFERENCE.match(reference):
        reference = "R-NONE"  # matches no thread, and is safe to send to PostgreSQL
    if state not in sql_threads.STATES:
        raise ValidationFailed([FieldError("state", "Unknown filter")])
    scope = visibility(staff)
    async with ctx.pool.acquire() as conn:
        rows = await sql_threads.inbox(
            conn,
            team_ids=scope.team_ids,
            staff_id=scope.staff_id,
            is_manager=scope.is_manager,
            state=state,
            reference=reference,
            limit=PAGE_SIZE + 1,
            offset=(page - 1) * PAGE_SIZE,
        )
        if counts is None:
            counts = await sql_threads.inbox_counts(
                conn,
                team_ids=scope.team_ids,
                staff_id=scope.staff_id,
                is_manager=scope.is_manager,
            )
    return InboxPage(rows[:PAGE_SIZE], counts, page + 1 if len(rows) > PAGE_SIZE else None)


async def inbox_counts(ctx: Context, staff: Staff) -> dict[str, int]:
    """How many threads each inbox filter holds, among those the staff member may see."""
    scope = visibility(staff)
    async with ctx.pool.acquire() as conn:
        return await sql_threads.inbox_counts(
            conn, team_ids=scope.team_ids, staff_id=scope.staff_id, is_manager=scope.is_manager
        )


async def escalations(ctx: Context, staff: Staff) -> list[ThreadView]:
    scope = visibility(staff)
    async with ctx.pool.acquire() as conn:
        rows = await sql_threads.escalated(
            conn, team_ids=scope.team_ids, staff_id=scope.staff_id, is_manager=scope.is_manager
        )
    return [_summary(r) for r in rows]


REFERENCE = re.compile(r"^R-[0-9A-Z]{8}$")


async def visible_thread(conn: Connection, staff: Staff, reference: str) -> ThreadDetail:
    """The thread with its sealed report fields if the staff member may see it, else
    NotFound (for services beside this one that act on a thread: receipts)."""
    return await _visible(conn, staff, reference)


async def _visible(
    conn: Connection, staff: Staff, reference: str, *, lock: bool = False
) -> ThreadDetail:
    """The thread if the staff member may see it (else NotFound, like a missing one); ``lock``
    holds its row until the transaction ends, so a check made on it still holds at the write."""
    scope = visibility(staff)
    if not REFERENCE.match(reference):
        raise NotFound()
    row = await sql_threads.visible_thread(
        conn,
        reference,
        team_ids=scope.team_ids,
        staff_id=scope.staff_id,
        is_manager=scope.is_manager,
        lock=lock,
    )
    if row is None:
        raise NotFound()
    return row


def _may_change_who_sees(staff: Staff, row: ThreadSummary) -> None:
    """On a restricted thread only a manager changes who can see it: its assignee, its team or
    the restriction itself (else an assignee could hand it to a teammate)."""
    if row.restricted and not staff.is_manager:
        raise Forbidden(RESTRICTED_NEEDS_MANAGER)


async def staff_view(
    ctx: Context, staff: Staff, reference: str, *, audit: tuple[str, dict[str, bool]] | None = None
) -> ThreadView:
    """The whole thread for a staff member who may see it. The view itself is audited (as
    ``audit``'s action and detail when given: the printable record)."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await _visible(conn, staff, reference)
        view = _summary(row)
        key = ctx.keyring.thread_key(row.id, row.data_key)
        _open_report(view, row, key, contact=not row.anonymous)
        view.messages = await _messages(conn, key, view.id)
        view.attachments = await attachments.of_thread(conn, key, view.id, for_staff=True)
        view.notes = [
            Note(
                r.author,
                r.author_name,
                key.open(r.body, f"notes.body:{r.id}"),
                r.created_at,
            )
            for r in await sql_threads.notes(conn, view.id)
        ]
        scope = visibility(staff)
        view.links = await sql_links.of_thread(conn, view.id, **scope._asdict())
        if row.made_before:
            view.earlier = await _earlier(conn, key, scope, row, view.links)
        _lifecycle(ctx, view, row)
        action, detail = audit or ("view", {})
        await sql_audit.record(conn, staff.id, view.id, action, detail or None)
    view.auto_close_at = auto_close_at(view, ctx.rules)
    return view


async def print_view(ctx: Context, staff: Staff, reference: str, *, with_notes: bool) -> ThreadView:
    """The printable case record: report, messages and (if asked) notes. Opening it is audited
    as ``print``, saying whether notes were in it."""
    view = await staff_view(ctx, staff, reference, audit=("print", {"notes": with_notes}))
    if not with_notes:
        view.notes = []
    return view


def _lifecycle(ctx: Context, view: ThreadView, row: ThreadDetail) -> None:
    """The retention facts and warning the staff thread page shows (docs/lifecycle.md)."""
    view.erasure_due_at = row.erasure_due_at
    view.legal_hold = row.legal_hold_at is not None
    view.extended = row.retention_extended_at is not None
    view.warning = retention.warning_for(
        ctx,
        status=row.status,
        category=row.category_slug,
        erasure_due_at=row.erasure_due_at,
        last_activity_at=row.last_activity_at,
        held=view.legal_hold,
    )


async def _earlier(
    conn: Connection, key: ThreadKey, scope: Scope, row: ThreadDetail, links: list[Link]
) -> EarlierReport:
    """What the reporter said of an earlier report, and the thread their reference names if
    the viewer may see it (the same rule as everywhere, ``sql.threads.VISIBLE``)."""
    typed = key.open_optional(row.earlier_reference, field_context(row.id, "earlier_reference"))
    details = key.open_optional(row.earlier_details, field_context(row.id, "earlier_details"))
    reference = recognise_reference(typed)
    match = None
    if reference is not None and reference != row.reference:
        match = await sql_links.visible_other(conn, reference, **scope._asdict())
    linked = match is not None and any(link.other.id == match.id for link in links)
    return EarlierReport(typed, details, match, linked)


async def reply(
    ctx: Context,
    staff: Staff,
    reference: str,
    body: str,
    *,
    idempotency_key: str | None,
    feedback: bool = False,
    files: Files | None = None,
) -> Sent:
    """A case worker's message to the reporter; ``feedback`` when "This is our feedback" is
    ticked (the statutory feedback clock, docs/lifecycle.md); ``files``: the member's own
    uploads, attached in the same transaction."""
    async with ctx.pool.acquire() as conn:
        row = await _visible(conn, staff, reference)
    return await _add_message(
        ctx,
        row.id,
        body,
        author=Author.CASEWORKER,
        staff_id=staff.id,
        idempotency_key=idempotency_key,
        feedback=feedback,
        files=files,
    )


async def acknowledge_automatically(ctx: Context, thread_id: UUID) -> None:
    """Send the organisation's automatic acknowledgement (``auto_acknowledgement``) to a new
    report's thread, through the same function as a case worker's message. Idempotent: its key
    is derived from the thread, so a second call sends nothing more."""
    text = ctx.rules.auto_acknowledgement
    if not text:
        return
    await _add_message(
        ctx,
        thread_id,
        text,
        author=Author.CASEWORKER,
        staff_id=None,
        idempotency_key=f"auto-acknowledgement:{thread_id}",
        automatic=True,
    )


async def add_note(
    ctx: Context, staff: Staff, reference: str, body: str, *, feedback: bool = False
) -> datetime:
    """An internal note. ``feedback``: it records feedback given outside Confide (a report
    with contact details has no messages), which meets the statutory feedback clock."""
    note_id = uuid4()
    async with ctx.pool.acquire() as conn, conn.transaction():
        # Locked: sealed under the key the row holds now (see _add_message).
        row = await _visible(conn, staff, reference, lock=True)
        created = await sql_threads.insert_note(
            conn,
            note_id=note_id,
            thread_id=row.id,
            staff_id=staff.id,
            body=ctx.keyring.thread_key(row.id, row.data_key).seal(body, f"notes.body:{note_id}"),
        )
        if feedback and row.acknowledge_by is not None:
            await sql_statutory.record_feedback(conn, row.id, created)
        detail = {"feedback": True} if feedback else None
        await sql_audit.record(conn, staff.id, row.id, "note", detail)
    return created


async def set_status(ctx: Context, staff: Staff, reference: str, chosen: str) -> None:
    if chosen not in STATUSES:
        raise ValidationFailed([FieldError("status", "Choose open, closed or contacted")])
    status = ThreadStatus(chosen)
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await _visible(conn, staff, reference)
        if status is ThreadStatus.CONTACTED and row.anonymous:
            raise ValidationFailed(
                [
                    FieldError(
                        "status", "Only reports with contact details can be marked as contacted"
                    )
                ]
            )
        await sql_threads.set_status(conn, row.id, status)
        if row.acknowledge_by is not None:  # the statutory clocks (docs/lifecycle.md)
            if status is ThreadStatus.CONTACTED:
                await sql_statutory.acknowledge(conn, row.id, ctx.clock())
            await sql_statutory.set_running(conn, row.id, status is not ThreadStatus.CLOSED)
        if status in (ThreadStatus.CLOSED, ThreadStatus.CONTACTED):
            await deadlines.stop_clock(conn, row.id)  # closing removes the deadline
        elif row.status is not ThreadStatus.OPEN:
            since = await sql_threads.earliest_unanswered(conn, row.id)
            if since is not None and not (row.anonymous and not row.follow_up):
                await deadlines.start_clock(conn, ctx.calendar, ctx.settings, row.id, since)
        await sql_audit.record(conn, staff.id, row.id, "status", {"status": status})
        # Closing fixes the erasure date and reopening clears it (migrations/0023's trigger):
        # the data key follows to its new quarter's key.
        await retention.rewrap_thread(conn, ctx, row.id)
    ctx.after_commit()  # a reopened or closed clock queues a reminder


async def set_team(ctx: Context, staff: Staff, reference: str, team_slug: str) -> None:
    """Move a thread; on a restricted one, managers only (checked on the locked row)."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await _visible(conn, staff, reference, lock=True)
        _may_change_who_sees(staff, row)
        team_id = await sql_org.team_id(conn, team_slug, active_only=True)
        if team_id is None or not await sql_threads.set_team(conn, row.id, team_id):
            raise ValidationFailed([FieldError("team", "Choose one of the teams")])
        await sql_audit.record(conn, staff.id, row.id, "team", {"team": team_slug})


async def set_assignee(ctx: Context, staff: Staff, reference: str, email: str | None) -> None:
    """Assign a member of the thread's team who reads threads (never ops); on a restricted
    thread, managers only (checked on the locked row)."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await _visible(conn, staff, reference, lock=True)
        _may_change_who_sees(staff, row)
        assignee_id = None
        if email:
            member = await sql_staff.by_email(conn, email)
            team_id = row.team_id
            if (
                member is None
                or not member.active
                or member.role not in THREAD_READER_ROLES
                or team_id not in await sql_staff.team_ids(conn, member.id)
            ):
                raise ValidationFailed(
                    [FieldError("email", "Choose a member of the thread's team")]
                )
            assignee_id = member.id
        await sql_threads.set_assignee(conn, row.id, assignee_id)
        await sql_audit.record(conn, staff.id, row.id, "assign", {"assignee_id": assignee_id})


async def set_restricted(ctx: Context, staff: Staff, reference: str, restricted: bool) -> None:
    """Managers only: limit a thread to its assignee and the managers (conflicts of interest)."""
    visibility(staff)
    if not staff.is_manager:
        raise Forbidden("Only managers can restrict a thread.")
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await _visible(conn, staff, reference, lock=True)
        await sql_threads.set_restricted(conn, row.id, restricted)
        await sql_audit.record(conn, staff.id, row.id, "restrict", {"restricted": restricted})


async def extend_retention(
    ctx: Context, staff: Staff, reference: str, length: str, reason: str
) -> None:
    """Managers only: extend the thread's retention once, by up to its category's period
    again, with a reason (docs/lifecycle.md); audited."""
    visibility(staff)
    if not staff.is_manager:
        raise Forbidden("Only managers can extend retention.")
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await _visible(conn, staff, reference, lock=True)
        try:
            await retention.extend(
                conn,
                ctx,
                thread_id=row.id,
                category=row.category_slug,
                staff_id=staff.id,
                length_text=length,
                reason_text=reason,
            )
        except retention.AlreadyExtended:
            raise ValidationFailed(
                [FieldError("extension", "Retention of this thread has been extended already")]
            ) from None


async def set_legal_hold(ctx: Context, staff: Staff, reference: str, hold: bool) -> None:
    """Managers only: set or lift a legal hold, which stops erasure until lifted; audited."""
    visibility(staff)
    if not staff.is_manager:
        raise Forbidden("Only managers can set or lift a legal hold.")
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await _visible(conn, staff, reference, lock=True)
        await retention.set_hold(conn, ctx, thread_id=row.id, staff_id=staff.id, hold=hold)


async def teams_and_members(
    ctx: Context, staff: Staff, reference: str
) -> tuple[list[TeamName], list[Member]]:
    async with ctx.pool.acquire() as conn:
        row = await _visible(conn, staff, reference)
        team_id = row.team_id
        teams = await sql_org.active_teams(conn)
        # Who "Assign to" offers: members who read threads, so never an ops account.
        members = await sql_staff.team_members(conn, team_id, roles=list(THREAD_READER_ROLES))
    return list(teams), members


async def send_pending_message(
    ctx: Context, thread_id: UUID, text: str | None, *, idempotency_key: str | None
) -> bool:
    """Send a message typed while the reporter's session expired, once they have logged in
    again; True if it was sent. A message that cannot be sent now (not valid, thread closed, no
    follow-up, a key used for other words) is dropped: the reporter lands on the thread page,
    which shows what was received."""
    if not text:
        return False
    try:
        body = message_body(text)
        await add_reporter_message(ctx, thread_id, body, idempotency_key=idempotency_key)
    except (ValidationFailed, ThreadClosed, NoReplyPossible, IdempotencyKeyReused):
        return False
    return True


class StaffPage(NamedTuple):
    thread: ThreadView
    teams: list[TeamName]
    members: list[Member]


async def staff_page(ctx: Context, staff: Staff, reference: str) -> StaffPage:
    """What the staff thread page shows: the thread (audited as viewed, :func:`staff_view`),
    and the teams and members its forms offer (:func:`teams_and_members`)."""
    view = await staff_view(ctx, staff, reference)
    teams, members = await teams_and_members(ctx, staff, reference)
    return StaffPage(view, teams, members)
