"""Reply deadlines on threads, and the escalation pass (issue 5, CONTRACTS §4–§5)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from uuid import UUID

from asyncpg import Connection

from confide import org
from confide.context import Context
from confide.services.staff import THREAD_READER_ROLES
from confide.services.workdays import WorkingCalendar
from confide.settings import Settings
from confide.sql import deadlines as sql_deadlines
from confide.sql import outbox as sql_outbox
from confide.sql import statutory as sql_statutory

ESCALATION_JOB = "escalation"
DIGEST_JOB = "digest"


def due_and_nearing(
    calendar: WorkingCalendar, settings: Settings, since: datetime
) -> tuple[datetime, datetime]:
    due = calendar.reply_due_by(since, settings.reply_target_workdays)
    nearing = calendar.nearing_from(due, timedelta(hours=settings.nearing_working_hours))
    return due, nearing


async def start_clock(
    conn: Connection,
    calendar: WorkingCalendar,
    settings: Settings,
    thread_id: UUID,
    since: datetime,
) -> datetime:
    """The clock runs from the earliest unanswered reporter report or message. Inside the
    caller's transaction, so it takes the connection (and the two parts of the context it uses)."""
    due, nearing = due_and_nearing(calendar, settings, since)
    await sql_deadlines.set_clock(conn, thread_id, since, due, nearing)
    await queue_reminder(conn, thread_id)
    return due


async def stop_clock(conn: Connection, thread_id: UUID) -> None:
    """A case worker's message, closing, or 'contacted' stops it."""
    await sql_deadlines.clear_clock(conn, thread_id)
    await queue_reminder(conn, thread_id)


async def queue_reminder(conn: Connection, thread_id: UUID) -> None:
    """Ask a worker to (re)build the reporter's .ics whenever the due time changes."""
    await sql_outbox.enqueue(conn, "reminder", thread_id=thread_id)


@dataclass
class PassReport:
    as_of: datetime
    teams: dict[str, dict[str, int]] = field(default_factory=dict)
    digests: list[str] = field(default_factory=list)
    overdue_alerts: int = 0
    # Teams with statutory clocks nearing or overdue (docs/lifecycle.md): a field the contract's
    # JSON gains, beside the reply-promise counts, which it does not change.
    statutory: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "as_of": self.as_of.isoformat(),
            "teams": self.teams,
            "digests": self.digests,
            "overdue_alerts": self.overdue_alerts,
            "statutory": self.statutory,
        }


class _DryRun(Exception):
    pass


def digest_due(calendar: WorkingCalendar, settings: Settings, as_of: datetime) -> str | None:
    """The local date whose digests are due at ``as_of``, if it is a working day past digest time."""
    local = as_of.astimezone(calendar.tz)
    hour, minute = (int(x) for x in settings.digest_time.split(":"))
    if not calendar.is_working_day(local.date()) or local.time() < time(hour, minute):
        return None
    return local.date().isoformat()


def erasure_until(ctx: Context, as_of: datetime) -> datetime:
    """The end of the erasure warning period from ``as_of``: digests list the threads to be
    erased before it (docs/lifecycle.md "Warnings before erasure")."""
    days = org.cached(ctx.settings.org_file).lifecycle.erasure_warning_days
    return ctx.calendar.add_working_time(as_of, ctx.calendar.day_length * days)


async def escalation_pass(ctx: Context, as_of: datetime, *, dry_run: bool = False) -> PassReport:
    """Mark nearing/overdue threads, alert managers once per overdue thread, keep the per-team
    summary, and at digest time queue one digest per (team, day). Idempotent; ``dry_run``
    computes the same report and changes nothing."""
    report = PassReport(as_of)
    try:
        async with ctx.pool.acquire() as conn, conn.transaction():
            _, report.overdue_alerts = await sql_deadlines.escalate(conn, as_of)
            await sql_statutory.escalate(conn, as_of)  # beside the reply promise (0024)
            report.statutory = await sql_statutory.team_counts(conn)
            for row in await sql_deadlines.refresh_summary(conn, as_of):
                report.teams[row.slug] = {"nearing": row.nearing, "overdue": row.overdue}
            day = digest_due(ctx.calendar, ctx.settings, as_of)
            if day is not None:
                report.digests = await sql_deadlines.queue_digests(
                    conn, day, as_of, list(THREAD_READER_ROLES), erasure_until(ctx, as_of)
                )
                await sql_deadlines.record_success(conn, DIGEST_JOB, as_of)
            await sql_deadlines.record_success(conn, ESCALATION_JOB, as_of)
            if dry_run:
                raise _DryRun()
    except _DryRun:
        pass
    return report
