"""Lengths of time in the organisation file ("12 months", "14 days", "6 years"), one parser for
every rule that has one (retention, inactivity, auto-close, extensions)."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from confide.errors import ConfigError

LONGEST_MONTHS = 1200  # 100 years
_DURATION = re.compile(r"^\s*([1-9][0-9]{0,3})\s+(day|week|month|year)s?\s*$")


@dataclass(frozen=True, order=True)
class Duration:
    """A calendar length from the organisation file: whole months and days, as PostgreSQL's
    ``interval`` holds it (a month added to 31 January is the last day of February, in Python
    and in SQL alike)."""

    months: int = 0
    days: int = 0

    def after(self, moment: datetime) -> datetime:
        """``moment`` plus this length, the way ``timestamptz + interval`` adds it in UTC."""
        total = moment.month - 1 + self.months
        year, month = moment.year + total // 12, total % 12 + 1
        day = min(moment.day, calendar.monthrange(year, month)[1])
        return moment.replace(year=year, month=month, day=day) + timedelta(days=self.days)

    @property
    def shortest(self) -> timedelta:
        """No span of this length is shorter (a month is at least 28 days): an index-friendly
        first cut before the exact test in SQL."""
        return timedelta(days=28 * self.months + self.days)

    @property
    def interval(self) -> str:
        """As a PostgreSQL interval literal (a parameter cast with ``::interval``)."""
        return self.sql

    @property
    def sql(self) -> str:
        """As a PostgreSQL interval literal (a parameter cast with ``::interval``)."""
        return f"{self.months} months {self.days} days"

    def __str__(self) -> str:
        if self.days == 0 and self.months % 12 == 0 and self.months:
            return f"{self.months // 12} years"
        if self.days == 0:
            return f"{self.months} months"
        if self.months == 0 and self.days % 7 == 0:
            return f"{self.days // 7} weeks"
        return f"{self.months} months {self.days} days" if self.months else f"{self.days} days"


def parse_duration(text: object, name: str, where: str = "CONFIDE_ORG_FILE") -> Duration:
    """``"N days|weeks|months|years"`` (singular or plural, N from 1, at most 100 years) as a
    :class:`Duration`; a clear ConfigError naming ``name`` otherwise."""
    found = _DURATION.match(text) if isinstance(text, str) else None
    if found is None:
        raise ConfigError(
            f"{where}: '{name}' must look like \"12 months\" (days, weeks, months, years)"
        )
    n, unit = int(found.group(1)), found.group(2)
    if unit == "day":
        length = Duration(days=n)
    elif unit == "week":
        length = Duration(days=7 * n)
    else:
        length = Duration(months=n if unit == "month" else 12 * n)
    # Far enough for any retention law; a longer one would overflow dates ("9999 years").
    if length.months > LONGEST_MONTHS or length.days > LONGEST_MONTHS * 31:
        raise ConfigError(f"{where}: '{name}' must be at most 100 years")
    return length
