"""``POST /api/v1/reports`` (CONTRACTS §3) as msgspec Structs.

msgspec checks shape only (JSON types, unknown fields) and stops at the first mismatch; it has no
per-field validators and no validation context (the categories come from the database). So the
Structs declare the shape and the schema, and ``draft_from`` applies today's rules to the decoded
Struct, collecting every error as ``validation.report_from_json`` does. Required fields default
to ``None`` so that a missing one is reported with the others, not alone; the schema gets its
``required`` list back in ``schema()``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from bench.models import legacy_validation as validation
from bench.models.legacy_validation import ReportDraft
from confide.errors import FieldError, ValidationFailed

_EMAIL_MESSAGE = "Enter an email address in the correct format, like name@example.com"
_PHONE_MESSAGE = (
    "Enter a UK phone number, like 07700 900 982, or an international one starting with +"
)


class ContactIn(Struct, kw_only=True):  # unknown keys are ignored, as contact_from does
    name: Annotated[
        str | None,
        Meta(
            description="The reporter's name, if they give it.",
            extra_json_schema={"maxLength": validation.NAME_MAX},
            extra={"type_message": "Your name must be text"},
        ),
    ] = None
    email: Annotated[
        str | None,
        Meta(
            description="Checked by syntax only (no DNS).",
            extra_json_schema={"maxLength": 254},
            extra={"type_message": _EMAIL_MESSAGE},
        ),
    ] = None
    phone: Annotated[
        str | None,
        Meta(
            description="UK or international; stored in E.164.",
            extra_json_schema={"maxLength": 40},
            extra={"type_message": _PHONE_MESSAGE},
        ),
    ] = None


# Limits are documented with extra_json_schema, not enforced with Meta(max_length=...): today's
# limit counts the text after cleaning (NFC, trimmed), which msgspec cannot do.
class ReportIn(Struct, kw_only=True, forbid_unknown_fields=True):
    category: Annotated[
        str | None,
        Meta(
            description="One of the ids of `GET /api/v1/categories`.",
            extra={"type_message": "Choose one of the categories"},
        ),
    ] = None
    description: Annotated[
        str | None,
        Meta(
            description="What happened, in the reporter's words.",
            extra_json_schema={"minLength": 1, "maxLength": validation.DESCRIPTION_MAX},
            extra={"type_message": "What happened must be text"},
        ),
    ] = None
    occurred: Annotated[
        str | None,
        Meta(
            description="When it happened, in any words.",
            extra_json_schema={"maxLength": validation.SHORT_MAX},
            extra={"type_message": "When it happened must be text"},
        ),
    ] = None
    location: Annotated[
        str | None,
        Meta(
            description="Where it happened, in any words.",
            extra_json_schema={"maxLength": validation.SHORT_MAX},
            extra={"type_message": "Where it happened must be text"},
        ),
    ] = None
    anonymous: Annotated[
        bool | None,
        Meta(
            description="True: no contact details; a code is the only way back.",
            extra={"type_message": "Must be true or false"},
        ),
    ] = None
    follow_up: Annotated[
        bool | None,
        Meta(
            description="An anonymous reporter who wants replies gets a code.",
            extra={"type_message": "Must be true or false"},
        ),
    ] = None
    contact: Annotated[
        ContactIn | None,
        Meta(
            description="Only when `anonymous` is false.",
            extra={"type_message": "Contact details must be an object"},
        ),
    ] = None


REQUIRED = ("category", "description", "anonymous")
_DECODER = msgspec.json.Decoder(ReportIn)
_AT = re.compile(r"^(?P<what>.*) - at `\$(?P<path>[^`]*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`$")


def _type_messages() -> dict[str, str]:
    """``{"contact.email": message}`` from the Meta(extra=...) of each field."""
    messages: dict[str, str] = {}

    def walk(info: msgspec.inspect.StructType, prefix: str) -> None:
        for field in info.fields:
            kind = field.type
            metas = kind.extra if isinstance(kind, msgspec.inspect.Metadata) else None
            if isinstance(kind, msgspec.inspect.Metadata):
                kind = kind.type
            if metas and "type_message" in metas:
                messages[prefix + field.encode_name] = metas["type_message"]
            if isinstance(kind, msgspec.inspect.UnionType):
                for member in kind.types:
                    if isinstance(member, msgspec.inspect.StructType):
                        walk(member, prefix + field.encode_name + ".")

    root = msgspec.inspect.type_info(ReportIn)
    assert isinstance(root, msgspec.inspect.StructType)
    walk(root, "")
    return messages


TYPE_MESSAGES = _type_messages()


def shape_error(exc: msgspec.ValidationError) -> FieldError:
    """msgspec's one error (``"Expected `str | null`, got `int` - at `$.description`"``) as a
    CONTRACTS §3 field. msgspec's wording is not an API: this parse is the weak point."""
    match = _AT.match(str(exc))
    what, path = (match["what"], match["path"]) if match else (str(exc), "")
    field = path.lstrip(".")
    if unknown := _UNKNOWN.match(what):
        return FieldError(".".join(filter(None, (field, unknown["name"]))), "Unknown field")
    if not field and what.startswith("Expected `object`"):
        return FieldError("", "The body must be a JSON object")
    return FieldError(field, TYPE_MESSAGES.get(field, what))


