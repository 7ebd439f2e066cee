"""Working time and the reply-due rule (CONTRACTS §5).

Working time is Monday–Friday within the organisation's hours (default 09:00–17:00
Europe/London), excluding the region's bank holidays (the ``holidays`` package, GB subdivisions)
and configured closure days. A reply is due when ``reply_target`` working days' worth of working
time has passed since the start; a start outside working time moves to the next opening, and a due
time that falls exactly at a closing time is that closing time.

Dates outside the holiday data raise :class:`HolidayDataMissing`: never a silent wrong answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property, lru_cache
from zoneinfo import ZoneInfo

import holidays

from confide.errors import ConfideError
from confide.org import REGIONS, Organisation

LONDON = ZoneInfo("Europe/London")


class HolidayDataMissing(ConfideError):
    """The date is outside the years the ``holidays`` package covers."""


@dataclass(frozen=True)
class WorkingCalendar:
    region: str = "england-and-wales"
    tz: ZoneInfo = LONDON
    opens: time = time(9, 0)
    closes: time = time(17, 0)
    closure_days: frozenset[date] = field(default_factory=frozenset)

    @classmethod
    def for_org(cls, org: Organisation, region: str | None = None) -> WorkingCalendar:
        return cls(region or org.region, org.timezone, org.opens, org.closes, org.closure_days)

    @cached_property
    def day_length(self) -> timedelta:
        return datetime.combine(date.min, self.closes) - datetime.combine(date.min, self.opens)

    def is_working_day(self, day: date) -> bool:
        return self._day(day)[0]

    def _opening(self, day: date) -> datetime:
        return self._day(day)[1]

    def _closing(self, day: date) -> datetime:
        return self._day(day)[2]

    @cached_property
    def _days(self) -> dict[date, tuple[bool, datetime, datetime]]:
        return {}

    def _day(self, day: date) -> tuple[bool, datetime, datetime]:
        """Whether ``day`` is a working day, and its opening and closing, computed once per day.

        A staff inbox asks about the same few days hundreds of times per page: for ``make
        bench`` ``inbox``, this cache and strftime-free dates took a 50-row page from 9–12 ms to
        2.0 ms of web CPU (docs/benchmarks.md, second round), before rows were cached.
        """
        days = self._days
        found = days.get(day)
        if found is None:
            working = day.weekday() < 5 and day not in self.closure_days
            working = working and not _is_bank_holiday(self.region, day)
            found = (
                working,
                datetime.combine(day, self.opens, self.tz),
                datetime.combine(day, self.closes, self.tz),
            )
            if len(days) >= 20_000:  # about 55 years of days: never in practice
                days.clear()
            days[day] = found
        return found

    def next_opening(self, moment: datetime) -> datetime:
        """``moment`` if it is inside working time, else the next opening after it."""
        local = moment.astimezone(self.tz)
        day = local.date()
        if self.is_working_day(day) and self._opening(day) <= local < self._closing(day):
            return local
        if not (self.is_working_day(day) and local < self._opening(day)):
            day = self._next_working_day(day)
        return self._opening(day)

    def _next_working_day(self, day: date) -> date:
        for _ in range(400):
            day += timedelta(days=1)
            if self.is_working_day(day):
                return day
        raise HolidayDataMissing(f"no working day within a year after {day}")

    def add_working_time(self, start: datetime, amount: timedelta) -> datetime:
        """The instant when ``amount`` of working time has passed since ``start``."""
        moment = self.next_opening(start)
        remaining = amount
        while True:
            closing = self._closing(moment.date())
            available = closing - moment
            if remaining <= available:
                return moment + remaining
            remaining -= available
            moment = self._opening(self._next_working_day(moment.date()))

    def subtract_working_time(self, end: datetime, amount: timedelta) -> datetime:
        """The instant ``amount`` of working time before ``end`` (``end`` inside or at a close)."""
        moment = end.astimezone(self.tz)
        remaining = amount
        while True:
            opening = self._opening(moment.date())
            available = moment - opening if self.is_working_day(moment.date()) else timedelta(0)
            if remaining <= available:
                return moment - remaining
            remaining -= available
            day = moment.date() - timedelta(days=1)
            for _ in range(400):
                if self.is_working_day(day):
                    break
                day -= timedelta(days=1)
            moment = self._closing(day)

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Working time in [start, end); zero if end is not after start.

        Partial first and last days are measured; whole days between come from cached per-year
        counts, so a long wait costs no more than a short one.
        """
        if end <= start:
            return timedelta(0)
        moment = self.next_opening(start)
        end_local = end.astimezone(self.tz)
        if moment >= end_local:
            return timedelta(0)
        first = moment.date()
        last = end_local.date()
        if first == last:
            return min(self._closing(first), end_local) - moment
        total = self._closing(first) - moment
        total += self.day_length * _working_days_in(self, first + timedelta(days=1), last)
        if self.is_working_day(last):
            into = end_local - self._opening(last)
            total += min(max(into, timedelta(0)), self.day_length)
        return total

    def _working_time_between_stepwise(self, start: datetime, end: datetime) -> timedelta:
        """The same, one working day at a time (kept to check the fast version in tests)."""
        if end <= start:
            return timedelta(0)
        total = timedelta(0)
        moment = self.next_opening(start)
        end_local = end.astimezone(self.tz)
        while moment < end_local:
            closing = self._closing(moment.date())
            total += min(closing, end_local) - moment
            moment = self._opening(self._next_working_day(moment.date()))
        return total

    def reply_due_by(self, start: datetime, target_workdays: int = 2) -> datetime:
        """CONTRACTS §5: due after ``target_workdays`` × the working day of working time.

        Whole working days of working time end at the same time of day, N working days later,
        or at the closing time of the (N-1)th when the start is an opening (this fast path gives
        exactly what ``add_working_time`` gives; a test compares them).

        Serves ``make bench`` ``deadlines`` (calls/s ÷ a bare cached loop ≥ 0.60): the fast path
        and the cached N-th working day took it from 0.32–0.43 to 0.68–0.72 (docs/benchmarks.md).
        """
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        moment = self.next_opening(start)
        day = moment.date()
        if moment.timetz().replace(tzinfo=None) == self.opens:
            end_day = self._nth_working_day(day, target_workdays - 1)
            return self._closing(end_day)
        end_day = self._nth_working_day(day, target_workdays)
        return datetime.combine(end_day, moment.time(), self.tz)

    def _nth_working_day(self, day: date, n: int) -> date:
        return _nth_working_day(self, day, n)

    def nearing_from(self, due: datetime, left: timedelta | None = None) -> datetime:
        """When less than ``left`` (default: one working day) of working time remains."""
        return self.subtract_working_time(due, self.day_length if left is None else left)


