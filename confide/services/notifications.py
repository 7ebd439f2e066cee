"""What each outbox mail says. Reference, category and a link: never report text, message text,
notes or contact details (the acknowledgement goes only to the reporter's own address)."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from uuid import UUID

from asyncpg import Connection

from confide import mail
from confide.context import Context
from confide.services import sign_in_notices
from confide.services.staff import THREAD_READER_ROLES
from confide.services.workdays import WorkingCalendar
from confide.settings import Settings
from confide.sql import deadlines as sql_deadlines
from confide.sql import org as sql_org
from confide.sql import staff as sql_staff
from confide.sql import statutory as sql_statutory
from confide.sql import threads as sql_threads
from confide.sql.outbox import OutboxItem
from confide.sql.threads import MailThread


def _when(calendar: WorkingCalendar, moment: datetime) -> str:
    local = moment.astimezone(calendar.tz)
    hour = local.hour % 12 or 12
    return f"{local:%a} {local.day} {local:%b} {hour}:{local:%M}{'am' if local.hour < 12 else 'pm'}"


MAX_LISTED = 200  # a mail lists at most this many threads; the Escalations page has them all


async def _erasing(
    conn: Connection, team_id: int, payload: dict[str, object], *, private: int | None
) -> list[sql_deadlines.ErasingThread]:
    """The threads a digest lists as to be erased within the warning period: the team's
    unrestricted ones in its shared digest, and in one person's digest the restricted ones they
    may see (a manager of the team, or the assignee)."""
    until = payload.get("erasure_until")
    if not isinstance(until, str):
        return []
    moment = datetime.fromisoformat(until)
    if private is None:
        return await sql_deadlines.erasing_threads(conn, team_id, moment)
    roles: list[str] = list(THREAD_READER_ROLES)
    return await sql_deadlines.restricted_erasing_threads(conn, team_id, private, roles, moment)


def _erasing_lines(
    ctx: Context, erasing: list[sql_deadlines.ErasingThread], base: str
) -> list[str]:
    if not erasing:
        return []
    lines = ["", "To be erased within the warning period (a manager can extend or hold):", ""]
    for t in erasing:
        lines.append(
            f"- {t.reference}  {t.category_name}  erased from {_when(ctx.calendar, t.erasure_due_at)}"
            f"\n  {base}/staff/threads/{t.reference}"
        )
    return lines


def _digest_as_of(payload: dict[str, object], queued_at: datetime) -> datetime:
    """The moment a digest describes: its pass's ``as_of`` (``confide escalate --as-of`` may be
    days from now), or, for a row queued before the payload carried it, when it was queued."""
    try:
        return datetime.fromisoformat(str(payload["as_of"]))
    except (KeyError, ValueError):
        return queued_at


async def _overdue_alert(
    conn: Connection, settings: Settings, calendar: WorkingCalendar, row: OutboxItem
) -> EmailMessage | None:
    """One mail to a manager for the team's threads that went overdue in one pass."""
    if row.staff_id is None or row.team_id is None:
        return None  # sql.deadlines.escalate always sets both
    to = await sql_staff.active_email(conn, row.staff_id)
    team = await sql_org.team(conn, row.team_id)
    if not to or team is None:
        return None
    if not await sql_staff.is_manager_of(conn, row.staff_id, team.id):
        return None  # no longer a manager of the team: they may not see its restricted threads
    as_of = datetime.fromisoformat(str(row.payload.get("as_of", "")))
    threads = await sql_deadlines.newly_overdue(conn, team.id, as_of)
    if not threads:
        return None  # every one was answered (or closed) before the mail went out
    base = settings.base_url
    if len(threads) == 1:
        only = threads[0]
        subject = f"Overdue: {only.reference} ({only.category_name})"
    else:
        subject = f"Overdue: {len(threads)} threads in {team.name}"
    lines = [
        f"These threads in {team.name} are past the 2-working-day limit for a reply:",
        "",
    ]
    for t in threads[:MAX_LISTED]:
        lines.append(
            f"- {t.reference}  {t.category_name}; due {_when(calendar, t.reply_due_at)}"
            f"\n  {base}/staff/threads/{t.reference}"
        )
    if len(threads) > MAX_LISTED:
        lines.append(f"… and {len(threads) - MAX_LISTED} more.")
    lines += ["", f"Escalations page: {base}/staff/escalations", ""]
    return mail.compose(settings, row.id, to=to, subject=subject, text="\n".join(lines))


PHASES = {"acknowledgement": "acknowledgement", "feedback": "feedback"}


def _statutory_lines(
    calendar: WorkingCalendar, base: str, threads: list[sql_statutory.StatutoryThread]
) -> list[str]:
    """The digest's part for the statutory clocks (EU Whistleblowing Directive), soonest due
    first: reference, category, which clock, its due time and a link. No content."""
    if not threads:
        return []
    lines = ["", "Statutory deadlines (EU Whistleblowing Directive) nearing or past:", ""]
    for t in threads[:MAX_LISTED]:
        lines.append(
            f"- {t.reference}  {t.category_name}  "
            f"{'OVERDUE' if t.statutory == 'overdue' else 'nearing'}; "
            f"{PHASES.get(t.phase, t.phase)} due {_when(calendar, t.due_at)}"
            f"\n  {base}/staff/threads/{t.reference}"
        )
    if len(threads) > MAX_LISTED:
        lines.append(f"… and {len(threads) - MAX_LISTED} more.")
    return lines


