"""Retention of threads (issue 16, docs/lifecycle.md): which quarter's key wraps a thread's data
key, the "erased in N working days" warning, a manager's one extension and the legal hold.

A closed thread's erasure is due its category's period after closure (the trigger of
migrations/0023 keeps ``closed_at`` and ``erasure_due_at`` right whoever closes or reopens it),
plus a manager's extension. A thread that is open has no due date; its data key is wrapped for
the earliest quarter it could be erased in (silent until closed for inactivity, then kept its
period), and rewrapped when its date is fixed or moves. A held thread has no due date at all:
its key is wrapped by the keyring's first key until the hold is lifted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from asyncpg import Connection

from confide import org
from confide.context import Context
from confide.crypto import DecryptionError, Keyring, quarter_of
from confide.errors import ConfideError, FieldError, NotFound, ValidationFailed
from confide.org import Duration, Lifecycle, Organisation, parse_duration
from confide.services.workdays import WorkingCalendar
from confide.sql import audit as sql_audit
from confide.sql import lifecycle as sql_lifecycle
from confide.sql.lifecycle import Wrap

REASON_MAX = 2000


def rules(ctx: Context) -> Lifecycle:
    """The organisation file's ``[lifecycle]`` rules (loaded once per process)."""
    return org.cached(ctx.settings.org_file).lifecycle


async def sync_rules(conn: Connection, organisation: Organisation) -> None:
    """Keep the retention periods in PostgreSQL (where the closing trigger reads them) in step
    with the organisation file."""
    lifecycle = organisation.lifecycle
    await sql_lifecycle.sync_rules(
        conn,
        lifecycle.retention.sql,
        {c.slug: lifecycle.retention_for(c.slug).sql for c in organisation.categories},
    )


def projected_erasure(lifecycle: Lifecycle, category: str, last_activity: datetime) -> datetime:
    """The earliest an open thread can be erased: closed for inactivity, then kept its period."""
    closes = lifecycle.close_inactive_after.after(last_activity)
    return lifecycle.retention_for(category).after(closes)


def wanted_quarter(lifecycle: Lifecycle, wrap: Wrap) -> str | None:
    """The quarter whose key should wrap this thread's data key; None while it is held."""
    if wrap.held:
        return None
    if wrap.erasure_due_at is not None:
        return quarter_of(wrap.erasure_due_at)
    return quarter_of(projected_erasure(lifecycle, wrap.category_slug, wrap.last_activity_at))


def new_wrap_for(
    keyring: Keyring, lifecycle: Lifecycle, wrap: Wrap
) -> tuple[UUID, bytes, bytes, str, str | None] | None:
    """The compare-and-set row that rewraps this thread's key for its quarter's current key,
    or None when it is wrapped right already. No content is touched."""
    if wrap.data_key is None:
        return None
    quarter = wanted_quarter(lifecycle, wrap)
    key_id = keyring.key_id_for_quarter(quarter)
    if wrap.data_key_id == key_id and wrap.data_key_quarter == quarter:
        return None
    old = bytes(wrap.data_key)
    try:
        new_id, new = keyring.rewrap(wrap.id, old, quarter)
    except DecryptionError:
        return None  # wrapped by a key this keyring lacks: left as it is, and it still opens
    return wrap.id, old, new, new_id, quarter


async def rewrap_thread(conn: Connection, ctx: Context, thread_id: UUID) -> bool:
    """After a thread's due date moved (closed, reopened, extended, held, released): rewrap
    its key for the new quarter, in the caller's transaction. True if it was rewrapped."""
    wrap = await sql_lifecycle.wrap_of(conn, thread_id, lock=True)
    if wrap is None:
        return False
    row = new_wrap_for(ctx.keyring, rules(ctx), wrap)
    return row is not None and await sql_lifecycle.set_wraps(conn, [row]) == 1


# --- Warnings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Warning:
    """What staff are told ahead: ``erased`` (closed, erasure due) or ``closes`` (open, an
    inactivity close due), in ``working_days`` (0: today or overdue)."""

    kind: str
    working_days: int
    at: datetime


def working_days_until(calendar: WorkingCalendar, now: datetime, then: datetime, cap: int) -> int:
    """Working days from ``now`` until ``then`` (0 once passed), counted up to ``cap + 1``."""
    if then <= now:
        return 0
    day, last, n = now.astimezone(calendar.tz).date(), then.astimezone(calendar.tz).date(), 0
    while day < last and n <= cap:
        day += timedelta(days=1)
        n += calendar.is_working_day(day)
    return n