def draft_from(report: ReportIn, categories: set[str]) -> ReportDraft:
    """Today's rules on the decoded shape, every error at once (as report_from_json)."""
    errors: list[FieldError] = []
    if report.category is None or report.category not in categories:
        errors.append(FieldError("category", "Choose one of the categories"))
    description = validation.text_field(
        errors,
        "description",
        report.description,
        label="what happened",
        required=True,
        max_len=validation.DESCRIPTION_MAX,
        multiline=True,
    )
    occurred = validation.text_field(
        errors,
        "occurred",
        report.occurred,
        label="when it happened",
        required=False,
        max_len=validation.SHORT_MAX,
    )
    location = validation.text_field(
        errors,
        "location",
        report.location,
        label="where it happened",
        required=False,
        max_len=validation.SHORT_MAX,
    )
    if report.anonymous is None:
        errors.append(FieldError("anonymous", "Select yes or no"))
    follow_up = bool(report.follow_up)
    contact = None
    if report.anonymous is True and report.contact is not None:
        errors.append(FieldError("contact", "An anonymous report cannot include contact details"))
    elif report.anonymous is False:
        if follow_up:
            errors.append(
                FieldError("follow_up", "Anonymous follow-up is only for anonymous reports")
            )
        given = report.contact or ContactIn()
        contact = validation.contact_from(
            errors,
            {"name": given.name, "email": given.email, "phone": given.phone},
            prefix="contact.",
        )
    if errors:
        raise ValidationFailed(errors)
    assert report.category is not None and description is not None
    assert report.anonymous is not None
    return ReportDraft(
        report.category, description, occurred, location, report.anonymous, follow_up, contact
    )


class NotJson(ValueError):
    """The bytes are not JSON (a 400, not a 422)."""


def report_from_bytes(body: bytes, categories: set[str]) -> ReportDraft:
    try:
        report = _DECODER.decode(body)
    except msgspec.ValidationError as exc:  # a DecodeError too: catch it first
        raise ValidationFailed([shape_error(exc)]) from None
    except msgspec.DecodeError:
        raise NotJson("The body is not valid JSON.") from None
    return draft_from(report, categories)


def report_from_data(data: Any, categories: set[str]) -> ReportDraft:
    try:
        report = msgspec.convert(data, ReportIn)
    except msgspec.ValidationError as exc:
        raise ValidationFailed([shape_error(exc)]) from None
    return draft_from(report, categories)


def schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """``(ref, components)`` for OpenAPI: ``#/components/schemas/...`` refs."""
    (ref,), components = msgspec.json.schema_components(
        [ReportIn], ref_template="#/components/schemas/{name}"
    )
    components["ReportIn"]["required"] = list(REQUIRED)
    return ref, components
