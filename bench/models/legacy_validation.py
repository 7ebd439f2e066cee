"""Frozen copy of ``confide/services/validation.py`` as it was when the models were measured
(the "today" of RESULTS.md): the field rules of the HTML pages and the JSON API before
``confide.models`` replaced them. Kept so that the study can be re-run."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from confide.errors import FieldError, ValidationFailed

DESCRIPTION_MAX = 20_000
MESSAGE_MAX = 10_000
SHORT_MAX = 500
NAME_MAX = 200
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Contact:
    name: str | None
    email: str | None
    phone: str | None  # E.164


@dataclass(frozen=True)
class ReportDraft:
    category: str
    description: str
    occurred: str | None
    location: str | None
    anonymous: bool
    follow_up: bool
    contact: Contact | None


def clean_text(value: str, *, multiline: bool) -> str:
    """NFC, normalised newlines, no control characters (NUL included), trimmed."""
    text = unicodedata.normalize("NFC", value).replace("\r\n", "\n").replace("\r", "\n")
    if not multiline:
        text = text.replace("\n", " ").replace("\t", " ")
    return _CONTROL.sub("", text).strip()


def text_field(
    errors: list[FieldError],
    field: str,
    value: Any,
    *,
    label: str,
    required: bool,
    max_len: int,
    multiline: bool = False,
) -> str | None:
    if value is None or value == "":
        if required:
            errors.append(FieldError(field, f"Enter {label}"))
        return None
    if not isinstance(value, str):
        errors.append(FieldError(field, f"{label.capitalize()} must be text"))
        return None
    text = clean_text(value, multiline=multiline)
    if not text:
        if required:
            errors.append(FieldError(field, f"Enter {label}"))
        return None
    if len(text) > max_len:
        errors.append(
            FieldError(field, f"{label.capitalize()} must be {max_len:,} characters or fewer")
        )
        return None
    return text


def email_field(errors: list[FieldError], field: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 254:
        errors.append(
            FieldError(field, "Enter an email address in the correct format, like name@example.com")
        )
        return None
    try:
        # Syntax only: no DNS look-up, which would leak the domain and be slow (CONTRACTS §3).
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError:
        errors.append(
            FieldError(field, "Enter an email address in the correct format, like name@example.com")
        )
        return None
    return str(result.normalized)


def phone_field(errors: list[FieldError], field: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    message = "Enter a UK phone number, like 07700 900 982, or an international one starting with +"
    if not isinstance(value, str) or len(value) > 40:
        errors.append(FieldError(field, message))
        return None
    try:
        number = phonenumbers.parse(clean_text(value, multiline=False), "GB")
    except phonenumbers.NumberParseException:
        errors.append(FieldError(field, message))
        return None
    # "Possible" (right length for its country), not "valid": numbering plans change faster than
    # the library, and a real reporter must never be refused for a number that exists.
    if not phonenumbers.is_possible_number(number):
        errors.append(FieldError(field, message))
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def bool_field(errors: list[FieldError], field: str, value: Any, *, required: bool) -> bool | None:
    if value is None:
        if required:
            errors.append(FieldError(field, "Select yes or no"))
        return None
    if isinstance(value, bool):
        return value
    errors.append(FieldError(field, "Must be true or false"))
    return None


def report_from_json(data: Any, categories: set[str]) -> ReportDraft:
    """Validate ``POST /api/v1/reports``; raises :class:`ValidationFailed` with dotted field names."""
    if not isinstance(data, Mapping):
        raise ValidationFailed([FieldError("", "The body must be a JSON object")])
    errors: list[FieldError] = []
    category = data.get("category")
    if not isinstance(category, str) or category not in categories:
        errors.append(FieldError("category", "Choose one of the categories"))
    description = text_field(
        errors,
        "description",
        data.get("description"),
        label="what happened",
        required=True,
        max_len=DESCRIPTION_MAX,
        multiline=True,
    )
    occurred = text_field(
        errors,
        "occurred",
        data.get("occurred"),
        label="when it happened",
        required=False,
        max_len=SHORT_MAX,
    )
    location = text_field(
        errors,
        "location",
        data.get("location"),
        label="where it happened",
        required=False,
        max_len=SHORT_MAX,
    )
    anonymous = bool_field(errors, "anonymous", data.get("anonymous"), required=True)
    follow_up = bool_field(errors, "follow_up", data.get("follow_up"), required=False) or False
    contact_data = data.get("contact")
    contact: Contact | None = None
    if anonymous is True and contact_data is not None:
        errors.append(FieldError("contact", "An anonymous report cannot include contact details"))
    elif anonymous is False:
        if follow_up:
            errors.append(
                FieldError("follow_up", "Anonymous follow-up is only for anonymous reports")
            )
        if contact_data is None:
            contact_data = {}
        if not isinstance(contact_data, Mapping):
            errors.append(FieldError("contact", "Contact details must be an object"))
        else:
            contact = contact_from(errors, contact_data, prefix="contact.")
    unknown = set(data) - {
        "category",
        "description",
        "occurred",
        "location",
        "anonymous",
        "follow_up",
        "contact",
    }
    for name in sorted(unknown):
        errors.append(FieldError(str(name), "Unknown field"))
    if errors:
        raise ValidationFailed(errors)
    assert category is not None and description is not None and anonymous is not None
    return ReportDraft(
        str(category), description, occurred, location, anonymous, bool(follow_up), contact
    )


def contact_from(
    errors: list[FieldError], data: Mapping[str, Any], *, prefix: str
) -> Contact | None:
    before = len(errors)
    name = text_field(
        errors,
        prefix + "name",
        data.get("name"),
        label="your name",
        required=False,
        max_len=NAME_MAX,
    )
    email = email_field(errors, prefix + "email", data.get("email"))
    phone = phone_field(errors, prefix + "phone", data.get("phone"))
    if len(errors) == before and not email and not phone:
        errors.append(FieldError(prefix + "email", "Enter an email address or a phone number"))
    if len(errors) > before:
        return None
    return Contact(name, email, phone)
