"""Statistics for managers (their teams) and admins (all): reports per month, team and category,
how reporters came (anonymous, with contact details, with follow-up: never the network path),
time to first reply in working hours, the share answered within the promise, open / closed /
overdue (issue 16, item 5; CONTRACTS §3 "Statistics").

Three layers, so that the report-submission request does no extra work and the page reads
precomputed rows only:

- **facts** (``statistics_facts``): one row per report, with no text and no reference, written by
  :func:`refresh` (a beat task) for threads changed since a watermark, and by
  :func:`capture_facts`, which the erasure calls in its own transaction before it deletes a
  thread: the row then loses its thread id and survives the thread.
- **monthly summaries** (``statistics_monthly``): one row per (month, team, category), recounted
  by :func:`refresh` from the facts of the groups that changed.
- **publication** (:func:`publish`): small counts are suppressed. A count under
  :data:`SUPPRESSED_BELOW` is never shown; the rule for one monthly cell is in :func:`publish_cell`
  (complementary suppression inside the cell, so the identities received = anonymous + with
  contact = open + closed cannot give a hidden count away), and every sum over cells (a range's
  totals, a month's bar) is published only when every cell it adds up is, so comparing two
  overlapping ranges cannot recover a hidden month. Medians, 90th percentiles and shares are
  withheld where they rest on fewer than 5 threads.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from uuid import UUID

from asyncpg import Connection

from confide.context import Context
from confide.domain import Role
from confide.errors import FieldError, ValidationFailed
from confide.services.threads import Forbidden, Staff
from confide.services.workdays import HolidayDataMissing, WorkingCalendar
from confide.sql import statistics as sql_statistics
from confide.sql.statistics import Fact, Group, GroupFact, Summary, ThreadState

SUPPRESSED_BELOW = 5
STATISTICS_ROLES = (Role.MANAGER, Role.ADMIN)
MAX_MONTHS = 120
DEFAULT_MONTHS = 12
BATCH = 1000
RECOUNT_BATCH = 200  # groups a round: about 200 × a month's reports of one category in memory
# Re-read this much activity before the watermark: a transaction that began before the last
# pass (its last_activity_at is its start time) may have committed after that pass read.
OVERLAP = timedelta(minutes=10)
ZERO_ID = UUID(int=0)

# First-reply histogram buckets (working hours): quarter hours up to 16 h (two working days),
# hours up to 80 h, 8 h steps up to 400 h, then one bucket for the rest. A range's median and
# 90th percentile are read from the sum of its cells' histograms.
EDGES: tuple[float, ...] = (
    tuple(i / 4 for i in range(1, 65))
    + tuple(float(h) for h in range(17, 81))
    + tuple(float(h) for h in range(88, 401, 8))
)
BUCKETS = len(EDGES) + 1


def bucket_of(hours: float) -> int:
    return bisect.bisect_right(EDGES, hours)


def _bucket_bounds(index: int) -> tuple[float, float]:
    low = 0.0 if index == 0 else EDGES[index - 1]
    high = EDGES[index] if index < len(EDGES) else EDGES[-1]
    return low, high


def histogram_percentile(histogram: Sequence[int], q: float) -> float | None:
    """The q-quantile of the times a histogram counts, interpolated inside its bucket."""
    total = sum(histogram)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(histogram):
        if count and seen + count >= rank:
            low, high = _bucket_bounds(index)
            return low + (high - low) * max(rank - seen, 0) / count
        seen += count
    return _bucket_bounds(len(histogram) - 1)[0]


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont)."""
    if not sorted_values:
        return None
    position = (len(sorted_values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


# --- Facts ------------------------------------------------------------------------------------


def month_of(moment: datetime, calendar: WorkingCalendar) -> date:
    return moment.astimezone(calendar.tz).date().replace(day=1)


def fact_of(state: ThreadState, calendar: WorkingCalendar, target_workdays: int) -> Fact:
    """A thread's facts row. The first reply is the first case-worker message, or marking a
    contact-details report contacted (whichever came first): what stops the reply clock."""
    replies = [t for t in (state.first_message_at, state.contacted_at) if t is not None]
    first_reply = min(replies) if replies else None
    has_promise = state.follow_up or not state.anonymous
    hours: float | None = None
    within = False
    if first_reply is not None:
        try:
            worked = calendar.working_time_between(state.received_at, first_reply)
            hours = round(worked.total_seconds() / 3600, 4)
            if has_promise:
                within = first_reply <= calendar.reply_due_by(state.received_at, target_workdays)
        except HolidayDataMissing:
            hours = None
    return Fact(
        thread_id=state.id,
        activity_at=state.last_activity_at,
        month=month_of(state.received_at, calendar),
        team_id=state.team_id,
        category_slug=state.category_slug,
        anonymous=state.anonymous,
        follow_up=state.follow_up,
        is_open=state.status != "closed",
        overdue=state.overdue and state.status != "closed",
        first_reply_hours=hours,
        within_target=within,
    )


def summarise(group: Group, facts: Sequence[GroupFact]) -> Summary:
    hours = sorted(f.first_reply_hours for f in facts if f.first_reply_hours is not None)
    histogram = [0] * BUCKETS
    for h in hours:
        histogram[bucket_of(h)] += 1
    anonymous = sum(f.anonymous for f in facts)
    is_open = sum(f.is_open for f in facts)
    return Summary(
        month=group[0],
        team_id=group[1],
        category_slug=group[2],
        received=len(facts),
        anonymous=anonymous,
        with_contact=len(facts) - anonymous,
        follow_up=sum(f.anonymous and f.follow_up for f in facts),
        open=is_open,
        closed=len(facts) - is_open,
        overdue=sum(f.overdue and f.is_open for f in facts),
        replied=len(hours),
        replied_within_target=sum(f.within_target for f in facts),
        median_hours=percentile(hours, 0.5),
        p90_hours=percentile(hours, 0.9),
        reply_histogram=tuple(histogram),
    )


async def _write_facts(
    conn: Connection, states: Sequence[ThreadState], calendar: WorkingCalendar, target: int
) -> set[Group]:
    return await sql_statistics.upsert_facts(conn, [fact_of(s, calendar, target) for s in states])


async def recount_dirty(conn: Connection) -> int:
    """Recount every dirty group from its facts; returns how many groups."""
    done = 0
    while groups := await sql_statistics.take_dirty(conn, RECOUNT_BATCH):
        by_group: dict[Group, list[GroupFact]] = defaultdict(list)
        for fact in await sql_statistics.group_facts(conn, groups):
            by_group[(fact.month, fact.team_id, fact.category_slug)].append(fact)
        summaries = [summarise(g, by_group[g]) for g in groups if by_group.get(g)]
        await sql_statistics.replace_summaries(conn, groups, summaries)
        done += len(groups)
    return done


async def refresh(ctx: Context) -> int:
    """One refresh pass: facts for threads changed since the watermark, overdue marks, then the
    summaries of every group that changed. Returns how many threads it read. Idempotent and
    safe from two beats at once (the second finds the lock taken and returns 0)."""
    calendar, target = ctx.calendar, ctx.settings.reply_target_workdays
    read = 0
    async with ctx.pool.acquire() as conn, conn.transaction():
        if not await sql_statistics.try_lock_refresh(conn):
            return 0
        started = await sql_statistics.database_now(conn)
        since = await sql_statistics.watermark(conn)
        floor = datetime.min.replace(tzinfo=started.tzinfo)
        cursor = (since - OVERLAP if since is not None else floor, ZERO_ID)
        while True:
            states = await sql_statistics.changed_threads(conn, cursor[0], cursor[1], BATCH)
            if states:
                groups = await _write_facts(conn, states, calendar, target)
                await sql_statistics.mark_dirty(conn, groups)
                read += len(states)
                cursor = (states[-1].last_activity_at, states[-1].id)
            if len(states) < BATCH:
                break
        await sql_statistics.mark_dirty(conn, await sql_statistics.sync_overdue(conn))
        await sql_statistics.mark_dirty(conn, await sql_statistics.clear_orphans(conn))
        await recount_dirty(conn)
        await sql_statistics.set_watermark(conn, started)
    return read


async def capture_facts(
    conn: Connection,
    thread_ids: Sequence[UUID],
    *,
    calendar: WorkingCalendar | None = None,
    target_workdays: int = 2,
) -> None:
    """For the erasure, in its transaction, before it deletes these threads: bring their facts
    rows up to date and cut them loose (no thread id, no activity time), so statistics survive
    the threads and name none of them. The summaries of their groups are recounted by the next
    refresh pass. Callers with a context pass ``calendar=ctx.calendar`` and
    ``target_workdays=ctx.settings.reply_target_workdays``; rows the refresh has already written
    (the usual case, long before erasure) need neither."""
    if not thread_ids:
        return
    states = await sql_statistics.stale_states(conn, thread_ids)
    calendar = calendar or WorkingCalendar()
    groups = await sql_statistics.write_detached(
        conn, [fact_of(s, calendar, target_workdays) for s in states]
    )
    written = {s.id for s in states}
    current = [t for t in thread_ids if t not in written]
    if current:
        groups |= await sql_statistics.detach(conn, current)
    await sql_statistics.mark_dirty(conn, groups)


# --- Publication ------------------------------------------------------------------------------

COUNTS = (
    "received",
    "anonymous",
    "with_contact",
    "follow_up",
    "open",
    "closed",
    "overdue",
    "replied_within_target",
)


@dataclass(frozen=True, slots=True)
class Figures:
    """Published figures: None is suppressed, never a count below SUPPRESSED_BELOW."""

    received: int | None
    anonymous: int | None
    with_contact: int | None
    follow_up: int | None
    open: int | None
    closed: int | None
    overdue: int | None
    replied_within_target: int | None
    share_within_target: float | None
    median_hours: float | None
    p90_hours: float | None

    def count(self, name: str) -> int | None:
        value: int | None = getattr(self, name)
        return value


@dataclass(frozen=True, slots=True)
class Counts:
    """A cell's true counts (what :func:`publish_cell` judges; never sent as they are)."""

    received: int
    anonymous: int
    with_contact: int
    follow_up: int
    open: int
    closed: int
    overdue: int
    replied: int
    replied_within_target: int
    median_hours: float | None = None
    p90_hours: float | None = None

    @classmethod
    def of(cls, s: Summary) -> Counts:
        """The summary's fields of the same names (every field of a cell is one of a summary's)."""
        return cls(**{f.name: getattr(s, f.name) for f in fields(cls)})


def _small(n: int) -> bool:
    return n < SUPPRESSED_BELOW


def _part_shown(part: int, whole: int) -> bool:
    """A part of a shown whole (follow-up of anonymous, overdue of open, in time of those the
    promise covers) is shown only when neither it nor what is left of the whole is small: the
    rest follows from subtraction, so "anonymous without follow-up" is a cell too."""
    rest = whole - part
    return not _small(part) and not 0 < rest < SUPPRESSED_BELOW


def _hours(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def publish_cell(c: Counts) -> Figures:
    """One monthly cell, suppressed:

    - fewer than 5 reports: nothing but the cell's existence is shown;
    - anonymous / with contact, and open / closed, each add up to received: if either of a pair
      is small, both are withheld (so neither follows from received and the other);
    - follow-up (a part of anonymous) and overdue (a part of open): withheld if small, if what is
      left of their whole is (1-4: it would follow by subtraction), or if the whole is withheld;
    - answered within the promise: shown only when it and the late rest are not small and the
      threads the promise applies to (follow-up + with contact) are both shown; the share
      likewise, so it never gives away a hidden count;
    - median and 90th percentile: only on 5 or more replied threads.
    """
    if _small(c.received):
        return Figures(*([None] * 11))
    pair_a = not (_small(c.anonymous) or _small(c.with_contact))
    pair_o = not (_small(c.open) or _small(c.closed))
    follow_up = c.follow_up if pair_a and _part_shown(c.follow_up, c.anonymous) else None
    overdue = c.overdue if pair_o and _part_shown(c.overdue, c.open) else None
    basis_shown = pair_a and follow_up is not None
    within = None
    if basis_shown and _part_shown(c.replied_within_target, c.follow_up + c.with_contact):
        within = c.replied_within_target
    share = None
    if within is not None and follow_up is not None:
        share = round(within / (follow_up + c.with_contact), 3)
    timed = not _small(c.replied)
    return Figures(
        received=c.received,
        anonymous=c.anonymous if pair_a else None,
        with_contact=c.with_contact if pair_a else None,
        follow_up=follow_up,
        open=c.open if pair_o else None,
        closed=c.closed if pair_o else None,
        overdue=overdue,
        replied_within_target=within,
        share_within_target=share,
        median_hours=_hours(c.median_hours) if timed else None,
        p90_hours=_hours(c.p90_hours) if timed else None,
    )


def publish_sum(cells: Sequence[Figures], histograms: Sequence[Sequence[int]]) -> Figures:
    """A sum over published cells (a range's totals, a month, a team, a category): each count is
    the sum of the cells' published counts, or withheld if any of them is; the share follows
    from shown counts only; the median and 90th percentile come from the cells' histograms and
    are shown only when every cell's own median is."""
    sums: dict[str, int | None] = {}
    for name in COUNTS:
        values = [c.count(name) for c in cells]
        # no cell at all: nothing was received, and no hidden cell stands behind the zero
        sums[name] = None if None in values else sum(v for v in values if v)
    within, fu, contact = sums["replied_within_target"], sums["follow_up"], sums["with_contact"]
    share = None
    if within is not None and fu is not None and contact is not None and fu + contact > 0:
        share = round(within / (fu + contact), 3)
    median = p90 = None
    if cells and all(c.median_hours is not None for c in cells):
        merged = [sum(column) for column in zip(*histograms, strict=True)]
        median, p90 = histogram_percentile(merged, 0.5), histogram_percentile(merged, 0.9)
    return Figures(
        received=sums["received"],
        anonymous=sums["anonymous"],
        with_contact=sums["with_contact"],
        follow_up=sums["follow_up"],
        open=sums["open"],
        closed=sums["closed"],
        overdue=sums["overdue"],
        replied_within_target=within,
        share_within_target=share,
        median_hours=_hours(median),
        p90_hours=_hours(p90),
    )


@dataclass(frozen=True, slots=True)
class Row:
    month: date
    team: str
    team_name: str
    category: str
    category_name: str
    figures: Figures


@dataclass(frozen=True, slots=True)
class Margin:
    """A sum over the rows of one month, team or category."""

    key: str
    label: str
    figures: Figures


@dataclass(frozen=True)
class Statistics:
    first: date
    last: date
    rows: list[Row]
    totals: Figures
    months: list[Margin] = field(default_factory=list)
    teams: list[Margin] = field(default_factory=list)
    categories: list[Margin] = field(default_factory=list)
    suppressed_below: int = SUPPRESSED_BELOW


def _margins(
    keyed: Iterable[tuple[str, str, Figures, Sequence[int]]], order: Sequence[str] | None = None
) -> list[Margin]:
    cells: dict[str, list[Figures]] = defaultdict(list)
    histograms: dict[str, list[Sequence[int]]] = defaultdict(list)
    labels: dict[str, str] = {}
    for key, label, figures, histogram in keyed:
        cells[key].append(figures)
        histograms[key].append(histogram)
        labels[key] = label
    keys = list(order) if order is not None else sorted(cells, key=lambda k: labels[k])
    return [
        Margin(k, labels.get(k, k), publish_sum(cells.get(k, []), histograms.get(k, [])))
        for k in keys
    ]


def publish(
    first: date, last: date, summaries: Sequence[sql_statistics.NamedSummary]
) -> Statistics:
    """The page, the CSV and the API all show exactly this: every number in it is a published
    cell or a sum of published cells."""
    rows = [
        Row(
            n.summary.month,
            n.team,
            n.team_name,
            n.summary.category_slug,
            n.category_name,
            publish_cell(Counts.of(n.summary)),
        )
        for n in summaries
    ]
    histograms = [n.summary.reply_histogram for n in summaries]
    months = [m.isoformat()[:7] for m in month_range(first, last)]
    return Statistics(
        first=first,
        last=last,
        rows=rows,
        totals=publish_sum([r.figures for r in rows], histograms),
        months=_margins(
            (
                (r.month.isoformat()[:7], r.month.isoformat()[:7], r.figures, h)
                for r, h in zip(rows, histograms, strict=True)
            ),
            order=months,
        ),
        teams=_margins(
            (r.team, r.team_name, r.figures, h) for r, h in zip(rows, histograms, strict=True)
        ),
        categories=_margins(
            (r.category, r.category_name, r.figures, h)
            for r, h in zip(rows, histograms, strict=True)
        ),
    )


# --- Reading ----------------------------------------------------------------------------------


def month_range(first: date, last: date) -> list[date]:
    months, month = [], first
    while month <= last:
        months.append(month)
        month = _add_months(month, 1)
    return months


def _add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def parse_month(text: str | None, name: str) -> date | None:
    """``YYYY-MM`` (or empty: None); anything else is a 422 naming the field."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    try:
        if len(value) != 7 or value[4] != "-":
            raise ValueError(value)
        parsed = date(int(value[:4]), int(value[5:]), 1)
    except ValueError:
        raise ValidationFailed([FieldError(name, "A month as YYYY-MM, such as 2026-01")]) from None
    if not 2000 <= parsed.year <= 2999:
        raise ValidationFailed([FieldError(name, "A month from 2000-01 to 2999-12")])
    return parsed


def choose_range(ctx: Context, start: str | None, end: str | None) -> tuple[date, date]:
    """The months asked for; by default the 12 months to this one. At most 120 months."""
    this_month = month_of(ctx.clock(), ctx.calendar)
    last = parse_month(end, "to") or this_month
    first = parse_month(start, "from") or _add_months(last, 1 - DEFAULT_MONTHS)
    if first > last:
        raise ValidationFailed([FieldError("from", "The first month must not be after the last")])
    if (last.year - first.year) * 12 + last.month - first.month >= MAX_MONTHS:
        raise ValidationFailed([FieldError("from", f"At most {MAX_MONTHS} months at a time")])
    return first, last


def detail_month(scope: Scope, text: str | None) -> date:
    """The month whose rows the page's per-month, team and category table shows (the CSV has
    them all): ``YYYY-MM`` within the scope's range, by default its last month."""
    month = parse_month(text, "month") or scope.last
    if not scope.first <= month <= scope.last:
        first, last = scope.first.isoformat()[:7], scope.last.isoformat()[:7]
        raise ValidationFailed([FieldError("month", f"A month from {first} to {last}")])
    return month


def may_read(staff: Staff) -> None:
    """Managers (their teams) and admins (all); case workers and ops get 403."""
    if staff.role not in STATISTICS_ROLES:
        raise Forbidden()


@dataclass(frozen=True, slots=True)
class Scope:
    """What one request may read: a range of months, and its teams (None: every team)."""

    first: date
    last: date
    team_ids: tuple[int, ...] | None

    @property
    def for_manager(self) -> bool:
        return self.team_ids is not None


def scope_of(ctx: Context, staff: Staff, start: str | None, end: str | None) -> Scope:
    """Managers: their teams; admins: all; anyone else: 403. The range as :func:`choose_range`."""
    may_read(staff)
    first, last = choose_range(ctx, start, end)
    team_ids = None if staff.role is Role.ADMIN else tuple(sorted(staff.team_ids))
    return Scope(first, last, team_ids)


async def version(ctx: Context) -> datetime | None:
    """When the summaries were last refreshed: a reader's cache is good while this holds."""
    async with ctx.pool.acquire() as conn:
        return await sql_statistics.watermark(conn)


async def read(ctx: Context, scope: Scope) -> Statistics:
    """The suppressed statistics of a scope (:func:`scope_of` decided who may read it)."""
    async with ctx.pool.acquire() as conn:
        found = await sql_statistics.summaries(conn, scope.first, scope.last, scope.team_ids)
    return publish(scope.first, scope.last, found)


async def statistics(ctx: Context, staff: Staff, start: str | None, end: str | None) -> Statistics:
    """What ``staff`` may see of [start, end], suppressed: managers only their teams' rows."""
    return await read(ctx, scope_of(ctx, staff, start, end))
