"""SQL for reporters' drafts: a hashed id, ciphertext only the browser's key opens, its expiry;
and for a few minutes after submission, the confirmation's code, sealed the same way."""

from __future__ import annotations

from dataclasses import dataclass

from asyncpg import Connection


@dataclass(frozen=True, slots=True)
class SealedDraft:
    ciphertext: bytes
    code_ciphertext: bytes | None  # None once its 10 minutes are over, or it was forgotten


async def upsert(conn: Connection, row_id: bytes, ciphertext: bytes, idle_seconds: int) -> None:
    """Write the draft, its expiry moved to ``idle_seconds`` from now; a code is kept as is."""
    await conn.execute(
        """INSERT INTO report_drafts (id, ciphertext, updated_at, expires_at)
           VALUES ($1, $2, now(), now() + make_interval(secs => $3))
           ON CONFLICT (id) DO UPDATE
               SET ciphertext = EXCLUDED.ciphertext, updated_at = EXCLUDED.updated_at,
                   expires_at = EXCLUDED.expires_at""",
        row_id,
        ciphertext,
        idle_seconds,
    )


async def upsert_with_code(
    conn: Connection,
    row_id: bytes,
    ciphertext: bytes,
    idle_seconds: int,
    code_ciphertext: bytes,
    code_seconds: int,
) -> None:
    """Write the confirmation with its code, which is kept for ``code_seconds`` at most."""
    await conn.execute(
        """INSERT INTO report_drafts
               (id, ciphertext, updated_at, expires_at, code_ciphertext, code_expires_at)
           VALUES ($1, $2, now(), now() + make_interval(secs => $3), $4,
                   now() + make_interval(secs => $5))
           ON CONFLICT (id) DO UPDATE
               SET ciphertext = EXCLUDED.ciphertext, updated_at = EXCLUDED.updated_at,
                   expires_at = EXCLUDED.expires_at, code_ciphertext = EXCLUDED.code_ciphertext,
                   code_expires_at = EXCLUDED.code_expires_at""",
        row_id,
        ciphertext,
        idle_seconds,
        code_ciphertext,
        code_seconds,
    )


async def live(conn: Connection, row_id: bytes) -> SealedDraft | None:
    """The draft while it has not expired, with its code while that has not; whatever has
    expired is deleted (the row) or wiped (the code) here, as soon as it is seen.

    A plain read in the common case, and a write only for what has expired: every page of the
    reporter's journey loads its draft (``make bench`` ``submit``, the journey figure).
    """
    row = await conn.fetchrow(
        """SELECT ciphertext, code_ciphertext, expires_at <= now() AS expired,
                  coalesce(code_expires_at <= now(), false) AS code_expired
           FROM report_drafts WHERE id = $1""",
        row_id,
    )
    if row is None:
        return None
    if row["expired"]:
        await conn.execute(
            "DELETE FROM report_drafts WHERE id = $1 AND expires_at <= now()", row_id
        )
        return None
    code = row["code_ciphertext"]
    if code is not None and row["code_expired"]:
        await conn.execute(
            """UPDATE report_drafts SET code_ciphertext = NULL, code_expires_at = NULL
               WHERE id = $1 AND code_expires_at <= now()""",
            row_id,
        )
        code = None
    return SealedDraft(row["ciphertext"], code)


async def forget_code(conn: Connection, row_id: bytes) -> None:
    await conn.execute(
        "UPDATE report_drafts SET code_ciphertext = NULL, code_expires_at = NULL WHERE id = $1",
        row_id,
    )


async def delete(conn: Connection, row_id: bytes) -> bool:
    result: str = await conn.execute("DELETE FROM report_drafts WHERE id = $1", row_id)
    return result != "DELETE 0"


async def purge_expired(conn: Connection, batch: int) -> int:
    """Delete a batch of expired drafts, and wipe every code past its minutes."""
    await conn.execute(
        """UPDATE report_drafts SET code_ciphertext = NULL, code_expires_at = NULL
           WHERE code_expires_at <= now()"""
    )
    result: str = await conn.execute(
        """DELETE FROM report_drafts WHERE id IN (
               SELECT id FROM report_drafts WHERE expires_at <= now() LIMIT $1)""",
        batch,
    )
    return int(result.split()[-1])
