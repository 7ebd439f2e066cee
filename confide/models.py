"""Request models (pydantic v2): one declaration per request body of CONTRACTS §3.

Each model is the single description of its shape: it parses the JSON the API was sent (after
``webapp.forms.read_json``) and the answers of the HTML report pages, gives the 422 errors with
dotted field names (``contact.email``), and is the schema of the OpenAPI document
(``webapp.openapi``). The services take the validated models.

The rules run as ``BeforeValidator``s with our own messages, so every field's error is reported
at once and in declaration order; cross-field rules read the fields declared before them
(``info.data``), so they are reported *with* the other errors. Why pydantic and not msgspec:
``docs/architecture.md`` ("Request and response models").
"""

import re
import unicodedata
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, NoReturn, Self, TypeVar

import phonenumbers
from email_validator import EmailNotValidError, validate_email
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

from confide.errors import FieldError, ValidationFailed

DESCRIPTION_MAX = 20_000
MESSAGE_MAX = 10_000
SHORT_MAX = 500
NAME_MAX = 200
EMAIL_MAX = 254
PHONE_MAX = 40
EARLIER_REFERENCE_MAX = 100
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
EMAIL_FORMAT = "Enter an email address in the correct format, like name@example.com"
PHONE_FORMAT = (
    "Enter a UK phone number, like 07700 900 982, or an international one starting with +"
)


def _fail(message: str, field: str | None = None) -> NoReturn:
    """Refuse a value with our message; ``field`` moves the error to a field of the model that
    raised it (a model rule about one of its fields)."""
    raise PydanticCustomError("confide", message, {"field": field} if field else None)


def clean_text(value: str, *, multiline: bool) -> str:
    """NFC, normalised newlines, no control characters (NUL included), trimmed."""
    text = unicodedata.normalize("NFC", value).replace("\r\n", "\n").replace("\r", "\n")
    if not multiline:
        text = text.replace("\n", " ").replace("\t", " ")
    return _CONTROL.sub("", text).strip()


def text(label: str, *, required: bool, max_len: int, multiline: bool = False) -> Any:
    """A text field's rule: cleaned, then its limit counted on the cleaned text; blank is None."""

    def check(value: Any) -> str | None:
        if value is None or value == "":
            if required:
                _fail(f"Enter {label}")
            return None
        if not isinstance(value, str):
            _fail(f"{label.capitalize()} must be text")
        cleaned = clean_text(value, multiline=multiline)
        if not cleaned:
            if required:
                _fail(f"Enter {label}")
            return None
        if len(cleaned) > max_len:
            _fail(f"{label.capitalize()} must be {max_len:,} characters or fewer")
        return cleaned

    return BeforeValidator(check)


def email_address(value: Any) -> str | None:
    """An e-mail address, normalised; blank is None. Syntax only: no DNS look-up, which would
    leak the domain and be slow (CONTRACTS §3)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > EMAIL_MAX:
        _fail(EMAIL_FORMAT)
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError:
        _fail(EMAIL_FORMAT)
    return str(result.normalized)


def email_field(errors: list[FieldError], field: str, value: Any) -> str | None:
    """:func:`email_address` for the services that check one address by hand (staff, admin)."""
    try:
        return email_address(value)
    except PydanticCustomError as exc:
        errors.append(FieldError(field, exc.message()))
        return None


def phone_number(value: Any) -> str | None:
    """A UK or international phone number in E.164; blank is None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > PHONE_MAX:
        _fail(PHONE_FORMAT)
    try:
        number = phonenumbers.parse(clean_text(value, multiline=False), "GB")
    except phonenumbers.NumberParseException:
        _fail(PHONE_FORMAT)
    # "Possible" (right length for its country), not "valid": numbering plans change faster than
    # the library, and a real reporter must never be refused for a number that exists.
    if not phonenumbers.is_possible_number(number):
        _fail(PHONE_FORMAT)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def strict_bool(value: Any) -> bool | None:
    """A JSON ``true`` or ``false``, nothing that merely looks like one (``"true"``, ``1``)."""
    if value is None or isinstance(value, bool):
        return value
    _fail("Must be true or false")


def _string(message: str) -> Any:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            _fail(message)
        return value

    return BeforeValidator(check)


def _one_of(choices: tuple[str, ...], message: str) -> Any:
    def check(value: Any) -> str:
        if value not in choices:
            _fail(message)
        return str(value)

    return BeforeValidator(check)


def _required_bool(message: str) -> Any:
    """A JSON bool that must be there: ``message`` when it is null or absent."""

    def check(value: Any) -> bool:
        if value is None:
            _fail(message)
        return bool(strict_bool(value))

    return BeforeValidator(check)


