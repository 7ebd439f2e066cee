"""SQL for server-side sessions (cookies and bearer tokens). Only token HMACs are stored."""

from __future__ import annotations

from uuid import UUID

from asyncpg import Connection, Record


async def insert(
    conn: Connection,
    token_hmac: bytes,
    *,
    kind: str,
    thread_id: UUID | None,
    staff_id: int | None,
    idle_seconds: int,
    absolute_seconds: int,
) -> Record:
    row: Record = await conn.fetchrow(
        """INSERT INTO sessions (token_hmac, kind, thread_id, staff_id, idle_seconds, expires_at)
           VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
           RETURNING created_at, last_seen_at, idle_seconds, expires_at""",
        token_hmac,
        kind,
        thread_id,
        staff_id,
        idle_seconds,
        absolute_seconds,
    )
    return row


async def touch(conn: Connection, token_hmac: bytes, kind: str) -> Record | None:
    """The live session for this token, its idle clock restarted; None if expired or unknown."""
    row: Record | None = await conn.fetchrow(
        """UPDATE sessions SET last_seen_at = now()
           WHERE token_hmac = $1 AND kind = $2 AND expires_at > now()
             AND last_seen_at + make_interval(secs => idle_seconds) > now()
           RETURNING thread_id, staff_id, last_seen_at, idle_seconds, expires_at""",
        token_hmac,
        kind,
    )
    return row


async def touch_staff(conn: Connection, token_hmac: bytes) -> Record | None:
    """``touch`` for a staff session, with its staff member and their teams: every staff page
    needs all three, in one round trip."""
    row: Record | None = await conn.fetchrow(
        """WITH s AS (
               UPDATE sessions SET last_seen_at = now()
               WHERE token_hmac = $1 AND kind = 'staff' AND expires_at > now()
                 AND last_seen_at + make_interval(secs => idle_seconds) > now()
               RETURNING thread_id, staff_id, last_seen_at, idle_seconds, expires_at
           )
           SELECT s.thread_id, s.staff_id, s.last_seen_at, s.idle_seconds, s.expires_at,
                  st.email, st.name, st.role, st.active,
                  ARRAY(SELECT team_id FROM staff_teams WHERE staff_id = st.id ORDER BY team_id)
                      AS team_ids
           FROM s JOIN staff st ON st.id = s.staff_id""",
        token_hmac,
    )
    return row


async def delete(conn: Connection, token_hmac: bytes) -> None:
    await conn.execute("DELETE FROM sessions WHERE token_hmac = $1", token_hmac)


async def delete_for_staff(conn: Connection, staff_id: int) -> None:
    await conn.execute("DELETE FROM sessions WHERE staff_id = $1", staff_id)


async def purge_expired(conn: Connection) -> int:
    result: str = await conn.execute(
        """DELETE FROM sessions WHERE expires_at < now()
              OR last_seen_at + make_interval(secs => idle_seconds) < now()"""
    )
    return int(result.split()[-1])
