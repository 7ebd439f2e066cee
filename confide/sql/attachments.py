"""SQL for attachments: pending uploads, attached files (also the stripping job's outbox row),
and the PostgreSQL chunk store (migrations/0026_attachments.sql)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from asyncpg import Connection

# --- Chunks (the PostgreSQL store: confide.files.store.PostgresChunkStore) -------------------


async def put_chunk(conn: Connection, file_id: UUID, copy: str, idx: int, data: bytes) -> None:
    await conn.execute(
        """INSERT INTO attachment_chunks (file_id, copy, idx, data) VALUES ($1, $2, $3, $4)
           ON CONFLICT (file_id, copy, idx) DO UPDATE SET data = EXCLUDED.data""",
        file_id,
        copy,
        idx,
        data,
    )


async def chunk_count(conn: Connection, file_id: UUID, copy: str) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM attachment_chunks WHERE file_id = $1 AND copy = $2",
            file_id,
            copy,
        )
    )


async def get_chunk(conn: Connection, file_id: UUID, copy: str, idx: int) -> bytes | None:
    data: bytes | None = await conn.fetchval(
        "SELECT data FROM attachment_chunks WHERE file_id = $1 AND copy = $2 AND idx = $3",
        file_id,
        copy,
        idx,
    )
    return data


async def delete_chunks(conn: Connection, file_id: UUID, copy: str | None) -> None:
    await conn.execute(
        "DELETE FROM attachment_chunks WHERE file_id = $1 AND ($2::text IS NULL OR copy = $2)",
        file_id,
        copy,
    )


async def sweep_orphan_chunks(conn: Connection, limit: int) -> int:
    """Up to ``limit`` chunks of no upload and no attachment (a thread erased or a staff member
    deleted while a file was in flight, a web process that died after an erasure): deleted.
    An upload's row is written before its first chunk, and attaching swaps the upload row for
    the attachment row in one transaction, so a file in use always has one of the two."""
    done: str = await conn.execute(
        """DELETE FROM attachment_chunks
           WHERE (file_id, copy, idx) IN (
               SELECT c.file_id, c.copy, c.idx FROM attachment_chunks c
               WHERE NOT EXISTS (SELECT 1 FROM uploads u WHERE u.id = c.file_id)
                 AND NOT EXISTS (SELECT 1 FROM attachments a WHERE a.id = c.file_id)
               LIMIT $1)""",
        limit,
    )
    return int(done.split()[-1])


async def delete_thread_chunks(conn: Connection, thread_ids: Sequence[UUID]) -> None:
    """Erasure: the chunks of every file of these threads (their rows go with the threads)."""
    await conn.execute(
        """DELETE FROM attachment_chunks c USING attachments a
           WHERE a.thread_id = ANY($1::uuid[]) AND c.file_id = a.id""",
        list(thread_ids),
    )
    await conn.execute(
        """DELETE FROM attachment_chunks c USING uploads u
           WHERE u.thread_id = ANY($1::uuid[]) AND c.file_id = u.id""",
        list(thread_ids),
    )


# --- Uploads ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UploadRow:
    id: UUID
    owner: str
    thread_id: UUID | None
    staff_id: int | None
    complete: bool
    file_type: str | None
    size: int | None
    sealed: bytes | None
    expires_at: datetime
    draft_id: bytes | None


_UPLOAD = "id, owner, thread_id, staff_id, complete, file_type, size, sealed, expires_at, draft_id"


async def insert_upload(
    conn: Connection,
    upload_id: UUID,
    lookup: bytes,
    *,
    owner: str,
    thread_id: UUID | None,
    staff_id: int | None,
    ttl_s: int,
) -> None:
    await conn.execute(
        """INSERT INTO uploads (id, lookup, owner, thread_id, staff_id, expires_at)
           VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))""",
        upload_id,
        lookup,
        owner,
        thread_id,
        staff_id,
        float(ttl_s),
    )


async def complete_upload(
    conn: Connection, upload_id: UUID, *, file_type: str, size: int, sealed: bytes, ttl_s: int
) -> None:
    """The upload's chunks are all in: it may be attached from now, for ``ttl_s``. LookupError
    if its row is gone (purged while it streamed)."""
    done: str = await conn.execute(
        """UPDATE uploads SET complete = true, file_type = $2, size = $3, sealed = $4,
                              expires_at = now() + make_interval(secs => $5)
           WHERE id = $1""",
        upload_id,
        file_type,
        size,
        sealed,
        float(ttl_s),
    )
    if done.split()[-1] != "1":
        raise LookupError("upload row gone")


async def delete_upload(conn: Connection, upload_id: UUID) -> None:
    await conn.execute("DELETE FROM uploads WHERE id = $1", upload_id)


async def usable_uploads(
    conn: Connection, lookups: Sequence[bytes], *, lock: bool, nowait: bool = False
) -> dict[bytes, UploadRow]:
    """Complete uploads not expired (or held by a live draft), by lookup; ``lock`` holds them
    until the transaction ends (two requests using the same upload: one waits, then finds it
    gone; with ``nowait`` it gets asyncpg's LockNotAvailableError at once instead)."""
    for_update = ("FOR UPDATE OF u NOWAIT" if nowait else "FOR UPDATE OF u") if lock else ""
    rows = await conn.fetch(
        f"""SELECT u.lookup, {", ".join("u." + c for c in _UPLOAD.split(", "))}
            FROM uploads u
            WHERE u.lookup = ANY($1::bytea[]) AND u.complete
              AND (u.expires_at > now()
                   OR EXISTS (SELECT 1 FROM report_drafts d
                              WHERE d.id = u.draft_id AND d.expires_at > now()))
            {for_update}""",
        list(lookups),
    )
    return {bytes(r["lookup"]): UploadRow(*list(r.values())[1:]) for r in rows}


async def hold_in_draft(conn: Connection, lookup: bytes, draft_id: bytes | None) -> bool:
    done = await conn.fetchval(
        """UPDATE uploads SET draft_id = $2 WHERE lookup = $1 AND complete RETURNING true""",
        lookup,
        draft_id,
    )
    return bool(done)


async def delete_upload_by_lookup(conn: Connection, lookup: bytes) -> UUID | None:
    found: UUID | None = await conn.fetchval(
        "DELETE FROM uploads WHERE lookup = $1 RETURNING id", lookup
    )
    return found


async def pending_upload_bytes(conn: Connection) -> int:
    """The bytes of reporters' (and anonymous) uploads not attached (yet), expired ones not yet
    purged included: what ``CONFIDE_PENDING_UPLOADS_MAX_MIB`` caps. Staff uploads not counted."""
    return int(
        await conn.fetchval(
            "SELECT coalesce(sum(size), 0) FROM uploads WHERE owner <> 'staff' AND complete"
        )
    )


async def delete_expired_uploads(conn: Connection, limit: int) -> list[UUID]:
    """Delete up to ``limit`` uploads past their time and held by no live draft (incomplete
    ones included: a body cut off mid-stream), skipping any row another transaction holds (a
    report or message claiming it); their ids, whose chunks the caller then deletes in the same
    transaction. A claim that holds its uploads' rows is never left with chunks gone."""
    expired = """u.expires_at <= now()
                 AND NOT EXISTS (SELECT 1 FROM report_drafts d
                                 WHERE d.id = u.draft_id AND d.expires_at > now())"""
    rows = await conn.fetch(
        f"""DELETE FROM uploads u
            WHERE u.id IN (SELECT u.id FROM uploads u WHERE {expired}
                           ORDER BY u.expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
              AND {expired}
            RETURNING u.id""",
        limit,
    )
    return [r["id"] for r in rows]


# --- Attachments ------------------------------------------------------------------------------


async def next_position(conn: Connection, thread_id: UUID) -> int:
    """The N of the next ``attachment-N`` in the thread (the caller holds the thread's lock)."""
    return int(
        await conn.fetchval(
            "SELECT coalesce(max(position), 0) + 1 FROM attachments WHERE thread_id = $1",
            thread_id,
        )
    )


async def insert_attachments(
    conn: Connection,
    rows: Sequence[
        tuple[UUID, UUID, UUID | None, int, str, int | None, str, int, bytes, bytes | None]
    ],
) -> None:
    """(id, thread, message, position, uploaded_by, staff_id, type, size, file_key, name)."""
    await conn.executemany(
        """INSERT INTO attachments (id, thread_id, message_id, position, uploaded_by, staff_id,
                                    file_type, size, file_key, name)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
        rows,
    )


@dataclass(frozen=True, slots=True)
class AttachmentRow:
    id: UUID
    thread_id: UUID
    message_id: UUID | None
    position: int
    uploaded_by: str
    file_type: str
    size: int
    stripped_size: int | None
    preview_size: int | None
    state: str
    name: bytes | None
    file_key: bytes
    strip_failure: str | None
    reference: str
    data_key: bytes | None


_ATTACHMENT = """a.id, a.thread_id, a.message_id, a.position, a.uploaded_by, a.file_type, a.size,
    a.stripped_size, a.preview_size, a.state, a.name, a.file_key, a.strip_failure,
    t.reference, t.data_key"""


async def of_thread(conn: Connection, thread_id: UUID) -> list[AttachmentRow]:
    rows = await conn.fetch(
        f"""SELECT {_ATTACHMENT} FROM attachments a JOIN threads t ON t.id = a.thread_id
            WHERE a.thread_id = $1 ORDER BY a.position""",
        thread_id,
    )
    return [AttachmentRow(**r) for r in rows]


async def get(conn: Connection, attachment_id: UUID, *, lock: bool = False) -> AttachmentRow | None:
    for_update = "FOR UPDATE OF a" if lock else ""
    row = await conn.fetchrow(
        f"""SELECT {_ATTACHMENT} FROM attachments a JOIN threads t ON t.id = a.thread_id
            WHERE a.id = $1 {for_update}""",
        attachment_id,
    )
    return None if row is None else AttachmentRow(**row)


async def claim_strip(
    conn: Connection, attachment_id: UUID, lease_s: float, lease_id: UUID
) -> int | None:
    """Lease a preparing attachment for one stripping run under the fresh token ``lease_id``:
    its attempt number, or None (ready, quarantined, leased by a live run, or not due yet: a
    redelivery does nothing). The next attempt is pushed back at once (LEASE, then doubling up
    to an hour), so a run that dies without a word (SIGKILL, OOM) still backs off."""
    attempts: int | None = await conn.fetchval(
        """UPDATE attachments SET leased_until = now() + make_interval(secs => $2),
                                  lease_id = $3,
                                  attempts = attempts + 1,
                                  next_attempt_at = now() + make_interval(
                                      secs => least($2 * 2 ^ attempts, 3600))
           WHERE id = $1 AND state = 'preparing' AND next_attempt_at <= now()
             AND (leased_until IS NULL OR leased_until < now())
           RETURNING attempts""",
        attachment_id,
        lease_s,
        lease_id,
    )
    return attempts


async def renew_strip(
    conn: Connection, attachment_id: UUID, lease_id: UUID, lease_s: float
) -> bool:
    """False: the run no longer holds the lease (another run claimed it, or the row is done or
    gone), and must stop without writing."""
    done = await conn.fetchval(
        """UPDATE attachments SET leased_until = now() + make_interval(secs => $3)
           WHERE id = $1 AND state = 'preparing' AND lease_id = $2 RETURNING true""",
        attachment_id,
        lease_id,
        lease_s,
    )
    return bool(done)


async def finish_strip(
    conn: Connection,
    attachment_id: UUID,
    lease_id: UUID,
    *,
    stripped_size: int,
    preview_size: int | None,
) -> bool:
    """Ready (the caller then deletes the original in the same transaction); False if this run
    no longer holds the lease (another run took it, or it is done or gone)."""
    done = await conn.fetchval(
        """UPDATE attachments SET state = 'ready', stripped_size = $3, preview_size = $4,
                                  leased_until = NULL, lease_id = NULL, prepared_at = now()
           WHERE id = $1 AND state = 'preparing' AND lease_id = $2 RETURNING true""",
        attachment_id,
        lease_id,
        stripped_size,
        preview_size,
    )
    return bool(done)


async def quarantine(conn: Connection, attachment_id: UUID, lease_id: UUID, reason: str) -> bool:
    done = await conn.fetchval(
        """UPDATE attachments SET state = 'quarantined', strip_failure = $3,
                                  leased_until = NULL, lease_id = NULL, prepared_at = now()
           WHERE id = $1 AND state = 'preparing' AND lease_id = $2 RETURNING true""",
        attachment_id,
        lease_id,
        reason,
    )
    return bool(done)


async def retry_strip(
    conn: Connection, attachment_id: UUID, lease_id: UUID, delay_s: float
) -> None:
    await conn.execute(
        """UPDATE attachments SET leased_until = NULL, lease_id = NULL,
                                  next_attempt_at = now() + make_interval(secs => $3)
           WHERE id = $1 AND state = 'preparing' AND lease_id = $2""",
        attachment_id,
        lease_id,
        delay_s,
    )


async def due_strips(conn: Connection, limit: int) -> list[UUID]:
    rows = await conn.fetch(
        """SELECT id FROM attachments
           WHERE state = 'preparing' AND next_attempt_at <= now()
             AND (leased_until IS NULL OR leased_until < now())
           ORDER BY next_attempt_at LIMIT $1""",
        limit,
    )
    return [r["id"] for r in rows]


async def release(conn: Connection, attachment_id: UUID, staff_id: int, reason: bytes) -> bool:
    done = await conn.fetchval(
        """UPDATE attachments SET state = 'released', released_by = $2, released_at = now(),
                                  release_reason = $3
           WHERE id = $1 AND state = 'quarantined' RETURNING true""",
        attachment_id,
        staff_id,
        reason,
    )
    return bool(done)
