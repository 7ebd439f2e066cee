"""Both models against today's validation, on the same inputs (hypothesis).

Run with a venv that has pydantic and msgspec (they are not project dependencies yet):
``PYTHONPATH=$PWD /tmp/venv-models/bin/python -m pytest -p no:cacheprovider -q bench/models``
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.models import legacy_form as report_flow
from bench.models import legacy_validation as validation
from bench.models import msgspec_report, pydantic_report, today
from bench.models.legacy_validation import ReportDraft
from confide import models
from confide.errors import FieldError, ValidationFailed
from webapp import report_flow as adopted_flow
from webapp.errors import BadRequest

CATEGORIES = {"safety", "conduct"}
Outcome = ReportDraft | list[FieldError]


def outcome(parse: Any, data: Any) -> Outcome:
    try:
        result: ReportDraft = parse(data, CATEGORIES)
    except ValidationFailed as exc:
        return exc.errors
    return result


# Text near each rule: limits counted after cleaning, NFC that shortens, control characters,
# CR/LF, blank after trimming. No lone surrogates here: read_json refuses them before validation.
_chars = st.characters(exclude_categories=["Cs"])
_tricky = st.sampled_from(
    [
        "",
        " ",
        "\t\n\r ",
        "\x00",
        "a\x00b",
        "line\r\nline\rline",
        "e\u0301",
        "a" * 200,
        "a" * 201,
        " " + "a" * 500 + " ",
        "a" * 501,
        "a" * 20_000,
        "a" * 20_001,
        "e\u0301" * 10_001,  # 20,002 code points, 10,001 after NFC
        " " + "b" * 20_000 + "\n",
    ]
)
text = st.one_of(st.text(_chars, max_size=40), _tricky)
email = st.one_of(
    text,
    st.sampled_from(["a@example.org", " A@Example.ORG ", "nope", "a@b", "x" * 250 + "@e.org"]),
)
phone = st.one_of(
    text, st.sampled_from(["07700 900982", "+44 7700 900982", "+1 202 555 0143", "abc", "0"])
)
opt = st.none  # absent and null are the same today


def _maybe(key: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), values.map(lambda v: {key: v}))


def _merge(*parts: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.tuples(*parts).map(lambda ds: {k: v for d in ds for k, v in d.items()})


json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(0, 1), text)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(_chars, max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)

well_typed_contact = st.one_of(
    st.none(),
    _merge(
        _maybe("name", st.one_of(st.none(), text)),
        _maybe("email", st.one_of(st.none(), email)),
        _maybe("phone", st.one_of(st.none(), phone)),
        _maybe("extra", json_value),  # ignored today inside contact
    ),
)
# Mostly valid reports (the hand-rolled strategies above are mostly invalid ones).
valid_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30).map(
    lambda t: "Report " + t
)
_optional_text = {"occurred": st.one_of(st.none(), text), "location": st.one_of(st.none(), text)}
likely_valid = st.one_of(
    st.fixed_dictionaries(
        {
            "category": st.sampled_from(sorted(CATEGORIES)),
            "description": st.one_of(valid_text, valid_text, text),
            "anonymous": st.just(True),
        },
        optional={**_optional_text, "follow_up": st.one_of(st.none(), st.booleans())},
    ),
    st.fixed_dictionaries(
        {
            "category": st.sampled_from(sorted(CATEGORIES)),
            "description": valid_text,
            "anonymous": st.just(False),
            "contact": st.fixed_dictionaries(
                {},
                optional={
                    "name": st.one_of(st.none(), text),
                    "email": st.one_of(
                        st.sampled_from(["a@example.org", " B@Example.ORG "]), email
                    ),
                    "phone": st.one_of(
                        st.sampled_from(["07700 900982", "+33 1 23 45 67 89"]), phone
                    ),
                },
            ),
        },
        optional={**_optional_text, "follow_up": st.one_of(st.none(), st.just(False))},
    ),
)
well_typed = st.one_of(
    likely_valid,
    _merge(
        _maybe(
            "category", st.one_of(st.none(), st.sampled_from(["safety", "conduct", "nope", ""]))
        ),
        _maybe("description", st.one_of(st.none(), text)),
        _maybe("occurred", st.one_of(st.none(), text)),
        _maybe("location", st.one_of(st.none(), text)),
        _maybe("anonymous", st.one_of(st.none(), st.booleans())),
        _maybe("follow_up", st.one_of(st.none(), st.booleans())),
        _maybe("contact", well_typed_contact),
    ),
)
# Anything JSON can say: wrong types, unknown keys, non-objects.
any_body = st.one_of(
    likely_valid,
    json_value,
    _merge(
        well_typed,
        _maybe("category", json_value),
        _maybe("anonymous", json_value),
        _maybe("contact", st.one_of(json_value, well_typed_contact)),
        _maybe("description", json_value),
        st.dictionaries(st.sampled_from(["zz", "aa", "Category", "x"]), json_value, max_size=2),
    ),
)

SLOW = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW
@given(any_body)
def test_pydantic_from_data_is_today(data: Any) -> None:
    assert outcome(pydantic_report.report_from_data, data) == outcome(
        validation.report_from_json, data
    )


@SLOW
@given(any_body)
def test_pydantic_from_bytes_is_today(data: Any) -> None:
    body = orjson.dumps(data)
    assert outcome(pydantic_report.report_from_bytes, body) == outcome(
        today.report_from_bytes, body
    )


@SLOW
@given(well_typed)
def test_msgspec_is_today_for_well_typed_bodies(data: Any) -> None:
    expected = outcome(validation.report_from_json, data)
    assert outcome(msgspec_report.report_from_data, data) == expected
    assert outcome(msgspec_report.report_from_bytes, orjson.dumps(data)) == expected


@SLOW
@given(any_body)
def test_msgspec_accepts_what_today_accepts_and_refuses_the_rest(data: Any) -> None:
    """A wrong JSON type or unknown key: msgspec stops at its first, so fewer errors than today."""
    expected = outcome(validation.report_from_json, data)
    got = outcome(msgspec_report.report_from_bytes, orjson.dumps(data))
    if isinstance(expected, ReportDraft):
        assert got == expected
    else:
        assert isinstance(got, list) and got


def test_msgspec_reports_one_shape_error_where_today_reports_all() -> None:
    data = {"description": 5, "anonymous": "yes", "zz": 1, "aa": 2}
    assert outcome(validation.report_from_json, data) == [
        FieldError("category", "Choose one of the categories"),
        FieldError("description", "What happened must be text"),
        FieldError("anonymous", "Must be true or false"),
        FieldError("aa", "Unknown field"),
        FieldError("zz", "Unknown field"),
    ]
    assert outcome(pydantic_report.report_from_data, data) == outcome(
        validation.report_from_json, data
    )
    assert outcome(msgspec_report.report_from_data, data) == [
        FieldError("description", "What happened must be text")  # the first in body order
    ]


def test_contact_email_and_phone_errors_come_together_in_all_three() -> None:
    """tests/test_reporting.py asserts both fields at once."""
    data = {
        "category": "safety",
        "description": "Loose cable",
        "anonymous": False,
        "contact": {"email": "nope", "phone": "abc"},
    }
    for parse in (
        validation.report_from_json,
        pydantic_report.report_from_data,
        msgspec_report.report_from_data,
    ):
        errors = outcome(parse, data)
        assert isinstance(errors, list)
        assert [e.field for e in errors] == ["contact.email", "contact.phone"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"category": "safety", "description": "\\ud800", "anonymous": true}',
        b'{"category": "safety", "description": "x\\udfff", "anonymous": true}',
        b'{"\\ud800": 1}',
        b'{"category": "safety", "description": "x", "anonymous": tru',
        b'{"category": "safety", "description": "\xff", "anonymous": true}',
    ],
)
def test_lone_surrogates_and_broken_json_are_a_400_in_all_three(body: bytes) -> None:
    with pytest.raises(BadRequest):
        today.report_from_bytes(body, CATEGORIES)
    with pytest.raises(pydantic_report.NotJson):
        pydantic_report.report_from_bytes(body, CATEGORIES)
    with pytest.raises(msgspec_report.NotJson):
        msgspec_report.report_from_bytes(body, CATEGORIES)


def test_nan_is_a_400_today_and_with_msgspec_but_a_422_with_pydantic() -> None:
    """A gap, harmless: jiter reads NaN, and no field takes a number, so it is a wrong type."""
    body = b'{"description": NaN}'
    with pytest.raises(BadRequest):
        today.report_from_bytes(body, CATEGORIES)
    with pytest.raises(msgspec_report.NotJson):
        msgspec_report.report_from_bytes(body, CATEGORIES)
    with pytest.raises(ValidationFailed):
        pydantic_report.report_from_bytes(body, CATEGORIES)


def test_a_long_number_is_a_400_today_but_a_422_in_both_models() -> None:
    """A gap, harmless: both read big integers, and no field takes a number."""
    body = b'{"description": 1' + b"0" * 40 + b"}"
    with pytest.raises(BadRequest):
        today.report_from_bytes(body, CATEGORIES)
    for model in (pydantic_report, msgspec_report):
        with pytest.raises(ValidationFailed):
            model.report_from_bytes(body, CATEGORIES)


def test_json_dumps_escapes_round_trip() -> None:
    """ensure_ascii bodies (every non-ASCII character escaped) decode alike in all three."""
    data = {"category": "safety", "description": "caf\u00e9 \U0001f600", "anonymous": True}
    body = json.dumps(data).encode()
    expected = outcome(today.report_from_bytes, body)
    assert outcome(pydantic_report.report_from_bytes, body) == expected
    assert outcome(msgspec_report.report_from_bytes, body) == expected


form_answers = st.fixed_dictionaries(
    {
        "how": st.sampled_from(["anonymous", "anonymous", "contact", "contact", "", "other"]),
        "category": st.sampled_from(["safety", "conduct", "safety", "conduct", "", "nope"]),
        "description": st.one_of(valid_text, valid_text, text),
        "occurred": text,
        "location": text,
        "follow_up": st.sampled_from(["yes", "no", "yes", "no", "", "maybe"]),
        "contact_name": text,
        "contact_email": st.one_of(st.just(""), email),
        "contact_phone": st.one_of(st.just(""), phone),
    }
)


@SLOW
@given(form_answers)
def test_pydantic_binds_the_form_as_the_question_pages_do(answers: dict[str, str]) -> None:
    draft, step, errors = report_flow.draft_or_first_bad_step(answers, CATEGORIES)
    got_draft, got_step, got_errors = pydantic_report.report_from_form(answers, CATEGORIES)
    assert (got_draft, got_step, got_errors.items) == (draft, step, errors.items)


# The models as adopted (confide.models, webapp.report_flow) against the validation they
# replaced, frozen in legacy_validation.py and legacy_form.py: the same reports, the same errors.


def _adopted(data: Any, categories: set[str]) -> ReportDraft:
    report = models.parse(models.NewReport, data, context={"categories": categories})
    contact = report.contact
    return ReportDraft(
        report.category,
        report.description,
        report.occurred,
        report.location,
        report.anonymous,
        report.follow_up,
        validation.Contact(contact.name, contact.email, contact.phone) if contact else None,
    )


@SLOW
@given(any_body)
def test_adopted_model_is_the_validation_it_replaced(data: Any) -> None:
    """One difference, on purpose: unknown keys inside ``contact`` are refused, as the OpenAPI
    document always said (``additionalProperties: false``); the old code ignored them."""
    contact = data.get("contact") if isinstance(data, dict) else None
    unknown = set(contact) - {"name", "email", "phone"} if isinstance(contact, dict) else set()
    if unknown and data.get("anonymous") is False:
        got = outcome(_adopted, data)
        assert isinstance(got, list)
        assert {f"contact.{k}" for k in unknown} <= {e.field for e in got}
        return
    assert outcome(_adopted, data) == outcome(validation.report_from_json, data)


@SLOW
@given(form_answers)
def test_adopted_form_binding_is_the_question_pages_it_replaced(answers: dict[str, str]) -> None:
    draft, step, errors = report_flow.draft_or_first_bad_step(answers, CATEGORIES)
    report, found = adopted_flow.check(answers, CATEGORIES)
    got_step = adopted_flow.first_bad_step(found)
    assert got_step == step
    if step is None:
        assert report is not None and _adopted(report.model_dump(), CATEGORIES) == draft
    else:
        assert adopted_flow.on_step(found, step).items == errors.items
