"""Pages drawn once per shape, with each request's own strings put into the holes.

A page such as the report confirmation is the same for every request but for a few strings (the
reference, the code's groups, a token). :class:`PageShapes` renders its template once per
*shape*, the values that decide what the page says, with a marker in place of each hole, keeps
the page as encoded pieces, and fills the holes of a request by escaping its strings, as the
template would have printed them.

The result is byte for byte the template's own rendering (``tests/test_page_shapes.py``) under
three rules, which :meth:`PageShapes.render` checks or enforces:

- a hole is printed only as ``{{ name }}`` (autoescaped), or inside a ``Markup`` built from it
  (a ``{% set %}`` block): never through a filter, a test or a comparison. The first page of
  each shape is also drawn directly and compared: on a difference the template's pages are
  drawn directly, uncached, and ``page_shape_refused`` is logged;
- a hole's value is a non-empty string (or a tuple of them, for a loop of known length): an
  empty or missing value belongs to the shape, since templates test it with ``{% if %}``;
- every other value is hashable, and is part of the shape; a value that is not (a dict of
  answers, say) draws the page directly, uncached.

Kept for ``make bench`` ``submit`` (req/s ÷ bare ≥ 0.50, p99 ÷ bare ≤ 1.5): rendering the
confirmation (base layout, footer, 40 gettext calls) was 12 % of a submission's web process
(py-spy, 2026-12-03); filling its holes costs a join.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import jinja2
from markupsafe import escape

from confide import logs

log = logs.get("confide.web")

# NUL cannot come from a template's own text or from an escaped value in any other position.
_MARK = "\x00{}\x00"
_MARKS = re.compile("\x00([0-9]+)\x00")

HoleValue = str | tuple[str, ...]
Pieces = tuple[tuple[bytes, ...], tuple[int, ...]]


class PageShapes:
    """One template's pages, cached by shape (least recently used first out).

    ``state`` returns an object that the template reads from its globals and that can change
    while the process runs (the support pages' links): a cached shape drawn under another
    object (by identity) is drawn again.
    """

    def __init__(
        self, template: jinja2.Template, state: Callable[[], object], size: int = 64
    ) -> None:
        self._template = template
        self._state = state
        self._size = size
        self._shapes: OrderedDict[Hashable, tuple[object, Pieces]] = OrderedDict()

    def render(self, context: Mapping[str, Any], holes: Mapping[str, HoleValue | None]) -> bytes:
        """The page for ``context`` with ``holes`` printed in it, encoded as UTF-8."""
        filled = {name: value for name, value in holes.items() if value}
        shape = {**context, **{name: v for name, v in holes.items() if name not in filled}}
        key = _key(shape, filled)
        try:
            cached = self._shapes.get(key)
        except TypeError:  # a value that is not hashable: drawn directly, uncached
            return self._template.render({**shape, **filled}).encode("utf-8")
        state = self._state()
        if cached is None or cached[0] is not state:
            direct = self._template.render({**shape, **filled}).encode("utf-8")
            pieces = self._draw(shape, filled)
            if pieces is None or _fill(pieces, filled) != direct:
                # A template that breaks the rules above: its pages are drawn directly.
                log.error("page_shape_refused", template=self._template.name)
                return direct
            self._shapes[key] = (state, pieces)
            if len(self._shapes) > self._size:
                self._shapes.popitem(last=False)
            return direct
        self._shapes.move_to_end(key)
        return _fill(cached[1], filled)

    def __len__(self) -> int:
        """How many shapes are kept."""
        return len(self._shapes)

    def _draw(self, shape: dict[str, Any], filled: dict[str, HoleValue]) -> Pieces | None:
        marks: dict[str, HoleValue] = {}
        n = 0
        for name, value in filled.items():
            if isinstance(value, tuple):
                marks[name] = tuple(_MARK.format(n + i) for i in range(len(value)))
                n += len(value)
            else:
                marks[name] = _MARK.format(n)
                n += 1
        parts = _MARKS.split(self._template.render({**shape, **marks}))
        literals = tuple(p.encode("utf-8") for p in parts[0::2])
        if any(b"\x00" in literal for literal in literals):
            return None  # a filter changed a marker
        return literals, tuple(int(i) for i in parts[1::2])


def _key(shape: Mapping[str, Any], filled: Mapping[str, HoleValue]) -> Hashable:
    """The shape as a key, with each hole's name and length (hashable unless a value is not).
    In the caller's order: a call site that builds its context in another order has shapes of
    its own, which costs a render, never a wrong page."""
    lengths = tuple((name, len(v) if isinstance(v, tuple) else -1) for name, v in filled.items())
    return (tuple(shape.items()), lengths)


def _fill(pieces: Pieces, filled: Mapping[str, HoleValue]) -> bytes:
    literals, order = pieces
    values = [str(escape(v)).encode("utf-8") for v in _flat(filled)]
    out = [literals[0]]
    for index, literal in zip(order, literals[1:], strict=True):
        out.append(values[index])
        out.append(literal)
    return b"".join(out)


def _flat(filled: Mapping[str, HoleValue]) -> list[str]:
    values: list[str] = []
    for value in filled.values():
        if isinstance(value, tuple):
            values.extend(value)
        else:
            values.append(value)
    return values