def _string_or_null(message: str) -> Any:
    def check(value: Any) -> str | None:
        if value is not None and not isinstance(value, str):
            _fail(message)
        return value

    return BeforeValidator(check)


# ``str`` with its limit, for the schema: the ``text`` rule enforces it first, after cleaning.
# On the ``str`` member, not the union: pydantic cannot apply ``max_length`` to None.
Name = Annotated[str, StringConstraints(max_length=NAME_MAX)]
Email = Annotated[str, StringConstraints(max_length=EMAIL_MAX)]
Phone = Annotated[str, StringConstraints(max_length=PHONE_MAX)]
Short = Annotated[str, StringConstraints(max_length=SHORT_MAX)]


class Body(BaseModel):
    """A JSON object body. Unknown keys are ignored unless the model forbids them."""

    model_config = ConfigDict(frozen=True)

    MISSING: ClassVar[Mapping[str, str]] = {}
    """The message for a required field that is absent (pydantic's "missing" runs no rule)."""


class Contact(Body):
    """How to reach the reporter; at least an e-mail address or a phone number."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        Name | None,
        text("your name", required=False, max_len=NAME_MAX),
        Field(description="The reporter's name, if they give it."),
    ] = None
    email: Annotated[
        Email | None,
        BeforeValidator(email_address),
        Field(
            description="Checked by syntax only (no DNS).", json_schema_extra={"format": "email"}
        ),
    ] = None
    phone: Annotated[
        Phone | None,
        BeforeValidator(phone_number),
        Field(description="UK or international; stored as E.164"),
    ] = None

    @model_validator(mode="after")
    def _email_or_phone(self) -> Self:
        if not self.email and not self.phone:
            _fail("Enter an email address or a phone number", "email")
        return self


def _category(value: Any, info: ValidationInfo) -> str:
    """One of the organisation's categories, given as ``context={"categories": {...}}``."""
    categories: set[str] = (info.context or {}).get("categories", set())
    if not isinstance(value, str) or value not in categories:
        _fail("Choose one of the categories")
    return value


def _follow_up(value: Any, info: ValidationInfo) -> bool:
    follow_up = strict_bool(value) or False
    if follow_up and info.data.get("anonymous") is False:
        _fail("Anonymous follow-up is only for anonymous reports")
    return follow_up


def _contact(value: Any, info: ValidationInfo) -> Any:
    if "anonymous" not in info.data:  # anonymous itself was refused: its error says enough
        return None
    if info.data["anonymous"] is True:
        if value is not None:
            _fail("An anonymous report cannot include contact details")
        return None
    if value is None:
        value = {}  # anonymous false needs contact details: Contact says which are missing
    if not isinstance(value, Mapping):
        _fail("Contact details must be an object")
    return value


def _about_earlier(value: Any, info: ValidationInfo) -> Any:
    """The earlier report's words only with ``made_before`` (else the two disagree)."""
    if value not in (None, "") and info.data.get("made_before") is False:
        _fail("Only for a report about one made before: set made_before to true")
    return value


UploadId = Annotated[str, StringConstraints(max_length=64)]
MAX_ATTACHMENT_IDS = 100  # the organisation's own limit (10 by default) is the service's 422
Attachments = Annotated[
    tuple[UploadId, ...],
    Field(
        max_length=MAX_ATTACHMENT_IDS,
        description="`upload_id`s of `POST /api/v1/uploads`, in order. Each is bound to its "
        "uploader and usable once; an unknown, used, expired or someone else's id gets 422 "
        "(field `attachments.N`). At most `[attachments] max_files` (10) files and "
        "`max_total_mib` (50 MiB) together.",
    ),
]
KeepFileNames = Annotated[
    bool,
    BeforeValidator(lambda value: bool(strict_bool(value))),
    Field(
        description="Keep the files' original names, encrypted, for staff. Otherwise (the "
        "default) only the neutral names `attachment-N.ext` exist."
    ),
]

EarlierReference = Annotated[str, StringConstraints(max_length=EARLIER_REFERENCE_MAX)]
Details = Annotated[str, StringConstraints(max_length=DESCRIPTION_MAX)]