@lru_cache(maxsize=256)
def _year_prefix(calendar: WorkingCalendar, year: int) -> tuple[int, ...]:
    """prefix[i] = working days among the first i days of the year."""
    day = date(year, 1, 1)
    counts = [0]
    while day.year == year:
        counts.append(counts[-1] + int(calendar.is_working_day(day)))
        day += timedelta(days=1)
    return tuple(counts)


def _working_days_in(calendar: WorkingCalendar, first: date, last: date) -> int:
    """Working days in [first, last)."""
    if last <= first:
        return 0
    total = 0
    while first.year < last.year:
        prefix = _year_prefix(calendar, first.year)
        total += prefix[-1] - prefix[first.timetuple().tm_yday - 1]
        first = date(first.year + 1, 1, 1)
    prefix = _year_prefix(calendar, first.year)
    return total + prefix[last.timetuple().tm_yday - 1] - prefix[first.timetuple().tm_yday - 1]


@lru_cache(maxsize=65536)
def _nth_working_day(calendar: WorkingCalendar, day: date, n: int) -> date:
    for _ in range(n):
        day = calendar._next_working_day(day)
    return day


@lru_cache(maxsize=4096)
def _is_bank_holiday(region: str, day: date) -> bool:
    start, end = _coverage()
    if not start <= day.year <= end:
        raise HolidayDataMissing(f"no bank holiday data for {day.year} (covers {start}–{end})")
    return any(day in _calendar(subdiv) for subdiv in REGIONS[region])


@lru_cache(maxsize=8)
def _calendar(subdiv: str) -> holidays.HolidayBase:
    return holidays.country_holidays("GB", subdiv=subdiv)


@lru_cache(maxsize=1)
def _coverage() -> tuple[int, int]:
    gb = _calendar("ENG")
    return int(getattr(gb, "start_year", 1872)), int(getattr(gb, "end_year", 2100))


def parse_start(text: str) -> datetime:
    """ISO 8601; without an offset it means Europe/London. An ambiguous local time takes its
    first occurrence; a time that does not exist (the spring-forward gap) moves forward."""
    value: datetime = datetime.fromisoformat(text.strip())
    if value.tzinfo is not None:
        return value
    local = value.replace(tzinfo=LONDON, fold=0)
    round_trip = local.astimezone(UTC).astimezone(LONDON)
    if round_trip.replace(tzinfo=None) != value:  # inside the gap: move forward
        gap = local.replace(fold=1).utcoffset() - local.replace(fold=0).utcoffset()  # type: ignore[operator]
        moved: datetime = (value + abs(gap)).replace(tzinfo=LONDON)
        return moved
    return local


def format_due(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS±HH:MM`` in Europe/London."""
    return moment.astimezone(LONDON).replace(microsecond=0).isoformat()
