"""Charts drawn on the server as SVG (no script, no inline style: the CSP allows both as they
are): the geometry of a bar chart, which ``templates/macros/charts.html`` draws with a title,
a description and one text label per bar, beside the table that holds the same numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from confide.services.statistics import Statistics
from webapp.i18n import _

WIDTH = 640
HEIGHT = 240
LEFT = 48
BOTTOM = 40
TOP = 16


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int | None  # None: suppressed, drawn as a marked gap, never as a number

    @property
    def middle(self) -> float:
        return self.x + self.width / 2


@dataclass(frozen=True, slots=True)
class BarChart:
    title: str
    description: str
    bars: tuple[Bar, ...]
    ticks: tuple[tuple[float, int], ...]  # (y, value) for the axis labels
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    baseline: float = HEIGHT - BOTTOM


def _nice_top(largest: int) -> int:
    if largest <= 5:
        return 5
    step: int = 10 ** (len(str(largest)) - 1)
    for factor in (1, 2, 5, 10):
        if largest <= factor * step:
            return factor * step
    return 10 * step


def bar_chart(title: str, description: str, values: Sequence[tuple[str, int | None]]) -> BarChart:
    shown = [v for _, v in values if v is not None]
    top = _nice_top(max(shown, default=0))
    plot_height = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT) / max(len(values), 1)
    bars = []
    for i, (label, value) in enumerate(values):
        height = 0.0 if value is None else plot_height * value / top
        bars.append(
            Bar(
                x=round(LEFT + i * slot + slot * 0.15, 1),
                y=round(HEIGHT - BOTTOM - height, 1),
                width=round(slot * 0.7, 1),
                height=round(height, 1),
                label=label,
                value=value,
            )
        )
    ticks = tuple((round(HEIGHT - BOTTOM - plot_height * k / 4, 1), top * k // 4) for k in range(5))
    return BarChart(title, description, tuple(bars), ticks)


def month_chart(stats: Statistics) -> BarChart:
    """Reports received per month: a withheld month is a marked gap, never a number."""
    values = [(m.label, m.figures.received) for m in stats.months]
    shown = sum(1 for _label, v in values if v is not None)
    description = _(
        "Reports received in each month from %(first)s to %(last)s; %(shown)s of %(all)s months "
        "shown, the others withheld because a number in them is fewer than 5. The table below "
        "has the same numbers."
    ) % {
        "first": stats.first.isoformat()[:7],
        "last": stats.last.isoformat()[:7],
        "shown": shown,
        "all": len(values),
    }
    return bar_chart(_("Reports received per month"), description, values)