class NewReport(Body):
    """A report in the reporter's own words (``POST /api/v1/reports``, CONTRACTS §3)."""

    model_config = ConfigDict(extra="forbid")
    MISSING: ClassVar[Mapping[str, str]] = {
        "category": "Choose one of the categories",
        "description": "Enter what happened",
        "anonymous": "Select yes or no",
    }

    category: Annotated[
        str,
        BeforeValidator(_category),
        Field(description="One of the ids of `GET /api/v1/categories`."),
    ]
    description: Annotated[
        str,
        text("what happened", required=True, max_len=DESCRIPTION_MAX, multiline=True),
        Field(
            description="What happened, in the reporter's words.",
            min_length=1,
            max_length=DESCRIPTION_MAX,
        ),
    ]
    occurred: Annotated[
        Short | None,
        text("when it happened", required=False, max_len=SHORT_MAX),
        Field(description="When it happened, in any words."),
    ] = None
    location: Annotated[
        Short | None,
        text("where it happened", required=False, max_len=SHORT_MAX),
        Field(description="Where it happened, in any words."),
    ] = None
    anonymous: Annotated[
        bool,
        _required_bool("Select yes or no"),
        Field(description="True: no contact details; a code is the only way back."),
    ]
    follow_up: Annotated[
        bool,
        BeforeValidator(_follow_up),
        Field(description="An anonymous reporter who wants replies gets a code."),
    ] = False
    contact: Annotated[
        Contact | None,
        BeforeValidator(_contact),
        # validate_default: an absent contact with anonymous false is an error too.
        Field(description="Only when `anonymous` is false.", validate_default=True),
    ] = None
    made_before: Annotated[
        bool,
        BeforeValidator(lambda value: strict_bool(value) or False),
        Field(
            description="The reporter says this is about a report they made before (a lost "
            "code). Only staff see it; it opens nothing of the earlier report."
        ),
    ] = False
    earlier_reference: Annotated[
        EarlierReference | None,
        BeforeValidator(_about_earlier),
        text("the earlier reference", required=False, max_len=EARLIER_REFERENCE_MAX),
        Field(
            description="The earlier report's reference, if they kept it, as they typed it "
            "(`R-` and 8 characters). Never looked up for the reporter: one not recognised is "
            "kept as text, with no error."
        ),
    ] = None
    earlier_details: Annotated[
        Details | None,
        BeforeValidator(_about_earlier),
        text(
            "what would help us recognise it",
            required=False,
            max_len=DESCRIPTION_MAX,
            multiline=True,
        ),
        Field(description="Anything that would help the team recognise the earlier report."),
    ] = None

    attachments: Attachments = ()
    keep_file_names: KeepFileNames = False

    @property
    def wants_code(self) -> bool:
        return self.anonymous and self.follow_up


