"""The OpenAPI 3.1 document served at /api/v1/openapi.json (CONTRACTS §3), generated.

The schemas come from the models (``confide.models`` for requests, ``webapp.responses`` for
answers); the operations from the table ``OPERATIONS`` below, one entry per route. Adding a
field means changing its model; adding a route means one row here (``tests/test_api_spec.py``
fails on a route that has none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import (
    GenerateJsonSchema,
    JsonSchemaMode,
    JsonSchemaValue,
    models_json_schema,
)
from pydantic_core import core_schema

from confide import idempotency, models
from webapp import responses

REF = "#/components/schemas/{model}"


class OpenApiSchema(GenerateJsonSchema):
    """pydantic's JSON Schema, written as a person would write OpenAPI 3.1: no generated
    ``title`` on every property, and ``type: [string, "null"]`` for an optional value rather
    than an ``anyOf`` (the same meaning, as the hand-written document had it)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return _or_null(super().nullable_schema(schema))

    def union_schema(self, schema: core_schema.UnionSchema) -> JsonSchemaValue:
        return _or_null(super().union_schema(schema))

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        value = super().default_schema(schema)
        if value.get("default", ...) is None and "null" not in value.get("type", ["null"]):
            del value["default"]  # absent, never null (SkipJsonSchema[None] in the model)
        return value

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        value = super().model_schema(schema)
        value.pop("title", None)
        return value


def _or_null(value: JsonSchemaValue) -> JsonSchemaValue:
    options = value.get("anyOf")
    if not options or len(options) != 2 or {"type": "null"} not in options:
        return value
    other = next(o for o in options if o != {"type": "null"})
    if not isinstance(other.get("type"), str):
        return value  # a $ref or an enum: keep the anyOf
    rest = {k: v for k, v in value.items() if k != "anyOf"}
    return {**other, **rest, "type": [other["type"], "null"]}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": _ref("Problem")}},
    }


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": REF.format(model=name)}


def _json(model: type[BaseModel] | None, description: str, *, many: bool = False) -> Any:
    if model is None:
        return {"description": description}
    schema = _ref(model.__name__)
    if many:
        schema = {"type": "array", "items": schema}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
# What a client does next with a receipt or a session (OpenAPI links; schemathesis follows them
# in `make chaos`: submit -> log in -> message, and the staff reply to the same thread).
RECEIPT_LINKS = {
    "LogIn": {
        "operationId": "reporterLogin",
        "description": "Log in with the one-time code (anonymous reports with follow-up)",
        "requestBody": {"code": "$response.body#/code"},
    },
    "StaffReply": {
        "operationId": "staffThreadMessages",
        "description": "A case worker replies to this report (staff bearer token)",
        "parameters": {"path.reference": "$response.body#/reference"},
    },
}
SESSION_LINKS = {
    "Message": {
        "operationId": "reporterMessage",
        "description": "Send a message, with this token as the bearer token",
    },
    "Thread": {
        "operationId": "reporterThread",
        "description": "Read the report and its messages, with this token as the bearer token",
    },
}
IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "16 to 255 visible ASCII characters, scoped to its endpoint and author. "
    "A repeat with the same request returns the first answer (200); with a different request "
    "422 (type ending /idempotency-key-reused); while the first is still running 409.",
    "schema": {
        "type": "string",
        "minLength": idempotency.KEY_MIN,
        "maxLength": idempotency.KEY_MAX,
        "pattern": "^[!-~]+$",
    },
}
REFERENCE = {"name": "reference", "in": "path", "required": True, "schema": {"type": "string"}}
THREAD_STATES = ["awaiting", "open", "closed", "overdue", "nearing", "mine", "new"]

