"""``POST /api/v1/reports`` (CONTRACTS §3) as a pydantic v2 model, reproducing
``confide.services.validation.report_from_json`` exactly: messages, dotted fields, order, all errors.

The text rules (NFC, newlines, control characters, trimming, the limit counted after cleaning)
are those of ``validation``, called from ``BeforeValidator``s; the declaration adds what only a
model gives: the JSON Schema for OpenAPI, and one place per field.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bench.models import legacy_validation as validation
from bench.models.legacy_form import FIELD_STEP, STEPS, FormErrors
from bench.models.legacy_validation import Contact, ReportDraft
from confide.errors import FieldError, ValidationFailed


def _raise_first(errors: list[FieldError]) -> None:
    if errors:
        raise PydanticCustomError("confide", errors[0].message)


def _text(label: str, *, required: bool, max_len: int, multiline: bool = False) -> Any:
    def check(value: Any) -> str | None:
        errors: list[FieldError] = []
        text = validation.text_field(
            errors,
            "",
            value,
            label=label,
            required=required,
            max_len=max_len,
            multiline=multiline,
        )
        _raise_first(errors)
        return text

    return BeforeValidator(check)


def _email(value: Any) -> str | None:
    errors: list[FieldError] = []
    email = validation.email_field(errors, "", value)
    _raise_first(errors)
    return email


def _phone(value: Any) -> str | None:
    errors: list[FieldError] = []
    phone = validation.phone_field(errors, "", value)
    _raise_first(errors)
    return phone


def _strict_bool(*, required: bool) -> Any:
    def check(value: Any) -> bool | None:
        errors: list[FieldError] = []
        result = validation.bool_field(errors, "", value, required=required)
        _raise_first(errors)
        return result

    return BeforeValidator(check)


def _category(value: Any, info: ValidationInfo) -> str:
    categories: set[str] = (info.context or {}).get("categories", set())
    if not isinstance(value, str) or value not in categories:
        raise PydanticCustomError("confide", "Choose one of the categories")
    return value


def _follow_up(value: Any, info: ValidationInfo) -> bool:
    errors: list[FieldError] = []
    follow_up = validation.bool_field(errors, "", value, required=False) or False
    _raise_first(errors)
    if follow_up and info.data.get("anonymous") is False:
        raise PydanticCustomError("confide", "Anonymous follow-up is only for anonymous reports")
    return follow_up


def _contact(value: Any, info: ValidationInfo) -> Any:
    if "anonymous" not in info.data:  # anonymous itself was invalid: today ignores the contact
        return None
    if info.data["anonymous"] is True:
        if value is not None:
            raise PydanticCustomError(
                "confide", "An anonymous report cannot include contact details"
            )
        return None
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise PydanticCustomError("confide", "Contact details must be an object")
    return value


# ``str`` with its limit, for the schema; ``_text`` enforces the limit first, after cleaning.
# On the ``str`` member, not the union: pydantic cannot apply ``max_length`` to None.
Name = Annotated[str, StringConstraints(max_length=validation.NAME_MAX)]
Email = Annotated[str, StringConstraints(max_length=254)]
Phone = Annotated[str, StringConstraints(max_length=40)]
Short = Annotated[str, StringConstraints(max_length=validation.SHORT_MAX)]


# Messages for a required field that is absent (pydantic's "missing" runs no validator).
MISSING = {
    "category": "Choose one of the categories",
    "description": "Enter what happened",
    "anonymous": "Select yes or no",
}


class ContactIn(BaseModel):
    """How to reach the reporter; at least an e-mail address or a phone number."""

    model_config = ConfigDict(extra="ignore")  # today's contact_from ignores unknown keys

    name: Annotated[
        Name | None,
        _text("your name", required=False, max_len=validation.NAME_MAX),
        Field(description="The reporter's name, if they give it."),
    ] = None
    email: Annotated[
        Email | None,
        BeforeValidator(_email),
        Field(description="Checked by syntax only (no DNS)."),
    ] = None
    phone: Annotated[
        Phone | None,
        BeforeValidator(_phone),
        Field(description="UK or international; stored in E.164."),
    ] = None

    @model_validator(mode="after")
    def email_or_phone(self) -> ContactIn:
        if not self.email and not self.phone:
            # ctx "field" moves the error from "contact" to "contact.email", as today.
            raise PydanticCustomError(
                "confide", "Enter an email address or a phone number", {"field": "email"}
            )
        return self


class ReportIn(BaseModel):
    """A report from the reporter's own words; anonymous unless ``anonymous`` is false."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _from_form(cls, data: Any, info: ValidationInfo) -> Any:
        """The HTML question pages bind here too (``context={"form": True}``): their answers are
        flat strings, so only their names and radio values differ. Anything unexpected stays a
        string and is refused by the field's own rule, with the form's message."""
        if not (info.context or {}).get("form"):
            return data
        how = data.get("how")
        anonymous = {"anonymous": True, "contact": False}.get(how, how)
        bound = {key: data.get(key) for key in ("category", "description", "occurred", "location")}
        bound["anonymous"] = anonymous
        if anonymous is True:
            follow_up = data.get("follow_up")
            bound["follow_up"] = {"yes": True, "no": False}.get(follow_up, follow_up)
        elif anonymous is False:
            bound["contact"] = {
                "name": data.get("contact_name"),
                "email": data.get("contact_email"),
                "phone": data.get("contact_phone"),
            }
        return bound

    category: Annotated[
        str,
        BeforeValidator(_category),
        Field(description="One of the ids of `GET /api/v1/categories`."),
    ]
    description: Annotated[
        str,
        _text(
            "what happened",
            required=True,
            max_len=validation.DESCRIPTION_MAX,
            multiline=True,
        ),
        Field(
            description="What happened, in the reporter's words.",
            min_length=1,
            max_length=validation.DESCRIPTION_MAX,
        ),
    ]
    occurred: Annotated[
        Short | None,
        _text("when it happened", required=False, max_len=validation.SHORT_MAX),
        Field(description="When it happened, in any words."),
    ] = None
    location: Annotated[
        Short | None,
        _text("where it happened", required=False, max_len=validation.SHORT_MAX),
        Field(description="Where it happened, in any words."),
    ] = None
    anonymous: Annotated[
        bool,
        _strict_bool(required=True),
        Field(description="True: no contact details; a code is the only way back."),
    ]
    follow_up: Annotated[
        bool,
        BeforeValidator(_follow_up),
        Field(description="An anonymous reporter who wants replies gets a code."),
    ] = False
    contact: Annotated[
        ContactIn | None,
        BeforeValidator(_contact),
        # validate_default: an absent contact with anonymous false is an error, as today.
        Field(description="Only when `anonymous` is false.", validate_default=True),
    ] = None

    def draft(self) -> ReportDraft:
        contact = None
        if self.contact is not None:
            contact = Contact(self.contact.name, self.contact.email, self.contact.phone)
        return ReportDraft(
            self.category,
            self.description,
            self.occurred,
            self.location,
            self.anonymous,
            self.follow_up,
            contact,
        )