class ReporterLogin(Body):
    """``POST /api/v1/reporter/session``: the code, checked by ``confide.codes``."""

    code: Annotated[str, Field(description="The code, as the reporter wrote it down.")]

    @model_validator(mode="before")
    @classmethod
    def _code_is_text(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or not isinstance(data.get("code"), str):
            _fail("Send the code as a string", "code")
        return data


class StaffLogin(Body):
    """``POST /api/v1/staff/session``: the password, and the second factor when the account has
    one (CONTRACTS §3; 401 ``/second-factor-required`` without it)."""

    email: str
    password: str
    otp: Annotated[
        str | None,
        Field(
            default=None,
            max_length=64,
            description="A 6-digit code from the staff member's authenticator app, or one of "
            "their recovery codes (each works once).",
        ),
    ] = None

    @model_validator(mode="before")
    @classmethod
    def _strings(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or not all(
            isinstance(data.get(name), str) for name in ("email", "password")
        ):
            _fail("Send email and password as strings", "email")
        if data.get("otp") is not None and not isinstance(data.get("otp"), str):
            _fail("Send otp as a string", "otp")
        return data


class NewMessage(Body):
    """A message or a note: ``POST /api/v1/reporter/messages`` and the staff thread's
    ``messages`` and ``notes``."""

    MISSING: ClassVar[Mapping[str, str]] = {"body": "Enter a message"}

    body: Annotated[
        str,
        text("a message", required=True, max_len=MESSAGE_MAX, multiline=True),
        Field(min_length=1, max_length=MESSAGE_MAX),
    ]


class NewReporterMessage(NewMessage):
    """``POST /api/v1/reporter/messages``: a message, with the reporter's own uploads."""

    attachments: Attachments = ()
    keep_file_names: KeepFileNames = False


class NewStaffMessage(NewMessage):
    """A case worker's message or note: ``POST /api/v1/staff/threads/{reference}/messages``
    and ``…/notes``."""

    feedback: Annotated[
        bool,
        BeforeValidator(lambda value: bool(strict_bool(value))),
        Field(
            description='"This is our feedback" ticked: the message is the statutory feedback '
            "(docs/lifecycle.md); on a note, it records feedback given outside Confide (a "
            "report with contact details). Optional; false when absent."
        ),
    ] = False


class NewStaffReply(NewStaffMessage):
    """``POST /api/v1/staff/threads/{reference}/messages``: a reply, with the member's own
    uploads (a note takes no files)."""

    attachments: Attachments = ()
    keep_file_names: KeepFileNames = False


class ReleaseFile(Body):
    """``POST /api/v1/staff/attachments/{id}/release``: a manager releases a file that could not
    be made safe; it is then served unstripped, to staff only. The reason is audited."""

    MISSING: ClassVar[Mapping[str, str]] = {"reason": "Say why this file is released"}

    reason: Annotated[
        str,
        text("why the file is released", required=True, max_len=1000, multiline=True),
        Field(min_length=1, max_length=1000),
    ]


class NewStatus(Body):
    MISSING: ClassVar[Mapping[str, str]] = {"status": "Choose open, closed or contacted"}

    status: Annotated[
        Literal["open", "closed", "contacted"],
        _one_of(("open", "closed", "contacted"), "Choose open, closed or contacted"),
    ]


class NewTeam(Body):
    MISSING: ClassVar[Mapping[str, str]] = {"team": "Choose one of the teams"}

    team: Annotated[str, _string("Choose one of the teams"), Field(description="A team's slug.")]


class NewAssignee(Body):
    MISSING: ClassVar[Mapping[str, str]] = {"email": "A string or null"}

    email: Annotated[
        str | None,
        _string_or_null("A string or null"),
        Field(description="A member of the thread's team who reads threads; null unassigns."),
    ]


class NewRestriction(Body):
    MISSING: ClassVar[Mapping[str, str]] = {"restricted": "Must be true or false"}

    restricted: Annotated[
        bool,
        _required_bool("Must be true or false"),
        Field(description="Managers only: limit the thread to its assignee and the managers."),
    ]


SUPPORT_TITLE_MAX = 120
SUPPORT_BODY_MAX = 50_000
_PAGE_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
RESERVED_PAGE_SLUGS = frozenset({"new"})  # /staff/support/new is the form for a new page


def _page_slug(value: Any) -> str:
    slug = value.strip() if isinstance(value, str) else ""
    if not _PAGE_SLUG.match(slug) or slug in RESERVED_PAGE_SLUGS:
        _fail("Enter an address of lower-case letters, digits and hyphens, like need-help")
    return slug


def _version_number(value: Any) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 10:
        return int(value)
    _fail("The page's version was not recognised: open the page again")


class SupportPageEdit(Body):
    """An admin's support page form (``POST /staff/support``, an HTML form only): the page's
    address, title and Markdown, and the version the admin started from (0 for a new page)."""

    MISSING: ClassVar[Mapping[str, str]] = {
        "slug": "Enter an address of lower-case letters, digits and hyphens, like need-help",
        "title": "Enter a title",
        "body": "Enter the page's text",
        "version": "The page's version was not recognised: open the page again",
    }

    slug: Annotated[str, BeforeValidator(_page_slug)]
    title: Annotated[
        str,
        text("a title", required=True, max_len=SUPPORT_TITLE_MAX),
        Field(max_length=SUPPORT_TITLE_MAX),
    ]
    body: Annotated[
        str,
        text("the page's text", required=True, max_len=SUPPORT_BODY_MAX, multiline=True),
        Field(max_length=SUPPORT_BODY_MAX),
    ]
    version: Annotated[int, BeforeValidator(_version_number)]


M = TypeVar("M", bound=Body)


def field_errors(exc: ValidationError, model: type[Body]) -> list[FieldError]:
    """pydantic's errors as CONTRACTS §3 fields: dotted ``loc``, our messages, the model's
    order, unknown fields last."""
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
            errors.append(FieldError(field, model.MISSING.get(field, "Required")))
        elif kind in ("model_type", "model_attributes_type", "dict_type") and not loc:
            return [FieldError("", "The body must be a JSON object")]
        else:
            errors.append(FieldError(field, e["msg"]))
    return errors + sorted(unknown, key=lambda e: e.field)


def parse(model: type[M], data: Any, *, context: dict[str, Any] | None = None) -> M:
    """``data`` (parsed JSON, or a form's bound answers) as ``model``; else
    :class:`ValidationFailed` with every field's error."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise ValidationFailed(field_errors(exc, model)) from None


REQUEST_MODELS: tuple[type[Body], ...] = (
    NewReport,
    ReporterLogin,
    StaffLogin,
    NewMessage,
    NewReporterMessage,
    NewStaffMessage,
    NewStaffReply,
    ReleaseFile,
    NewStatus,
    NewTeam,
    NewAssignee,
    NewRestriction,
)