async def _thread_recipients(conn: Connection, thread_id: UUID, thread: MailThread) -> str:
    """Who hears of a new report or message: the team's shared address, or for a restricted
    thread only its assignee and the team's managers (never the shared address, never ops).
    Decided when the mail is sent, so a thread restricted since it was queued is covered."""
    if not thread.restricted:
        return str(thread.team_email or "")
    found = await sql_threads.restricted_recipients(conn, thread_id, list(THREAD_READER_ROLES))
    return ", ".join(found)


async def render(ctx: Context, conn: Connection, row: OutboxItem) -> EmailMessage | None:
    """The mail for an outbox row, or None when there is nobody to send it to."""
    kind = row.kind
    base = ctx.settings.base_url
    if kind in sign_in_notices.KINDS:  # a staff member's own sign-ins
        return await sign_in_notices.render(ctx, conn, row)
    if kind == "overdue_alert" and row.thread_id is None:
        return await _overdue_alert(conn, ctx.settings, ctx.calendar, row)
    thread_id = row.thread_id  # set for every kind but digests (and team overdue alerts)
    if kind in ("new_report", "new_message", "overdue_alert"):
        if thread_id is None:
            return None
        thread = await sql_threads.for_mail(conn, thread_id)
        if thread is None:
            return None
        if thread is None:
            return None
        link = f"{base}/staff/threads/{thread.reference}"
        if kind == "overdue_alert":
            if row.staff_id is None:
                return None
            to = await sql_staff.active_email(conn, row.staff_id)
            if not await sql_threads.staff_may_see(
                conn, thread_id, row.staff_id, list(THREAD_READER_ROLES)
            ):
                return None
            subject = f"Overdue: {thread.reference} ({thread.category_name})"
            text = (
                f"The reply to {thread.reference} ({thread.category_name}) in "
                f"{thread.team_name} is past its 2-working-day limit.\n\n{link}\n"
            )
        else:
            to = await _thread_recipients(conn, thread_id, thread)
            what = "New report" if kind == "new_report" else "New message from the reporter on"
            subject = f"{what} {thread.reference} ({thread.category_name})"
            text = (
                f"{what} {thread.reference} ({thread.category_name}).\n"
                f"Read it in Confide: {link}\n\nThis e-mail holds no report content.\n"
            )
        if not to:
            return None
        return mail.compose(ctx.settings, row.id, to=to, subject=subject, text=text)
    if kind == "acknowledgement":
        thread = None if thread_id is None else await sql_threads.for_mail(conn, thread_id)
        if thread is None or row.recipient is None:
            return None
        key = ctx.keyring.thread_key(thread_id, thread.data_key)
        to = key.open(row.recipient, f"outbox.recipient:{row.id}")
        text = (
            f"We have received your report. Your reference is {thread.reference}.\n\n"
            "The right team will read it and aim to contact you within 2 working days.\n"
            "If you or anyone else is in danger, call 999.\n"
        )
        return mail.compose(
            ctx.settings, row.id, to=to, subject="We have received your report", text=text
        )
    if kind == "digest":
        team = None if row.team_id is None else await sql_org.team(conn, row.team_id)
        if team is None:
            return None
        payload = row.payload
        day = payload.get("day", "")
        if row.staff_id is None:  # the team's digest, to its shared address
            to = team.email
            threads = await sql_deadlines.digest_threads(conn, team.id)
            statutory = await sql_statutory.digest_threads(conn, team.id)
            subject = f"Confide digest {day}: {len(threads)} thread(s) need a reply"
            which = "Threads"
        else:  # one person's digest of the team's restricted threads they may see
            to = await sql_staff.active_email(conn, row.staff_id) or ""
            roles: list[str] = list(THREAD_READER_ROLES)
            threads = await sql_deadlines.restricted_digest_threads(
                conn, team.id, row.staff_id, roles
            )
            statutory = await sql_statutory.restricted_digest_threads(
                conn, team.id, row.staff_id, roles
            )
            subject = f"Confide digest {day}: {len(threads)} restricted thread(s) need a reply"
            which = "Restricted threads"
        erasing = await _erasing(conn, team.id, payload, private=row.staff_id)
        if row.staff_id is not None and not threads and not statutory and not erasing:
            return None  # answered, or no longer theirs to see: nothing to tell them
        if statutory:
            subject += f", {len(statutory)} statutory deadline(s)"
        if not to:
            return None
        lines = [
            f"{which} nearing or past the 2-working-day limit for {team.name} ({day}),",
            "oldest first:",
            "",
        ]
        as_of = _digest_as_of(payload, row.created_at)
        for t in threads:
            waited = ctx.calendar.working_time_between(t.awaiting_since, as_of)
            hours = waited.total_seconds() / 3600
            lines.append(
                f"- {t.reference}  {t.category_name}  "
                f"{'OVERDUE' if t.escalation == 'overdue' else 'nearing'}; "
                f"waited {hours:.1f} working hours; due {_when(ctx.calendar, t.reply_due_at)}"
                f"\n  {base}/staff/threads/{t.reference}"
            )
        if not threads:
            lines.append("(None now: all have been answered since this digest was queued.)")
        lines += _statutory_lines(ctx.calendar, base, statutory)
        lines += _erasing_lines(ctx, erasing, base)
        lines += ["", f"Escalations page: {base}/staff/escalations", ""]
        return mail.compose(ctx.settings, row.id, to=to, subject=subject, text="\n".join(lines))
    return None
