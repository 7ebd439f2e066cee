"""The confirmation is drawn once per shape, with each report's own strings filled in
(webapp.page_shapes): what a reporter sees is byte for byte what the template itself prints."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
import jinja2
import pytest

from tests.conftest import Stack
from webapp.app import create_app
from webapp.page_shapes import PageShapes

NASTY = "R-<b>&\"1'</b>"  # what escaping must handle, wherever a hole is printed


def _confirmation_env(stack: Stack) -> jinja2.Environment:
    app = create_app(stack.settings)  # not started: no database or Redis is reached
    env: jinja2.Environment = app[aiohttp_jinja2.APP_KEY]
    return env


SHAPES: list[dict[str, Any]] = [
    # Anonymous, no further contact: the reference only.
    {"anonymous": True, "wants_code": False},
    # Anonymous with a code, its reminder and reply due, shown from the draft.
    {"anonymous": True, "wants_code": True, "drafted": True, "code": True},
    # The same without a draft (the code travels in the download form), last-4 checked.
    {"anonymous": True, "wants_code": True, "code": True, "typed": "AB<&", "last4": "mismatch"},
    # With contact details: a contact deadline, no code.
    {"anonymous": False, "wants_code": False, "due": True},
    # A repeat: already received, the code not shown again.
    {"anonymous": True, "wants_code": True, "already_received": True},
    # The code could not be made yet: "Get my code" sends the answers again (uncached).
    {"anonymous": True, "wants_code": True, "code_failed": True},
]


def _context(shape: dict[str, Any], reference: str) -> tuple[dict[str, Any], dict[str, Any]]:
    code = "ABCD-EFGH-JKLM-NPQR" if shape.get("code") else None
    context = {
        "login_address": "https://report.example.org/login",
        "notice": None,
        "last4": shape.get("last4"),
        "code_failed": shape.get("code_failed", False),
        "already_received": shape.get("already_received", False),
        "shown_once": False,
        "drafted": shape.get("drafted", False),
        "wants_code": shape["wants_code"],
        "anonymous": shape["anonymous"],
        "answers": {"description": "<i>typed</i>", "category": "safety"}
        if shape.get("code_failed")
        else None,
    }
    holes = {
        "reply_due_by": "5 pm on Friday 4 December" if code or shape.get("due") else None,
        "reminder_token": "tok-<&>" if code else None,
        "reference": reference,
        "typed": shape.get("typed", ""),
        "code": code,
        "code_groups": tuple(code.split("-")) if code else None,
        "form_token": "" if shape.get("drafted") else 'form"token',
    }
    return context, holes


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "-".join(sorted(k for k in s if s[k])))
def test_every_confirmation_reads_as_the_template_prints_it(
    stack: Stack, shape: dict[str, Any]
) -> None:
    env = _confirmation_env(stack)
    template = env.get_template("reporter/confirmation.html")
    pages = PageShapes(template, lambda: None)
    for reference in ("R-7K2M-9QXD", NASTY, "R-AAAA-BBBB"):  # the second and third reuse a shape
        context, holes = _context(shape, reference)
        printed = template.render({**context, **holes}).encode("utf-8")
        assert pages.render(context, holes) == printed
    assert b"&lt;b&gt;&amp;&#34;1&#39;&lt;/b&gt;" in pages.render(*_context(shape, NASTY))


def test_a_template_that_filters_a_hole_is_drawn_directly_rather_than_wrong() -> None:
    env = jinja2.Environment(autoescape=True)
    for source in ("<p>{{ reference|upper }}</p>", "<p>{{ reference|replace('0', 'o') }}</p>"):
        template = env.from_string(source)
        pages = PageShapes(template, lambda: None)
        for reference in ("r-1", "r-2"):
            expected = template.render(reference=reference).encode()
            assert pages.render({}, {"reference": reference}) == expected
        assert len(pages) == 0  # nothing kept: every page is the template's own


def test_a_page_is_drawn_again_when_what_its_layout_lists_changes() -> None:
    env = jinja2.Environment(autoescape=True)
    links: dict[str, tuple[str, ...]] = {"now": ("Support",)}
    template = env.from_string(
        "{% for l in links.now %}<a>{{ l }}</a>{% endfor %}<p>{{ reference }}</p>"
    )
    pages = PageShapes(template, lambda: links["now"])
    assert pages.render({"links": links}, {"reference": "R-1"}) == b"<a>Support</a><p>R-1</p>"
    links["now"] = ("Support", "Counselling")
    assert pages.render({"links": links}, {"reference": "R-2"}) == (
        b"<a>Support</a><a>Counselling</a><p>R-2</p>"
    )


def test_empty_holes_are_printed_as_the_template_would() -> None:
    env = jinja2.Environment(autoescape=True)
    template = env.from_string('{% if code %}<b>{{ code }}</b>{% endif %}<i value="{{ t }}">')
    pages = PageShapes(template, lambda: None)
    for holes in ({"code": None, "t": ""}, {"code": "X-1", "t": ""}, {"code": "", "t": "a&b"}):
        assert pages.render({}, holes) == template.render(holes).encode()
