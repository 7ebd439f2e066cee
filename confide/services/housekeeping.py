"""Forgetting on time: expired sessions, reporters' drafts and passkey challenges, and
idempotency keys past their 24 h (CONTRACTS §3), and uploads not attached within their 60
minutes (nor held by a live draft), and file chunks of no upload or attachment."""

from __future__ import annotations

from dataclasses import dataclass

from confide.context import Context
from confide.idempotency import KEPT_FOR_S
from confide.services import attachments
from confide.sql import drafts as sql_drafts
from confide.sql import passkeys as sql_passkeys
from confide.sql import reports as sql_reports
from confide.sql import sessions as sql_sessions
from confide.sql import threads as sql_threads

BATCH = 5_000


@dataclass(frozen=True)
class Purged:
    sessions: int
    submission_keys: int
    message_keys: int
    drafts: int = 0
    uploads: int = 0
    chunks: int = 0


async def purge_expired(ctx: Context) -> Purged:
    """Idempotent, in batches (each its own short statement, so no long lock is held)."""
    async with ctx.pool.acquire() as conn:
        sessions = await sql_sessions.purge_expired(conn)
        submission_keys = message_keys = 0
        while n := await sql_reports.purge_submission_keys(conn, KEPT_FOR_S, BATCH):
            submission_keys += n
        while n := await sql_threads.purge_message_keys(conn, KEPT_FOR_S, BATCH):
            message_keys += n
        drafts = 0
        while n := await sql_drafts.purge_expired(conn, BATCH):
            drafts += n
        await sql_passkeys.purge_challenges(conn)  # spent ones are gone already: a few minutes'
    # After the drafts: an upload a draft held goes once that draft is gone.
    uploads = await attachments.purge_expired_uploads(ctx)
    # Then chunks no upload or attachment names any more (bounded: the rest next minute).
    chunks = await attachments.sweep_orphan_chunks(ctx)
    return Purged(sessions, submission_keys, message_keys, drafts, uploads, chunks)
