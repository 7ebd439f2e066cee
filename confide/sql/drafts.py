"""SQL for reporters' drafts: a hashed id, ciphertext only the browser's key opens, two times."""

from __future__ import annotations

from asyncpg import Connection


async def upsert(conn: Connection, row_id: bytes, ciphertext: bytes, idle_seconds: int) -> None:
    """Write the draft, its expiry moved to ``idle_seconds`` from now."""
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


async def live_ciphertext(conn: Connection, row_id: bytes) -> bytes | None:
    """The draft's ciphertext while it has not expired; an expired one is deleted here."""
    value: bytes | None = await conn.fetchval(
        """WITH gone AS (
               DELETE FROM report_drafts WHERE id = $1 AND expires_at <= now() RETURNING id
           )
           SELECT ciphertext FROM report_drafts
           WHERE id = $1 AND expires_at > now() AND NOT EXISTS (SELECT 1 FROM gone)""",
        row_id,
    )
    return value


async def delete(conn: Connection, row_id: bytes) -> bool:
    result: str = await conn.execute("DELETE FROM report_drafts WHERE id = $1", row_id)
    return result != "DELETE 0"


async def purge_expired(conn: Connection, batch: int) -> int:
    result: str = await conn.execute(
        """DELETE FROM report_drafts WHERE id IN (
               SELECT id FROM report_drafts WHERE expires_at <= now() LIMIT $1)""",
        batch,
    )
    return int(result.split()[-1])
