"""Every page string goes through gettext, and a catalogue changes the pages (issue 3).

Strings without values are translated once, when a template is compiled. These stories check
that the folded pages are the same as Jinja2's own new-style gettext would make them.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
from babel.support import NullTranslations

from webapp import i18n

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


class Shouting(NullTranslations):
    """A stand-in catalogue: every message in capitals, so a translated string is visible."""

    def gettext(self, message: str) -> str:
        return message.upper().replace("%(N)S", "%(n)s")

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return (singular if n == 1 else plural).upper()

    ugettext = gettext  # Jinja2 prefers these names when a catalogue has them (Babel's do)
    ungettext = ngettext


def environments(
    translations: NullTranslations, loader: jinja2.BaseLoader
) -> tuple[jinja2.Environment, jinja2.Environment]:
    """Confide's environment, and the plain Jinja2 one it must match."""
    ours = jinja2.Environment(
        loader=loader, autoescape=True, extensions=["jinja2.ext.i18n", i18n.FoldConstantGettext]
    )
    i18n.install(ours, translations)
    plain = jinja2.Environment(loader=loader, autoescape=True, extensions=["jinja2.ext.i18n"])
    plain.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    return ours, plain


def test_a_catalogue_translates_literal_and_formatted_strings_like_jinja_does() -> None:
    source = (
        '<p title="{{ _("Copied") }}">{{ _("100%% of reports are read") }}</p>'
        '{{ _("You have %(n)s messages", n=count) }}{{ _("Tom & Jerry") }}'
        "{{ gettext('Start') }}{{ x._('not a call of ours') if x is defined else '' }}"
    )
    loader = jinja2.DictLoader({"page.html": source})
    for translations in (NullTranslations(), Shouting()):
        ours, plain = environments(translations, loader)
        context = {"count": "<b>3</b>"}
        assert ours.get_template("page.html").render(context) == plain.get_template(
            "page.html"
        ).render(context)
    page = environments(Shouting(), loader)[0].get_template("page.html").render(count=2)
    assert 'title="COPIED"' in page
    assert "100% OF REPORTS ARE READ" in page
    assert "YOU HAVE 2 MESSAGES" in page


def test_literal_strings_cost_nothing_when_a_page_is_rendered() -> None:
    loader = jinja2.FileSystemLoader(str(TEMPLATES))
    ours, _plain = environments(NullTranslations(), loader)
    source = loader.get_source(ours, "base.html")[0]
    compiled = ours.compile(source, "base.html", raw=True)
    assert "Skip to main content" in compiled  # translated into the template's own text
    assert "resolve_or_missing('_')" not in compiled
