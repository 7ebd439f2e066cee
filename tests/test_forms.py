"""A form body reads exactly as the standard library's parser reads it (webapp.forms.urlencoded
is a faster copy of ``parse_qsl`` for the submission benchmark, so it must never differ)."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote_plus

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from webapp.forms import MAX_FORM_FIELDS, urlencoded

# Bodies as browsers and attackers send them: escapes (valid and not), plus signs, empty parts,
# names without "=", repeated names, and raw non-ASCII text.
ESCAPES = ["%", "%2", "%20", "%26", "%C3%A9", "%FF", "%ED%A0%80"]
PIECES = st.sampled_from(["a", "b", "é", "=", "==", "&", "&&", "+", *ESCAPES])
BODIES = st.lists(PIECES, max_size=30).map("".join)


def standard(text: str) -> dict[str, str]:
    form: dict[str, str] = {}
    for name, value in parse_qsl(
        text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FORM_FIELDS
    ):
        form.setdefault(name, value)
    return form


def outcome(read: object, text: str) -> object:
    try:
        return read(text)  # type: ignore[operator]
    except UnicodeDecodeError:
        return "not UTF-8"
    except ValueError:
        return "unreadable"


@given(BODIES)
@example("how=anonymous&category=safety&description=A+chair%2C+propped&how=named")
@example("name&=value&a=1=2&%FF=x")
@example("a=%ED%A0%80")  # an encoded surrogate: refused, never decoded into a lone one
def test_a_form_body_reads_as_the_standard_parser_reads_it(text: str) -> None:
    assert outcome(urlencoded, text) == outcome(standard, text)


def test_a_report_typed_in_a_browser_reads_back_word_for_word() -> None:
    description = "The door by room 2.14 & the stairs: 50% of the time it's propped open."
    body = f"how=anonymous&description={quote_plus(description)}&category=safety"
    assert urlencoded(body) == {
        "how": "anonymous",
        "description": description,
        "category": "safety",
    }


@pytest.mark.parametrize("fields", [MAX_FORM_FIELDS - 1, MAX_FORM_FIELDS, MAX_FORM_FIELDS + 1])
def test_a_form_with_too_many_fields_is_refused_where_the_standard_parser_refuses_it(
    fields: int,
) -> None:
    text = "&".join(f"f{n}=x" for n in range(fields))
    assert outcome(urlencoded, text) == outcome(standard, text)
