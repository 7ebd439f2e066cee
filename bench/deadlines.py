"""Reply-due computations per second in one process: ``WorkingCalendar().reply_due_by(start)``.

100,000 random aware UTC datetimes, uniform over 2026–2027 (fixed seed), each given to Confide's
``confide.services.workdays.WorkingCalendar().reply_due_by`` (2 working days, England and Wales,
09:00–17:00 Europe/London).

Baseline: the plain loop with an ``lru_cache`` on the date step, as in the machine-limits study
(``workdays.py``, "cached"): clamp the start to the next working instant, then the same
wall-clock time on the 2nd following working day (``holidays`` GB/ENG). The two rules agree
except where a deadline lands exactly on a closing time: Confide answers 17:00, the baseline
09:00 the next working day, the same instant of working time. The bench counts both cases.
Runs alternate in one process. When Confide misses its target, a short cProfile of it follows.
"""

from __future__ import annotations

import cProfile
import functools
import io
import pstats
import random
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from zoneinfo import ZoneInfo

import holidays

from bench.common import Context, Result, Target, say
from confide.services.workdays import WorkingCalendar

NAME = "deadlines"
TITLE = "Reply-due times: WorkingCalendar().reply_due_by over 100,000 random starts"
CALLS = 100_000
SEED = 20261125
RATIO_TARGET = Target(">=", 0.60)
PROFILE_CALLS = 20_000

LONDON = ZoneInfo("Europe/London")
OPENS, CLOSES = dtime(9), dtime(17)
ONE_DAY = timedelta(days=1)
BANK_HOLIDAYS = holidays.country_holidays("GB", subdiv="ENG", years=range(2025, 2030))


def _is_workday(day: date) -> bool:
    return day.weekday() < 5 and day not in BANK_HOLIDAYS


def _nth_workday_after(day: date, n: int) -> date:
    while n:
        day += ONE_DAY
        if _is_workday(day):
            n -= 1
    return day


# The study's "cached" variant caches the N-th-working-day step only; the clamp stays a loop.
_cached_nth_workday_after = functools.lru_cache(maxsize=4096)(_nth_workday_after)


def bare_due(start: datetime, workdays: int = 2) -> datetime:
    """Clamp to the next working instant, then the same wall-clock time ``workdays`` later."""
    local = start.astimezone(LONDON)
    day, clock = local.date(), local.time()
    if _is_workday(day) and clock < CLOSES:
        clock = max(clock, OPENS)
    else:
        day, clock = _nth_workday_after(day, 1), OPENS
    due = _cached_nth_workday_after(day, workdays)
    return datetime.combine(due, clock, tzinfo=LONDON).astimezone(UTC)


def _starts(count: int) -> list[datetime]:
    rnd = random.Random(SEED)
    low = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    high = datetime(2028, 1, 1, tzinfo=UTC).timestamp()
    return [datetime.fromtimestamp(rnd.uniform(low, high), UTC) for _ in range(count)]


def _timed(function: Callable[[datetime], datetime], starts: list[datetime]) -> float:
    """Calls per second over all of ``starts``."""
    began = time.perf_counter()
    for start in starts:
        function(start)
    return len(starts) / (time.perf_counter() - began)


def run(ctx: Context) -> list[Result]:
    calendar = WorkingCalendar()
    starts = _starts(CALLS)
    _check_agreement(calendar, starts)
    variants: dict[str, Callable[[datetime], datetime]] = {
        "bare": bare_due,
        "confide": calendar.reply_due_by,
    }
    for function in variants.values():  # warm-up: caches filled, code paths hot
        _timed(function, starts)
    rates: dict[str, list[float]] = {"bare": [], "confide": []}
    for i in range(ctx.runs):
        for which in ("bare", "confide") if i % 2 == 0 else ("confide", "bare"):
            rate = _timed(variants[which], starts)
            rates[which].append(rate)
            say(f"    run {i + 1} {which:<8} {rate:9,.0f} calls/s = {1e6 / rate:5.2f} µs per call")
    ratios = tuple(c / b for c, b in zip(rates["confide"], rates["bare"], strict=True))
    results = [
        Result("deadlines: calls/s Confide ÷ bare", ratios, target=RATIO_TARGET),
        Result("deadlines: Confide calls/s", tuple(rates["confide"]), digits=0),
        Result("deadlines: bare calls/s", tuple(rates["bare"]), digits=0),
        Result("deadlines: Confide µs per call", tuple(1e6 / r for r in rates["confide"]), "µs"),
        Result("deadlines: bare µs per call", tuple(1e6 / r for r in rates["bare"]), "µs"),
    ]
    if not results[0].is_met:
        _profile(calendar, starts[:PROFILE_CALLS])
    return results


def _check_agreement(calendar: WorkingCalendar, starts: list[datetime]) -> None:
    """Both rules must give the same instant, or the same working time (17:00 vs next 09:00)."""
    same = boundary = 0
    for start in starts:
        ours, bare = calendar.reply_due_by(start), bare_due(start)
        if ours == bare:
            same += 1
            continue
        local = ours.astimezone(LONDON)
        if local.time() == CLOSES and bare == calendar.next_opening(local + timedelta(seconds=1)):
            boundary += 1
            continue
        raise RuntimeError(f"deadlines disagree for {start.isoformat()}: {ours} vs {bare}")
    say(
        f"  {len(starts):,} starts: {same:,} identical deadlines, {boundary:,} at a closing time "
        "that the baseline gives as the next opening (the same working time)"
    )


def _profile(calendar: WorkingCalendar, starts: list[datetime]) -> None:
    """Where Confide's time goes (cProfile inflates small calls; read it as proportions)."""
    profiler = cProfile.Profile()
    profiler.enable()
    for start in starts:
        calendar.reply_due_by(start)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(8)
    say(f"  target missed: cProfile of {len(starts):,} Confide calls, top functions by own time")
    lines = out.getvalue().splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    for line in lines[header:]:
        if line.strip():
            say("    " + line.strip().replace("/work/main/", ""))
