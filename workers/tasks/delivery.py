"""Outbox consumers: e-mail and reminders, plus the relay and the escalation pass (beat).

Every task takes an id (or nothing), claims its row with a conditional update and a lease, and is
a no-op when redelivered. Transient failures are recorded on the row and retried when it is due
again; Celery countdowns are never used.
"""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime
from uuid import UUID

from celery import current_app, shared_task

from confide import jobs, logs, mail
from confide.context import Context
from confide.services import (
    attachments,
    deadlines,
    housekeeping,
    lifecycle,
    notifications,
    reminders,
)
from confide.sql import outbox as sql_outbox
from confide.sql.outbox import OutboxItem
from workers import context, db

log = logs.get("confide.worker.delivery")
TRANSIENT = (smtplib.SMTPException, OSError)
# Twice the relay's period (schedules.beat.OUTBOX_RELAY_EVERY_S, 15 s).
STRIP_SEND_EXPIRES_S = 30.0


def backoff_s(attempts: int) -> float:
    return float(min(30 * 2 ** max(attempts - 1, 0), 3600))


@shared_task(name=jobs.DELIVER, acks_late=True)
def deliver_outbox_item(outbox_id: str) -> None:
    """Idempotent: a redelivered or duplicate message finds the row claimed or sent."""
    db.run(_deliver(UUID(outbox_id)))


async def _deliver(outbox_id: UUID) -> None:
    ctx = await context.current()
    pool = ctx.pool
    async with pool.acquire() as conn:
        row = await sql_outbox.claim(conn, outbox_id)
    if row is None:
        return
    try:
        if row.kind == "reminder":
            if row.thread_id is not None:  # always: deadlines.queue_reminder names its thread
                await reminders.regenerate(ctx, row.thread_id)
        else:
            async with pool.acquire() as conn:
                message = await notifications.render(ctx, conn, row)
            if message is not None:
                mail.send(ctx.settings, message)
    except TRANSIENT as exc:
        await _record_failure(ctx, row, exc)
        return
    except Exception as exc:  # a bug: record it on the row (dead after N), then fail loudly
        await _record_failure(ctx, row, exc)
        raise DeliveryFailed(type(exc).__name__) from None
    async with pool.acquire() as conn:
        await sql_outbox.mark_sent(conn, outbox_id)
    log.info("outbox_done", outbox_id=str(outbox_id), task=row.kind)


class DeliveryFailed(Exception):
    """Carries only the original exception's type name: never a message with user data."""


async def _record_failure(ctx: Context, row: OutboxItem, exc: BaseException) -> None:
    give_up = row.attempts >= ctx.settings.outbox_max_attempts
    async with ctx.pool.acquire() as conn:
        await sql_outbox.schedule_retry(
            conn,
            row.id,
            error=type(exc).__name__,
            delay_s=backoff_s(row.attempts),
            give_up=give_up,
        )
    log.warning(
        "outbox_retry",
        outbox_id=str(row.id),
        attempts=row.attempts,
        exc_type=type(exc).__name__,
        outcome="dead" if give_up else "retry",
    )


@shared_task(name=jobs.RELAY_OUTBOX, acks_late=True, expires=60)
def relay_outbox() -> int:
    """Publish every due outbox row. Redis is only the wake-up signal: this finds them all."""

    async def due() -> list[UUID]:
        ctx = await context.current()
        async with ctx.pool.acquire() as conn:
            return await sql_outbox.due_ids(conn, 500)

    async def due_files() -> list[UUID]:
        return await attachments.due(await context.current())

    ids = db.run(due())
    for outbox_id in ids:
        deliver_outbox_item.apply_async(
            args=[str(outbox_id)], argsrepr="(<outbox>)", kwargsrepr="{}", queue=jobs.DEFAULT_QUEUE
        )
    # Attachments waiting to be stripped are their own outbox rows (state preparing, leased):
    # sent by name to the files queue, so this module needs no import of the files tasks.
    files = db.run(due_files())
    for attachment_id in files:
        current_app.send_task(
            jobs.STRIP_ATTACHMENT,
            args=[str(attachment_id)],
            argsrepr="(<attachment>)",
            kwargsrepr="{}",
            queue=jobs.FILES_QUEUE,
            # The relay sends a due file again each period: a copy still queued after that is
            # dropped, so a backed-up files queue holds at most about two per file.
            expires=STRIP_SEND_EXPIRES_S,
        )
    return len(ids) + len(files)


@shared_task(name=jobs.PURGE_EXPIRED, acks_late=True, expires=60)
def purge_expired() -> None:
    """Forget expired sessions, drafts and uploads, and idempotency keys past 24 h; idempotent."""

    async def run() -> None:
        done = await housekeeping.purge_expired(await context.current())
        log.info(
            "purged",
            count=done.sessions
            + done.submission_keys
            + done.message_keys
            + done.drafts
            + done.uploads
            + done.chunks,
        )

    db.run(run())


@shared_task(name=jobs.ESCALATE, acks_late=True, expires=240)
def escalate_threads() -> None:
    """One escalation pass as of now; idempotent, safe from two beats at once."""

    async def run() -> None:
        report = await deadlines.escalation_pass(await context.current(), datetime.now(UTC))
        log.info("escalation_pass", count=report.overdue_alerts)

    db.run(run())
    relay_outbox.apply_async(argsrepr="()", kwargsrepr="{}", queue=jobs.DEFAULT_QUEUE)


LIFECYCLE_BUDGET_S = 180.0


@shared_task(name=jobs.LIFECYCLE, acks_late=True, expires=3000)
def run_lifecycle_pass() -> None:
    """One lifecycle pass as of now (auto-close, inactivity closes, warnings, erasure).
    Idempotent and set-based: two at once skip each other's locked rows."""

    async def run() -> None:
        # Inside the workers' task_soft_time_limit (240 s): a backlog is carried on hourly.
        report = await lifecycle.run_pass(
            await context.current(), datetime.now(UTC), budget_s=LIFECYCLE_BUDGET_S
        )
        log.info("lifecycle_pass", count=report.erased)

    db.run(run())
