"""Dates and working time shown to people: Babel's CLDR formats in the page's locale.

One :class:`DateFormats` per language, beside the Jinja2 environment that renders it (the
templates' ``when``, ``time_of_day``, ``due_words``, ``waited`` and ``working_left`` filters).
The page's locale is its environment's: today every page is en-GB, and a language switch
(docs/i18n.md) will pick the environment, and with it these formats, per request. The words
around the figures ("working", "on") go through the same gettext catalogue as the templates.

Patterns come from the locale's CLDR data (the long date, the 12-hour clock skeleton ``hm``,
the weekday skeleton ``MMMMEEEEd``, the narrow hour and minute units), so Welsh gets Welsh
month names, day periods and word order without code. For en-GB: ``30 December 2026, 6:46 pm``,
``5 pm on Wednesday 30 December``, ``3h 5m working time left``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TypeVar

from babel import Locale
from babel.dates import format_date, format_time, match_skeleton, parse_pattern
from babel.lists import format_list
from babel.units import format_unit

from confide.services.workdays import WorkingCalendar
from webapp.i18n import _, ngettext

T = TypeVar("T", bound=Hashable)
MAX_CACHED = 4096  # entries per cache; emptied when full


class DateFormats:
    """Formatting of moments and working time for one locale and one organisation.

    Speed-up for ``make bench`` ``inbox`` (p99 ÷ bare form ≤ 1.5, met narrowly): Babel takes
    7–14 µs to format a date, a time or both (timeit: ``format_date`` 7, ``format_time`` 8,
    ``format_datetime`` with a pattern 14), against about 1 µs for the hand-written formatting
    it replaced, and a 50-row inbox page shows 150 moments. Every piece that depends only on the
    calendar day (``30 December 2026``), the minute of the day (``6:46 pm``) or a number of
    minutes (``3h 5m``) is formatted once and kept: the patterns hold no seconds, zone or era, so
    the same day or minute always gives the same text. Measured per call over 150 moments
    (timeit, before → after): ``when`` 1.3–2.5 → 1.5–1.8 µs, ``time_of_day`` 0.9 → 0.6–1.0,
    ``due_words`` 1.2–2.3 → 1.5–2.4, ``waited`` and ``working_left`` 6–23 → 10–11 (the
    working-time sum dominates); with empty caches 11–16 µs. :class:`webapp.categories.InboxRows`
    keeps whole rows for a minute, so these caches serve its misses and the reporter and staff
    pages, which are not cached.
    """

    def __init__(
        self,
        locale: Locale | str,
        tz: tzinfo,
        calendar: WorkingCalendar,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.locale = Locale.parse(locale)
        self.tz = tz
        self.calendar = calendar
        self.now = now
        self._date = self.locale.date_formats["long"].pattern
        self._clock = _skeleton(self.locale, "hm")
        self._hour = _skeleton(self.locale, "h")
        self._weekday = _skeleton(self.locale, "MMMMEEEEd")
        self._day_month = _skeleton(self.locale, "MMMMd")
        # How the locale joins a date and a time ("{1}, {0}"), as babel.dates.format_datetime.
        self._joined = str(self.locale.datetime_formats["medium"]).replace("'", "")
        self._dates: dict[date, str] = {}
        self._days: dict[date, str] = {}
        self._day_months: dict[date, str] = {}
        self._clocks: dict[tuple[int, int], str] = {}
        self._durations: dict[int, str] = {}

    def when(self, moment: datetime | None) -> str:
        """``30 December 2026, 6:46 pm`` in the organisation's time zone."""
        if moment is None:
            return ""
        local = moment.astimezone(self.tz)
        day = _cached(self._dates, local.date(), self._format_date)
        return self._joined.replace("{0}", self._time(local)).replace("{1}", day)

    def time_of_day(self, moment: datetime) -> str:
        """``6:46 pm``."""
        return self._time(moment.astimezone(self.tz))

    def due_words(self, due: datetime) -> str:
        """``5 pm on Wednesday 30 December``, as reporters read it."""
        local = due.astimezone(self.tz)
        clock = self._time(local) if local.minute else self._on_the_hour(local)
        day = _cached(self._days, local.date(), self._format_weekday)
        return _("%(time)s on %(day)s") % {"time": clock, "day": day}

    def last_day_before(self, moment: datetime) -> str:
        """``15 January``: the last whole day before ``moment`` (the day before it, locally),
        so that a reporter told "by 15 January" is never too late (auto-close)."""
        local = (moment - timedelta(days=1)).astimezone(self.tz)
        return _cached(self._day_months, local.date(), self._format_day_month)

    def _format_day_month(self, day: date) -> str:
        return format_date(day, self._day_month, locale=self.locale)

    def waited(self, since: datetime | None) -> str:
        """Working time waited so far: ``3h 5m working``."""
        if since is None:
            return ""
        spent = self.calendar.working_time_between(since, self.now())
        return _("%(duration)s working") % {"duration": self.duration(spent)}

    def working_left(self, due: datetime | None) -> str:
        """``3h 5m working time left``, or ``overdue by 1h 0m working``."""
        if due is None:
            return ""
        now = self.now()
        if due <= now:
            late = self.duration(self.calendar.working_time_between(due, now))
            return _("overdue by %(duration)s working") % {"duration": late}
        left = self.duration(self.calendar.working_time_between(now, due))
        return _("%(duration)s working time left") % {"duration": left}

    def erased_in(self, due: datetime | None, within: int) -> str:
        """``Erased in 3 working days`` when erasure is due within ``within`` working days of
        now, else "" (docs/lifecycle.md "Warnings before erasure")."""
        if due is None:
            return ""
        now = self.now()
        day, last, n = now.astimezone(self.tz).date(), due.astimezone(self.tz).date(), 0
        while day < last and n <= within:
            day += timedelta(days=1)
            n += self.calendar.is_working_day(day)
        if n > within:
            return ""
        if due <= now or n == 0:
            return _("Erased at the next lifecycle pass")
        return ngettext("Erased in %(num)d working day", "Erased in %(num)d working days", n) % {
            "num": n
        }

    def duration(self, delta: timedelta) -> str:
        """Hours and minutes in the locale's narrow units, ``3h 5m`` or ``45m``.

        Not ``format_timedelta``: it rounds to one unit ("3 hours" for 3h 29m, "1 hour" from
        51 minutes), and a deadline of 16 working hours is read to the minute.
        """
        minutes = max(0, int(delta.total_seconds() // 60))
        return _cached(self._durations, minutes, self._format_duration)

    def _time(self, local: datetime) -> str:
        return _cached(self._clocks, (local.hour, local.minute), self._format_clock)

    def _on_the_hour(self, local: datetime) -> str:
        return format_time(time(local.hour), self._hour, locale=self.locale)

    def _format_date(self, day: date) -> str:
        return format_date(day, self._date, locale=self.locale)

    def _format_weekday(self, day: date) -> str:
        return format_date(day, self._weekday, locale=self.locale)

    def _format_clock(self, hour_minute: tuple[int, int]) -> str:
        return format_time(time(*hour_minute), self._clock, locale=self.locale)

    def _format_duration(self, minutes: int) -> str:
        hours, minutes = divmod(minutes, 60)
        parts = [format_unit(minutes, "duration-minute", length="narrow", locale=self.locale)]
        if hours:
            parts.insert(
                0, format_unit(hours, "duration-hour", length="narrow", locale=self.locale)
            )
        return format_list(parts, style="unit-narrow", locale=self.locale)


def _skeleton(locale: Locale, skeleton: str) -> str:
    """The locale's pattern for a CLDR skeleton, or its nearest one (resolved once)."""
    found = match_skeleton(skeleton, locale.datetime_skeletons)
    return parse_pattern(locale.datetime_skeletons[found]).pattern if found else skeleton


def _cached(cache: dict[T, str], key: T, make: Callable[[T], str]) -> str:
    found = cache.get(key)
    if found is None:
        if len(cache) >= MAX_CACHED:
            cache.clear()
        found = cache[key] = make(key)
    return found
