"""SQL for reply deadlines and the escalation pass. Set-based: no loops over threads."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from asyncpg import Connection, Record


async def set_clock(
    conn: Connection, thread_id: UUID, since: datetime, due: datetime, nearing: datetime
) -> None:
    await conn.execute(
        """UPDATE threads SET awaiting_since = $2, reply_due_at = $3, nearing_at = $4,
                              escalation = 'none', escalated_at = NULL
           WHERE id = $1""",
        thread_id,
        since,
        due,
        nearing,
    )


async def clear_clock(conn: Connection, thread_id: UUID) -> None:
    await conn.execute(
        """UPDATE threads SET awaiting_since = NULL, reply_due_at = NULL, nearing_at = NULL,
                              escalation = 'none', escalated_at = NULL
           WHERE id = $1""",
        thread_id,
    )


async def clock(conn: Connection, thread_id: UUID) -> Record | None:
    row: Record | None = await conn.fetchrow(
        "SELECT awaiting_since, reply_due_at, nearing_at FROM threads WHERE id = $1", thread_id
    )
    return row


async def escalate(conn: Connection, as_of: datetime) -> tuple[int, int]:
    """Mark nearing and overdue threads as of ``as_of`` and queue one alert per (overdue thread,
    deadline, manager of its team), in one statement. Returns (threads changed, alerts queued).

    Idempotent: a second pass (or a second beat) finds nothing left to change, and the alerts'
    unique keys keep them single. Only counts come back, so memory stays flat.
    """
    row = await conn.fetchrow(
        """WITH changed AS (
               UPDATE threads t
               SET escalation = CASE WHEN t.reply_due_at <= $1 THEN 'overdue' ELSE 'nearing' END,
                   escalated_at = $1
               WHERE t.reply_due_at IS NOT NULL AND t.nearing_at <= $1 AND t.status <> 'closed'
                 AND t.escalation <> 'overdue'
                 AND t.escalation <> CASE WHEN t.reply_due_at <= $1 THEN 'overdue'
                                          ELSE 'nearing' END
               RETURNING t.id, t.team_id, t.escalation, t.reply_due_at
           ), alerts AS (
               INSERT INTO outbox (id, kind, dedupe_key, thread_id, team_id, staff_id)
               SELECT gen_random_uuid(), 'overdue_alert',
                      'overdue:' || c.id || ':' || extract(epoch FROM c.reply_due_at)::bigint
                          || ':' || s.id,
                      c.id, c.team_id, s.id
               FROM changed c JOIN staff_teams st ON st.team_id = c.team_id
               JOIN staff s ON s.id = st.staff_id AND s.role = 'manager' AND s.active
               WHERE c.escalation = 'overdue'
               ON CONFLICT (dedupe_key) DO NOTHING
               RETURNING 1
           )
           SELECT (SELECT count(*) FROM changed) AS changed,
                  (SELECT count(*) FROM alerts) AS alerts""",
        as_of,
    )
    return int(row["changed"]), int(row["alerts"])


async def refresh_summary(conn: Connection, as_of: datetime) -> list[Record]:
    """Recount each team's awaiting/nearing/overdue threads once, store and return the counts."""
    rows: list[Record] = await conn.fetch(
        """WITH counts AS (
               SELECT tm.id, tm.slug,
                      count(t.id) AS awaiting,
                      count(t.id) FILTER (WHERE t.escalation = 'nearing') AS nearing,
                      count(t.id) FILTER (WHERE t.escalation = 'overdue') AS overdue
               FROM teams tm LEFT JOIN threads t
                 ON t.team_id = tm.id AND t.reply_due_at IS NOT NULL AND t.status <> 'closed'
               GROUP BY tm.id, tm.slug
           ), stored AS (
               INSERT INTO team_deadline_summary (team_id, awaiting, nearing, overdue, updated_at)
               SELECT id, awaiting, nearing, overdue, $1 FROM counts
               ON CONFLICT (team_id) DO UPDATE SET awaiting = EXCLUDED.awaiting,
                   nearing = EXCLUDED.nearing, overdue = EXCLUDED.overdue,
                   updated_at = EXCLUDED.updated_at
               RETURNING 1
           )
           SELECT slug, nearing, overdue, (SELECT count(*) FROM stored) AS stored
           FROM counts ORDER BY slug""",
        as_of,
    )
    return rows


async def summary(conn: Connection) -> list[Record]:
    rows: list[Record] = await conn.fetch(
        """SELECT tm.slug, tm.name, coalesce(s.awaiting, 0) AS awaiting,
                  coalesce(s.nearing, 0) AS nearing, coalesce(s.overdue, 0) AS overdue
           FROM teams tm LEFT JOIN team_deadline_summary s ON s.team_id = tm.id
           ORDER BY tm.slug"""
    )
    return rows


async def queue_digests(conn: Connection, day: str) -> list[str]:
    """One digest per (team, day) for every team with nearing or overdue threads."""
    rows = await conn.fetch(
        """INSERT INTO outbox (id, kind, dedupe_key, team_id, payload)
           SELECT gen_random_uuid(), 'digest', 'digest:' || tm.slug || ':' || $1, tm.id,
                  jsonb_build_object('day', $1::text)
           FROM teams tm
           WHERE tm.active AND tm.email <> '' AND EXISTS (
               SELECT 1 FROM threads t WHERE t.team_id = tm.id AND t.escalation <> 'none'
                 AND t.status <> 'closed' AND t.reply_due_at IS NOT NULL)
           ON CONFLICT (dedupe_key) DO NOTHING
           RETURNING (SELECT slug FROM teams WHERE id = team_id) AS slug""",
        day,
    )
    return [r["slug"] for r in rows]


async def digest_threads(conn: Connection, team_id: int) -> list[Record]:
    """The team's nearing and overdue threads, oldest first: one query, whatever the count."""
    rows: list[Record] = await conn.fetch(
        """SELECT t.reference, c.name AS category_name, t.awaiting_since, t.reply_due_at,
                  t.escalation
           FROM threads t JOIN categories c ON c.slug = t.category_slug
           WHERE t.team_id = $1 AND t.escalation <> 'none' AND t.status <> 'closed'
             AND t.reply_due_at IS NOT NULL
           ORDER BY t.awaiting_since, t.reference""",
        team_id,
    )
    return rows


async def record_success(conn: Connection, name: str, at: datetime) -> None:
    await conn.execute(
        """INSERT INTO job_runs (name, last_success) VALUES ($1, $2)
           ON CONFLICT (name) DO UPDATE SET last_success = EXCLUDED.last_success""",
        name,
        at,
    )
