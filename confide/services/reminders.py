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


CLOSE_TITLE = "Last day to reply"
LAST_DAY = timedelta(days=1)  # the auto-close event: a day before the closing moment
CLOSE_DESCRIPTION = "Log back in and reply by this day to keep the conversation open."


def event_uid(settings: Settings, thread_id: UUID, purpose: str = "ics-uid") -> str:
    return keyed_hash(settings.session_key, purpose, str(thread_id)).hex()[:32] + "@reminder"


def _event(
    uid: str,
    when: datetime,
    sequence: int,
    *,
    title: str,
    description: str,
    url: str | None,
    cancelled: bool,
) -> Event:
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", datetime.now(UTC).replace(microsecond=0))
    start = when.astimezone(UTC).replace(microsecond=0)
    event.add("dtstart", start)
    event.add("dtend", start + EVENT_LENGTH)
    event.add("sequence", sequence)
    event.add("summary", title)
    if url is not None:
        description += f" {url}"
        event.add("url", url)
    event.add("description", description)
    event.add("transp", "TRANSPARENT")
    if cancelled:
        event.add("status", "CANCELLED")
    else:
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", title)
        alarm.add("trigger", timedelta(minutes=-15))
        event.add_component(alarm)
    return event


def build(
    settings: Settings,
    thread_id: UUID,
    due: datetime | None,
    sequence: int,
    *,
    include_address: bool,
    cancelled: bool = False,
    closes: datetime | None = None,
    closes_cancelled: bool = False,
) -> bytes:
    """The reminder: the reply's due time, and, once a thread can close for silence, a second
    event a day before it would (``closes``, the closing moment; cancelled once the reporter
    wrote or it closed): the last day to reply, as the messaging page says. ``due`` is None
    only when a case worker replied before the first file was built: the file then holds the
    second event alone."""
    cal = Calendar()
    cal.add("prodid", "-//Reminder//EN")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    url = f"{settings.base_url}/login" if include_address else None
    if due is not None:
        cal.add_component(
            _event(
                event_uid(settings, thread_id),
                due,
                sequence,
                title=TITLE,
                description="Log back in to check for a reply.",
                url=url,
                cancelled=cancelled,
            )
        )
    if closes is not None:
        cal.add_component(
            _event(
                event_uid(settings, thread_id, "ics-uid-close"),
                closes - LAST_DAY,
                sequence,
                title=CLOSE_TITLE,
                description=CLOSE_DESCRIPTION,
                url=url,
                cancelled=closes_cancelled,
            )
        )
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
    if len(events) not in (1, 2):
        problems.append("needs one VEVENT, or two with the auto-close day")
    if len({str(e.get("UID")) for e in events}) != len(events):
        problems.append("each VEVENT needs its own UID")
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


def _closes(ctx: Context, silence: sql_reminders.Silence | None) -> datetime | None:
    if silence is None:
        return None
    return ctx.rules.auto_close_at(
        anonymous=silence.anonymous,
        closed=silence.closed,
        last_caseworker_message_at=silence.last_caseworker_message_at,
        last_reporter_message_at=silence.last_reporter_message_at,
    )


async def regenerate(ctx: Context, thread_id: UUID) -> bool:
    """Rebuild the files if the due time or the auto-close time changed. Idempotent: the same
    times are a no-op."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        times = await sql_reminders.lock_times(conn, thread_id)
        if times is None:
            return False
        due, closes = times.reply_due_at, _closes(ctx, times.silence)
        row = await sql_reminders.stored(conn, thread_id)
        if (
            row is not None
            and row.ics is not None
            and row.generated_for == due
            and row.closes_for == closes
        ):
            return False
        previous = row.due_at if row is not None else None
        when: datetime | None = due or previous
        close_when = closes or (row.closes_at if row is not None else None)
        if when is None and close_when is None:
            return False  # never had a deadline: nothing to remind about
        sequence = (row.sequence + 1) if row is not None else 0
        cancelled = due is None  # answered or closed: the same event, cancelled
        files = [
            build(
                ctx.settings,
                thread_id,
                when,
                sequence,
                include_address=address,
                cancelled=cancelled,
                closes=close_when,
                closes_cancelled=closes is None,  # the reporter wrote, or it closed
            )
            for address in (False, True)
        ]
        await sql_reminders.store(
            conn,
            thread_id,
            due_at=when,
            sequence=sequence,
            ics=files[0],
            ics_with_address=files[1],
            generated_for=due,
            closes_at=close_when,
            closes_for=closes,
        )
    return True


async def latest(ctx: Context, thread_id: UUID, *, include_address: bool) -> bytes | None:
    """The current file, or None if it is not ready yet (the page says: try again in a moment)."""
    async with ctx.pool.acquire() as conn:
        row = await sql_reminders.current(conn, thread_id)
    if row is None or row.ics is None or row.generated_for != row.reply_due_at:
        return None
    if row.closes_for != _closes(ctx, row.silence):
        return None  # a reply or a message moved the auto-close day: the worker is on it
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
