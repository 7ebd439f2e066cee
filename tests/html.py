"""A tiny HTML form reader for the tests: what a browser without JavaScript would send."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    radios: dict[str, list[str]] = field(default_factory=dict)
    buttons: list[tuple[str, str, str | None]] = field(
        default_factory=list
    )  # name, value, formaction

    def data(self, **answers: str) -> dict[str, str]:
        out = dict(self.fields)
        out.update(answers)
        return out


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._textarea: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower()))
        elif not self.forms:
            return
        form = self.forms[-1]
        if tag == "input" and "name" in a:
            kind = a.get("type", "text")
            if kind == "radio":
                form.radios.setdefault(a["name"], []).append(a.get("value", ""))
                if "checked" in a:
                    form.fields[a["name"]] = a.get("value", "")
            elif kind == "checkbox":
                if "checked" in a:
                    form.fields[a["name"]] = a.get("value", "on")
            elif kind not in ("submit", "button"):
                form.fields[a["name"]] = a.get("value", "")
        elif tag == "textarea" and "name" in a:
            self._textarea, self._text = a["name"], []
        elif tag == "button" and a.get("type", "submit") == "submit":
            form.buttons.append((a.get("name", ""), a.get("value", ""), a.get("formaction")))

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea" and self._textarea is not None and self.forms:
            self.forms[-1].fields[self._textarea] = "".join(self._text).removeprefix("\n")
            self._textarea = None


def forms(page: str) -> list[Form]:
    reader = _Reader()
    reader.feed(page)
    return reader.forms


def main_form(page: str) -> Form:
    """The page's question form (not the Back form)."""
    candidates = [
        f for f in forms(page) if f.method == "post" and "nav" not in {b[0] for b in f.buttons}
    ]
    assert candidates, "no form on the page"
    return candidates[-1]


def title(page: str) -> str:
    match = re.search(r"<title>(.*?)</title>", page, re.S)
    return html.unescape(match.group(1)).strip() if match else ""


def text(page: str) -> str:
    """Visible-ish text: tags removed, entities decoded, whitespace folded."""
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body))).strip()


def code_on(page: str) -> str | None:
    """The code shown on a confirmation, as its four groups joined by hyphens (the page lets
    it break after each hyphen, with ``<wbr>``)."""
    match = re.search(r'<p class="code" id="code"[^>]*>((?:[0-9A-Z-]|<wbr>)+)</p>', page)
    return match.group(1).replace("<wbr>", "") if match else None