# Answers that many operations share.
AUTH = {"401": "No valid session or token", "404": "Not found, or not yours to see"}
BODY = {
    "400": "Malformed JSON or invalid UTF-8",
    "413": "Body over 1 MiB",
    "415": "Not application/json",
    "422": "Invalid fields, listed in errors[]",
}
NO_SESSION = {"401": "No session"}
OPS_READ_NONE = {"403": "Your role reads no threads (ops)"}
ACTION = {
    "403": "Your role cannot do this: ops reads no thread, and on a restricted thread only "
    "managers change the assignee, team or restriction",
    "409": "The thread is closed or has no follow-up",
}
REPEAT = "A repeat of the same Idempotency-Key and body"
ATTACHING = {
    "413": "Body over 1 MiB, or the files together over the organisation's limit (default 50 MiB)",
    "422": "Invalid fields, listed in errors[]; an upload id unknown, used, expired or not "
    "yours (field attachments.N), or more files than allowed (default 10)",
}
ATTACHMENT_ID = {
    "name": "attachment_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
# The file's own type, with Content-Disposition: attachment and its neutral name,
# X-Content-Type-Options: nosniff and Content-Security-Policy: sandbox.
FILE_CONTENT = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}


@dataclass(frozen=True)
class Op:
    """One operation: what it takes and what it answers (``ok``: status -> (model, text))."""

    method: str
    path: str
    operation_id: str
    summary: str
    ok: dict[str, tuple[type[BaseModel] | None, str]]
    body: type[models.Body] | None = None
    problems: dict[str, str] = field(default_factory=dict)
    bearer: bool = False
    parameters: tuple[dict[str, Any], ...] = ()
    links: dict[str, Any] | None = None
    many: bool = False
    content: dict[str, Any] | None = None
    """The first answer's content, when it is not a model (a calendar file)."""
    request_content: dict[str, Any] | None = None
    """The request body's content, when it is not a JSON model (a multipart upload)."""


def _action(
    name: str,
    summary: str,
    body: type[models.Body],
    ok: dict[str, tuple[type[BaseModel] | None, str]] | None = None,
    parameters: tuple[dict[str, Any], ...] = (REFERENCE,),
) -> Op:
    """A staff thread action: ``POST /api/v1/staff/threads/{reference}/<name>``."""
    return Op(
        "post",
        f"/api/v1/staff/threads/{{reference}}/{name}",
        f"staffThread{name.title()}",
        summary,
        ok or {"200": (responses.Done, "Done")},
        body=body,
        bearer=True,
        parameters=parameters,
        problems={**ACTION, **AUTH, **BODY},
    )


