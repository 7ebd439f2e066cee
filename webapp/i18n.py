"""gettext for every user-facing string (Babel catalogues, Jinja2 i18n extension).

English is the source language. A catalogue under ``translations/<lang>/LC_MESSAGES/messages.mo``
is used when present, so Welsh can be added without touching templates (docs/i18n.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import jinja2
from babel.support import NullTranslations, Translations
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from markupsafe import Markup

TRANSLATIONS_DIR = Path(__file__).resolve().parent.parent / "translations"
DEFAULT_LOCALE = "en"
DATE_LOCALE = "en_GB"
"""The locale of dates and numbers for English pages (:mod:`webapp.dates`)."""


def load(locale: str = DEFAULT_LOCALE) -> NullTranslations:
    if locale == DEFAULT_LOCALE:
        return NullTranslations()
    return Translations.load(str(TRANSLATIONS_DIR), [locale], domain="messages")


_active: NullTranslations = NullTranslations()


def activate(translations: NullTranslations) -> None:
    """Make ``translations`` the catalogue of Python's :func:`gettext` in this process.

    :func:`webapp.app.create_app` activates the catalogue it installs in the templates, so a
    message written in a handler is translated like one written in a template. A process has
    one catalogue today; the language switch (docs/i18n.md) will make this per request.
    """
    global _active
    _active = translations


def gettext(message: str) -> str:
    """``message`` in the active catalogue (marked for extraction as ``_``, as in templates).

    Python's ``%`` formatting is the caller's: ``_("Wait %(n)s seconds") % {"n": 30}``.
    """
    return _active.gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _active.ngettext(singular, plural, n)


_ = gettext


def N_(message: str) -> str:  # Babel's default keyword for a message translated later
    """Mark ``message`` for extraction only; it is translated later, where it is shown with
    ``_(message)`` (tables of words, keyed by exception or refusal)."""
    return message


class FoldConstantGettext(Extension):
    """Translate ``_("literal")`` once, when the template is compiled.

    The catalogue is chosen when the environment is built and never changes for it, so a call
    with one string literal and no values has a fixed result. The extension rewrites the tokens
    ``_ ( "text" )`` to ``"translation" | safe``, which Jinja2's optimiser folds into template
    data: nothing is called at render time. Calls with values, or whose text does not format
    without them, are left to the run-time ``_`` of :func:`install`, so the output is the same.

    Serves ``make bench`` ``submit`` (req/s ÷ bare ≥ 0.50, met narrowly): the confirmation page
    rendered in 19 µs instead of 160 µs, and with it (and a few smaller changes of the same
    round) web CPU per submission fell from 0.56 to 0.39–0.41 ms (docs/benchmarks.md, second
    round).
    """

    def __init__(self, environment: jinja2.Environment) -> None:
        super().__init__(environment)
        environment.extend(constant_gettext=None)

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        gettext: Callable[[str], str] | None = getattr(self.environment, "constant_gettext", None)
        if gettext is None:
            yield from stream
            return
        window: list[Token] = []
        for token in stream:
            window.append(token)
            if _is_constant_call(window):
                folded = _fold(gettext, window[-2].value)
                if folded is not None:
                    line = window[-4].lineno
                    del window[-4:]
                    window += [
                        Token(line, "string", folded),
                        Token(line, "pipe", "|"),
                        Token(line, "name", "safe"),
                    ]
            while len(window) > 4:
                yield window.pop(0)
        yield from window


def _is_constant_call(window: list[Token]) -> bool:
    if len(window) < 4:
        return False
    name, lparen, text, rparen = window[-4:]
    after_dot = len(window) > 4 and window[-5].type == "dot"
    return (
        name.type == "name"
        and name.value in ("_", "gettext")
        and not after_dot
        and lparen.type == "lparen"
        and text.type == "string"
        and rparen.type == "rparen"
    )


def _fold(gettext: Callable[[str], str], message: str) -> str | None:
    try:
        return gettext(message) % {}  # as new-style gettext does: "%%" becomes "%"
    except (KeyError, ValueError, TypeError):
        return None


def install(env: jinja2.Environment, translations: NullTranslations) -> None:
    """Install ``_``/``gettext``/``ngettext`` in ``env`` with Jinja2's new-style semantics.

    Same results as ``install_gettext_translations(..., newstyle=True)`` for autoescaped
    templates: the translation is markup, ``%`` formatting always applies and its values are
    escaped. A translated string without values is computed once, since the catalogue is fixed
    for the life of the process. That memo predates :class:`FoldConstantGettext`, which now
    folds the literal calls it was for; what reaches it at run time is ``_(variable)``. It was
    not measured apart from the folding (``submit``), and costs one dict lookup.
    """
    env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    # Catalogue strings are ours and trusted like the templates (Jinja2's new-style gettext
    # marks them safe the same way); the values put into them are escaped by ``%``.
    plain: dict[str, Markup] = {}

    def gettext(message: str, /, **values: object) -> Markup:
        if values:
            return Markup(translations.gettext(message)) % values  # noqa: S704
        found = plain.get(message)
        if found is None:
            found = plain[message] = Markup(translations.gettext(message)) % {}  # noqa: S704
        return found

    def ngettext(singular: str, plural: str, num: int, /, **values: object) -> Markup:
        values.setdefault("num", num)
        return Markup(translations.ngettext(singular, plural, num)) % values  # noqa: S704

    fast: dict[str, Callable[..., Markup]] = {
        "_": gettext,
        "gettext": gettext,
        "ngettext": ngettext,
    }
    env.globals.update(fast)
    # For FoldConstantGettext; templates compiled from now on get their literals translated.
    env.constant_gettext = translations.gettext  # type: ignore[attr-defined]
