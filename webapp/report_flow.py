"""The report question pages as a small state machine, bound to :class:`confide.models.NewReport`.

With the draft cookie, the answers so far are kept in the reporter's draft, sealed under a key
only their browser holds (``webapp.report_drafts``); without it, every page carries them as
hidden fields and posts them back. The step that was answered names itself in ``step``.
The answers bind to the API's model directly (:class:`ReportForm`): the same rules and messages,
except that the three questions asked as radio buttons say so in the page's words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import ValidationError, model_validator

from confide import logs
from confide.idempotency import Idempotency
from confide.models import NewReport, field_errors
from confide.services import reports
from webapp.i18n import _
from webapp.keys import CTX, HASHER

log = logs.get("confide.web.report")

ANSWER_FIELDS = (
    "how",
    "category",
    "description",
    "occurred",
    "location",
    "made_before",
    "earlier_reference",
    "earlier_details",
    "follow_up",
    "contact_name",
    "contact_email",
    "contact_phone",
)
STEPS = ("how", "category", "what", "when", "where", "follow-up", "contact", "check")
STEP_FIELDS = {
    "how": ("how",),
    "category": ("category",),
    "what": ("description", "made_before", "earlier_reference", "earlier_details"),
    "when": ("occurred",),
    "where": ("location",),
    "follow-up": ("follow_up",),
    "contact": ("contact_name", "contact_email", "contact_phone"),
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


CONTACT_FIELDS = STEP_FIELDS["contact"]


def answers_from(form: dict[str, str]) -> dict[str, str]:
    """The answers a page posted. Contact details are kept only while the reporter is
    reporting with them: once they switch to anonymous, the details are dropped here, so no
    later page carries them in its hidden fields either."""
    answers = {name: form.get(name, "")[:25_000] for name in ANSWER_FIELDS}
    if answers["how"] != "contact":
        answers.update(dict.fromkeys(CONTACT_FIELDS, ""))
    # Words about an earlier report mean the box was meant to be ticked: never drop them.
    earlier = answers["earlier_reference"].strip() or answers["earlier_details"].strip()
    answers["made_before"] = "yes" if answers["made_before"] == "yes" or earlier else ""
    return answers


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


class ReportForm(NewReport):
    """The question pages' answers as a :class:`NewReport`. They are flat strings, so only their
    names and radio values differ from the API's JSON: anything unexpected stays a string and is
    refused by the field's own rule."""

    @model_validator(mode="before")
    @classmethod
    def _from_answers(cls, data: Any) -> Any:
        how = data.get("how")
        anonymous = {"anonymous": True, "contact": False}.get(how, how)
        bound = {key: data.get(key) for key in ("category", "description", "occurred", "location")}
        bound["anonymous"] = anonymous
        if data.get("made_before") == "yes":  # an unticked box sends nothing: no else
            bound["made_before"] = True
            bound["earlier_reference"] = data.get("earlier_reference")
            bound["earlier_details"] = data.get("earlier_details")
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


# A model field whose form field is not its dotted name with "_" for ".".
FORM_NAMES = {"anonymous": "how", "contact": "contact_email"}


def _in_page_words(name: str, message: str) -> str:
    """The radio questions' own wording; every message goes through the catalogue."""
    if name == "how":
        return _("Select how you would like to report")
    if name == "category":
        return _("Select what your report is about")
    if name == "follow_up":
        return _("Select yes if you would like us to reply")
    return _(message)


def check(answers: dict[str, str], categories: set[str]) -> tuple[NewReport | None, FormErrors]:
    """All answers bound to the model: the report, or every error under its form field name,
    in page order."""
    try:
        return ReportForm.model_validate(answers, context={"categories": categories}), FormErrors(
            []
        )
    except ValidationError as exc:
        items = []
        for e in field_errors(exc, NewReport):
            name = FORM_NAMES.get(e.field, e.field.replace(".", "_"))
            items.append((name, _in_page_words(name, e.message)))
        return None, FormErrors(items)


def on_step(errors: FormErrors, step: str) -> FormErrors:
    return FormErrors([(f, m) for f, m in errors.items if FIELD_STEP.get(f, "how") == step])


def first_bad_step(errors: FormErrors) -> str | None:
    steps = [FIELD_STEP.get(f, "how") for f, _m in errors.items]
    return min(steps, key=STEPS.index) if steps else None


@dataclass(frozen=True)
class Page:
    """Which page to show next, and how."""

    step: str
    errors: FormErrors = field(default_factory=lambda: FormErrors([]))
    return_to: str = ""
    status: int = 200
    notice: str | None = None


def after_step(form: Mapping[str, str], answers: dict[str, str], categories: set[str]) -> Page:
    """The page after one question was answered (or Back, or Change from check answers): the
    same page with its errors, the next question, or check answers; from check answers, the
    first page that still needs a fix (e.g. switched to "with contact details": ask for them)."""
    step = form.get("step", "")
    if step not in STEPS:
        return Page("how")
    if form.get("nav") == "back":
        return Page(previous_step(step, answers) or "how")
    if step == "check":
        change = form.get("change", "")
        return Page(change, return_to="check") if change in STEP_FIELDS else Page("check")
    back_to_check = form.get("return_to") == "check"
    _draft, errors = check(answers, categories)
    here = on_step(errors, step)
    if here:
        return Page(step, here, return_to="check" if back_to_check else "", status=422)
    following = next_step(step, answers)
    if not (back_to_check or following == "check"):
        return Page(following)
    bad_step = first_bad_step(errors)
    if bad_step is None:
        return Page("check")
    # A page not answered yet (switched to "with contact details": the contact page) opens
    # as a question, without errors, until it is submitted; one answered before shows them.
    answered = any(answers.get(name) for name in STEP_FIELDS[bad_step])
    shown = on_step(errors, bad_step) if answered and bad_step != following else FormErrors([])
    return Page(bad_step, shown, return_to="check")


def to_fix(errors: FormErrors) -> Page:
    """Check answers' submit with answers that are not valid: the first page to fix."""
    step = first_bad_step(errors) or "how"
    return Page(step, on_step(errors, step), "check", 422)


def shown(step: str, answers: dict[str, str], return_to: str) -> Page:
    """The page a GET of ``step`` shows: that step, or the first question for a step that is
    not one, or does not apply to these answers."""
    if step not in STEPS or not applies(step, answers):
        return Page("how")
    return Page(step, return_to="check" if return_to == "check" and step != "check" else "")


def page_context(page: Page, answers: dict[str, str], categories: list[dict[str, str]]) -> Any:
    """What a question page's template needs."""
    return {
        "step": page.step,
        "answers": answers,
        "errors": page.errors,
        "return_to": page.return_to,
        "previous": None if page.return_to else previous_step(page.step, answers),
        "categories": categories,
        "category_names": {c["slug"]: c["name"] for c in categories},
        "notice": page.notice,
        "fields": STEP_FIELDS.get(page.step, ()),
    }


async def submit_report(
    request: web.Request, draft: NewReport, idempotency: Idempotency | None, **options: Any
) -> reports.Submitted:
    """Submit a validated report, from the API or the HTML form (``options``: those of
    :func:`confide.services.reports.submit`); the service wakes the outbox itself."""
    done = await reports.submit(
        request.app[CTX],
        draft,
        idempotency=idempotency,
        store_verifier=request.app[HASHER].store_verifier,
        **options,
    )
    outcome = "new" if done.receipt.is_new else "repeat"
    log.debug("report_submitted", thread_id=str(done.receipt.thread_id), outcome=outcome)
    return done
