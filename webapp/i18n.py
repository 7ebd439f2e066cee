"""gettext for every user-facing string (Babel catalogues, Jinja2 i18n extension).

English is the source language. A catalogue under ``translations/<lang>/LC_MESSAGES/messages.mo``
is used when present, so Welsh can be added without touching templates (docs/i18n.md).
"""

from __future__ import annotations

from pathlib import Path

from babel.support import NullTranslations, Translations

TRANSLATIONS_DIR = Path(__file__).resolve().parent.parent / "translations"
DEFAULT_LOCALE = "en"


def load(locale: str = DEFAULT_LOCALE) -> NullTranslations:
    if locale == DEFAULT_LOCALE:
        return NullTranslations()
    return Translations.load(str(TRANSLATIONS_DIR), [locale], domain="messages")


def gettext(message: str) -> str:
    """Mark a string in Python code for extraction; templates use ``_()``."""
    return message


_ = gettext
