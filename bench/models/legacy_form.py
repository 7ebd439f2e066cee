"""Frozen copy of the validation of ``webapp/report_flow.py`` as it was when the models were
measured (RESULTS.md "today"): each page's rule, then the whole report as API JSON.

The report question pages as a small state machine.

Answers are never stored on the server before submission: every page carries all answers so far
as hidden fields, and posts them back. The step that was answered names itself in ``step``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.models import legacy_validation as validation
from bench.models.legacy_validation import ReportDraft
from confide.errors import FieldError, ValidationFailed
from webapp.i18n import _

ANSWER_FIELDS = (
    "how",
    "category",
    "description",
    "occurred",
    "location",
    "follow_up",
    "contact_name",
    "contact_email",
    "contact_phone",
)
STEPS = ("how", "category", "what", "when", "where", "follow-up", "contact", "check")
STEP_FIELDS = {
    "how": ("how",),
    "category": ("category",),
    "what": ("description",),
    "when": ("occurred",),
    "where": ("location",),
    "follow-up": ("follow_up",),
    "contact": ("contact_name", "contact_email", "contact_phone"),
}
# API field names (CONTRACTS §3) -> form field names
API_TO_FORM = {
    "category": "category",
    "description": "description",
    "occurred": "occurred",
    "location": "location",
    "anonymous": "how",
    "follow_up": "follow_up",
    "contact": "contact_email",
    "contact.name": "contact_name",
    "contact.email": "contact_email",
    "contact.phone": "contact_phone",
}
FIELD_STEP = {field: step for step, fields in STEP_FIELDS.items() for field in fields}


@dataclass
class FormErrors:
    """Messages by form field, in page order, for the error summary and the inline messages."""

    items: list[tuple[str, str]]

    def __bool__(self) -> bool:
        return bool(self.items)

    def get(self, field: str) -> str | None:
        return next((m for f, m in self.items if f == field), None)


def answers_from(form: dict[str, str]) -> dict[str, str]:
    return {name: form.get(name, "")[:25_000] for name in ANSWER_FIELDS}


def applies(step: str, answers: dict[str, str]) -> bool:
    if step == "follow-up":
        return answers.get("how") != "contact"
    if step == "contact":
        return answers.get("how") == "contact"
    return True


def next_step(step: str, answers: dict[str, str]) -> str:
    index = STEPS.index(step)
    for candidate in STEPS[index + 1 :]:
        if applies(candidate, answers):
            return candidate
    return "check"


def previous_step(step: str, answers: dict[str, str]) -> str | None:
    index = STEPS.index(step)
    for candidate in reversed(STEPS[:index]):
        if applies(candidate, answers):
            return candidate
    return None


def validate_step(step: str, answers: dict[str, str], categories: set[str]) -> FormErrors:
    """Only the fields of the page that was answered."""
    errors: list[FieldError] = []
    if step == "how" and answers["how"] not in ("anonymous", "contact"):
        errors.append(FieldError("how", _("Select how you would like to report")))
    elif step == "category" and answers["category"] not in categories:
        errors.append(FieldError("category", _("Select what your report is about")))
    elif step == "what":
        validation.text_field(
            errors,
            "description",
            answers["description"],
            label=_("what happened"),
            required=True,
            max_len=validation.DESCRIPTION_MAX,
            multiline=True,
        )
    elif step == "when":
        validation.text_field(
            errors,
            "occurred",
            answers["occurred"],
            label=_("when it happened"),
            required=False,
            max_len=validation.SHORT_MAX,
        )
    elif step == "where":
        validation.text_field(
            errors,
            "location",
            answers["location"],
            label=_("where it happened"),
            required=False,
            max_len=validation.SHORT_MAX,
        )
    elif step == "follow-up" and answers["follow_up"] not in ("yes", "no"):
        errors.append(FieldError("follow_up", _("Select yes if you would like us to reply")))
    elif step == "contact":
        validation.contact_from(
            errors,
            {
                "name": answers["contact_name"],
                "email": answers["contact_email"],
                "phone": answers["contact_phone"],
            },
            prefix="contact_",
        )
    return FormErrors([(e.field.replace(".", "_"), e.message) for e in errors])


def to_api(answers: dict[str, str]) -> dict[str, Any]:
    anonymous = answers["how"] != "contact"
    data: dict[str, Any] = {
        "category": answers["category"],
        "description": answers["description"],
        "occurred": answers["occurred"] or None,
        "location": answers["location"] or None,
        "anonymous": anonymous,
        "follow_up": anonymous and answers["follow_up"] == "yes",
    }
    if not anonymous:
        data["contact"] = {
            "name": answers["contact_name"] or None,
            "email": answers["contact_email"] or None,
            "phone": answers["contact_phone"] or None,
        }
    return data


def draft_or_first_bad_step(
    answers: dict[str, str], categories: set[str]
) -> tuple[ReportDraft | None, str | None, FormErrors]:
    """The whole report validated as the API would; else the first page that needs a fix."""
    if answers["how"] not in ("anonymous", "contact"):
        return None, "how", validate_step("how", answers, categories)
    for step in STEPS[:-1]:
        if applies(step, answers):
            errors = validate_step(step, answers, categories)
            if errors:
                return None, step, errors
    try:
        draft = validation.report_from_json(to_api(answers), categories)
    except ValidationFailed as exc:
        items = [(API_TO_FORM.get(e.field, e.field), e.message) for e in exc.errors]
        step = FIELD_STEP.get(items[0][0], "how")
        return None, step, FormErrors(items)
    return draft, None, FormErrors([])