def field_errors(exc: ValidationError) -> list[FieldError]:
    """pydantic's errors as CONTRACTS §3 fields: dotted ``loc``, today's messages and order."""
    errors: list[FieldError] = []
    unknown: list[FieldError] = []
    for e in exc.errors(include_url=False, include_input=False):
        loc = [str(part) for part in e["loc"]]
        if e.get("ctx", {}).get("field"):
            loc.append(e["ctx"]["field"])
        field = ".".join(loc)
        kind = e["type"]
        if kind == "extra_forbidden":
            unknown.append(FieldError(field, "Unknown field"))
        elif kind == "missing":
            errors.append(FieldError(field, MISSING[field]))
        elif kind == "model_type" and not loc:
            return [FieldError("", "The body must be a JSON object")]
        else:
            errors.append(FieldError(field, e["msg"]))
    return errors + sorted(unknown, key=lambda e: e.field)


def report_from_data(data: Any, categories: set[str]) -> ReportDraft:
    """From the parsed body (``read_json``), as ``validation.report_from_json``."""
    try:
        model = ReportIn.model_validate(data, context={"categories": categories})
    except ValidationError as exc:
        raise ValidationFailed(field_errors(exc)) from None
    return model.draft()


# The pages ask in their own words where the API names a rule.
FORM_NAMES = {"anonymous": "how"}
FORM_MESSAGES = {
    "how": "Select how you would like to report",
    "category": "Select what your report is about",
    "follow_up": "Select yes if you would like us to reply",
}


def report_from_form(
    answers: dict[str, str], categories: set[str]
) -> tuple[ReportDraft | None, str | None, FormErrors]:
    """As ``report_flow.draft_or_first_bad_step``, in one pass: the first page with an error,
    and that page's errors under the form's field names."""
    try:
        model = ReportIn.model_validate(answers, context={"categories": categories, "form": True})
    except ValidationError as exc:
        items = []
        for e in field_errors(exc):
            name = FORM_NAMES.get(e.field, e.field.replace(".", "_"))
            items.append((name, FORM_MESSAGES.get(name, e.message)))
        step = min((FIELD_STEP[name] for name, _ in items), key=STEPS.index)
        return None, step, FormErrors([i for i in items if FIELD_STEP[i[0]] == step])
    return model.draft(), None, FormErrors([])


class NotJson(ValueError):
    """The bytes are not JSON (a 400, not a 422)."""


def report_from_bytes(body: bytes, categories: set[str]) -> ReportDraft:
    """Straight from the request body: pydantic parses (jiter) and validates in one pass."""
    try:
        model = ReportIn.model_validate_json(body, context={"categories": categories})
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise NotJson("The body is not valid JSON.") from None
        raise ValidationFailed(field_errors(exc)) from None
    return model.draft()
