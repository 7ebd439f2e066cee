"""The organisation file's auto-close and statutory-clock keys (``[lifecycle]``): how long an
anonymous thread may stay silent after a case worker's message before it closes, whether the EU
Whistleblowing Directive's clocks run, and the automatic acknowledgement's text
(docs/lifecycle.md "Auto-close and the statutory clocks")."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from confide.errors import ConfigError

_DURATION = re.compile(r"^\s*([1-9][0-9]{0,3})\s+(day|week|month|year)s?\s*$")
CLOCK_SETS = frozenset({"eu-directive"})
ACKNOWLEDGEMENT_MAX = 10_000  # the length of any message (confide.models.MESSAGE_MAX)


@dataclass(frozen=True, slots=True)
class Duration:
    """ "N days|weeks|months|years": months and years are calendar ones, counted in UTC, with a
    day past the month's end moved back to its last day (as PostgreSQL adds an interval)."""

    count: int
    unit: str  # day, week, month or year

    @property
    def interval(self) -> str:
        """The same length as PostgreSQL reads an interval (``$n::text::interval``)."""
        return f"{self.count} {self.unit}s"

    @property
    def shortest(self) -> timedelta:
        """No span of this duration is shorter (for an index-friendly first cut)."""
        days = {"day": 1, "week": 7, "month": 28, "year": 365}[self.unit]
        return timedelta(days=self.count * days)

    def after(self, moment: datetime) -> datetime:
        if self.unit in ("day", "week"):
            return moment + timedelta(days=self.count * (7 if self.unit == "week" else 1))
        months = self.count * (12 if self.unit == "year" else 1)
        utc = moment.astimezone(UTC)
        index = utc.month - 1 + months
        year, month = utc.year + index // 12, index % 12 + 1
        day = min(utc.day, calendar.monthrange(year, month)[1])
        return utc.replace(year=year, month=month, day=day)


def parse_duration(value: object, key: str, where: str) -> Duration:
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(
            f'{where}: \'{key}\' must read "N days", "N weeks", "N months" or "N years"'
        )
    return Duration(int(match.group(1)), match.group(2))


@dataclass(frozen=True, slots=True)
class ClockRules:
    # None: threads are never closed for silence (``auto_close_after = "never"``).
    auto_close_after: Duration | None = Duration(14, "day")
    clocks: frozenset[str] = frozenset()
    auto_acknowledgement: str = ""  # empty: no automatic acknowledgement

    @property
    def eu_directive(self) -> bool:
        return "eu-directive" in self.clocks

    def auto_close_at(
        self,
        *,
        anonymous: bool,
        closed: bool,
        last_caseworker_message_at: datetime | None,
        last_reporter_message_at: datetime | None,
    ) -> datetime | None:
        """When a thread closes for silence: an anonymous thread, not closed, whose last word
        is a case worker's; None otherwise (the rule of ``confide.sql.autoclose``)."""
        last = last_caseworker_message_at
        if self.auto_close_after is None or not anonymous or closed or last is None:
            return None
        if last_reporter_message_at is not None and last_reporter_message_at >= last:
            return None
        return self.auto_close_after.after(last)


def parse(section: object, where: str) -> ClockRules:
    """This part's keys of ``[lifecycle]``; other keys of the table belong to other rules."""
    if section is None:
        return ClockRules()
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: '[lifecycle]' must be a table")
    rules = ClockRules()
    after = section.get("auto_close_after")
    auto_close = rules.auto_close_after
    if after == "never":
        auto_close = None
    elif after is not None:
        auto_close = parse_duration(after, "lifecycle.auto_close_after", where)
    clocks = section.get("clocks", [])
    if not isinstance(clocks, list) or not set(clocks) <= CLOCK_SETS:
        raise ConfigError(f"{where}: 'lifecycle.clocks' must be [] or [\"eu-directive\"]")
    text = section.get("auto_acknowledgement", "")
    if not isinstance(text, str) or len(text.strip()) > ACKNOWLEDGEMENT_MAX:
        raise ConfigError(
            f"{where}: 'lifecycle.auto_acknowledgement' must be text of at most "
            f"{ACKNOWLEDGEMENT_MAX} characters"
        )
    return ClockRules(auto_close, frozenset(clocks), text.strip())


DEFAULT_RULES = ClockRules()  # what an organisation file without these keys gets
