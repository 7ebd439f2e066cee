"""The reporter's calendar reminder (.ics), built by a worker with icalendar and kept in PostgreSQL.

Discreet by default: a neutral title, UTC times, no code, reference, report text or organisation
name. The UID is a keyed hash of the thread (stable, but unlinkable to it without the key), so a
new download updates the same event, with a higher SEQUENCE.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from uuid import UUID

from icalendar import Alarm, Calendar, Event

from confide.context import Context
from confide.crypto import keyed_hash
from confide.settings import Settings
from confide.sql import reminders as sql_reminders

TITLE = "Check for a reply"
EVENT_LENGTH = timedelta(minutes=15)


def event_uid(settings: Settings, thread_id: UUID) -> str:
    return keyed_hash(settings.session_key, "ics-uid", str(thread_id)).hex()[:32] + "@reminder"


def build(
    settings: Settings,
    thread_id: UUID,
    due: datetime,
    sequence: int,
    *,
    include_address: bool,
    cancelled: bool = False,
) -> bytes:
    cal = Calendar()
    cal.add("prodid", "-//Reminder//EN")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    event = Event()
    event.add("uid", event_uid(settings, thread_id))
    event.add("dtstamp", datetime.now(UTC).replace(microsecond=0))
    start = due.astimezone(UTC).replace(microsecond=0)
    event.add("dtstart", start)
    event.add("dtend", start + EVENT_LENGTH)
    event.add("sequence", sequence)
    event.add("summary", TITLE)
    description = "Log back in to check for a reply."
    if include_address:
        description += f" {settings.base_url}/login"
        event.add("url", f"{settings.base_url}/login")
    event.add("description", description)
    event.add("transp", "TRANSPARENT")
    if cancelled:
        event.add("status", "CANCELLED")
    else:
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", TITLE)
        alarm.add("trigger", timedelta(minutes=-15))
        event.add_component(alarm)
    cal.add_component(event)
    data: bytes = cal.to_ical()
    return data


def validate(data: bytes) -> list[str]:
    """Our own checks beyond parsing: UID, DTSTAMP, start before end, alarms with ACTION+TRIGGER."""
    problems: list[str] = []
    try:
        cal = Calendar.from_ical(data)
    except ValueError as exc:
        return [f"does not parse: {type(exc).__name__}"]
    events = [c for c in cal.walk("VEVENT")]
    if len(events) != 1:
        problems.append("needs exactly one VEVENT")
    for event in events:
        for prop in ("UID", "DTSTAMP", "DTSTART", "DTEND", "SUMMARY"):
            if event.get(prop) is None:
                problems.append(f"VEVENT lacks {prop}")
        start, end = event.get("DTSTART"), event.get("DTEND")
        if start is not None and end is not None and not start.dt < end.dt:
            problems.append("DTSTART is not before DTEND")
        for when in (start, end, event.get("DTSTAMP")):
            if when is not None and getattr(when.dt, "tzinfo", None) is None:
                problems.append("times must be UTC")
        for alarm in event.walk("VALARM"):
            if alarm.get("ACTION") is None or alarm.get("TRIGGER") is None:
                problems.append("VALARM needs ACTION and TRIGGER")
    return problems


async def regenerate(ctx: Context, thread_id: UUID) -> bool:
    """Rebuild the files if the due time changed. Idempotent: the same due time is a no-op."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        due = await sql_reminders.lock_due(conn, thread_id)
        row = await sql_reminders.stored(conn, thread_id)
        if row is not None and row.ics is not None and row.generated_for == due:
            return False
        previous = row.due_at if row is not None else None
        when: datetime | None = due or previous
        if when is None:
            return False  # never had a deadline: nothing to remind about
        sequence = (row.sequence + 1) if row is not None else 0
        cancelled = due is None  # answered or closed: the same event, cancelled
        await sql_reminders.store(
            conn,
            thread_id,
            due_at=when,
            sequence=sequence,
            ics=build(
                ctx.settings, thread_id, when, sequence, include_address=False, cancelled=cancelled
            ),
            ics_with_address=build(
                ctx.settings, thread_id, when, sequence, include_address=True, cancelled=cancelled
            ),
            generated_for=due,
        )
    return True


async def latest(ctx: Context, thread_id: UUID, *, include_address: bool) -> bytes | None:
    """The current file, or None if it is not ready yet (the page says: try again in a moment)."""
    async with ctx.pool.acquire() as conn:
        row = await sql_reminders.current(conn, thread_id)
    if row is None or row.ics is None or row.generated_for != row.reply_due_at:
        return None
    return row.ics_with_address if include_address else row.ics


TOKEN_LIFETIME = timedelta(minutes=30)


def _token_hmac(settings: Settings, token: str) -> bytes:
    return keyed_hash(settings.session_key, "reminder", token[:100])


async def issue_token(ctx: Context, thread_id: UUID) -> str:
    """A single-use token for the confirmation page's download form (never in a URL)."""
    token = secrets.token_urlsafe(32)
    async with ctx.pool.acquire() as conn:
        await sql_reminders.insert_token(
            conn, _token_hmac(ctx.settings, token), thread_id, TOKEN_LIFETIME.total_seconds()
        )
    return token


async def file_for_token(
    ctx: Context, token: str, *, include_address: bool
) -> tuple[bool, bytes | None]:
    """(token valid, file). The token is used up only when a file is actually served."""
    mac = _token_hmac(ctx.settings, token)
    async with ctx.pool.acquire() as conn:
        thread_id = await sql_reminders.token_thread(conn, mac)
    if thread_id is None:
        return False, None
    data = await latest(ctx, thread_id, include_address=include_address)
    if data is not None:
        async with ctx.pool.acquire() as conn:
            if not await sql_reminders.use_token(conn, mac):
                return False, None
    return True, data
