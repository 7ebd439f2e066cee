"""Responses: the JSON API's response models (CONTRACTS §3), which the handlers send and which are
the schemas of the OpenAPI document, and the reminder's calendar file, which HTML pages and the
API send alike. The request models, which the services take, are in ``confide.models``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from confide.errors import ReminderNotReady
from confide.services import reminders, statistics, threads
from confide.services.attachments import AttachmentInfo, Uploaded
from webapp.keys import CTX

# ISO 8601 as ``datetime.isoformat`` writes it (``+00:00``, not pydantic's ``Z``): the API's
# times have always been written so.
Timestamp = Annotated[
    datetime,
    PlainSerializer(datetime.isoformat, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class Answer(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    def response(self, status: int = 200) -> web.Response:
        return web.json_response(self.model_dump(mode="json", by_alias=True), status=status)


class Category(Answer):
    id: str
    name: str


class Receipt(Answer):
    reference: Annotated[str, Field(pattern=r"^R-[0-9A-Z]{8}$")]
    code: Annotated[str | None, Field(description="Shown once; cannot be recovered")]
    reply_due_by: Timestamp | None


class Session(Answer):
    token: str
    expires_at: Timestamp


class Sent(Answer):
    sent_at: Timestamp


class NoteAdded(Answer):
    created_at: Timestamp


class Done(Answer):
    status: Literal["ok"] = "ok"


class Attachment(Answer):
    """An attached file (CONTRACTS §3): download it from ``/api/v1/staff/attachments/{id}`` or
    ``/api/v1/reporter/attachments/{id}`` once ``ready``."""

    id: str
    name: Annotated[str, Field(description="The neutral name, `attachment-N.ext`.")]
    size: Annotated[int, Field(description="Bytes, as uploaded.")]
    type: Annotated[str, Field(description="jpeg, png, heic, pdf, docx, odt, text, mp3 or m4a.")]
    state: Literal["preparing", "ready", "quarantined", "released"]

    @classmethod
    def of(cls, a: AttachmentInfo) -> Attachment:
        return cls(id=str(a.id), name=a.name, size=a.size, type=a.type.value, state=a.state.value)


class StaffAttachment(Attachment):
    original_name: Annotated[
        str | None,
        Field(description="The file's own name, only when the reporter chose to keep names."),
    ] = None
    preview: Annotated[
        bool,
        Field(description="An image with a preview at `/api/v1/staff/attachments/{id}/preview`."),
    ] = False

    @classmethod
    def of(cls, a: AttachmentInfo) -> StaffAttachment:
        return cls(
            **Attachment.of(a).model_dump(),
            original_name=a.original_name,
            preview=a.has_preview and a.state.value == "ready",
        )


class Message(Answer):
    sender: Annotated[Literal["reporter", "caseworker"], Field(alias="from")]
    body: str
    sent_at: Timestamp
    feedback: Annotated[
        bool, Field(description='A case worker\'s message sent as "This is our feedback".')
    ] = False
    automatic: Annotated[
        bool, Field(description="The automatic acknowledgement, which no case worker wrote.")
    ] = False

    attachments: list[Attachment] = []

    @classmethod
    def of(cls, m: threads.Message, files: Sequence[AttachmentInfo] = ()) -> Message:
        return cls(
            sender=m.author,  # type: ignore[arg-type]
            body=m.body,
            sent_at=m.sent_at,
            feedback=m.feedback,
            automatic=m.automatic,
            attachments=[Attachment.of(a) for a in files],
        )


class StaffMessage(Message):
    attachments: list[StaffAttachment] = []  # type: ignore[assignment]

    @classmethod
    def of(cls, m: threads.Message, files: Sequence[AttachmentInfo] = ()) -> StaffMessage:
        return cls(
            **Message.of(m).model_dump(exclude={"attachments"}),
            attachments=[StaffAttachment.of(a) for a in files],
        )


class ReporterThread(Answer):
    reference: str
    category: str
    description: str
    submitted_at: Timestamp
    status: Literal["open", "closed"]
    reply_due_by: Timestamp | None
    auto_close_at: Annotated[
        Timestamp | None,
        Field(
            description="When the report closes unless the reporter writes first: the case "
            "worker spoke last (docs/lifecycle.md). Null when it will not close for silence."
        ),
    ] = None
    messages: list[Message]
    attachments: Annotated[list[Attachment], Field(description="The report's own files.")] = []

    @classmethod
    def of(cls, view: threads.ThreadView) -> ReporterThread:
        return cls(
            reference=view.reference,
            category=view.category,
            description=view.description or "",
            submitted_at=view.received_at,
            status="closed" if view.status == "closed" else "open",
            reply_due_by=view.reply_due_by,
            auto_close_at=view.auto_close_at,
            messages=[Message.of(m, view.files_of(m.id)) for m in view.messages],
            attachments=[Attachment.of(a) for a in view.files_of(None)],
        )


class ThreadSummary(Answer):
    reference: str
    category: str
    team: str
    anonymous: bool
    follow_up: bool
    received_at: Timestamp
    last_reporter_message_at: Timestamp | None
    status: Literal["open", "closed", "contacted"]
    assignee: str | None
    reply_due_by: Timestamp | None
    escalation: Literal["none", "nearing", "overdue"]
    statutory: Annotated[
        Literal["none", "nearing", "overdue"],
        Field(
            description="The statutory clocks' mark (acknowledgement in 7 days, feedback in 3 "
            "months), beside the reply promise's `escalation`; none without them."
        ),
    ] = "none"

    @staticmethod
    def fields(t: threads.ThreadView | threads.InboxRow) -> dict[str, Any]:
        return {name: getattr(t, name) for name in ThreadSummary.model_fields}


class ThreadPage(Answer):
    threads: list[ThreadSummary]
    next_page: int | None


class Note(Answer):
    author: str | None
    body: str
    created_at: Timestamp


class EarlierReport(Answer):
    """What the reporter said of a report they made before (the "Possibly linked" panel)."""

    reference: Annotated[str | None, Field(description="As the reporter typed it.")]
    details: str | None
    names: Annotated[
        str | None,
        Field(
            description="The thread the reference names, only when the caller may see it; "
            "null otherwise, whether or not it exists."
        ),
    ]

    @classmethod
    def of(cls, earlier: threads.EarlierReport | None) -> EarlierReport | None:
        if earlier is None:
            return None
        names = earlier.match.reference if earlier.match else None
        return cls(reference=earlier.reference, details=earlier.details, names=names)


Statutory = Annotated[Timestamp | None, Field(description="Null without the statutory clocks.")]


class StaffThread(ThreadSummary):
    acknowledge_by: Statutory = None
    acknowledged_at: Statutory = None
    feedback_due_by: Statutory = None
    feedback_at: Statutory = None
    auto_close_at: Annotated[
        Timestamp | None, Field(description="When it closes for silence; null if it will not.")
    ] = None
    description: str
    contact: dict[str, Any] | None
    messages: list[StaffMessage]
    attachments: Annotated[list[StaffAttachment], Field(description="The report's own files.")] = []
    notes: list[Note]
    earlier: Annotated[
        EarlierReport | None,
        Field(description="Only when the reporter said it is about a report they made before."),
    ]
    linked: Annotated[
        list[str],
        Field(description="References of the linked threads the caller may see."),
    ]

    @classmethod
    def of(cls, view: threads.ThreadView) -> StaffThread:
        return cls(
            **cls.fields(view),
            acknowledge_by=view.acknowledge_by,
            acknowledged_at=view.acknowledged_at,
            feedback_due_by=view.feedback_due_by,
            feedback_at=view.feedback_at,
            auto_close_at=view.auto_close_at,
            description=view.description or "",
            contact=view.contact,
            messages=[StaffMessage.of(m, view.files_of(m.id)) for m in view.messages],
            attachments=[StaffAttachment.of(a) for a in view.files_of(None)],
            notes=[Note(author=n.author, body=n.body, created_at=n.created_at) for n in view.notes],
            earlier=EarlierReport.of(view.earlier),
            linked=[link.other.reference for link in view.links],
        )


class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """``application/problem+json`` (RFC 9457), written by ``webapp.errors.problem``."""

    type: str
    title: str
    status: int
    detail: str | SkipJsonSchema[None] = None
    errors: list[FieldProblem] | SkipJsonSchema[None] = None


Count = Annotated[
    int | None,
    Field(description="null when suppressed: never a number below suppressed_below"),
]
Hours = Annotated[
    float | None, Field(description="working hours; null when fewer than 5 threads replied")
]


class StatisticsFigures(Answer):
    received: Count
    anonymous: Count
    with_contact: Count
    follow_up: Count
    replied_within_target: Count
    median_first_reply_working_hours: Hours
    p90_first_reply_working_hours: Hours
    share_within_target: Annotated[
        float | None,
        Field(description="replied_within_target ÷ (follow_up + with_contact); null if hidden"),
    ]
    open: Count
    closed: Count
    overdue: Count

    @staticmethod
    def fields(f: statistics.Figures) -> dict[str, Any]:
        return {
            "received": f.received,
            "anonymous": f.anonymous,
            "with_contact": f.with_contact,
            "follow_up": f.follow_up,
            "replied_within_target": f.replied_within_target,
            "median_first_reply_working_hours": f.median_hours,
            "p90_first_reply_working_hours": f.p90_hours,
            "share_within_target": f.share_within_target,
            "open": f.open,
            "closed": f.closed,
            "overdue": f.overdue,
        }


class StatisticsRow(StatisticsFigures):
    month: Annotated[str, Field(pattern=r"^[0-9]{4}-[0-9]{2}$")]
    team: str
    category: str


class StatisticsAnswer(Answer):
    suppressed_below: int
    rows: list[StatisticsRow]
    totals: StatisticsFigures

    @classmethod
    def of(cls, found: statistics.Statistics) -> StatisticsAnswer:
        rows = [
            StatisticsRow(
                month=r.month.isoformat()[:7],
                team=r.team,
                category=r.category,
                **StatisticsFigures.fields(r.figures),
            )
            for r in found.rows
        ]
        totals = StatisticsFigures(**StatisticsFigures.fields(found.totals))
        return cls(suppressed_below=found.suppressed_below, rows=rows, totals=totals)


class Upload(Answer):
    """``POST /api/v1/uploads``: the id to put in ``attachments``, and what the file is."""

    upload_id: Annotated[
        str,
        Field(
            description="Random (128 bits), bound to the uploader, usable once; it expires "
            "after 60 minutes unused. Only its HMAC is stored: keep it to attach the file."
        ),
    ]
    size: int
    type: Annotated[str, Field(description="The type judged by content: jpeg, png, pdf, ...")]

    @classmethod
    def of(cls, done: Uploaded) -> Upload:
        return cls(upload_id=done.upload_id, size=done.size, type=done.type.value)


class Released(Answer):
    state: Literal["released"]


RESPONSE_MODELS: tuple[type[BaseModel], ...] = (
    Upload,
    Released,
    Category,
    Receipt,
    Session,
    Sent,
    NoteAdded,
    Done,
    ReporterThread,
    ThreadPage,
    StaffThread,
    StatisticsAnswer,
    Problem,
)


def ics_response(data: bytes | None) -> web.Response:
    """The reminder as a download; ReminderNotReady (503 with Retry-After, as a page or a
    problem: webapp.errors) while a worker is still making it."""
    if data is None:
        raise ReminderNotReady()
    return web.Response(
        body=data,
        content_type="text/calendar",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="reminder.ics"'},
    )


async def latest_reminder(request: web.Request, thread_id: UUID) -> web.Response:
    """The reporter's latest reminder file for their thread (``?include_address=1``: with the
    organisation's address), for the messaging page and the API alike."""
    include_address = request.query.get("include_address") == "1"
    data = await reminders.latest(request.app[CTX], thread_id, include_address=include_address)
    return ics_response(data)
