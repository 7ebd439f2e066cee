"""Markdown for the support pages: CommonMark (markdown-it-py, raw HTML off), then nh3's allow-list.

Two layers, so that neither alone has to be right: markdown-it-py's CommonMark preset with
``html=False`` writes any HTML typed into the Markdown out as text and refuses ``javascript:``,
``vbscript:``, ``file:`` and ``data:`` links; nh3 (ammonia) then keeps only the tags, attributes
and URL schemes below, whatever the renderer made. A ``#`` heading is made an ``h2``, like
``##``: the page's title is its only ``h1``. Images are not Markdown here: a picture from another host would tell
that host who reads the page, and reporters' pages load nothing from other hosts.
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore

TAGS = frozenset(
    {
        "p",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "ul",
        "ol",
        "li",
        "a",
        "strong",
        "em",
        "code",
        "pre",
        "blockquote",
        "hr",
        "br",
    }
)
ATTRIBUTES = {"a": frozenset({"href", "title"}), "ol": frozenset({"start"})}
# Relative links (``/login``, ``#top``) pass as they are; any other scheme loses its ``href``.
URL_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
# The site's own styles for lists and headings (nothing typed can set a class).
CLASSES = {
    "h2": {"class": "heading-m"},
    "h3": {"class": "heading-s"},
    "ul": {"class": "list list--bullet"},
    "ol": {"class": "list list--number"},
}

_cleaner = nh3.Cleaner(
    tags=set(TAGS),
    clean_content_tags={"script", "style"},  # removed with what is inside them
    attributes={tag: set(names) for tag, names in ATTRIBUTES.items()},
    url_schemes=set(URL_SCHEMES),
    link_rel="noopener noreferrer",
    strip_comments=True,
    set_tag_attribute_values=CLASSES,
)


def _no_second_h1(state: StateCore) -> None:
    for token in state.tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{max(int(token.tag[1]), 2)}"


_markdown = MarkdownIt("commonmark", {"html": False}).disable("image")
_markdown.core.ruler.push("no_second_h1", _no_second_h1)


def render(markdown: str) -> str:
    """``markdown`` as sanitised HTML, safe to put in a page as it is."""
    return sanitise(_markdown.render(markdown))


def sanitise(html: str) -> str:
    """Only the allow-list's tags, attributes and URL schemes of ``html``."""
    return _cleaner.clean(html)