OPERATIONS: tuple[Op, ...] = (
    Op(
        "get",
        "/api/v1/categories",
        "listCategories",
        "The categories a report can have",
        {"200": (responses.Category, "The categories a report can have")},
        many=True,
    ),
    Op(
        "post",
        "/api/v1/reports",
        "createReport",
        "Submit a report, anonymously or with contact details",
        {
            "201": (responses.Receipt, "Received and committed"),
            "200": (
                responses.Receipt,
                "A retry with the same Idempotency-Key and request: the same reference. `code` is "
                "an additional code that works beside the earlier ones within 10 minutes of the "
                "first submission, before any login and while the report has fewer than 3 codes; "
                "otherwise null (the first code still works)",
            ),
        },
        body=models.NewReport,
        parameters=(IDEMPOTENCY,),
        links=RECEIPT_LINKS,
        problems={
            **BODY,
            **ATTACHING,
            "409": "The first request with this Idempotency-Key is still running; see Retry-After",
            "429": "Too many submissions; see Retry-After",
            "503": "A dependency is down and nothing was accepted",
        },
    ),
    Op(
        "post",
        "/api/v1/reporter/session",
        "reporterLogin",
        "Log in with the code",
        {"200": (responses.Session, "Logged in")},
        body=models.ReporterLogin,
        links=SESSION_LINKS,
        problems={
            "401": "Not recognised (reveals nothing more)",
            "429": "Too many attempts; see Retry-After",
            **BODY,
        },
    ),
    Op(
        "delete",
        "/api/v1/reporter/session",
        "reporterLogout",
        "Log out",
        {"204": (None, "Logged out")},
        bearer=True,
        problems=NO_SESSION,
    ),
    Op(
        "get",
        "/api/v1/reporter/thread",
        "reporterThread",
        "The reporter's own report and its messages",
        {"200": (responses.ReporterThread, "The reporter's own report")},
        bearer=True,
        problems=AUTH,
    ),
    Op(
        "post",
        "/api/v1/reporter/messages",
        "reporterMessage",
        "Send a message to the case workers",
        {"201": (responses.Sent, "Committed"), "200": (responses.Sent, REPEAT)},
        body=models.NewReporterMessage,
        bearer=True,
        parameters=(IDEMPOTENCY,),
        problems={"409": "The thread is closed", **AUTH, **BODY, **ATTACHING},
    ),
    Op(
        "get",
        "/api/v1/reporter/attachments/{attachment_id}",
        "reporterAttachment",
        "Download a file of the reporter's own thread (the stripped copy)",
        {"200": (None, "The stripped file, as an attachment (nosniff, CSP sandbox)")},
        bearer=True,
        parameters=(ATTACHMENT_ID,),
        problems={
            "409": "Being prepared, or could not be made safe (a reporter is never served an "
            "unstripped file)",
            **AUTH,
        },
        content=FILE_CONTENT,
    ),
    Op(
        "post",
        "/api/v1/uploads",
        "upload",
        "Upload one file to attach to a report or message (streamed; type judged by content)",
        {"201": (responses.Upload, "Stored encrypted, waiting to be attached")},
        problems={
            "400": "Not a multipart body with a part named file",
            "401": "A Bearer token that is not valid (send none to upload anonymously)",
            "403": "Your role reads no threads (ops)",
            "413": "Over the organisation's per-file limit (default 20 MiB), type "
            "ending /file-too-large",
            "415": "Not multipart/form-data, or a type not allowed, judged by content (type "
            "ending /type-not-allowed): a .jpg that is really a program is refused",
            "422": "An image whose header says it decodes to more than 80 megapixels (an "
            "image bomb), type ending /image-too-large; or a file whose body does not parse as "
            "its type (truncated, a bad checksum, no end record, binary data in a text file), type ending "
            "/file-damaged",
        },
        request_content={
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    ),
    Op(
        "get",
        "/api/v1/reporter/reminder.ics",
        "reporterReminder",
        "The reply reminder as a calendar file",
        {"200": (None, "The latest calendar reminder")},
        bearer=True,
        parameters=({"name": "include_address", "in": "query", "schema": {"enum": ["0", "1"]}},),
        problems={"503": "Not ready yet; see Retry-After", **AUTH},
        content={"text/calendar": {"schema": {"type": "string"}}},
    ),
    Op(
        "post",
        "/api/v1/staff/session",
        "staffLogin",
        "Staff sign-in with e-mail, password and, when the account has one, a second factor",
        {"200": (responses.Session, "Logged in")},
        body=models.StaffLogin,
        problems={
            "401": "Wrong e-mail or password; or, with `type` ending `/second-factor-required` "
            "(no `otp` sent), `/second-factor-invalid` (a wrong, replayed or used authenticator "
            "or recovery code) or `/second-factor-enrolment-required` (the account must set up "
            "a second factor in the browser first)",
            "429": "Slowed down after failures (wrong passwords, or wrong second-factor codes "
            "for this account); see Retry-After",
            **BODY,
        },
    ),
    Op(
        "delete",
        "/api/v1/staff/session",
        "staffLogout",
        "Sign out",
        {"204": (None, "Logged out")},
        bearer=True,
        problems=NO_SESSION,
    ),
    Op(
        "get",
        "/api/v1/staff/threads",
        "staffThreads",
        "The inbox, 50 threads a page",
        {"200": (responses.ThreadPage, "50 threads a page")},
        bearer=True,
        parameters=(
            {"name": "state", "in": "query", "schema": {"enum": THREAD_STATES}},
            {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
            {"name": "q", "in": "query", "schema": {"type": "string"}},
        ),
        problems={**NO_SESSION, **OPS_READ_NONE, "422": "Unknown filter or page"},
    ),
    Op(
        "get",
        "/api/v1/staff/threads/{reference}",
        "staffThread",
        "One thread with its messages and notes",
        {"200": (responses.StaffThread, "The whole thread")},
        bearer=True,
        parameters=(REFERENCE,),
        problems={**OPS_READ_NONE, **AUTH},
    ),
    Op(
        "get",
        "/api/v1/staff/attachments/{attachment_id}",
        "staffAttachment",
        "Download a file (the stripped copy; a released file unstripped), audited",
        {"200": (None, "The file, as an attachment, sandboxed")},
        bearer=True,
        parameters=(ATTACHMENT_ID,),
        problems={"409": "Being prepared, or quarantined", **OPS_READ_NONE, **AUTH},
        content=FILE_CONTENT,
    ),
    Op(
        "get",
        "/api/v1/staff/attachments/{attachment_id}/preview",
        "staffAttachmentPreview",
        "An image's preview (re-encoded JPEG, inline, sandboxed), audited",
        {"200": (None, "The preview")},
        bearer=True,
        parameters=(ATTACHMENT_ID,),
        problems={
            "409": "Being prepared, or quarantined",
            **OPS_READ_NONE,
            "401": "No valid session or token",
            "404": "Not found, not yours to see, or no preview (not an image, or released)",
        },
        content={"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
    ),
    Op(
        "post",
        "/api/v1/staff/attachments/{attachment_id}/release",
        "staffAttachmentRelease",
        "Managers: release a file that could not be made safe; it is then served unstripped, "
        "to staff only (audited, with the reason)",
        {"200": (responses.Released, "Released (also when it was released already)")},
        body=models.ReleaseFile,
        bearer=True,
        parameters=(ATTACHMENT_ID,),
        problems={
            "403": "Only managers release files",
            "409": "Not quarantined (being prepared, or made safe)",
            **AUTH,
            **BODY,
        },
    ),
    _action(
        "messages",
        "Reply to the reporter",
        models.NewStaffReply,
        ok={"201": (responses.Sent, "Committed"), "200": (responses.Sent, REPEAT)},
        parameters=(REFERENCE, IDEMPOTENCY),
    ),
    _action(
        "notes",
        "Add an internal note",
        models.NewStaffMessage,
        ok={"201": (responses.NoteAdded, "Committed")},
    ),
    _action("status", "Open, close or mark as contacted", models.NewStatus),
    _action("team", "Move to another team", models.NewTeam),
    _action("assignee", "Assign to a member of the team, or unassign", models.NewAssignee),
    _action("restricted", "Restrict to the assignee and managers", models.NewRestriction),
    Op(
        "get",
        "/api/v1/staff/statistics",
        "staffStatistics",
        "Statistics per month, team and category, small counts suppressed (managers: their "
        "teams; admins: all)",
        {"200": (responses.StatisticsAnswer, "The suppressed table and its totals")},
        bearer=True,
        parameters=(
            {
                "name": "from",
                "in": "query",
                "description": "First month; default 11 months before `to`",
                "schema": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
            },
            {
                "name": "to",
                "in": "query",
                "description": "Last month; default this month",
                "schema": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
            },
        ),
        problems={
            **NO_SESSION,
            "403": "Only managers and admins read statistics",
            "422": "A month that is not YYYY-MM, from after to, or over 120 months",
        },
    ),
    Op("get", "/healthz", "healthz", "Liveness", {"200": (None, "The process runs")}),
    Op(
        "get",
        "/readyz",
        "readyz",
        "Readiness",
        {"200": (None, "PostgreSQL answers"), "503": (None, "PostgreSQL is down")},
    ),
)


def _operation(op: Op) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for status, (model, description) in op.ok.items():
        answers[status] = _json(model, description, many=op.many)
    if op.content is not None:
        answers[next(iter(op.ok))]["content"] = op.content
    if op.links is not None:
        answers[next(iter(op.ok))]["links"] = op.links
    answers.update({status: _problem(text) for status, text in op.problems.items()})
    result: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "security": BEARER if op.bearer else [],
    }
    if op.parameters:
        result["parameters"] = list(op.parameters)
    if op.request_content is not None:
        result["requestBody"] = {"required": True, "content": op.request_content}
    elif op.body is not None:
        result["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(op.body.__name__)}},
        }
    result["responses"] = answers
    return result


def _components() -> dict[str, Any]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (m, "validation") for m in models.REQUEST_MODELS
    ]
    wanted += [(m, "serialization") for m in responses.RESPONSE_MODELS]
    _, top = models_json_schema(wanted, ref_template=REF, schema_generator=OpenApiSchema)
    schemas: dict[str, Any] = top["$defs"]
    return dict(sorted(schemas.items()))


@cache
def document() -> dict[str, Any]:
    """The document; built once per process (a few ms), then the same object: do not mutate."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Confide API",
            "version": "1",
            "description": "Anonymous incident reporting. Errors are application/problem+json; "
            "clients must ignore fields they do not know.",
        },
        "servers": [{"url": "/", "description": "This Confide"}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _components(),
        },
    }