def warning_for(
    ctx: Context,
    *,
    status: str,
    category: str,
    erasure_due_at: datetime | None,
    last_activity_at: datetime,
    held: bool,
) -> Warning | None:
    """The warning a thread shows now (``ctx.clock()``), if its erasure or inactivity close is
    within ``erasure_warning_days`` working days; None when held."""
    if held:
        return None
    lifecycle = rules(ctx)
    if status == "closed" and erasure_due_at is not None:
        kind, at = "erased", erasure_due_at
    elif status != "closed":
        kind, at = "closes", lifecycle.close_inactive_after.after(last_activity_at)
    else:
        return None
    cap = lifecycle.erasure_warning_days
    days = working_days_until(ctx.calendar, ctx.clock(), at, cap)
    return Warning(kind, days, at) if days <= cap else None


def erasure_in(ctx: Context, erasure_due_at: datetime | None) -> int | None:
    """For the inbox: working days until erasure, when within the warning period."""
    if erasure_due_at is None:
        return None
    cap = rules(ctx).erasure_warning_days
    days = working_days_until(ctx.calendar, ctx.clock(), erasure_due_at, cap)
    return days if days <= cap else None


# --- Managers: extension and legal hold ----------------------------------------------------


class AlreadyExtended(ConfideError):
    """Retention of a thread is extended once only."""


def extension_length(text: str, period: Duration) -> Duration:
    """A manager's extension: ``N days|weeks|months|years``, at most the category's period."""
    try:
        length = parse_duration(text, "extension", "extension")
    except ConfideError:
        raise ValidationFailed(
            [FieldError("extension", 'Give a length such as "6 months" or "30 days"')]
        ) from None
    probe = datetime(2000, 1, 1)
    if length.after(probe) <= probe or length.after(probe) > period.after(probe):
        raise ValidationFailed(
            [FieldError("extension", f"Extend by at most the category's period ({period})")]
        )
    return length


def extension_reason(text: str) -> str:
    reason = (text or "").strip()
    if not reason or len(reason) > REASON_MAX:
        raise ValidationFailed(
            [FieldError("reason", f"Give a reason (at most {REASON_MAX} characters)")]
        )
    return reason


async def extend(
    conn: Connection,
    ctx: Context,
    *,
    thread_id: UUID,
    category: str,
    staff_id: int,
    length_text: str,
    reason_text: str,
) -> None:
    """Extend a thread's retention once, with a reason (sealed under the thread key); audited
    with the length, never the reason. In the caller's transaction, on a row it may see."""
    length = extension_length(length_text, rules(ctx).retention_for(category))
    reason = extension_reason(reason_text)
    wrap = await sql_lifecycle.wrap_of(conn, thread_id, lock=True)
    if wrap is None:
        raise NotFound()
    sealed = ctx.keyring.thread_key(thread_id, wrap.data_key).seal(
        reason, f"threads.retention_extension_reason:{thread_id}"
    )
    if not await sql_lifecycle.extend(conn, thread_id, length.sql, staff_id, sealed, ctx.clock()):
        raise AlreadyExtended("Retention of this thread has been extended already.")
    await sql_audit.record(conn, staff_id, thread_id, "retention_extended", {"by": str(length)})
    await rewrap_thread(conn, ctx, thread_id)


async def set_hold(
    conn: Connection, ctx: Context, *, thread_id: UUID, staff_id: int, hold: bool
) -> bool:
    """Set or lift a legal hold (audited); True if it changed. Erasure skips a held thread;
    its key moves to the first key while held and back to its quarter's when lifted. A lifted
    hold leaves at least the warning period before erasure."""
    now = ctx.clock()
    # A hold lifted after (or just before) the erasure date would let the next pass erase the
    # thread unannounced: it then gets the whole warning period, as any other thread does.
    not_before = ctx.calendar.add_working_time(
        now, ctx.calendar.day_length * rules(ctx).erasure_warning_days
    )
    changed = await sql_lifecycle.set_hold(conn, thread_id, staff_id, hold, now, not_before)
    if changed:
        action = "legal_hold_set" if hold else "legal_hold_lifted"
        await sql_audit.record(conn, staff_id, thread_id, action)
        await rewrap_thread(conn, ctx, thread_id)
    return changed
