"""Every page string goes through gettext, and a catalogue changes the pages (issue 3).

Strings without values are translated once, when a template is compiled. These stories check
that the folded pages are the same as Jinja2's own new-style gettext would make them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import jinja2
from babel.support import NullTranslations

from confide.services.workdays import LONDON, WorkingCalendar
from webapp import i18n
from webapp.dates import DateFormats
from webapp.i18n import _

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


class Shouting(NullTranslations):
    """A stand-in catalogue: every message in capitals, so a translated string is visible."""

    def gettext(self, message: str) -> str:
        return message.upper().replace("%(N)S", "%(n)s")

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        return (msgid1 if n == 1 else msgid2).upper()

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


class Catalogue(NullTranslations):
    """A stand-in catalogue of a few messages, with their placeholders."""

    def __init__(self, messages: dict[str, str]) -> None:
        super().__init__()
        self.messages = messages

    def gettext(self, message: str) -> str:
        return self.messages.get(message, message)


WEDNESDAY_10AM = datetime(2026, 12, 30, 10, 0, tzinfo=LONDON)


def test_messages_written_in_python_go_through_the_catalogue_of_the_templates() -> None:
    catalogue = Catalogue(
        {
            "Select how you would like to report": "Dewiswch sut yr hoffech roi gwybod",
            "%(duration)s working time left": "%(duration)s o amser gwaith ar ôl",
        }
    )
    dates = DateFormats("en_GB", LONDON, WorkingCalendar(), now=lambda: WEDNESDAY_10AM)
    try:
        i18n.activate(catalogue)
        # As the handlers and form checks call it: webapp.i18n._, imported once.
        assert _("Select how you would like to report") == "Dewiswch sut yr hoffech roi gwybod"
        assert i18n._("Not in the catalogue") == "Not in the catalogue"
        left = dates.working_left(datetime(2026, 12, 30, 16, 0, tzinfo=LONDON))
        assert left == "6h 0m o amser gwaith ar ôl"
    finally:
        i18n.activate(NullTranslations())
    assert i18n._("Select how you would like to report") == "Select how you would like to report"


def test_dates_and_working_time_are_written_the_en_gb_way() -> None:
    dates = DateFormats("en_GB", LONDON, WorkingCalendar(), now=lambda: WEDNESDAY_10AM)
    assert dates.when(datetime(2026, 12, 30, 18, 46, tzinfo=UTC)) == "30 December 2026, 6:46 pm"
    summer = datetime(2026, 7, 1, 11, 5, tzinfo=UTC)  # 12:05 in London (BST)
    assert dates.when(summer) == "1 July 2026, 12:05 pm" and dates.time_of_day(summer) == "12:05 pm"
    assert dates.when(None) == ""
    assert dates.time_of_day(datetime(2026, 12, 30, 0, 7, tzinfo=UTC)) == "12:07 am"
    assert dates.due_words(datetime(2026, 12, 30, 17, 0, tzinfo=LONDON)) == (
        "5 pm on Wednesday 30 December"
    )
    assert dates.due_words(datetime(2026, 12, 30, 16, 30, tzinfo=LONDON)) == (
        "4:30 pm on Wednesday 30 December"
    )
    # Working time only: Monday 28 December is a bank holiday (Boxing Day's substitute).
    assert dates.working_left(datetime(2026, 12, 30, 16, 0, tzinfo=LONDON)) == (
        "6h 0m working time left"
    )
    assert dates.working_left(datetime(2026, 12, 29, 16, 0, tzinfo=LONDON)) == (
        "overdue by 2h 0m working"
    )
    assert dates.waited(datetime(2026, 12, 30, 9, 15, tzinfo=LONDON)) == "45m working"
    assert dates.waited(datetime(2026, 12, 24, 16, 55, tzinfo=LONDON)) == "9h 5m working"
    assert dates.waited(None) == dates.working_left(None) == ""
    # The same answers again, now from the per-day and per-minute caches.
    assert dates.when(datetime(2026, 12, 30, 18, 46, tzinfo=UTC)) == "30 December 2026, 6:46 pm"
    assert dates.duration(timedelta(hours=16)) == "16h 0m"


def test_the_catalogue_template_holds_every_message_a_page_can_show(tmp_path: Path) -> None:
    """A translator starts from translations/messages.pot: a string added to a page or a
    handler without `make messages` would never reach them."""
    import subprocess
    import sys

    from babel.messages.pofile import read_po

    root = TEMPLATES.parent
    fresh = tmp_path / "messages.pot"
    extract = [sys.executable, "-m", "babel.messages.frontend", "--quiet", "extract"]
    subprocess.run([*extract, "-F", "babel.cfg", "-o", str(fresh), "."], cwd=root, check=True)

    def ids(path: Path) -> set[str]:
        with path.open("rb") as f:
            return {str(m.id) for m in read_po(f) if m.id}

    missing = ids(fresh) - ids(root / "translations" / "messages.pot")
    assert not missing, f"run `make messages`: {sorted(missing)[:5]}"
